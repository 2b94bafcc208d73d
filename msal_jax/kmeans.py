"""k-means as DeepAL+'s KMeansSampling runs it (scikit-learn ``KMeans``), jitted.

DeepAL+ (``query_strategies/kmeans_sampling.py``) fits
``sklearn.cluster.KMeans(n_clusters=b)`` on the unlabeled embeddings and
queries, per cluster, the member nearest its centre. In the scikit-learn it
pins (1.0.2) that is: ``n_init = 10`` restarts, each seeded by *greedy*
k-means++ (``2 + int(log b)`` D^2-sampled candidates per seed, the one that
lowers the potential most is kept), then Lloyd until the labels stop changing
or the squared centre shift falls to ``tol = 1e-4`` times the mean feature
variance (at most 300 iterations; a cluster left empty takes the sample
farthest from its centre), keeping the restart of lowest inertia. This module
does the same with static shapes: the restarts' seedings run side by side
(one ``[N, D] x [D, n_init * trials]`` matmul per seed), their Lloyd runs one
after the other in a ``lax.fori_loop`` (a ``lax.while_loop`` each), so memory
is ``O(N (b + n_init * trials))``, never ``N x N``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from msal_jax import selection
from msal_jax.badge import inverse_cdf_draw
from msal_jax.distances import as_float, check_features, sq_dists

# scikit-learn's KMeans defaults in the version DeepAL+ pins (1.0.2): restarts,
# the Lloyd iteration cap and the relative tolerance on the centre shift.
KMEANS_N_INIT = 10
KMEANS_MAX_ITER = 300
KMEANS_TOL = 1e-4


def local_trials(num: int) -> int:
  """scikit-learn's greedy k-means++ candidates per seed: ``2 + int(log(num))``."""
  return 2 + int(math.log(num))


def _greedy_seed(u, x, x_sq, w):
  """Greedy k-means++ of one restart: ``u [num, L]`` uniforms -> ``[num] int32`` seeds."""
  num, trials = u.shape
  avail = w > 0
  first = inverse_cdf_draw(w, u[0, 0], avail)
  ok0 = avail[first]
  closest = jnp.where(ok0, sq_dists(x, x[first][None], x_sq, x_sq[first][None])[:, 0], jnp.inf)
  seeds = jnp.full(num, -1, jnp.int32).at[0].set(jnp.where(ok0, first, -1))

  def step(t, state):
    closest, avail, seeds = state
    mass = jnp.where(avail, w * closest, 0.0)
    cand = jax.vmap(inverse_cdf_draw, in_axes=(None, 0, None))(mass, u[t], avail)
    d = jnp.minimum(closest[:, None], sq_dists(x, x[cand], x_sq, x_sq[cand]))  # [N, L]
    best = jnp.argmin(w @ d)  # the candidate of least potential (ties: the first drawn)
    j = cand[best]
    valid = avail[j]
    closest = jnp.where(valid, d[:, best], closest)
    return closest, avail.at[j].set(False), seeds.at[t].set(jnp.where(valid, j, -1))

  return lax.fori_loop(1, num, step, (closest, avail.at[first].set(False), seeds))[2]


def greedy_kmeanspp(uniforms: ArrayLike, x: ArrayLike, weights: ArrayLike) -> jax.Array:
  """scikit-learn's greedy k-means++ seeding with the draws given.

  Seed 0 is drawn with probability proportional to ``weights`` (inverse CDF
  at ``uniforms[0, 0]``). Seed ``t`` draws ``L`` candidates independently,
  with probability proportional to ``weights_i * min_s ||x_i - seed_s||^2``
  (inverse CDF at ``uniforms[t]``), and keeps the one whose addition gives
  the least potential ``sum_i weights_i min_s ||x_i - seed_s||^2`` (ties: the
  first drawn). Samples of weight 0 are never seeds; with no mass left (every
  remaining sample coincides with a seed) the lowest-index remaining one is
  taken, and ``-1`` once none is left.

  Args:
    uniforms: ``[num, L]`` in ``[0, 1)``; ``L = local_trials(num)`` is sklearn's.
    x: ``[N, D]``.
    weights: ``[N]`` non-negative.

  Returns:
    ``[num] int32`` distinct indices in seeding order.
  """
  x = as_float(x)
  w = jnp.asarray(weights, x.dtype)
  return _greedy_seed(jnp.asarray(uniforms, x.dtype), x, jnp.sum(x * x, axis=1), w)


