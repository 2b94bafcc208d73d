"""The default settings, in one place for the Python API and the launcher's configs.

:class:`msal_jax.ActiveLearner` (:mod:`msal_jax.api`) and every config file
(``experiments/defaults.py``, which each ``configs/*.py`` starts from) read
their defaults here, so the same settings written either way give the same
run. Grouped as the config is: ``AL`` is ``config.al``, ``TRAIN``
``config.train``, ``MODEL`` ``config.model``, ``CHECKPOINT``
``config.checkpoint``. The values are the embedded CPU-sized default run's
(``configs/mnist5k.py``); a paper config changes what differs.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class ActiveLearningDefaults:
  """``config.al``: the labels and the strategies' settings (``loop.ActiveLearningConfig``).

  ``initial``, ``batch`` and ``budget`` are the configs' only: the API asks
  for ``budget`` and ``batch`` and starts from ``batch`` random labels.
  """

  initial: int = 100
  batch: int = 100
  budget: int = 500
  rounds: int | None = None  # None: ceil(budget / batch)
  beta: float = 5.0  # MSAL-D's pre-filter factor
  mc_passes: int = 10  # T, passes of the MC-dropout strategies
  ceal_delta: float = 5e-5  # CEAL: entropy threshold delta_0 ...
  ceal_decay: float = 0.033e-5  # ... minus this times t after query t (cumulative)
  ceal_cos: float = 0.99  # CEAL(MSAL): pseudo-label when cos to nearest prototype > this


@dataclasses.dataclass(frozen=True)
class TrainDefaults:
  """``config.train``: each round's training (see :class:`msal_jax.loop.TrainConfig`)."""

  epochs: int = 30  # few labels: enough steps for both heads to converge
  batch_size: int = 128
  learning_rate: float = 1e-3
  eval_batch_size: int = 1000
  augment: bool = False  # random 4-pixel crop + horizontal flip (CIFAR, TinyImageNet)


def _small_cnn() -> Mapping[str, Any]:
  return types.MappingProxyType({"widths": (16, 32), "hidden": 64})


@dataclasses.dataclass(frozen=True)
class ModelDefaults:
  """``config.model``: the network (see :class:`msal_jax.loop.ModelConfig`).

  ``trunk`` is the small CNN's (read-only; copy it to change it): two conv
  layers of 16 and 32 channels and a 64-unit hidden layer.
  """

  arch: str = "small_cnn"
  rho: float = 1.0  # the max-separation head's radius for the small CNN
  dropout_rate: float = 0.0
  trunk: Mapping[str, Any] = dataclasses.field(default_factory=_small_cnn)


@dataclasses.dataclass(frozen=True)
class CheckpointDefaults:
  """``config.checkpoint``."""

  max_to_keep: int = 2  # round checkpoints kept per run (resume needs the last)


AL = ActiveLearningDefaults()
TRAIN = TrainDefaults()
MODEL = ModelDefaults()
CHECKPOINT = CheckpointDefaults()
