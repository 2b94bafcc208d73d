"""Crash and resume: SIGKILL a real run at several points, resume, compare."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import experiment
from msal_jax.checkpoint import RoundCheckpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = [
    "--config=configs/mnist5k.py", "--config.strategies=msal_d", "--config.seeds=0",
    "--config.al.initial=20", "--config.al.batch=10", "--config.al.budget=40",
    "--config.train.epochs=2", "--config.train.batch_size=16",
    "--config.train.eval_batch_size=500",
    "--config.model.trunk.widths=(4, 8)", "--config.model.trunk.hidden=16",
    "--config.checkpoint.max_to_keep=3",
]
TIMING = ("train_seconds", "eval_seconds", "query_seconds")


def _cmd(workdir, *extra):
  return [sys.executable, "-m", "experiments.run", f"--workdir={workdir}", *ARGS, *extra]


def _env():
  return dict(os.environ, JAX_PLATFORMS="cpu")


def _run(workdir, *extra):
  return subprocess.run(_cmd(workdir, *extra), cwd=ROOT, env=_env(), capture_output=True,
                        text=True, timeout=600)


def _rounds(workdir):
  with open(os.path.join(workdir, "rounds.jsonl")) as f:
    recs = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if k not in TIMING} for r in recs]


def _final_state(workdir):
  ckpt = RoundCheckpointer(os.path.join(workdir, "checkpoints"), max_to_keep=3)
  step = ckpt.latest_step()
  state = ckpt.restore_state(step)
  ckpt.close()
  return step, state


def _kill_when(workdir, ready, *extra):
  """Starts a run and SIGKILLs it as soon as ``ready(workdir)`` is true."""
  proc = subprocess.Popen(_cmd(workdir, *extra), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while not ready(workdir):
    assert proc.poll() is None, "the run finished before the kill point"
    assert time.time() < deadline
    time.sleep(0.005)
  proc.send_signal(signal.SIGKILL)
  proc.wait()


def _lines(workdir):
  try:
    with open(os.path.join(workdir, "rounds.jsonl")) as f:
      return sum(1 for _ in f)
  except FileNotFoundError:
    return 0


def _saving(workdir):
  d = os.path.join(workdir, "checkpoints")
  return os.path.isdir(d) and any("tmp" in name for name in os.listdir(d))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  proc = _run(workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return _rounds(workdir), _final_state(workdir)


@pytest.mark.parametrize(
    "point",
    [
        pytest.param(lambda w: _lines(w) >= 2, id="mid-training"),
        pytest.param(_saving, id="mid-save"),
    ],
)
def test_killed_then_resumed_equals_uninterrupted(tmp_path, reference, point):
  ref_rounds, (ref_step, ref_state) = reference
  _kill_when(tmp_path, point)
  assert not (tmp_path / "summary.json").exists()
  proc = _run(tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "(resuming)" in proc.stdout
  assert _rounds(tmp_path) == ref_rounds
  step, state = _final_state(tmp_path)
  assert step == ref_step == 4
  for a, b in zip(_leaves(state), _leaves(ref_state), strict=True):
    np.testing.assert_array_equal(a, b)


def _leaves(tree):
  import jax

  return jax.tree.leaves(tree)


def test_streamed_run_killed_mid_round_resumes_to_the_in_memory_run(tmp_path):
  # Issue 19: the pool streamed from an image folder (data.in_memory_limit=0),
  # SIGKILLed once round 1 is recorded (round 2 training or scoring the pool),
  # then the same command: every round equals the run with the pool in memory.
  from test_launcher_streamed_sources import _write_folder

  from msal_jax import data

  full = data.load("mnist5k")
  digits = (full.pool_images[:200], full.pool_labels[:200], full.test_images[:60],
            full.test_labels[:60])
  folder = ["--config.data.source=folder",
            f"--config.data.dir={_write_folder(tmp_path / 'digits', digits, 0)}"]
  held = _run(tmp_path / "held", *folder)
  assert held.returncode == 0, held.stderr[-3000:]
  streamed = tmp_path / "streamed"
  _kill_when(streamed, lambda w: _lines(w) >= 2, *folder, "--config.data.in_memory_limit=0")
  assert not (streamed / "summary.json").exists()
  proc = _run(streamed, *folder, "--config.data.in_memory_limit=0")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "(resuming)" in proc.stdout
  with open(streamed / "summary.json") as f:
    assert json.load(f)["traces"]["pool_step"] == 1  # it streamed
  assert _rounds(streamed) == _rounds(tmp_path / "held")


def test_finished_run_is_skipped_and_checkpoints_pruned(tmp_path, reference):
  assert _run(tmp_path).returncode == 0
  again = _run(tmp_path)
  assert again.returncode == 0
  assert "already finished" in again.stdout
  assert "round 1/4" not in again.stdout
  assert _rounds(tmp_path) == reference[0]
  steps = sorted(int(n) for n in os.listdir(tmp_path / "checkpoints") if n.isdigit())
  assert steps == [2, 3, 4]  # max_to_keep = 3


def test_checkpoint_holds_the_round_state(tmp_path, reference):
  ref_rounds, (step, state) = reference
  assert set(state) == {"params", "batch_stats", "opt_state", "step", "labeled"}
  # After the last round: the initial 20 plus the 40 queried.
  assert state["labeled"].sum() == 60
  queried = [i for r in ref_rounds for i in r["queried"]]
  assert state["labeled"][queried].all()


def test_other_config_in_same_workdir_is_refused(tmp_path):
  import ml_collections

  config = ml_collections.ConfigDict({"al": {"budget": 40, "batch": 10}, "seeds": (0,)})
  assert experiment.prepare_workdir(config, str(tmp_path)) is False
  assert experiment.prepare_workdir(config, str(tmp_path)) is True
  other = ml_collections.ConfigDict({"al": {"budget": 60, "batch": 10}, "seeds": (0,)})
  with pytest.raises(ValueError, match=r"differing fields: al.budget: 40 -> 60"):
    experiment.prepare_workdir(other, str(tmp_path))
  assert experiment.prepare_workdir(other, str(tmp_path), allow_config_change=True) is True


def test_unwritable_workdir(tmp_path):
  import ml_collections

  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(ValueError, match="is not writable"):
    experiment.prepare_workdir(ml_collections.ConfigDict({"a": 1}), str(blocker / "sub"))


def test_non_finite_loss_stops_with_round_and_step_and_keeps_last_checkpoint(tmp_path,
                                                                              mnist5k_head):
  from msal_jax import loop

  ds = mnist5k_head(200, 50)
  kwargs = dict(
      strategy="msal", seed=0, workdir=str(tmp_path), log=lambda s: None,
      al=loop.ActiveLearningConfig(initial=20, batch=10, budget=30),
      model=loop.ModelConfig(trunk_kwargs={"widths": (4,), "hidden": 8}),
  )
  loop.run(ds, train=loop.TrainConfig(epochs=1, batch_size=16), max_to_keep=None, **kwargs)
  # As if the run had died after round 1, then continued with a learning rate
  # that diverges in round 2.
  for step in (2, 3):
    shutil.rmtree(tmp_path / "checkpoints" / str(step))
  lines_before = (tmp_path / "rounds.jsonl").read_text().splitlines(keepends=True)[:2]
  with pytest.raises(FloatingPointError, match=r"round 2: non-finite training loss .* step \d+"):
    loop.run(ds, train=loop.TrainConfig(epochs=3, batch_size=16, learning_rate=1e30), **kwargs)
  assert (tmp_path / "rounds.jsonl").read_text() == "".join(lines_before)
  ckpt = RoundCheckpointer(str(tmp_path / "checkpoints"))
  assert ckpt.latest_step() == 1
  ckpt.close()


def _tmpfs(path, size):
  """Mounts a tmpfs of ``size`` at ``path``; skips where mounting is not allowed."""
  os.makedirs(path, exist_ok=True)
  proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                        capture_output=True, text=True)
  if proc.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs to fill up here: {proc.stderr.strip()}")


def test_disk_full_at_save_time_is_a_clear_error_and_resumable(tmp_path, mnist5k_head):
  from msal_jax import loop

  ds = mnist5k_head(200, 50)
  disk = tmp_path / "disk"
  _tmpfs(disk, "8m")
  try:
    workdir = disk / "run"
    filler = disk / "filler"

    def fill_up(line):  # after round 1 is reported, the disk fills up
      if "round 1/" in line and not filler.exists():
        with open(filler, "wb", buffering=0) as f:  # unbuffered: nothing left to flush
          try:
            while True:
              f.write(b"\0" * 65536)
          except OSError:
            pass

    kwargs = dict(
        strategy="msal", seed=0, max_to_keep=None,
        al=loop.ActiveLearningConfig(initial=20, batch=10, budget=40),
        model=loop.ModelConfig(trunk_kwargs={"widths": (4,), "hidden": 8}),
        train=loop.TrainConfig(epochs=1, batch_size=16),
    )
    with pytest.raises(OSError, match=r"checkpoint of round (\d+) could not be written .*"
                                      r"no space left on device") as err:
      loop.run(ds, workdir=str(workdir), log=fill_up, **kwargs)
    failed = int(re.search(r"round (\d+)", str(err.value)).group(1))
    assert failed >= 1 and f"round {failed - 1} is intact" in str(err.value)
    ckpt = RoundCheckpointer(str(workdir / "checkpoints"), max_to_keep=None)
    assert ckpt.latest_step() == failed - 1
    assert ckpt.restore_state(failed - 1)["labeled"].sum() == 20 + 10 * failed
    ckpt.close()
    # Space again: the same call resumes and ends where an uninterrupted run ends.
    filler.unlink()
    resumed = loop.run(ds, workdir=str(workdir), log=lambda s: None, **kwargs)
    reference = loop.run(ds, workdir=str(tmp_path / "ref"), log=lambda s: None, **kwargs)
    assert resumed["accuracies"] == reference["accuracies"]
    assert _rounds(workdir) == _rounds(tmp_path / "ref")
  finally:
    subprocess.run(["umount", str(disk)], capture_output=True)


def test_config_json_lists_comma_typed_strategies_and_seeds(tmp_path):
  import ml_collections

  # --config.strategies=msal,msal_d --config.seeds=0,1 arrive as one string each.
  typed = ml_collections.ConfigDict({"strategies": ("msal,msal_d",), "seeds": "0,1"})
  assert experiment.prepare_workdir(typed, str(tmp_path)) is False
  with open(tmp_path / "config.json") as f:
    written = json.load(f)
  assert written["strategies"] == ["msal", "msal_d"] and written["seeds"] == [0, 1]
  # The same run typed as tuples resumes it (no config difference).
  spelled = ml_collections.ConfigDict({"strategies": ("msal", "msal_d"), "seeds": (0, 1)})
  assert experiment.prepare_workdir(spelled, str(tmp_path)) is True
  with pytest.raises(ValueError, match=r"differing fields: seeds"):
    experiment.prepare_workdir(ml_collections.ConfigDict(
        {"strategies": ("msal", "msal_d"), "seeds": (0, 2)}), str(tmp_path))


def test_checkpointers_in_threads_save_and_restore_their_own_steps(tmp_path):
  # Runs side by side (mesh.devices_per_run) save from threads of one process.
  # orbax 0.12 keys a save's background signals by one process-wide operation
  # id, so unserialised concurrent saves failed ("File exists ...
  # orbax-checkpoint-tmp"); every one here must succeed and restore exactly.
  import threading
  from types import SimpleNamespace

  import jax.numpy as jnp

  errors = []

  def work(k):
    try:
      directory = str(tmp_path / str(k))
      ckpt = RoundCheckpointer(directory, max_to_keep=None)
      for step in range(3):
        state = SimpleNamespace(params={"w": jnp.full((64,), 10 * k + step, jnp.float32)},
                                batch_stats={}, opt_state=(), step=jnp.int32(step))
        ckpt.save(step, state, np.arange(10) % (k + 2) == 0, {"round": step, "k": k})
      ckpt.close()
      ckpt = RoundCheckpointer(directory, max_to_keep=None)
      for step in range(3):
        got = ckpt.restore_state(step)
        np.testing.assert_array_equal(got["params"]["w"], np.full((64,), 10 * k + step))
        np.testing.assert_array_equal(got["labeled"], np.arange(10) % (k + 2) == 0)
        assert ckpt.restore_meta(step) == {"round": step, "k": k}
      ckpt.close()
    except Exception as e:  # noqa: BLE001 - reported below
      errors.append(f"{k}: {e!r}"[:300])

  threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert errors == []
