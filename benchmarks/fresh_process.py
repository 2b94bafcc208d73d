r"""How much a fresh Python process's allocator state changes in-memory selection times.

  python benchmarks/fresh_process.py                         # N = 10M, C = 10 and 100
  python benchmarks/fresh_process.py --sizes=1000000 --classes=10

glibc serves blocks above its mmap threshold (128 KiB at start) with fresh pages from
the kernel and returns them on free; each time it frees such a block smaller than 32 MiB it
raises the threshold to that size, and from then on keeps blocks below it. On this VM a
fresh page costs about 13 us (docs/benchmarks.md), so a jitted call whose XLA:CPU
temporaries are a few MiB pays for them on every call in a fresh process, and not once
the process has freed one larger block (as any numpy work does).

For each (N, C) and each score it starts a child process that times the same jitted
call (median of --repeats after a warm-up) three ways: first as it is ("fresh"), then
after freeing one numpy temporary of 10 MiB, then after one of 30 MiB. Scores:
``entropy`` (scoring.entropy of [N, C] logits, top 250 by selection.top_k_masked) and
``msal_d`` (selection.msal_d of [N, C-1] features, prototypes=None, b = 250, beta = 5).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = r"""
import statistics, sys, time
import jax, jax.numpy as jnp, numpy as np
from msal_jax import scoring, selection
n, c, what, repeats = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
x = jax.random.normal(jax.random.key(0), (n, c - (what == "msal_d")), jnp.float32) * 3
labeled = jnp.arange(n) % 100 == 0
if what == "msal_d":
  fn = jax.jit(lambda z, m: selection.msal_d(z, None, m, budget=250, beta=5))
else:
  fn = jax.jit(lambda z, m: selection.top_k_masked(scoring.entropy(z), ~m, 250))
def median_ms():
  jax.block_until_ready(fn(x, labeled))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(x, labeled))
    times.append(time.perf_counter() - t0)
  return statistics.median(times) * 1e3
cells = [median_ms()]
for mib in (10, 30):
  tmp = np.ones(mib << 20, np.uint8) + 1  # allocated and freed: glibc raises its threshold
  del tmp
  cells.append(median_ms())
print(" ".join(f"{t:.1f}" for t in cells))
"""


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--sizes", default="10000000")
  parser.add_argument("--classes", default="10,100")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"load average {os.getloadavg()[0]:.1f} at start; MALLOC_* in the environment: "
        f"{sorted(k for k in os.environ if k.startswith('MALLOC_')) or 'none'}", flush=True)
  print("|          N |   C | what    | fresh process | after a 10 MiB temporary | "
        "after a 30 MiB temporary |")
  print("|-----------:|----:|---------|--------------:|-------------------------:|"
        "-------------------------:|")
  for n in (int(s) for s in args.sizes.split(",")):
    for c in (int(s) for s in args.classes.split(",")):
      for what in ("entropy", "msal_d"):
        out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(c), what,
                              str(args.repeats)], check=True, capture_output=True, text=True)
        fresh, ten, big = out.stdout.split()
        print(f"| {n:10,d} | {c:3d} | {what:7s} | {fresh:>10s} ms | {ten:>21s} ms | "
              f"{big:>21s} ms |", flush=True)
  print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
  main()
