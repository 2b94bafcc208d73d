"""A 1-D device mesh and pool arrays placed on it, their rows split over its devices.

Host arrays (numpy, memmaps, anything sliceable) are placed with
``jax.make_array_from_callback``: each process reads only the rows of its own
devices, so every process of a ``jax.distributed`` run may pass the same
memory-mapped file. Used by :mod:`msal_jax.parallel` and
:mod:`msal_jax.streaming`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

DEFAULT_AXIS = "data"


def ndim(x: Any) -> int:
  """Rank of an array-like without reading it (``np.ndim`` would convert it)."""
  return len(np.shape(x))


def dtype_of(x: Any) -> np.dtype:
  """dtype of an array-like without reading it."""
  return np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype


def make_mesh(devices: Sequence[jax.Device] | None = None, axis_name: str = DEFAULT_AXIS) -> Mesh:
  """A 1-D mesh over ``devices`` (default: every device of every process)."""
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.array(devices), (axis_name,))


def mesh_axis(mesh: Mesh) -> str:
  """The name of the one axis of ``mesh``; a ``ValueError`` for anything else."""
  if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
    raise ValueError(f"mesh must be a 1-D jax.sharding.Mesh, got {mesh!r}.")
  return mesh.axis_names[0]


def padded_size(num: int, mesh: Mesh) -> int:
  """Rows after padding ``num`` to a multiple of the mesh size (at least one per device)."""
  return mesh.size * max(1, math.ceil(num / mesh.size))


def row_spec(rank: int, row_axis: int | None, axis: str) -> P:
  """The ``PartitionSpec`` of a rank-``rank`` array split along ``row_axis`` (None: replicated)."""
  if row_axis is None:
    return P()
  return P(*([None] * row_axis + [axis] + [None] * (rank - row_axis - 1)))


def shard_pool(x: ArrayLike, mesh: Mesh, *, rows: int | None = None, row_axis: int = 0,
               fill: Any = 0) -> jax.Array:
  """Places ``x`` with its ``row_axis`` split over the mesh, padded to ``rows`` with ``fill``.

  Host arrays (numpy, ``np.memmap``, anything sliceable) are read one device
  block at a time (``jax.make_array_from_callback``), so a process never
  copies more than its own devices' rows. ``rows`` defaults to
  :func:`padded_size`; a ``jax.Array`` already of that shape and sharding is
  returned as is.
  """
  axis = mesh_axis(mesh)
  shape = tuple(np.shape(x))
  num = shape[row_axis]
  rows = padded_size(num, mesh) if rows is None else rows
  out_shape = shape[:row_axis] + (rows,) + shape[row_axis + 1:]
  sharding = NamedSharding(mesh, row_spec(len(shape), row_axis, axis))
  if isinstance(x, jax.Array):
    if x.shape == out_shape and x.sharding.is_equivalent_to(sharding, len(shape)):
      return x
    if not x.is_fully_addressable:  # a global array: pad and reshard inside one program
      pad = [(0, 0)] * len(shape)
      pad[row_axis] = (0, rows - num)
      return jax.jit(lambda a: jnp.pad(a, pad, constant_values=fill),
                     out_shardings=sharding)(x)
  dtype = jax.dtypes.canonicalize_dtype(dtype_of(x))

  def block(index):
    index = tuple(index)
    rows_slice = index[row_axis]
    start, stop, _ = rows_slice.indices(rows)
    real = slice(min(start, num), min(stop, num))
    src = np.asarray(x[(slice(None),) * row_axis + (real,)], dtype=dtype)
    rest = index[:row_axis] + (slice(None),) + index[row_axis + 1:]
    src = src[rest]
    if src.shape[row_axis] < stop - start:
      pad = [(0, 0)] * src.ndim
      pad[row_axis] = (0, stop - start - src.shape[row_axis])
      src = np.pad(src, pad, constant_values=fill)
    return src

  return jax.make_array_from_callback(out_shape, sharding, block, dtype=dtype)


def replicate(x: ArrayLike, mesh: Mesh) -> jax.Array:
  """A small array (the prototypes) on every device of the mesh."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return x  # already a global array
  host = np.asarray(x, dtype=jax.dtypes.canonicalize_dtype(dtype_of(x)))
  return jax.make_array_from_callback(host.shape, NamedSharding(mesh, P()), lambda i: host[i])


def to_host(x: jax.Array) -> np.ndarray:
  """A (possibly multi-process) array as numpy on this host."""
  if x.is_fully_addressable or x.is_fully_replicated:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))
