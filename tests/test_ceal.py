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


def test_threshold_schedule_is_deepal_cumulative():
  # DeepAL+ (ceal.py, demo.py): at query rd = 1, 2, ... delta <- delta - 0.033e-5 * rd, then
  # pseudo-label entropy < delta. Our round r is query rd = r + 1. By hand, in units of 1e-5:
  # r = 0: 5 - 0.033 = 4.967; r = 1: 4.967 - 0.066 = 4.901; r = 2: 4.901 - 0.099 = 4.802;
  # r = 15: 5 - 0.033 * 136 = 0.512; r = 16: 5 - 0.033 * 153 = -0.049 -> 0 (nothing < 0).
  kw = dict(delta=5e-5, decay=0.033e-5, cos=0.9)
  expected = {0: 4.967e-5, 1: 4.901e-5, 2: 4.802e-5, 15: 0.512e-5, 16: 0.0, 1000: 0.0}
  for r, value in expected.items():
    assert strategies.ceal_threshold("ceal_entropy", r, **kw) == pytest.approx(value, abs=1e-15)
  # The cumulative update itself, as DeepAL+ runs it.
  delta = 5e-5
  for rd in range(1, 16):
    delta -= 0.033e-5 * rd
    assert strategies.ceal_threshold("ceal_entropy", rd - 1, **kw) == pytest.approx(delta)
  # No decay: the threshold stays delta_0; CEAL(MSAL): the fixed cosine.
  assert strategies.ceal_threshold("ceal_entropy", 7, delta=2.0, decay=0.0, cos=0.9) == 2.0
  assert strategies.ceal_threshold("ceal_msal", 7, **kw) == 0.9
  with pytest.raises(ValueError, match="round_index must be an int >= 0"):
    strategies.ceal_threshold("ceal_entropy", -1, **kw)


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
