"""The one container every data source fills: uint8 images, int32 labels."""

from __future__ import annotations

import dataclasses

import numpy as np

from msal_jax import pool_source


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A labeled pool and a test set, as host numpy arrays.

  Attributes:
    name: dataset name (as in ``msal_jax.data.DATASETS``).
    pool_images: ``[N, H, W, Ch] uint8`` (``Ch = 1`` for grayscale): a numpy
      array, a memory map, or a :class:`msal_jax.pool_source.PoolSource` (a
      pool never loaded whole: the loop streams it when it is larger than its
      ``in_memory_limit``, see :mod:`msal_jax.streamed_pool`).
    pool_labels: ``[N] int32`` in ``[0, num_classes)``, or ``-1`` for a pool
      sample whose label is not known (yet): its label comes from an oracle
      or a human when it is queried (see :func:`msal_jax.loop.run`).
    test_images: ``[M, H, W, Ch] uint8``, same ``H, W, Ch`` as the pool.
    test_labels: ``[M] int32`` in ``[0, num_classes)``.
    num_classes: ``C``.
    class_names: ``C`` names, index = label.
    mean, std: ``Ch`` per-channel statistics of pixels scaled to ``[0, 1]``
      (for normalisation: ``(x / 255 - mean) / std``).
    pool_paths: optional ``N`` names of the pool samples (file paths of an
      image-folder dataset), written beside the ids in human-in-the-loop CSVs.

  Raises:
    ValueError: on construction, when a shape, dtype, label or statistic does
      not match the above; the message names the field.
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
  pool_paths: tuple[str, ...] | None = None

  def __post_init__(self) -> None:
    if not isinstance(self.num_classes, int) or self.num_classes < 1:
      raise ValueError(
          f"{self.name}: num_classes must be a positive int, got {self.num_classes!r}."
      )
    for split in ("pool", "test"):
      images = getattr(self, f"{split}_images")
      labels = getattr(self, f"{split}_labels")
      if split == "pool" and _is_source(images):
        images = np.broadcast_to(np.uint8(0), (self.num_pool, *self.image_shape))
      if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"{self.name}: {split}_images must be a uint8 numpy array [N, H, W, Ch], got "
            f"{type(images).__name__} {getattr(images, 'dtype', '')} "
            f"{getattr(images, 'shape', '')}."
        )
      if (
          not isinstance(labels, np.ndarray)
          or labels.dtype != np.int32
          or labels.shape != images.shape[:1]
      ):
        raise ValueError(
            f"{self.name}: {split}_labels must be an int32 numpy array [{images.shape[0]}] (one "
            f"per image), got {type(labels).__name__} {getattr(labels, 'dtype', '')} "
            f"{getattr(labels, 'shape', '')}."
        )
      low = -1 if split == "pool" else 0  # -1: a pool label not known (yet)
      if labels.size and (labels.min() < low or labels.max() >= self.num_classes):
        raise ValueError(
            f"{self.name}: {split}_labels must lie in [0, {self.num_classes})"
            f"{' or be -1 (unknown)' if split == 'pool' else ''}, got "
            f"[{labels.min()}, {labels.max()}]."
        )
    if self.image_shape != self.test_images.shape[1:]:
      raise ValueError(
          f"{self.name}: pool images {self.image_shape} and test images "
          f"{self.test_images.shape[1:]} differ in shape (H, W, Ch)."
      )
    ch = self.image_shape[-1]
    if len(self.mean) != ch or len(self.std) != ch:
      raise ValueError(
          f"{self.name}: mean and std need one value per channel ({ch}), got {self.mean} and "
          f"{self.std}."
      )
    if any(s <= 0 for s in self.std):
      raise ValueError(f"{self.name}: std must be positive, got {self.std}.")
    if self.pool_paths is not None and len(self.pool_paths) != self.num_pool:
      raise ValueError(
          f"{self.name}: {self.num_pool} pool images but {len(self.pool_paths)} "
          "pool_paths."
      )
    if len(self.class_names) != self.num_classes:
      raise ValueError(
          f"{self.name}: {self.num_classes} classes but {len(self.class_names)} class names."
      )

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """``(H, W, Ch)`` of every image."""
    if _is_source(self.pool_images):
      return tuple(int(d) for d in self.pool_images.image_shape)
    h, w, ch = self.pool_images.shape[1:]
    return (h, w, ch)

  @property
  def num_pool(self) -> int:
    """``N``, the number of pool images."""
    if _is_source(self.pool_images):
      return int(self.pool_images.num)
    return self.pool_images.shape[0]

  @property
  def pool_known(self) -> np.ndarray:
    """``[N]`` bool: which pool labels are known (not ``-1``)."""
    return np.asarray(self.pool_labels) >= 0

  @property
  def num_test(self) -> int:
    """``M``, the number of test images."""
    return self.test_images.shape[0]


def _is_source(images) -> bool:
  """A pool read through a :class:`~msal_jax.pool_source.PoolSource` (not a numpy array)."""
  return not isinstance(images, np.ndarray) and isinstance(images, pool_source.PoolSource)
