r"""Runs an active-learning experiment from a config file.

  python -m experiments.run --config=configs/mnist5k.py [--workdir=DIR] \
      [--config.al.budget=500 --config.strategies=msal,msal_d ...]

Writes config.json, then per (strategy, seed) rounds.jsonl, summary.json and
curve.png, and results.md / results.csv / curves.png / report.md comparing
them; the last lines say where they are.

Everything that can be checked without writing is checked before the workdir
is touched, each mistake in one line: a misspelled --config.<field> (with the
closest valid names), every field's value, the budget against the pool (the
data is opened first). A repeated --config.<field> keeps its last value.

Devices (docs/devices.md): --config.mesh.devices (None: every device, one run
over them) and --config.mesh.devices_per_run=k (the grid's runs side by side,
k devices each). A cluster job array: --task_index=I --num_tasks=N (or the
scheduler's SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX) runs the I-th share of
the grid into one shared --workdir; the task that finishes the grid writes
the tables (else `python -m experiments.report --workdir=DIR` once all are done).

One run over several hosts (docs/devices.md): start the same command on every
host with --coordinator_address=HOST:PORT --num_processes=N --process_id=I, or
with --distributed where the cluster scheduler's environment (SLURM, Kubernetes,
Cloud TPU) tells jax.distributed.initialize() those; process 0 writes the files.

Progress inside a round (training epochs, pool scoring) is printed every
--log_every seconds: 10 by default on a terminal, none when the output goes
to a file; --log_every=0 turns it off.
"""

from __future__ import annotations

import datetime
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import experiment, outputs, overrides, shares

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py).", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None,
    "Output folder; default: a fresh folder under runs/. An existing workdir of the same "
    "config is resumed after its last finished round.",
)
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "Resume a workdir even though its config.json differs from --config.",
)
_LOG_EVERY = flags.DEFINE_float(
    "log_every", None,
    "Seconds between progress lines inside a round (training epochs, pool scoring); 0: none. "
    "Default: 10 when standard output is a terminal, none when it is a file.",
)
_TASK_INDEX = flags.DEFINE_integer(
    "task_index", None,
    "Run only this share of the grid's runs (0-based; with --num_tasks) into a workdir shared "
    "by all tasks. Default: SLURM_ARRAY_TASK_ID, or JOB_COMPLETION_INDEX (Kubernetes).",
)
_NUM_TASKS = flags.DEFINE_integer(
    "num_tasks", None,
    "The number of tasks the grid is split over (a job array's size). Default: "
    "SLURM_ARRAY_TASK_COUNT; 1 (or no job array): the whole grid.",
)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False,
    "Run over the devices of several processes: jax.distributed.initialize() reads the "
    "coordinator, process count and index from the cluster scheduler's environment.",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None,
    "HOST:PORT of process 0 for jax.distributed (with --num_processes and --process_id).",
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Processes of the jax.distributed run (with --coordinator_address).")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index in the jax.distributed run, 0-based.")
flags.mark_flags_as_required(["config"])


def _default_workdir(config_path: str) -> str:
  name = os.path.splitext(os.path.basename(config_path.split(":")[0]))[0]
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  return os.path.join("runs", f"{name}-{stamp}")


def _init_distributed() -> bool:
  """Starts ``jax.distributed`` when asked (before anything touches a device); whether it did."""
  given = {"coordinator_address": _COORDINATOR.value, "num_processes": _NUM_PROCESSES.value,
           "process_id": _PROCESS_ID.value}
  if not _DISTRIBUTED.value and all(v is None for v in given.values()):
    return False
  missing = [f"--{k}" for k, v in given.items() if v is None]
  if missing and not _DISTRIBUTED.value:
    raise ValueError(f"{', '.join(missing)} missing: give --coordinator_address, "
                     "--num_processes and --process_id together, or --distributed to read "
                     "them from the cluster scheduler's environment.")
  import jax

  jax.distributed.initialize(**{k: v for k, v in given.items() if v is not None})
  return True


def _prepare(config, workdir: str, distributed: bool) -> bool:
  """``prepare_workdir`` on process 0 alone, the others waiting for it; whether it resumes."""
  if not distributed:
    return experiment.prepare_workdir(
        config, workdir, allow_config_change=_ALLOW_CONFIG_CHANGE.value, replace_unused=True)
  import jax
  from jax.experimental import multihost_utils

  resuming = False
  if jax.process_index() == 0:
    resuming = experiment.prepare_workdir(
        config, workdir, allow_config_change=_ALLOW_CONFIG_CHANGE.value, replace_unused=True)
  multihost_utils.sync_global_devices("experiments.run: workdir prepared")
  return resuming


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    # orbax logs every checkpoint at INFO; keep the console to our progress lines
    # unless the user asks for more with --verbosity=0 (INFO) or higher.
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  log = lambda s: print(s, flush=True)  # noqa: E731
  if _LOG_EVERY.value is not None and not _LOG_EVERY.value >= 0:
    sys.exit(f"error: --log_every must be >= 0 seconds (0: no progress lines), got "
             f"{_LOG_EVERY.value}.")
  try:
    distributed = _init_distributed()  # before anything touches a device
    if distributed:
      import jax

      if jax.process_index() != 0:  # process 0 prints the progress lines
        log = lambda s: None  # noqa: E731
    task = shares.task_from(_TASK_INDEX.value, _NUM_TASKS.value)
    if task[1] > 1 and _WORKDIR.value is None:
      raise ValueError(f"--num_tasks={task[1]} (from {task[2]}): the tasks share one workdir; "
                       "give it with --workdir.")
    exp = experiment.Experiment.from_config(config)  # every field checked before any work
    dataset = experiment.load_dataset(exp)
    experiment.check_pool(exp, dataset)  # the budget against the pool, sweep included
    if distributed and _WORKDIR.value is None:
      raise ValueError("--distributed / --num_processes: every process writes to one workdir; "
                       "give it with --workdir.")
    workdir = _WORKDIR.value or _default_workdir(
        config_flags.get_config_filename(flags.FLAGS["config"])
    )
    resuming = _prepare(config, workdir, distributed)  # the first write
    state = f" (shared by {task[1]} tasks)" if task[1] > 1 else " (resuming)" if resuming else ""
    log(f"workdir: {os.path.abspath(workdir)}{state}")
    results = experiment.run(exp, workdir, log=log, dataset=dataset,
                             progress_every=_LOG_EVERY.value, task=task[:2])
  except (ValueError, FileNotFoundError, FloatingPointError) as e:
    # Bad input or a diverged run: one clear line, no traceback.
    sys.exit(f"error: {e}")
  if outputs.pending_labels(results) or not shares.missing_runs(workdir)[0]:
    for line in experiment.end_lines(workdir, results):
      log(line)


if __name__ == "__main__":
  app.run(main, flags_parser=overrides.parse_flags)
