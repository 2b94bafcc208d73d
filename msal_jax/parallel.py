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
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from msal_jax import scoring, selection

DEFAULT_AXIS = "data"

# -- scores of one block of rows: name -> fn(inputs) -> [n], higher = queried first.


def _msal_key(inputs: Mapping[str, jax.Array]) -> jax.Array:
  # MSAL and MSAL-D query the lowest certainty: the same key as bottom_k_masked.
  return selection.lowest_first(scoring.msal(inputs["features"], inputs["prototypes"]))


def _msal_simplex_key(inputs: Mapping[str, jax.Array]) -> jax.Array:
  # The same for P = simplex(C), scored through its structure (scoring.msal(z, None)).
  return selection.lowest_first(scoring.msal(inputs["features"], None))


SCORES: dict[str, Callable[[Mapping[str, jax.Array]], jax.Array]] = {
    "msal": _msal_key,
    "msal_simplex": _msal_simplex_key,
    "given": lambda inputs: inputs["uncertainty"],
    "given_lowest": lambda inputs: selection.lowest_first(inputs["uncertainty"]),
    **{name: (lambda inputs, f=f: f(inputs["logits"])) for name, f in scoring.UNCERTAINTY.items()},
    **{name: (lambda inputs, f=f: f(inputs["mc_logits"]))
       for name, f in scoring.MC_UNCERTAINTY.items()},
}

# Which axis of each input holds the pool's rows (prototypes: none, replicated).
ROW_AXIS = {"features": 0, "logits": 0, "uncertainty": 0, "mc_logits": 1, "prototypes": None}


def ndim(x: Any) -> int:
  """Rank of an array-like without reading it (``np.ndim`` would convert it)."""
  return len(np.shape(x))


def dtype_of(x: Any) -> np.dtype:
  """dtype of an array-like without reading it."""
  return np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype


# ---------------------------------------------------------------------------
# mesh and placement
# ---------------------------------------------------------------------------


def make_mesh(devices: Sequence[jax.Device] | None = None, axis_name: str = DEFAULT_AXIS) -> Mesh:
  """A 1-D mesh over ``devices`` (default: every device of every process)."""
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.array(devices), (axis_name,))


def _axis(mesh: Mesh) -> str:
  if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
    raise ValueError(f"mesh must be a 1-D jax.sharding.Mesh, got {mesh!r}.")
  return mesh.axis_names[0]


def padded_size(num: int, mesh: Mesh) -> int:
  """Rows after padding ``num`` to a multiple of the mesh size (at least one per device)."""
  return mesh.size * max(1, math.ceil(num / mesh.size))


def _spec(rank: int, row_axis: int | None, axis: str) -> P:
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
  axis = _axis(mesh)
  shape = tuple(np.shape(x))
  num = shape[row_axis]
  rows = padded_size(num, mesh) if rows is None else rows
  out_shape = shape[:row_axis] + (rows,) + shape[row_axis + 1:]
  sharding = NamedSharding(mesh, _spec(len(shape), row_axis, axis))
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


# ---------------------------------------------------------------------------
# the kernel: per-block top-k, gather, global top-k
# ---------------------------------------------------------------------------


NO_ROW = jnp.iinfo(jnp.int32).max


def _rowwise(score: str, inputs: Mapping[str, jax.Array]) -> bool:
  """Whether ``SCORES[score]`` is one elementwise formula per row (see selection.top_k_of)."""
  if score in ("given", "given_lowest"):
    return True
  if score in ("msal", "msal_simplex"):
    return scoring.msal_is_elementwise(inputs["features"].shape[-1] + 1,
                                       structured=score == "msal_simplex")
  return False


