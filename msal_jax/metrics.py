"""Active-learning metrics: accuracy, AUBC, final accuracy, unlabeled error rate.

Host-side functions of small arrays (one value per round), returning Python
floats for the result files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def num_rounds(budget: int, batch: int) -> int:
  """Query rounds needed to spend ``budget`` labels ``batch`` at a time."""
  if budget < 1 or batch < 1:
    raise ValueError(f"budget and batch must be >= 1, got budget={budget}, batch={batch}.")
  return math.ceil(budget / batch)


def aubc(accuracies: Sequence[float] | ArrayLike, *, budget: int, batch: int) -> float:
  """Area under the budget curve, normalised by the budget (DeepAL+'s ``get_aubc``).

  Trapezoids between consecutive rounds, each ``batch`` labels wide, except the
  last, which is ``budget % batch`` wide when ``batch`` does not divide
  ``budget``; the sum is divided by ``budget``. Unlike DeepAL+, the result is
  not rounded to 3 decimals.

  Args:
    accuracies: test accuracy after each round, round 0 (the initial labeled
      set) first: ``ceil(budget / batch) + 1`` values.
    budget: labels spent by the queries (not counting the initial set).
    batch: labels per round ``b``.

  Returns:
    The AUBC, in the units of ``accuracies``.

  >>> aubc([0.5, 0.7, 0.9], budget=20, batch=10)
  0.7
  """
  acc = np.asarray(accuracies, dtype=np.float64)
  expected = num_rounds(budget, batch) + 1
  if acc.ndim != 1 or acc.shape[0] != expected:
    raise ValueError(
        f"aubc: budget={budget}, batch={batch} needs {expected} accuracies "
        f"(round 0 plus {expected - 1} rounds), got shape {acc.shape}."
    )
  widths = np.full(expected - 1, float(batch))
  if budget % batch:
    widths[-1] = budget % batch
  return float(np.sum((acc[1:] + acc[:-1]) * widths / 2.0) / budget)


def final_accuracy(accuracies: Sequence[float] | ArrayLike) -> float:
  """F-acc: the test accuracy after the last round."""
  acc = np.asarray(accuracies, dtype=np.float64)
  if acc.ndim != 1 or acc.shape[0] == 0:
    raise ValueError(f"final_accuracy needs a non-empty 1-D sequence, got shape {acc.shape}.")
  return float(acc[-1])


def _check_same(predictions: np.ndarray, labels: np.ndarray) -> None:
  if predictions.ndim != 1 or predictions.shape != labels.shape:
    raise ValueError(
        f"predictions and labels must be 1-D of one length, got {predictions.shape} "
        f"and {labels.shape}."
    )


def accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
  """Share of ``predictions [N]`` equal to ``labels [N]``."""
  predictions, labels = np.asarray(predictions), np.asarray(labels)
  _check_same(predictions, labels)
  return float(np.mean(predictions == labels))


def unlabeled_error_rate(predictions: ArrayLike, labels: ArrayLike, labeled: ArrayLike) -> float:
  """Share of the *unlabeled* pool that is misclassified (paper Fig. 3).

  Args:
    predictions: ``[N]`` predicted classes for the whole pool.
    labels: ``[N]`` ground truth.
    labeled: ``[N]`` bool mask; ``True`` samples are left out.

  Returns:
    The error rate, or NaN when no sample is unlabeled.
  """
  predictions, labels, labeled = map(np.asarray, (predictions, labels, labeled))
  _check_same(predictions, labels)
  if labeled.shape != labels.shape:
    raise ValueError(f"labeled must have shape {labels.shape}, got {labeled.shape}.")
  rest = ~labeled.astype(bool)
  if not rest.any():
    return float("nan")
  return float(np.mean(predictions[rest] != labels[rest]))
