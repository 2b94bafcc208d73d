"""The top ``k`` of a block of pool rows, per shard of a mesh, gathered and cut.

The kernel under :mod:`msal_jax.parallel` (a shard per device) and
:mod:`msal_jax.streaming` (a chunk, or a shard of a chunk): score the rows
(:data:`SCORES`), keep the block's top ``k`` by (key descending, index
ascending), and under ``shard_map`` gather every shard's ``k`` candidates and
cut them to the global top ``k``. Why that equals one ``lax.top_k`` over the
whole pool, ties included, is in :mod:`msal_jax.parallel`'s docstring.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from msal_jax import scoring, selection
from msal_jax.placement import mesh_axis, row_spec
from msal_jax.pool_inputs import ROW_AXIS

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

NO_ROW = jnp.iinfo(jnp.int32).max


def _rowwise(score: str, inputs: Mapping[str, jax.Array]) -> bool:
  """Whether ``SCORES[score]`` is one elementwise formula per row (see selection.top_k_of)."""
  if score in ("given", "given_lowest"):
    return True
  if score in ("msal", "msal_simplex"):
    return scoring.msal_is_elementwise(inputs["features"].shape[-1] + 1,
                                       structured=score == "msal_simplex")
  return False


def _take_rows(inputs: Mapping[str, jax.Array], labeled: jax.Array, rows: jax.Array | None):
  """The inputs and labels of some rows (all of them for ``None``)."""
  if rows is None:
    return inputs, labeled
  return ({name: x if ROW_AXIS[name] is None else jnp.take(x, rows, axis=ROW_AXIS[name])
           for name, x in inputs.items()}, labeled[rows])


def _nonfinite_rows(inputs: Mapping[str, jax.Array], labeled: jax.Array) -> jax.Array:
  """``[n]`` bool: the unlabeled rows with a non-finite input value."""
  bad = jnp.zeros(labeled.shape[0], bool)
  for name, x in inputs.items():
    row_axis = ROW_AXIS[name]
    if row_axis is not None:
      others = tuple(a for a in range(x.ndim) if a != row_axis)
      bad = bad | ~jnp.all(jnp.isfinite(x), axis=others)
  return bad & ~labeled  # a labeled row is never selected: its values do not matter


def _block_candidates(inputs: Mapping[str, jax.Array], labeled: jax.Array, *, score: str,
                      k: int, nonfinite: str) -> tuple[jax.Array, jax.Array]:
  """``(keys [k], local row [k])``: the block's top ``k <= n`` rows by rank key."""
  num = labeled.shape[0]

  def keys_of(rows):
    ins, lab = _take_rows(inputs, labeled, rows)
    eligible = ~lab & ~_nonfinite_rows(ins, lab) if nonfinite == "skip" else ~lab
    return selection.rank_keys(SCORES[score](ins), eligible)

  if _rowwise(score, inputs):
    # Recompute the few rows' keys the blocked top-k looks at twice rather
    # than keep the block's keys (selection.top_k_of: one pass over the pool).
    return selection.top_k_of(keys_of, num, k)
  return selection.top_k(keys_of(None), k)


def _gather_shards(axis: str, vals, idx, feats, count, first_bad, num_bad):
  """Every shard's candidates, laid out shard by shard; the counts over all shards."""
  return (jax.lax.all_gather(vals, axis, tiled=True),
          jax.lax.all_gather(idx, axis, tiled=True),
          jax.lax.all_gather(feats, axis, tiled=True),
          jax.lax.psum(count, axis), jax.lax.pmin(first_bad, axis), jax.lax.psum(num_bad, axis))


def _pad_or_cut(vals: jax.Array, idx: jax.Array, feats: jax.Array, *, k: int, gathered: bool):
  """Exactly ``k`` candidates: padded when fewer, the top ``k`` of the gathered ones."""
  if vals.shape[0] < k:  # fewer rows than k: pad with entries that are never filled
    extra = k - vals.shape[0]
    vals = jnp.concatenate([vals, jnp.full(extra, -jnp.inf, vals.dtype)])
    idx = jnp.concatenate([idx, jnp.full(extra, -1, jnp.int32)])
    feats = jnp.concatenate([feats, jnp.zeros((extra, feats.shape[1]), feats.dtype)])
  elif gathered:
    _, pos = jax.lax.top_k(vals, k)
    vals, idx, feats = vals[pos], idx[pos], feats[pos]
  # (one block with k <= n rows: lax.top_k's output is already the answer)
  return vals, idx, feats


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
  bad = _nonfinite_rows(inputs, labeled) if nonfinite != "keep" else jnp.zeros(num, bool)
  eligible = ~labeled & ~bad if nonfinite == "skip" else ~labeled
  kl = min(k, num)
  vals, local = _block_candidates(inputs, labeled, score=score, k=kl, nonfinite=nonfinite)
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
    vals, idx, feats, count, first_bad, num_bad = _gather_shards(
        axis, vals, idx, feats, count, first_bad, num_bad)
  vals, idx, feats = _pad_or_cut(vals, idx, feats, k=k, gathered=axis is not None)
  return vals, idx, feats, count, first_bad, num_bad


def sharded_top_k(inputs: Mapping[str, jax.Array], labeled: jax.Array, offset: jax.Array, *,
                  score: str, k: int, carry: bool, mesh: Mesh | None, nonfinite: str = "keep"):
  """:func:`block_top_k` over the mesh (``shard_map``), or on one block if ``mesh`` is None.

  To be called under ``jit`` with the row arrays placed by
  :func:`msal_jax.placement.shard_pool`.
  """
  kwargs = dict(score=score, k=k, carry=carry, nonfinite=nonfinite)
  if mesh is None:
    return block_top_k(inputs, labeled, offset, axis=None, **kwargs)
  axis = mesh_axis(mesh)
  specs = {name: row_spec(x.ndim, ROW_AXIS[name], axis) for name, x in inputs.items()}
  body = functools.partial(block_top_k, axis=axis, **kwargs)
  # The outputs are replicated by construction (every device cuts the same
  # gathered candidates), which shard_map cannot infer through lax.top_k.
  return jax.shard_map(body, mesh=mesh, in_specs=(specs, P(axis), P()),
                       out_specs=(P(),) * 6, check_vma=False)(inputs, labeled, offset)
