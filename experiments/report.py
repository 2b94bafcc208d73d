r"""Re-creates an experiment's tables and figures from its files alone.

  python -m experiments.report --workdir=runs/mnist5k-20250101-120000

Reads every finished run's summary.json and rounds.jsonl (and the t-SNE
embeddings the runs saved) under --workdir and writes there what
`python -m experiments.run` writes at the end: results.md / results.csv,
timing.md / timing.csv, curves.png, error_rate.png, tsne.png (when
embeddings were saved), sweep.md / sweep.png (in a sweep) and report.md
(all of them on one page). See msal_jax/report.py.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from msal_jax import report

_WORKDIR = flags.DEFINE_string("workdir", None, "The experiment's output folder.")
flags.mark_flags_as_required(["workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  workdir = _WORKDIR.value
  if not os.path.isdir(workdir):
    sys.exit(f"error: workdir {workdir!r} is not a directory.")
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
