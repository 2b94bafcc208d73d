"""Pool selection: pure, jit-able functions with static sizes.

Every selector returns a fixed-size ``[k] int32`` vector of pool indices in the
order the samples should be queried. Slots that cannot be filled (fewer than
``k`` eligible samples) hold ``-1``: callers keep the non-negative entries.
Because the output size never depends on the data, an active-learning loop
that keeps its pool at a fixed shape with a ``labeled`` mask compiles each
selector once per experiment.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from msal_jax import scoring


def _check_pool(name: str, scores: jax.Array, mask: jax.Array, k: int) -> None:
  if scores.ndim != 1:
    raise ValueError(f"{name}: scores must be [N], got shape {scores.shape}.")
  if mask.shape != scores.shape:
    raise ValueError(
        f"{name}: the mask must have the pool's shape {scores.shape}, got {mask.shape}."
    )
  if mask.dtype != jnp.bool_:
    raise ValueError(f"{name}: the mask must be boolean, got dtype {mask.dtype}.")
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"{name}: k must be a Python int >= 1 (static), got {k!r}.")


# Blocked top-k (see :func:`top_k`): block length, and the smallest pool it is used for
# relative to k (below, one lax.top_k over the whole vector is as fast).
# 64: on XLA:CPU (jax 0.10) 32-128-wide rows give 14-18x lax.top_k's speed at 10M keys
# and k = 1250, 256-wide rows 1.2x (their row maxima are slow): benchmarks/selection.py.
TOP_K_BLOCK = 64
_TOP_K_BLOCKED_MIN = 4


def top_k(keys: ArrayLike, k: int, *, block: int | None = None) -> tuple[jax.Array, jax.Array]:
  """``lax.top_k(keys, k)`` for a 1-D ``keys``, exactly, faster on large vectors.

  ``lax.top_k`` over millions of keys is a partial sort of the whole vector
  (on XLA:CPU about 3x the time of reading it). Blocked: split ``keys`` into
  rows of ``block`` entries, take the ``k`` rows with the largest maxima (ties
  to the lower row), and one ``lax.top_k`` over the ``k * block`` entries of
  those rows, in row order. Exact, ties included: an entry outside those rows
  is outranked by the ``k`` row maxima (each larger, or equal with a lower
  index), so it is not in the top ``k``; and because the kept rows stay in
  pool order, the final ``lax.top_k`` breaks ties to the lower pool index as
  the direct one does. Cost: one pass for the row maxima plus two small top-ks.

  Args:
    keys: ``[N]`` float keys (``-inf`` allowed; no NaN: see :func:`rank_keys`).
    k: static, ``1 <= k <= N``.
    block: row length; default :data:`TOP_K_BLOCK`, used when
      ``N >= 4 * k * block`` (0 = always the direct ``lax.top_k``).

  Returns:
    ``(values [k], indices [k] int32)`` as ``lax.top_k`` returns them.
  """
  keys = jnp.asarray(keys)
  num = keys.shape[0] if keys.ndim else 0
  if keys.ndim != 1 or not 1 <= k <= num:
    raise ValueError(f"top_k: keys must be [N] with 1 <= k <= N, got {keys.shape}, k={k}.")
  return top_k_of(lambda rows: keys if rows is None else keys[rows], num, k, block=block)


def top_k_of(key_fn: Callable[[jax.Array | None], jax.Array], num: int, k: int, *,
             block: int | None = None) -> tuple[jax.Array, jax.Array]:
  """``top_k(key_fn(None), k)`` for keys computed row by row, without keeping them.

  ``key_fn(None)`` returns the ``[num]`` keys of the whole pool and
  ``key_fn(rows)`` those of the given ``[r] int32`` rows: the same numbers, so
  the key of row ``i`` must be computed from row ``i`` alone, the same way in
  both calls (an elementwise formula of the row's inputs; see the test of
  :func:`msal_d`, which checks the two agree bit for bit). The blocked
  :func:`top_k` then only needs the row maxima of the keys: the keys of the
  ``k * block`` entries it looks at again are recomputed from their rows
  instead of gathered. Under ``jit`` this leaves the pool-sized keys one
  consumer, so XLA computes them in one pass; with a second consumer (the
  gather) XLA:CPU split the score into three pool-sized passes and MSAL-D at
  10M x 10 took twice as long (docs/benchmarks.md).

  Args:
    key_fn: ``rows -> keys`` as above (``-inf`` allowed; no NaN).
    num: pool size ``N`` (static).
    k: static, ``1 <= k <= N``.
    block: as in :func:`top_k`.

  Returns:
    ``(values [k], indices [k] int32)``: exactly ``top_k(key_fn(None), k)``.
  """
  if not 1 <= k <= num:
    raise ValueError(f"top_k_of: need 1 <= k <= N, got k={k}, N={num}.")
  if block is None:
    block = TOP_K_BLOCK if num >= _TOP_K_BLOCKED_MIN * k * TOP_K_BLOCK else 0
  rows = -(-num // block) if block else 0
  if rows < k or k * block >= num:
    vals, idx = jax.lax.top_k(key_fn(None), k)
    return vals, idx.astype(jnp.int32)
  keys = key_fn(None)
  padded = jnp.pad(keys, (0, rows * block - num), constant_values=-jnp.inf).reshape(rows, block)
  _, top_rows = jax.lax.top_k(jnp.max(padded, axis=1), k)
  top_rows = jnp.sort(top_rows)  # pool order, so that ties go to the lower index
  idx = (top_rows[:, None] * block + jnp.arange(block, dtype=top_rows.dtype)[None, :]).reshape(-1)
  inside = idx < num  # the last row may run past the pool
  vals = jnp.where(inside, key_fn(jnp.where(inside, idx, 0).astype(jnp.int32)), -jnp.inf)
  vals, pos = jax.lax.top_k(vals, k)
  return vals, idx[pos].astype(jnp.int32)


def rank_keys(scores: ArrayLike, eligible: ArrayLike) -> jax.Array:
  """The keys :func:`top_k_masked` ranks by (exposed for the sharded and streamed paths).

  Eligible samples get a finite key (NaN -> the lowest finite value, ``+-inf``
  -> the largest/smallest finite value), ineligible ones ``-inf``: every
  eligible sample outranks every ineligible one whatever its score. Scores are
  promoted to at least float32.
  """
  scores = jnp.asarray(scores)
  scores = scores.astype(jnp.promote_types(scores.dtype, jnp.float32))
  big = jnp.finfo(scores.dtype).max
  return jnp.where(eligible, jnp.nan_to_num(scores, nan=-big, posinf=big, neginf=-big), -jnp.inf)


def lowest_first(scores: ArrayLike) -> jax.Array:
  """``-scores`` with NaN kept NaN: :func:`bottom_k_masked` takes the highest of these."""
  scores = jnp.asarray(scores)
  return jnp.where(jnp.isnan(scores), scores, -scores)


def top_k_masked(scores: ArrayLike, eligible: ArrayLike, k: int, *, _name: str = "top_k_masked"
                 ) -> jax.Array:
  """The ``k`` highest-scoring eligible samples, highest first.

  Args:
    scores: ``[N]`` scores (NaN ranks below every number, ``+-inf`` count as
      the largest/smallest finite value).
    eligible: ``[N]`` bool; only ``True`` entries can be selected (for a
      query: ``~labeled``).
    k: static number of samples, ``>= 1`` (``k > N`` pads with ``-1``).

  Returns:
    ``[k] int32`` indices ordered by descending score, ties to the lower
    index (``lax.top_k``'s rule); slots beyond the number of eligible samples
    are ``-1``.
  """
  scores = jnp.asarray(scores)
  eligible = jnp.asarray(eligible)
  _check_pool(_name, scores, eligible, k)
  keys = rank_keys(scores, eligible)
  if k > keys.shape[0]:  # pad with ineligible entries so lax.top_k has k to pick from
    keys = jnp.concatenate([keys, jnp.full(k - keys.shape[0], -jnp.inf, keys.dtype)])
  vals, idx = top_k(keys, k)
  # Eligible keys are finite, the others -inf: a finite value is a filled slot
  # (no second pass over the mask to count the eligible samples).
  return jnp.where(jnp.isfinite(vals), idx, -1).astype(jnp.int32)


def bottom_k_masked(scores: ArrayLike, eligible: ArrayLike, k: int) -> jax.Array:
  """The ``k`` lowest-scoring eligible samples, lowest first (see :func:`top_k_masked`)."""
  return top_k_masked(lowest_first(scores), eligible, k, _name="bottom_k_masked")


def num_candidates(budget: int, beta: float, pool_size: int) -> int:
  """MSAL-D's pre-filter size ``min(ceil(beta * budget), N)``."""
  return min(math.ceil(beta * budget), pool_size)


def msal_d(
    features: ArrayLike,
    prototypes: ArrayLike | None,
    labeled: ArrayLike,
    *,
    budget: int,
    beta: float,
    uncertainty: ArrayLike | None = None,
) -> jax.Array:
  """MSAL-D: uncertainty pre-filter, then per-class diversity around the prototypes.

  1. Candidates: the ``m = min(ceil(beta*budget), N)`` unlabeled samples with
     the highest uncertainty (all unlabeled ones if fewer remain).
  2. Each candidate goes to its nearest prototype ``c_i = argmax_c cos(z_i,
     p_c)`` with closeness ``s_i = max_c cos(z_i, p_c)``.
  3. Within each class, candidates are ranked by ``s`` (closest = rank 0).
  4. Candidates are taken in round-robin order of that rank (all rank-0
     candidates, then all rank-1, ...; within a rank by ``s``, then by pool
     index) and the first ``budget`` are returned.

  When every class has at least ``budget/C`` candidates and ``C`` divides
  ``budget``, the result is exactly the ``budget/C`` candidates closest to each
  prototype; otherwise other classes fill the quota of short ones, so the
  result holds ``budget`` distinct samples whenever ``|U| >= budget``.

  Args:
    features: ``[N, C-1]`` max-separation features ``z``.
    prototypes: ``[C, C-1]`` simplex prototypes, or ``None`` for
      ``prototypes.simplex(C)`` with ``C = features.shape[1] + 1``, scored in
      ``O(C)`` per sample (see :func:`msal_jax.scoring.msal`).
    labeled: ``[N]`` bool mask of the labeled samples (never selected).
    budget: static number of samples to query, ``>= 1`` (slots beyond the
      number of unlabeled samples are ``-1``).
    beta: static pre-filter factor, ``>= 1``.
    uncertainty: optional ``[N]`` score, higher = more uncertain (e.g.
      :func:`msal_jax.scoring.entropy` of the logits, for the "X(MSAL-D)"
      strategies). Default: MSAL's ``-max cos``.

  Returns:
    ``[budget] int32`` pool indices in query order; ``-1`` in the slots that
    cannot be filled because fewer than ``budget`` samples are unlabeled.
  """
  features = jnp.asarray(features)
  structured = prototypes is None
  if structured:
    if features.ndim != 2:
      raise ValueError(f"msal_d: features must be [N, C-1], got shape {features.shape}.")
    prototypes = scoring.simplex_prototypes(features.shape[1] + 1, features.dtype)
  prototypes = jnp.asarray(prototypes)
  labeled = jnp.asarray(labeled)
  num = features.shape[0]
  if not (isinstance(beta, (int, float)) and beta >= 1):
    raise ValueError(f"msal_d: beta must be a number >= 1 (static), got {beta!r}.")
  m = num_candidates(budget, beta, num)
  if uncertainty is None and not scoring.msal_is_elementwise(features.shape[-1] + 1, structured):
    uncertainty = -scoring.msal(features, prototypes)  # the dense product: keep its scores
  if uncertainty is None:
    _check_pool("msal_d", jax.ShapeDtypeStruct((num,), features.dtype), labeled, budget)
    score_prototypes = None if structured else prototypes

    def keys(rows):  # MSAL's -max cos of the unlabeled rows, recomputable per row
      feats, lab = (features, labeled) if rows is None else (features[rows], labeled[rows])
      return rank_keys(-scoring.msal(feats, score_prototypes), ~lab)

    vals, cand = top_k_of(keys, num, m)
    cand = jnp.where(jnp.isfinite(vals), cand, -1)
  else:
    uncertainty = jnp.asarray(uncertainty)
    if uncertainty.shape != (num,):
      raise ValueError(
          f"msal_d: uncertainty must be [N={num}], got shape {uncertainty.shape}."
      )
    _check_pool("msal_d", uncertainty, labeled, budget)
    cand = top_k_masked(uncertainty, ~labeled, m)
  safe = jnp.where(cand >= 0, cand, 0)
  return diversify(cand, features[safe], prototypes, budget=budget)


def diversify(candidates: ArrayLike, candidate_features: ArrayLike, prototypes: ArrayLike, *,
              budget: int) -> jax.Array:
  """MSAL-D's steps 2-4 on a given candidate set (see :func:`msal_d`).

  Shared by :func:`msal_d` and its sharded and streamed versions
  (:mod:`msal_jax.parallel`, :mod:`msal_jax.streaming`), which find the same
  candidates without holding the whole pool.

  Args:
    candidates: ``[m] int32`` pool indices, most uncertain first, ``-1`` in
      unused slots (which must come last).
    candidate_features: ``[m, C-1]`` their features (rows of ``-1`` slots are
      ignored).
    prototypes: ``[C, C-1]``.
    budget: static number of samples to return (``budget > m`` pads with ``-1``).

  Returns:
    ``[budget] int32`` pool indices in query order, ``-1`` padded.
  """
  cand = jnp.asarray(candidates)
  m = cand.shape[0]
  valid = cand >= 0
  safe = jnp.where(valid, cand, 0)
  classes, close = scoring.nearest_prototype(candidate_features, prototypes)
  num_classes = jnp.shape(prototypes)[0]

  # Within-class rank: sort by (class, closeness desc, index); a candidate's
  # rank is its position minus the position where its class starts.
  # Invalid slots form a class of their own (C) after all real ones.
  cls_key = jnp.where(valid, classes, num_classes)
  order = jnp.lexsort((safe, -close, cls_key))
  sorted_cls = cls_key[order]
  start = jnp.searchsorted(sorted_cls, sorted_cls, side="left")
  rank = jnp.zeros(m, jnp.int32).at[order].set(jnp.arange(m, dtype=jnp.int32) - start)
  rank = jnp.where(valid, rank, m)

  # Round robin over ranks; within a rank the closest first, then the index.
  order = jnp.lexsort((safe, -close, rank))
  picked = cand[order[:budget]]
  if budget > m:  # budget > N: nothing more to take
    picked = jnp.concatenate([picked, jnp.full(budget - m, -1, picked.dtype)])
  return picked
