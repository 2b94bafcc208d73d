"""From a config to result files: validation, the (strategy, seed) runs, the table.

``Experiment.from_config`` turns the ml_collections config into typed settings
and checks every field before any work starts; ``run`` loads the data, runs
each (strategy, seed) pair with :func:`msal_jax.loop.run` and writes the
comparison table. The library (``msal_jax``) never sees a ConfigDict.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

import ml_collections

from msal_jax import data, loop, report, strategies


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
  max_to_keep: int | None = 2

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> Experiment:
    """Checks every field; the error names the field, its value and what is allowed."""
    names = _as_names(config.strategies, "strategies")
    for name in names:
      strategies.get(name)  # raises with the list of known names
    if len(set(names)) != len(names):
      raise ValueError(f"strategies must be distinct, got {names!r}.")
    if config.data.name not in data.DATASETS:
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
    rounds = config.al.get("rounds")
    return cls(
        dataset=config.data.name,
        source=config.data.get("source", "auto"),
        data_dir=data_dir,
        strategies=names,
        seeds=_as_seeds(config.seeds),
        al=loop.ActiveLearningConfig(
            initial=config.al.initial, batch=config.al.batch, budget=config.al.budget,
            rounds=rounds, beta=config.al.beta, mc_passes=config.al.get("mc_passes", 10),
            ceal_delta=config.al.get("ceal_delta", 5e-5),
            ceal_decay=config.al.get("ceal_decay", 0.033e-5),
            ceal_cos=config.al.get("ceal_cos", 0.99),
        ),
        train=loop.TrainConfig(
            epochs=config.train.epochs, batch_size=config.train.batch_size,
            learning_rate=config.train.learning_rate,
            eval_batch_size=config.train.get("eval_batch_size", 1000),
        ),
        model=loop.ModelConfig(
            arch=config.model.arch, rho=config.model.rho,
            dropout_rate=config.model.dropout_rate,
            trunk_kwargs=_trunk_kwargs(config.model.get("trunk")),
        ),
        max_to_keep=_max_to_keep(config),
    )

  @property
  def multi(self) -> bool:
    return len(self.strategies) * len(self.seeds) > 1

  def run_dir(self, workdir: str, strategy: str, seed: int) -> str:
    if not self.multi:
      return workdir
    return os.path.join(workdir, strategy, f"seed_{seed}")


def _max_to_keep(config: ml_collections.ConfigDict) -> int | None:
  value = config.get("checkpoint", {}).get("max_to_keep", 2)
  if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
    raise ValueError(f"checkpoint.max_to_keep must be an integer >= 1 or None, got {value!r}.")
  return value


def _trunk_kwargs(trunk: Any) -> dict:
  if trunk is None:
    return {}
  out = trunk.to_dict() if isinstance(trunk, ml_collections.ConfigDict) else dict(trunk)
  return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """``"field: old -> new"`` for every leaf that differs between two configs."""
  a, b = _flatten(old), _flatten(new)
  return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(a.keys() | b.keys())
          if a.get(k) != b.get(k)]


def prepare_workdir(
    config: ml_collections.ConfigDict, workdir: str, *, allow_config_change: bool = False
) -> bool:
  """Makes ``workdir`` and writes ``config.json``; returns whether it resumes a run.

  A workdir that already holds a ``config.json`` is resumed when the configs
  agree; a different config is refused with the differing fields, unless
  ``allow_config_change``. A workdir that cannot be written is an error now,
  not after the first round of training.
  """
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, ".write_probe")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise ValueError(f"workdir {workdir!r} is not writable: {e}") from None
  new = json.loads(config.to_json_best_effort(sort_keys=True))
  path = os.path.join(workdir, "config.json")
  resuming = os.path.exists(path)
  if resuming:
    with open(path) as f:
      old = json.load(f)
    diff = config_differences(old, new)
    if diff and not allow_config_change:
      raise ValueError(
          f"workdir {workdir!r} holds a run with another config; differing fields: "
          f"{'; '.join(diff)}. Use another --workdir, or pass --allow_config_change to "
          "continue with the new config."
      )
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(json.dumps(new, indent=2, sort_keys=True) + "\n")
  os.replace(tmp, path)
  return resuming


def load_results(workdir: str) -> dict[str, list[dict[str, Any]]]:
  """``{strategy: [summary per seed]}`` from the summary.json files under ``workdir``."""
  results: dict[str, list[dict[str, Any]]] = {}
  for root, _, files in sorted(os.walk(workdir)):
    if "summary.json" in files:
      with open(os.path.join(root, "summary.json")) as f:
        summary = json.load(f)
      results.setdefault(summary["strategy"], []).append(summary)
  for runs in results.values():
    runs.sort(key=lambda s: s["seed"])
  return results


def write_report(results: report.Results, workdir: str, title: str) -> None:
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(f"# {title}\n\n" + report.markdown_table(results))
  with open(os.path.join(workdir, "results.csv"), "w") as f:
    f.write(report.csv_table(results))
  report.plot_curves(results, os.path.join(workdir, "curves.png"), title=title)


def run(
    exp: Experiment,
    workdir: str,
    *,
    log: Callable[[str], None] = print,
    dataset: data.Dataset | None = None,
) -> dict[str, list[dict[str, Any]]]:
  """Runs every (strategy, seed) pair; returns ``{strategy: [summary per seed]}``."""
  if dataset is None:
    dataset = data.load(exp.dataset, source=exp.source, data_dir=exp.data_dir)
  exp.al.check_pool(dataset.num_pool)
  log(
      f"dataset {dataset.name}: pool {dataset.num_pool}, test {dataset.num_test}, "
      f"{dataset.num_classes} classes, images {dataset.image_shape}"
  )
  results: dict[str, list[dict[str, Any]]] = {}
  for strategy in exp.strategies:
    for seed in exp.seeds:
      summary = loop.run(
          dataset, strategy=strategy, seed=seed, al=exp.al, train=exp.train, model=exp.model,
          workdir=exp.run_dir(workdir, strategy, seed), max_to_keep=exp.max_to_keep, log=log,
      )
      summary.pop("rounds")
      results.setdefault(strategy, []).append(summary)
  title = f"{dataset.name}: {exp.al.initial} initial + {exp.al.budget} by {exp.al.batch}"
  write_report(results, workdir, title)
  log("\n" + report.markdown_table(results))
  return results


