"""Diversity selection on embeddings: k-center, k-means, BADGE, DBAL (one module each).

This module re-exports them under one name (``clustering.kcenter``,
``clustering.kmeans``, ...) and adapts them to the strategy registry's
``select(key, outputs, labeled, *, budget, beta)``. The selectors are pure,
jit-able functions with static sizes and no host round trips; the randomised
ones are deterministic for a given key. Like :mod:`msal_jax.selection`, every
selector returns ``[budget] int32`` pool indices, distinct and unlabeled,
with ``-1`` only in the slots beyond the number of unlabeled samples.

Memory stays ``O(N)`` per step plus the ``[N, D]`` features and, for k-means,
the ``[N, K]`` assignment matmul: no ``N x N`` matrix and, for BADGE, no
``N x (C*D)`` gradient-embedding matrix (:mod:`msal_jax.distances`).

* :mod:`msal_jax.kcenter`: greedy farthest-first (DeepAL+'s KCenterGreedy).
* :mod:`msal_jax.kmeans`: scikit-learn's KMeans as DeepAL+ calls it.
* :mod:`msal_jax.badge`: D^2 seeding on gradient embeddings (DeepAL+'s BADGE).
* :mod:`msal_jax.dbal`: Zhdanov's margin pre-filter and weighted k-means.
"""

from __future__ import annotations

from msal_jax.badge import (
    badge,
    badge_from_uniforms,
    d2_seeding,
    gradient_embedding_factors,
    gradient_sq_dists,
    inverse_cdf_draw,
)
from msal_jax.dbal import DBAL_ITERS, dbal, kmeanspp_seeds
from msal_jax.distances import sq_dists
from msal_jax.kcenter import KCENTER_LOOKAHEAD, kcenter, min_sq_dist_to_set
from msal_jax.kmeans import (
    KMEANS_MAX_ITER,
    KMEANS_N_INIT,
    KMEANS_TOL,
    greedy_kmeanspp,
    kmeans,
    kmeans_fit,
    lloyd,
    local_trials,
    nearest_per_cluster,
    restart_uniforms,
)

__all__ = [
    "DBAL_ITERS", "KCENTER_LOOKAHEAD", "KMEANS_MAX_ITER", "KMEANS_N_INIT", "KMEANS_TOL",
    "badge", "badge_from_uniforms", "d2_seeding", "dbal", "gradient_embedding_factors",
    "gradient_sq_dists", "greedy_kmeanspp", "inverse_cdf_draw", "kcenter", "kmeans",
    "kmeans_fit", "kmeanspp_seeds", "lloyd", "local_trials", "min_sq_dist_to_set",
    "nearest_per_cluster", "restart_uniforms", "select_badge", "select_dbal", "select_kcenter",
    "select_kmeans", "sq_dists",
]


# Strategy adapters: select(key, outputs, labeled, *, budget, beta) on a
# strategies.PoolOutputs (features = the penultimate embedding of a linear head).


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
