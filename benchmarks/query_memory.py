r"""Peak memory of `python -m msal_jax.query` on a pool larger than it should hold.

  python benchmarks/query_memory.py                      # 10,000,000 x 99 float32 (~4 GB)
  python benchmarks/query_memory.py --rows=1000000 --chunk_sizes=65536,1048576,default

Writes a random ``[rows, dim]`` float32 ``.npy`` (and a 1%-labeled mask) under
``--dir`` (default /tmp; the free space is checked first), runs the query command
line on it as a child process for each strategy and chunk size, and reads the
child's peak resident set size from ``os.wait4`` (``ru_maxrss``, the same
number ``/usr/bin/time -v`` reports; this process stays small, since a child's
``ru_maxrss`` starts from its parent's peak). For contrast it also streams the same file
through a ``np.load(mmap_mode="r")`` memory map (the pages a memory map has
touched count in the resident set). The files are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

MB = 1 << 20

_MEMMAP_CHILD = """
import sys, numpy as np
from msal_jax import prototypes, streaming
feats = np.load(sys.argv[1], mmap_mode="r")
labeled = np.load(sys.argv[2])
chunk = None if sys.argv[4] == "default" else int(sys.argv[4])
ids = streaming.msal_d(feats, np.asarray(prototypes.simplex(feats.shape[1] + 1)), labeled,
                       budget=int(sys.argv[3]), beta=5.0, chunk_size=chunk)
print(" ".join(str(int(i)) for i in np.asarray(ids)))
"""


_WRITE_CHILD = """
import sys, numpy as np
path, rows, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
rng = np.random.default_rng(0)
for start in range(0, rows, 1 << 20):
  stop = min(start + (1 << 20), rows)
  out[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
out.flush()
np.save(sys.argv[4], np.random.default_rng(1).random(rows) < 0.01)
"""


def _write_pool(path, mask, rows, dim):
  # In a child process: Linux carries a process's peak RSS over fork and exec
  # into its children's ru_maxrss, so this process must never grow itself.
  subprocess.run([sys.executable, "-c", _WRITE_CHILD, path, str(rows), str(dim), mask],
                 check=True)


def _run(cmd):
  """(wall seconds, peak RSS in MB, stdout, stderr) of a child process."""
  t0 = time.perf_counter()
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
  return wall, usage.ru_maxrss * 1024 / MB, stdout, stderr  # ru_maxrss: KiB on Linux


def main() -> None:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--rows", type=int, default=10_000_000)
  parser.add_argument("--dim", type=int, default=99, help="C-1 (99: 100 classes)")
  parser.add_argument("--budget", type=int, default=1000)
  parser.add_argument("--chunk_sizes", default="65536,default",
                      help="rows per chunk; 'default': the query's own (64 MiB of rows)")
  parser.add_argument("--strategies", default="msal_d,msal")
  parser.add_argument("--dir", default="/tmp")
  parser.add_argument("--no-memmap", action="store_true", help="skip the memory-map contrast")
  args = parser.parse_args()

  need = args.rows * args.dim * 4 + args.rows + 64 * MB
  free = shutil.disk_usage(args.dir).free
  print(f"{args.dir}: {free / 2**30:.1f} GiB free, the pool needs {need / 2**30:.1f} GiB")
  if free < need + 2**30:
    sys.exit(f"error: not enough free space in {args.dir} (keep 1 GiB spare).")
  folder = tempfile.mkdtemp(prefix="msal_query_memory_", dir=args.dir)
  feats = os.path.join(folder, "features.npy")
  mask = os.path.join(folder, "labeled.npy")
  try:
    t0 = time.perf_counter()
    _write_pool(feats, mask, args.rows, args.dim)
    size = os.path.getsize(feats) / MB
    print(f"wrote {feats}: {args.rows:,} x {args.dim} float32 = {size:,.0f} MB "
          f"({time.perf_counter() - t0:.1f} s)")
    print(f"{'how':>22} {'strategy':>8} {'chunk':>9} | {'wall s':>7} {'peak RSS MB':>11} "
          f"{'RSS/file':>8}")
    wall, rss, _, _ = _run([sys.executable, "-c", "import jax.numpy as jnp, msal_jax.query; "
                            "jnp.zeros(1).block_until_ready()"])
    print(f"{'python + jax, no data':>22} {'-':>8} {'-':>9} | {wall:>7.1f} {rss:>11,.0f} "
          f"{'-':>8}", flush=True)
    results = {}
    for chunk in args.chunk_sizes.split(","):
      chunk_flag = [] if chunk == "default" else [f"--chunk_size={int(chunk)}"]
      shown = chunk if chunk == "default" else f"{int(chunk):,}"
      for strategy in args.strategies.split(","):
        out = os.path.join(folder, f"ids_{strategy}_{chunk}.csv")
        wall, rss, _, _ = _run([sys.executable, "-m", "msal_jax.query", f"--features={feats}",
                                f"--labeled={mask}", f"--strategy={strategy}",
                                f"--budget={args.budget}", *chunk_flag,
                                "--noprogress", f"--out={out}"])
        results[(strategy, chunk)] = np.loadtxt(out, skiprows=1, dtype=np.int64).tolist()
        print(f"{'python -m msal_jax.query':>22} {strategy:>8} {shown:>9} | {wall:>7.1f} "
              f"{rss:>11,.0f} {rss / size:>8.3f}", flush=True)
      if not args.no_memmap:
        wall, rss, stdout, _ = _run([sys.executable, "-c", _MEMMAP_CHILD, feats, mask,
                                     str(args.budget), str(chunk)])
        same = [int(s) for s in stdout.split()] == results.get(("msal_d", chunk))
        print(f"{'streaming + np.memmap':>22} {'msal_d':>8} {shown:>9} | {wall:>7.1f} "
              f"{rss:>11,.0f} {rss / size:>8.3f}  (same ids as the query: {same})", flush=True)
  finally:
    shutil.rmtree(folder, ignore_errors=True)
    print(f"removed {folder}")


if __name__ == "__main__":
  main()
