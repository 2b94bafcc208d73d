"""A simulated annotator who sometimes gives a wrong class: name it in a config.

  python -m experiments.run --config=configs/mnist5k.py \
      --config.al.oracle=examples/noisy_oracle.py:noisy_oracle

or, with another noise level and a sweep over it, in a config file:

  config.al.oracle = "examples/noisy_oracle.py:noisy_oracle"
  config.al.oracle_kwargs.flip = 0.2
  config.sweep.field, config.sweep.values = "al.oracle_kwargs.flip", (0.0, 0.1, 0.3)

The launcher calls ``noisy_oracle(labels=, num_classes=, seed=, **al.oracle_kwargs)``
once per (strategy, seed) run; the function it returns answers the ids each
round queries. The learner trains on the answers; the test accuracy is measured
against the true test labels.
"""

import numpy as np


def noisy_oracle(*, labels, num_classes, seed, flip=0.1):
  """``oracle(ids) -> labels``: each id's true class, or with probability ``flip``
  one of the ``C - 1`` other classes, uniformly.

  Which ids are mislabeled, and how, is drawn once from ``seed`` for the whole
  pool, so an id gets the same answer whenever it is asked (a resumed run
  replays exactly).
  """
  if not 0.0 <= flip <= 1.0:
    raise ValueError(f"flip must be in [0, 1], got {flip!r}.")
  labels = np.asarray(labels)
  if (labels < 0).any():
    raise ValueError("noisy_oracle needs the pool's true labels (some are unknown: -1).")
  rng = np.random.default_rng([seed, 0x0AC1E])
  wrong = rng.random(labels.shape[0]) < flip
  shift = rng.integers(1, num_classes, labels.shape[0])  # never 0: always another class
  answers = np.where(wrong, (labels + shift) % num_classes, labels)
  return lambda ids: answers[np.asarray(ids)]
