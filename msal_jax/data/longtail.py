"""Long-tailed subsampling of a pool: the standard long-tailed CIFAR construction.

Class ``c`` of ``C`` keeps

    n_c = floor(n_max * imbalance ** (c / (C - 1))),   c = 0 .. C-1,

samples, decaying exponentially from ``n_max`` (class 0, the largest) to
``n_max * imbalance`` (class ``C-1``, the smallest); ``imbalance`` is the
ratio of the smallest to the largest class (the paper: 0.1 and 0.01). With
``n_max = 5000`` this gives CIFAR-10-LT's 20,431 (0.1) and 12,406 (0.01)
training images, with ``n_max = 500`` CIFAR-100-LT's 19,573 and 10,847
(Cao et al., 2019, "LDAM"). Only the pool (training split) is subsampled;
the test set stays balanced.

Which samples a class keeps is drawn with ``numpy.random.default_rng(seed)``:
one permutation per class, of which the first ``n_c`` are kept. So a seed
always gives the same subset, and with one seed a stronger imbalance keeps a
subset of what a weaker one keeps. The kept samples stay in pool order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from msal_jax.data.dataset import Dataset


def check_imbalance(imbalance: Any) -> float | None:
  """``imbalance`` as a float in ``(0, 1]``, or None (a balanced pool).

  Raises:
    ValueError: naming the config field ``data.imbalance``.
  """
  if imbalance is None:
    return None
  if isinstance(imbalance, bool) or not isinstance(imbalance, (int, float)) or not (
      0 < imbalance <= 1
  ):
    raise ValueError(
        f"data.imbalance must be None (balanced) or the ratio of the smallest to the largest "
        f"class, in (0, 1] (the paper: 0.1, 0.01), got {imbalance!r}."
    )
  return float(imbalance)


def class_sizes(n_max: int, num_classes: int, imbalance: float) -> np.ndarray:
  """``[C] int64``: ``n_c = floor(n_max * imbalance ** (c / (C - 1)))``.

  >>> class_sizes(5000, 10, 0.01).tolist()
  [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]

  Raises:
    ValueError: ``n_max < 1``, ``num_classes < 1``, an imbalance outside
      ``(0, 1]``, or a class that would keep no sample.
  """
  check_imbalance(imbalance)
  if isinstance(n_max, bool) or not isinstance(n_max, (int, np.integer)) or n_max < 1:
    raise ValueError(f"n_max must be an integer >= 1, got {n_max!r}.")
  if num_classes < 1:
    raise ValueError(f"num_classes must be >= 1, got {num_classes!r}.")
  if num_classes == 1:
    return np.array([n_max], np.int64)
  # Python floats and int(), as the reference construction: identical counts.
  sizes = [int(n_max * imbalance ** (c / (num_classes - 1))) for c in range(num_classes)]
  if sizes[-1] < 1:
    raise ValueError(
        f"imbalance {imbalance} with {n_max} samples in the largest class leaves class "
        f"{num_classes - 1} empty; the smallest class needs n_max * imbalance >= 1."
    )
  return np.array(sizes, np.int64)


def subsample(
    labels: np.ndarray,
    num_classes: int,
    imbalance: float,
    *,
    seed: int = 0,
    n_max: int | None = None,
) -> np.ndarray:
  """Indices of a long-tailed subset of ``labels`` (see the module docstring).

  Args:
    labels: ``[N]`` integer labels in ``[0, num_classes)``.
    num_classes: ``C``.
    imbalance: smallest / largest class size, in ``(0, 1]``.
    seed: which samples each class keeps.
    n_max: size of the largest class (class 0); None = the size of the
      smallest class in ``labels`` (for a balanced pool, its class size), so
      that every class can supply its share.

  Returns:
    ``[sum_c n_c] int64`` indices into ``labels``, increasing.

  Raises:
    ValueError: a class has fewer samples than its share, or bad arguments.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must be 1-D [N], got shape {labels.shape}.")
  if labels.size and labels.min() < 0:
    raise ValueError(
        f"a long-tailed pool needs every pool label, but {int(np.sum(labels < 0))} are unknown "
        "(-1); leave data.imbalance unset."
    )
  counts = np.bincount(labels, minlength=num_classes)
  if counts.size != num_classes:
    raise ValueError(f"labels hold {counts.size - 1}, outside [0, {num_classes}).")
  if n_max is None:
    n_max = int(counts.min())
  sizes = class_sizes(n_max, num_classes, imbalance)
  short = np.flatnonzero(counts < sizes)
  if short.size:
    c = int(short[0])
    raise ValueError(
        f"class {c} has {counts[c]} samples, fewer than its long-tailed share {sizes[c]} "
        f"(n_max={n_max}, imbalance={imbalance})."
    )
  rng = np.random.default_rng(seed)
  keep = [rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in enumerate(sizes)]
  return np.sort(np.concatenate(keep))


def long_tailed(dataset: Dataset, imbalance: float, *, seed: int = 0) -> Dataset:
  """``dataset`` with a long-tailed pool (:func:`subsample`); the test set unchanged.

  The pool's images, labels and (when given) ``pool_paths`` are subsampled alike.

  The result is named ``f"{dataset.name}_lt{imbalance:g}"`` (e.g.
  ``cifar10_lt0.01``), so its runs and checkpoints are not mistaken for the
  balanced dataset's.
  """
  keep = subsample(dataset.pool_labels, dataset.num_classes, imbalance, seed=seed)
  return dataclasses.replace(
      dataset,
      name=f"{dataset.name}_lt{imbalance:g}",
      pool_images=dataset.pool_images[keep],
      pool_labels=dataset.pool_labels[keep],
      pool_paths=None if dataset.pool_paths is None else tuple(
          dataset.pool_paths[i] for i in keep
      ),
  )
