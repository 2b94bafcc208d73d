"""DBAL (Zhdanov 2019): margin pre-filter, weighted k-means, the candidate nearest each centre.

Its k-means is the library's own (not DeepAL+'s; DeepAL+ has no DBAL): weighted
k-means++ seeding through Gumbel top-``m`` draws (:func:`kmeanspp_seeds`),
sequential here, and at most :data:`DBAL_ITERS` Lloyd updates on the
``beta * b`` candidates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from msal_jax import scoring, selection
from msal_jax.distances import as_float, check_features, sq_dists
from msal_jax.kmeans import _lloyd, nearest_per_cluster

# Lloyd updates of `dbal`: its k-means runs on beta*b candidates only, so
# iterating to convergence is cheap.
DBAL_ITERS = 20


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
  x = as_float(x)
  return _seed(key, x, jnp.asarray(weights, x.dtype), num, rounds)[0]


def _dbal_kmeans(key, x, weights, eligible, budget, iters):
  """Weighted k-means of the eligible rows (the others weigh 0), the member nearest each centre.

  Sequential weighted k-means++ (:func:`kmeanspp_seeds`, ``budget - 1``
  rounds), then at most ``iters`` Lloyd updates that keep an empty cluster's
  centre in place. If no eligible row has weight, the eligible rows weigh 1.
  """
  mass = jnp.where(eligible, weights, 0.0)
  mass = jnp.where(jnp.sum(mass) > 0, mass, eligible.astype(x.dtype))
  x = x - jnp.mean(x, axis=0, keepdims=True)
  w = jnp.where(jnp.sum(mass) > 0, mass, 1.0)
  seeds, slot, min_d = _seed(key, x, w, budget, max(budget - 1, 1))
  # The seeding has measured every row's nearest seed: Lloyd's first assignment.
  _, assign, d = _lloyd(x, w, x[jnp.where(seeds >= 0, seeds, seeds[0])], iters,
                        first=(slot, jnp.maximum(min_d, 0.0)))
  return nearest_per_cluster(assign, d, eligible, budget=budget)


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
  x, labeled = check_features("dbal", features, labeled, budget)
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
  picked = _dbal_kmeans(key, x[safe], jnp.where(valid, 1.0 + u[safe], 0.0).astype(x.dtype), valid,
                        k, iters)
  picked = jnp.where(picked >= 0, safe[jnp.maximum(picked, 0)], -1).astype(jnp.int32)
  if budget > k:  # budget > N
    picked = jnp.concatenate([picked, jnp.full(budget - k, -1, jnp.int32)])
  return picked
