"""The config checked and typed: ``Experiment.from_config`` (every field, before any work).

``Experiment.from_config`` turns the ml_collections config into typed settings
(:class:`msal_jax.loop.ActiveLearningConfig`, ``TrainConfig``, ``ModelConfig``
and the launcher's own fields) and checks every field before anything is
loaded or written; an error names the field, its value and what is allowed.
A field the config leaves out takes its value from :mod:`msal_jax.defaults`,
the one source of defaults of the API and the configs. The library
(``msal_jax``) never sees a ConfigDict.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any

import jax
import ml_collections

from msal_jax import data, loop, metrics, pool_source, report, strategies
from msal_jax import defaults as lib_defaults
from msal_jax.data import longtail
from msal_jax.models import custom

TSNE_POINTS = 2000  # report.tsne_points: pool points per t-SNE panel


def _as_names(value: Any, field: str) -> tuple[str, ...]:
  # "a,b" on the command line arrives as "a,b" or ("a,b",): split either.
  if isinstance(value, str):
    value = [value]
  if isinstance(value, (list, tuple)):
    value = [v.strip() for item in value for v in str(item).split(",") if v.strip()]
  if not isinstance(value, (list, tuple)) or not value:
    raise ValueError(f"{field} must be a non-empty list, got {value!r}.")
  return tuple(value)


def _as_seeds(value: Any) -> tuple[int, ...]:
  if isinstance(value, int) and not isinstance(value, bool):
    value = (value,)
  if isinstance(value, str):
    value = [v.strip() for v in value.split(",") if v.strip()]
    try:
      value = [int(v) for v in value]
    except ValueError:
      raise ValueError(f"seeds must be integers, got {value!r}.") from None
  if not isinstance(value, (list, tuple)) or not value:
    raise ValueError(f"seeds must be a non-empty list of integers >= 0, got {value!r}.")
  for s in value:
    if isinstance(s, bool) or not isinstance(s, int) or s < 0:
      raise ValueError(f"seeds must be integers >= 0, got {s!r} in {value!r}.")
  if len(set(value)) != len(value):
    raise ValueError(f"seeds must be distinct, got {value!r}.")
  return tuple(value)


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Typed, validated settings of one launcher invocation."""

  dataset: str
  source: str
  data_dir: str | None
  strategies: tuple[str, ...]
  seeds: tuple[int, ...]
  al: loop.ActiveLearningConfig
  train: loop.TrainConfig
  model: loop.ModelConfig
  max_to_keep: int | None = lib_defaults.CHECKPOINT.max_to_keep
  data_path: str | None = None  # data.path: the .npz file of data.source="npz"
  # Custom sources (npz, npy, folder): class_names, image_size, channels when set.
  data_options: dict = dataclasses.field(default_factory=dict)
  hitl: bool = False  # al.hitl: a person labels each round's queries in a CSV
  # al.oracle: "package.module:make" or "path/file.py:make", a factory of the oracle
  # function (see _make_oracle), called with al.oracle_kwargs; None: the dataset's labels.
  oracle: str | None = None
  oracle_kwargs: dict = dataclasses.field(default_factory=dict)
  imbalance: float | None = None  # data.imbalance: a long-tailed pool (data.longtail)
  imbalance_seed: int = 0  # data.imbalance_seed: which samples the long-tailed pool keeps
  # data.in_memory_limit: bytes of pool pixels above which the pool is streamed from its
  # files (npy, npz, folder, tfds); None: msal_jax.pool_source.IN_MEMORY_LIMIT_BYTES.
  in_memory_limit: int | None = None
  tsne_rounds: tuple[int, ...] = ()
  tsne_points: int = TSNE_POINTS
  sweep_field: str | None = None
  # (value as in the folder names, the settings with that value), per swept value.
  sweep: tuple[tuple[str, Experiment], ...] = ()
  # mesh.devices: None = every device of the default backend (one run over them), or a count;
  # mesh.devices_per_run: None = each run over all of them, k = runs side by side on k each.
  devices: int | None = None
  devices_per_run: int | None = None

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> Experiment:
    """Checks every field; the error names the field, its value and what is allowed.

    With ``config.sweep.field`` set (e.g. ``"al.beta"``), ``sweep`` holds one
    validated ``Experiment`` per value of ``config.sweep.values``.
    """
    exp = cls._from_config(config)
    field, values = _sweep_spec(config)
    if field is None:
      return exp
    points = {}
    for value in values:
      sub = copy.deepcopy(config)
      *parents, leaf = field.split(".")
      try:
        node = sub
        for name in parents:
          node = node[name]
        node[leaf] = value
        label = report.format_value(node[leaf])
        if not label or os.sep in label:
          raise ValueError("it must be non-empty and without a path separator")
        point = cls._from_config(sub)
      except TypeError:  # ConfigDict refuses a value of another type than the field's
        raise ValueError(
            f"sweep.values: {field}={value!r} is invalid: {field} takes values of type "
            f"{type(node[leaf]).__name__}."
        ) from None
      except ValueError as e:
        raise ValueError(f"sweep.values: {field}={value!r} is invalid: {e}") from None
      if label in points:
        raise ValueError(f"sweep.values: {field}={label} is given twice in {values!r}.")
      points[label] = point
    return dataclasses.replace(exp, sweep_field=field, sweep=tuple(points.items()))

  @classmethod
  def _from_config(cls, config: ml_collections.ConfigDict) -> Experiment:
    names = _as_names(config.strategies, "strategies")
    for name in names:
      strategies.get(name)  # raises with the list of known names
    if len(set(names)) != len(names):
      raise ValueError(f"strategies must be distinct, got {names!r}.")
    source = config.data.get("source", "auto")
    custom = source in data.CUSTOM_SOURCES  # your own files: data.name is free
    if not custom and config.data.name not in data.DATASETS:
      raise ValueError(
          f"data.name: unknown dataset {config.data.name!r}; known: "
          f"{', '.join(sorted(data.DATASETS))}."
      )
    data_dir = config.data.get("dir")
    if data_dir is not None:
      data_dir = os.path.expanduser(data_dir)
      if not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"data.dir: directory {data_dir!r} does not exist; point --config.data.dir at the "
            "folder that holds the dataset's files."
        )
    data_path, data_options = None, {}
    if custom:
      data_path, data_options = _custom_data(config, source, data_dir)
    else:
      data.resolve_source(config.data.name, source, data_dir)  # a bad source stops here
    imbalance_seed = config.data.get("imbalance_seed", 0)
    if isinstance(imbalance_seed, bool) or not isinstance(imbalance_seed, int) or (
        imbalance_seed < 0
    ):
      raise ValueError(f"data.imbalance_seed must be an integer >= 0, got {imbalance_seed!r}.")
    in_memory_limit = config.data.get("in_memory_limit")
    if in_memory_limit is not None:
      pool_source.in_memory_limit(in_memory_limit, "data.in_memory_limit")
    rounds = config.al.get("rounds")
    al_d, train_d = lib_defaults.AL, lib_defaults.TRAIN  # a field the config leaves out
    exp = cls(
        dataset=config.data.name,
        source=source,
        data_dir=data_dir,
        data_path=data_path,
        data_options=data_options,
        hitl=_hitl(config, names),
        **_oracle_settings(config),
        imbalance=longtail.check_imbalance(config.data.get("imbalance")),
        imbalance_seed=imbalance_seed,
        in_memory_limit=in_memory_limit,
        strategies=names,
        seeds=_as_seeds(config.seeds),
        al=loop.ActiveLearningConfig(
            initial=config.al.initial, batch=config.al.batch, budget=config.al.budget,
            rounds=rounds, beta=config.al.beta,
            mc_passes=config.al.get("mc_passes", al_d.mc_passes),
            ceal_delta=config.al.get("ceal_delta", al_d.ceal_delta),
            ceal_decay=config.al.get("ceal_decay", al_d.ceal_decay),
            ceal_cos=config.al.get("ceal_cos", al_d.ceal_cos),
        ),
        train=loop.TrainConfig(
            epochs=config.train.epochs, batch_size=config.train.batch_size,
            learning_rate=config.train.learning_rate,
            eval_batch_size=config.train.get("eval_batch_size", train_d.eval_batch_size),
            augment=config.train.get("augment", train_d.augment),
        ),
        model=loop.ModelConfig(
            arch=config.model.arch, rho=config.model.rho,
            dropout_rate=config.model.dropout_rate,
            trunk_kwargs=_trunk_kwargs(config.model.get("trunk")),
            module=config.model.get("module"),
            module_kwargs=_trunk_kwargs(config.model.get("kwargs")),
        ),
        max_to_keep=_max_to_keep(config),
        **_mesh_settings(config),
        **_tsne_settings(config, rounds if rounds is not None else
                         metrics.num_rounds(config.al.budget, config.al.batch)),
    )
    loop.check_dropout(names, exp.model)  # before any run starts, for all of them
    return exp

  @property
  def multi(self) -> bool:
    return len(self.strategies) * len(self.seeds) > 1 or self.sweep_field is not None

  def run_dir(self, workdir: str, strategy: str, seed: int, value: str | None = None) -> str:
    """``workdir``, or ``<strategy>/seed_<k>``, or ``<strategy>/<field>=<value>/seed_<k>``."""
    if not self.multi:
      return workdir
    if value is not None:
      return os.path.join(workdir, strategy, f"{self.sweep_field}={value}", f"seed_{seed}")
    return os.path.join(workdir, strategy, f"seed_{seed}")


