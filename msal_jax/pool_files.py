"""A pool on disk: ``.npy`` rows read on demand, and the labeled mask from a mask or ids.

What :func:`msal_jax.pool_query.query` (and ``python -m msal_jax.query``) reads:
:class:`NpyRows` streams a ``.npy`` file of any size in row chunks without a
memory map; :func:`labeled_mask` turns a bool (or 0/1) mask or a list of ids
(array, ``.npy`` or text file) into the pool's ``[N]`` mask. Every bad input is
a ``ValueError`` that names the argument.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


class NpyRows:
  """Rows of a ``.npy`` file, read on demand: ``rows[a:b]`` is a fresh numpy array.

  Like ``np.load(path, mmap_mode="r")`` but with plain reads instead of a
  memory map: the pages read do not stay mapped into the process, so its
  resident memory stays at the chunk being read (a memory map's touched pages
  count in the resident set until the kernel reclaims them).
  """

  def __init__(self, path: str | os.PathLike):
    self.path = os.fspath(path)
    with open(self.path, "rb") as f:
      try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
          shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
          shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
      except ValueError as e:
        raise ValueError(f"{self.path}: not a .npy file ({e}).") from None
      self.offset = f.tell()
    if dtype.hasobject:
      raise ValueError(f"{self.path}: object arrays are not supported.")
    if fortran and len(shape) > 1:
      raise ValueError(f"{self.path}: Fortran-ordered arrays are not supported; save a C-order "
                       "array (np.ascontiguousarray).")
    self.shape, self.dtype = tuple(shape), np.dtype(dtype)
    self.ndim = len(self.shape)
    self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
    expected = self.offset + self._row_bytes * (self.shape[0] if self.shape else 1)
    size = os.path.getsize(self.path)
    if size < expected:
      raise ValueError(f"{self.path}: truncated ({size} bytes, the header promises {expected}).")
    self._file = None

  def __len__(self) -> int:
    return self.shape[0]

  def __array__(self, dtype=None, copy=None):
    out = self[:]
    return out if dtype is None else out.astype(dtype)

  def __getitem__(self, key: slice) -> np.ndarray:
    if not isinstance(key, slice):
      raise TypeError("NpyRows supports row slices only (rows[a:b]).")
    start, stop, step = key.indices(self.shape[0])
    if step != 1:
      raise TypeError("NpyRows supports contiguous row slices only.")
    out = np.empty((max(0, stop - start),) + self.shape[1:], self.dtype)
    self.read_into(start, out)
    return out

  def read_into(self, start: int, out: np.ndarray) -> None:
    """Reads rows ``start : start + len(out)`` into ``out`` (C-contiguous, this dtype).

    What :mod:`msal_jax.streaming` uses to refill its reused chunk buffers
    (no new array per chunk).
    """
    if out.dtype != self.dtype or out.shape[1:] != self.shape[1:] or \
        not out.flags.c_contiguous or not 0 <= start <= start + len(out) <= self.shape[0]:
      raise ValueError(f"{self.path}: cannot read rows {start}:{start + len(out)} of "
                       f"{self.shape} {self.dtype} into a {out.shape} {out.dtype} array.")
    if not out.size:
      return
    if self._file is None:
      self._file = open(self.path, "rb")  # noqa: SIM115 (kept open between chunks)
    self._file.seek(self.offset + start * self._row_bytes)
    view = memoryview(out.reshape(-1).view(np.uint8))
    got = 0
    while got < len(view):
      n = self._file.readinto(view[got:])
      if not n:
        raise ValueError(f"{self.path}: unexpected end of file.")
      got += n

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None


def open_rows(name: str, x: Any) -> Any:
  """A path becomes :class:`NpyRows` (read in chunks later); arrays pass through."""
  if isinstance(x, (str, os.PathLike)):
    if not os.path.exists(x):
      raise ValueError(f"{name}: no such file {os.fspath(x)!r}.")
    return NpyRows(x)
  if not hasattr(x, "shape"):
    x = np.asarray(x)
  return x


def check_float(name: str, x: Any, ndim: int) -> None:
  """Fails unless ``x`` (an array or :class:`NpyRows`) is ``ndim``-D floating point."""
  if len(x.shape) != ndim:
    raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(x.shape)}.")
  if not np.issubdtype(np.dtype(x.dtype), np.floating):
    raise ValueError(f"{name} must be floating point (float16/32/64), got dtype {x.dtype}.")


def load_small(name: str, x: Any) -> np.ndarray:
  """A small input read whole: a ``.npy`` path or an array-like."""
  if isinstance(x, (str, os.PathLike)):
    if not os.path.exists(x):
      raise ValueError(f"{name}: no such file {os.fspath(x)!r}.")
    return np.load(x, allow_pickle=False)
  return np.asarray(x)


def _read_ids(path: str | os.PathLike) -> np.ndarray:
  """Ids from ``.npy`` or text (one per line or comma/space separated; a header is skipped)."""
  if os.fspath(path).endswith(".npy"):
    return load_small("labeled_ids", path).reshape(-1)
  if not os.path.exists(path):
    raise ValueError(f"labeled_ids: no such file {os.fspath(path)!r}.")
  tokens = open(path).read().replace(",", " ").split()
  if tokens and not tokens[0].lstrip("-").isdigit():
    tokens = tokens[1:]  # a header such as "id"
  try:
    return np.array([int(t) for t in tokens], np.int64)
  except ValueError as e:
    raise ValueError(f"labeled_ids: {os.fspath(path)}: not a list of integers ({e}).") from None


def labeled_mask(num: int, labeled: Any = None, labeled_ids: Any = None) -> np.ndarray:
  """The ``[num]`` bool mask from a mask (bool or 0/1) or a list of labeled ids."""
  if labeled is not None and labeled_ids is not None:
    raise ValueError("pass either a labeled mask or labeled ids, not both.")
  if labeled is not None:
    mask = load_small("labeled", labeled)
    if mask.shape != (num,):
      raise ValueError(f"labeled: the mask must have shape ({num},) like the pool, got "
                       f"{mask.shape}.")
    if mask.dtype != np.bool_:
      if not np.issubdtype(mask.dtype, np.integer) or not np.isin(mask, (0, 1)).all():
        raise ValueError(f"labeled: the mask must be boolean or 0/1 integers, got {mask.dtype}.")
      mask = mask.astype(bool)
    return mask
  mask = np.zeros(num, bool)
  if labeled_ids is not None:
    ids = _read_ids(labeled_ids) if isinstance(labeled_ids, (str, os.PathLike)) else \
        np.asarray(labeled_ids).reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
      raise ValueError(f"labeled_ids: ids must be integers, got dtype {ids.dtype}.")
    bad = (ids < 0) | (ids >= num)
    if bad.any():
      raise ValueError(f"labeled_ids: id {int(ids[np.argmax(bad)])} is outside the pool "
                       f"[0, {num}) ({int(bad.sum())} such ids).")
    mask[ids] = True
  return mask
