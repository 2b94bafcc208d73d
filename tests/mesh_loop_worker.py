"""Runs the loop on 8 CPU devices and prints JSON (tests/test_loop_mesh.py starts it).

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/mesh_loop_worker.py

For each strategy a 2-query-round run over all 8 devices (the default), with
the backend compilations counted per round (``jax.monitoring``); the same runs
of :data:`STREAMED` with the pool as a memory-mapped ``.npy`` streamed in
chunks split over the 8 devices (issue 19); and the recorded ``entropy``
fixture case with ``devices=1``, which must be today's one-device path exactly.
"""

import dataclasses
import json
import os
import sys
import tempfile
import threading

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import loop_fixtures  # noqa: E402

from msal_jax import loop, pool_source, streamed_pool  # noqa: E402

STRATEGIES = ("msal_d", "bald", "kcenter", "ceal_entropy")
STREAMED = ("msal_d", "bald", "ceal_entropy")  # the t-SNE sample; MC dropout; pseudo-labels


def _kw(name):
  kw = loop_fixtures._settings(loop, dropout=0.25 if name == "bald" else 0.0,
                               **({"ceal_delta": 2.2} if name.startswith("ceal") else {}))
  if name == "msal_d":  # the t-SNE sample's features too
    kw.update(embedding_rounds=(0, 2), embedding_points=40)
  return kw


def streamed_runs(ds):
  """:data:`STREAMED` on 8 devices with the pool streamed from a memory map: their files."""
  out = {}
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "pool.npy")
    np.save(path, np.asarray(ds.pool_images))
    mapped = dataclasses.replace(ds, pool_images=np.load(path, mmap_mode="r"))
    streamed_pool.CHUNK_BATCHES = 2  # 2 batches: one chunk of 8 x 64 rows (the last padded)
    for name in STREAMED:
      workdir = os.path.join(tmp, name)
      loop.run(mapped, strategy=name, seed=0, workdir=workdir, log=lambda s: None,
               in_memory_limit=0, **_kw(name))
      out[name] = loop_fixtures._files(workdir)
  assert pool_source.IN_MEMORY_LIMIT_BYTES > 0  # the in-memory runs were not streamed
  return out


def main() -> None:
  # Every executable made: compiled, or loaded from the persistent compilation
  # cache that the test suite shares with its subprocesses (tests/conftest.py).
  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda name, secs, **kw: compiles.append(1)
      if name == "/jax/core/compile/backend_compile_duration" else None)
  jax.monitoring.register_event_listener(
      lambda name, **kw: compiles.append(1)
      if name == "/jax/compilation_cache/cache_hits" else None)
  ds = loop_fixtures.dataset()
  out = {"devices": jax.device_count(), "runs": {}}
  for name in STRATEGIES:
    per_round = []

    def log(line, per_round=per_round):
      if " round " in line and "/" in line.split(" round ")[1].split()[0]:
        per_round.append(len(compiles))

    with tempfile.TemporaryDirectory() as tmp:
      summary = loop.run(ds, strategy=name, seed=0, workdir=tmp, log=log, **_kw(name))
      files = sorted(os.listdir(tmp))
      result_files = loop_fixtures._files(tmp)
    out["runs"][name] = {
        "compiles_at_round_end": per_round, "files": files, "result_files": result_files,
        "queried": [r["queried"] for r in summary["rounds"]],
        "accuracies": summary["accuracies"], "traces": summary["traces"],
    }
  out["streamed"] = streamed_runs(ds)
  with tempfile.TemporaryDirectory() as tmp:
    loop.run(ds, strategy="entropy", seed=0, workdir=tmp, log=lambda s: None, devices=1,
             **loop_fixtures._settings(loop))
    out["one_device_entropy"] = loop_fixtures._files(tmp)
  # Two runs at once, each in its own thread pinned to its own device.
  results = {}

  def pinned(k):
    try:
      with tempfile.TemporaryDirectory() as tmp:
        summary = loop.run(ds, strategy="entropy", seed=0, workdir=tmp, log=lambda s: None,
                           devices=[jax.devices()[k]], **loop_fixtures._settings(loop))
        leaf = jax.tree.leaves(summary["variables"]["params"])[0]
        results[k] = {"files": loop_fixtures._files(tmp), "device": leaf.device.id}
    except Exception as e:  # noqa: BLE001 - a thread's error goes into the result
      results[k] = {"error": repr(e)[:1000]}

  threads = [threading.Thread(target=pinned, args=(k,)) for k in (3, 5)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  out["pinned"] = {str(k): v for k, v in results.items()}
  print("RESULT " + json.dumps(out))


if __name__ == "__main__":
  main()
