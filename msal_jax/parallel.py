"""Pool scoring and selection over a 1-D device mesh, with the single-device result.

Each function here is the sharded twin of a single-device selection: the pool's
rows are split over the devices of a 1-D mesh (``jax.shard_map``, not
``pmap``), every device scores its rows and keeps its own top ``k``, and only
those ``k`` candidates per device (score, pool index and, for MSAL-D, the
feature row) are gathered for a global top ``k``. The full score vector is
never gathered: the traffic is ``devices * k`` rows whatever ``N``.

=========================================  =========================================
this module                                single device
=========================================  =========================================
``top_k(scores, eligible, k, mesh=)``      ``selection.top_k_masked``
``bottom_k(scores, eligible, k, mesh=)``   ``selection.bottom_k_masked``
``msal(features, P, labeled, ...)``        MSAL: ``bottom_k_masked(scoring.msal(...))``
``uncertainty(logits, labeled, score=)``   ``top_k_masked(scoring.<score>(logits))``
``random(key, labeled, ...)``              ``top_k_masked(scoring.random(key, N))``
``msal_d(features, P, labeled, ...)``      ``selection.msal_d``
``select(name, key, outputs, ...)``        ``strategies.get(name).select``
=========================================  =========================================

**Same indices, same order, same tie rule.** ``lax.top_k`` breaks ties
towards the lower position. Each shard's top ``k`` is ordered by (key
descending, index ascending); the gathered candidates are laid out shard by
shard, and shard ``d`` holds lower pool indices than shard ``d + 1``, so among
equal keys the gathered position order *is* the pool index order. The global
``lax.top_k`` therefore returns exactly what one ``lax.top_k`` over the whole
pool returns: highest key first, ties to the lower pool index. A sample in the
global top ``k`` is always in its shard's top ``k``, so nothing is lost by the
per-shard cut.

**Padding.** ``N`` need not divide the device count: the rows are padded to
``devices * ceil(N / devices)`` and the padded rows are marked labeled, so
they are never selected (and, if fewer than ``k`` samples are eligible, the
slots they would fill are ``-1`` exactly as on one device).

**Equal scores.** The indices are identical when each device computes the same
per-sample scores as the single device does. On XLA:CPU this holds bitwise only
as long as both compile the same kernel: XLA:CPU (jax 0.10) hands row
reductions over arrays above a size threshold to YNNPACK, whose results differ
from the small-array code path in the last bit, so a shard much smaller than
the whole pool can score a sample one ulp differently. Only a near-tie at the
selection cut (two samples within an ulp) can then flip; setting
``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=`` makes the CPU scores
independent of the array size.

**Multi-host.** Under ``jax.distributed`` pass a mesh over all processes'
devices (:func:`make_mesh`). Host arrays (numpy, memmaps) are placed with
``jax.make_array_from_callback``: each process reads only the rows of its
own devices, so every process may pass the same memory-mapped file. The
result is replicated on every device, and every process gets it.

**Where the parts live.** This module holds the public selections and the
pool's forward pass; the mesh and array placement are in
:mod:`msal_jax.placement`, the argument checks shared with
:mod:`msal_jax.streaming` in :mod:`msal_jax.pool_inputs`, and the per-block
top-k with its gather in :mod:`msal_jax.pool_top_k`. Their public names are
re-exported here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from msal_jax import scoring, selection
from msal_jax.placement import (
    DEFAULT_AXIS,
    dtype_of,
    make_mesh,
    mesh_axis,
    ndim,
    padded_size,
    replicate,
    shard_pool,
    to_host,
)
from msal_jax.pool_inputs import (
    ROW_AXIS,
    check_feature_width,
    check_k,
    msal_d_inputs,
    msal_inputs,
    pool_size,
)
from msal_jax.pool_top_k import NO_ROW, SCORES, block_top_k, sharded_top_k

# The mesh and placement (msal_jax.placement), the argument checks
# (msal_jax.pool_inputs) and the kernel (msal_jax.pool_top_k) have modules of
# their own; their names stay importable from here.
__all__ = [
    "DEFAULT_AXIS", "NO_ROW", "ROW_AXIS", "SCORES", "block_top_k", "bottom_k",
    "check_feature_width", "dtype_of", "make_mesh", "msal", "msal_d", "msal_d_inputs",
    "msal_inputs", "ndim", "padded_size", "pool_forward", "pool_size", "random", "replicate",
    "select", "shard_pool", "sharded_top_k", "to_host", "top_k", "uncertainty",
]

# ---------------------------------------------------------------------------
# the sharded programs: the kernel, then the answer's -1 padding (MSAL-D: diversify)
# ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("score", "k", "mesh"))
def _top_k_jit(inputs, labeled, *, score, k, mesh):
  _, idx, _, count, _, _ = sharded_top_k(inputs, labeled, jnp.int32(0), score=score, k=k,
                                         carry=False, mesh=mesh)
  return jnp.where(jnp.arange(k) < count, idx, -1)


@functools.partial(jax.jit, static_argnames=("score", "m", "budget", "mesh"))
def _msal_d_jit(inputs, labeled, prototypes, *, score, m, budget, mesh):
  _, idx, feats, count, _, _ = sharded_top_k(inputs, labeled, jnp.int32(0), score=score, k=m,
                                             carry=True, mesh=mesh)
  cand = jnp.where(jnp.arange(m) < count, idx, -1)
  return selection.diversify(cand, feats, prototypes, budget=budget)


# ---------------------------------------------------------------------------
# public selections
# ---------------------------------------------------------------------------


def _place(arrays: Mapping[str, Any], labeled: Any, mesh: Mesh):
  num = np.shape(labeled)[0]
  rows = padded_size(num, mesh)
  placed = {}
  for key, x in arrays.items():
    if ROW_AXIS[key] is None:
      placed[key] = replicate(x, mesh)
    else:
      placed[key] = shard_pool(x, mesh, rows=rows, row_axis=ROW_AXIS[key])
  # Padding rows count as labeled: never selected.
  return placed, shard_pool(labeled, mesh, rows=rows, fill=True)


def _run_top_k(name, score, arrays, labeled, k, mesh):
  check_k(name, k)
  pool_size(name, arrays, labeled)
  placed, labeled = _place(arrays, labeled, mesh)
  return _top_k_jit(placed, labeled, score=score, k=k, mesh=mesh)


def top_k(scores: ArrayLike, eligible: ArrayLike, k: int, *, mesh: Mesh) -> jax.Array:
  """Sharded :func:`msal_jax.selection.top_k_masked`: same ``[k] int32`` result."""
  eligible = np.asarray(eligible) if not isinstance(eligible, jax.Array) else eligible
  return _run_top_k("top_k", "given", {"uncertainty": scores}, ~eligible, k, mesh)


def bottom_k(scores: ArrayLike, eligible: ArrayLike, k: int, *, mesh: Mesh) -> jax.Array:
  """Sharded :func:`msal_jax.selection.bottom_k_masked`: same ``[k] int32`` result."""
  eligible = np.asarray(eligible) if not isinstance(eligible, jax.Array) else eligible
  return _run_top_k("bottom_k", "given_lowest", {"uncertainty": scores}, ~eligible, k, mesh)


def msal(features: ArrayLike, prototypes: ArrayLike | None, labeled: ArrayLike, *, budget: int,
         mesh: Mesh) -> jax.Array:
  """MSAL over the mesh: the ``budget`` unlabeled samples with the lowest max-cosine.

  Args:
    features: ``[N, C-1]`` max-separation features.
    prototypes: ``[C, C-1]``, or ``None`` for ``prototypes.simplex(C)`` scored
      through its structure (as :func:`msal_jax.scoring.msal` does).
    labeled: ``[N]`` bool.
    budget: static, ``>= 1``.
    mesh: 1-D mesh.

  Returns:
    ``[budget] int32`` pool indices, lowest certainty first (ties to the lower
    index), ``-1`` padded: ``bottom_k_masked(scoring.msal(features, P), ~labeled, budget)``.
  """
  arrays, score = msal_inputs("msal", features, prototypes)
  return _run_top_k("msal", score, arrays, labeled, budget, mesh)


def uncertainty(logits: ArrayLike, labeled: ArrayLike, *, score: str, budget: int,
                mesh: Mesh) -> jax.Array:
  """Highest-uncertainty selection over the mesh.

  Args:
    logits: ``[N, C]`` for ``score`` in ``scoring.UNCERTAINTY`` (``entropy``,
      ``margin``, ``least_conf``), or ``[T, N, C]`` MC-dropout logits for a
      name in ``scoring.MC_UNCERTAINTY`` (``bald``, ...).
    labeled: ``[N]`` bool.
    score: the score's name.
    budget: static, ``>= 1``.
    mesh: 1-D mesh.

  Returns:
    ``top_k_masked(score(logits), ~labeled, budget)``.
  """
  if score in scoring.UNCERTAINTY:
    arrays = {"logits": logits}
  elif score in scoring.MC_UNCERTAINTY:
    arrays = {"mc_logits": logits}
  else:
    known = sorted(scoring.UNCERTAINTY) + sorted(scoring.MC_UNCERTAINTY)
    raise ValueError(f"uncertainty: unknown score {score!r}; known: {', '.join(known)}.")
  return _run_top_k("uncertainty", score, arrays, labeled, budget, mesh)


@functools.lru_cache(maxsize=16)
def _random_scores(rows: int, mesh: Mesh) -> Callable[[jax.Array], jax.Array]:
  # Threefry is partitionable (jax's default): each device draws its own rows,
  # and row i gets the value it has in scoring.random(key, N) for any N > i.
  return jax.jit(lambda key: scoring.random(key, rows),
                 out_shardings=NamedSharding(mesh, P(mesh_axis(mesh))))


def random(key: jax.Array, labeled: ArrayLike, *, budget: int, mesh: Mesh) -> jax.Array:
  """Uniform sample over the mesh: ``top_k_masked(scoring.random(key, N), ~labeled, budget)``."""
  check_k("random", budget)
  num = pool_size("random", {}, labeled)
  scores = _random_scores(padded_size(num, mesh), mesh)(key)
  _, labeled = _place({}, labeled, mesh)
  return _top_k_jit({"uncertainty": scores}, labeled, score="given", k=budget, mesh=mesh)


def msal_d(features: ArrayLike, prototypes: ArrayLike | None, labeled: ArrayLike, *,
           budget: int, beta: float, mesh: Mesh, uncertainty: ArrayLike | None = None,
           logits: ArrayLike | None = None, score: str | None = None) -> jax.Array:
  """MSAL-D over the mesh: the same ``[budget]`` indices as :func:`selection.msal_d`.

  The pre-filter (the ``m = min(ceil(beta*budget), N)`` most uncertain
  unlabeled samples) runs sharded: each device keeps its top ``m`` and their
  feature rows, and only those are gathered; the diversity stage
  (:func:`selection.diversify`) then runs on the ``m`` candidates.

  Args:
    features, prototypes, labeled, budget, beta: as in :func:`selection.msal_d`.
    mesh: 1-D mesh.
    uncertainty: optional ``[N]`` pre-filter score, higher first (as in
      :func:`selection.msal_d`); default MSAL's ``-max cos``.
    logits, score: alternatively, ``[N, C]`` logits and a name in
      ``scoring.UNCERTAINTY``: the score is then computed on each device
      (the "X(MSAL-D)" strategies), with the result of
      ``uncertainty=scoring.<score>(logits)``.

  Returns:
    ``[budget] int32`` pool indices in query order, ``-1`` padded.
  """
  arrays, name = msal_d_inputs(features, prototypes, budget=budget, beta=beta,
                               uncertainty=uncertainty, logits=logits, score=score)
  num = pool_size("msal_d", arrays, labeled)
  m = selection.num_candidates(budget, beta, num)
  placed, labeled = _place(arrays, labeled, mesh)
  return _msal_d_jit(placed, labeled, placed["prototypes"], score=name, m=m, budget=budget,
                     mesh=mesh)


def has_sharded_form(name: str) -> bool:
  """Whether :func:`select` has strategy ``name``'s sharded twin (kept beside its dispatch)."""
  from msal_jax import strategies  # the registry validates the name

  strategies.get(name)
  if name == "random" or name in ("msal", "ceal_msal", "msal_d") or name.endswith("_msal_d"):
    return True
  base = name.removeprefix("ceal_").removesuffix("_msal")
  return base in scoring.MC_UNCERTAINTY or base in scoring.UNCERTAINTY


