"""Image pools that are never loaded whole: random access and read-ahead chunks.

A :class:`PoolSource` is ``num`` uint8 images of one ``image_shape`` ``(H, W,
Ch)`` that can be read two ways:

* ``read(ids) -> [len(ids), H, W, Ch]``: random access, for the samples a
  round queries (training gathers only the labeled set) and the t-SNE sample;
* ``chunks(chunk_size)``: the whole pool in order, ``(start, [chunk_size, H,
  W, Ch])`` pairs, the last chunk padded with zeros to ``chunk_size`` so that
  one compiled step serves every chunk; a background thread reads up to
  ``prefetch`` chunks ahead (a bounded queue), so reading overlaps computing
  (:class:`msal_jax.read_ahead.ChunkIterator`, re-exported here).

Sources: :class:`ArrayPool` (a numpy array in memory, the fast path),
:class:`NpyPool` (a memory-mapped ``.npy``), :class:`TfdsPool` (a
``tfds.data_source`` split, or anything with ``len`` and ``[i] -> {"image":
...}``), :class:`FolderPool` (image files decoded with Pillow by a bounded
thread pool). :func:`open_pool` picks one and loads it into memory when it is
at most :data:`IN_MEMORY_LIMIT_BYTES`.
"""

from __future__ import annotations

import concurrent.futures
import mmap
import os
import weakref
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

# The read-ahead (a concept of its own) lives in read_ahead; its names are
# re-exported here, where the sources' users look for them.
from msal_jax.read_ahead import DEFAULT_PREFETCH, ChunkIterator

__all__ = [
    "DEFAULT_PREFETCH", "DEFAULT_WORKERS", "IMAGE_EXTENSIONS", "IN_MEMORY_LIMIT_BYTES",
    "ArrayPool", "ChunkIterator", "FolderPool", "NpyPool", "PoolSource", "TfdsPool",
    "in_memory_limit", "list_images", "open_pool",
]

# Pools of at most this many bytes of pixels are read into memory (ArrayPool);
# larger ones are streamed. 4 GiB: the in-memory loop places the whole pool on
# the device, next to the model, and a 16 GB accelerator or a small host still
# holds that. Override per call: open_pool(..., limit_bytes=...).
IN_MEMORY_LIMIT_BYTES = 4 << 30

DEFAULT_WORKERS = min(8, os.cpu_count() or 1)  # FolderPool decoding threads

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")


def in_memory_limit(value: int | None, field: str = "in_memory_limit") -> int:
  """``value`` in bytes, or :data:`IN_MEMORY_LIMIT_BYTES` (read now) for ``None``.

  Raises a one-line ``ValueError`` naming ``field`` unless ``value`` is ``None``
  or an int >= 0.
  """
  if value is None:
    return IN_MEMORY_LIMIT_BYTES
  if isinstance(value, bool) or not isinstance(value, int) or value < 0:
    raise ValueError(f"{field} must be an integer >= 0 (bytes of pool pixels; 0: always "
                     f"stream), got {value!r}.")
  return value


@runtime_checkable
class PoolSource(Protocol):
  """``num`` uint8 images of shape ``image_shape``, read by ids or in padded chunks."""

  num: int
  image_shape: tuple[int, int, int]
  dtype: np.dtype

  def read(self, ids: np.ndarray) -> np.ndarray:
    """``[len(ids), H, W, Ch]`` uint8, the images of pool rows ``ids`` in that order."""
    ...

  def chunks(self, chunk_size: int, *, prefetch: int = DEFAULT_PREFETCH) -> ChunkIterator:
    """``(start, [chunk_size, H, W, Ch] uint8)`` over the pool, the last one zero-padded.

    The sources here also take ``span=(lo, hi)``: only rows ``[start + lo,
    start + hi)`` of each chunk (``hi - lo`` rows, zero past the pool's end),
    which a process of a multi-host run reads (its devices' rows). A source
    without ``span`` is read whole there and sliced.
    """
    ...


# ---------------------------------------------------------------------------
# the sources
# ---------------------------------------------------------------------------


def _check_ids(name: str, ids: Any, num: int) -> np.ndarray:
  ids = np.asarray(ids)
  if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
    raise ValueError(f"{name}.read: ids must be a 1-D integer array, got {ids.dtype} "
                     f"{ids.shape}.")
  ids = ids.astype(np.int64)
  if ids.size and (ids.min() < 0 or ids.max() >= num):
    raise ValueError(f"{name}.read: ids must lie in [0, {num}), got [{ids.min()}, "
                     f"{ids.max()}].")
  return ids


