"""An image folder with one sub-folder per class, read into ``uint8`` arrays (or streamed).

Layout::

  root/train/<class>/*.png   the pool, labeled by sub-folder
  root/unlabeled/*.png       pool samples without a label yet (optional)
  root/test/<class>/*.png    the test set (``val`` also works)

:func:`read_folder` lists and decodes the files (PIL, imported on first use)
and returns plain arrays; :func:`msal_jax.data.custom.load_folder` turns them
into a :class:`~msal_jax.data.Dataset`. Pool ids run through ``train`` by
class (in class order) and file name, then ``unlabeled``.

A pool whose pixels (``N * H * W * Ch``, known from the file list and the
first image's size or ``image_size``, without decoding) are more than
``in_memory_limit`` bytes is not decoded: its ``pool_images`` is a
:class:`msal_jax.pool_source.FolderPool` over the same files in the same
order, which the loop streams (the test set is still decoded).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from msal_jax import pool_source

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")


@dataclasses.dataclass(frozen=True)
class FolderImages:
  """What :func:`read_folder` finds: images ``[N, H, W, Ch]`` / ``[M, H, W, Ch]`` uint8,
  ``int32`` labels (``-1`` for ``unlabeled/``), the class names, the pool's paths
  relative to the root (``/``-separated). ``pool_images`` is a
  :class:`~msal_jax.pool_source.FolderPool` when the pool is not decoded."""

  pool_images: np.ndarray | pool_source.FolderPool
  pool_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: tuple[str, ...]
  pool_paths: list[str]


def _list_images(folder: str) -> list[str]:
  return sorted(
      f for f in os.listdir(folder)
      if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
      and os.path.isfile(os.path.join(folder, f))
  )


def _class_folders(split_dir: str) -> list[str]:
  return sorted(d for d in os.listdir(split_dir)
                if not d.startswith(".") and os.path.isdir(os.path.join(split_dir, d)))


def _open_image(root: str, rel: str):
  from PIL import Image  # imported here: no I/O or heavy imports at import time

  try:
    return Image.open(os.path.join(root, rel))
  except OSError as e:
    raise ValueError(f"{os.path.join(root, rel)}: cannot read the image ({e}).") from None


def _size_error(root: str, rel: str, size: tuple[int, int], first: str,
                first_size: tuple[int, int]) -> ValueError:
  """Images of two sizes without an ``image_size`` (sizes as PIL's ``(W, H)``)."""
  return ValueError(
      f"{os.path.join(root, rel)}: image of {size[0]}x{size[1]} pixels, but "
      f"{first} has {first_size[0]}x{first_size[1]}: give an image size to resize "
      "every image to (data.image_size=(H, W))."
  )


def _headers(root: str, rel_paths: Sequence[str], *, modes: bool, size: tuple[int, int] | None
             ) -> tuple[bool, int | None]:
  """One pass over the files' headers (no decoding): whether every image is grayscale
  (``modes``), and the index of the first image whose PIL size is not ``size``."""
  gray, odd = True, None
  for i, rel in enumerate(rel_paths):
    with _open_image(root, rel) as im:
      gray = gray and im.mode in ("1", "L", "I", "I;16", "F")
      if size is not None and odd is None and im.size != size:
        odd = i
    if not modes and (size is None or odd is not None):
      break
  return gray, odd


def _read_images(root: str, rel_paths: Sequence[str], image_size: tuple[int, int] | None,
                 channels: int | None) -> np.ndarray:
  from PIL import Image  # imported here: no I/O or heavy imports at import time

  if channels is None:  # a first pass over the headers only (no decoding)
    channels = 1 if _headers(root, rel_paths, modes=True, size=None)[0] else 3
  if channels not in (1, 3):
    raise ValueError(f"data.channels must be 1 or 3, got {channels!r}.")
  mode = "L" if channels == 1 else "RGB"
  size = None if image_size is None else (int(image_size[1]), int(image_size[0]))  # PIL: (W, H)
  out = None
  for i, rel in enumerate(rel_paths):
    with _open_image(root, rel) as im:
      try:
        im = im.convert(mode) if im.mode != mode else im.copy()
      except OSError as e:
        raise ValueError(f"{os.path.join(root, rel)}: cannot decode the image ({e}).") from None
    if size is not None and im.size != size:
      im = im.resize(size, Image.BILINEAR)
    arr = np.asarray(im, np.uint8).reshape(im.size[1], im.size[0], channels)
    if out is None:
      out = np.empty((len(rel_paths), *arr.shape), np.uint8)
    elif arr.shape != out.shape[1:]:
      raise _size_error(root, rel, (arr.shape[1], arr.shape[0]), rel_paths[0],
                        (out.shape[2], out.shape[1]))
    out[i] = arr
  assert out is not None  # rel_paths is never empty here
  return out


def _test_split(root: str) -> str:
  """``"test"`` or ``"val"``, after checking that ``root`` holds it and ``train``."""
  if not os.path.isdir(root):
    raise FileNotFoundError(f"data.dir: image folder {root!r} does not exist.")
  train_dir = os.path.join(root, "train")
  test_name = next((d for d in ("test", "val") if os.path.isdir(os.path.join(root, d))), None)
  if not os.path.isdir(train_dir) or test_name is None:
    raise FileNotFoundError(
        f"data.dir: {root!r} must hold train/<class>/ and test/<class>/ (or val/<class>/) "
        f"folders of images (and optionally unlabeled/); it holds: "
        f"{', '.join(sorted(os.listdir(root))) or 'nothing'}."
    )
  return test_name


def _class_index(root: str, test_name: str, classes: dict[str, list[str]],
                 class_names: Sequence[str] | None) -> tuple[tuple[str, ...], dict[str, int]]:
  """The class list (default: every sub-folder name, sorted) and ``{name: index}``."""
  if class_names is None:
    class_names = sorted(set(classes["train"]) | set(classes[test_name]))
  class_names = tuple(str(c) for c in class_names)
  index = {c: i for i, c in enumerate(class_names)}
  for split in ("train", test_name):
    extra = [c for c in classes[split] if c not in index]
    if extra:
      raise ValueError(f"{root}/{split}: class folders {extra} are not in class_names "
                       f"{list(class_names)}.")
  return class_names, index


def _split_files(root: str, split: str, classes: list[str], index: dict[str, int]
                 ) -> tuple[list[str], list[int]]:
  """The image paths of ``split`` relative to ``root``, by class then name, and their labels."""
  paths, labels = [], []
  for c in sorted(classes, key=index.__getitem__):  # in class order
    files = _list_images(os.path.join(root, split, c))
    paths += [os.path.join(split, c, f) for f in files]
    labels += [index[c]] * len(files)
  return paths, labels


def _unlabeled_files(root: str) -> list[str]:
  unlabeled_dir = os.path.join(root, "unlabeled")
  if not os.path.isdir(unlabeled_dir):
    return []
  return [os.path.join("unlabeled", f) for f in _list_images(unlabeled_dir)]


def read_folder(root: str, *, image_size: tuple[int, int] | None = None,
                channels: int | None = None,
                class_names: Sequence[str] | None = None,
                in_memory_limit: int | None = None) -> FolderImages:
  """The images, labels and pool paths of an image folder (layout above).

  Arguments as in :func:`msal_jax.data.custom.load_folder`, which documents
  them and the errors. A pool of more than ``in_memory_limit`` bytes of pixels
  (``None``: :data:`msal_jax.pool_source.IN_MEMORY_LIMIT_BYTES`; 0: always) is
  a :class:`~msal_jax.pool_source.FolderPool`: nothing of it is decoded here,
  its file headers are checked for one size (without ``image_size``).
  """
  limit = pool_source.in_memory_limit(in_memory_limit, "data.in_memory_limit")
  root = os.path.expanduser(root)
  test_name = _test_split(root)
  classes = {split: _class_folders(os.path.join(root, split)) for split in ("train", test_name)}
  class_names, index = _class_index(root, test_name, classes, class_names)
  pool_paths, pool_labels = _split_files(root, "train", classes["train"], index)
  extra = _unlabeled_files(root)
  pool_paths += extra
  pool_labels += [-1] * len(extra)
  test_paths, test_labels = _split_files(root, test_name, classes[test_name], index)
  if not pool_paths:
    raise ValueError(f"{root}: no images in train/<class>/ or unlabeled/.")
  if not test_paths:
    raise ValueError(f"{root}: no images in {test_name}/<class>/.")
  every = pool_paths + test_paths
  if image_size is None:
    with _open_image(root, pool_paths[0]) as im:
      size = im.size  # PIL: (W, H)
  else:
    size = (int(image_size[1]), int(image_size[0]))
  odd = None
  if channels is None:  # the header pass in-memory reading makes too, done once here
    gray, odd = _headers(root, every, modes=True, size=None if image_size else size)
    channels = 1 if gray else 3
  if channels not in (1, 3):
    raise ValueError(f"data.channels must be 1 or 3, got {channels!r}.")
  n = len(pool_paths)
  labels = dict(pool_labels=np.asarray(pool_labels, np.int32),
                test_labels=np.asarray(test_labels, np.int32), class_names=class_names,
                pool_paths=[p.replace(os.sep, "/") for p in pool_paths])
  if n * size[0] * size[1] * channels <= limit:  # in memory, as always
    both = _read_images(root, every, image_size, channels)
    return FolderImages(pool_images=both[:n], test_images=both[n:], **labels)
  if image_size is None:  # one size for every image, checked now rather than mid-run
    if odd is None and len(every) > 1:
      odd = _headers(root, every, modes=False, size=size)[1]
    if odd is not None:
      with _open_image(root, every[odd]) as im:
        raise _size_error(root, every[odd], im.size, pool_paths[0], size)
  pool = pool_source.FolderPool([os.path.join(root, p) for p in pool_paths],
                                (size[1], size[0], channels), resize=image_size is not None)
  return FolderImages(pool_images=pool, test_images=_read_images(root, test_paths, image_size,
                                                                 channels), **labels)