def select(name: str, key: jax.Array, outputs: Any, labeled: ArrayLike, *, budget: int,
           beta: float, mesh: Mesh) -> jax.Array:
  """``strategies.get(name).select(key, outputs, labeled, budget=, beta=)`` over the mesh.

  Every pool-scoring strategy (random, MSAL, MSAL-D, the uncertainty and
  MC-dropout scores, CEAL's queries) has a sharded twin here with the same
  result; the clustering selections (k-means, k-center, BADGE, DBAL) raise a
  ``ValueError``. ``outputs`` is a
  :class:`msal_jax.strategies.PoolOutputs` (``mc_logits`` for the MC-dropout
  strategies, ``prototypes`` for the max-separation ones).
  """
  if not has_sharded_form(name):  # validates the name too
    raise ValueError(
        f"strategy {name!r} is not a pool-scoring top-k (a clustering or diversity selection): "
        "it has no sharded version here; run strategies.get(name).select on one device.")
  if name == "random":
    return random(key, labeled, budget=budget, mesh=mesh)
  if name in ("msal", "ceal_msal", "msal_d") or name.endswith("_msal_d"):
    if outputs.prototypes is None:
      raise ValueError(f"strategy {name!r} needs a max-separation head (outputs.prototypes).")
    if name == "msal_d":
      return msal_d(outputs.features, outputs.prototypes, labeled, budget=budget, beta=beta,
                    mesh=mesh)
    if name.endswith("_msal_d"):
      return msal_d(outputs.features, outputs.prototypes, labeled, budget=budget, beta=beta,
                    mesh=mesh, logits=outputs.logits, score=name.removesuffix("_msal_d"))
    return msal(outputs.features, outputs.prototypes, labeled, budget=budget, mesh=mesh)
  base = name.removeprefix("ceal_").removesuffix("_msal")
  if base in scoring.MC_UNCERTAINTY:
    if outputs.mc_logits is None:
      raise ValueError(f"strategy {name!r} needs outputs.mc_logits (MC-dropout passes).")
    return uncertainty(outputs.mc_logits, labeled, score=base, budget=budget, mesh=mesh)
  return uncertainty(outputs.logits, labeled, score=base, budget=budget, mesh=mesh)


