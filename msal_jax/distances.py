"""Squared Euclidean distances and the argument checks the diversity selectors share.

Distances are ``||x||^2 + ||c||^2 - 2 x.c`` with one matmul, clamped at 0:
``O(N * K)`` memory for ``K`` centres, never ``N x N``. The selectors centre
their features at the mean first (:func:`centred`), which changes no distance
and keeps the cancellation in that formula small.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def check_features(name: str, features: ArrayLike, labeled: ArrayLike,
                   budget: int) -> tuple[jax.Array, jax.Array]:
  """``(features [N, D] float, labeled [N] bool)``, or a ``ValueError`` naming ``name``."""
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
  return as_float(x), labeled


def as_float(x: ArrayLike) -> jax.Array:
  """``x`` as a float array of at least 32 bits."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def centred(x: jax.Array) -> jax.Array:
  """``x`` minus its column means: the same distances, less cancellation."""
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
