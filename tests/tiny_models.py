"""Tiny user modules for the custom-model tests, importable by path or by name.

Not a test file (no ``test_`` prefix): the tests name these classes as
``"tiny_models:TinyTrunk"`` (with ``tests/`` on ``sys.path``) or
``"<abs path>/tests/tiny_models.py:TinyTrunk"``.
"""

from __future__ import annotations

import flax.linen as nn
import jax


class TinyTrunk(nn.Module):
  """Features only: ``x -> relu(Dense(width)(flatten x))``; the library adds the head."""

  width: int = 8

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    return nn.relu(nn.Dense(self.width)(x.reshape(x.shape[0], -1)))


class TinyBatchNormTrunk(nn.Module):
  """Uses ``train`` for BatchNorm and dropout, as the calling convention says."""

  width: int = 8

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    h = nn.Dense(self.width)(x.reshape(x.shape[0], -1))
    h = nn.BatchNorm(use_running_average=not train)(h)
    return nn.Dropout(0.1, deterministic=not train)(nn.relu(h))


class TinyClassifier(nn.Module):
  """A whole classifier: ``(logits [B, num_classes], features [B, width])``."""

  num_classes: int = 3
  width: int = 8

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    h = nn.relu(nn.Dense(self.width)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.num_classes)(h), h


class NoTrainArg(nn.Module):
  """``__call__(x)`` without ``train``: called as ``m(x)``."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.Dense(4)(x.reshape(x.shape[0], -1))


class FeatureMap(nn.Module):
  """Wrong: returns a conv feature map ``[B, H, W, C]``, not ``[B, D]``."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return nn.Conv(2, (3, 3))(x)


class ThreeOutputs(nn.Module):
  """Wrong: returns three arrays."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False):
    h = nn.Dense(4)(x.reshape(x.shape[0], -1))
    return h, h, h


class Broken(nn.Module):
  """Wrong: fails on any input."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return nn.Dense(4)(x) @ x  # shapes that do not fit


def make_trunk(width: int = 8) -> nn.Module:
  """A factory: import paths may name a function that returns a module."""
  return TinyTrunk(width=width)