# ---------------------------------------------------------------------------
# the pool's forward pass
# ---------------------------------------------------------------------------

_FORWARD: dict[Any, Callable] = {}


def _forward_fn(apply_fn: Callable, mesh: Mesh) -> Callable:
  axis = mesh_axis(mesh)

  def build():
    # Each device runs the model on its rows: no collective, the parameters
    # replicated. shard_map (not sharding propagation) so that any model runs.
    return jax.jit(jax.shard_map(apply_fn, mesh=mesh, in_specs=(P(), P(axis)),
                                 out_specs=P(axis), check_vma=False))

  try:
    if (apply_fn, mesh) not in _FORWARD:
      _FORWARD[(apply_fn, mesh)] = build()
    return _FORWARD[(apply_fn, mesh)]
  except TypeError:  # an unhashable callable: compiled per call
    return build()


def pool_forward(apply_fn: Callable, variables: Any, images: Any, *, mesh: Mesh,
                 batch_size: int = 1024) -> Any:
  """``apply_fn(variables, batch)`` over the whole pool, each batch split over the mesh.

  Args:
    apply_fn: ``(variables, x [B, ...]) -> pytree of [B, ...]`` arrays, e.g. a
      Flax ``model.apply`` returning ``(logits, features)``. Pass the same
      object every round: it is compiled once per ``(apply_fn, mesh)``.
    variables: the model's variables (replicated on every device).
    images: ``[N, ...]`` array-like (numpy, memmap, jax array).
    mesh: 1-D mesh.
    batch_size: rows per step, rounded up to a multiple of the device count;
      the last batch is padded and its padding dropped.

  Returns:
    The outputs as numpy arrays with ``N`` rows (gathered on every process).
  """
  num = np.shape(images)[0]
  step = mesh.size * max(1, math.ceil(batch_size / mesh.size))
  fn = _forward_fn(apply_fn, mesh)
  variables = jax.tree.map(lambda v: replicate(v, mesh), variables)
  outs = []
  for start in range(0, num, step):
    batch = shard_pool(images[start:start + step], mesh, rows=step)
    outs.append(jax.tree.map(to_host, fn(variables, batch)))
  return jax.tree.map(lambda *xs: np.concatenate(xs)[:num], *outs)
