"""CIFAR-10 and CIFAR-100 in their original "python version" format.

The archives ``cifar-10-python.tar.gz`` and ``cifar-100-python.tar.gz`` (from
https://www.cs.toronto.edu/~kriz/cifar.html) each hold one folder of pickled
batches:

* CIFAR-10, ``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5``
  (the 50,000 training images, in that order) and ``test_batch`` (10,000).
* CIFAR-100, ``cifar-100-python/``: ``train`` (50,000) and ``test`` (10,000).

Each batch is a dict pickled by Python 2, with bytes keys: ``b"data"``, a
``[n, 3072] uint8`` array whose rows hold the 1,024 red, then green, then blue
pixels of a 32x32 image in row-major order, and ``b"labels"`` (CIFAR-10) or
``b"fine_labels"`` (CIFAR-100; also ``b"coarse_labels"``, unused here), a list
of ``n`` ints. The metadata files (``batches.meta``, ``meta``) are not needed.

Where the files may be, in the order they are looked for: ``data_dir`` is the
extracted folder itself; ``data_dir`` holds the extracted folder; ``data_dir``
holds the ``.tar.gz`` archive (read in memory, never extracted to disk).

Completeness: the archive is decompressed whole first, so a truncated or
damaged archive fails gzip's length and CRC-32 check; a truncated pickle fails
to unpickle; a batch whose image and label counts differ, whose rows are not
3,072 bytes, or whose labels are out of range is refused. Every such error is
a ``ValueError`` naming the file (and the archive member).

A pickle can run arbitrary code when loaded: these are read with an unpickler
that builds only plain Python values and numpy arrays.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import pickle
import tarfile
import zlib
from typing import Any, BinaryIO

import numpy as np

try:  # numpy >= 2 moved numpy.core to numpy._core; the pickles name the old module.
  from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
  from numpy.core import multiarray as _multiarray

_PIXELS = 32 * 32 * 3


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where one CIFAR variant keeps its batches.

  Attributes:
    archive: the download's file name.
    folder: the folder inside the archive.
    train: training batches, concatenated in this order.
    test: test batches.
    label_key: the key of the class labels in each batch.
  """

  archive: str
  folder: str
  train: tuple[str, ...]
  test: tuple[str, ...]
  label_key: str

  @property
  def files(self) -> tuple[str, ...]:
    return (*self.train, *self.test)

  def describe(self) -> str:
    """What a data folder must hold, for error messages."""
    return (
        f"{self.archive}, or the folder {self.folder}/ extracted from it (with "
        f"{', '.join(self.files)})"
    )


CIFAR10 = Layout(
    archive="cifar-10-python.tar.gz",
    folder="cifar-10-batches-py",
    train=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test=("test_batch",),
    label_key="labels",
)
CIFAR100 = Layout(
    archive="cifar-100-python.tar.gz",
    folder="cifar-100-python",
    train=("train",),
    test=("test",),
    label_key="fine_labels",
)

# (module, name) pairs a CIFAR pickle may refer to: numpy array reconstruction.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
}


class _ArrayUnpickler(pickle.Unpickler):
  """Builds plain Python values and numpy arrays; refuses any other global."""

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in _ALLOWED_GLOBALS:
      raise pickle.UnpicklingError(
          f"refusing to load {module}.{name}: a CIFAR batch holds only numpy arrays and "
          "Python lists, numbers and strings"
      )
    if module == "_codecs":
      return super().find_class(module, name)
    if module == "numpy":
      return getattr(np, name)
    return getattr(_multiarray, name)


