"""The grid split over the jobs of a cluster scheduler: which runs a task makes, which are missing.

A SLURM job array or a Kubernetes indexed Job starts the same launcher command
N times; each task runs its share of the grid's (strategy[, sweep value], seed)
runs into one shared workdir:

- :func:`grid_jobs` lists the runs in the launcher's order (strategy, then
  sweep value, then seed) and :func:`share` deals them round-robin, task
  ``i`` of ``n`` taking ``jobs[i::n]``: deterministic (the same command gives
  every task the same list) and balanced across strategies, whose costs differ;
- :func:`task_from` reads ``--task_index`` / ``--num_tasks`` or the
  scheduler's environment (``SLURM_ARRAY_TASK_ID`` / ``SLURM_ARRAY_TASK_COUNT``,
  a Kubernetes indexed Job's ``JOB_COMPLETION_INDEX`` with ``--num_tasks``);
- :func:`write_runs_file` records every run folder of the grid in
  ``runs.json`` and :func:`missing_runs` says which have no ``summary.json``
  yet, so the last task to finish (or ``python -m experiments.report``)
  builds the tables once, from all of them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence

from experiments.validation import Experiment

RUNS_FILE = "runs.json"  # the grid's run folders, relative to the workdir
Job = tuple[str, str | None, int]  # (strategy, sweep value as in the folder name or None, seed)


def grid_jobs(exp: Experiment) -> list[Job]:
  """Every run of the grid, in the order the launcher makes them one after another."""
  values = [value for value, _ in exp.sweep] or [None]
  return [(s, v, seed) for s in exp.strategies for v in values for seed in exp.seeds]


def share(jobs: Sequence[Job], task_index: int, num_tasks: int) -> list[Job]:
  """Task ``task_index``'s share of ``jobs``: every ``num_tasks``-th run from that index."""
  return list(jobs[task_index::num_tasks])


def _int_env(environ: Mapping[str, str], name: str) -> int | None:
  value = environ.get(name)
  if value is None or value == "":
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"{name}={value!r} in the environment is not an integer.") from None


def task_from(task_index: int | None, num_tasks: int | None,
              environ: Mapping[str, str] = os.environ) -> tuple[int, int, str]:
  """``(index, count, where from)`` of this task; ``(0, 1, "")`` when there is no split.

  The flags win; without ``--task_index`` the index comes from
  ``SLURM_ARRAY_TASK_ID`` (minus ``SLURM_ARRAY_TASK_MIN``, divided by
  ``SLURM_ARRAY_TASK_STEP``: ``--array=1-4`` is tasks 0..3) or
  ``JOB_COMPLETION_INDEX``; the count from ``--num_tasks`` or
  ``SLURM_ARRAY_TASK_COUNT``. ``--num_tasks=1`` ignores the environment.
  """
  source = "--task_index/--num_tasks"
  if num_tasks == 1 and task_index in (None, 0):
    return 0, 1, ""
  if task_index is None:
    slurm = _int_env(environ, "SLURM_ARRAY_TASK_ID")
    k8s = _int_env(environ, "JOB_COMPLETION_INDEX")
    if slurm is not None:
      low = _int_env(environ, "SLURM_ARRAY_TASK_MIN") or 0
      step = _int_env(environ, "SLURM_ARRAY_TASK_STEP") or 1
      task_index, source = (slurm - low) // step, "SLURM_ARRAY_TASK_ID"
      if num_tasks is None:
        num_tasks = _int_env(environ, "SLURM_ARRAY_TASK_COUNT")
        source += "/SLURM_ARRAY_TASK_COUNT"
    elif k8s is not None:
      if num_tasks is None:
        raise ValueError(f"JOB_COMPLETION_INDEX={k8s} (a Kubernetes indexed Job) gives this "
                         "task's index but not the count: pass --num_tasks=<the Job's "
                         "completions>.")
      task_index, source = k8s, "JOB_COMPLETION_INDEX"
    elif num_tasks is None:
      return 0, 1, ""
    else:
      raise ValueError(f"--num_tasks={num_tasks} needs --task_index (or a scheduler's "
                       "SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX in the environment).")
  if num_tasks is None:
    raise ValueError(f"--task_index={task_index} needs --num_tasks (the number of tasks the "
                     "grid is split over).")
  if num_tasks < 1:
    raise ValueError(f"--num_tasks must be >= 1, got {num_tasks}.")
  if not 0 <= task_index < num_tasks:
    raise ValueError(f"--task_index must be in [0, {num_tasks - 1}] (--num_tasks={num_tasks}), "
                     f"got {task_index} (from {source}).")
  return task_index, num_tasks, source


def run_folder(exp: Experiment, job: Job) -> str:
  """The run's folder relative to the workdir (``"."`` for a single run)."""
  strategy, value, seed = job
  return os.path.relpath(exp.run_dir("/w", strategy, seed, value), "/w")


def write_runs_file(exp: Experiment, workdir: str) -> None:
  """``runs.json``: the folder of every run of the grid, written atomically (tasks of one
  grid write the same bytes at about the same time)."""
  text = json.dumps({"runs": [run_folder(exp, j) for j in grid_jobs(exp)]}, indent=1) + "\n"
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, RUNS_FILE)
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == text:
        return
  fd, tmp = tempfile.mkstemp(prefix=f"{RUNS_FILE}.", suffix=".tmp", dir=workdir)
  with os.fdopen(fd, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def missing_runs(workdir: str) -> tuple[list[str], int]:
  """``(run folders of runs.json without a summary.json, number of runs)``; ``([], 0)`` when
  the workdir has no ``runs.json`` (a workdir of an older launcher or of the API)."""
  path = os.path.join(workdir, RUNS_FILE)
  if not os.path.exists(path):
    return [], 0
  with open(path) as f:
    runs = json.load(f)["runs"]
  missing = [r for r in runs if not os.path.exists(os.path.join(workdir, r, "summary.json"))]
  return missing, len(runs)


def missing_line(missing: Sequence[str], total: int, shown: int = 8) -> str:
  """One line naming the runs not finished yet (the first ``shown`` of them)."""
  names = ", ".join(missing[:shown]) + (f", ... ({len(missing) - shown} more)"
                                        if len(missing) > shown else "")
  return f"{len(missing)} of {total} runs not finished yet: {names}"
