"""The typed settings of a run: labels (``al``), training (``train``), the network (``model``).

Frozen dataclasses that check every field when built, so a bad value fails
before any work with one line naming the field as the launcher spells it
(``al.budget``). Their defaults are :mod:`msal_jax.defaults`', the values the
configs start from. :mod:`msal_jax.loop` re-exports them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from msal_jax import metrics, models, strategies
from msal_jax.defaults import AL, MODEL, TRAIN


def _check_int(name: str, value: Any, low: int) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class ActiveLearningConfig:
  """How many labels, how fast.

  Attributes:
    initial: size of the random initial labeled set (drawn per seed).
    batch: labels queried per round ``b``.
    budget: labels queried in all, not counting the initial set.
    rounds: query rounds to run; ``None`` = ``ceil(budget / batch)``. Fewer
      rounds stop early, and AUBC is computed over the labels spent.
    beta: MSAL-D's pre-filter factor (``beta * b`` candidates), ``>= 1``.
    mc_passes: ``T``, stochastic forward passes of the MC-dropout strategies.
    ceal_delta, ceal_decay: CEAL's entropy threshold ``delta_0`` and its
      decrement, applied cumulatively as DeepAL+ does: after query ``t = 1, 2,
      ...`` the threshold is ``max(delta_0 - decay * t (t + 1) / 2, 0)``
      (:func:`msal_jax.strategies.ceal_threshold`).
    ceal_cos: CEAL(MSAL)'s threshold on the cosine to the nearest prototype.
  """

  initial: int
  batch: int
  budget: int
  rounds: int | None = AL.rounds
  beta: float = AL.beta
  mc_passes: int = AL.mc_passes
  ceal_delta: float = AL.ceal_delta
  ceal_decay: float = AL.ceal_decay
  ceal_cos: float = AL.ceal_cos

  def __post_init__(self):
    _check_int("al.initial", self.initial, 1)
    _check_int("al.batch", self.batch, 1)
    _check_int("al.budget", self.budget, 1)
    if self.rounds is not None:
      _check_int("al.rounds", self.rounds, 1)
      if self.rounds > metrics.num_rounds(self.budget, self.batch):
        raise ValueError(
            f"al.rounds={self.rounds} is more than the budget allows: budget {self.budget} "
            f"at batch {self.batch} is spent in {metrics.num_rounds(self.budget, self.batch)} "
            "rounds."
        )
    if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not (
        self.beta >= 1
    ):
      raise ValueError(f"al.beta must be a number >= 1, got {self.beta!r}.")
    _check_int("al.mc_passes", self.mc_passes, 1)
    for name in ("ceal_delta", "ceal_decay"):
      if not (isinstance(getattr(self, name), (int, float)) and getattr(self, name) >= 0):
        raise ValueError(f"al.{name} must be a number >= 0, got {getattr(self, name)!r}.")
    if not (isinstance(self.ceal_cos, (int, float)) and -1 <= self.ceal_cos <= 1):
      raise ValueError(f"al.ceal_cos must be a cosine in [-1, 1], got {self.ceal_cos!r}.")

  @property
  def num_rounds(self) -> int:
    return metrics.num_rounds(self.budget, self.batch) if self.rounds is None else self.rounds

  def check_pool(self, pool_size: int) -> None:
    """Fails when the pool cannot supply the initial set plus the budget."""
    if self.initial >= pool_size:
      raise ValueError(
          f"al.initial ({self.initial}) leaves no sample of the pool ({pool_size} samples) to "
          f"query: lower al.initial to at most {pool_size - 1}."
      )
    if self.initial + self.budget > pool_size:
      raise ValueError(
          f"al.initial ({self.initial}) + al.budget ({self.budget}) = "
          f"{self.initial + self.budget} is larger than the pool ({pool_size} samples): "
          f"lower al.budget to at most {pool_size - self.initial}."
      )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Training of each round's model (paper: Adam 1e-3, batch 128).

  ``augment``: random 4-pixel crop and horizontal flip of the training images
  (:mod:`msal_jax.augment`; the paper's CIFAR and TinyImageNet setting).
  """

  epochs: int
  batch_size: int = TRAIN.batch_size
  learning_rate: float = TRAIN.learning_rate
  eval_batch_size: int = TRAIN.eval_batch_size
  augment: bool = TRAIN.augment

  def __post_init__(self):
    if not isinstance(self.augment, bool):
      raise ValueError(f"train.augment must be True or False, got {self.augment!r}.")
    _check_int("train.epochs", self.epochs, 1)
    _check_int("train.batch_size", self.batch_size, 1)
    _check_int("train.eval_batch_size", self.eval_batch_size, 1)
    if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
      raise ValueError(f"train.learning_rate must be > 0, got {self.learning_rate!r}.")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The network: a trunk from ``models.ARCHS`` (or your own module) with the strategy's head.

  Attributes:
    arch: ``"small_cnn"`` or ``"resnet18"`` (unused when ``module`` is given).
    rho: hypersphere radius of the max-separation head (> 0).
    dropout_rate: dropout before the head.
    trunk_kwargs: extra fields of the trunk (e.g. ``{"stem": "cifar"}``).
    module: your own Flax module instead of ``arch``: an import path
      ``"package.module:Name"`` / ``"path/to/file.py:Name"``, a module class or
      factory (built with ``module_kwargs``), or a module instance. It returns
      features ``h [B, D]`` (the library adds the head) or ``(logits,
      features)``; see :mod:`msal_jax.models.custom`.
    module_kwargs: keyword arguments ``module`` is built with.
  """

  arch: str = MODEL.arch
  rho: float = MODEL.rho
  dropout_rate: float = MODEL.dropout_rate
  trunk_kwargs: dict = dataclasses.field(default_factory=dict)
  module: Any = None
  module_kwargs: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.module is not None:
      self.user_module()  # import and build now: a bad path fails before any work
    elif self.module_kwargs:
      raise ValueError(
          f"model.kwargs {sorted(self.module_kwargs)} are for model.module, which is not set."
      )
    elif self.arch not in models.ARCHS:
      raise ValueError(
          f"model.arch: unknown architecture {self.arch!r}; known: "
          f"{', '.join(sorted(models.ARCHS))}."
      )
    if not (isinstance(self.rho, (int, float)) and self.rho > 0):
      raise ValueError(f"model.rho must be > 0, got {self.rho!r}.")
    if not (isinstance(self.dropout_rate, (int, float)) and 0 <= self.dropout_rate < 1):
      raise ValueError(f"model.dropout_rate must be in [0, 1), got {self.dropout_rate!r}.")

  def user_module(self):
    """``module`` as an unbound Flax module (``None`` when ``arch`` is used)."""
    if self.module is None:
      return None
    obj = self.module
    if isinstance(obj, str):
      obj = models.custom.import_object(obj)
    return models.custom.instantiate(obj, self.module_kwargs)

  def build(self, num_classes: int, head: str, input_shape: tuple[int, ...] | None = None):
    """The network for ``head``; ``input_shape`` ``(H, W, Ch)`` checks a user module's outputs."""
    if self.module is not None:
      if input_shape is None:
        raise ValueError("ModelConfig.build: a user module needs input_shape to be checked.")
      return models.custom.wrap(
          self.user_module(), num_classes=num_classes, head=head, input_shape=input_shape,
          rho=self.rho, dropout_rate=self.dropout_rate,
      )
    return models.make_model(
        self.arch, num_classes=num_classes, head=head, rho=self.rho,
        dropout_rate=self.dropout_rate, **self.trunk_kwargs,
    )


def check_dropout(names: Sequence[str], model: ModelConfig) -> None:
  """The MC-dropout strategies among ``names`` need ``model.dropout_rate > 0``."""
  mc = [n for n in names if strategies.get(n).needs_mc]
  if mc and model.dropout_rate <= 0:
    raise ValueError(
        f"model.dropout_rate must be > 0 for the MC-dropout strategies {', '.join(mc)} "
        f"(got {model.dropout_rate}): set model.dropout_rate > 0, e.g. 0.25 "
        "(--config.model.dropout_rate=0.25)."
    )
