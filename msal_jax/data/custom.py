"""Your own data: numpy arrays, ``.npz`` / ``.npy`` files, or an image folder.

Every source gives a :class:`~msal_jax.data.Dataset` of ``uint8`` images
``[N, H, W, Ch]`` (``[N, H, W]`` is read as grayscale, ``Ch = 1``) and
``int32`` labels. Float arrays are refused rather than guessed at: scale them
to ``0..255`` and convert with ``.astype(np.uint8)``. Pool labels may be
partly unknown (``-1``); test labels must all be known. ``mean`` / ``std``
(per channel, pixels scaled to ``[0, 1]``) are computed from the pool unless
given. Class names default to ``"0"``, ``"1"``, ...

* :func:`from_arrays`: arrays in memory.
* :func:`load_npz`: one ``.npz`` with ``pool_images``, ``test_images``,
  ``test_labels``, optional ``pool_labels`` (else all unknown),
  ``class_names``, ``mean``, ``std`` (Keras-style ``x_train``, ``y_train``,
  ``x_test``, ``y_test`` are accepted too). Members stored uncompressed
  (``np.savez``, not ``np.savez_compressed``) are memory-mapped, not read.
* :func:`load_npy_dir`: a folder of ``<key>.npy`` files with the same keys,
  memory-mapped (``np.load(..., mmap_mode="r")``).
* :func:`load_folder`: ``root/train/<class>/*.png`` (the pool, labeled by
  its sub-folder), optional ``root/unlabeled/*.png`` (pool samples without a
  label), ``root/test/<class>/*.png`` (or ``val``). Pool ids run through
  ``train`` by class (in class order) and file name, then ``unlabeled``;
  ``pool_paths`` holds each sample's path relative to ``root``. The folder
  itself is read by :mod:`msal_jax.data.image_folder`; a pool of more than
  ``in_memory_limit`` bytes of pixels is not decoded but given as a
  :class:`msal_jax.pool_source.FolderPool` over its files.

The loop copies a pool of at most its ``in_memory_limit`` bytes (default
:data:`msal_jax.pool_source.IN_MEMORY_LIMIT_BYTES`, 4 GiB) to the
accelerator once; a larger memory map or :class:`~msal_jax.pool_source.PoolSource`
is streamed through the network in chunks each round (docs/out_of_core.md).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from msal_jax import pool_source
from msal_jax.data import image_folder
from msal_jax.data.dataset import Dataset
from msal_jax.data.image_folder import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS  # re-exported

SOURCES = ("npz", "npy", "folder")
KEYS = ("pool_images", "pool_labels", "test_images", "test_labels", "class_names", "mean", "std")
_KERAS_KEYS = {"x_train": "pool_images", "y_train": "pool_labels", "x_test": "test_images",
               "y_test": "test_labels"}
_STATS_CHUNK = 4096  # images per step when computing mean/std (memory-mapped pools)
# A PoolSource's chunks hold at most this many bytes as float64 (and fewer than
# _STATS_CHUNK images), so that the pass over a pool of large images stays small.
_STATS_BYTES = 128 << 20


def _images(name: str, what: str, x: Any) -> np.ndarray:
  if not isinstance(x, np.ndarray):
    x = np.asarray(x)
  if x.dtype != np.uint8:
    hint = (" (floats in [0, 1]: (x * 255).round().astype(np.uint8))"
            if np.issubdtype(x.dtype, np.floating) else "")
    raise ValueError(
        f"{name}: {what} must be uint8 images [N, H, W, Ch] or [N, H, W], got dtype {x.dtype}: "
        f"convert them to 0..255 uint8{hint}."
    )
  if x.ndim == 3:
    x = x[..., None]  # grayscale; a view, so a memory map stays one
  if x.ndim != 4:
    raise ValueError(
        f"{name}: {what} must be uint8 images [N, H, W, Ch] or [N, H, W], got shape {x.shape}."
    )
  return x


def _labels(name: str, what: str, y: Any, n: int, *, allow_unknown: bool) -> np.ndarray:
  y = np.asarray(y)
  if y.shape != (n,):
    raise ValueError(f"{name}: {what} must have shape ({n},) (one per image), got {y.shape}.")
  if y.size and not np.issubdtype(y.dtype, np.integer):
    if np.issubdtype(y.dtype, np.floating) and np.array_equal(y, np.round(y)):
      pass  # whole numbers stored as floats (e.g. from a CSV): fine
    else:
      raise ValueError(f"{name}: {what} must be integer class indices, got dtype {y.dtype}.")
  y = y.astype(np.int64)
  low = -1 if allow_unknown else 0
  bad = np.flatnonzero(y < low)
  if bad.size:
    allowed = ">= 0, or -1 for unknown" if allow_unknown else ">= 0 (all test labels known)"
    raise ValueError(f"{name}: {what}[{bad[0]}] = {y[bad[0]]}; labels must be {allowed}.")
  return y.astype(np.int32)


def pixel_stats(images: np.ndarray | pool_source.PoolSource
                ) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel ``(mean, std)`` of ``images [N, H, W, Ch] uint8`` scaled to ``[0, 1]``.

  Streams over the images in chunks (float64 sums), so a memory-mapped pool
  is never read into memory whole. ``images`` may be a
  :class:`~msal_jax.pool_source.PoolSource` (read by ``read``, in chunks of
  at most :data:`_STATS_CHUNK` images and :data:`_STATS_BYTES` bytes as
  float64; with images of up to ``_STATS_BYTES / 8 / _STATS_CHUNK`` = 4096
  bytes each, the chunks and so the results are those of the same pool as
  an array). A channel with zero spread gets std 1.
  """
  if isinstance(images, np.ndarray):
    num, ch, step = images.shape[0], images.shape[-1], _STATS_CHUNK

    def rows(start, stop):
      return images[start:stop]
  else:
    num, ch = images.num, images.image_shape[-1]
    step = max(1, min(_STATS_CHUNK, _STATS_BYTES // (8 * int(np.prod(images.image_shape)))))

    def rows(start, stop):
      return images.read(np.arange(start, stop))
  total = np.zeros(ch)
  total_sq = np.zeros(ch)
  count = 0
  for start in range(0, num, step):
    # In place (the values of chunk / 255.0 and chunk * chunk): one float64 chunk at a time.
    chunk = np.array(rows(start, min(start + step, num)), np.float64).reshape(-1, ch)
    chunk /= 255.0
    total += chunk.sum(0)
    np.multiply(chunk, chunk, out=chunk)
    total_sq += chunk.sum(0)
    count += chunk.shape[0]
  if count == 0:
    raise ValueError("pixel_stats: no images.")
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
  std = np.where(std > 1e-6, std, 1.0)
  return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def from_arrays(
    pool_images: ArrayLike,
    pool_labels: ArrayLike | None,
    test_images: ArrayLike,
    test_labels: ArrayLike,
    *,
    name: str = "custom",
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    pool_paths: Sequence[str] | None = None,
) -> Dataset:
  """A :class:`Dataset` of arrays in memory (or memory maps: they are not copied).

  Args:
    pool_images: ``[N, H, W, Ch]`` or ``[N, H, W]`` uint8, or a
      :class:`~msal_jax.pool_source.PoolSource` (kept as it is: the loop streams it).
    pool_labels: ``[N]`` class indices, ``-1`` where unknown; ``None``: all unknown.
    test_images: ``[M, H, W, Ch]`` or ``[M, H, W]`` uint8.
    test_labels: ``[M]`` class indices (all known).
    name: the dataset's name in the result files.
    class_names: ``C`` names, index = label; default ``"0" .. "C-1"``.
    num_classes: ``C``; default ``len(class_names)``, else the largest label + 1.
    mean, std: per-channel statistics of pixels in ``[0, 1]``; default: of the pool.
    pool_paths: ``N`` names of the pool samples (e.g. file paths).

  Raises:
    ValueError: a wrong dtype, shape or label; the message names the array.
  """
  if isinstance(pool_images, pool_source.PoolSource) and not isinstance(pool_images, np.ndarray):
    pool_x, n = pool_images, pool_images.num  # read only by pixel_stats, in chunks
  else:
    pool_x = _images(name, "pool_images", pool_images)
    n = pool_x.shape[0]
  test_x = _images(name, "test_images", test_images)
  pool_y = (np.full(n, -1, np.int32) if pool_labels is None
            else _labels(name, "pool_labels", pool_labels, n, allow_unknown=True))
  test_y = _labels(name, "test_labels", test_labels, test_x.shape[0], allow_unknown=False)
  if class_names is not None:
    class_names = tuple(str(c) for c in class_names)
    if len(set(class_names)) != len(class_names):
      raise ValueError(f"{name}: class_names must be distinct, got {class_names}.")
    if num_classes is not None and num_classes != len(class_names):
      raise ValueError(f"{name}: num_classes={num_classes} but {len(class_names)} class_names.")
    num_classes = len(class_names)
  if num_classes is None:
    num_classes = int(max(pool_y.max(initial=-1), test_y.max(initial=-1))) + 1
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or (
      num_classes < 2):
    raise ValueError(
        f"{name}: at least 2 classes are needed, got num_classes={num_classes!r} (give "
        "class_names or num_classes when the labels do not show every class)."
    )
  num_classes = int(num_classes)
  for what, y in (("pool_labels", pool_y), ("test_labels", test_y)):
    if y.size and y.max() >= num_classes:
      i = int(np.argmax(y))
      raise ValueError(f"{name}: {what}[{i}] = {y[i]} is not a class index in "
                       f"[0, {num_classes}).")
  if class_names is None:
    class_names = tuple(str(i) for i in range(num_classes))
  if (mean is None) != (std is None):
    raise ValueError(f"{name}: give both mean and std, or neither (then both come from the pool).")
  if mean is None:
    mean, std = pixel_stats(pool_x)
  mean = tuple(float(m) for m in np.ravel(mean))
  std = tuple(float(s) for s in np.ravel(std))
  return Dataset(
      name=name, pool_images=pool_x, pool_labels=pool_y, test_images=test_x, test_labels=test_y,
      num_classes=num_classes, class_names=class_names, mean=mean, std=std,
      pool_paths=None if pool_paths is None else tuple(str(p) for p in pool_paths),
  )


def _npz_member(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
  """One ``.npy`` member of an ``.npz``: memory-mapped when stored uncompressed."""
  if info.compress_type == zipfile.ZIP_STORED:
    with open(path, "rb") as f:
      # The local file header: 30 fixed bytes, then the name and extra field.
      f.seek(info.header_offset)
      local = f.read(30)
      if local[:4] == b"PK\x03\x04":
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is not None:
          shape, fortran, dtype = read_header(f)
          if not dtype.hasobject and np.prod(shape) > 0:
            return np.memmap(path, dtype=dtype, mode="r", offset=f.tell(), shape=shape,
                             order="F" if fortran else "C")
  with zf.open(info) as member:
    return np.lib.format.read_array(member, allow_pickle=False)


def _check_keys(where: str, found: Sequence[str]) -> dict[str, str]:
  """``{our key: key in the file}``; errors on unknown or missing keys."""
  mapping = {}
  for key in found:
    ours = _KERAS_KEYS.get(key, key)
    if ours not in KEYS:
      raise ValueError(
          f"{where}: unknown array {key!r}; allowed: {', '.join(KEYS)} (or x_train, y_train, "
          "x_test, y_test)."
      )
    if ours in mapping:
      raise ValueError(f"{where}: both {mapping[ours]!r} and {key!r} give {ours}.")
    mapping[ours] = key
  missing = [k for k in ("pool_images", "test_images", "test_labels") if k not in mapping]
  if missing:
    raise ValueError(
        f"{where}: missing {', '.join(missing)}; it holds {', '.join(sorted(found)) or 'nothing'}."
    )
  return mapping


def _from_members(where: str, name: str, get, mapping: dict[str, str], **overrides) -> Dataset:
  arrays = {ours: get(key) for ours, key in mapping.items()}
  class_names = overrides.get("class_names")
  if class_names is None and "class_names" in arrays:
    class_names = [str(c) for c in np.asarray(arrays["class_names"]).ravel()]
  mean, std = overrides.get("mean"), overrides.get("std")
  if mean is None and std is None:
    mean, std = arrays.get("mean"), arrays.get("std")
  try:
    return from_arrays(
        arrays["pool_images"], arrays.get("pool_labels"), arrays["test_images"],
        arrays["test_labels"], name=name, class_names=class_names,
        num_classes=overrides.get("num_classes"), mean=mean, std=std,
    )
  except ValueError as e:
    raise ValueError(f"{where}: {e}") from None


def load_npz(path: str, *, name: str | None = None, **overrides: Any) -> Dataset:
  """A :class:`Dataset` from one ``.npz`` file (see the module docstring for its keys).

  Args:
    path: the ``.npz`` file.
    name: the dataset's name; default the file name without ``.npz``.
    **overrides: ``class_names``, ``num_classes``, ``mean``, ``std`` (win over
      the file's).

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a readable ``.npz``, unknown or missing keys, bad arrays.
  """
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"data.path: {path!r} does not exist (an .npz file is expected).")
  name = name or os.path.splitext(os.path.basename(path))[0]
  try:
    zf = zipfile.ZipFile(path)
  except (zipfile.BadZipFile, OSError) as e:
    raise ValueError(f"{path}: not a readable .npz file ({e}).") from None
  with zf:
    infos = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
    mapping = _check_keys(path, list(infos))
    try:
      return _from_members(path, name, lambda k: _npz_member(path, zf, infos[k]), mapping,
                           **overrides)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
      raise ValueError(f"{path}: cannot read ({type(e).__name__}: {e}).") from None


def load_npy_dir(path: str, *, name: str | None = None, **overrides: Any) -> Dataset:
  """A :class:`Dataset` from a folder of ``<key>.npy`` files, memory-mapped.

  Same keys and ``overrides`` as :func:`load_npz`.
  """
  path = os.path.expanduser(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"data.dir: {path!r} is not a folder (of .npy files).")
  name = name or os.path.basename(os.path.normpath(path))
  found = sorted(f[:-4] for f in os.listdir(path) if f.endswith(".npy"))
  mapping = _check_keys(path, found)

  def get(key):
    file = os.path.join(path, key + ".npy")
    try:
      return np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
      raise ValueError(f"{file}: not a readable .npy file ({e}).") from None

  return _from_members(path, name, get, mapping, **overrides)


def load_folder(
    root: str,
    *,
    name: str | None = None,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    class_names: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    in_memory_limit: int | None = None,
) -> Dataset:
  """A :class:`Dataset` from an image folder with one sub-folder per class.

  Layout::

    root/train/<class>/*.png   the pool, labeled by sub-folder
    root/unlabeled/*.png       pool samples without a label yet (optional)
    root/test/<class>/*.png    the test set (``val`` also works)

  Args:
    root: the folder.
    name: the dataset's name; default the folder's name.
    image_size: ``(H, W)`` every image is resized to; default: they must all
      have one size already.
    channels: 1 (grayscale) or 3 (RGB); default 1 when every image is
      grayscale, else 3.
    class_names: the class list (index = label) when it should hold classes
      without a folder yet or another order; default: the sorted sub-folder
      names of ``train`` and ``test``.
    mean, std: default: of the pool (one chunked pass over it when it is not
      decoded).
    in_memory_limit: a pool of more than this many bytes of pixels (``N * H *
      W * Ch``: the file count and the first image's size, or ``image_size``)
      is not decoded: ``pool_images`` is a
      :class:`~msal_jax.pool_source.FolderPool` over the same files, in the
      same order and resized alike, which the loop streams. ``None``:
      :data:`msal_jax.pool_source.IN_MEMORY_LIMIT_BYTES`; 0: always. The test
      set is always decoded.

  Returns:
    The dataset; ``pool_paths`` are the pool images' paths relative to ``root``.

  Raises:
    FileNotFoundError: ``root``, its ``train`` or its ``test`` folder is missing.
    ValueError: unreadable images, differing sizes, a class folder outside
      ``class_names``.
  """
  root = os.path.expanduser(root)
  found = image_folder.read_folder(root, image_size=image_size, channels=channels,
                                   class_names=class_names, in_memory_limit=in_memory_limit)
  return from_arrays(
      found.pool_images, found.pool_labels, found.test_images, found.test_labels,
      name=name or os.path.basename(os.path.normpath(root)), class_names=found.class_names,
      mean=mean, std=std, pool_paths=found.pool_paths,
  )


def load_custom(source: str, path: str, **options: Any) -> Dataset:
  """:func:`load_npz` (``"npz"``), :func:`load_npy_dir` (``"npy"``) or
  :func:`load_folder` (``"folder"``) of ``path``; ``options`` go to it.

  Options that are ``None`` are dropped, so config placeholders pass through.
  """
  options = {k: v for k, v in options.items() if v is not None}
  if source == "npz":
    return load_npz(path, **options)
  if source == "npy":
    return load_npy_dir(path, **options)
  if source == "folder":
    return load_folder(path, **options)
  raise ValueError(f"data.source: unknown custom source {source!r}; known: {', '.join(SOURCES)}.")
