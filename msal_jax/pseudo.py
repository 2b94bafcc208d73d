"""The strategies' per-round extras, called by the round function through one hook.

A strategy with a ``pseudo`` function (CEAL, :mod:`msal_jax.strategies`) also
trains the next round on the confident unlabeled samples it picks, under a
threshold that falls with the round (:func:`strategies.ceal_threshold`). The
round function calls the :class:`PseudoStep` of every run the same way; for a
strategy without pseudo-labels it records nothing and keeps none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from msal_jax import strategies
from msal_jax.settings import ActiveLearningConfig


@dataclasses.dataclass(frozen=True)
class PseudoStep:
  """Updates a round state's pseudo-labels after the round's query; returns record fields.

  ``select``: the strategy's jitted ``pseudo(outputs, labeled, threshold) -> [N]
  bool`` (``None``: the strategy keeps no pseudo-labels).
  """

  name: str
  al: ActiveLearningConfig
  pool_truth: np.ndarray  # [N] ground truth, -1 where unknown
  select: Callable[..., Any] | None = None
  gather: Callable[[Any], Any] | None = None  # on a mesh: outputs to one device first

  def __call__(self, state, outputs: strategies.PoolOutputs, pool_pred: np.ndarray,
               queried: list[int]) -> dict[str, Any]:
    if self.select is None:
      return {}

    def confident(after: np.ndarray) -> np.ndarray:
      out = outputs if self.gather is None else self.gather(outputs)
      return np.asarray(self.select(out, jnp.asarray(after), self.threshold(state.round)))

    return self._update(state, confident, pool_pred, queried)

  def threshold(self, round_index: int) -> float:
    """The threshold used after the query of round ``round_index``."""
    return strategies.ceal_threshold(self.name, round_index, delta=self.al.ceal_delta,
                                     decay=self.al.ceal_decay, cos=self.al.ceal_cos)

  def streamed(self, state, criterion: np.ndarray, pool_pred: np.ndarray,
               queried: list[int]) -> dict[str, Any]:
    """:meth:`__call__` on a streamed pool: ``criterion`` is the strategy's ``pseudo``
    of every row with nothing labeled (:meth:`row_criterion`, chunk by chunk); a
    row-wise test, so ``criterion & ~after`` is the in-memory mask."""
    if self.select is None:
      return {}
    return self._update(state, lambda after: criterion & ~after, pool_pred, queried)

  def row_criterion(self, round_index: int, prototypes: Any) -> Callable[[dict], Any]:
    """``outputs -> [n] bool`` of a chunk: the strategy's test with the round's threshold."""
    threshold = self.threshold(round_index)

    def fn(outputs):
      out = strategies.PoolOutputs(logits=outputs["logits"], features=outputs["features"],
                                   prototypes=prototypes)
      return self.select(out, jnp.zeros(outputs["logits"].shape[0], bool), threshold)

    return fn

  def _update(self, state, confident: Callable[[np.ndarray], np.ndarray],
              pool_pred: np.ndarray, queried: list[int]) -> dict[str, Any]:
    used = state.pseudo_mask  # what this round trained on
    checkable = used & (self.pool_truth >= 0)
    extras = {
        "num_pseudo": int(used.sum()),  # pseudo-labels this round trained on
        "pseudo_accuracy": (
            float(np.mean(state.pseudo_labels[checkable] == self.pool_truth[checkable]))
            if checkable.any() else None),
    }
    if queried:  # the next round's: confident among the samples still unlabeled
      after = state.labeled.copy()
      after[queried] = True
      state.pseudo_mask = confident(after)
      state.pseudo_labels = pool_pred.astype(np.int32)
    else:
      state.pseudo_mask = np.zeros_like(state.pseudo_mask)
    return extras


def make(name: str, strategy: strategies.Strategy, al: ActiveLearningConfig,
         pool_truth: np.ndarray, jit: Callable[[Callable], Callable], *,
         gather: Callable[[Any], Any] | None = None) -> PseudoStep:
  """The hook of strategy ``name``; ``jit`` compiles (and counts) its pseudo function."""
  select = jit(strategy.pseudo) if strategy.pseudo is not None else None
  return PseudoStep(name, al, pool_truth, select, gather)