class _Source:
  """The shared part: ``chunks`` from ``_range(start, stop)``, ``read`` from ``_rows(ids)``."""

  num: int
  image_shape: tuple[int, int, int]
  dtype = np.dtype(np.uint8)

  @property
  def nbytes(self) -> int:
    """Bytes of all the pool's pixels (what loading it into memory costs)."""
    return self.num * int(np.prod(self.image_shape))

  def read(self, ids: np.ndarray) -> np.ndarray:
    ids = _check_ids(type(self).__name__, ids, self.num)
    if not ids.size:
      return np.zeros((0, *self.image_shape), np.uint8)
    return self._rows(ids)

  def chunks(self, chunk_size: int, *, prefetch: int = DEFAULT_PREFETCH,
             span: tuple[int, int] | None = None) -> ChunkIterator:
    return ChunkIterator(self._range, self.num, chunk_size, prefetch, span)

  def _range(self, start: int, stop: int) -> np.ndarray:
    return self._rows(np.arange(start, stop))

  def _rows(self, ids: np.ndarray) -> np.ndarray:
    raise NotImplementedError


def _check_array(name: str, images: Any) -> tuple[int, tuple[int, int, int]]:
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] < 1:
    raise ValueError(f"{name}: pool images must be uint8 [N >= 1, H, W, Ch], got "
                     f"{images.dtype} {images.shape}.")
  return int(images.shape[0]), tuple(int(d) for d in images.shape[1:])


class ArrayPool(_Source):
  """A pool held in memory as one uint8 numpy array ``[N, H, W, Ch]`` (the fast path)."""

  def __init__(self, images: np.ndarray):
    self.images = np.asarray(images)
    self.num, self.image_shape = _check_array("ArrayPool", self.images)

  def _rows(self, ids: np.ndarray) -> np.ndarray:
    return self.images[ids]

  def _range(self, start: int, stop: int) -> np.ndarray:
    return self.images[start:stop]  # a view: nothing to copy


