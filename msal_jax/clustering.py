"""Diversity selection on embeddings: k-center, k-means, k-means++ (BADGE), DBAL.

Pure, jit-able functions with static sizes and no host round trips; the
randomised ones are deterministic for a given key. Like :mod:`msal_jax.selection`,
every selector returns ``[budget] int32`` pool indices, distinct and unlabeled,
with ``-1`` only in the slots beyond the number of unlabeled samples.

Memory stays ``O(N)`` per step (plus the ``[N, D]`` features and, for k-means,
the ``[N, K]`` assignment matmul): no ``N x N`` matrix and, for BADGE, no
``N x (C*D)`` gradient-embedding matrix. Squared distances are computed as
``||x||^2 + ||c||^2 - 2 x.c`` with matmuls (clamped at 0) on features centred
at their mean first, which changes no distance and keeps the cancellation small.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from msal_jax import scoring, selection

# Lloyd updates of `kmeans` (an upper bound: the loop stops once no assignment
# changes). The query needs a good partition, not a converged one; on
# 128-d and 512-d test data 3 updates came within about 1% of the inertia of
# scikit-learn's converged KMeans (docs/benchmarks.md), at a fraction of the
# cost of the 20-30 updates sklearn runs (each is an [N, D] x [D, b] matmul).
KMEANS_ITERS = 3

# `kmeans` draws its k-means++ seeds in this many batches (one matmul each)
# rather than one at a time (one pass over [N, D] each).
KMEANS_SEED_ROUNDS = 5

# Lloyd updates of `dbal`: its k-means runs on beta*b candidates only, so
# iterating to convergence is cheap.
DBAL_ITERS = 20

# k-center computes the distance columns of the `KCENTER_LOOKAHEAD` currently
# farthest samples in one matmul and reuses them while the next farthest sample
# is among them. Same result as one column per step; fewer passes over [N, D].
KCENTER_LOOKAHEAD = 16

# Labeled samples per block when k-center measures the distance to the labeled set.
_LABELED_BLOCK = 128


# ---------------------------------------------------------------------------
# distances
# ---------------------------------------------------------------------------


def _features(name: str, features: ArrayLike, labeled: ArrayLike, budget: int):
  x = jnp.asarray(features)
  labeled = jnp.asarray(labeled)
  if x.ndim != 2:
    raise ValueError(f"{name}: features must be [N, D], got shape {x.shape}.")
  if labeled.shape != x.shape[:1] or labeled.dtype != jnp.bool_:
    raise ValueError(
        f"{name}: labeled must be a bool [N={x.shape[0]}] mask, got {labeled.dtype} "
        f"{labeled.shape}."
    )
  if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
    raise ValueError(f"{name}: budget must be a Python int >= 1 (static), got {budget!r}.")
  return x.astype(jnp.promote_types(x.dtype, jnp.float32)), labeled


def _centred(x: jax.Array) -> jax.Array:
  return x - jnp.mean(x, axis=0, keepdims=True)


def sq_dists(x: ArrayLike, c: ArrayLike, x_sq: ArrayLike | None = None,
             c_sq: ArrayLike | None = None) -> jax.Array:
  """Squared Euclidean distances ``[N, K]`` of rows ``x [N, D]`` to rows ``c [K, D]``.

  ``max(||x||^2 + ||c||^2 - 2 x.c, 0)`` with one matmul; ``x_sq``/``c_sq`` are
  the squared row norms if already known.
  """
  x, c = jnp.asarray(x), jnp.asarray(c)
  x_sq = jnp.sum(x * x, axis=1) if x_sq is None else x_sq
  c_sq = jnp.sum(c * c, axis=1) if c_sq is None else c_sq
  d = x_sq[:, None] + c_sq[None, :] - 2.0 * (x @ c.T)
  return jnp.maximum(d, 0.0)


def min_sq_dist_to_set(x: jax.Array, x_sq: jax.Array, members: jax.Array) -> jax.Array:
  """``min_j ||x_i - x_j||^2`` over the rows with ``members[j]``: ``[N]``, ``+inf`` if none.

  Blocks of ``_LABELED_BLOCK`` members at a time (a ``lax.while_loop`` over the
  dynamic member count): ``O(N * block)`` memory, ``N * |members| * D`` work.
  """
  n = x.shape[0]
  idx = jnp.nonzero(members, size=n + _LABELED_BLOCK, fill_value=0)[0]
  count = jnp.sum(members, dtype=jnp.int32)

  def body(carry):
    start, best = carry
    block = lax.dynamic_slice(idx, (start,), (_LABELED_BLOCK,))
    ok = start + jnp.arange(_LABELED_BLOCK) < count
    d = jnp.where(ok[None, :], sq_dists(x, x[block], x_sq, x_sq[block]), jnp.inf)
    return start + _LABELED_BLOCK, jnp.minimum(best, jnp.min(d, axis=1))

  init = (jnp.zeros((), jnp.int32), jnp.full(n, jnp.inf, x.dtype))
  return lax.while_loop(lambda c: c[0] < count, body, init)[1]


def gradient_embedding_factors(logits: ArrayLike) -> jax.Array:
  """BADGE's ``a = p - onehot(argmax p)``, ``[N, C]``, from logits.

  The gradient embedding of sample ``i`` is ``g_i = a_i ⊗ h_i`` (the gradient
  of the cross-entropy at the predicted label w.r.t. the last layer's weights,
  up to sign), never materialised: see :func:`gradient_sq_dists`.
  """
  p = jax.nn.softmax(jnp.asarray(logits), axis=-1)
  return p - jax.nn.one_hot(jnp.argmax(p, axis=-1), p.shape[-1], dtype=p.dtype)


def gradient_sq_dists(a: ArrayLike, h: ArrayLike, idx: ArrayLike) -> jax.Array:
  """``||g_i - g_j||^2`` for all ``i`` and the ``j`` in ``idx [K]``: ``[N, K]``.

  With ``g = a ⊗ h``: ``||g_i||^2 = ||a_i||^2 ||h_i||^2``, ``g_i . g_j = (a_i .
  a_j)(h_i . h_j)``, so ``||g_i - g_j||^2 = ||a_i||^2||h_i||^2 +
  ||a_j||^2||h_j||^2 - 2 (a_i . a_j)(h_i . h_j)`` (clamped at 0): ``N (C + D)``
  work per column instead of ``N C D``.
  """
  a, h, idx = jnp.asarray(a), jnp.asarray(h), jnp.asarray(idx)
  g_sq = jnp.sum(a * a, axis=1) * jnp.sum(h * h, axis=1)
  d = g_sq[:, None] + g_sq[idx][None, :] - 2.0 * (a @ a[idx].T) * (h @ h[idx].T)
  return jnp.maximum(d, 0.0)


# ---------------------------------------------------------------------------
# k-center
# ---------------------------------------------------------------------------


def kcenter(features: ArrayLike, labeled: ArrayLike, *, budget: int) -> jax.Array:
  """Greedy k-center (farthest-first traversal) seeded by the labeled set.

  Each step takes the unlabeled, not yet chosen sample whose squared distance
  to its nearest labeled or chosen sample is largest (ties: lowest index). With
  no labeled sample, the first pick is the unlabeled sample farthest from the
  mean of the unlabeled samples. A ``lax.fori_loop`` keeps the running
  minimum distance ``[N]``; the distance columns of the ``KCENTER_LOOKAHEAD``
  farthest samples are computed together and reused while the next pick is
  among them (the result is that of one column per step).

  Args:
    features: ``[N, D]`` embeddings.
    labeled: ``[N]`` bool mask.
    budget: static number of samples.

  Returns:
    ``[budget] int32`` pool indices in pick order, ``-1`` beyond the number of
    unlabeled samples.
  """
  x, labeled = _features("kcenter", features, labeled, budget)
  x = _centred(x)
  n = x.shape[0]
  look = min(KCENTER_LOOKAHEAD, n)
  x_sq = jnp.sum(x * x, axis=1)
  unlabeled = ~labeled
  has_labeled = jnp.any(labeled)
  w = unlabeled.astype(x.dtype)
  mean_u = (w @ x) / jnp.maximum(jnp.sum(w), 1.0)
  d_mean = jnp.maximum(jnp.sum(jnp.square(x - mean_u[None, :]), axis=1), 0.0)

  def refill(score):
    cand = selection.top_k(score, look)[1]
    return cand.astype(jnp.int32), sq_dists(x[cand], x, x_sq[cand], x_sq)

  def step(t, state):
    min_d, avail, out, cache_idx, cache = state
    base = jnp.where((t == 0) & ~has_labeled, d_mean, min_d)
    score = jnp.where(avail, base, -jnp.inf)
    j = jnp.argmax(score).astype(jnp.int32)
    valid = avail[j]
    cache_idx, cache = lax.cond(
        jnp.any(cache_idx == j), lambda s: (cache_idx, cache), refill, score
    )
    col = cache[jnp.argmax(cache_idx == j)]
    min_d = jnp.where(valid, jnp.minimum(min_d, col), min_d)
    return (min_d, avail.at[j].set(False), out.at[t].set(jnp.where(valid, j, -1)),
            cache_idx, cache)

  init = (min_sq_dist_to_set(x, x_sq, labeled), unlabeled, jnp.full(budget, -1, jnp.int32),
          jnp.full(look, -1, jnp.int32), jnp.zeros((look, n), x.dtype))
  return lax.fori_loop(0, budget, step, init)[2]


# ---------------------------------------------------------------------------
# D^2 sampling (k-means++ seeding)
# ---------------------------------------------------------------------------


def _draw(mass: jax.Array, u: jax.Array, avail: jax.Array) -> jax.Array:
  """Index drawn with probability ``mass / sum(mass)`` by inverse CDF at ``u in [0, 1)``.

  The first ``i`` with ``cumsum(mass)[i] > u * sum(mass)``; with no mass left,
  the lowest available index.
  """
  cdf = jnp.cumsum(mass)
  total = cdf[-1]
  j = jnp.searchsorted(cdf, u * total, side="right")
  last = jnp.max(jnp.where(mass > 0, jnp.arange(mass.shape[0]), 0))
  j = jnp.minimum(j, last)  # u * total rounding up to total
  j = jnp.where(mass[j] > 0, j, jnp.argmax(mass))  # a float32 cumsum that is not monotone
  return jnp.where(total > 0, j, jnp.argmax(avail)).astype(jnp.int32)


def d2_seeding(first: jax.Array, column, eligible: jax.Array, uniforms: jax.Array) -> jax.Array:
  """Sequential k-means++ seeding from a given first pick: ``len(uniforms)`` distinct indices.

  Pick 0 is ``first``; pick ``t`` is drawn (inverse CDF at ``uniforms[t]``)
  with probability proportional to ``min_s d2(i, pick_s)`` over the eligible
  samples not yet picked. With no mass left (every remaining sample coincides
  with a pick) the lowest remaining index is taken. ``column(j) -> [N]`` gives
  ``d2(., j)``. Slots beyond the number of eligible samples are ``-1``.
  """
  budget = uniforms.shape[0]
  first = first.astype(jnp.int32)
  ok = eligible[first]

  def step(t, state):
    min_d, avail, out = state
    j = _draw(jnp.where(avail, min_d, 0.0), uniforms[t], avail)
    valid = avail[j]
    min_d = jnp.where(valid, jnp.minimum(min_d, column(j)), min_d)
    return min_d, avail.at[j].set(False), out.at[t].set(jnp.where(valid, j, -1))

  out = jnp.full(budget, -1, jnp.int32).at[0].set(jnp.where(ok, first, -1))
  min_d = jnp.where(ok, column(first), jnp.inf)
  avail = eligible.at[first].set(False)
  return lax.fori_loop(1, budget, step, (min_d, avail, out))[2]


def badge_from_uniforms(uniforms: ArrayLike, logits: ArrayLike, features: ArrayLike,
                        labeled: ArrayLike) -> jax.Array:
  """BADGE with the draws given: ``uniforms [budget]`` in ``[0, 1)``; see :func:`badge`."""
  uniforms = jnp.asarray(uniforms)
  # Not centred: the gradient embedding a ⊗ h is not translation invariant in h.
  h, labeled = _features("badge", features, labeled, int(uniforms.shape[0]))
  a = gradient_embedding_factors(logits).astype(h.dtype)
  if a.shape[0] != h.shape[0]:
    raise ValueError(f"badge: logits {a.shape} and features {h.shape} disagree on N.")
  g_sq = jnp.sum(a * a, axis=1) * jnp.sum(h * h, axis=1)
  first = jnp.argmax(jnp.where(labeled, -jnp.inf, g_sq))
  column = lambda j: gradient_sq_dists(a, h, j[None])[:, 0]
  return d2_seeding(first, column, ~labeled, uniforms.astype(h.dtype))


def badge(key: jax.Array, logits: ArrayLike, features: ArrayLike, labeled: ArrayLike, *,
          budget: int) -> jax.Array:
  """BADGE: k-means++ seeding on gradient embeddings ``g_i = (p_i - onehot(argmax p_i)) ⊗ h_i``.

  The first pick is the unlabeled sample of largest ``||g_i||`` (ties: lowest
  index); each next one is drawn among the remaining unlabeled samples with
  probability proportional to the squared distance to the nearest pick
  (DeepAL+'s ``init_centers``). Distances use the factorisation of
  :func:`gradient_sq_dists`: ``O(N (C + D))`` per step, no ``[N, C*D]`` matrix.
  The draws are ``jax.random.uniform(key, (budget,))`` (slot 0 unused), so
  ``badge(key, ...) == badge_from_uniforms(jax.random.uniform(key, (budget,)), ...)``.

  Args:
    key: PRNG key.
    logits: ``[N, C]`` of a linear-head network.
    features: ``[N, D]`` penultimate embeddings ``h``.
    labeled: ``[N]`` bool mask.
    budget: static number of samples.

  Returns:
    ``[budget] int32`` pool indices in pick order, ``-1`` beyond the number of
    unlabeled samples.
  """
  return badge_from_uniforms(jax.random.uniform(key, (budget,)), logits, features, labeled)


# ---------------------------------------------------------------------------
# k-means
# ---------------------------------------------------------------------------


def _seed(key, x, weights, num, rounds):
  """:func:`kmeanspp_seeds`, also returning each row's nearest seed slot and distance."""
  n = x.shape[0]
  x_sq = jnp.sum(x * x, axis=1)
  log_w = jnp.where(weights > 0, jnp.log(jnp.where(weights > 0, weights, 1.0)), -jnp.inf)
  first = jnp.argmax(log_w + jax.random.gumbel(jax.random.fold_in(key, 0), (n,), x.dtype))
  ok0 = log_w[first] > -jnp.inf
  m = max(1, -(-(num - 1) // rounds))
  rounds = -(-(num - 1) // m)

  def body(r, state):
    min_d, slot, avail, seeds = state
    g = jax.random.gumbel(jax.random.fold_in(key, r + 1), (n,), x.dtype)
    s = jnp.where(avail & (min_d > 0), log_w + jnp.log(jnp.maximum(min_d, 1e-38)) + g, -jnp.inf)
    vals, p = selection.top_k(s, m)
    first_slot = 1 + r * m
    ok = (vals > -jnp.inf) & (first_slot + jnp.arange(m) < num)
    d = jnp.where(ok[None, :], sq_dists(x, x[p], x_sq, x_sq[p]), jnp.inf)
    near, d_near = jnp.argmin(d, axis=1), jnp.min(d, axis=1)
    closer = d_near < min_d  # ties keep the earlier seed: the lowest centre index
    avail = avail.at[jnp.where(ok, p, n)].set(False, mode="drop")
    seeds = lax.dynamic_update_slice(seeds, jnp.where(ok, p, -1).astype(jnp.int32), (first_slot,))
    return (jnp.where(closer, d_near, min_d), jnp.where(closer, first_slot + near, slot), avail,
            seeds)

  min_d = jnp.where(ok0, sq_dists(x, x[first][None, :], x_sq, x_sq[first][None])[:, 0], jnp.inf)
  avail = (weights > 0).at[first].set(False)
  seeds = jnp.full(1 + rounds * m, -1, jnp.int32).at[0].set(jnp.where(ok0, first, -1))
  init = (min_d, jnp.zeros(n, jnp.int32), avail, seeds)
  min_d, slot, _, seeds = lax.fori_loop(0, rounds, body, init)
  return seeds[:num], slot, min_d


def kmeanspp_seeds(key: jax.Array, x: ArrayLike, weights: ArrayLike, *, num: int,
                   rounds: int) -> jax.Array:
  """k-means++ (D^2) seeding, ``num - 1`` draws spread over ``rounds`` batches.

  Seed 0 is drawn with probability proportional to ``weights``. Each round
  then draws ``m = ceil((num - 1) / rounds)`` distinct seeds without
  replacement (Gumbel top-``m``; fewer in the last round if ``num`` is reached)
  with probability proportional to ``weights_i * min_s ||x_i - seed_s||^2``
  over the seeds of earlier rounds, and updates the distances with one
  ``[N, D] x [D, m]`` matmul. ``rounds = num - 1`` is exactly sequential
  k-means++; fewer rounds trade the within-round distance updates for matmuls
  instead of matrix-vector products (k-means||-style). Samples of weight 0 are
  never seeds. The Gumbel noise of round ``r`` (0: seed 0) is
  ``jax.random.gumbel(jax.random.fold_in(key, r), (N,))``.

  Args:
    key: PRNG key.
    x: ``[N, D]``.
    weights: ``[N]`` non-negative.
    num: static number of seeds.
    rounds: static number of batches, ``>= 1``.

  Returns:
    ``[num] int32`` distinct indices; ``-1`` where no sample with positive
    weight and distance is left.
  """
  x = jnp.asarray(x)
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  return _seed(key, x, jnp.asarray(weights, x.dtype), num, rounds)[0]


def _assign(x, x_sq, centres):
  s = jnp.sum(centres * centres, axis=1)[None, :] - 2.0 * (x @ centres.T)
  return jnp.argmin(s, axis=1).astype(jnp.int32), jnp.maximum(x_sq + jnp.min(s, axis=1), 0.0)


def _lloyd(x, w, c0, iters, first=None):
  """Lloyd from centres ``c0`` (``first``: their assignment and distances, if known)."""
  k = c0.shape[0]
  x_sq = jnp.sum(x * x, axis=1)

  def body(state):
    it, _, assign, _, c = state
    sums = jax.ops.segment_sum(w[:, None] * x, assign, k)
    mass = jax.ops.segment_sum(w, assign, k)
    c = jnp.where(mass[:, None] > 0, sums / jnp.where(mass > 0, mass, 1.0)[:, None], c)
    new, d = _assign(x, x_sq, c)
    return it + 1, jnp.any((new != assign) & (w > 0)), new, d, c

  assign, d = _assign(x, x_sq, c0) if first is None else first
  init = (jnp.zeros((), jnp.int32), jnp.array(True), assign, d, c0)
  _, _, assign, d, c = lax.while_loop(lambda s: (s[0] < iters) & s[1], body, init)
  return c, assign, d


def lloyd(features: ArrayLike, weights: ArrayLike, centres: ArrayLike, *,
          iters: int = KMEANS_ITERS) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Weighted Lloyd iterations from the given centres.

  Each iteration moves each centre to the ``weights``-weighted mean of the rows
  assigned to it (a centre with no weight keeps its place), then reassigns
  every row to its nearest centre (ties: lowest centre index). Stops after
  ``iters`` updates or when no assignment of a row with positive weight changes.

  Args:
    features: ``[N, D]``.
    weights: ``[N]`` non-negative (0: the row does not pull the centres).
    centres: ``[K, D]`` initial centres.
    iters: static maximum number of centre updates (0: assign only).

  Returns:
    ``(centres [K, D], assignment [N] int32, sq_dist [N])``: the final centres,
    each row's nearest final centre and its squared distance to it; the
    weighted inertia is ``sum(weights * sq_dist)``.
  """
  x = jnp.asarray(features)
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  shift = jnp.mean(x, axis=0, keepdims=True)
  c, assign, d = _lloyd(x - shift, jnp.asarray(weights, x.dtype),
                        jnp.asarray(centres, x.dtype) - shift, iters)
  return c + shift, assign, d


def nearest_per_cluster(assign: jax.Array, sq_dist: jax.Array, eligible: jax.Array, *,
                        budget: int) -> jax.Array:
  """The eligible member nearest its centre, per cluster; filled to ``budget`` distinct.

  Cluster ``k``'s pick is its eligible row of least ``sq_dist`` (ties: lowest
  index); picks come in cluster order. Clusters without an eligible member give
  none; their slots are filled with the other eligible rows in order of
  increasing ``sq_dist`` (ties: lowest index). ``-1`` beyond the number of
  eligible rows. ``assign`` holds cluster ids in ``[0, budget)``.
  """
  n = assign.shape[0]
  key = jnp.where(eligible, sq_dist, jnp.inf)
  best = jax.ops.segment_min(key, assign, budget)
  is_best = eligible & (key == best[assign])
  pick = jax.ops.segment_min(jnp.where(is_best, jnp.arange(n), n), assign, budget)
  has = pick < n
  slot = jnp.arange(budget)
  picks = jnp.where(has, pick, -1)[jnp.argsort(jnp.where(has, slot, budget + slot))]
  chosen = jnp.zeros(n, bool).at[jnp.where(has, pick, n)].set(True, mode="drop")
  fill = selection.bottom_k_masked(sq_dist, eligible & ~chosen, budget)
  num = jnp.sum(has)
  return jnp.where(slot < num, picks, fill[jnp.clip(slot - num, 0, budget - 1)]).astype(jnp.int32)


def kmeans_fit(key: jax.Array, features: ArrayLike, weights: ArrayLike, *, num: int,
               iters: int = KMEANS_ITERS, seed_rounds: int = KMEANS_SEED_ROUNDS
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Weighted k-means: :func:`kmeanspp_seeds` then :func:`lloyd`.

  If every weight is 0, all rows weigh 1. Missing seeds (fewer rows of
  positive weight than ``num``) repeat seed 0; a repeated centre starts with no
  rows (ties go to the lowest centre index).

  Returns:
    ``(centres [num, D], assignment [N] int32, sq_dist [N])`` as :func:`lloyd`.
  """
  x = jnp.asarray(features)
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  shift = jnp.mean(x, axis=0, keepdims=True)
  x = x - shift  # no distance changes; less cancellation in ||x||^2 + ||c||^2 - 2 x.c
  w = jnp.asarray(weights, x.dtype)
  w = jnp.where(jnp.sum(w) > 0, w, 1.0)
  seeds, slot, min_d = _seed(key, x, w, num, min(seed_rounds, max(num - 1, 1)))
  # The seeding has measured every row's nearest seed: Lloyd's first assignment.
  c, assign, d = _lloyd(x, w, x[jnp.where(seeds >= 0, seeds, seeds[0])], iters,
                        first=(slot, jnp.maximum(min_d, 0.0)))
  return c + shift, assign, d


def _kmeans_query(key, x, weights, eligible, budget, iters, rounds):
  """k-means of the eligible rows (the others weigh 0), the member nearest each centre."""
  mass = jnp.where(eligible, weights, 0.0)
  mass = jnp.where(jnp.sum(mass) > 0, mass, eligible.astype(x.dtype))
  _, assign, d = kmeans_fit(key, x, mass, num=budget, iters=iters, seed_rounds=rounds)
  return nearest_per_cluster(assign, d, eligible, budget=budget)


def kmeans(key: jax.Array, features: ArrayLike, labeled: ArrayLike, *, budget: int,
           iters: int = KMEANS_ITERS, seed_rounds: int = KMEANS_SEED_ROUNDS) -> jax.Array:
  """k-means query: ``budget`` clusters of the unlabeled embeddings, the member nearest each centre.

  :func:`kmeanspp_seeds` on the unlabeled samples (``seed_rounds`` batches;
  draws from ``key``), :func:`lloyd` for at most ``iters`` updates with the
  labeled rows at weight 0, then :func:`nearest_per_cluster` (slots of clusters
  without an unlabeled member go to the unlabeled samples nearest their centre).

  Args:
    key: PRNG key.
    features: ``[N, D]`` embeddings.
    labeled: ``[N]`` bool mask.
    budget: static number of samples = of clusters.
    iters: static maximum number of Lloyd updates.
    seed_rounds: static number of seeding batches (``budget - 1``: sequential
      k-means++).

  Returns:
    ``[budget] int32`` distinct unlabeled pool indices in cluster order, ``-1``
    beyond the number of unlabeled samples.
  """
  x, labeled = _features("kmeans", features, labeled, budget)
  eligible = ~labeled
  return _kmeans_query(key, x, eligible.astype(x.dtype), eligible, budget, iters, seed_rounds)


def dbal(key: jax.Array, logits: ArrayLike, features: ArrayLike, labeled: ArrayLike, *,
         budget: int, beta: float, iters: int = DBAL_ITERS) -> jax.Array:
  """DBAL (Zhdanov 2019): margin pre-filter, weighted k-means, nearest sample to each centre.

  1. Candidates: the ``m = min(ceil(beta*budget), N)`` unlabeled samples with
     the smallest margin ``p_(1) - p_(2)`` (:func:`msal_jax.scoring.margin`).
  2. Weighted k-means with ``budget`` clusters on the candidates' embeddings,
     weight = informativeness ``1 - (p_(1) - p_(2))``: sequential weighted
     k-means++ seeding (draws from ``key``), then :func:`lloyd` for at most
     ``iters`` updates.
  3. Per cluster, the candidate nearest its centre (:func:`nearest_per_cluster`).

  Args:
    key: PRNG key.
    logits: ``[N, C]``.
    features: ``[N, D]`` embeddings.
    labeled: ``[N]`` bool mask.
    budget: static number of samples = of clusters.
    beta: static pre-filter factor ``>= 1``.
    iters: static maximum number of Lloyd updates.

  Returns:
    ``[budget] int32`` distinct unlabeled pool indices in cluster order, ``-1``
    beyond the number of unlabeled samples.
  """
  x, labeled = _features("dbal", features, labeled, budget)
  if not (isinstance(beta, (int, float)) and beta >= 1):
    raise ValueError(f"dbal: beta must be a number >= 1 (static), got {beta!r}.")
  u = scoring.margin(logits)  # p_(2) - p_(1): higher = more uncertain
  if u.shape != labeled.shape:
    raise ValueError(f"dbal: logits {jnp.shape(logits)} and features {x.shape} disagree on N.")
  m = selection.num_candidates(budget, beta, x.shape[0])
  cand = selection.top_k_masked(u, ~labeled, m)
  valid = cand >= 0
  safe = jnp.where(valid, cand, 0)
  k = min(budget, m)
  picked = _kmeans_query(key, x[safe], jnp.where(valid, 1.0 + u[safe], 0.0).astype(x.dtype), valid,
                         k, iters, k)
  picked = jnp.where(picked >= 0, safe[jnp.maximum(picked, 0)], -1).astype(jnp.int32)
  if budget > k:  # budget > N
    picked = jnp.concatenate([picked, jnp.full(budget - k, -1, jnp.int32)])
  return picked


# ---------------------------------------------------------------------------
# strategy adapters: select(key, outputs, labeled, *, budget, beta) on a
# strategies.PoolOutputs (features = the penultimate embedding of a linear head)
# ---------------------------------------------------------------------------


def select_kcenter(key, outputs, labeled, *, budget, beta):
  del key, beta
  return kcenter(outputs.features, labeled, budget=budget)


def select_kmeans(key, outputs, labeled, *, budget, beta):
  del beta
  return kmeans(key, outputs.features, labeled, budget=budget)


def select_badge(key, outputs, labeled, *, budget, beta):
  del beta
  return badge(key, outputs.logits, outputs.features, labeled, budget=budget)


def select_dbal(key, outputs, labeled, *, budget, beta):
  return dbal(key, outputs.logits, outputs.features, labeled, budget=budget, beta=beta)