def _assign(x, x_sq, centres):
  s = jnp.sum(centres * centres, axis=1)[None, :] - 2.0 * (x @ centres.T)
  return jnp.argmin(s, axis=1).astype(jnp.int32), jnp.maximum(x_sq + jnp.min(s, axis=1), 0.0)


def _relocate(x, w, d, assign, sums, mass):
  """sklearn's empty-cluster fix: the ``e``-th empty cluster takes the ``e``-th farthest row.

  Rows (of positive weight) are ranked by the squared distance ``d`` to
  their current centre (largest first, ties: lowest index); each moved row's
  weighted sum leaves its old cluster and becomes the empty cluster's.
  """
  k = mass.shape[0]
  empty = mass <= 0
  rank = jnp.cumsum(empty) - 1
  top = min(k, x.shape[0])
  far_d, far = selection.top_k(jnp.where(w > 0, d, -jnp.inf), top)
  r = jnp.clip(rank, 0, top - 1)
  row = far[r]
  take = empty & (rank < top) & (far_d[r] > -jnp.inf)
  moved = jnp.where(take, w[row], 0.0)
  old = jnp.where(take, assign[row], k)
  sums = sums.at[old].add(-moved[:, None] * x[row], mode="drop")
  mass = mass.at[old].add(-moved, mode="drop")
  return (jnp.where(take[:, None], moved[:, None] * x[row], sums), jnp.where(take, moved, mass))


def _lloyd(x, w, c0, iters, first=None, *, tol=0.0, relocate=False):
  """Lloyd from centres ``c0`` (``first``: their assignment and distances, if known).

  Stops after ``iters`` updates, when no assignment of a row with positive
  weight changes, or when the squared centre shift is ``<= tol``.
  """
  k = c0.shape[0]
  x_sq = jnp.sum(x * x, axis=1)

  def body(state):
    it, _, assign, d, c = state
    sums = jax.ops.segment_sum(w[:, None] * x, assign, k)
    mass = jax.ops.segment_sum(w, assign, k)
    if relocate:
      sums, mass = lax.cond(jnp.any(mass <= 0), _relocate, lambda *a: (a[4], a[5]),
                            x, w, d, assign, sums, mass)
    new_c = jnp.where(mass[:, None] > 0, sums / jnp.where(mass > 0, mass, 1.0)[:, None], c)
    new, new_d = _assign(x, x_sq, new_c)
    moving = jnp.any((new != assign) & (w > 0)) & (jnp.sum(jnp.square(new_c - c)) > tol)
    return it + 1, moving, new, new_d, new_c

  assign, d = _assign(x, x_sq, c0) if first is None else first
  init = (jnp.zeros((), jnp.int32), jnp.array(True), assign, d, c0)
  _, _, assign, d, c = lax.while_loop(lambda s: (s[0] < iters) & s[1], body, init)
  return c, assign, d