class NpyPool(_Source):
  """A uint8 ``[N, H, W, Ch]`` ``.npy`` file, memory-mapped (``np.load(mmap_mode="r")``).

  Only the rows read are paged in; ``read`` sorts the ids first so that the
  file is read forwards, then restores their order.
  """

  def __init__(self, path: str):
    self.path = os.fspath(path)
    try:
      self.images = np.load(self.path, mmap_mode="r")
    except (OSError, ValueError) as e:
      raise ValueError(f"NpyPool: cannot memory-map {self.path!r} as a .npy array ({e}).") from e
    self.num, self.image_shape = _check_array(f"NpyPool {self.path!r}", self.images)

  @classmethod
  def from_memmap(cls, images: np.memmap) -> NpyPool:
    """The pool of an open uint8 ``[N, H, W, Ch]`` memory map (e.g. a Dataset's pool_images)."""
    self = cls.__new__(cls)
    self.path, self.images = str(getattr(images, "filename", "") or "<memmap>"), images
    self.num, self.image_shape = _check_array(f"NpyPool {self.path!r}", images)
    return self

  def _rows(self, ids: np.ndarray) -> np.ndarray:
    order = np.argsort(ids, kind="stable")
    out = np.empty((ids.size, *self.image_shape), np.uint8)
    out[order] = self.images[ids[order]]
    if ids.size:  # the labeled store's reads: release their pages too
      self._release(int(ids[order[0]]), int(ids[order[-1]]) + 1)
    return out

  def _range(self, start: int, stop: int) -> np.ndarray:
    out = np.array(self.images[start:stop])  # a copy: the pages are read here
    self._release(start, stop)
    return out

  def _release(self, start: int, stop: int) -> None:
    """Unmap the pages of rows ``[start, stop)`` (they stay in the page cache).

    A memory map's touched pages count in the resident set until the kernel
    reclaims them, so a pass over the pool (or the labeled store's scattered
    reads) would otherwise look as large as the file. The rows were copied
    out already; a later read maps the pages again from the cache.
    """
    mm = getattr(self.images, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
      return
    row = int(np.prod(self.image_shape))
    begin = self.images.offset % mmap.ALLOCATIONGRANULARITY + start * row  # in mm
    first = begin - begin % mmap.PAGESIZE
    end = min(begin + (stop - start) * row, len(mm))
    mm.madvise(mmap.MADV_DONTNEED, first, end - first)


def _as_image(name: str, value: Any, image_shape: tuple[int, int, int] | None, where: str
              ) -> np.ndarray:
  """One record's image as ``[H, W, Ch]`` uint8 (``[H, W]`` is ``Ch = 1``), shape-checked."""
  arr = np.asarray(value)
  if arr.ndim == 2:
    arr = arr[:, :, None]
  if arr.dtype != np.uint8 or arr.ndim != 3 or (
      image_shape is not None and arr.shape != tuple(image_shape)):
    want = f"{tuple(image_shape)}" if image_shape is not None else "[H, W, Ch]"
    raise ValueError(f"{name}: {where} is {arr.dtype} {arr.shape}, expected uint8 {want} "
                     "(every pool image must have one shape).")
  return arr


class TfdsPool(_Source):
  """A ``tfds.data_source`` split: ``len(ds)`` records, ``ds[i][image_key]`` an image.

  Any object with ``__len__`` and ``__getitem__`` returning dicts works (a
  batched ``__getitems__(list)`` is used when it works, as in
  :mod:`msal_jax.data.tfds_source`). ``image_shape`` defaults to that of
  record 0; every record read is checked against it.
  """

  def __init__(self, data_source: Any, *, image_key: str = "image",
               image_shape: tuple[int, int, int] | None = None):
    self.ds, self.image_key = data_source, image_key
    self.num = len(data_source)
    if self.num < 1:
      raise ValueError(f"TfdsPool: {data_source!r} has no records.")
    self._batched = hasattr(data_source, "__getitems__")
    if image_shape is None:
      image_shape = _as_image("TfdsPool", self._image(self.ds[0], 0), None, "record 0").shape
    self.image_shape = tuple(int(d) for d in image_shape)

  def _image(self, record: Any, i: int) -> Any:
    if not hasattr(record, "keys") or self.image_key not in record:
      keys = sorted(record) if hasattr(record, "keys") else type(record).__name__
      raise ValueError(f"TfdsPool: record {i} has features {keys}, not {self.image_key!r}; "
                       "pass image_key.")
    return record[self.image_key]

  def _records(self, ids: Sequence[int]) -> list[Any]:
    if self._batched:
      try:
        return list(self.ds.__getitems__([int(i) for i in ids]))
      except TypeError:  # tfds.testing.mock_data's __getitems__ (see tfds_source)
        self._batched = False
    return [self.ds[int(i)] for i in ids]

  def _rows(self, ids: np.ndarray) -> np.ndarray:
    out = np.empty((ids.size, *self.image_shape), np.uint8)
    for j, (i, record) in enumerate(zip(ids, self._records(ids), strict=True)):
      out[j] = _as_image("TfdsPool", self._image(record, int(i)), self.image_shape,
                         f"record {int(i)}")
    return out


def _decode(path: str, image_shape: tuple[int, int, int], resize: bool) -> np.ndarray:
  """One file as ``[H, W, Ch]`` uint8 (Pillow; ``Ch`` 1 = "L", 3 = "RGB")."""
  from PIL import Image  # imported on first use, as in msal_jax.data.image_folder

  h, w, ch = image_shape
  mode = {1: "L", 3: "RGB"}[ch]
  try:
    with Image.open(path) as im:
      im = im.convert(mode) if im.mode != mode else im.copy()
  except OSError as e:
    raise ValueError(f"{path}: cannot read the image ({e}).") from None
  if im.size != (w, h):
    if not resize:
      raise ValueError(f"{path}: image of {im.size[0]}x{im.size[1]} pixels, expected {w}x{h} "
                       "(image_shape); pass resize=True to resize every image.")
    im = im.resize((w, h), Image.BILINEAR)
  return np.asarray(im, np.uint8).reshape(h, w, ch)


class FolderPool(_Source):
  """Image files (one per pool row, in the order given) decoded with Pillow.

  Decoding runs on a bounded ``ThreadPoolExecutor`` of ``workers`` threads
  (Pillow releases the GIL while it decodes). Images of another size than
  ``image_shape`` are an error unless ``resize=True`` (bilinear, like
  :func:`msal_jax.data.image_folder.read_folder` with an ``image_size``).
  """

  def __init__(self, paths: Sequence[str], image_shape: tuple[int, int, int], *,
               resize: bool = False, workers: int = DEFAULT_WORKERS):
    self.paths = [os.fspath(p) for p in paths]
    self.num = len(self.paths)
    if self.num < 1:
      raise ValueError("FolderPool: no image paths given.")
    shape = tuple(int(d) for d in image_shape)
    if len(shape) != 3 or shape[2] not in (1, 3) or min(shape) < 1:
      raise ValueError(f"FolderPool: image_shape must be (H, W, Ch) with Ch 1 or 3, got "
                       f"{image_shape!r}.")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
      raise ValueError(f"FolderPool: workers must be an int >= 1, got {workers!r}.")
    self.image_shape, self.resize, self.workers = shape, resize, workers
    self._pool = concurrent.futures.ThreadPoolExecutor(workers, "pool-decode")
    weakref.finalize(self, self._pool.shutdown, wait=False)

  def _rows(self, ids: np.ndarray) -> np.ndarray:
    out = np.empty((ids.size, *self.image_shape), np.uint8)
    decoded = self._pool.map(lambda i: _decode(self.paths[i], self.image_shape, self.resize),
                             ids.tolist())
    for j, arr in enumerate(decoded):
      out[j] = arr
    return out


def list_images(folder: str) -> list[str]:
  """The image files directly in ``folder`` (by extension), sorted by name."""
  return [os.path.join(folder, f) for f in sorted(os.listdir(folder))
          if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
          and os.path.isfile(os.path.join(folder, f))]


def open_pool(spec: Any, *, image_shape: tuple[int, int, int] | None = None,
              limit_bytes: int | None = None, image_key: str = "image",
              resize: bool = False, workers: int = DEFAULT_WORKERS) -> _Source:
  """The pool source for ``spec``, in memory when its pixels fit in ``limit_bytes``.

  Args:
    spec: a uint8 ``[N, H, W, Ch]`` numpy array; a ``.npy`` path; a folder of
      image files or a sequence of image paths (needs ``image_shape``); a
      ``tfds.data_source``-like object (``len``, ``[i] -> {image_key: ...}``);
      or a :class:`PoolSource` (returned as it is).
    image_shape: ``(H, W, Ch)``: required for image files, checked for TFDS.
    limit_bytes: pools of at most this many bytes of pixels are read whole into
      an :class:`ArrayPool`; larger ones stay streamed. Default
      :data:`IN_MEMORY_LIMIT_BYTES`; 0 always streams.
    image_key, resize, workers: of :class:`TfdsPool` / :class:`FolderPool`.
  """
  limit = IN_MEMORY_LIMIT_BYTES if limit_bytes is None else limit_bytes
  if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
    raise ValueError(f"open_pool: limit_bytes must be an int >= 0, got {limit_bytes!r}.")
  if isinstance(spec, np.ndarray):
    return ArrayPool(spec)
  if isinstance(spec, _Source):
    return spec
  if isinstance(spec, (str, os.PathLike)) and os.fspath(spec).endswith(".npy"):
    source: _Source = NpyPool(spec)
  elif isinstance(spec, (str, os.PathLike)) or (
      isinstance(spec, Sequence) and all(isinstance(p, (str, os.PathLike)) for p in spec)):
    if isinstance(spec, (str, os.PathLike)):
      if not os.path.isdir(spec):
        raise ValueError(f"open_pool: {os.fspath(spec)!r} is neither a .npy file nor a folder.")
      spec = list_images(os.fspath(spec))
    if image_shape is None:
      raise ValueError("open_pool: image files need image_shape=(H, W, Ch).")
    source = FolderPool(spec, image_shape, resize=resize, workers=workers)
  elif hasattr(spec, "__len__") and hasattr(spec, "__getitem__"):
    source = TfdsPool(spec, image_key=image_key, image_shape=image_shape)
  else:
    raise ValueError(f"open_pool: cannot read a pool from {type(spec).__name__}; give an "
                     "array, a .npy path, image paths or a folder, or a TFDS data source.")
  if image_shape is not None and source.image_shape != tuple(image_shape):
    raise ValueError(f"open_pool: the pool's images are {source.image_shape}, not "
                     f"image_shape {tuple(image_shape)}.")
  if source.nbytes <= limit:
    return ArrayPool(source.read(np.arange(source.num)))
  return source
