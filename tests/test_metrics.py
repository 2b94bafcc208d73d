"""Metrics against hand-computed curves and plain-python references.

Independent of the implementation: the AUBC reference is DeepAL+'s get_aubc
written out here without its final rounding.
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from msal_jax import metrics


def _ref_aubc(accuracies, budget, batch):
  """DeepAL+ get_aubc(quota=budget, bsize=batch, resseq=accuracies), unrounded."""
  total = 0.0
  if budget % batch == 0:
    for i in range(len(accuracies) - 1):
      total += (accuracies[i + 1] + accuracies[i]) * batch / 2
  else:
    for i in range(len(accuracies) - 2):
      total += (accuracies[i + 1] + accuracies[i]) * batch / 2
    total += (accuracies[-1] + accuracies[-2]) * (budget % batch) / 2
  return total / budget


# ---------------------------------------------------------------------------
# aubc
# ---------------------------------------------------------------------------


def test_aubc_hand_computed_divisible():
  # ((0.5 + 0.7) * 10 / 2 + (0.7 + 0.9) * 10 / 2) / 20 = (6 + 8) / 20 = 0.7
  got = metrics.aubc([0.5, 0.7, 0.9], budget=20, batch=10)
  assert isinstance(got, float)
  assert got == pytest.approx(0.7, abs=1e-12)


def test_aubc_hand_computed_remainder():
  # budget 25, batch 10: ceil(2.5) = 3 rounds, 4 accuracies; widths 10, 10, 25 % 10 = 5.
  # ((0.2+0.4)*10/2 + (0.4+0.6)*10/2 + (0.6+1.0)*5/2) / 25 = (3 + 5 + 4) / 25 = 0.48
  assert metrics.aubc([0.2, 0.4, 0.6, 1.0], budget=25, batch=10) == pytest.approx(0.48,
                                                                                    abs=1e-12)
  # budget 7, batch 3: ceil(7/3) = 3 rounds, 4 accuracies; widths 3, 3, 1.
  # ((0.1+0.3)*3/2 + (0.3+0.6)*3/2 + (0.6+0.7)*1/2) / 7 = (0.6 + 1.35 + 0.65) / 7 = 2.6 / 7
  assert metrics.aubc([0.1, 0.3, 0.6, 0.7], budget=7, batch=3) == pytest.approx(2.6 / 7,
                                                                                  abs=1e-12)
  # budget 5 < batch 10: one round, 2 accuracies, width 5: (0.2 + 0.6) * 5 / 2 / 5 = 0.4
  assert metrics.aubc([0.2, 0.6], budget=5, batch=10) == pytest.approx(0.4, abs=1e-12)


def test_aubc_constant_curve_and_single_round():
  assert metrics.aubc([0.8] * 11, budget=100, batch=10) == pytest.approx(0.8, abs=1e-12)
  assert metrics.aubc([0.8] * 4, budget=25, batch=10) == pytest.approx(0.8, abs=1e-12)
  assert metrics.aubc([0.3, 0.5], budget=10, batch=10) == pytest.approx(0.4, abs=1e-12)


@pytest.mark.parametrize(
    "seed, budget, batch",
    [(0, 10_000, 250), (1, 20, 10), (2, 25, 10), (3, 7, 3), (4, 1000, 7), (5, 999, 1000),
     (6, 60, 1)],
)
def test_aubc_matches_reference_and_trapezoid(seed, budget, batch):
  rounds = math.ceil(budget / batch)
  acc = np.random.default_rng(seed).random(rounds + 1)
  expected = _ref_aubc(acc.tolist(), budget, batch)
  got = metrics.aubc(acc, budget=budget, batch=batch)
  assert isinstance(got, float)
  assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)
  assert metrics.aubc(acc.tolist(), budget=budget, batch=batch) == pytest.approx(got, rel=1e-12)
  # Trapezoid area over x = labels added (0, b, 2b, ..., budget), divided by the budget.
  x = np.minimum(np.arange(rounds + 1) * batch, budget)
  assert got == pytest.approx(np.trapezoid(acc, x) / budget, rel=1e-12, abs=1e-12)
  if budget % batch == 0:
    assert got == pytest.approx(np.trapezoid(acc, dx=batch) / budget, rel=1e-12)


def test_aubc_accepts_jax_arrays():
  acc = jnp.array([0.5, 0.7, 0.9])
  assert metrics.aubc(acc, budget=20, batch=10) == pytest.approx(0.7, abs=1e-6)


def test_aubc_is_not_rounded():
  # DeepAL+ rounds to 3 decimals; this one must not.
  got = metrics.aubc([0.12345, 0.54321], budget=7, batch=7)
  assert got == pytest.approx((0.12345 + 0.54321) / 2, abs=1e-12)
  assert abs(got - round(got, 3)) > 1e-4


@pytest.mark.parametrize(
    "accs, budget, batch",
    [
        ([0.1, 0.2], 20, 10),  # needs 3
        ([0.1, 0.2, 0.3, 0.4], 20, 10),  # needs 3
        ([0.1, 0.2, 0.3], 25, 10),  # needs 4
        ([0.1, 0.2, 0.3, 0.4, 0.5], 25, 10),  # needs 4
        ([0.1], 5, 10),  # needs 2
        ([], 20, 10),
    ],
)
def test_aubc_wrong_number_of_accuracies(accs, budget, batch):
  with pytest.raises(ValueError):
    metrics.aubc(accs, budget=budget, batch=batch)


# ---------------------------------------------------------------------------
# final_accuracy, accuracy, unlabeled_error_rate
# ---------------------------------------------------------------------------


def test_final_accuracy():
  got = metrics.final_accuracy([0.1, 0.5, 0.75])
  assert isinstance(got, float) and got == 0.75
  assert metrics.final_accuracy(np.array([0.2, 0.3])) == pytest.approx(0.3)
  assert metrics.final_accuracy(jnp.array([0.2, 0.4])) == pytest.approx(0.4)
  assert metrics.final_accuracy([0.9]) == pytest.approx(0.9)


def test_accuracy_hand_case():
  got = metrics.accuracy([1, 2, 3, 4], [1, 2, 0, 4])
  assert isinstance(got, float) and got == pytest.approx(0.75)
  assert metrics.accuracy(np.zeros(3, int), np.ones(3, int)) == 0.0
  assert metrics.accuracy(jnp.arange(5), jnp.arange(5)) == 1.0


@pytest.mark.parametrize("seed, n, num_classes", [(0, 50, 2), (1, 333, 3), (2, 500, 10)])
def test_accuracy_and_unlabeled_error_rate_match_reference(seed, n, num_classes):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, num_classes, n)
  predictions = np.where(rng.random(n) < 0.7, labels, rng.integers(0, num_classes, n))
  labeled = rng.random(n) < 0.3
  correct = sum(int(predictions[i] == labels[i]) for i in range(n))
  unl = [i for i in range(n) if not labeled[i]]
  wrong_unl = sum(int(predictions[i] != labels[i]) for i in unl)

  acc = metrics.accuracy(jnp.asarray(predictions), jnp.asarray(labels))
  assert isinstance(acc, float)
  assert acc == pytest.approx(correct / n, abs=1e-12)
  assert metrics.accuracy(predictions, labels) == pytest.approx(correct / n, abs=1e-12)

  err = metrics.unlabeled_error_rate(predictions, labels, labeled)
  assert isinstance(err, float)
  assert err == pytest.approx(wrong_unl / len(unl), abs=1e-12)
  err_jax = metrics.unlabeled_error_rate(jnp.asarray(predictions), jnp.asarray(labels),
                                         jnp.asarray(labeled))
  assert err_jax == pytest.approx(wrong_unl / len(unl), abs=1e-7)


def test_unlabeled_error_rate_hand_case():
  pred = np.array([0, 1, 2, 3, 4])
  labels = np.array([0, 0, 2, 0, 4])
  labeled = np.array([True, False, False, True, False])
  # Unlabeled: 1 (wrong), 2 (right), 4 (right) -> 1/3; the labeled mistake at 3 is ignored.
  assert metrics.unlabeled_error_rate(pred, labels, labeled) == pytest.approx(1 / 3)
  # Only the labeled sample is wrong -> 0.
  assert metrics.unlabeled_error_rate([1, 1], [1, 0], [False, True]) == 0.0
  # Nothing unlabeled -> NaN.
  assert math.isnan(metrics.unlabeled_error_rate(pred, labels, np.ones(5, bool)))


def test_shape_mismatches_raise():
  with pytest.raises(ValueError):
    metrics.accuracy([1, 2], [1, 2, 3])
  with pytest.raises(ValueError):
    metrics.accuracy(np.zeros(5, int), np.zeros((5, 1), int))
  with pytest.raises(ValueError):
    metrics.unlabeled_error_rate(np.zeros(5, int), np.zeros(4, int), np.zeros(5, bool))
  with pytest.raises(ValueError):
    metrics.unlabeled_error_rate(np.zeros(5, int), np.zeros(5, int), np.zeros(4, bool))
  with pytest.raises(ValueError):
    metrics.unlabeled_error_rate(np.zeros(5, int), np.zeros(5, int), np.zeros(6, bool))


# ---------------------------------------------------------------------------
# Beyond the brief's spec: API checks carried over from the earlier version of
# this file (they name implementation details, so they are not independent).
# ---------------------------------------------------------------------------


def test_error_messages():
  with pytest.raises(ValueError, match="needs 3 accuracies"):
    metrics.aubc([0.1, 0.2], budget=20, batch=10)
  with pytest.raises(ValueError, match="labeled must have shape"):
    metrics.unlabeled_error_rate(np.zeros(5, int), np.zeros(5, int), np.ones(4, bool))
  with pytest.raises(ValueError):
    metrics.final_accuracy([])


def test_num_rounds():
  assert metrics.num_rounds(10_000, 250) == 40
  assert metrics.num_rounds(25, 10) == 3
  with pytest.raises(ValueError):
    metrics.num_rounds(0, 10)
