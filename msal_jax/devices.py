"""Which devices a run uses, and its selection over them.

:func:`run_mesh` turns the ``devices`` setting of :func:`msal_jax.loop.run`
into a 1-D mesh, or ``None`` when the run has one device: then nothing of
the mesh path runs and the one-device programs are exactly those of a
machine with one device. :func:`mesh_select` is the strategy's selection on
a mesh: every pool-scoring strategy goes through :func:`msal_jax.parallel.select`
(per-shard top-k, then a global one: the score vector is never gathered);
the clustering and diversity selections (k-means, k-center, BADGE, DBAL)
need every embedding at once (distances between pool samples), so they
gather the pool outputs to one device and run the one-device selection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from msal_jax import parallel, strategies
from msal_jax.parallel import has_sharded_form
from msal_jax.placement import make_mesh, to_host


def run_mesh(devices: int | Sequence[jax.Device] | Mesh | None) -> Mesh | None:
  """The run's mesh: ``None`` = every device of the default backend; an int = that many
  of them; devices or a mesh as given. One device gives ``None`` (no mesh)."""
  if isinstance(devices, Mesh):
    return devices if devices.size > 1 else None
  if isinstance(devices, jax.Device):
    return None  # one device (pinned by the caller)
  available = jax.devices()
  if devices is None:
    chosen = available
  elif isinstance(devices, int) and not isinstance(devices, bool):
    if not 1 <= devices <= len(available):
      raise ValueError(f"mesh.devices must be in [1, {len(available)}] (the devices of "
                       f"{jax.default_backend()}), got {devices}.")
    chosen = available[:devices]
  else:
    chosen = list(devices)
    if not chosen:
      raise ValueError("mesh.devices: an empty list of devices.")
  return make_mesh(chosen) if len(chosen) > 1 else None


def pinned(devices: Any) -> contextlib.AbstractContextManager:
  """``jax.default_device`` of a run given one device (thread-local: a grid of runs may
  pin one per thread); a no-op otherwise."""
  if isinstance(devices, jax.Device):
    return jax.default_device(devices)
  if isinstance(devices, Sequence) and len(devices) == 1 and isinstance(devices[0], jax.Device):
    return jax.default_device(devices[0])
  return contextlib.nullcontext()


def gathered(outputs: strategies.PoolOutputs) -> strategies.PoolOutputs:
  """The pool outputs copied to the default device (one array each, not split).

  Under ``jax.distributed`` every process gathers the whole arrays
  (:func:`msal_jax.placement.to_host`, a collective: every process calls it)
  and runs the same one-device selection on them.
  """
  return jax.tree.map(lambda a: jnp.asarray(to_host(a)), outputs)


def mesh_select(name: str, mesh: Mesh, one_device: Callable[..., jax.Array]) -> Callable:
  """``select(key, outputs, labeled, *, budget, beta)`` of strategy ``name`` on ``mesh``.

  ``one_device`` is the jitted one-device selection, used (on gathered
  outputs) by the strategies without a sharded form.
  """
  if has_sharded_form(name):
    def select(key: jax.Array, outputs: Any, labeled: jax.Array, *, budget: int,
               beta: float) -> jax.Array:
      return parallel.select(name, key, outputs, labeled, budget=budget, beta=beta, mesh=mesh)
  else:
    def select(key: jax.Array, outputs: Any, labeled: jax.Array, *, budget: int,
               beta: float) -> jax.Array:
      return one_device(key, gathered(outputs), jnp.asarray(to_host(jnp.asarray(labeled))),
                        budget=budget, beta=beta)
  return select
