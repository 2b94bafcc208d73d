"""The state of a run between rounds, as one value, and its checkpoint.

:class:`RoundState` holds everything the next round needs and a checkpoint
stores: the round to run, the labeled mask, the labels the learner was told,
the pseudo-labels the next round trains on (CEAL), the per-round records and
the labels spent. :func:`save` writes it with the round's model as one
orbax step; :func:`resume` restores the newest step, checks that it belongs
to this run, and rebuilds the same value. The on-disk layout is the one
:class:`msal_jax.checkpoint.RoundCheckpointer` has always written (arrays
``params``, ``batch_stats``, ``opt_state``, ``step``, ``labeled`` and
``pseudo_mask`` / ``pseudo_labels``; JSON ``meta`` with the run's identity,
``round``, ``spent`` and ``records``), so workdirs written before this module
existed resume unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from msal_jax.checkpoint import RoundCheckpointer
from msal_jax.oracles import Oracle


@dataclasses.dataclass
class RoundState:
  """What a run knows after its last finished round.

  Attributes:
    round: the next round to run (0 at the start).
    labeled: ``[N]`` bool, the samples whose labels the learner has.
    labels: ``[N]`` int32, what the learner was told (``-1``: unknown; the
      dataset's labels elsewhere, never read where ``labeled`` is False).
    pseudo_mask, pseudo_labels: ``[N]`` the pseudo-labels the next round
      also trains on (CEAL; all False otherwise).
    records: one dict per finished round (the lines of ``rounds.jsonl``).
    spent: labels queried so far (not counting the initial set).
    pending: the file a person must fill in before the run can go on
      (human-in-the-loop oracle), else ``None``.
  """

  round: int
  labeled: np.ndarray
  labels: np.ndarray
  pseudo_mask: np.ndarray
  pseudo_labels: np.ndarray
  records: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  spent: int = 0
  pending: str | None = None

  @classmethod
  def start(cls, labeled: np.ndarray, labels: np.ndarray) -> RoundState:
    """Round 0: the initial labeled set, nothing queried, no pseudo-labels."""
    num = labeled.shape[0]
    return cls(0, labeled.copy(), labels.astype(np.int32), np.zeros(num, bool),
               np.zeros(num, np.int32))

  @property
  def last_round(self) -> int:
    return self.round - 1

  def label(self, ids: list[int], labels: list[int]) -> None:
    """Marks ``ids`` labeled with ``labels`` (the queried samples of a round)."""
    self.labeled[ids] = True
    self.labels[ids] = labels


def save(ckpt: RoundCheckpointer, state: RoundState, train_state: Any,
         identity: Mapping[str, Any], *, with_pseudo: bool) -> None:
  """Writes the checkpoint of round ``state.last_round`` (finished when it returns)."""
  r = state.last_round
  ckpt.save(r, train_state, state.labeled,
            {**identity, "round": r, "spent": state.spent, "records": state.records},
            pseudo=(state.pseudo_mask, state.pseudo_labels) if with_pseudo else None)


def _check_identity(workdir: str, meta: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
  found = {k: meta.get(k) for k in identity}
  if found != dict(identity):
    raise ValueError(
        f"{workdir} holds checkpoints of another run ({found}), not of {dict(identity)}: "
        "use another workdir."
    )


def _check_extendable(workdir: str, state: RoundState, num_rounds: int) -> None:
  step = state.last_round
  if not state.records[-1]["queried"] and step < num_rounds:
    raise ValueError(
        f"{workdir}: the run there ended after round {step} (its last round queries "
        f"nothing) and cannot be extended to {num_rounds} rounds; use a new workdir."
    )


def _collect_pending(state: RoundState, oracle: Oracle, log: Callable[[str], None],
                     tag: str) -> None:
  """Reads the answers a person gave to the last round's queries, if it waited for them."""
  last = state.records[-1]
  if not (oracle.recorded and last["queried"] and "labels" not in last):
    return
  given, source = oracle.collect(last["queried"], state.last_round)
  last["labels"] = given
  state.labels[last["queried"]] = given
  log(f"{tag} read {len(given)} labels of round {state.last_round}'s queries from {source}")


def resume(ckpt: RoundCheckpointer, start: RoundState, *, identity: Mapping[str, Any],
           workdir: str, num_rounds: int, oracle: Oracle, log: Callable[[str], None],
           tag: str) -> tuple[RoundState, dict[str, Any] | None]:
  """The state after the newest checkpoint under ``ckpt`` and its model, or ``start``.

  ``start`` is the run's round-0 state (its initial set); the checkpoint's
  labeled mask must be that set plus every round's queries, else the
  checkpoint is refused. Returns ``(state, variables)`` with ``variables``
  ``{"params", "batch_stats"}`` of the last finished round (``None`` at the start).
  """
  step = ckpt.latest_step()
  if step is None:
    return start, None
  meta = ckpt.restore_meta(step)
  _check_identity(workdir, meta, identity)
  saved = ckpt.restore_state(step)
  state = dataclasses.replace(start, round=step + 1, labeled=start.labeled.copy(),
                              labels=start.labels.copy(), records=meta["records"],
                              spent=meta["spent"])
  if "pseudo_mask" in saved:
    state.pseudo_mask, state.pseudo_labels = saved["pseudo_mask"], saved["pseudo_labels"]
  for rec in state.records:
    state.labeled[rec["queried"]] = True
    if "labels" in rec:  # from an oracle function or a CSV
      state.labels[rec["queried"]] = rec["labels"]
  if not np.array_equal(saved["labeled"], state.labeled):
    raise ValueError(f"{workdir}: the checkpoint of round {step} is inconsistent.")
  _check_extendable(workdir, state, num_rounds)
  if state.round > num_rounds:
    log(f"{tag} already finished ({step} rounds in {workdir})")
  else:
    log(f"{tag} resuming after round {step} ({int(state.labeled.sum())} labeled)")
  _collect_pending(state, oracle, log, tag)
  missing = np.flatnonzero(state.labeled & (state.labels < 0))
  if missing.size:
    raise ValueError(
        f"{workdir}: {missing.size} queried samples have no label (e.g. pool id "
        f"{int(missing[0])}): they were queried for a person to label; resume with "
        "al.hitl=True (oracle='csv') to read them from the query CSV."
    )
  variables = {"params": saved["params"], "batch_stats": saved.get("batch_stats", {})}
  return state, variables