def _custom_data(config: ml_collections.ConfigDict, source: str, data_dir: str | None
                 ) -> tuple[str | None, dict[str, Any]]:
  """``data.path`` and the options of a custom source (``npz``, ``npy``, ``folder``)."""
  path = config.data.get("path")
  if source == "npz":
    if path is None:
      raise ValueError("data.path: data.source='npz' needs the .npz file (--config.data.path=...).")
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"data.path: file {path!r} does not exist.")
  elif data_dir is None:
    what = "folder of .npy files" if source == "npy" else "image folder (train/, test/)"
    raise ValueError(f"data.dir: data.source={source!r} needs the {what} (--config.data.dir=...).")
  options = {}
  class_names = config.data.get("class_names")
  if class_names is not None:
    if isinstance(class_names, str):
      class_names = [c.strip() for c in class_names.split(",") if c.strip()]
    options["class_names"] = tuple(str(c) for c in class_names)
  if source == "folder":
    size = config.data.get("image_size")
    if size is not None:
      if (not isinstance(size, (list, tuple)) or len(size) != 2
          or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size)):
        raise ValueError(f"data.image_size must be (H, W) positive integers, got {size!r}.")
      options["image_size"] = tuple(size)
    channels = config.data.get("channels")
    if channels is not None:
      if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"data.channels must be 1 or 3, got {channels!r}.")
      options["channels"] = channels
  return path, options


