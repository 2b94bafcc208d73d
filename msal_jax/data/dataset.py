"""The one container every data source fills: uint8 images, int32 labels."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A labeled pool and a test set.

  Attributes:
    name: dataset name (as in ``msal_jax.data.DATASETS``).
    pool_images: ``[N, H, W, Ch] uint8``.
    pool_labels: ``[N] int32`` in ``[0, num_classes)``.
    test_images: ``[M, H, W, Ch] uint8``.
    test_labels: ``[M] int32``.
    num_classes: ``C``.
    class_names: ``C`` names.
    mean, std: per-channel statistics of pixels scaled to ``[0, 1]``.
  """

  name: str
  pool_images: np.ndarray
  pool_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int
  class_names: tuple[str, ...]
  mean: tuple[float, ...]
  std: tuple[float, ...]

  def __post_init__(self):
    for split in ("pool", "test"):
      images = getattr(self, f"{split}_images")
      labels = getattr(self, f"{split}_labels")
      if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"{self.name}: {split}_images must be uint8 [N, H, W, Ch], got {images.dtype} "
            f"{images.shape}."
        )
      if labels.dtype != np.int32 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"{self.name}: {split}_labels must be int32 [{images.shape[0]}], got {labels.dtype} "
            f"{labels.shape}."
        )
      if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
        raise ValueError(
            f"{self.name}: {split}_labels must lie in [0, {self.num_classes}), got "
            f"[{labels.min()}, {labels.max()}]."
        )
    if self.pool_images.shape[1:] != self.test_images.shape[1:]:
      raise ValueError(
          f"{self.name}: pool images {self.pool_images.shape[1:]} and test images "
          f"{self.test_images.shape[1:]} differ in shape."
      )
    ch = self.pool_images.shape[-1]
    if len(self.mean) != ch or len(self.std) != ch:
      raise ValueError(f"{self.name}: mean/std need {ch} channel values.")
    if len(self.class_names) != self.num_classes:
      raise ValueError(
          f"{self.name}: {self.num_classes} classes but {len(self.class_names)} class names."
      )

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.pool_images.shape[1:])

  @property
  def num_pool(self) -> int:
    return self.pool_images.shape[0]

  @property
  def num_test(self) -> int:
    return self.test_images.shape[0]
