"""MNIST / Fashion-MNIST in their original idx format (gzip-compressed or raw).

An idx file starts with a 4-byte big-endian magic number: two zero bytes, a
type byte (``0x08`` = unsigned byte) and the number of dimensions (``0x803`` =
2051 for ``[count, rows, cols]`` images, ``0x801`` = 2049 for ``[count]``
labels), then one 4-byte big-endian size per dimension, then the data in
row-major order, one byte per element.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08


def read_idx(path: str, ndim: int | None = None) -> np.ndarray:
  """Reads one unsigned-byte idx file, gzip-compressed or raw (told by content).

  Args:
    path: the file.
    ndim: the number of dimensions the file must have (3 for images, 1 for
      labels), or None for any.

  Returns:
    ``uint8`` array of the shape the header gives, e.g. ``[N, 28, 28]`` or
    ``[N]``; a fresh writable array.

  Raises:
    FileNotFoundError: the file does not exist.
    ValueError: naming the file, when it is a corrupt or truncated gzip, has a
      wrong magic number, or holds more or fewer bytes than its header says.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file.")
  with open(path, "rb") as f:
    raw = f.read()
  if raw[:2] == _GZIP_MAGIC:
    try:
      raw = gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
      raise ValueError(
          f"{path}: cannot decompress ({e}); the file is truncated or corrupt. Copy or "
          "download it again."
      ) from e
  magic = raw[:4].hex() if len(raw) >= 4 else f"{raw.hex()} (short file)"
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE or raw[3] == 0:
    raise ValueError(
        f"{path}: not an unsigned-byte idx file: bad magic number 0x{magic}, expected "
        "0x00000803 (images) or 0x00000801 (labels)."
    )
  if ndim is not None and raw[3] != ndim:
    raise ValueError(
        f"{path}: bad magic number 0x{magic}: an idx file with {raw[3]} dimensions, expected "
        f"{ndim} (magic 0x{0x800 + ndim:08x}); is it the right file?"
    )
  header = 4 + 4 * raw[3]
  if len(raw) < header:
    raise ValueError(
        f"{path}: truncated header ({len(raw)} bytes, expected {header}); the file is "
        "truncated or corrupt."
    )
  dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=raw[3], offset=4))
  expected = header + math.prod(dims)
  if len(raw) != expected:
    raise ValueError(
        f"{path}: header says {dims} ({expected} bytes in all) but the file has {len(raw)} "
        "bytes; the file is truncated or not the original."
    )
  return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()


def _find(data_dir: str, stem: str) -> str | None:
  """Path of ``stem.gz`` (preferred) or ``stem`` in ``data_dir``; None if neither exists."""
  for name in (stem + ".gz", stem):
    path = os.path.join(data_dir, name)
    if os.path.isfile(path):
      return path
  return None


def holds_idx_files(data_dir: str | None) -> bool:
  """Whether ``data_dir`` holds at least one of the four idx files (``.gz`` or raw).

  At least one, not all four: a folder with some of them is meant as local
  files, and reading it then names the missing ones.
  """
  if not data_dir or not os.path.isdir(data_dir):
    return False
  return any(_find(data_dir, stem) for stem in FILES)


def load_idx_dir(
    data_dir: str, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Reads the four MNIST-layout idx files of a folder.

  Args:
    data_dir: folder with ``train-images-idx3-ubyte.gz``,
      ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` and
      ``t10k-labels-idx1-ubyte.gz`` (each may also be uncompressed, without
      ``.gz``).
    num_classes: labels must lie in ``0 .. num_classes - 1``.

  Returns:
    ``(train_x [N, H, W, 1] uint8, train_y [N] int32, test_x [M, H, W, 1]
    uint8, test_y [M] int32)``.

  Raises:
    FileNotFoundError: the folder or one of the files is missing.
    ValueError: a file is corrupt (see :func:`read_idx`), the image and label
      counts differ, or a label is out of range; the message names the file.
  """
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(
        f"data directory {data_dir!r} does not exist; it must hold "
        f"{', '.join(s + '.gz' for s in FILES)} (or the same names without .gz)."
    )
  paths = {stem: _find(data_dir, stem) for stem in FILES}
  missing = [stem for stem, path in paths.items() if path is None]
  if missing:
    raise FileNotFoundError(
        f"{data_dir}: missing {', '.join(s + '.gz' for s in missing)} (or the same names "
        "without .gz)."
    )
  out = []
  for images_stem, labels_stem in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
    images_path, labels_path = paths[images_stem], paths[labels_stem]
    images, labels = read_idx(images_path, ndim=3), read_idx(labels_path, ndim=1)
    if images.shape[0] != labels.shape[0]:
      raise ValueError(
          f"{images_path} has {images.shape[0]} images but {labels_path} has "
          f"{labels.shape[0]} labels; the two files do not belong together."
      )
    if labels.size and labels.max() >= num_classes:
      raise ValueError(
          f"{labels_path}: label {labels.max()} outside 0..{num_classes - 1}; is it a labels "
          "file of this dataset?"
      )
    out += [images[..., None], labels.astype(np.int32)]
  train_x, train_y, test_x, test_y = out
  return train_x, train_y, test_x, test_y
