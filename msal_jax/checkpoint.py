"""One checkpoint per finished round, with orbax-checkpoint.

Each step ``r`` holds, for the model trained in round ``r``:

* ``state``: params, batch statistics, optimizer state, optimizer step count,
  the ``labeled`` mask *after* round ``r``'s query (what round ``r + 1``
  trains on) and, for CEAL, the pseudo-labels round ``r + 1`` trains on;
* ``meta`` (JSON): the round, the labels spent, the per-round records so far
  (accuracies, queried indices, ...), and the seed and strategy from which
  every PRNG key of the run is derived (``fold_in`` by purpose and round), so
  a resumed run replays exactly.

orbax writes each step to a temporary folder and renames it when complete, so
a crash mid-save leaves the previous step as the latest usable one; old steps
are pruned to ``max_to_keep``.

Runs side by side in threads of one process (``mesh.devices_per_run``) each
have a checkpointer. orbax 0.12's save keys its background signals by one
process-wide "current operation id" (``OperationIdGenerator``), so two saves
in flight at once read each other's id and fail ("File exists ...
orbax-checkpoint-tmp", "Timeout waiting for key"). Every orbax call here
therefore runs under one process-wide lock, and a save is finished before the
lock is released (a round waits for its own write: well under a second for
the paper's networks, against minutes of training).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

# One orbax operation at a time in this process (see the module docstring).
_ORBAX_LOCK = threading.RLock()


class RoundCheckpointer:
  """Saves and restores round checkpoints under ``directory``.

  Args:
    directory: folder of the checkpoints (created).
    max_to_keep: newest steps kept; ``None`` keeps all.
  """

  def __init__(self, directory: str, *, max_to_keep: int | None = 2):
    if max_to_keep is not None and max_to_keep < 1:
      raise ValueError(f"checkpoint.max_to_keep must be >= 1 or None, got {max_to_keep!r}.")
    self.directory = os.path.abspath(directory)
    with _ORBAX_LOCK:
      self._manager = ocp.CheckpointManager(
          self.directory,
          options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
      )
    self._pending: int | None = None  # the step being written
    self._failed = False  # a write failed and was reported

  def _wait(self, write: Any = None) -> None:
    """Starts ``write()`` (if given) and waits for the pending write; a failed one
    becomes a clear ``OSError``."""
    step, self._pending = self._pending, None
    try:
      if write is not None:
        write()
      self._manager.wait_until_finished()
    except Exception as e:  # orbax/tensorstore wrap the OS error in long messages
      self._failed = True
      text = str(e)
      reason = ("no space left on device" if "No space left" in text or "os_error_code='28'" in text
                else text.splitlines()[0][:300] if text else type(e).__name__)
      latest = self._manager.latest_step()
      kept = (f"the checkpoint of round {latest} is intact" if latest is not None
              else "no earlier checkpoint exists")
      raise OSError(
          f"checkpoint of round {step} could not be written under {self.directory}: {reason}. "
          f"Its partial files are ignored and {kept}; fix the cause and rerun the same command "
          "to resume from there."
      ) from e

  def latest_step(self) -> int | None:
    """The newest complete step, or ``None``."""
    with _ORBAX_LOCK:
      return self._manager.latest_step()

  def save(
      self,
      step: int,
      state: Any,
      labeled: np.ndarray,
      meta: dict[str, Any],
      pseudo: tuple[np.ndarray, np.ndarray] | None = None,
  ) -> None:
    """Writes step ``step`` and waits for it (:class:`OSError` if it failed).

    ``pseudo``: ``(mask [N] bool, labels [N] int32)`` of the pseudo-labels the
    next round trains on (CEAL), if any.
    """
    tree = {
        "params": state.params,
        "batch_stats": state.batch_stats,
        "opt_state": state.opt_state,
        "step": state.step,
        "labeled": np.asarray(labeled, bool),
    }
    if pseudo is not None:
      tree["pseudo_mask"] = np.asarray(pseudo[0], bool)
      tree["pseudo_labels"] = np.asarray(pseudo[1], np.int32)
    args = ocp.args.Composite(state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta))
    with _ORBAX_LOCK:
      self._pending = step
      self._wait(lambda: self._manager.save(step, args=args))

  def restore_meta(self, step: int) -> dict[str, Any]:
    with _ORBAX_LOCK:
      return self._manager.restore(
          step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def restore_state(self, step: int) -> dict[str, Any]:
    """The saved arrays as a nested dict of numpy arrays (optimizer state as lists)."""
    with _ORBAX_LOCK:
      out = self._manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    return jax.tree.map(np.asarray, out)

  def close(self) -> None:
    """Waits for pending writes (:class:`OSError` if one failed), releases the manager."""
    with _ORBAX_LOCK:
      try:
        self._wait()
      finally:
        try:
          self._manager.close()
        except Exception:  # orbax repeats the failed write's error here: reported already
          if not self._failed:
            raise
