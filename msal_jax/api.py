"""The Python API: active learning on your own model and data in a few lines.

>>> learner = ActiveLearner(MyTrunk(), (pool_x, pool_y), (test_x, test_y),
...                         strategy="msal_d", budget=200, batch=50)  # doctest: +SKIP
>>> summary = learner.run()  # doctest: +SKIP
>>> summary["accuracies"], summary["rounds"][1]["queried"]  # doctest: +SKIP

:class:`ActiveLearner` only gathers and checks the settings; the rounds are
:func:`msal_jax.loop.run`'s, the same as the launcher's, and with a
``workdir`` it writes the launcher's files there (``config.json``,
``rounds.jsonl``, ``summary.json``, checkpoints, ``results.md`` and the
figures) and resumes from them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import numpy as np

from msal_jax import data, loop, models, report, strategies
from msal_jax.data import Dataset
from msal_jax.defaults import AL, CHECKPOINT, MODEL, TRAIN
from msal_jax.models import custom

PoolLike = Dataset | str | np.ndarray | tuple[Any, Any]


def as_dataset(
    pool: PoolLike,
    test: tuple[Any, Any] | None = None,
    **options: Any,
) -> Dataset:
  """A :class:`Dataset` from what :class:`ActiveLearner` accepts as ``pool`` / ``test``.

  Args:
    pool: a :class:`Dataset` (then ``test`` is ``None``); ``(images, labels)``
      with labels ``-1`` where unknown; ``images`` alone (no label known); or
      a path: an ``.npz`` file, a folder of ``.npy`` files, or an image
      folder with ``train/`` and ``test/`` (see :mod:`msal_jax.data.custom`).
    test: ``(images, labels)`` when ``pool`` is arrays.
    **options: ``name``, ``class_names``, ``num_classes``, ``mean``, ``std``
      (and ``image_size``, ``channels`` for an image folder); ``None`` values
      are ignored.
  """
  options = {k: v for k, v in options.items() if v is not None}
  if isinstance(pool, Dataset):
    if test is not None or options:
      raise ValueError("pool is a Dataset, which holds its test set and settings: pass no "
                       f"test and no {', '.join(sorted(options)) or 'options'}.")
    return pool
  if isinstance(pool, (str, os.PathLike)):
    if test is not None:
      raise ValueError("pool is a path, whose files hold the test set too: pass no test.")
    path = os.path.expanduser(os.fspath(pool))
    if os.path.isfile(path):
      source = "npz"
    elif os.path.isdir(os.path.join(path, "train")):
      source = "folder"
    else:
      source = "npy"
    return data.load_custom(source, path, **options)
  if test is None:
    raise ValueError("test: give the test set as (images, labels) to measure each round.")
  if not (isinstance(test, (tuple, list)) and len(test) == 2):
    raise ValueError("test must be a pair (images, labels).")
  if isinstance(pool, (tuple, list)):
    if len(pool) != 2:
      raise ValueError("pool must be (images, labels), images, a Dataset or a path.")
    pool_x, pool_y = pool
  else:
    pool_x, pool_y = pool, None
  return data.from_arrays(pool_x, pool_y, test[0], test[1], **options)


def model_config(
    model: Any, *, kwargs: Mapping[str, Any] | None = None, rho: float = MODEL.rho,
    dropout_rate: float = MODEL.dropout_rate,
) -> loop.ModelConfig:
  """A :class:`~msal_jax.loop.ModelConfig` from a name, an import path or a module.

  ``model``: a built-in arch (``"small_cnn"``, ``"resnet18"``; ``kwargs`` are
  its fields; the small CNN's default to the configs' ``model.trunk``,
  :data:`msal_jax.defaults.MODEL`), ``"package.module:Name"`` /
  ``"path/file.py:Name"``, a Flax module instance, class or factory
  (``kwargs`` build it), or a ``ModelConfig``.
  """
  if isinstance(model, loop.ModelConfig):
    return model
  kwargs = dict(kwargs or {})
  if isinstance(model, str) and ":" not in model:
    if model not in models.ARCHS:
      raise ValueError(
          f"model: {model!r} is not a built-in arch ({', '.join(sorted(models.ARCHS))}) nor an "
          "import path 'package.module:Name'."
      )
    if model == MODEL.arch:  # the configs' default trunk, with kwargs over it
      kwargs = {**MODEL.trunk, **kwargs}
    return loop.ModelConfig(arch=model, rho=rho, dropout_rate=dropout_rate, trunk_kwargs=kwargs)
  if not (isinstance(model, (str, nn.Module)) or callable(model)):
    raise ValueError(f"model: expected a Flax module, an import path or an arch name, got "
                     f"{type(model).__name__}.")
  return loop.ModelConfig(rho=rho, dropout_rate=dropout_rate, module=model,
                          module_kwargs=kwargs)


class ActiveLearner:
  """Active learning with your own model and data; :meth:`run` does the rounds.

  Args:
    model: your Flax module (returning features ``h [B, D]``, or ``(logits,
      features)``; see :mod:`msal_jax.models.custom`), its class or import
      path ``"package.module:Name"``, or a built-in arch name (``"small_cnn"``).
    pool: ``(images, labels)`` (``-1`` = unknown), ``images`` alone, a
      :class:`~msal_jax.data.Dataset`, or a path (``.npz``, folder of ``.npy``,
      image folder); see :func:`as_dataset`.
    test: ``(images, labels)`` when ``pool`` is arrays.
    strategy: a name in :data:`msal_jax.strategies.STRATEGIES` (``"msal_d"``,
      ``"msal"``, ``"entropy"``, ``"random"``, ...).
    budget: labels to query in all.
    batch: labels per round.
    initial: the labeled set to start from: a number of pool samples drawn at
      random (all labels known; default ``batch``), or pool ids / an ``[N]``
      bool mask. When some pool labels are ``-1`` the default is the samples
      whose labels are known.
    oracle: labels of the queried samples: ``None`` = the pool labels
      (benchmarking), a function ``ids -> labels``, or ``"csv"`` (a person
      fills in ``workdir/queries/round_<r>.csv``; :meth:`run` returns after
      each query and the next :meth:`run` reads the file and goes on).
    workdir: where the result files and checkpoints go (required by
      ``oracle="csv"``); a run there is resumed.
    rounds: stop after this many query rounds (default: the whole budget).
    seed: root of every random choice.
    epochs, batch_size, learning_rate, eval_batch_size: training of each
      round's model (retrained from scratch), as in the config
      (``train.epochs``, ...).
    rho, dropout_rate, beta, mc_passes: as in the config (``model.rho``,
      ``model.dropout_rate``, ``al.beta``, ``al.mc_passes``).
    model_kwargs: keyword arguments that build ``model`` (a class or path).
    class_names, num_classes, mean, std, name, image_size, channels: data
      options (see :func:`msal_jax.data.from_arrays`); ``mean`` / ``std``
      default to the pool's.
    max_to_keep: round checkpoints kept in ``workdir``.
    log: progress printer (``None``: silent).
    devices: where the rounds run (:func:`msal_jax.loop.run`): ``None`` every
      device of the default backend (pool scoring sharded, training
      data-parallel), an int that many, a list of devices or a 1-D
      ``jax.sharding.Mesh``; one device (``1``, a device, ``[device]``) is
      the one-device path, pinned to that device. Not part of
      ``config.json``: a workdir may be resumed on other devices.
    in_memory_limit: bytes of pool pixels above which a memory-mapped or
      :mod:`msal_jax.pool_source` pool is streamed instead of placed on the
      device (``None``: ``pool_source.IN_MEMORY_LIMIT_BYTES``; 0: always;
      docs/out_of_core.md).

  Every default that a config also has is the config's, from
  :mod:`msal_jax.defaults`: the same settings given here or in a config
  (``--config.al.budget=...``) run the same rounds.

  Attributes:
    dataset: the :class:`~msal_jax.data.Dataset` the rounds run on.
    summary: the last :meth:`run`'s result (``None`` before).
  """

  def __init__(
      self,
      model: Any,
      pool: PoolLike,
      test: tuple[Any, Any] | None = None,
      *,
      strategy: str = "msal_d",
      budget: int,
      batch: int,
      initial: int | Sequence[int] | np.ndarray | None = None,
      oracle: str | Callable[[np.ndarray], Any] | None = None,
      workdir: str | None = None,
      rounds: int | None = None,
      seed: int = 0,
      epochs: int = TRAIN.epochs,
      batch_size: int = TRAIN.batch_size,
      learning_rate: float = TRAIN.learning_rate,
      eval_batch_size: int = TRAIN.eval_batch_size,
      rho: float = MODEL.rho,
      dropout_rate: float = MODEL.dropout_rate,
      beta: float = AL.beta,
      mc_passes: int = AL.mc_passes,
      model_kwargs: Mapping[str, Any] | None = None,
      class_names: Sequence[str] | None = None,
      num_classes: int | None = None,
      mean: Sequence[float] | None = None,
      std: Sequence[float] | None = None,
      name: str | None = None,
      image_size: tuple[int, int] | None = None,
      channels: int | None = None,
      max_to_keep: int | None = CHECKPOINT.max_to_keep,
      log: Callable[[str], None] | None = print,
      devices: int | Sequence[Any] | Any | None = None,
      in_memory_limit: int | None = None,
  ):
    self.strategy = strategies.get(strategy).name
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
      raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")
    self.seed = seed
    self.dataset = as_dataset(
        pool, test, name=name, class_names=class_names, num_classes=num_classes, mean=mean,
        std=std, image_size=image_size, channels=channels,
    )
    self.initial_set = None
    if isinstance(initial, (int, np.integer)) and not isinstance(initial, bool):
      if not self.dataset.pool_known.all():
        raise ValueError(
            f"initial={initial}: a random initial set needs every pool label; with unknown "
            "(-1) labels the run starts from the known ones (initial=None), or give their ids."
        )
      num_initial = int(initial)
    elif initial is None:
      num_initial = batch
    else:
      self.initial_set = np.asarray(initial)
      num_initial = max(int(self.initial_set.sum() if self.initial_set.dtype == bool
                            else self.initial_set.size), 1)
    # Else the start is initial_set or, by default, the samples with known labels.
    self._random_start = self.initial_set is None and bool(self.dataset.pool_known.all())
    self.oracle = "dataset" if oracle is None else oracle
    if isinstance(self.oracle, str) and self.oracle not in ("dataset", "csv"):
      raise ValueError(f"oracle must be None, 'csv' or a function, got {oracle!r}.")
    self.workdir = workdir
    self.al = loop.ActiveLearningConfig(initial=num_initial, batch=batch, budget=budget,
                                        rounds=rounds, beta=beta, mc_passes=mc_passes,
                                        ceal_delta=AL.ceal_delta, ceal_decay=AL.ceal_decay,
                                        ceal_cos=AL.ceal_cos)
    self.train = loop.TrainConfig(epochs=epochs, batch_size=batch_size,
                                  learning_rate=learning_rate, eval_batch_size=eval_batch_size,
                                  augment=TRAIN.augment)
    self.model = model_config(model, kwargs=model_kwargs, rho=rho, dropout_rate=dropout_rate)
    self.max_to_keep = max_to_keep
    self.devices, self.in_memory_limit = _placement(devices, in_memory_limit)
    self.log = log or (lambda s: None)
    self.summary: dict[str, Any] | None = None

  def config(self) -> dict[str, Any]:
    """The settings as the launcher's ``config.json`` lays them out (JSON-friendly)."""
    model = self.model
    return {
        "data": {"name": self.dataset.name, "source": "python",
                 "num_pool": self.dataset.num_pool, "num_test": self.dataset.num_test,
                 "class_names": list(self.dataset.class_names)},
        "model": {"arch": None if model.module is not None else model.arch,
                  "module": None if model.module is None else custom.describe_module(model.module),
                  "kwargs": _jsonable(model.module_kwargs or model.trunk_kwargs),
                  "rho": model.rho, "dropout_rate": model.dropout_rate},
        "al": {"initial": self.al.initial if self._random_start else None,
               "batch": self.al.batch, "budget": self.al.budget, "rounds": self.al.rounds,
               "beta": self.al.beta, "mc_passes": self.al.mc_passes,
               "oracle": self.oracle if isinstance(self.oracle, str) else "function"},
        "train": {"epochs": self.train.epochs, "batch_size": self.train.batch_size,
                  "learning_rate": self.train.learning_rate,
                  "eval_batch_size": self.train.eval_batch_size},
        "strategies": [self.strategy],
        "seeds": [self.seed],
    }

  def _prepare_workdir(self) -> None:
    os.makedirs(self.workdir, exist_ok=True)
    path = os.path.join(self.workdir, "config.json")
    new = json.loads(json.dumps(self.config(), sort_keys=True))
    if os.path.exists(path):
      with open(path) as f:
        old = json.load(f)
      if old != new:
        diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        raise ValueError(
            f"workdir {self.workdir!r} holds a run with other settings (differing: "
            f"{', '.join(diff)}); use another workdir."
        )
    with open(path + ".tmp", "w") as f:
      f.write(json.dumps(new, indent=2, sort_keys=True) + "\n")
    os.replace(path + ".tmp", path)

  def run(self) -> dict[str, Any]:
    """Runs (or continues) the rounds; returns the summary.

    Returns:
      ``loop.run``'s summary: ``accuracies`` (round 0 first), ``num_labeled``,
      ``aubc``, ``f_acc``, ``labels_spent``, the per-round records under
      ``rounds`` (``queried`` pool ids, ``test_accuracy``, ...; ``labels``
      when an oracle or a person gave them) and the last round's trained
      network under ``variables`` (``{"params", "batch_stats"}``, for
      ``model.apply``; also :attr:`variables`). With ``oracle="csv"``,
      ``pending_labels`` is the CSV to fill in before the next :meth:`run`,
      or ``None`` when the budget is spent.
    """
    if self.workdir is not None:
      self._prepare_workdir()
    self.summary = loop.run(
        self.dataset, strategy=self.strategy, seed=self.seed, al=self.al, train=self.train,
        model=self.model, workdir=self.workdir, max_to_keep=self.max_to_keep, log=self.log,
        initial_set=self.initial_set, oracle=self.oracle, devices=self.devices,
        in_memory_limit=self.in_memory_limit,
    )
    if self.workdir is not None and not self.summary.get("pending_labels"):
      report.write_report(self.workdir)  # results.md, results.csv, curves.png, ...
    return self.summary

  @property
  def variables(self) -> dict[str, Any] | None:
    """The last finished round's network (``{"params", "batch_stats"}``) after :meth:`run`."""
    return None if self.summary is None else self.summary.get("variables")

  @property
  def pending_labels(self) -> str | None:
    """The query CSV waiting for a person's labels (``oracle="csv"``), or ``None``."""
    return None if self.summary is None else self.summary.get("pending_labels")


def _placement(devices: Any, in_memory_limit: Any) -> tuple[Any, int | None]:
  """``devices`` and ``in_memory_limit`` of :class:`ActiveLearner`, checked."""
  if isinstance(devices, bool) or (isinstance(devices, int) and devices < 1):
    raise ValueError(f"devices must be None, an integer >= 1, devices or a mesh, got "
                     f"{devices!r}.")
  if in_memory_limit is not None and (isinstance(in_memory_limit, bool) or not isinstance(
      in_memory_limit, int) or in_memory_limit < 0):
    raise ValueError(f"in_memory_limit must be None or an integer >= 0 (bytes), got "
                     f"{in_memory_limit!r}.")
  return devices, in_memory_limit


def _jsonable(value: Any) -> Any:
  return json.loads(json.dumps(value, default=repr))


__all__ = ["ActiveLearner", "as_dataset", "model_config"]
