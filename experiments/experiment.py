"""From a config to result files: validation, the (strategy, seed) runs, the table.

One name for the launcher's steps, each in its own module:

- :mod:`experiments.validation`: ``Experiment.from_config`` turns the
  ml_collections config into typed settings and checks every field before any
  work starts (the library, ``msal_jax``, never sees a ConfigDict);
- :mod:`experiments.grid`: ``load_dataset`` and ``check_pool`` (the budget
  against the pool, before the workdir is touched), ``run`` (every
  (strategy[, sweep value], seed) run with :func:`msal_jax.loop.run`, then the
  report), ``load_results``;
- :mod:`experiments.workdir`: ``prepare_workdir`` (``config.json``; resume or
  refuse another config), ``config_differences``;
- :mod:`experiments.outputs`: the table with its columns defined, where the
  files are, the CSV a human-in-the-loop run waits for;
- :mod:`experiments.device_grid`: the grid's runs side by side, each on its
  own group of ``config.mesh.devices_per_run`` devices;
- :mod:`experiments.shares`: the grid split over the tasks of a job array
  (``--task_index/--num_tasks``), ``runs.json`` and the runs still missing.

Workdir layout: one run writes its files in the workdir itself; several in
``<strategy>/seed_<k>/``; a sweep (``config.sweep.field`` = ``"al.beta"``,
``config.sweep.values`` = ``(2, 5, 10)``) in ``<strategy>/al.beta=<value>/seed_<k>/``,
each such run resumable on its own.
"""

from __future__ import annotations

from experiments.grid import _make_oracle, check_pool, load_dataset, load_results, run
from experiments.outputs import COLUMNS, end_lines, where_lines
from experiments.validation import (
    Experiment,
    _as_names,
    _as_seeds,
    _custom_data,
    _has_field,
    _hitl,
    _max_to_keep,
    _oracle_settings,
    _sweep_spec,
    _trunk_kwargs,
    _tsne_settings,
)
from experiments.workdir import _flatten, _normalized, config_differences, prepare_workdir
from msal_jax import loop  # tests replace experiment.loop.run

__all__ = [
    "COLUMNS", "Experiment", "check_pool", "config_differences", "end_lines", "load_dataset",
    "load_results", "loop", "prepare_workdir", "run", "where_lines",
]
_PRIVATE = (_as_names, _as_seeds, _custom_data, _flatten, _has_field, _hitl, _make_oracle,
            _max_to_keep, _normalized, _oracle_settings, _sweep_spec, _trunk_kwargs,
            _tsne_settings)  # re-exported for the tests that reach them as experiment._x
