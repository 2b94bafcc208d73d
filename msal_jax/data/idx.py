"""MNIST / Fashion-MNIST in their original idx format (``.gz`` or raw)."""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


def read_idx(path: str) -> np.ndarray:
  """Reads one idx file of unsigned bytes (magic ``0x0000080N``, N dims).

  Raises:
    ValueError: naming the file when it is corrupt, truncated, too long, or
      not an unsigned-byte idx file.
  """
  try:
    if path.endswith(".gz"):
      with gzip.open(path, "rb") as f:
        raw = f.read()
    else:
      with open(path, "rb") as f:
        raw = f.read()
  except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
    raise ValueError(f"{path}: cannot decompress ({e}); the file is truncated or corrupt.") from e
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
    raise ValueError(
        f"{path}: not an unsigned-byte idx file (magic {raw[:4].hex() or 'missing'}, "
        "expected 0000080N)."
    )
  ndim = raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise ValueError(f"{path}: truncated header ({len(raw)} bytes).")
  dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
  expected = header + int(np.prod(dims))
  if len(raw) != expected:
    raise ValueError(
        f"{path}: header says {dims} ({expected} bytes in all) but the file has {len(raw)} "
        "bytes; the file is truncated or not the original."
    )
  return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _find(data_dir: str, stem: str) -> str:
  for name in (stem + ".gz", stem):
    path = os.path.join(data_dir, name)
    if os.path.isfile(path):
      return path
  raise FileNotFoundError(f"{data_dir}: missing {stem}.gz (or {stem}).")


def has_idx_files(data_dir: str | None) -> bool:
  """Whether ``data_dir`` holds all four idx files (``.gz`` or raw)."""
  if data_dir is None:
    return False
  return all(
      any(os.path.isfile(os.path.join(data_dir, stem + ext)) for ext in (".gz", ""))
      for stem in FILES
  )


def load_idx_dir(
    data_dir: str, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """``(train_x [N,H,W,1] uint8, train_y [N] int32, test_x, test_y)`` from a folder."""
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(
        f"data directory {data_dir!r} does not exist; it must hold "
        f"{', '.join(s + '.gz' for s in FILES)}."
    )
  out = []
  for images_stem, labels_stem in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
    images_path, labels_path = _find(data_dir, images_stem), _find(data_dir, labels_stem)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
      raise ValueError(f"{images_path}: expected 3 dims (count, rows, cols), got {images.shape}.")
    if labels.ndim != 1:
      raise ValueError(f"{labels_path}: expected 1 dim (count), got {labels.shape}.")
    if images.shape[0] != labels.shape[0]:
      raise ValueError(
          f"{images_path} has {images.shape[0]} images but {labels_path} has "
          f"{labels.shape[0]} labels."
      )
    if labels.size and labels.max() >= num_classes:
      raise ValueError(f"{labels_path}: label {labels.max()} outside 0..{num_classes - 1}.")
    out += [images[..., None], labels.astype(np.int32)]
  return tuple(out)
