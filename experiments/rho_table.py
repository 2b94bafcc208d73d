"""The radius table: round-0 test accuracy of the max-separation network per rho.

Reads two launcher workdirs made on the same data and seeds: one that swept
``model.rho`` over a max-separation strategy (``--config.strategies=msal
--config.sweep.field=model.rho``) and one of a linear-head strategy
(``--config.strategies=random``). Round 0 of every run is the network trained on
the initial labels alone, drawn per seed the same way for every strategy, so
the two are compared on identical labels:

  python -m experiments.rho_table --maxsep=runs/rho/mnist/maxsep \
      --linear=runs/rho/mnist/linear [--name=MNIST]

prints one Markdown row: mean ± std over seeds of the max-separation network's
accuracy for each rho, the linear head's, and the rho with the best mean.
"""

from __future__ import annotations

import glob
import json
import os
import re

import numpy as np
from absl import app, flags

_MAXSEP = flags.DEFINE_string("maxsep", None, "workdir of the rho sweep (max-separation head)")
_LINEAR = flags.DEFINE_string("linear", None, "workdir of the linear-head run")
_NAME = flags.DEFINE_string("name", None, "row label (default: the dataset name)")


def round0(run_dir: str) -> tuple[int, float]:
  """(seed, test accuracy of round 0) of one run folder."""
  with open(os.path.join(run_dir, "rounds.jsonl")) as f:
    first = json.loads(f.readline())
  if first["round"] != 0:
    raise ValueError(f"{run_dir}/rounds.jsonl does not start with round 0")
  seed = int(re.fullmatch(r"seed_(\d+)", os.path.basename(run_dir)).group(1))
  return seed, float(first["test_accuracy"])


def _seed_accuracies(pattern: str) -> dict[int, float]:
  runs = sorted(glob.glob(pattern))
  if not runs:
    raise ValueError(f"no run folders match {pattern}")
  return dict(round0(d) for d in runs)


def table(maxsep: str, linear: str) -> tuple[dict[float, dict[int, float]], dict[int, float]]:
  """({rho: {seed: accuracy}}, {seed: linear accuracy}) from the two workdirs."""
  sweep: dict[float, dict[int, float]] = {}
  for point in glob.glob(os.path.join(maxsep, "*", "model.rho=*")):
    rho = float(point.rsplit("=", 1)[1])
    sweep[rho] = _seed_accuracies(os.path.join(point, "seed_*"))
  if not sweep:
    raise ValueError(f"{maxsep} has no <strategy>/model.rho=<value>/ folders")
  lin = _seed_accuracies(os.path.join(linear, "*", "seed_*"))
  for rho, accs in sweep.items():
    if set(accs) != set(lin):
      raise ValueError(f"rho={rho}: seeds {sorted(accs)} but the linear run has {sorted(lin)}")
  return dict(sorted(sweep.items())), lin


def _cell(values) -> str:
  v = np.asarray(list(values), float)
  return f"{v.mean():.4f} ± {v.std():.4f}"


def markdown(name: str, sweep: dict[float, dict[int, float]], lin: dict[int, float]) -> str:
  """Header, separator and the row (std is the population std over seeds)."""
  rhos = list(sweep)
  best = max(rhos, key=lambda r: np.mean(list(sweep[r].values())))
  head = ["data", "seeds", *(f"rho={r:g}" for r in rhos), "linear head", "best rho"]
  row = [name, str(len(lin)), *(_cell(sweep[r].values()) for r in rhos), _cell(lin.values()),
         f"{best:g}"]
  return "\n".join("| " + " | ".join(cells) + " |"
                   for cells in (head, ["---"] * len(head), row))


def main(argv: list[str]) -> None:
  del argv
  if not (_MAXSEP.value and _LINEAR.value):
    raise app.UsageError("--maxsep and --linear are required")
  sweep, lin = table(_MAXSEP.value, _LINEAR.value)
  name = _NAME.value
  if name is None:
    with open(os.path.join(_LINEAR.value, "config.json")) as f:
      name = json.load(f)["data"]["name"]
  print(markdown(name, sweep, lin))


if __name__ == "__main__":
  app.run(main)
