"""SVHN (cropped digits, "format 2") in its original MATLAB files.

``train_32x32.mat`` (73,257 digits) and ``test_32x32.mat`` (26,032), from
http://ufldl.stanford.edu/housenumbers/, are MATLAB v5 files with two
variables: ``X``, ``[32, 32, 3, n] uint8`` images, and ``y``, ``[n, 1]``
labels in ``1 .. 10`` where ``10`` is the digit 0. Labels become ``y % 10``
(digit ``d`` has label ``d``), as TFDS's ``svhn_cropped`` does. The extra
split (``extra_32x32.mat``) is not used: the paper's pool is the training split.

Completeness: ``scipy.io.loadmat`` fails on a truncated or corrupt file (the
error is re-raised as a ``ValueError`` naming the file), and the two
variables must agree in count and hold labels in ``1 .. 10``.
"""

from __future__ import annotations

import os

import numpy as np

TRAIN = "train_32x32.mat"
TEST = "test_32x32.mat"
FILES = (TRAIN, TEST)


def read_mat(path: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads one SVHN ``.mat`` file.

  Returns:
    ``(images [n, 32, 32, 3] uint8, labels [n] int32)``, labels in ``0 .. 9``.

  Raises:
    FileNotFoundError: the file does not exist.
    ValueError: naming the file, when it cannot be read (truncated, corrupt, not
      MATLAB v5) or its variables are not SVHN's.
  """
  import scipy.io  # imported here: slow, and only this source needs it

  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file.")
  try:
    mat = scipy.io.loadmat(path, variable_names=("X", "y"))
  except NotImplementedError as e:  # scipy's answer to MATLAB v7.3 (HDF5) files
    raise ValueError(
        f"{path}: a MATLAB v7.3 (HDF5) file ({e}); the original SVHN files are MATLAB v5. "
        "Download them again."
    ) from e
  except Exception as e:  # scipy raises OSError, ValueError, IndexError, ... on bad files
    raise ValueError(
        f"{path}: cannot read it as a MATLAB file ({type(e).__name__}: {e}); the file is "
        "truncated or corrupt. Download it again."
    ) from e
  for key in ("X", "y"):
    if key not in mat:
      raise ValueError(f"{path}: no variable {key!r}; is it an SVHN *_32x32.mat file?")
  x, y = mat["X"], mat["y"]
  if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
    raise ValueError(
        f"{path}: X is {x.dtype} {x.shape}, expected uint8 [32, 32, 3, n]; is it an SVHN "
        "*_32x32.mat file?"
    )
  labels = np.asarray(y).reshape(-1)
  if labels.size != x.shape[3]:
    raise ValueError(
        f"{path}: {x.shape[3]} images but {labels.size} labels; the file is damaged."
    )
  if labels.size and (
      not np.array_equal(labels, np.round(labels)) or labels.min() < 1 or labels.max() > 10
  ):
    raise ValueError(
        f"{path}: labels must be integers in 1..10 (10 = the digit 0), found "
        f"[{labels.min()}, {labels.max()}]."
    )
  images = np.ascontiguousarray(np.moveaxis(x, 3, 0))  # [n, 32, 32, 3]
  return images, (labels.astype(np.int64) % 10).astype(np.int32)


def holds_files(data_dir: str | None) -> bool:
  """Whether ``data_dir`` holds either of the two ``.mat`` files."""
  if not data_dir or not os.path.isdir(data_dir):
    return False
  return any(os.path.isfile(os.path.join(data_dir, f)) for f in FILES)


def load_svhn_dir(data_dir: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Reads ``train_32x32.mat`` and ``test_32x32.mat`` from a folder.

  Returns:
    ``(train_x [N, 32, 32, 3] uint8, train_y [N] int32, test_x [M, 32, 32, 3]
    uint8, test_y [M] int32)``.

  Raises:
    FileNotFoundError: the folder or a file is missing.
    ValueError: a file is corrupt (see :func:`read_mat`).
  """
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(
        f"data directory {data_dir!r} does not exist; it must hold {TRAIN} and {TEST}."
    )
  missing = [f for f in FILES if not os.path.isfile(os.path.join(data_dir, f))]
  if missing:
    raise FileNotFoundError(f"{data_dir}: missing {', '.join(missing)} (needs {TRAIN}, {TEST}).")
  train_x, train_y = read_mat(os.path.join(data_dir, TRAIN))
  test_x, test_y = read_mat(os.path.join(data_dir, TEST))
  return train_x, train_y, test_x, test_y
