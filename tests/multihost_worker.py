"""Runs the sharded selections in a fresh process with several CPU devices.

Started by tests/test_parallel.py (never collected by pytest itself): the device
count has to be set in ``XLA_FLAGS`` before jax is imported, so the multi-device
runs live in their own processes and the rest of the suite keeps its defaults.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 \
      python tests/multihost_worker.py --data=pools.npz --out=out.json
  # one of two processes of a jax.distributed run (4 devices each):
  XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/multihost_worker.py \
      --data=pools.npz --out=out0.json --port=12345 --num_processes=2 --process_id=0

Reads the pools from ``--data`` (written by the test) and writes every case's
selected indices, by case name, to ``--out`` as JSON; the test compares them
with the single-device functions it runs itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

# Cases run in the multi-process mode (a subset: each compile costs seconds).
MULTIHOST_CASES = ("odd/msal_d", "odd/entropy", "odd/random", "odd/stream_msal_d")


def run_case(name, pool, mesh):
  from msal_jax import parallel, strategies, streaming

  labeled = pool["labeled"]
  budget, beta = int(pool["budget"]), float(pool["beta"])
  chunk = int(pool["chunk_size"])
  if name == "msal_d":
    return parallel.msal_d(pool["features"], pool["prototypes"], labeled, budget=budget,
                           beta=beta, mesh=mesh)
  if name == "msal_simplex":  # prototypes=None: the structured simplex score
    return parallel.msal(pool["features"], None, labeled, budget=budget, mesh=mesh)
  if name == "msal_d_simplex":
    return parallel.msal_d(pool["features"], None, labeled, budget=budget, beta=beta, mesh=mesh)
  if name == "stream_msal_d_simplex":
    return streaming.msal_d(pool["features"], None, labeled, budget=budget, beta=beta,
                            mesh=mesh, chunk_size=chunk)
  if name == "stream_msal_d":
    return streaming.msal_d(pool["features"], pool["prototypes"], labeled, budget=budget,
                            beta=beta, mesh=mesh, chunk_size=chunk)
  if name == "stream_entropy":
    return streaming.uncertainty(pool["logits"], labeled, score="entropy", budget=budget,
                                 mesh=mesh, chunk_size=chunk)
  if name == "top_k":
    return parallel.top_k(pool["scores"], ~labeled, budget, mesh=mesh)
  if name == "bottom_k":
    return parallel.bottom_k(pool["scores"], ~labeled, budget, mesh=mesh)
  outputs = strategies.PoolOutputs(
      logits=pool["logits"], features=pool["features"], prototypes=pool["prototypes"],
      mc_logits=pool["mc_logits"])
  key = jax.random.PRNGKey(int(pool["seed"]))
  return parallel.select(name, key, outputs, labeled, budget=budget, beta=beta, mesh=mesh)


def run_cases(pools, mesh, names=None):
  from msal_jax import parallel

  out = {}
  for tag, pool in pools.items():
    for name in (str(s) for s in pool["cases"]):
      if names is None or f"{tag}/{name}" in names:
        t0 = time.process_time()
        out[f"{tag}/{name}"] = parallel.to_host(run_case(name, pool, mesh)).tolist()
        print(f"{tag}/{name}: {time.process_time() - t0:.2f} s CPU", file=sys.stderr)
  return out


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--data", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--port", type=int)
  parser.add_argument("--num_processes", type=int, default=1)
  parser.add_argument("--process_id", type=int, default=0)
  args = parser.parse_args()
  if args.num_processes > 1:
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{args.port}",
                               num_processes=args.num_processes, process_id=args.process_id,
                               initialization_timeout=60)
  from msal_jax import parallel

  with np.load(args.data, allow_pickle=False) as data:
    flat = {k: data[k] for k in data.files}
  pools = {}
  for key, value in flat.items():
    tag, name = key.split("/", 1)
    pools.setdefault(tag, {})[name] = value
  mesh = parallel.make_mesh()
  result = {
      "process_index": jax.process_index(),
      "process_count": jax.process_count(),
      "devices": jax.device_count(),
      "local_devices": jax.local_device_count(),
      "mesh_types": str(mesh.axis_types),
      "cases": run_cases(pools, mesh, MULTIHOST_CASES if args.num_processes > 1 else None),
  }
  if args.num_processes == 1:
    # The same selections on a mesh with explicit axis types (jax.make_mesh's default).
    explicit = jax.make_mesh((jax.device_count(),), ("pool",))
    result["explicit_mesh_types"] = str(explicit.axis_types)
    result["explicit"] = run_cases(pools, explicit, ("odd/msal_d", "odd/stream_msal_d"))
  with open(args.out, "w") as f:
    json.dump(result, f)
  if args.num_processes > 1:
    jax.distributed.shutdown()


if __name__ == "__main__":
  sys.exit(main())
