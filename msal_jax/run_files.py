"""The files of one run's workdir: ``rounds.jsonl``, ``summary.json``, ``curve.png``, checkpoints.

Every file is written to a temporary name and renamed, so a crash never
leaves a half-written file under the real name; ``rounds.jsonl`` grows by one
line per finished round after that round's checkpoint is started, and is
rewritten from the checkpoint on resume.

Under ``jax.distributed`` every process of a run holds a :class:`RunFiles`
of the same workdir: process 0 alone writes the result files (``writes``),
while every process opens the checkpoints, since orbax's save and restore are
collective (each process writes its own shards; orbax's primary host the
metadata and the host arrays).
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax

from msal_jax import report
from msal_jax.checkpoint import RoundCheckpointer


def write_json(path: str, obj: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2)
    f.write("\n")
  os.replace(tmp, path)  # never a half-written file under the real name


class RunFiles:
  """The result files and checkpoints under ``workdir`` (created).

  ``writes``: whether this process writes the result files (process 0 of a
  ``jax.distributed`` run; always in one process).
  """

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.writes = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    self.rounds_path = os.path.join(workdir, "rounds.jsonl")

  def open_checkpoints(self, max_to_keep: int | None) -> RoundCheckpointer:
    return RoundCheckpointer(os.path.join(self.workdir, "checkpoints"), max_to_keep=max_to_keep)

  def rewrite_rounds(self, records: list[dict[str, Any]]) -> None:
    if not self.writes:
      return
    tmp = self.rounds_path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(json.dumps(rec) + "\n" for rec in records)
    os.replace(tmp, self.rounds_path)

  def append_round(self, record: dict[str, Any]) -> None:
    if not self.writes:
      return
    with open(self.rounds_path, "a") as f:
      f.write(json.dumps(record) + "\n")

  def write_summary(self, summary: dict[str, Any]) -> None:
    """``summary.json`` and the run's ``curve.png``."""
    if not self.writes:
      return
    write_json(os.path.join(self.workdir, "summary.json"), summary)
    report.plot_curves({summary["strategy"]: [summary]},
                       os.path.join(self.workdir, "curve.png"))
