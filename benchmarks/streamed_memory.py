r"""Streamed ``loop.run`` calls one after another in one process: its data segment after each.

  python benchmarks/streamed_memory.py                 # 30,000 images, 4 runs per process
  python benchmarks/streamed_memory.py --rows=12000 --runs=3

Writes a uint8 ``[rows, 32, 32, 3]`` ``.npy`` pool of noise (30,000 rows: 92
MB), then starts two fresh processes (glibc's malloc state is per process),
each running msal_d, entropy, msal_d, ... streamed from the memory-mapped
pool (``in_memory_limit=0``, one query round, one epoch of the small CNN):
one with glibc's defaults, one with ``MALLOC_MMAP_THRESHOLD_`` set (131072
unless ``--threshold``), which fixes glibc's mmap threshold instead of letting
each large ``free`` raise it. Prints ``VmData`` (MiB) after each run, and
again after ``gc.collect()`` and glibc's ``malloc_trim(0)`` (what the process
holds once it gives back what it can), the growth from the first run to the
last, and the ratios of the growths. Run with ``MALLOC_ARENA_MAX=2`` unless
set, as ``benchmarks/out_of_core.py`` runs its children. The other side of
the trade, the pool pass's images/s, is ``benchmarks/out_of_core.py`` with
and without the same variable (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MALLOC_ARENA_MAX", "2")  # as benchmarks/out_of_core.py runs it

import numpy as np  # noqa: E402


def vm_data_mib() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmData:"):
        return int(line.split()[1]) / 1024
  raise RuntimeError("no VmData in /proc/self/status")


def child(args) -> None:
  import ctypes
  import gc

  from msal_jax import data, loop
  from msal_jax.settings import ActiveLearningConfig, ModelConfig, TrainConfig

  rng = np.random.default_rng(1)
  pool = np.load(args.path, mmap_mode="r")
  n = pool.shape[0]
  ds = data.Dataset(
      name="noise", pool_images=pool, pool_labels=(np.arange(n) % 10).astype(np.int32),
      test_images=rng.integers(0, 256, (500, 32, 32, 3), dtype=np.uint8),
      test_labels=(np.arange(500) % 10).astype(np.int32), num_classes=10,
      class_names=tuple(str(c) for c in range(10)), mean=(0.5,) * 3, std=(0.25,) * 3)
  after, trimmed = [], []
  for i in range(args.runs):
    loop.run(ds, strategy=("msal_d", "entropy")[i % 2], seed=0, in_memory_limit=0,
             log=lambda s: None, al=ActiveLearningConfig(initial=100, batch=100, budget=100),
             train=TrainConfig(epochs=1), model=ModelConfig(arch="small_cnn"))
    after.append(vm_data_mib())
    gc.collect()  # then what the process can give back: Python garbage, free heap pages
    ctypes.CDLL(None).malloc_trim(0)
    trimmed.append(vm_data_mib())
  print("RESULT " + json.dumps({"vm_data_mib": after, "trimmed_mib": trimmed}), flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rows", type=int, default=30_000, help="pool images")
  parser.add_argument("--runs", type=int, default=4, help="loop.run calls per process")
  parser.add_argument("--path", help=argparse.SUPPRESS)
  parser.add_argument("--threshold", type=int, default=131072,
                      help="MALLOC_MMAP_THRESHOLD_ of the second process (bytes)")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.runs < 2:
    parser.error("--runs must be at least 2 (the growth is from the first run to the last).")
  if args.child:
    return child(args)
  import subprocess
  import tempfile

  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "pool.npy")
    rng = np.random.default_rng(0)
    np.save(path, rng.integers(0, 256, (args.rows, 32, 32, 3), dtype=np.uint8))
    growth = {}
    fixed = f"threshold {args.threshold}"
    for mode in ("glibc default", fixed):
      cmd = [sys.executable, os.path.abspath(__file__), "--child", f"--path={path}",
             f"--runs={args.runs}"]
      env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
      if mode == fixed:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.threshold)
      proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
      if proc.returncode != 0:
        sys.exit(f"{mode}: the child failed:\n{proc.stderr[-3000:]}")
      line = next(s for s in proc.stdout.splitlines() if s.startswith("RESULT "))
      result = json.loads(line.removeprefix("RESULT "))
      for key, what in (("vm_data_mib", "after each run"), ("trimmed_mib", "then trimmed")):
        after = result[key]
        growth[mode, key] = after[-1] - after[0]
        print(f"{mode:18} VmData {what:14} (MiB): {', '.join(f'{v:.0f}' for v in after)}; "
              f"growth {growth[mode, key]:+.0f} MiB over {args.runs - 1} runs", flush=True)
  for key, what in (("vm_data_mib", "after each run"), ("trimmed_mib", "trimmed")):
    print(f"{args.rows} pool images, {what}: growth glibc default / {fixed}: "
          f"{growth['glibc default', key] / max(growth[fixed, key], 1.0):.1f}x")


if __name__ == "__main__":
  sys.exit(main())