def _hitl(config: ml_collections.ConfigDict, names: tuple[str, ...]) -> bool:
  value = config.al.get("hitl", False)
  if not isinstance(value, bool):
    raise ValueError(f"al.hitl must be True or False, got {value!r}.")
  if value:
    seeds = _as_seeds(config.seeds)
    sweep = (config.get("sweep") or {}).get("field")
    if len(names) != 1 or len(seeds) != 1 or sweep is not None:
      raise ValueError(
          "al.hitl=True: a person labels the queries of one run, so give one strategy and one "
          f"seed and no sweep (got strategies {names}, seeds {seeds}, sweep.field {sweep!r})."
      )
  return value


def _oracle_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
  spec = config.al.get("oracle")
  kwargs = _trunk_kwargs(config.al.get("oracle_kwargs"))
  if spec is None or spec == "dataset":
    if kwargs:
      raise ValueError(f"al.oracle_kwargs {kwargs} given but no al.oracle names a factory.")
    return {}
  if config.al.get("hitl", False):
    raise ValueError(f"al.oracle={spec!r} and al.hitl=True are two sources of labels; "
                     "choose one.")
  factory = custom.import_object(spec, field="al.oracle")  # a bad spec stops here
  if not callable(factory):
    raise ValueError(f"al.oracle: {spec!r} is a {type(factory).__name__}, not a callable "
                     "factory of the oracle function.")
  return {"oracle": spec, "oracle_kwargs": kwargs}


_SWEEPABLE = ("al", "train", "model")


