"""The :class:`msal_jax.train.Trainer`'s programs over a 1-D device mesh.

**Training is data-parallel through shardings.** The train step is the
one-device step, jitted with ``in_shardings``/``out_shardings``: the state,
the training images and labels and the key replicated (``P()``), the batch's
index and weight vectors split over the mesh axis. The batch is one logical
array, so BatchNorm's statistics are over the global batch and XLA reduces the
gradients (an all-reduce it inserts; no ``pmap``, no ``psum`` here). The
arithmetic is the one-device step's up to the order of the reductions.

A batch that does not divide the device count is padded to
:func:`global_batch` rows by :func:`pad_batches` with zero-weight copies of
the batch's own first samples. They add nothing to the loss or the gradient,
but they do pass through BatchNorm (as the last batch's zero-weight tail does
on one device), so such a step equals the one-device step of the *same
padded batch*, not the unpadded one.

**Pool inference runs on each device's own rows.** The pool is placed once
with :func:`msal_jax.placement.shard_pool` (rows padded with zeros to a
multiple of the device count); a ``jax.shard_map`` program runs, on every
device, the one-device eval (or MC) step over its rows in fixed-size blocks
(``jax.lax.map``), so no image crosses devices. Outputs keep the pool's
padded rows and sharding (rows ``>= N`` are padding).

The MC-dropout passes draw the same masks as :meth:`Trainer.predict_mc` on one
device: there a batch ``c`` of ``eval_batch_size`` rows (rows ``[c*B, c*B+B)``)
gets the keys ``split(fold_in(key, c), passes)`` and dropout's mask depends on
a row's position in that batch. So on the mesh each device runs *those*
batches, the ones that overlap its rows, each at full size ``B`` with rows it
does not hold filled in from its own (eval-mode outputs are per row, so the
filler changes nothing), and keeps its rows' outputs. A device runs at most
``ceil(R / B) + 1`` batches for its ``R`` rows: keep ``eval_batch_size`` well
below ``R`` for the work to split evenly. The deterministic pass has no such
constraint and runs ``ceil(R / b)`` blocks of ``b = min(eval_batch_size, R)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from msal_jax.placement import mesh_axis, padded_size


def check_mesh(mesh: Any) -> str:
  """The axis name of a 1-D mesh with an Auto axis; a ``ValueError`` for anything else.

  The train step relies on sharding propagation (the batch gather from
  replicated images); an Explicit axis (``jax.make_mesh``'s default) would
  need every such op annotated.
  """
  axis = mesh_axis(mesh)
  if mesh.axis_types[0] != AxisType.Auto:
    raise ValueError(
        f"Trainer: mesh axis {axis!r} is {mesh.axis_types[0]}; pass an Auto axis "
        "(msal_jax.placement.make_mesh, or jax.make_mesh(..., axis_types=(AxisType.Auto,))).")
  return axis


def global_batch(batch_size: int, mesh: Mesh) -> int:
  """Rows of one train step on ``mesh``: ``batch_size`` rounded up to a multiple of its size."""
  return padded_size(batch_size, mesh)


def pad_batches(idx: np.ndarray, weight: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
  """``[S, B]`` batches -> ``[S, size]``: columns ``B..size-1`` repeat the first ones at weight 0.

  >>> idx, w = pad_batches(np.array([[5, 6, 7]]), np.array([[1., 1., 0.]]), 5)
  >>> idx.tolist(), w.tolist()
  ([[5, 6, 7, 5, 6]], [[1.0, 1.0, 0.0, 0.0, 0.0]])
  """
  steps, batch = idx.shape
  if size < batch:
    raise ValueError(f"pad_batches: size {size} is below the batch size {batch}.")
  cols = np.arange(size) % batch
  pad = np.zeros((steps, size - batch), weight.dtype)
  return idx[:, cols], np.concatenate([weight, pad], axis=1)


def mesh_batches(idx: np.ndarray, weight: np.ndarray, mesh: Mesh) -> Iterator[tuple[Any, Any]]:
  """Each step's ``(idx, weight)`` of ``[S, B]`` host batches, padded and split over the mesh."""
  idx, weight = pad_batches(idx, weight, global_batch(idx.shape[1], mesh))
  data = rows_sharded(mesh)
  for step_idx, step_weight in zip(idx, weight, strict=True):
    yield put(step_idx, data), put(step_weight, data)


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array."""
  return NamedSharding(mesh, P())


def rows_sharded(mesh: Mesh, row_axis: int = 0) -> NamedSharding:
  """Axis ``row_axis`` split over the mesh's one axis."""
  return NamedSharding(mesh, P(*([None] * row_axis), mesh_axis(mesh)))


def put(x: Any, sharding: NamedSharding) -> Any:
  """``x`` (a pytree) with ``sharding``; arrays already placed so are returned as they are."""

  def one(a):
    if isinstance(a, jax.Array) and a.sharding.is_equivalent_to(sharding, a.ndim):
      return a
    if isinstance(a, jax.Array):
      return jax.device_put(a, sharding)
    host = np.asarray(a)  # host values: each process builds its own devices' blocks
    return jax.make_array_from_callback(host.shape, sharding, lambda i: host[i])

  return jax.tree.map(one, x)


def jit_init(init_fn: Callable, mesh: Mesh) -> Callable:
  """``init_fn(key) -> state`` compiled with a replicated state."""
  return jax.jit(init_fn, out_shardings=replicated(mesh))


def jit_train_step(step_fn: Callable, mesh: Mesh) -> Callable:
  """``step_fn(state, images, labels, idx, weight, key) -> (state, loss)``, data-parallel.

  ``idx`` and ``weight`` (``[G]``) split over the mesh, everything else
  replicated; the state is donated, as on one device.
  """
  rep, data = replicated(mesh), rows_sharded(mesh)
  return jax.jit(step_fn, in_shardings=(rep, rep, rep, data, data, rep),
                 out_shardings=(rep, rep), donate_argnums=0)


def blocks_per_device(rows: int, size: int, block: int, aligned: bool) -> int:
  """Blocks each device runs over its ``rows // size`` rows (the most any device needs).

  ``aligned``: the blocks are the global batches ``[c*block, (c+1)*block)``
  that overlap the device's rows, not blocks starting at its first row.
  """
  local = rows // size
  if not aligned:
    return math.ceil(local / block)
  return max((d * local + local - 1) // block - (d * local) // block + 1 for d in range(size))


def _pool_pass(run_block: Callable, x: jax.Array, *, axis: str, size: int, block: int,
               aligned: bool, out_row_axis: int) -> Any:
  """The shard_map body: ``run_block(x, idx [block], chunk)`` over this device's rows."""
  local = x.shape[0]
  steps = blocks_per_device(local * size, size, block, aligned)
  start = jax.lax.axis_index(axis) * local  # this device's first global row
  origin = (start // block) * block if aligned else start

  def one(s):
    # Local positions of the block's rows; rows held elsewhere (or past the
    # end) are clipped to this device's rows: filler whose outputs are dropped.
    first = origin + s * block - start
    idx = jnp.clip(first + jnp.arange(block), 0, local - 1)
    return run_block(x, idx, origin // block + s)

  outs = jax.lax.map(one, jnp.arange(steps))  # leaves [steps, (T,) block, ...]
  pos = start - origin + jnp.arange(local)  # each local row's place in the blocks
  step_of, col_of = pos // block, pos % block
  if out_row_axis == 0:
    return jax.tree.map(lambda o: o[step_of, col_of], outs)
  # [steps, T, block, ...] -> [local, T, ...] -> [T, local, ...]
  return jax.tree.map(lambda o: jnp.moveaxis(o[step_of, :, col_of], 0, 1), outs)


def jit_predict(eval_fn: Callable, mesh: Mesh, eval_batch_size: int) -> Callable:
  """``(state, images [R*devices, ...]) -> (logits, features)``, rows split over the mesh.

  ``eval_fn(state, images, idx) -> (logits [b, C], features [b, K])`` is the
  one-device eval step; each device runs it over its own rows in blocks of
  ``min(eval_batch_size, R)``.
  """
  axis, size = mesh_axis(mesh), mesh.size

  def fn(state, images):
    block = min(eval_batch_size, images.shape[0] // size)

    def body(state, x):
      return _pool_pass(lambda x, idx, _: eval_fn(state, x, idx), x, axis=axis, size=size,
                        block=block, aligned=False, out_row_axis=0)

    return jax.shard_map(body, mesh=mesh, in_specs=(P(), P(axis)), out_specs=P(axis),
                         check_vma=False)(state, images)

  return jax.jit(fn)


def jit_predict_mc(mc_fn: Callable, mesh: Mesh, eval_batch_size: int) -> Callable:
  """``(state, images, key, passes) -> [passes, R*devices, C]``, rows split over the mesh.

  ``mc_fn(state, images, idx, keys [passes]) -> [passes, B, C]`` is the
  one-device MC step; every device runs the global batches of
  ``eval_batch_size`` rows that overlap its rows, keyed as on one device.
  """
  axis, size = mesh_axis(mesh), mesh.size

  def fn(state, images, key, passes):
    def run_block(state, key, x, idx, chunk):
      return mc_fn(state, x, idx, jax.random.split(jax.random.fold_in(key, chunk), passes))

    def body(state, x, key):
      return _pool_pass(lambda x, idx, c: run_block(state, key, x, idx, c), x, axis=axis,
                        size=size, block=eval_batch_size, aligned=True, out_row_axis=1)

    return jax.shard_map(body, mesh=mesh, in_specs=(P(), P(axis), P()),
                         out_specs=P(None, axis), check_vma=False)(state, images, key)

  return jax.jit(fn, static_argnums=3)
