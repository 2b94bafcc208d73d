r"""Re-creates an experiment's tables and figures from its files alone.

  python -m experiments.report --workdir=runs/mnist5k-20250101-120000

Reads every finished run's summary.json and rounds.jsonl (and the t-SNE
embeddings the runs saved) under --workdir and writes there what
`python -m experiments.run` writes at the end: results.md / results.csv,
timing.md / timing.csv, curves.png, error_rate.png, tsne.png (when
embeddings were saved), sweep.md / sweep.png (in a sweep) and report.md
(all of them on one page). See msal_jax/report.py.

A grid split over the tasks of a job array (``--task_index/--num_tasks``)
records its runs in ``runs.json``; while some of them have no summary.json
yet, nothing is written: the runs missing are named on standard error and the
exit status is 3 (``MISSING``), so a polling loop or a scheduler dependency
can tell "not yet" from an error (status 1).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from experiments import shares
from msal_jax import report

MISSING = 3  # exit status: some runs of the grid have no files yet

_WORKDIR = flags.DEFINE_string("workdir", None, "The experiment's output folder.")
flags.mark_flags_as_required(["workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  workdir = _WORKDIR.value
  if not os.path.isdir(workdir):
    sys.exit(f"error: workdir {workdir!r} is not a directory.")
  missing, total = shares.missing_runs(workdir)
  if missing:
    print(f"{shares.missing_line(missing, total, shown=len(missing))}; run this again when every "
          "task of the grid has ended.", file=sys.stderr)
    sys.exit(MISSING)
  try:
    written = report.write_report(workdir, log=lambda s: print(s, flush=True))
  except (ValueError, OSError) as e:
    sys.exit(f"error: {e}")
  except KeyError as e:  # a hand-edited or foreign summary.json / rounds.jsonl
    sys.exit(f"error: {workdir}: a result file lacks the field {e}.")
  with open(os.path.join(workdir, "results.md")) as f:
    print(f.read())
  for path in written:
    print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
