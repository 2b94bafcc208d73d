"""Sharded selection == single-device selection, on 8 CPU devices and across 2 processes.

The multi-device runs need ``XLA_FLAGS=--xla_force_host_platform_device_count``
before jax is imported, so they run in subprocesses (tests/multihost_worker.py);
this process computes the single-device answers with ``msal_jax.selection`` /
``strategies`` on its default single CPU device and compares index lists
exactly. Pools include sizes that 8 does not divide, a pool smaller than the
device count with ``budget > N``, exact ties (duplicated rows, rounded scores,
VarRatio's vote counts) and labeled samples.
"""

import functools
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from msal_jax import parallel, prototypes, scoring, selection, strategies

WORKER = os.path.join(os.path.dirname(__file__), "multihost_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pool(seed, n, num_classes, *, budget, beta, chunk_size, cases, frac_labeled=0.25):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, num_classes - 1)) * rng.uniform(0.2, 5.0, size=(n, 1))
  logits = rng.normal(size=(n, num_classes)) * 3
  if n > 40:  # exact ties: duplicated rows, at both ends of the pool
    z[[7, 19, n - 2]] = z[3]
    logits[[7, 19, n - 2]] = logits[3]
  return {
      "features": z.astype(np.float32),
      "logits": logits.astype(np.float32),
      "mc_logits": (rng.normal(size=(4, n, num_classes)) * 2).astype(np.float32),
      "prototypes": np.asarray(prototypes.simplex(num_classes)),
      "labeled": rng.random(n) < frac_labeled,
      "scores": np.round(rng.normal(size=n), 1).astype(np.float32),  # many ties
      "budget": np.int64(budget), "beta": np.float64(beta), "seed": np.int64(seed),
      "chunk_size": np.int64(chunk_size), "cases": np.array(cases),
  }


# Each case compiles its own program (seconds on a shared 2-core CPU): every
# kernel variant once, not every strategy. Strategy names run
# parallel.select; "stream_*" streaming with the mesh; top_k/bottom_k raw scores.
STRATEGIES = ["random", "msal", "ceal_msal", "msal_d", "entropy", "least_conf_msal_d",
              "var_ratio_mc_msal"]
POOLS = {
    # 203 = 8 * 25 + 3 rows: the last device holds padding; 101 = 4 * 25 + 1 per process.
    "odd": _pool(0, 203, 5, budget=9, beta=3.0, chunk_size=50,
                 cases=STRATEGIES + ["stream_msal_d", "stream_entropy", "top_k", "bottom_k"]),
    "even": _pool(1, 64, 4, budget=6, beta=2.0, chunk_size=16,
                  cases=["msal_d", "entropy", "stream_msal_d"], frac_labeled=0.5),
    # Fewer rows than devices and budget > N: -1 padding as on one device.
    "tiny": _pool(2, 5, 3, budget=7, beta=1.0, chunk_size=3,
                  cases=["msal_d", "msal", "random", "stream_msal_d"]),
    # 8 * 26,000 + 5 rows: each shard (and the first chunk's) is large enough for
    # the blocked top-k that recomputes its candidate rows' keys (n >= 4 k 64 for
    # MSAL-D's m = 100 candidates), with tied duplicated rows and tied scores.
    "large": _pool(3, 208_005, 10, budget=20, beta=5.0, chunk_size=205_000,
                   cases=["msal_d", "msal", "stream_msal_d", "top_k"]),
    # prototypes=None at C = 40: the structured simplex score (scoring.msal(z, None)).
    "simplex": _pool(4, 8 * 700 + 3, 40, budget=12, beta=3.0, chunk_size=2_000,
                     cases=["msal_simplex", "msal_d_simplex", "stream_msal_d_simplex"]),
}


@functools.cache
def _reference(tag, name):
  pool = POOLS[tag]
  labeled, budget, beta = pool["labeled"], int(pool["budget"]), float(pool["beta"])
  if name in ("msal_d_simplex", "stream_msal_d_simplex"):
    return selection.msal_d(pool["features"], None, labeled, budget=budget, beta=beta)
  if name == "msal_simplex":
    return selection.bottom_k_masked(scoring.msal(pool["features"], None), ~labeled, budget)
  if name in ("msal_d", "stream_msal_d"):
    return selection.msal_d(pool["features"], pool["prototypes"], labeled, budget=budget,
                            beta=beta)
  if name == "stream_entropy":
    return selection.top_k_masked(scoring.entropy(pool["logits"]), ~labeled, budget)
  if name == "top_k":
    return selection.top_k_masked(pool["scores"], ~labeled, budget)
  if name == "bottom_k":
    return selection.bottom_k_masked(pool["scores"], ~labeled, budget)
  outputs = strategies.PoolOutputs(logits=pool["logits"], features=pool["features"],
                                   prototypes=pool["prototypes"], mc_logits=pool["mc_logits"])
  return strategies.get(name).select(jax.random.PRNGKey(int(pool["seed"])), outputs, labeled,
                                     budget=budget, beta=beta)


def _write_pools(path):
  np.savez(path, **{f"{tag}/{k}": v for tag, pool in POOLS.items() for k, v in pool.items()})


def _env(devices):
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} " \
                     f"--xla_force_host_platform_device_count={devices}".strip()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
  return env