def lloyd(features: ArrayLike, weights: ArrayLike, centres: ArrayLike, *,
          iters: int = KMEANS_MAX_ITER, tol: float = 0.0,
          relocate: bool = True) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Weighted Lloyd iterations from the given centres (scikit-learn's ``lloyd``).

  Each iteration moves each centre to the ``weights``-weighted mean of the rows
  assigned to it, then reassigns every row to its nearest centre (ties: lowest
  centre index). A centre with no weight takes the row farthest from its
  centre if ``relocate`` (sklearn's rule), else keeps its place. Stops after
  ``iters`` updates, when no assignment of a row with positive weight changes,
  or when the summed squared centre shift is ``<= tol`` (absolute).

  Args:
    features: ``[N, D]``.
    weights: ``[N]`` non-negative (0: the row does not pull the centres).
    centres: ``[K, D]`` initial centres.
    iters: static maximum number of centre updates (0: assign only).
    tol: absolute tolerance on the squared centre shift (0: to convergence).
    relocate: static; move empty clusters as scikit-learn does.

  Returns:
    ``(centres [K, D], assignment [N] int32, sq_dist [N])``: the final centres,
    each row's nearest final centre and its squared distance to it; the
    weighted inertia is ``sum(weights * sq_dist)``.
  """
  x = as_float(features)
  shift = jnp.mean(x, axis=0, keepdims=True)
  c, assign, d = _lloyd(x - shift, jnp.asarray(weights, x.dtype),
                        jnp.asarray(centres, x.dtype) - shift, iters, tol=tol, relocate=relocate)
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


def restart_uniforms(key: jax.Array, n_init: int, num: int, trials: int) -> jax.Array:
  """The seeding draws of :func:`kmeans_fit`: restart ``r`` uses ``uniform(fold_in(key, r))``."""
  return jax.vmap(lambda r: jax.random.uniform(jax.random.fold_in(key, r), (num, trials)))(
      jnp.arange(n_init))


def _tolerance(x, w, tol):
  """sklearn's absolute tolerance: ``tol`` times the mean (weighted) feature variance."""
  mean = (w @ x) / jnp.sum(w)
  return tol * jnp.mean((w @ jnp.square(x - mean[None, :])) / jnp.sum(w))


def kmeans_fit(key: jax.Array, features: ArrayLike, weights: ArrayLike, *, num: int,
               n_init: int = KMEANS_N_INIT, max_iter: int = KMEANS_MAX_ITER,
               tol: float = KMEANS_TOL, trials: int | None = None
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Weighted k-means as scikit-learn's ``KMeans(n_clusters=num)`` (1.0.2 defaults).

  ``n_init`` restarts of :func:`greedy_kmeanspp` (``trials`` candidates per
  seed, default :func:`local_trials`; draws :func:`restart_uniforms`), each
  followed by :func:`lloyd` with empty-cluster relocation for at most
  ``max_iter`` updates and the absolute tolerance ``tol`` times the mean
  weighted feature variance; the restart of least weighted inertia is kept
  (ties: the earlier). If every weight is 0, all rows weigh 1. Missing seeds
  (fewer rows of positive weight than ``num``) repeat seed 0.

  Returns:
    ``(centres [num, D], assignment [N] int32, sq_dist [N])`` as :func:`lloyd`.
  """
  for name, v in (("n_init", n_init), ("max_iter", max_iter)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"kmeans: {name} must be a Python int >= 1 (static), got {v!r}.")
  x = as_float(features)
  shift = jnp.mean(x, axis=0, keepdims=True)
  x = x - shift  # no distance changes; less cancellation in ||x||^2 + ||c||^2 - 2 x.c
  w = jnp.asarray(weights, x.dtype)
  w = jnp.where(jnp.sum(w) > 0, w, 1.0)
  x_sq = jnp.sum(x * x, axis=1)
  u = restart_uniforms(key, n_init, num, local_trials(num) if trials is None else trials)
  seeds = jax.vmap(_greedy_seed, in_axes=(0, None, None, None))(u.astype(x.dtype), x, x_sq, w)
  tol_abs = _tolerance(x, w, tol)

  def restart(r, best):
    s = seeds[r]
    fit = _lloyd(x, w, x[jnp.where(s >= 0, s, s[0])], max_iter, tol=tol_abs, relocate=True)
    inertia = jnp.sum(w * fit[2])
    better = inertia < best[0]
    return jax.tree.map(lambda new, old: jnp.where(better, new, old), (inertia, *fit), best)

  n, k = x.shape[0], num
  init = (jnp.array(jnp.inf, x.dtype), jnp.zeros((k, x.shape[1]), x.dtype),
          jnp.zeros(n, jnp.int32), jnp.zeros(n, x.dtype))
  _, c, assign, d = lax.fori_loop(0, n_init, restart, init)
  return c + shift, assign, d


def kmeans(key: jax.Array, features: ArrayLike, labeled: ArrayLike, *, budget: int,
           n_init: int = KMEANS_N_INIT, max_iter: int = KMEANS_MAX_ITER,
           tol: float = KMEANS_TOL) -> jax.Array:
  """DeepAL+'s KMeansSampling: ``budget`` clusters of the unlabeled embeddings, nearest members.

  :func:`kmeans_fit` with the labeled rows at weight 0 (so the clustering is
  that of the unlabeled samples alone), then :func:`nearest_per_cluster`
  (slots of clusters without an unlabeled member go to the unlabeled samples
  nearest their centre).

  Args:
    key: PRNG key (the seeding draws).
    features: ``[N, D]`` embeddings.
    labeled: ``[N]`` bool mask.
    budget: static number of samples = of clusters.
    n_init, max_iter, tol: as :func:`kmeans_fit` (scikit-learn 1.0.2's defaults).

  Returns:
    ``[budget] int32`` distinct unlabeled pool indices in cluster order, ``-1``
    beyond the number of unlabeled samples.
  """
  x, labeled = check_features("kmeans", features, labeled, budget)
  eligible = ~labeled
  _, assign, d = kmeans_fit(key, x, eligible.astype(x.dtype), num=budget, n_init=n_init,
                            max_iter=max_iter, tol=tol)
  return nearest_per_cluster(assign, d, eligible, budget=budget)