def block_top_k(inputs: Mapping[str, jax.Array], labeled: jax.Array, offset: jax.Array, *,
                score: str, k: int, carry: bool, axis: str | None, nonfinite: str = "keep"):
  """Top ``k`` of one block of rows (a shard, a chunk, or a shard of a chunk).

  Args:
    inputs: the block's arrays (see ``ROW_AXIS``) and the prototypes.
    labeled: ``[n]`` bool; ``True`` rows are never selected (padding included).
    offset: pool index of the block's first row (of the first shard's first
      row under ``axis``).
    score: key of :data:`SCORES`.
    k: static number of candidates.
    carry: also return the candidates' ``features`` rows (MSAL-D).
    axis: mesh axis name when called inside ``shard_map`` (then the shards'
      candidates are gathered and cut to the global top ``k``), else ``None``.
    nonfinite: rows with a NaN or infinite input value: ``"keep"`` scores
      them like any other (see :func:`selection.top_k_masked` for how NaN
      scores rank) and does not look for them; ``"count"`` also reports the
      unlabeled ones; ``"skip"`` reports them and never selects them.

  Returns:
    ``(keys [k], index [k] int32, features [k, K] or [k, 0], eligible count,
    first non-finite row or int32 max, number of non-finite rows)``, the
    candidates ordered by key descending, ties to the lower index. Slots past
    the eligible count hold ineligible or padding entries: callers mask them.
  """
  num = labeled.shape[0]

  def rows_of(rows):  # the inputs and labels of some rows (all of them for None)
    if rows is None:
      return inputs, labeled
    return ({name: x if ROW_AXIS[name] is None else jnp.take(x, rows, axis=ROW_AXIS[name])
             for name, x in inputs.items()}, labeled[rows])

  def bad_of(ins, lab):  # unlabeled rows with a non-finite input value
    bad = jnp.zeros(lab.shape[0], bool)
    for name, x in ins.items():
      row_axis = ROW_AXIS[name]
      if row_axis is not None:
        others = tuple(a for a in range(x.ndim) if a != row_axis)
        bad = bad | ~jnp.all(jnp.isfinite(x), axis=others)
    return bad & ~lab  # a labeled row is never selected: its values do not matter

  def keys_of(rows):
    ins, lab = rows_of(rows)
    eligible = ~lab & ~bad_of(ins, lab) if nonfinite == "skip" else ~lab
    return selection.rank_keys(SCORES[score](ins), eligible)

  bad = bad_of(inputs, labeled) if nonfinite != "keep" else jnp.zeros(num, bool)
  eligible = ~labeled & ~bad if nonfinite == "skip" else ~labeled
  kl = min(k, num)
  if _rowwise(score, inputs):
    # Recompute the few rows' keys the blocked top-k looks at twice rather
    # than keep the block's keys (selection.top_k_of: one pass over the pool).
    vals, local = selection.top_k_of(keys_of, num, kl)
  else:
    vals, local = selection.top_k(keys_of(None), kl)
  base = offset if axis is None else offset + jax.lax.axis_index(axis) * num
  base = base.astype(jnp.int32)
  idx = local.astype(jnp.int32) + base
  if carry:
    feats = inputs["features"][local]
  else:
    feats = jnp.zeros((kl, 0), jnp.float32)
  count = jnp.sum(eligible, dtype=jnp.int32)
  first_bad = jnp.where(jnp.any(bad), base + jnp.argmax(bad).astype(jnp.int32), NO_ROW)
  num_bad = jnp.sum(bad, dtype=jnp.int32)
  if axis is not None:
    vals = jax.lax.all_gather(vals, axis, tiled=True)
    idx = jax.lax.all_gather(idx, axis, tiled=True)
    feats = jax.lax.all_gather(feats, axis, tiled=True)
    count = jax.lax.psum(count, axis)
    first_bad = jax.lax.pmin(first_bad, axis)
    num_bad = jax.lax.psum(num_bad, axis)
  if vals.shape[0] < k:  # fewer rows than k: pad with entries that are never filled
    extra = k - vals.shape[0]
    vals = jnp.concatenate([vals, jnp.full(extra, -jnp.inf, vals.dtype)])
    idx = jnp.concatenate([idx, jnp.full(extra, -1, jnp.int32)])
    feats = jnp.concatenate([feats, jnp.zeros((extra, feats.shape[1]), feats.dtype)])
  elif axis is not None:
    _, pos = jax.lax.top_k(vals, k)
    vals, idx, feats = vals[pos], idx[pos], feats[pos]
  # (one block with k <= n rows: lax.top_k's output is already the answer)
  return vals, idx, feats, count, first_bad, num_bad


