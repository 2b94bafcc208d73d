"""What the launcher tells a person: the table with its columns defined, where the files are,
and, in a human-in-the-loop run, which file to fill in.

The table is ``results.md`` as :func:`msal_jax.report.write_report` wrote it
(the same bytes ``python -m experiments.report`` writes), so the terminal and
the files never disagree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

COLUMNS = ("AUBC: area under the accuracy-vs-labels curve, normalised by the budget; "
           "F-acc: test accuracy after the last round.")
# The figures write_report may write, in the order they are listed.
FIGURES = ("curves.png", "error_rate.png", "sweep.png", "tsne.png")


def log_table(workdir: str, log: Callable[[str], None]) -> None:
  """Logs ``results.md`` of ``workdir`` followed by the line that defines its columns."""
  with open(os.path.join(workdir, "results.md")) as f:
    log("\n" + f.read())
  log(COLUMNS)


def where_lines(workdir: str) -> list[str]:
  """``report: ...``, ``table: ...``, ``figures: ...``: absolute paths of what was written."""
  root = os.path.abspath(workdir)
  lines = [f"report: {os.path.join(root, 'report.md')} (tables and figures on one page)",
           f"table: {os.path.join(root, 'results.md')} and results.csv "
           "(time per round: timing.md)"]
  figures = [os.path.join(root, n) for n in FIGURES if os.path.exists(os.path.join(root, n))]
  if figures:
    lines.append(f"figures: {', '.join(figures)}")
  return lines


def pending_labels(results: Mapping[Any, Sequence[Mapping[str, Any]]]) -> str | None:
  """The CSV a person must fill in when a human-in-the-loop run stopped (``al.hitl``)."""
  pending = [s["pending_labels"] for runs in results.values() for s in runs
             if s.get("pending_labels")]
  return os.path.abspath(pending[0]) if pending else None


def end_lines(workdir: str, results: Mapping[Any, Sequence[Mapping[str, Any]]]) -> list[str]:
  """The launcher's last lines: the file to label (a stopped HITL run) or where results are."""
  csv = pending_labels(results)
  if csv is not None:
    return [f"labels to fill in: {csv} (its label column; then run the same command again)"]
  return where_lines(workdir)
