"""Flax linen models: trunks, heads, and ``make_model`` to join them.

Your own module instead of a trunk from :data:`ARCHS`: :mod:`msal_jax.models.custom`.

>>> model = make_model("small_cnn", num_classes=10, head="max_sep", rho=0.1)
>>> type(model.head).__name__
'MaxSeparationHead'
"""

from __future__ import annotations

from typing import Any

from msal_jax.models import custom
from msal_jax.models.cnn import SmallCNN
from msal_jax.models.heads import Classifier, LinearHead, MaxSeparationHead
from msal_jax.models.resnet import ResNet18

# Trunks by config name: ``__call__(x, *, train) -> h [B, D]``.
ARCHS = {"small_cnn": SmallCNN, "resnet18": ResNet18}
# Heads by config name: ``__call__(h) -> (logits, features)``.
HEADS = ("linear", "max_sep")


def make_model(
  arch: str,
  *,
  num_classes: int,
  head: str,
  rho: float = 1.0,
  dropout_rate: float = 0.0,
  **trunk_kwargs: Any,
) -> Classifier:
  """A :class:`Classifier` with the named trunk and head.

  Args:
    arch: a key of :data:`ARCHS` (``"small_cnn"`` or ``"resnet18"``).
    num_classes: ``C``.
    head: ``"linear"`` (``Dense(C)``) or ``"max_sep"`` (``rho * z @ simplex(C)^T``).
    rho: radius of the max-separation head (ignored by the linear head).
    dropout_rate: dropout before the head, in ``[0, 1)``.
    **trunk_kwargs: fields of the trunk (``stem=..., maxpool=...`` for
      ResNet18, ``widths=..., hidden=...`` for SmallCNN). Lists become tuples,
      so config values can be passed as they come.

  Returns:
    An unbound :class:`Classifier`; ``apply`` gives ``(logits [B, C], features)``.
  """
  if arch not in ARCHS:
    raise ValueError(f"unknown model arch {arch!r}; allowed: {', '.join(sorted(ARCHS))}.")
  if head not in HEADS:
    raise ValueError(f"unknown head {head!r}; allowed: {', '.join(HEADS)}.")
  # Flax modules are hashed on their fields; a list from a config would not be.
  trunk_kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in trunk_kwargs.items()}
  try:
    trunk = ARCHS[arch](**trunk_kwargs)
  except TypeError as e:
    raise ValueError(f"bad keyword arguments for model arch {arch!r}: {e}") from None
  if head == "linear":
    head_mod = LinearHead(num_classes)
  else:
    head_mod = MaxSeparationHead(num_classes, rho=rho)
  return Classifier(trunk=trunk, head=head_mod, dropout_rate=dropout_rate)


__all__ = [
  "ARCHS",
  "HEADS",
  "Classifier",
  "LinearHead",
  "MaxSeparationHead",
  "ResNet18",
  "SmallCNN",
  "custom",
  "make_model",
]