def _unpickle(f: BinaryIO, where: str) -> dict[str, Any]:
  try:
    # Python 2 pickles: str values come back as bytes, numpy arrays as arrays.
    obj = _ArrayUnpickler(f, encoding="bytes").load()
  except Exception as e:  # a damaged pickle can raise almost anything
    raise ValueError(
        f"{where}: cannot unpickle ({type(e).__name__}: {e}); the file is truncated or "
        "corrupt, or not a CIFAR batch. Copy or download it again."
    ) from e
  if not isinstance(obj, dict):
    raise ValueError(f"{where}: holds a {type(obj).__name__}, not a CIFAR batch (a dict).")
  return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _batch_arrays(
    batch: dict[str, Any], where: str, label_key: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
  """``(images [n, 32, 32, 3] uint8, labels [n] int32)`` of one unpickled batch."""
  for key in ("data", label_key):
    if key not in batch:
      raise ValueError(
          f"{where}: no {key!r} entry (it has {', '.join(sorted(batch))}); is it a batch of "
          "this dataset?"
      )
  data = batch["data"]
  if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or (
      data.shape[1] != _PIXELS
  ):
    raise ValueError(
        f"{where}: 'data' is {type(data).__name__} {getattr(data, 'dtype', '')} "
        f"{getattr(data, 'shape', '')}, expected a uint8 array [n, {_PIXELS}]."
    )
  try:
    labels = np.asarray(batch[label_key], np.int64)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{where}: {label_key!r} is not a list of integers ({e}).") from e
  if labels.shape != (data.shape[0],):
    raise ValueError(
        f"{where}: {data.shape[0]} images but {label_key!r} holds {labels.size} labels; the "
        "file is damaged."
    )
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(
        f"{where}: label {labels.max() if labels.max() >= num_classes else labels.min()} "
        f"outside 0..{num_classes - 1}; is it a batch of this dataset?"
    )
  # Rows are planar RGB (R 1,024, G 1,024, B 1,024); images are [H, W, Ch].
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels.astype(np.int32)


def _folder(data_dir: str, layout: Layout) -> str | None:
  """The folder holding the batches (``data_dir`` or its sub-folder), if any."""
  for folder in (data_dir, os.path.join(data_dir, layout.folder)):
    if any(os.path.isfile(os.path.join(folder, f)) for f in layout.files):
      return folder
  return None


def holds_files(data_dir: str | None, layout: Layout) -> bool:
  """Whether ``data_dir`` holds the archive or any batch of ``layout``."""
  if not data_dir or not os.path.isdir(data_dir):
    return False
  return _folder(data_dir, layout) is not None or os.path.isfile(
      os.path.join(data_dir, layout.archive)
  )


def _read_archive(path: str, layout: Layout) -> dict[str, dict[str, Any]]:
  """The unpickled batches of ``layout.files`` in the archive at ``path``."""
  with open(path, "rb") as f:
    raw = f.read()
  try:
    # Whole, not streamed: only reading to the end checks gzip's length and CRC-32.
    raw = gzip.decompress(raw)
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise ValueError(
        f"{path}: cannot decompress ({e}); the archive is truncated or corrupt. Download it "
        "again."
    ) from e
  batches: dict[str, dict[str, Any]] = {}
  wanted = {f"{layout.folder}/{name}": name for name in layout.files}
  try:
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
      for member in tar:
        name = wanted.get(member.name.removeprefix("./"))
        if name is None or not member.isfile():
          continue
        handle = tar.extractfile(member)
        assert handle is not None  # isfile() above
        batches[name] = _unpickle(handle, f"{path}: {member.name}")
  except tarfile.TarError as e:
    raise ValueError(f"{path}: not a readable tar archive ({e}); download it again.") from e
  missing = [name for name in layout.files if name not in batches]
  if missing:
    raise ValueError(
        f"{path}: the archive lacks {', '.join(f'{layout.folder}/{m}' for m in missing)}; is "
        "it the complete original download?"
    )
  return batches


def load_cifar_dir(
    data_dir: str, layout: Layout, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Reads a CIFAR variant from its folder or archive (see the module docstring).

  Args:
    data_dir: the extracted folder, its parent, or the folder of the archive.
    layout: :data:`CIFAR10` or :data:`CIFAR100`.
    num_classes: labels must lie in ``0 .. num_classes - 1``.

  Returns:
    ``(train_x [N, 32, 32, 3] uint8, train_y [N] int32, test_x [M, 32, 32, 3]
    uint8, test_y [M] int32)``, in the files' order.

  Raises:
    FileNotFoundError: the folder, or one batch of an extracted folder, is
      missing.
    ValueError: a file is truncated, corrupt or inconsistent; the message names it.
  """
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(
        f"data directory {data_dir!r} does not exist; it must hold {layout.describe()}."
    )
  folder = _folder(data_dir, layout)
  archive = os.path.join(data_dir, layout.archive)
  if folder is not None:
    missing = [f for f in layout.files if not os.path.isfile(os.path.join(folder, f))]
    if missing:
      raise FileNotFoundError(
          f"{folder}: missing {', '.join(missing)} (of {', '.join(layout.files)}); the folder "
          f"is incompletely extracted. Extract {layout.archive} again."
      )
    batches = {}
    for name in layout.files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        batches[name] = _unpickle(f, path)
    where = {name: os.path.join(folder, name) for name in layout.files}
  elif os.path.isfile(archive):
    batches = _read_archive(archive, layout)
    where = {name: f"{archive}: {layout.folder}/{name}" for name in layout.files}
  else:
    raise FileNotFoundError(f"{data_dir}: found none of {layout.describe()}.")
  out = []
  for split in (layout.train, layout.test):
    arrays = [
        _batch_arrays(batches[name], where[name], layout.label_key, num_classes) for name in split
    ]
    out += [np.concatenate([a[0] for a in arrays]), np.concatenate([a[1] for a in arrays])]
  train_x, train_y, test_x, test_y = out
  return train_x, train_y, test_x, test_y
