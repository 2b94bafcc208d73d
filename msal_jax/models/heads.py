"""Classifier heads and the network that joins a trunk, dropout and a head.

Every head returns ``(logits, features)`` from one call, so one forward pass
gives both what the loss needs and what the query strategies score.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from msal_jax import prototypes


def _check_num_classes(owner: str, num_classes: int, minimum: int) -> None:
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
    raise ValueError(f"{owner}: num_classes must be an int, got {num_classes!r}.")
  if num_classes < minimum:
    raise ValueError(f"{owner}: num_classes must be >= {minimum}, got {num_classes}.")


class LinearHead(nn.Module):
  """A standard softmax classifier.

  ``__call__(h [B, D]) -> (logits [B, C], features = h [B, D])`` with
  ``logits = Dense(C)(h)``.

  Attributes:
    num_classes: ``C >= 1``.
  """

  num_classes: int

  def __post_init__(self):
    _check_num_classes("LinearHead", self.num_classes, 1)
    super().__post_init__()

  @nn.compact
  def __call__(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    return nn.Dense(int(self.num_classes), name="dense")(h), h


class MaxSeparationHead(nn.Module):
  """The max-separation head: ``z = Dense(C-1)(h)``, ``logits = rho * z @ P^T``.

  ``__call__(h [B, D]) -> (logits [B, C], features = z [B, C-1])``.

  ``P = prototypes.simplex(C)`` (``[C, C-1]``) is a constant of the
  computation: not a parameter and not a variable of any collection, so it is
  absent from the optimizer state and no update can change it. The only
  parameters are the Dense layer's ``kernel [D, C-1]`` and ``bias [C-1]``.

  Attributes:
    num_classes: ``C >= 2``.
    rho: hypersphere radius (> 0); the paper uses 0.1 for MNIST, 1 otherwise.
  """

  num_classes: int
  rho: float = 1.0

  def __post_init__(self):
    _check_num_classes("MaxSeparationHead", self.num_classes, 2)
    if isinstance(self.rho, bool) or not isinstance(self.rho, (int, float, np.number)):
      raise ValueError(f"MaxSeparationHead: rho must be a number, got {self.rho!r}.")
    if not self.rho > 0:
      raise ValueError(f"MaxSeparationHead: rho must be > 0, got {self.rho}.")
    super().__post_init__()

  @nn.compact
  def __call__(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    num_classes = int(self.num_classes)
    z = nn.Dense(num_classes - 1, name="dense")(h)
    protos_CxK = prototypes.simplex(num_classes, dtype=z.dtype)
    return self.rho * (z @ protos_CxK.T), z


class Classifier(nn.Module):
  """``trunk -> dropout -> head``; ``__call__`` returns ``(logits, features)``.

  Attributes:
    trunk: a module with ``__call__(x, *, train) -> h [B, D]``.
    head: :class:`LinearHead` or :class:`MaxSeparationHead` (``h -> (logits,
      features)``).
    dropout_rate: dropout on ``h`` before the head (rng stream ``"dropout"``),
      in ``[0, 1)``. DeepAL+'s ResNet18 has no dropout layer; ours is this one.
  """

  trunk: nn.Module
  head: nn.Module
  dropout_rate: float = 0.0

  def __post_init__(self):
    if not (isinstance(self.dropout_rate, (int, float)) and 0 <= self.dropout_rate < 1):
      raise ValueError(f"Classifier: dropout_rate must be in [0, 1), got {self.dropout_rate!r}.")
    super().__post_init__()

  @nn.compact
  def __call__(
    self, x: jax.Array, *, train: bool = False, mc_dropout: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    """One forward pass.

    Args:
      x: float32 ``[B, H, W, Ch]``, already normalised.
      train: BatchNorm on batch statistics (apply with
        ``mutable=["batch_stats"]``) and dropout on.
      mc_dropout: dropout on while BatchNorm stays on its running averages:
        the stochastic passes of MC-dropout strategies (with ``train=False``).

    Returns:
      ``(logits [B, C], features)``: ``features`` is the head's (``h [B, D]``
      for :class:`LinearHead`, ``z [B, C-1]`` for :class:`MaxSeparationHead`).
      Needs a ``"dropout"`` rng when ``dropout_rate > 0`` and ``train or
      mc_dropout``.
    """
    h = self.trunk(jnp.asarray(x), train=train)
    h = nn.Dropout(self.dropout_rate)(h, deterministic=not (train or mc_dropout))
    return self.head(h)