def sharded_top_k(inputs: Mapping[str, jax.Array], labeled: jax.Array, offset: jax.Array, *,
                  score: str, k: int, carry: bool, mesh: Mesh | None, nonfinite: str = "keep"):
  """:func:`block_top_k` over the mesh (``shard_map``), or on one block if ``mesh`` is None.

  To be called under ``jit`` with the row arrays placed by :func:`shard_pool`.
  """
  kwargs = dict(score=score, k=k, carry=carry, nonfinite=nonfinite)
  if mesh is None:
    return block_top_k(inputs, labeled, offset, axis=None, **kwargs)
  axis = _axis(mesh)
  specs = {name: _spec(x.ndim, ROW_AXIS[name], axis) for name, x in inputs.items()}
  body = functools.partial(block_top_k, axis=axis, **kwargs)
  # The outputs are replicated by construction (every device cuts the same
  # gathered candidates), which shard_map cannot infer through lax.top_k.
  return jax.shard_map(body, mesh=mesh, in_specs=(specs, P(axis), P()),
                       out_specs=(P(),) * 6, check_vma=False)(inputs, labeled, offset)


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


def _check_k(name: str, k: int) -> None:
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"{name}: k must be a Python int >= 1 (static), got {k!r}.")


def pool_size(name: str, arrays: Mapping[str, Any], labeled: Any) -> int:
  """``N`` from the ``[N]`` bool mask, after checking every row array against it.

  Shared with :mod:`msal_jax.streaming`; ``name`` starts each error message.
  """
  num = np.shape(labeled)[0] if ndim(labeled) == 1 else None
  if num is None:
    raise ValueError(f"{name}: the labeled mask must be [N], got shape {np.shape(labeled)}.")
  if dtype_of(labeled) != np.bool_:
    raise ValueError(f"{name}: the labeled mask must be boolean, got {dtype_of(labeled)}.")
  for key, x in arrays.items():
    row_axis = ROW_AXIS[key]
    if row_axis is not None and (ndim(x) <= row_axis or np.shape(x)[row_axis] != num):
      raise ValueError(
          f"{name}: {key} has shape {np.shape(x)}, but the pool has N={num} samples "
          f"(axis {row_axis}).")
  if num >= 2**31:
    raise ValueError(f"{name}: pools of 2**31 samples or more are not supported (N={num}).")
  return num


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
  _check_k(name, k)
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
                 out_shardings=NamedSharding(mesh, P(_axis(mesh))))


def random(key: jax.Array, labeled: ArrayLike, *, budget: int, mesh: Mesh) -> jax.Array:
  """Uniform sample over the mesh: ``top_k_masked(scoring.random(key, N), ~labeled, budget)``."""
  _check_k("random", budget)
  num = pool_size("random", {}, labeled)
  scores = _random_scores(padded_size(num, mesh), mesh)(key)
  _, labeled = _place({}, labeled, mesh)
  return _top_k_jit({"uncertainty": scores}, labeled, score="given", k=budget, mesh=mesh)


