"""One loop run per strategy over every device, in one process or as one of two (issue 18).

Started by tests/test_multihost_loop.py (never collected by pytest itself): the
device count has to be set in ``XLA_FLAGS`` before jax is imported.

  # one process, 8 devices:
  XLA_FLAGS=--xla_force_host_platform_device_count=8 \
      python tests/multihost_loop_worker.py --workdir=DIR
  # one of two processes of a jax.distributed run (4 devices each), one shared DIR:
  XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/multihost_loop_worker.py \
      --workdir=DIR --port=12345 --num_processes=2 --process_id=0

Each strategy of :data:`STRATEGIES` runs the tiny fixture run
(``loop_fixtures._settings``: 2 query rounds) into ``DIR/<strategy>``; the
process prints one ``RESULT`` line of JSON (its process index, device counts,
each run's queries and accuracies as :func:`msal_jax.loop.run` returned them, and
the files it opened for writing under ``DIR`` other than the checkpoints; on
process 0 also each run's result files, read back as ``loop_fixtures._files`` does).
With ``--again`` every run is made a second time into the same folders: each
is then resumed from its last checkpoint, finds itself finished, and rewrites
its result files from it.
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

STRATEGIES = ("msal_d",)  # the sharded MSAL-D selection; one strategy keeps the test short
# Also msal_d with the pool streamed from a memory-mapped .npy (issue 19): its
# runs go to DIR/msal_d_streamed and RESULT lists the row ranges it read per pass.
STREAMED = "msal_d_streamed"


def streamed_dataset(ds, folder: str):
  """``ds`` with its pool as a memory map of a .npy written under ``folder`` (this process's)."""
  import dataclasses

  import numpy as np

  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, f"pool_{jax.process_index()}.npy")
  np.save(path, ds.pool_images)
  return dataclasses.replace(ds, pool_images=np.load(path, mmap_mode="r"))


def record_ranges() -> list[list[int]]:
  """``[start, stop)`` of every range the memory-mapped pool reads in chunks, from now on."""
  from msal_jax import pool_source

  ranges, real = [], pool_source.NpyPool._range

  def _range(self, start, stop):
    ranges.append([int(start), int(stop)])
    return real(self, start, stop)

  pool_source.NpyPool._range = _range
  return ranges


def record_writes(workdir: str) -> list[str]:
  """The paths under ``workdir`` (not checkpoints/) this process opens to write, from now on."""
  written, root, real_open, real_replace = [], os.path.abspath(workdir), builtins.open, os.replace

  def note(path):
    path = os.path.abspath(os.fspath(path))
    if path.startswith(root + os.sep) and f"{os.sep}checkpoints{os.sep}" not in path:
      written.append(os.path.relpath(path, root))

  def open_(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
      note(file)
    return real_open(file, mode, *args, **kwargs)

  def replace(src, dst, *args, **kwargs):
    note(dst)
    return real_replace(src, dst, *args, **kwargs)

  builtins.open, os.replace = open_, replace
  return written


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--port", type=int)
  parser.add_argument("--num_processes", type=int, default=1)
  parser.add_argument("--process_id", type=int, default=0)
  parser.add_argument("--again", action="store_true")
  args = parser.parse_args()
  if args.num_processes > 1:
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{args.port}",
                               num_processes=args.num_processes, process_id=args.process_id,
                               initialization_timeout=60)
  import loop_fixtures

  from msal_jax import loop

  ds = loop_fixtures.dataset()
  out = {"process_index": jax.process_index(), "process_count": jax.process_count(),
         "devices": jax.device_count(), "local_devices": jax.local_device_count(), "runs": {}}
  streamed = streamed_dataset(ds, args.workdir.rstrip(os.sep) + "_pools")
  ranges = record_ranges()
  written = record_writes(args.workdir)
  for name in (*STRATEGIES, STREAMED) * (2 if args.again else 1):
    lines, workdir = [], os.path.join(args.workdir, name)
    extra = {"in_memory_limit": 0} if name == STREAMED else {}
    summary = loop.run(streamed if name == STREAMED else ds, strategy=name.split("_streamed")[0],
                       seed=0, workdir=workdir, log=lines.append,
                       **loop_fixtures._settings(loop), **extra)
    out["runs"].setdefault(name, []).append({
        "queried": [r["queried"] for r in summary["rounds"]],
        "accuracies": summary["accuracies"], "log": lines,
        # The files as this call left them (process 0 wrote them before it returned).
        "files": loop_fixtures._files(workdir) if jax.process_index() == 0 else None})
  out["written"] = sorted(set(written))
  out["ranges"] = ranges
  print("RESULT " + json.dumps(out), flush=True)
  if args.num_processes > 1:
    jax.distributed.shutdown()


if __name__ == "__main__":
  main()
