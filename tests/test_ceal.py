"""CEAL: pseudo-labels for one round, never counted as labels, restored on resume."""

import shutil

import numpy as np
import pytest

from msal_jax import loop, strategies

TIMING = ("train_seconds", "eval_seconds", "query_seconds")


@pytest.fixture(scope="module")
def tiny(mnist5k_head):
  return mnist5k_head(200, 50)


def _run(tiny, strategy, workdir=None, rounds=None, **al):
  return loop.run(
      tiny, strategy=strategy, seed=0, workdir=workdir, max_to_keep=None, log=lambda s: None,
      al=loop.ActiveLearningConfig(initial=20, batch=10, budget=30, rounds=rounds, **al),
      train=loop.TrainConfig(epochs=2, batch_size=16, eval_batch_size=64),
      model=loop.ModelConfig(trunk_kwargs={"widths": (4,), "hidden": 16}),
  )


def test_threshold_schedule():
  kw = dict(delta=5e-5, decay=0.033e-5, cos=0.9)
  assert strategies.ceal_threshold("ceal_entropy", 0, **kw) == 5e-5
  assert strategies.ceal_threshold("ceal_entropy", 3, **kw) == pytest.approx(5e-5 - 3 * 0.033e-5)
  assert strategies.ceal_threshold("ceal_entropy", 1000, **kw) == 0.0
  assert strategies.ceal_threshold("ceal_msal", 7, **kw) == 0.9


@pytest.mark.parametrize("strategy, al", [
    ("ceal_entropy", {"ceal_delta": 100.0}),  # entropy <= log 10 < 100: every unlabeled sample
    ("ceal_msal", {"ceal_cos": -1.0}),        # cos > -1: every unlabeled sample
])
def test_everything_confident_is_pseudo_labeled_but_not_spent(tiny, strategy, al):
  s = _run(tiny, strategy, **al)
  recs = s["rounds"]
  assert [r["num_labeled"] for r in recs] == [20, 30, 40, 50]
  # Round r + 1 trains on every sample still unlabeled after round r's query.
  assert [r["num_pseudo"] for r in recs] == [0, 200 - 30, 200 - 40, 200 - 50]
  assert recs[0]["pseudo_accuracy"] is None
  assert all(0 <= r["pseudo_accuracy"] <= 1 for r in recs[1:])
  assert s["labels_spent"] == 30 and s["traces"]["pseudo"] == 1


def test_tiny_threshold_pseudo_labels_nothing(tiny):
  s = _run(tiny, "ceal_entropy", ceal_delta=0.0)
  assert all(r["num_pseudo"] == 0 for r in s["rounds"])


def test_resume_restores_pseudo_labels(tiny, tmp_path):
  full = _run(tiny, "ceal_entropy", workdir=str(tmp_path), ceal_delta=100.0)
  # As if the run had died after round 1: only checkpoints 0 and 1 exist.
  for step in (2, 3):
    shutil.rmtree(tmp_path / "checkpoints" / str(step))
  resumed = _run(tiny, "ceal_entropy", workdir=str(tmp_path), ceal_delta=100.0)

  def strip(recs):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in recs]

  assert strip(resumed["rounds"]) == strip(full["rounds"])
  assert full["rounds"][2]["num_pseudo"] > 0  # the resumed round really used pseudo-labels
  np.testing.assert_array_equal(resumed["accuracies"], full["accuracies"])


def test_a_finished_shorter_run_is_not_extended(tiny, tmp_path):
  _run(tiny, "ceal_entropy", workdir=str(tmp_path), rounds=1)
  with pytest.raises(ValueError, match="ended after round 1 .* cannot be extended to 3 rounds"):
    _run(tiny, "ceal_entropy", workdir=str(tmp_path))