def _check(cases):
  assert cases, "the worker ran no case"
  for case, got in cases.items():
    tag, name = case.split("/")
    expected = _reference(tag, name).tolist()
    assert got == expected, f"{case}: sharded {got} != single-device {expected}"


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("parallel")
  _write_pools(tmp / "pools.npz")
  proc = subprocess.run(
      [sys.executable, WORKER, f"--data={tmp / 'pools.npz'}", f"--out={tmp / 'out.json'}"],
      env=_env(8), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads((tmp / "out.json").read_text())


def test_eight_devices_match_single_device(eight_devices):
  assert eight_devices["devices"] == 8 and eight_devices["process_count"] == 1
  cases = eight_devices["cases"]
  assert set(cases) == {f"{tag}/{c}" for tag, pool in POOLS.items() for c in pool["cases"]}
  _check(cases)


def test_eight_devices_explicit_mesh(eight_devices):
  # jax.make_mesh's default axis type (Explicit) as well as parallel.make_mesh's (Auto).
  assert "Explicit" in eight_devices["explicit_mesh_types"]
  assert "Auto" in eight_devices["mesh_types"]
  _check(eight_devices["explicit"])


def test_tiny_pool_pads_like_one_device(eight_devices):
  # 5 rows, ~1 labeled, budget 7: the unlabeled rows then -1, as on one device.
  got = eight_devices["cases"]["tiny/msal_d"]
  unlabeled = int((~POOLS["tiny"]["labeled"]).sum())
  assert got[unlabeled:] == [-1] * (7 - unlabeled) and min(got[:unlabeled]) >= 0


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_single_process(tmp_path):
  _write_pools(tmp_path / "pools.npz")
  port = _free_port()
  procs = [
      subprocess.Popen(
          [sys.executable, WORKER, f"--data={tmp_path / 'pools.npz'}",
           f"--out={tmp_path / f'out{i}.json'}", f"--port={port}", "--num_processes=2",
           f"--process_id={i}"],
          env=_env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)
  ]
  errors = []
  for i, proc in enumerate(procs):
    try:
      _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
      for p in procs:
        p.kill()
      pytest.fail(f"process {i} of the jax.distributed run did not finish in 300 s")
    if proc.returncode != 0:
      errors.append(f"process {i} exit {proc.returncode}:\n{err[-3000:]}")
  assert not errors, "\n".join(errors)
  results = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2)]
  for i, res in enumerate(results):
    assert (res["process_index"], res["process_count"]) == (i, 2)
    assert (res["devices"], res["local_devices"]) == (8, 4)
  assert results[0]["cases"] == results[1]["cases"]
  assert set(results[0]["cases"]) == {"odd/msal_d", "odd/entropy", "odd/random",
                                      "odd/stream_msal_d"}
  _check(results[0]["cases"])


# ---------------------------------------------------------------------------
# in this process (one device): the API around the kernel
# ---------------------------------------------------------------------------


def test_one_device_mesh_and_errors():
  mesh = parallel.make_mesh(jax.devices()[:1])
  pool = POOLS["odd"]
  got = parallel.msal_d(pool["features"], pool["prototypes"], pool["labeled"], budget=9,
                        beta=3.0, mesh=mesh)
  assert got.tolist() == _reference("odd", "msal_d").tolist()
  with pytest.raises(ValueError, match="must be boolean"):
    parallel.msal(pool["features"], pool["prototypes"], pool["labeled"].astype(int), budget=3,
                  mesh=mesh)
  with pytest.raises(ValueError, match="has shape"):
    parallel.uncertainty(pool["logits"][:10], pool["labeled"], score="entropy", budget=3,
                         mesh=mesh)
  with pytest.raises(ValueError, match="unknown score"):
    parallel.uncertainty(pool["logits"], pool["labeled"], score="nope", budget=3, mesh=mesh)
  with pytest.raises(ValueError, match="width 4 but prototypes have width 9"):
    parallel.msal(pool["features"], prototypes.simplex(10), pool["labeled"], budget=3,
                  mesh=mesh)
  outputs = strategies.PoolOutputs(logits=pool["logits"], features=pool["features"])
  for name in {"kcenter", "kmeans", "badge", "dbal"} & set(strategies.STRATEGIES):
    with pytest.raises(ValueError, match="no sharded version"):
      parallel.select(name, jax.random.PRNGKey(0), outputs, pool["labeled"], budget=3, beta=2,
                      mesh=mesh)
  with pytest.raises(ValueError, match="1-D"):
    parallel.shard_pool(np.zeros(3), object())


def test_pool_forward_compiles_once_and_trims_padding():
  mesh = parallel.make_mesh(jax.devices()[:1])
  traces = []

  def apply_fn(variables, x):
    traces.append(1)
    return x @ variables["w"], x.sum(axis=1)

  rng = np.random.default_rng(0)
  w = rng.normal(size=(3, 2)).astype(np.float32)
  for n in (10, 7):  # a short last batch is padded and dropped
    x = rng.normal(size=(n, 3)).astype(np.float32)
    out, total = parallel.pool_forward(apply_fn, {"w": w}, x, mesh=mesh, batch_size=4)
    np.testing.assert_allclose(out, x @ w, rtol=1e-6)
    np.testing.assert_allclose(total, x.sum(1), rtol=1e-6)
    assert out.shape == (n, 2)
  assert len(traces) == 1
