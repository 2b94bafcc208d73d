"""The pool ids to annotate next, from features / logits arrays or ``.npy`` files.

:func:`query` checks its arguments, opens the pool (:mod:`msal_jax.pool_files`)
and streams it through :mod:`msal_jax.streaming`, so memory stays at a few
chunks plus ``O(beta * budget)`` rows whatever ``N``; the ids are the
in-memory selection's (:mod:`msal_jax.selection`), in query order.
``python -m msal_jax.query`` is its command line.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from msal_jax import prototypes as prototypes_lib
from msal_jax import scoring, selection, streaming
from msal_jax.pool_files import NpyRows, check_float, labeled_mask, load_small, open_rows

STRATEGIES = {
    # name: (needs features, needs logits, uncertainty score or None)
    "msal": (True, False, None),
    "msal_d": (True, False, None),
    "random": (False, False, None),
    **{s: (False, True, s) for s in scoring.UNCERTAINTY},
    **{f"{s}_msal": (False, True, s) for s in scoring.UNCERTAINTY},
    **{f"{s}_msal_d": (True, True, s) for s in scoring.UNCERTAINTY},
}


def _check_arguments(features: Any, logits: Any, strategy: str, budget: Any, beta: Any,
                     chunk_size: Any, nonfinite: str) -> None:
  """The checks that need no data: names, types and ranges."""
  if strategy not in STRATEGIES:
    mc = strategy in scoring.MC_UNCERTAINTY or strategy.removesuffix("_msal") in \
        scoring.MC_UNCERTAINTY
    hint = " (MC-dropout strategies need T passes: not supported here)" if mc else ""
    raise ValueError(f"unknown strategy {strategy!r}{hint}; choose one of "
                     f"{', '.join(sorted(STRATEGIES))}.")
  needs_features, needs_logits, _ = STRATEGIES[strategy]
  if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
    raise ValueError(f"budget must be an integer >= 1, got {budget!r}.")
  if not (isinstance(beta, (int, float)) and beta >= 1):
    raise ValueError(f"beta must be a number >= 1, got {beta!r}.")
  if chunk_size is not None and (isinstance(chunk_size, bool) or
                                 not isinstance(chunk_size, int) or chunk_size < 1):
    raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}.")
  if nonfinite not in streaming.NONFINITE:
    raise ValueError(f"nonfinite must be one of {streaming.NONFINITE}, got {nonfinite!r}.")
  if needs_features and features is None:
    raise ValueError(f"strategy {strategy!r} needs features ([N, C-1]).")
  if needs_logits and logits is None:
    raise ValueError(f"strategy {strategy!r} needs logits ([N, C]).")
  if features is None and logits is None:
    raise ValueError("pass features or logits (the pool).")


def _open_pool(features: Any, logits: Any) -> tuple[Any, Any, int]:
  """``(features, logits, N)``: files opened as :class:`NpyRows`, shapes and dtypes checked."""
  feats = open_rows("features", features) if features is not None else None
  lg = open_rows("logits", logits) if logits is not None else None
  if feats is not None:
    check_float("features", feats, 2)
  if lg is not None:
    check_float("logits", lg, 2)
  if feats is not None and lg is not None and feats.shape[0] != lg.shape[0]:
    raise ValueError(f"features have {feats.shape[0]} rows but logits {lg.shape[0]}.")
  num = (feats if feats is not None else lg).shape[0]
  if num == 0:
    raise ValueError("the pool is empty.")
  return feats, lg, num


def _prototypes(feats: Any, lg: Any, prototypes: Any, num_classes: int | None) -> np.ndarray:
  """``[C, C-1]``: the given matrix, else ``simplex(width + 1)``; checked against the pool."""
  width = feats.shape[1]
  if prototypes is not None:
    protos = load_small("prototypes", prototypes)
    if protos.ndim != 2 or protos.shape[1] != width:
      raise ValueError(f"prototypes must be [C, {width}] for features of width {width}, got "
                       f"shape {protos.shape}.")
  else:
    classes = width + 1 if num_classes is None else num_classes
    if classes != width + 1:
      raise ValueError(f"features of width {width} are the max-separation outputs of "
                       f"{width + 1} classes, not num_classes={classes}.")
    protos = np.asarray(prototypes_lib.simplex(classes))
  if lg is not None and lg.shape[1] != protos.shape[0]:
    raise ValueError(f"logits have {lg.shape[1]} classes but the prototypes {protos.shape[0]}.")
  return protos


def _select(strategy: str, feats: Any, lg: Any, protos: np.ndarray | None, dense: bool,
            mask: np.ndarray, budget: int, beta: float, seed: int,
            **kwargs: Any) -> tuple[Any, dict[str, int]]:
  """The strategy's streamed selection: ``(ids with -1 padding, streaming's info)``.

  ``dense``: score against ``protos`` as given; else the standard simplex is
  scored through its structure, ``O(C)`` per row (``scoring.msal(z, None)``).
  """
  needs_features, _, score = STRATEGIES[strategy]
  num = mask.shape[0]
  if strategy == "random":
    ids = selection.top_k_masked(scoring.random(jax.random.PRNGKey(seed), num), ~mask, budget)
    return ids, {"nonfinite_rows": 0}
  if not needs_features:
    ids, _, stats = streaming.stream_top_k({"logits": lg}, mask, score=score, k=budget,
                                           **kwargs)
    return ids, stats
  sources = {"features": feats, "prototypes": protos}
  msal_score = "msal" if dense else "msal_simplex"
  if strategy == "msal":
    ids, _, stats = streaming.stream_top_k(sources, mask, score=msal_score, k=budget, **kwargs)
    return ids, stats
  if score is not None:  # X(MSAL-D): the uncertainty score pre-filters
    sources["logits"] = lg
  m = selection.num_candidates(budget, beta, num)
  cand, cand_feats, stats = streaming.stream_top_k(
      sources, mask, score=score or msal_score, k=m, carry=True, **kwargs)
  return streaming.diversify(cand, cand_feats, protos, budget=budget), stats


def query(features: Any = None, logits: Any = None, *, strategy: str, budget: int,
          labeled: Any = None, labeled_ids: Any = None, prototypes: Any = None,
          num_classes: int | None = None, beta: float = 5.0,
          chunk_size: int | None = None, seed: int = 0, nonfinite: str = "error",
          mesh: Any = None, progress: streaming.Progress | None = None,
          info: dict | None = None) -> np.ndarray:
  """The pool ids to annotate next, in query order.

  Args:
    features: ``[N, C-1]`` array-like or ``.npy`` path (MSAL strategies).
    logits: ``[N, C]`` array-like or ``.npy`` path (uncertainty strategies).
    strategy: a key of :data:`STRATEGIES`.
    budget: number of ids, ``>= 1``.
    labeled: ``[N]`` bool (or 0/1) mask, array or ``.npy`` path; or
    labeled_ids: the already-labeled ids (sequence, ``.npy`` or text file).
    prototypes: ``[C, C-1]`` (array or ``.npy``); default
      ``prototypes.simplex(num_classes)``, ``num_classes`` defaulting to
      the features' width + 1, scored through the simplex's structure in
      ``O(C)`` per row (the result of ``scoring.msal(features, None)``).
    beta: MSAL-D's pre-filter factor (``>= 1``; paper: 5 or 10).
    chunk_size: rows per streamed chunk; default 64 MiB of input rows, at
      least 65,536 (:func:`msal_jax.streaming.default_chunk_size`).
    seed: ``random``'s key (``PRNGKey(seed)``, as the library's ``random``).
    nonfinite: what to do with unlabeled rows holding NaN or Inf:
      ``"error"`` (default: stop, naming the first such row), ``"skip"``
      (never select them) or ``"keep"`` (score them as the library functions
      do: a NaN score ranks last). Labeled rows are not checked.
    mesh: optional 1-D device mesh to split each chunk over.
    progress: ``progress(rows_done, N)`` callback.
    info: if a dict, receives ``num_pool``, ``num_labeled`` and the
      non-finite row count.

  Returns:
    ``int64`` pool indices, at most ``budget`` (fewer if fewer are unlabeled).
  """
  _check_arguments(features, logits, strategy, budget, beta, chunk_size, nonfinite)
  feats, lg, num = _open_pool(features, logits)
  try:
    mask = labeled_mask(num, labeled, labeled_ids)
    if info is not None:
      info.update(num_pool=num, num_labeled=int(mask.sum()), nonfinite_rows=0)
    protos = _prototypes(feats, lg, prototypes, num_classes) if STRATEGIES[strategy][0] else None
    ids, stats = _select(strategy, feats, lg, protos, prototypes is not None, mask, budget,
                         beta, seed, chunk_size=chunk_size, mesh=mesh, nonfinite=nonfinite,
                         progress=progress, _name=strategy)
  finally:
    for x in (feats, lg):
      if isinstance(x, NpyRows):
        x.close()
  if info is not None:
    info["nonfinite_rows"] = stats["nonfinite_rows"]
  ids = np.asarray(ids).astype(np.int64)
  return ids[ids >= 0]
