"""A pool's input arrays by name, and the argument checks of the pool selections.

The sharded (:mod:`msal_jax.parallel`) and streamed (:mod:`msal_jax.streaming`)
selections take the pool as arrays named by :data:`ROW_AXIS` and check their
arguments here, before any work, with errors that start with the public
function's name. Nothing here reads an array's values: shapes and dtypes only,
so memory maps stay unread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from msal_jax import scoring
from msal_jax.placement import dtype_of, ndim

# Which axis of each input holds the pool's rows (prototypes: none, replicated).
ROW_AXIS = {"features": 0, "logits": 0, "uncertainty": 0, "mc_logits": 1, "prototypes": None}


def check_k(name: str, k: int) -> None:
  """``k`` is a static Python int ``>= 1``; else a ``ValueError`` naming ``name``."""
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"{name}: k must be a Python int >= 1 (static), got {k!r}.")


def pool_size(name: str, arrays: Mapping[str, Any], labeled: Any) -> int:
  """``N`` from the ``[N]`` bool mask, after checking every row array against it.

  Shared with :mod:`msal_jax.streaming`; ``name`` starts each error message.
  """
  num = np.shape(labeled)[0] if ndim(labeled) == 1 else None
  if num is None:
    raise ValueError(f"{name}: the labeled mask must be [N], got shape {np.shape(labeled)}.")
  if dtype_of(labeled) != np.bool_:
    raise ValueError(f"{name}: the labeled mask must be boolean, got {dtype_of(labeled)}.")
  for key, x in arrays.items():
    row_axis = ROW_AXIS[key]
    if row_axis is not None and (ndim(x) <= row_axis or np.shape(x)[row_axis] != num):
      raise ValueError(
          f"{name}: {key} has shape {np.shape(x)}, but the pool has N={num} samples "
          f"(axis {row_axis}).")
  if num >= 2**31:
    raise ValueError(f"{name}: pools of 2**31 samples or more are not supported (N={num}).")
  return num


def check_feature_width(name, features, prototypes):
  if prototypes is None:  # the standard simplex of C = width + 1 classes
    if ndim(features) != 2 or np.shape(features)[1] < 1:
      raise ValueError(f"{name}: features must be [N, C-1] with C >= 2, got shape "
                       f"{np.shape(features)}.")
    return
  if ndim(features) != 2 or ndim(prototypes) != 2:
    raise ValueError(f"{name}: features must be [N, K] and prototypes [C, K]; got shapes "
                     f"{np.shape(features)} and {np.shape(prototypes)}.")
  if np.shape(features)[1] != np.shape(prototypes)[1]:
    raise ValueError(
        f"{name}: features have width {np.shape(features)[1]} but prototypes have width "
        f"{np.shape(prototypes)[1]}: the features must be the max-separation head's C-1 "
        "outputs for prototypes.simplex(C).")


def msal_inputs(name: str, features: Any, prototypes: Any) -> tuple[dict[str, Any], str]:
  """Checks MSAL's arguments; returns its input arrays by name and its score's name.

  ``"msal"`` scores ``features`` against the ``prototypes`` given;
  ``prototypes=None`` is ``"msal_simplex"``, the standard simplex scored
  through its structure (:func:`msal_jax.scoring.msal`). Shared with
  :func:`msal_jax.streaming.msal`.
  """
  check_feature_width(name, features, prototypes)
  if prototypes is None:
    return {"features": features}, "msal_simplex"
  return {"features": features, "prototypes": prototypes}, "msal"


def msal_d_inputs(features: Any, prototypes: Any, *, budget: int, beta: float,
                  uncertainty: Any = None, logits: Any = None, score: str | None = None
                  ) -> tuple[dict[str, Any], str]:
  """Checks MSAL-D's arguments (shared with :func:`msal_jax.streaming.msal_d`).

  Returns the input arrays by name (``ROW_AXIS`` keys) and the name of the
  pre-filter score: ``"given"`` (``uncertainty``), a ``scoring.UNCERTAINTY``
  name (computed from ``logits``), ``"msal"`` or, for ``prototypes=None``,
  ``"msal_simplex"`` (then ``arrays["prototypes"]`` is ``simplex(C)``, for the
  diversity stage).
  """
  if not (isinstance(beta, (int, float)) and beta >= 1):
    raise ValueError(f"msal_d: beta must be a number >= 1 (static), got {beta!r}.")
  check_k("msal_d", budget)
  check_feature_width("msal_d", features, prototypes)
  structured = prototypes is None
  if structured:
    prototypes = np.asarray(scoring.simplex_prototypes(np.shape(features)[1] + 1,
                                                       dtype_of(features)))
  arrays: dict[str, Any] = {"features": features, "prototypes": prototypes}
  if uncertainty is not None and (logits is not None or score is not None):
    raise ValueError("msal_d: pass either uncertainty or logits and score, not both.")
  if uncertainty is not None:
    if np.shape(uncertainty) != (np.shape(features)[0],):
      raise ValueError(f"msal_d: uncertainty must be [N={np.shape(features)[0]}], got shape "
                       f"{np.shape(uncertainty)}.")
    arrays["uncertainty"] = uncertainty
    return arrays, "given"
  if score is not None:
    if score not in scoring.UNCERTAINTY or logits is None:
      raise ValueError(f"msal_d: score must be one of {sorted(scoring.UNCERTAINTY)} and "
                       f"needs logits; got score={score!r}.")
    arrays["logits"] = logits
    return arrays, score
  return arrays, "msal_simplex" if structured else "msal"
