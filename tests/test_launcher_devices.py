"""The launcher over devices and machines (issue 18): the grid side by side on 8 devices, the
grid split over the tasks of a job array, and the mesh / task settings' one-line errors.

The runs made alone come from the two task shares made here (one device,
one run after another); ``tests/launcher_devices_worker.py`` makes the same
grid in an 8-device process with ``mesh.devices_per_run=1``.
"""

import json
import os
import re
import subprocess
import sys

import launcher_devices_worker as worker
import loop_fixtures
import ml_collections
import pytest

from experiments import experiment, shares
from msal_jax import report

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUNS = [f"{s}/seed_{k}" for s in worker.STRATEGIES for k in worker.SEEDS]


def _report_cli(workdir):
  return subprocess.run([sys.executable, "-m", "experiments.report", f"--workdir={workdir}"],
                        cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"),
                        capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def worker_8_devices():
  """The 8-device grid's process, started first so that it runs while this one works."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} "
                       "--xla_force_host_platform_device_count=8".strip())
  proc = subprocess.Popen([sys.executable, os.path.join(HERE, "launcher_devices_worker.py")],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=ROOT)
  yield proc
  if proc.poll() is None:
    proc.kill()
    proc.communicate()


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory, worker_8_devices):
  """The grid made by two tasks into one workdir, with what the report says in between."""
  wd = str(tmp_path_factory.mktemp("shared"))
  cfg = worker.config()
  exp = experiment.Experiment.from_config(cfg)
  ds = loop_fixtures.dataset()
  out = {"workdir": wd, "logs": [], "results": []}
  for task in (1, 0):
    experiment.prepare_workdir(cfg, wd)  # each task writes / checks config.json
    lines = []
    out["results"].append(experiment.run(exp, wd, log=lines.append, dataset=ds,
                                         progress_every=0, task=(task, 2)))
    out["logs"].append(lines)
    if task == 1:
      out["between"] = _report_cli(wd)
      out["table_between"] = os.path.exists(os.path.join(wd, "results.md"))
  return out


def test_two_tasks_make_every_run_and_the_report_waits_for_both(two_tasks):
  wd = two_tasks["workdir"]
  first, last = two_tasks["logs"]
  # Task 1 of 2 takes every second run from index 1 (round-robin over the grid's order).
  assert "task 1 of 2: 1 of 2 runs: msal_d/seed_3" in first
  assert first[-1] == ("1 of 2 runs not finished yet: entropy/seed_3; the tables are written "
                       f"when they are done (or: python -m experiments.report --workdir={wd})")
  between = two_tasks["between"]
  assert between.returncode == 3, between.stderr
  assert between.stderr.strip().splitlines() == [
      "1 of 2 runs not finished yet: entropy/seed_3; run this again when every task of the "
      "grid has ended."]
  assert not two_tasks["table_between"]  # no table from half the runs
  # The second task finished the grid: it wrote the tables, from all four runs.
  assert not any("not finished" in s for s in last)
  assert [{k: [s["seed"] for s in v] for k, v in r.items()} for r in two_tasks["results"]] == [
      {"msal_d": [3]}, {"entropy": [3]}]
  table = open(os.path.join(wd, "results.md")).read()
  loaded = report.load(wd).results
  assert {k: [s["seed"] for s in v] for k, v in loaded.items()} == {
      "entropy": [3], "msal_d": [3]}
  assert table.count("| entropy |") == 1 and table.count("| msal_d |") == 1
  after = _report_cli(wd)
  assert after.returncode == 0, after.stderr
  assert open(os.path.join(wd, "results.md")).read() == table  # the same bytes again


@pytest.fixture(scope="module")
def grid_8_devices(worker_8_devices):
  out, err = worker_8_devices.communicate(timeout=900)
  assert worker_8_devices.returncode == 0, err[-3000:]
  line = next(s for s in out.splitlines() if s.startswith("RESULT "))
  return json.loads(line.removeprefix("RESULT "))


def test_grid_side_by_side_gives_each_run_its_files_alone(grid_8_devices, two_tasks):
  got = grid_8_devices
  assert got["devices"] == 8
  assert {"results.md", "runs.json", "entropy", "msal_d"} <= set(got["written"])
  for run in RUNS:
    alone = loop_fixtures._files(os.path.join(two_tasks["workdir"], run))
    side = got["files"][run]
    # Queries, labels, accuracies, traces: equal. XLA:CPU's client with 8 host
    # devices splits its thread pool and the runs share it, which can move a
    # training loss in its last bit (its reduction order), so losses to 1e-6.
    assert side["summary"] == alone["summary"], run
    assert len(side["rounds"]) == len(alone["rounds"]) == 3
    for a, b in zip(side["rounds"], alone["rounds"], strict=True):
      a, b = dict(a), dict(b)
      assert a.pop("train_loss") == pytest.approx(b.pop("train_loss"), rel=1e-6)
      assert a == b, run


def test_grid_lines_name_their_device(grid_8_devices):
  lines = grid_8_devices["lines"]
  assert ("2 runs side by side on 8 groups of 1 device(s): "
          + " ".join(f"[dev {i}]" for i in range(8))) in lines
  rounds = [m.groups() for s in lines
            if (m := re.match(r"\[dev (\d)\] \[(\w+) seed (\d)\] round 2/2 ", s))]
  assert sorted((s, k) for _, s, k in rounds) == [(s, k) for s in worker.STRATEGIES
                                                  for k in map(str, worker.SEEDS)]
  # Two runs at once, each on its own device.
  assert len({d for d, _, _ in rounds}) == 2
  assert all(s.startswith("[dev ") for s in lines if re.search(r"\] round \d", s))


def test_task_from_flags_and_scheduler_environment():
  assert shares.task_from(None, None, {}) == (0, 1, "")
  assert shares.task_from(2, 3, {"SLURM_ARRAY_TASK_ID": "0"})[:2] == (2, 3)  # flags win
  assert shares.task_from(None, 1, {"SLURM_ARRAY_TASK_ID": "4"}) == (0, 1, "")  # --num_tasks=1
  slurm = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "1",
           "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "4"}  # --array=1-7:2
  assert shares.task_from(None, None, slurm)[:2] == (3, 4)
  assert shares.task_from(None, 5, {"JOB_COMPLETION_INDEX": "4"})[:2] == (4, 5)
  for args, env, match in [
      ((None, None), {"JOB_COMPLETION_INDEX": "1"}, "pass --num_tasks"),
      ((1, None), {}, "--task_index=1 needs --num_tasks"),
      ((None, 2), {}, "--num_tasks=2 needs --task_index"),
      ((2, 2), {}, r"--task_index must be in \[0, 1\] \(--num_tasks=2\), got 2"),
      ((None, None), {"SLURM_ARRAY_TASK_ID": "x"}, "SLURM_ARRAY_TASK_ID='x' in the environment"),
  ]:
    with pytest.raises(ValueError, match=match) as e:
      shares.task_from(*args, env)
    assert "\n" not in str(e.value)


def test_shares_partition_the_grid():
  jobs = [(s, None, k) for s in "abc" for k in range(5)]
  for n in (1, 2, 3, 4, 16):
    parts = [shares.share(jobs, i, n) for i in range(n)]
    assert sorted(j for p in parts for j in p) == sorted(jobs)  # each run once
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced


@pytest.mark.parametrize("mesh, match", [
    ({"devices": 0}, "mesh.devices must be an integer >= 1 or None, got 0."),
    ({"devices": 2}, "mesh.devices=2: the cpu backend has 1 device(s); give at most 1, or None "
                     "for all."),
    ({"devices_per_run": 2}, "mesh.devices_per_run=2 is more than the 1 device(s) the grid "
                             "has (every device of the cpu backend); give at most 1."),
    ({"devices_per_run": True}, "mesh.devices_per_run must be an integer >= 1 or None, got True."),
])
def test_mesh_fields_one_line_errors(mesh, match):
  cfg = ml_collections.ConfigDict(worker.config().to_dict(), type_safe=False)
  cfg.mesh.update(mesh)
  with pytest.raises(ValueError) as e:
    experiment.Experiment.from_config(cfg)
  assert str(e.value) == match


def test_workdir_shared_by_tasks_and_devices(tmp_path):
  cfg = worker.config()
  assert experiment.prepare_workdir(cfg, str(tmp_path)) is False
  path = tmp_path / "config.json"
  stat = path.stat()
  # Another task of the same grid: proceeds, and leaves the file as it is.
  assert experiment.prepare_workdir(cfg, str(tmp_path)) is True
  assert (path.stat().st_ino, path.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
  # Other devices change no run: accepted (and recorded); another budget is refused.
  experiment.prepare_workdir(worker.config(devices_per_run=1), str(tmp_path))
  assert json.loads(path.read_text())["mesh"]["devices_per_run"] == 1
  other = worker.config()
  other.al.budget = 30
  with pytest.raises(ValueError, match=r"differing fields: al.budget: 20 -> 30\. Use another"):
    experiment.prepare_workdir(other, str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ["config.json"]  # no temporary file left


def test_launcher_task_flags_fail_in_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.run", "--config=configs/mnist5k.py",
       f"--workdir={tmp_path / 'wd'}", "--task_index=2", "--num_tasks=2"],
      cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      "error: --task_index must be in [0, 1] (--num_tasks=2), got 2 (from "
      "--task_index/--num_tasks)."]
  assert not (tmp_path / "wd").exists()


def test_active_learner_passes_devices_to_the_loop(monkeypatch):
  import jax
  import numpy as np

  import msal_jax
  from msal_jax import loop

  seen = []

  class Stop(Exception):
    pass

  def fake_run(dataset, **kwargs):
    seen.append(kwargs["devices"])
    raise Stop

  monkeypatch.setattr(loop, "run", fake_run)
  x, y = np.zeros((12, 8, 8, 1), np.uint8), np.arange(12) % 2
  for devices in (None, 1, [jax.devices()[0]]):
    learner = msal_jax.ActiveLearner("small_cnn", (x, y), (x, y), budget=4, batch=2, log=None,
                                     devices=devices)
    with pytest.raises(Stop):
      learner.run()
  assert seen == [None, 1, [jax.devices()[0]]]
  assert "mesh" not in learner.config()  # a workdir may be resumed on other devices
  with pytest.raises(ValueError, match=r"^devices must be None, an integer >= 1, devices or a "
                                       r"mesh, got 0\.$"):
    msal_jax.ActiveLearner("small_cnn", (x, y), (x, y), budget=4, batch=2, devices=0)


THREE = ("entropy", "msal_d", "random")  # 3 runs (one seed): one per task of 3


@pytest.fixture(scope="module")
def three_shares(tmp_path_factory):
  """The 3-run grid made by one job, and by the 3 tasks of a job array into one workdir
  (in the order 2, 0, 1: a scheduler starts them in any order), one round each."""
  cfg = worker.config()
  cfg.strategies, cfg.al.rounds = THREE, 1
  exp = experiment.Experiment.from_config(cfg)
  ds = loop_fixtures.dataset()
  whole, shared = (str(tmp_path_factory.mktemp(n)) for n in ("whole", "three"))
  experiment.prepare_workdir(cfg, whole)
  experiment.run(exp, whole, log=lambda s: None, dataset=ds, progress_every=0)
  logs, tables = {}, {}
  for task in (2, 0, 1):
    experiment.prepare_workdir(cfg, shared)
    lines = []
    experiment.run(exp, shared, log=lines.append, dataset=ds, progress_every=0, task=(task, 3))
    logs[task] = lines
    tables[task] = os.path.exists(os.path.join(shared, "results.md"))
  return {"whole": whole, "shared": shared, "logs": logs, "tables": tables}


def test_three_shares_build_the_tables_of_one_job(three_shares):
  wd, logs = three_shares["shared"], three_shares["logs"]
  for task, strategy in enumerate(THREE):  # task i takes run i (round-robin, 3 runs)
    assert f"task {task} of 3: 1 of 3 runs: {strategy}/seed_3" in logs[task]
  assert logs[2][-1] == ("2 of 3 runs not finished yet: entropy/seed_3, msal_d/seed_3; the "
                         "tables are written when they are done (or: python -m "
                         f"experiments.report --workdir={wd})")
  assert logs[0][-1].startswith("1 of 3 runs not finished yet: msal_d/seed_3; ")
  assert three_shares["tables"] == {2: False, 0: False, 1: True}  # the last task writes them
  for name in ("results.md", "results.csv"):
    one_job = open(os.path.join(three_shares["whole"], name)).read()
    assert open(os.path.join(wd, name)).read() == one_job, name
  table = open(os.path.join(wd, "results.md")).read()
  assert [table.count(f"| {s} |") for s in THREE] == [1, 1, 1]
  for s in THREE:  # and each run's files are those of the one job's run
    whole = loop_fixtures._files(os.path.join(three_shares["whole"], s, "seed_3"))
    assert loop_fixtures._files(os.path.join(wd, s, "seed_3")) == whole, s
