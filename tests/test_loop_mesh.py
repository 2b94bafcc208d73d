"""The loop over 8 devices (issue 18): same queries as one device, nothing recompiles.

``tests/mesh_loop_worker.py`` runs in a subprocess with 8 CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``); this process has one
device and makes the same runs for reference.
"""

import json
import os
import subprocess
import sys

import loop_fixtures
import pytest

from msal_jax import devices, loop

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def mesh_runs():
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} "
                       "--xla_force_host_platform_device_count=8".strip())
  proc = subprocess.run([sys.executable, os.path.join(HERE, "mesh_loop_worker.py")], env=env,
                        capture_output=True, text=True, timeout=900, cwd=os.path.dirname(HERE))
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(s for s in proc.stdout.splitlines() if s.startswith("RESULT "))
  return json.loads(line.removeprefix("RESULT "))


def test_the_worker_had_8_devices(mesh_runs):
  assert mesh_runs["devices"] == 8


# entropy on 8 devices: covered by ceal_entropy (its query) and the pinned runs.
@pytest.mark.parametrize("name", ["msal_d", "bald", "kcenter", "ceal_entropy"])
def test_8_devices_query_what_one_device_queries(mesh_runs, tiny, name):
  # Data-parallel training agrees with one device to float tolerance; on these
  # runs that is close enough that every query and accuracy is the same.
  kw = loop_fixtures._settings(loop, dropout=0.25 if name == "bald" else 0.0,
                               **({"ceal_delta": 2.2} if name.startswith("ceal") else {}))
  one = loop.run(tiny, strategy=name, seed=0, log=lambda s: None, **kw)
  got = mesh_runs["runs"][name]
  assert got["queried"] == [r["queried"] for r in one["rounds"]]
  assert got["accuracies"] == one["accuracies"]
  # Each program traced as often; a sharded selection is msal_jax.parallel's own jit.
  expected = {k: v for k, v in one["traces"].items()
              if not (k == "select" and devices.has_sharded_form(name))}
  assert got["traces"] == expected
  # No backend compilation after round 0: the counts at the end of rounds 0, 1, 2.
  assert len(set(got["compiles_at_round_end"])) == 1, got["compiles_at_round_end"]
  assert {"checkpoints", "curve.png", "rounds.jsonl", "summary.json"} <= set(got["files"])


@pytest.mark.parametrize("name", ["msal_d", "bald", "ceal_entropy"])
def test_a_streamed_pool_on_8_devices_is_the_in_memory_run(mesh_runs, name):
  # Issue 19 on the mesh: the pool memory-mapped and streamed in chunks split
  # over the 8 devices, the labeled store replicated for training. Every
  # result file (queries, accuracies, losses, error rates; msal_d's t-SNE
  # features, read back through the mesh step) is that of the in-memory run
  # on the same 8 devices; one pool step compiles instead of the pool-sized
  # eval / MC steps.
  got = json.loads(json.dumps(mesh_runs["streamed"][name]))
  expected = json.loads(json.dumps(mesh_runs["runs"][name]["result_files"]))
  traces = got["summary"].pop("traces")
  if name == "ceal_entropy":  # its pseudo test; a train step per size class of the store
    assert traces.pop("pseudo") == 1 and traces.pop("train_step") >= 2
    assert {r["num_pseudo"] for r in got["rounds"][1:]} != {0}  # it trained on some
    traces["train_step"] = 1
  assert traces == {"init": 1, "shuffle": 1, "train_step": 1, "eval_step": 1, "pool_step": 1}
  expected["summary"].pop("traces")
  assert got == expected
  if name == "msal_d":
    assert set(got["embeddings"]) == {"round_0.npz", "round_2.npz"}


def test_devices_1_is_the_one_device_path(mesh_runs):
  # devices=1 in the 8-device process: no mesh, the one-device programs. The
  # recorded fixture (a 1-device process) is matched in every query and
  # accuracy; XLA:CPU's client with 8 host devices splits its thread pool, which
  # can move a training loss in its last bits, so losses agree to 1e-6.
  with open(os.path.join(loop_fixtures.FIXTURES, "entropy.json")) as f:
    expected = json.load(f)
  got = mesh_runs["one_device_entropy"]
  assert got["summary"] == expected["summary"]
  for a, b in zip(got["rounds"], expected["rounds"], strict=True):
    a, b = dict(a), dict(b)  # the module's runs are shared by its tests: pop from copies
    assert a.pop("train_loss") == pytest.approx(b.pop("train_loss"), rel=1e-6)
    assert a == b


def test_runs_pinned_to_devices_in_threads(mesh_runs):
  # The grid's building block: a run given one device keeps its arrays there,
  # and two such runs in two threads give the files of the run made alone.
  # (Threads share XLA:CPU's thread pool, which may move a loss in its last bits.)
  alone = mesh_runs["one_device_entropy"]
  for k in ("3", "5"):
    got = mesh_runs["pinned"][k]
    assert "error" not in got, got["error"]
    assert got["device"] == int(k)
    assert got["files"]["summary"] == alone["summary"]
    for a, b in zip(got["files"]["rounds"], alone["rounds"], strict=True):
      a, b = dict(a), dict(b)
      assert a.pop("train_loss") == pytest.approx(b.pop("train_loss"), rel=1e-6)
      assert a == b


@pytest.fixture(scope="module")
def tiny(mnist5k_head):
  return mnist5k_head(300, 100, "tiny")


def test_run_mesh_resolves_the_setting():
  assert devices.run_mesh(None) is None  # this process: one CPU device
  assert devices.run_mesh(1) is None
  with pytest.raises(ValueError, match=r"mesh.devices must be in \[1, 1\]"):
    devices.run_mesh(2)
  with pytest.raises(ValueError, match="empty list"):
    devices.run_mesh([])


def test_which_strategies_have_a_sharded_form():
  assert all(devices.has_sharded_form(n) for n in
             ("random", "msal", "msal_d", "entropy_msal_d", "bald", "ceal_entropy", "var_ratio"))
  assert not any(devices.has_sharded_form(n) for n in ("kcenter", "kmeans", "badge", "dbal"))
