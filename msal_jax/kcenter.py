"""Greedy k-center (farthest-first traversal) from the labeled set: DeepAL+'s KCenterGreedy.

A ``lax.fori_loop`` keeps each sample's squared distance to its nearest
labeled or chosen sample, ``O(N)`` per step; the labeled set is measured in
blocks (:func:`min_sq_dist_to_set`), so no ``N x N`` matrix is formed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from msal_jax import selection
from msal_jax.distances import centred, check_features, sq_dists

# k-center computes the distance columns of the `KCENTER_LOOKAHEAD` currently
# farthest samples in one matmul and reuses them while the next farthest sample
# is among them. Same result as one column per step; fewer passes over [N, D].
KCENTER_LOOKAHEAD = 16

# Labeled samples per block when k-center measures the distance to the labeled set.
_LABELED_BLOCK = 128


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
  x, labeled = check_features("kcenter", features, labeled, budget)
  x = centred(x)
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
