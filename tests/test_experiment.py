"""The launcher end to end on the embedded data, and its bad-input errors."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import experiment
from msal_jax import metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "--config.al.initial=20", "--config.al.batch=10", "--config.al.budget=20",
    "--config.train.epochs=1", "--config.train.batch_size=16",
    "--config.train.eval_batch_size=500",
    "--config.model.trunk.widths=(4, 8)", "--config.model.trunk.hidden=16",
]


def _launch(workdir, *extra, tiny=TINY):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run(
      [sys.executable, "-m", "experiments.run", "--config=configs/mnist5k.py",
       f"--workdir={workdir}", *tiny, *extra],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
  )


def _check_run_dir(path, strategy, seed):
  with open(os.path.join(path, "rounds.jsonl")) as f:
    rounds = [json.loads(line) for line in f]
  assert [r["round"] for r in rounds] == [0, 1, 2]
  assert [r["num_labeled"] for r in rounds] == [20, 30, 40]
  for r in rounds:
    for key in ("test_accuracy", "unlabeled_error_rate", "train_seconds", "query_seconds"):
      assert isinstance(r[key], float)
  assert [len(r["queried"]) for r in rounds] == [10, 10, 0]
  with open(os.path.join(path, "summary.json")) as f:
    summary = json.load(f)
  assert (summary["strategy"], summary["dataset"], summary["seed"]) == (strategy, "mnist5k", seed)
  accs = [r["test_accuracy"] for r in rounds]
  assert summary["accuracies"] == accs
  assert summary["aubc"] == pytest.approx(metrics.aubc(accs, budget=20, batch=10), abs=1e-12)
  assert summary["f_acc"] == accs[-1]
  with open(os.path.join(path, "curve.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  return summary


def test_single_run_writes_flat_files(tmp_path):
  # Also: al.oracle names a factory of the labels (tests/oracles.py:shifted answers
  # (id + seed + 1) % 10); the learner is told its answers, recorded per round.
  proc = _launch(tmp_path, "--config.strategies=('msal_d',)", "--config.seeds=(5,)",
                 "--config.al.oracle=tests/oracles.py:shifted")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "round 2/2" in proc.stdout
  assert "note:" not in proc.stdout  # batch 10 = C: MSAL-D covers every class
  assert "checkpoint_manager.py" not in proc.stderr  # orbax's INFO logs stay quiet by default
  with open(tmp_path / "config.json") as f:
    config = json.load(f)
  assert config["al"]["budget"] == 20 and config["strategies"] == ["msal_d"]
  assert config["al"]["oracle"] == "tests/oracles.py:shifted"
  _check_run_dir(tmp_path, "msal_d", 5)
  with open(tmp_path / "rounds.jsonl") as f:
    asked = [r for r in map(json.loads, f) if r["queried"]]
  assert len(asked) == 2
  for r in asked:
    assert r["labels"] == [(i + 5 + 1) % 10 for i in r["queried"]]


def test_multi_run_writes_subfolders_and_table(tmp_path):
  proc = _launch(tmp_path, "--config.strategies=('random', 'msal')", "--config.seeds=(0, 1)")
  assert proc.returncode == 0, proc.stderr[-3000:]
  summaries = {}
  for strategy in ("random", "msal"):
    for seed in (0, 1):
      summaries[strategy, seed] = _check_run_dir(tmp_path / strategy / f"seed_{seed}",
                                                 strategy, seed)
  with open(tmp_path / "results.csv") as f:
    lines = f.read().splitlines()
  assert lines[0] == "strategy,seeds,aubc_mean,aubc_std,f_acc_mean,f_acc_std"
  row = dict(zip(lines[0].split(","), lines[2].split(","), strict=True))
  assert row["strategy"] == "msal"
  expected = (summaries["msal", 0]["aubc"] + summaries["msal", 1]["aubc"]) / 2
  assert float(row["aubc_mean"]) == pytest.approx(expected, abs=1e-12)
  assert (tmp_path / "results.md").read_text().count("| msal |") == 1
  assert (tmp_path / "curves.png").exists()
  # The table can be rebuilt from the files alone.
  assert experiment.load_results(str(tmp_path)).keys() == {"random", "msal"}


@pytest.mark.parametrize(
    "override, match",
    [
        ("--config.strategies=('msal', 'bogus')", "unknown strategy 'bogus'"),
        ("--config.data.name=nodata", "unknown dataset 'nodata'"),
        ("--config.al.budget=4000", "larger than the pool"),
        ("--config.al.beta=0.5", "al.beta must be a number >= 1"),
        ("--config.data.dir=/no/such/dir", "does not exist"),
        ("--config.seeds=(-1,)", "seeds must be integers >= 0"),
        ("--config.strategies=('msal', 'bald')", "model.dropout_rate must be > 0"),
        ("--config.al.oracle=no_such_module:make", "al.oracle: cannot import module"),
        ("--config.al.oracle=tests/oracles.py:NOT_CALLABLE", "not a callable factory"),
        (("--config.al.oracle=tests/oracles.py:shifted", "--config.al.hitl=True",
          "--config.strategies=('msal',)", "--config.seeds=(0,)"), "two sources of labels"),
    ],
)
def test_bad_input_fails_before_anything_is_written(tmp_path, override, match):
  workdir = tmp_path / "wd"
  proc = _launch(workdir, *((override,) if isinstance(override, str) else override))
  assert proc.returncode != 0
  assert match in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1  # one line, no traceback
  assert not workdir.exists()  # checked before the workdir (and its config.json) is made


def test_config_oracle_factory_errors_and_sweep():
  from experiments import defaults

  config = defaults.get_config()
  config.al.oracle = "tests/oracles.py:shifted"
  config.al.oracle_kwargs.shift = 2
  config.sweep.field, config.sweep.values = "al.oracle_kwargs.shift", (0, 5)
  exp = experiment.Experiment.from_config(config)
  assert [(v, p.oracle, p.oracle_kwargs) for v, p in exp.sweep] == [
      ("0", "tests/oracles.py:shifted", {"shift": 0}),
      ("5", "tests/oracles.py:shifted", {"shift": 5})]
  fake = type("D", (), {"pool_labels": [2, 0, 1], "num_classes": 3})()
  oracle = experiment._make_oracle(exp.sweep[1][1], fake, seed=1)
  assert oracle([0, 1, 2]).tolist() == [0, 1, 2]  # (id + 1 + 5) % 3
  bad = dataclasses.replace(exp, oracle="tests/oracles.py:returns_none", oracle_kwargs={})
  with pytest.raises(ValueError, match="returned a NoneType, not the oracle function"):
    experiment._make_oracle(bad, fake, seed=0)
  config.sweep.field = None
  config.al.oracle = None
  with pytest.raises(ValueError, match="al.oracle_kwargs .* given but no al.oracle"):
    experiment.Experiment.from_config(config)


def test_noisy_oracle_example():
  sys.path.insert(0, os.path.join(ROOT, "examples"))
  try:
    from noisy_oracle import noisy_oracle
  finally:
    sys.path.pop(0)
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, 100_000)
  ids = np.arange(100_000)
  assert np.array_equal(noisy_oracle(labels=labels, num_classes=10, seed=0, flip=0.0)(ids), labels)
  always = noisy_oracle(labels=labels, num_classes=10, seed=0, flip=1.0)(ids)
  assert (always != labels).all() and ((always >= 0) & (always < 10)).all()
  oracle = noisy_oracle(labels=labels, num_classes=10, seed=4, flip=0.1)
  answers = oracle(ids)
  # Binomial(100000, 0.1): the rate is within 0.005 of 0.1 (> 5 standard deviations).
  assert abs((answers != labels).mean() - 0.1) < 0.005
  assert np.array_equal(oracle(ids[::-1]), answers[::-1])  # the same answer per id
  assert np.array_equal(noisy_oracle(labels=labels, num_classes=10, seed=4, flip=0.1)(ids),
                        answers)  # rebuilt from the seed (a resumed run): the same
  with pytest.raises(ValueError, match="true labels"):
    noisy_oracle(labels=np.array([0, -1]), num_classes=2, seed=0)