def check_feature_width(name, features, prototypes):
  if prototypes is None:  # the standard simplex of C = width + 1 classes
    if ndim(features) != 2 or np.shape(features)[1] < 1:
      raise ValueError(f"{name}: features must be [N, C-1] with C >= 2, got shape "
                       f"{np.shape(features)}.")
    return
  if ndim(features) != 2 or ndim(prototypes) != 2:
    raise ValueError(f"{name}: features must be [N, K] and prototypes [C, K]; got shapes "
                     f"{np.shape(features)} and {np.shape(prototypes)}.")
  if np.shape(features)[1] != np.shape(prototypes)[1]:
    raise ValueError(
        f"{name}: features have width {np.shape(features)[1]} but prototypes have width "
        f"{np.shape(prototypes)[1]}: the features must be the max-separation head's C-1 "
        "outputs for prototypes.simplex(C).")


def msal_inputs(name: str, features: Any, prototypes: Any) -> tuple[dict[str, Any], str]:
  """Checks MSAL's arguments; returns its input arrays by name and its score's name.

  ``"msal"`` scores ``features`` against the ``prototypes`` given;
  ``prototypes=None`` is ``"msal_simplex"``, the standard simplex scored
  through its structure (:func:`msal_jax.scoring.msal`). Shared with
  :func:`msal_jax.streaming.msal`.
  """
  check_feature_width(name, features, prototypes)
  if prototypes is None:
    return {"features": features}, "msal_simplex"
  return {"features": features, "prototypes": prototypes}, "msal"


def msal_d_inputs(features: Any, prototypes: Any, *, budget: int, beta: float,
                  uncertainty: Any = None, logits: Any = None, score: str | None = None
                  ) -> tuple[dict[str, Any], str]:
  """Checks MSAL-D's arguments (shared with :func:`msal_jax.streaming.msal_d`).

  Returns the input arrays by name (``ROW_AXIS`` keys) and the name of the
  pre-filter score: ``"given"`` (``uncertainty``), a ``scoring.UNCERTAINTY``
  name (computed from ``logits``), ``"msal"`` or, for ``prototypes=None``,
  ``"msal_simplex"`` (then ``arrays["prototypes"]`` is ``simplex(C)``, for the
  diversity stage).
  """
  if not (isinstance(beta, (int, float)) and beta >= 1):
    raise ValueError(f"msal_d: beta must be a number >= 1 (static), got {beta!r}.")
  _check_k("msal_d", budget)
  check_feature_width("msal_d", features, prototypes)
  structured = prototypes is None
  if structured:
    prototypes = np.asarray(scoring.simplex_prototypes(np.shape(features)[1] + 1,
                                                       dtype_of(features)))
  arrays: dict[str, Any] = {"features": features, "prototypes": prototypes}
  if uncertainty is not None and (logits is not None or score is not None):
    raise ValueError("msal_d: pass either uncertainty or logits and score, not both.")
  if uncertainty is not None:
    if np.shape(uncertainty) != (np.shape(features)[0],):
      raise ValueError(f"msal_d: uncertainty must be [N={np.shape(features)[0]}], got shape "
                       f"{np.shape(uncertainty)}.")
    arrays["uncertainty"] = uncertainty
    return arrays, "given"
  if score is not None:
    if score not in scoring.UNCERTAINTY or logits is None:
      raise ValueError(f"msal_d: score must be one of {sorted(scoring.UNCERTAINTY)} and "
                       f"needs logits; got score={score!r}.")
    arrays["logits"] = logits
    return arrays, score
  return arrays, "msal_simplex" if structured else "msal"


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
  from msal_jax import strategies  # the registry validates the name

  strategies.get(name)
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
  if base in scoring.UNCERTAINTY:
    return uncertainty(outputs.logits, labeled, score=base, budget=budget, mesh=mesh)
  raise ValueError(
      f"strategy {name!r} is not a pool-scoring top-k (a clustering or diversity selection): "
      "it has no sharded version here; run strategies.get(name).select on one device.")


# ---------------------------------------------------------------------------
# the pool's forward pass
# ---------------------------------------------------------------------------

_FORWARD: dict[Any, Callable] = {}


def _forward_fn(apply_fn: Callable, mesh: Mesh) -> Callable:
  axis = _axis(mesh)

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
