"""The active-learning loop: fixed shapes (no recompilation), bookkeeping, determinism."""

import math

import numpy as np
import pytest

from msal_jax import data, loop, metrics

TINY_TRUNK = {"widths": (4, 8), "hidden": 16}


@pytest.fixture(scope="module")
def tiny(mnist5k_head) -> data.Dataset:
  return mnist5k_head(300, 100, "mnist5k-tiny")


def _run(tiny, strategy, seed=0, rounds=3, budget=30, batch=10, initial=20):
  return loop.run(
      tiny, strategy=strategy, seed=seed,
      al=loop.ActiveLearningConfig(initial=initial, batch=batch, budget=budget, rounds=rounds,
                                   beta=2.0),
      train=loop.TrainConfig(epochs=1, batch_size=16, eval_batch_size=64),
      model=loop.ModelConfig(arch="small_cnn", rho=0.1, trunk_kwargs=TINY_TRUNK),
      log=lambda s: None,
  )


@pytest.mark.parametrize("strategy", ["msal_d", "entropy"])
def test_each_program_compiles_once_over_all_rounds(tiny, strategy):
  summary = _run(tiny, strategy, rounds=3)
  assert len(summary["accuracies"]) == 4
  # eval_step sees two fixed shapes (pool of 300, test of 100); everything
  # else exactly one. A per-round recompilation would multiply these by 4.
  assert summary["traces"] == {
      "init": 1, "train_step": 1, "eval_step": 2, "shuffle": 1, "select": 1,
  }


def test_rounds_bookkeeping_and_aubc(tiny):
  s = _run(tiny, "msal", rounds=None, budget=25, batch=10, initial=20)
  recs = s["rounds"]
  # budget 25 at batch 10: rounds query 10, 10, 5 -> ceil(25/10) = 3 rounds.
  assert [r["num_labeled"] for r in recs] == [20, 30, 40, 45]
  assert [len(r["queried"]) for r in recs] == [10, 10, 5, 0]
  queried = np.concatenate([r["queried"] for r in recs[:-1]])
  assert len(set(queried.tolist())) == 25
  assert s["labels_spent"] == 25
  acc = s["accuracies"]
  expected = ((acc[0] + acc[1]) * 10 / 2 + (acc[1] + acc[2]) * 10 / 2 + (acc[2] + acc[3]) * 5 / 2)
  assert s["aubc"] == pytest.approx(expected / 25, abs=1e-12)
  assert s["f_acc"] == acc[-1]
  assert all(0 <= r["unlabeled_error_rate"] <= 1 for r in recs)


def test_early_stop_aubc_over_spent_labels(tiny):
  s = _run(tiny, "random", rounds=1, budget=30, batch=10)
  assert s["labels_spent"] == 10
  assert s["aubc"] == pytest.approx(metrics.aubc(s["accuracies"], budget=10, batch=10))


def test_same_seed_same_run_other_seed_differs(tiny):
  a = _run(tiny, "msal_d", seed=3, rounds=2)
  b = _run(tiny, "msal_d", seed=3, rounds=2)
  c = _run(tiny, "msal_d", seed=4, rounds=2)
  assert [r["queried"] for r in a["rounds"]] == [r["queried"] for r in b["rounds"]]
  assert a["accuracies"] == b["accuracies"]
  assert [r["queried"] for r in a["rounds"]] != [r["queried"] for r in c["rounds"]]


def test_initial_set_is_per_seed_and_exact_size():
  import jax

  m0 = loop.initial_labeled(jax.random.PRNGKey(0), 1000, 37)
  m1 = loop.initial_labeled(jax.random.PRNGKey(1), 1000, 37)
  assert m0.sum() == 37 and m1.sum() == 37 and (m0 != m1).any()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"initial": 0, "batch": 10, "budget": 20}, "al.initial"),
        ({"initial": 5, "batch": 0, "budget": 20}, "al.batch"),
        ({"initial": 5, "batch": 10, "budget": 20, "beta": 0.5}, "al.beta"),
        ({"initial": 5, "batch": 10, "budget": 20, "rounds": 3}, "al.rounds"),
    ],
)
def test_al_config_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    loop.ActiveLearningConfig(**kwargs)


def test_budget_larger_than_pool_fails_before_training(tiny):
  with pytest.raises(ValueError, match=r"larger than the pool \(300 samples\)"):
    _run(tiny, "msal", budget=290, batch=10, initial=20, rounds=None)


def test_unknown_strategy(tiny):
  with pytest.raises(ValueError, match="unknown strategy 'nope'"):
    _run(tiny, "nope")


def test_num_rounds_default():
  assert loop.ActiveLearningConfig(initial=1, batch=250, budget=10_000).num_rounds == 40
  assert loop.ActiveLearningConfig(initial=1, batch=3, budget=10).num_rounds == math.ceil(10 / 3)