def _sweep_spec(config: ml_collections.ConfigDict) -> tuple[str | None, tuple[Any, ...]]:
  sweep = config.get("sweep") or {}
  field, values = sweep.get("field"), sweep.get("values") or ()
  if field is None:
    if values:
      raise ValueError(f"sweep.values is set ({values!r}) but sweep.field is not.")
    return None, ()
  parts = str(field).split(".")
  if parts[0] not in _SWEEPABLE or len(parts) < 2 or not _has_field(config, parts):
    raise ValueError(
        f"sweep.field: {field!r} is not a field of the config's {', '.join(_SWEEPABLE)} "
        "(e.g. al.beta, al.batch, model.rho)."
    )
  if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values:
    raise ValueError(
        f"sweep.values: give a non-empty tuple of values of {field}, e.g. (2, 5, 10); "
        f"got {values!r}."
    )
  for value in values:
    if not isinstance(value, (bool, int, float, str)):
      raise ValueError(f"sweep.values: {field}={value!r} is not a number or a string.")
  return field, tuple(values)


def _has_field(config: ml_collections.ConfigDict, parts: list[str]) -> bool:
  """Whether ``a.b.c`` names a leaf (a value, not a sub-config) of ``config``."""
  node = config
  for name in parts:
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      return False
    node = node[name]
  return not isinstance(node, ml_collections.ConfigDict)


def _tsne_settings(config: ml_collections.ConfigDict, num_rounds: int) -> dict[str, Any]:
  settings = config.get("report") or {}
  rounds = settings.get("tsne_rounds") or ()
  if isinstance(rounds, int):
    rounds = (rounds,)
  if not isinstance(rounds, (list, tuple)) or any(
      isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= num_rounds for r in rounds
  ):
    raise ValueError(
        f"report.tsne_rounds must be rounds in 0..{num_rounds} (0 = the initial set), "
        f"got {rounds!r}."
    )
  points = settings.get("tsne_points", TSNE_POINTS)
  if isinstance(points, bool) or not isinstance(points, int) or points < 4:
    raise ValueError(f"report.tsne_points must be an integer >= 4, got {points!r}.")
  return {"tsne_rounds": tuple(sorted(set(rounds))), "tsne_points": points}


def _mesh_settings(config: ml_collections.ConfigDict) -> dict[str, int | None]:
  """``mesh.devices`` and ``mesh.devices_per_run``, checked against the devices jax sees.

  The backend is asked only when one of them is set (None / None is the library default).
  """
  mesh = config.get("mesh") or {}
  devices, per_run = mesh.get("devices"), mesh.get("devices_per_run")
  for field, value in (("mesh.devices", devices), ("mesh.devices_per_run", per_run)):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
      raise ValueError(f"{field} must be an integer >= 1 or None, got {value!r}.")
  if devices is None and per_run is None:
    return {"devices": None, "devices_per_run": None}
  available = len(jax.devices())
  if devices is not None and devices > available:
    raise ValueError(f"mesh.devices={devices}: the {jax.default_backend()} backend has "
                     f"{available} device(s); give at most {available}, or None for all.")
  total = available if devices is None else devices
  if per_run is not None and per_run > total:
    where = (f"mesh.devices={devices}" if devices is not None
             else f"every device of the {jax.default_backend()} backend")
    raise ValueError(f"mesh.devices_per_run={per_run} is more than the {total} device(s) the "
                     f"grid has ({where}); give at most {total}.")
  if per_run is not None and jax.process_count() > 1:
    raise ValueError(f"mesh.devices_per_run={per_run}: the grid runs side by side in one "
                     f"process, not under jax.distributed ({jax.process_count()} processes); "
                     "spread the grid over jobs with --task_index/--num_tasks instead.")
  return {"devices": devices, "devices_per_run": per_run}


def _max_to_keep(config: ml_collections.ConfigDict) -> int | None:
  value = config.get("checkpoint", {}).get("max_to_keep", lib_defaults.CHECKPOINT.max_to_keep)
  if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
    raise ValueError(f"checkpoint.max_to_keep must be an integer >= 1 or None, got {value!r}.")
  return value


def _trunk_kwargs(trunk: Any) -> dict:
  if trunk is None:
    return {}
  out = trunk.to_dict() if isinstance(trunk, ml_collections.ConfigDict) else dict(trunk)
  return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}

