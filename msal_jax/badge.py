"""BADGE (Ash et al. 2020) as DeepAL+ computes it: k-means++ (D^2) seeding on gradient embeddings.

The gradient embedding ``g_i = (p_i - onehot(argmax p_i)) ⊗ h_i`` is never
materialised: distances between embeddings factor through ``a = p - onehot``
and ``h`` (:func:`gradient_sq_dists`), ``O(N (C + D))`` per seeding step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from msal_jax.distances import check_features


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


def inverse_cdf_draw(mass: jax.Array, u: jax.Array, avail: jax.Array) -> jax.Array:
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
    j = inverse_cdf_draw(jnp.where(avail, min_d, 0.0), uniforms[t], avail)
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
  h, labeled = check_features("badge", features, labeled, int(uniforms.shape[0]))
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
