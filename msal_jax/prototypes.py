"""Fixed class prototypes: the vertices of a regular simplex on the unit sphere.

``simplex(C)`` returns ``C`` unit vectors in ``R^(C-1)`` whose pairwise inner
products all equal ``-1/(C-1)``: the most separated arrangement of ``C``
directions possible. It is the fixed last layer of a max-separation network
(see :mod:`msal_jax.models.heads`) and the reference of the MSAL scores.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=32)
def _simplex_np(num_classes: int) -> np.ndarray:
  """float64 ``[C, C-1]`` simplex, filled in closed form (no recursion).

  The recursive definition (DESIGN.md 3) is ``V_1 = [1, -1]`` and
  ``V_k = [[1, -(1/k) 1^T], [0, sqrt(1 - 1/k^2) V_(k-1)]]``, ``P = V_(C-1)^T``.
  Unrolled, row ``r`` of ``V_k`` is row 0 of ``V_(k-r)`` scaled by
  ``s_r = prod_{j<r} sqrt(1 - 1/(k-j)^2)`` and shifted right by ``r``:
  ``V[r, r] = s_r``, ``V[r, r+1:] = -s_r / (k-r)``, zero to the left.
  """
  k = num_classes - 1
  levels = np.arange(k, 0, -1, dtype=np.float64)  # k, k-1, ..., 1 (one per row r)
  shrink = np.sqrt(1.0 - 1.0 / levels**2)
  scale = np.concatenate([[1.0], np.cumprod(shrink[:-1])])  # s_r
  rows = np.arange(k)[:, None]
  cols = np.arange(k + 1)[None, :]
  v = np.where(cols == rows, scale[:, None], 0.0)
  v = np.where(cols > rows, -(scale / levels)[:, None], v)
  out = np.ascontiguousarray(v.T)
  out.setflags(write=False)
  return out


def simplex(num_classes: int, dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """Regular-simplex prototypes, one unit row per class.

  Args:
    num_classes: ``C >= 2``, a Python int (static under ``jit``).
    dtype: floating dtype of the result.

  Returns:
    ``[C, C-1]`` array ``P`` with ``||P[c]|| = 1``, ``P[a] . P[b] = -1/(C-1)``
    for ``a != b``, and ``sum_c P[c] = 0``. Deterministic.

  >>> P = simplex(3)
  >>> P.shape
  (3, 2)
  >>> round(float(P[0] @ P[1]), 6)
  -0.5
  """
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
    raise ValueError(
        f"simplex: num_classes must be a Python int (static under jit), got "
        f"{type(num_classes).__name__} {num_classes!r}."
    )
  if num_classes < 2:
    raise ValueError(
        f"simplex: num_classes must be >= 2 (a simplex needs two vertices), got {num_classes}."
    )
  return jnp.asarray(_simplex_np(int(num_classes)), dtype=dtype)


def simplex_numpy(num_classes: int) -> np.ndarray:
  """The float64 numpy version of :func:`simplex` (read-only array)."""
  simplex(num_classes)  # validates
  return _simplex_np(int(num_classes))
