"""The grid of runs: the data opened once, every (strategy[, sweep value], seed) run, the report.

``open_dataset`` loads the experiment's data (and its long-tailed pool) and
``check_pool`` checks every point's budget against the pool, both before the
launcher touches the workdir; ``run`` runs each (strategy, seed) pair with
:func:`msal_jax.loop.run` (one after another over ``config.mesh.devices``, or
side by side on groups of ``mesh.devices_per_run`` devices:
:mod:`experiments.device_grid`; a job array's task only its share:
:mod:`experiments.shares`) and, once every run of the grid has its files,
writes the report (:func:`msal_jax.report.write_report`, from those files).

Workdir layout: one run writes its files in the workdir itself; several in
``<strategy>/seed_<k>/``; a sweep (``config.sweep.field`` = ``"al.beta"``,
``config.sweep.values`` = ``(2, 5, 10)``) in ``<strategy>/al.beta=<value>/seed_<k>/``,
each such run resumable on its own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from experiments import device_grid, outputs, shares
from experiments.validation import Experiment
from msal_jax import data, loop, report
from msal_jax.data import longtail
from msal_jax.models import custom


def load_dataset(exp: Experiment) -> data.Dataset:
  """The experiment's dataset as its files hold it (before ``data.imbalance``).

  A pool of more than ``data.in_memory_limit`` bytes of pixels is not read
  into memory: ``npy`` / ``npz`` pools are memory maps, ``folder`` gives a
  :class:`~msal_jax.pool_source.FolderPool` and ``tfds`` a
  :class:`~msal_jax.pool_source.TfdsPool`, which the loop streams.
  """
  if exp.source in data.CUSTOM_SOURCES:
    options = dict(exp.data_options)
    if exp.source == "folder":
      options["in_memory_limit"] = exp.in_memory_limit
    return data.load_custom(exp.source, exp.data_path or exp.data_dir, **options)
  return data.load(exp.dataset, source=exp.source, data_dir=exp.data_dir,
                   in_memory_limit=exp.in_memory_limit)


def _pool_labels(exp: Experiment, dataset: data.Dataset) -> np.ndarray:
  """``[N]`` the labels of the pool the runs see (long-tailed with ``data.imbalance``)."""
  labels = np.asarray(dataset.pool_labels)
  if exp.imbalance is None:
    return labels
  return labels[longtail.subsample(labels, dataset.num_classes, exp.imbalance,
                                   seed=exp.imbalance_seed)]


def check_pool(exp: Experiment, dataset: data.Dataset) -> None:
  """Fails when the pool cannot supply ``al.initial + al.budget`` of any run (sweep included).

  ``dataset`` as loaded (before ``data.imbalance``); a pool with known labels
  only (the start drawn at random) is checked; otherwise the known labels are
  the start and the loop checks what is left. ``data.imbalance`` needs the pool
  in memory (or memory-mapped): a pool streamed from image files or TFDS is refused.
  """
  if exp.imbalance is not None and not isinstance(dataset.pool_images, np.ndarray):
    raise ValueError(
        f"data.imbalance={exp.imbalance:g}: a long-tailed subset of a pool streamed from its "
        f"files ({type(dataset.pool_images).__name__}: more than data.in_memory_limit bytes of "
        "pixels) is not supported yet; raise data.in_memory_limit if the pool fits in memory, "
        "or save the pool as .npy files (data.source=npy).")
  labels = _pool_labels(exp, dataset)
  if not (labels >= 0).all():
    return
  if not exp.sweep:
    exp.al.check_pool(len(labels))
  for value, point in exp.sweep:
    try:
      point.al.check_pool(len(labels))
    except ValueError as e:
      raise ValueError(f"sweep.values: {exp.sweep_field}={value}: {e}") from None


def _make_oracle(exp: Experiment, dataset: data.Dataset, seed: int) -> Any:
  """The labels of one (strategy, seed) run: ``"dataset"``, or al.oracle's function.

  The factory named by ``al.oracle`` is called once per run as
  ``factory(labels=pool_labels [N] int64 (-1 where unknown), num_classes=C,
  seed=seed, **al.oracle_kwargs)`` and returns ``oracle(ids [k] int64) -> [k]``
  class indices (a simulated annotator: noisy, biased, ...). A resumed run
  calls the factory again, so an oracle that answers each id the same way
  every time (as examples/noisy_oracle.py does) gives the same run resumed or not.
  """
  if exp.oracle is None:
    return "dataset"
  factory = custom.import_object(exp.oracle, field="al.oracle")
  try:
    oracle = factory(labels=np.asarray(dataset.pool_labels, np.int64),
                     num_classes=dataset.num_classes, seed=seed, **exp.oracle_kwargs)
  except Exception as e:
    raise ValueError(f"al.oracle: {exp.oracle}(labels=..., num_classes=..., seed={seed}, "
                     f"**{exp.oracle_kwargs}) failed: {type(e).__name__}: {e}") from e
  if not callable(oracle):
    raise ValueError(f"al.oracle: {exp.oracle} returned a {type(oracle).__name__}, not the "
                     "oracle function ids -> labels.")
  return oracle


def load_results(workdir: str) -> dict[report.Key, list[dict[str, Any]]]:
  """``{strategy: [summary per seed]}`` (``{(strategy, value): ...}`` in a sweep) from the
  files under ``workdir``, each summary with its per-round records under ``"rounds"``."""
  return report.load(workdir).results


def _note_diversity(exp: Experiment, dataset: data.Dataset, log: Callable[[str], None]) -> None:
  diverse = [s for s in exp.strategies if s.endswith("msal_d")]
  if diverse and exp.al.batch < dataset.num_classes:
    log(
        f"note: al.batch={exp.al.batch} < {dataset.num_classes} classes: MSAL-D's diversity "
        f"stage ({', '.join(diverse)}) takes one candidate from each of the {exp.al.batch} "
        "classes whose closest candidate is nearest its prototype, so not every class is "
        "covered in a round (DESIGN.md 3)."
    )


def _run_one(exp: Experiment, dataset: data.Dataset, job: shares.Job, workdir: str, *,
             log: Callable[[str], None], progress_every: float | None,
             devices: Any) -> dict[str, Any]:
  """One (strategy, sweep value, seed) run of the grid with :func:`msal_jax.loop.run`."""
  strategy, value, seed = job
  point = dict(exp.sweep)[value] if value is not None else exp
  summary = loop.run(
      dataset, strategy=strategy, seed=seed, al=point.al, train=point.train,
      model=point.model, workdir=exp.run_dir(workdir, strategy, seed, value),
      max_to_keep=exp.max_to_keep, log=log, embedding_rounds=point.tsne_rounds,
      embedding_points=point.tsne_points,
      oracle="csv" if exp.hitl else _make_oracle(point, dataset, seed),
      progress_every=progress_every, devices=devices, in_memory_limit=exp.in_memory_limit,
  )
  summary.pop("rounds")
  summary.pop("variables")  # the network: each run's checkpoints hold it
  return summary


def _run_jobs(exp: Experiment, dataset: data.Dataset, jobs: list[shares.Job], workdir: str,
              log: Callable[[str], None], progress_every: float | None) -> list[dict[str, Any]]:
  """The summaries of ``jobs``: one after another over ``mesh.devices``, or side by side on
  groups of ``mesh.devices_per_run`` devices (:mod:`experiments.device_grid`)."""
  run_one = functools.partial(_run_one, exp, dataset, workdir=workdir,
                              progress_every=progress_every)
  if exp.devices_per_run is None:
    out = []
    for job in jobs:
      out.append(run_one(job, log=log, devices=exp.devices))
      if out[-1].get("pending_labels"):  # al.hitl: one run, stopped for a person
        break
    return out
  groups = device_grid.device_groups(exp.devices, exp.devices_per_run)
  log(f"{len(jobs)} runs side by side on {len(groups)} groups of {exp.devices_per_run} "
      f"device(s): {' '.join(device_grid.group_tag(g) for g in groups)}")
  return device_grid.run_side_by_side(
      jobs, lambda job, group, tagged: run_one(job, log=tagged, devices=group), groups, log)


def run(
    exp: Experiment,
    workdir: str,
    *,
    log: Callable[[str], None] = print,
    dataset: data.Dataset | None = None,
    progress_every: float | None = None,
    task: tuple[int, int] = (0, 1),
) -> dict[str, list[dict[str, Any]]]:
  """Runs every (strategy, seed) pair; returns ``{strategy: [summary per seed]}``.

  ``dataset``: the data as loaded (:func:`load_dataset`, before ``data.imbalance``);
  None loads it. The table ends the log, with a line defining its columns.
  ``progress_every``: seconds between progress lines inside a round
  (:func:`msal_jax.loop.run`; ``None``: 10 s on a terminal, else none).
  ``task``: ``(i, n)``: only the i-th of n shares of the runs
  (:func:`experiments.shares.share`); the tables are written once every run of
  the grid has its files, else a line says which are missing.
  """
  if dataset is None:
    dataset = load_dataset(exp)
  check_pool(exp, dataset)
  if exp.imbalance is not None:
    dataset = longtail.long_tailed(dataset, exp.imbalance, seed=exp.imbalance_seed)
  log(
      f"dataset {dataset.name}: pool {dataset.num_pool}, test {dataset.num_test}, "
      f"{dataset.num_classes} classes, images {dataset.image_shape}"
  )
  _note_diversity(exp, dataset, log)
  shares.write_runs_file(exp, workdir)
  jobs = shares.share(shares.grid_jobs(exp), *task)
  if task[1] > 1:
    log(f"task {task[0]} of {task[1]}: {len(jobs)} of {len(shares.grid_jobs(exp))} runs: "
        f"{', '.join(shares.run_folder(exp, j) for j in jobs) or 'none'}")
  results: dict[report.Key, list[dict[str, Any]]] = {}
  for (strategy, value, _), summary in zip(jobs, _run_jobs(exp, dataset, jobs, workdir, log,
                                                           progress_every), strict=False):
    if summary.get("pending_labels"):
      return {strategy: [summary]}  # no table yet: the launcher says which file to fill
    results.setdefault(strategy if value is None else (strategy, value), []).append(summary)
  missing, total = shares.missing_runs(workdir)
  if missing:  # other tasks' shares: the last to end writes the tables
    log(f"{shares.missing_line(missing, total)}; the tables are written when they are done "
        f"(or: python -m experiments.report --workdir={workdir})")
    return results
  # From the files, as `python -m experiments.report` does: the same bytes either way.
  # Under jax.distributed every process ran the same runs; process 0 writes.
  if jax.process_index() == 0:
    report.write_report(workdir, log=log)
  outputs.log_table(workdir, log)
  return results
