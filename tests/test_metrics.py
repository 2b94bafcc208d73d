"""Metrics on hand-computed curves."""

import math

import numpy as np
import pytest

from msal_jax import metrics


def test_aubc_hand_computed_divisible():
  # ((0.5 + 0.7) * 10 / 2 + (0.7 + 0.9) * 10 / 2) / 20 = (6 + 8) / 20
  assert metrics.aubc([0.5, 0.7, 0.9], budget=20, batch=10) == pytest.approx(0.7, abs=1e-15)


def test_aubc_hand_computed_remainder():
  # budget 25 at batch 10: widths 10, 10, 5.
  # ((0.2+0.4)*10/2 + (0.4+0.6)*10/2 + (0.6+1.0)*5/2) / 25 = (3 + 5 + 4) / 25
  got = metrics.aubc([0.2, 0.4, 0.6, 1.0], budget=25, batch=10)
  assert got == pytest.approx(12 / 25, abs=1e-15)


def test_aubc_is_trapezoid_over_labels_added():
  rng = np.random.default_rng(0)
  acc = rng.random(41)
  x = np.arange(41) * 250
  assert metrics.aubc(acc, budget=10_000, batch=250) == pytest.approx(
      np.trapezoid(acc, x) / 10_000, rel=1e-12)


def test_aubc_not_rounded():
  got = metrics.aubc([0.12345, 0.54321], budget=7, batch=7)
  assert got == pytest.approx((0.12345 + 0.54321) / 2, abs=1e-15)
  assert round(got, 3) != got


@pytest.mark.parametrize("accs", [[0.1, 0.2], [0.1, 0.2, 0.3, 0.4]])
def test_aubc_wrong_length(accs):
  with pytest.raises(ValueError, match="needs 3 accuracies"):
    metrics.aubc(accs, budget=20, batch=10)


def test_final_accuracy_and_accuracy():
  assert metrics.final_accuracy([0.1, 0.5, 0.75]) == 0.75
  assert metrics.accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
  with pytest.raises(ValueError):
    metrics.accuracy([1, 2], [1, 2, 3])
  with pytest.raises(ValueError):
    metrics.final_accuracy([])


def test_unlabeled_error_rate():
  pred = np.array([0, 1, 2, 3, 4])
  labels = np.array([0, 0, 2, 0, 4])
  labeled = np.array([True, False, False, True, False])
  # unlabeled: indices 1 (wrong), 2 (right), 4 (right) -> 1/3; the labeled mistake at 3 is ignored.
  assert metrics.unlabeled_error_rate(pred, labels, labeled) == pytest.approx(1 / 3)
  assert math.isnan(metrics.unlabeled_error_rate(pred, labels, np.ones(5, bool)))
  with pytest.raises(ValueError, match="labeled must have shape"):
    metrics.unlabeled_error_rate(pred, labels, np.ones(4, bool))


def test_num_rounds():
  assert metrics.num_rounds(10_000, 250) == 40
  assert metrics.num_rounds(25, 10) == 3
  with pytest.raises(ValueError):
    metrics.num_rounds(0, 10)
