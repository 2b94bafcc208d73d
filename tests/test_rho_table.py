"""experiments.rho_table: round-0 accuracies of a rho sweep against the linear head."""

import json
import os

import pytest

from experiments import rho_table


def _run(folder, accuracies):
  os.makedirs(folder)
  with open(os.path.join(folder, "rounds.jsonl"), "w") as f:
    for r, acc in enumerate(accuracies):
      f.write(json.dumps({"round": r, "test_accuracy": acc}) + "\n")


def _workdirs(tmp_path):
  maxsep, linear = tmp_path / "maxsep", tmp_path / "linear"
  for rho, accs in {"0.1": (0.5, 0.7), "1.0": (0.8, 0.6)}.items():
    for seed, acc in enumerate(accs):
      _run(maxsep / "msal" / f"model.rho={rho}" / f"seed_{seed}", [acc, 0.99])
  for seed, acc in enumerate((0.75, 0.65)):
    _run(linear / "random" / f"seed_{seed}", [acc, 0.98])
  return str(maxsep), str(linear)


def test_table_reads_round_0_of_every_run(tmp_path):
  sweep, lin = rho_table.table(*_workdirs(tmp_path))
  assert sweep == {0.1: {0: 0.5, 1: 0.7}, 1.0: {0: 0.8, 1: 0.6}}
  assert lin == {0: 0.75, 1: 0.65}


def test_markdown_row_is_mean_and_population_std(tmp_path):
  text = rho_table.markdown("toy", *rho_table.table(*_workdirs(tmp_path)))
  # rho 0.1: mean 0.6, std 0.1; rho 1: mean 0.7, std 0.1; linear 0.7 ± 0.05; best 1.
  assert text.splitlines()[2] == (
      "| toy | 2 | 0.6000 ± 0.1000 | 0.7000 ± 0.1000 | 0.7000 ± 0.0500 | 1 |")


def test_seeds_must_match(tmp_path):
  maxsep, linear = _workdirs(tmp_path)
  _run(os.path.join(linear, "random", "seed_2"), [0.7])
  with pytest.raises(ValueError, match=r"seeds \[0, 1\] but the linear run has \[0, 1, 2\]"):
    rho_table.table(maxsep, linear)
