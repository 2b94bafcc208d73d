"""Consumers of streamed pool outputs: what a round keeps of each chunk.

:func:`msal_jax.pool_stream.stream_outputs` hands every chunk's outputs
(``{"logits" [n, C], "features" [n, K], "mc_logits" [T, n, C]}``, the padded
rows after ``valid``) to consumers, called ``consumer(start, valid,
outputs)`` in pool order. Each keeps only what a round needs, so the ``[N,
C]`` outputs of the whole pool never exist:

* :class:`Predictions`: the ``[N]`` argmax (4 bytes a row) and the unlabeled
  error rate, counted chunk by chunk;
* :class:`RowValues`: one value per row (CEAL's certainties), ``[N]`` on the host;
* :class:`TopK`: the running top ``k`` of a per-row score of
  :data:`msal_jax.pool_top_k.SCORES` (MSAL, the uncertainty and MC-dropout
  scores), merged as :mod:`msal_jax.streaming` merges it, with the candidates'
  feature rows for MSAL-D (``carry=True``).

All are re-exported by :mod:`msal_jax.pool_stream`, whose ``Selection``
builds a strategy's query from a :class:`TopK`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from msal_jax import scoring
from msal_jax.pool_top_k import NO_ROW, sharded_top_k
from msal_jax.streaming import merge_top_k

_argmax = jax.jit(lambda logits: jnp.argmax(logits, -1).astype(jnp.int32))


class Predictions:
  """The pool's argmax predictions and, given labels, its unlabeled error rate.

  Args:
    num: ``N``.
    labels: optional ``[N]`` int labels (``-1``: unknown).
    exclude: ``[N]`` bool rows left out of the error rate (the loop's
      ``labeled | ~known``); needed with ``labels``.
    keep: keep the ``[N]`` int32 predictions (CEAL's pseudo-labels); else
      only the error counts are kept.
  """

  def __init__(self, num: int, *, labels: np.ndarray | None = None,
               exclude: np.ndarray | None = None, keep: bool = True):
    if (labels is None) != (exclude is None):
      raise ValueError("Predictions: labels and exclude go together.")
    for name, x in (("labels", labels), ("exclude", exclude)):
      if x is not None and np.shape(x) != (num,):
        raise ValueError(f"Predictions: {name} must be [N={num}], got {np.shape(x)}.")
    self.labels, self.exclude = labels, exclude
    self.predictions = np.zeros(num, np.int32) if keep else None
    self.errors = self.counted = 0

  def __call__(self, start: int, valid: int, outputs: dict[str, jax.Array]) -> None:
    pred = np.asarray(_argmax(outputs["logits"]))[:valid]
    if self.predictions is not None:
      self.predictions[start: start + valid] = pred
    if self.labels is not None:
      rest = ~np.asarray(self.exclude[start: start + valid], bool)
      self.errors += int(np.sum(pred[rest] != self.labels[start: start + valid][rest]))
      self.counted += int(np.sum(rest))

  def error_rate(self) -> float:
    """``metrics.unlabeled_error_rate``'s value: errors / counted rows, NaN if none."""
    if self.labels is None:
      raise ValueError("Predictions.error_rate: no labels were given.")
    return self.errors / self.counted if self.counted else float("nan")


class RowValues:
  """``fn(outputs) -> [n]`` of every row, kept as a host ``[N]`` array (CEAL's certainties).

  ``fn`` must be computed row by row (e.g. ``lambda o: scoring.entropy(o["logits"])``);
  then a threshold applied to ``values`` afterwards gives the in-memory mask.
  """

  def __init__(self, num: int, fn: Callable[[dict[str, jax.Array]], jax.Array],
               dtype: Any = np.float32):
    self.fn, self.values = jax.jit(fn), np.zeros(num, dtype)

  def __call__(self, start: int, valid: int, outputs: dict[str, jax.Array]) -> None:
    self.values[start: start + valid] = np.asarray(self.fn(outputs))[:valid]


# Which outputs each score of pool_top_k.SCORES reads.
def _score_inputs(score: str) -> tuple[str, ...]:
  if score in ("msal", "msal_simplex"):
    return ("features",)
  if score in scoring.UNCERTAINTY:
    return ("logits",)
  if score in scoring.MC_UNCERTAINTY:
    return ("mc_logits",)
  raise ValueError(f"TopK: score {score!r} cannot be computed from a chunk's outputs; known: "
                   f"msal, msal_simplex, {', '.join(sorted(scoring.UNCERTAINTY))}, "
                   f"{', '.join(sorted(scoring.MC_UNCERTAINTY))}.")


@functools.partial(jax.jit, static_argnames=("score", "k", "carry", "nonfinite"))
def _merge(state, inputs, labeled, offset, *, score, k, carry, nonfinite):
  # streaming's step on one device: the chunk's top k, merged with the running one.
  candidates = sharded_top_k(inputs, labeled, offset, score=score, k=k, carry=carry, mesh=None,
                             nonfinite=nonfinite)
  return merge_top_k(state, candidates)


class TopK:
  """The running top ``k`` unlabeled rows by ``pool_top_k.SCORES[score]`` of the outputs.

  Args:
    score: ``"msal"`` (with ``prototypes``; lowest certainty first),
      ``"msal_simplex"``, a ``scoring.UNCERTAINTY`` or ``MC_UNCERTAINTY`` name.
    labeled: ``[N]`` bool; ``True`` rows are never selected.
    k: static number of rows.
    prototypes: ``[C, C-1]`` for ``"msal"``.
    carry: also keep the candidates' ``features`` rows (MSAL-D).
    nonfinite: ``"keep"`` (as in memory) or ``"skip"`` rows with NaN/Inf outputs.

  ``result()``: ``(ids [k] int32 with -1 where fewer rows are eligible,
  features [k, K])`` as numpy, as :func:`msal_jax.streaming.stream_top_k`.
  """

  def __init__(self, score: str, labeled: np.ndarray, k: int, *, prototypes: Any = None,
               carry: bool = False, nonfinite: str = "keep"):
    self.names = _score_inputs(score)
    if score == "msal" and prototypes is None:
      raise ValueError("TopK: score 'msal' needs prototypes ([C, C-1]).")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
      raise ValueError(f"TopK: k must be a Python int >= 1 (static), got {k!r}.")
    if nonfinite not in ("keep", "skip"):
      raise ValueError(f"TopK: nonfinite must be 'keep' or 'skip', got {nonfinite!r}.")
    labeled = np.asarray(labeled)
    if labeled.ndim != 1 or labeled.dtype != np.bool_:
      raise ValueError(f"TopK: labeled must be a [N] bool array, got {labeled.dtype} "
                       f"{labeled.shape}.")
    self.score, self.labeled, self.k, self.carry, self.nonfinite = (
        score, labeled, k, carry, nonfinite)
    self.consts = {} if prototypes is None else {"prototypes": jnp.asarray(prototypes)}
    self.state: dict[str, jax.Array] | None = None

  def _initial(self, inputs: dict[str, jax.Array]) -> dict[str, jax.Array]:
    key_dtype = jnp.promote_types(jnp.result_type(*inputs.values()), jnp.float32)
    feats = inputs.get("features")
    return {"vals": jnp.full(self.k, -jnp.inf, key_dtype),
            "idx": jnp.full(self.k, -1, jnp.int32),
            "feats": jnp.zeros((self.k, feats.shape[1] if self.carry else 0),
                               feats.dtype if self.carry else jnp.float32),
            "count": jnp.int32(0), "first_bad": jnp.int32(NO_ROW), "num_bad": jnp.int32(0)}

  def __call__(self, start: int, valid: int, outputs: dict[str, jax.Array]) -> None:
    names = self.names + (("features",) if self.carry and "features" not in self.names else ())
    inputs = {name: outputs[name] for name in names}
    rows = outputs["logits"].shape[0]
    lab = np.ones(rows, bool)  # padding rows: labeled, never selected
    lab[:valid] = self.labeled[start: start + valid]
    if self.state is None:
      self.state = self._initial(inputs)
    self.state = _merge(self.state, {**inputs, **self.consts}, jnp.asarray(lab),
                        jnp.int32(start), score=self.score, k=self.k, carry=self.carry,
                        nonfinite=self.nonfinite)

  def result(self) -> tuple[np.ndarray, np.ndarray]:
    if self.state is None:
      raise ValueError("TopK.result: no chunk was consumed.")
    state = jax.device_get(self.state)
    idx = np.where(np.arange(self.k) < state["count"], state["idx"], -1).astype(np.int32)
    return idx, state["feats"]
