"""Peak memory of a command and every process it starts, sampled together.

``/usr/bin/time -v`` reports the largest single process; a test suite that
starts launcher subprocesses and multi-device workers holds several at once.
This script runs the command, sums the resident set size of the command's
whole process tree every ``--every`` seconds (from ``/proc``, Linux), and
prints the largest sum, the largest single process, and the wall time:

  python benchmarks/tree_memory.py -- pytest -q

Exit status: the command's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
  tree: dict[int, list[int]] = {}
  for name in os.listdir("/proc"):
    if not name.isdigit():
      continue
    try:
      with open(f"/proc/{name}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
      continue
    tree.setdefault(int(fields[1]), []).append(int(name))  # field 4: the parent's pid
  return tree


def _rss(pid: int) -> int:
  try:
    with open(f"/proc/{pid}/statm") as f:
      return int(f.read().split()[1]) * PAGE
  except OSError:
    return 0


def tree_rss(root: int) -> tuple[int, int]:
  """(sum, max) of the resident set sizes of ``root`` and all its descendants, in bytes."""
  tree, total, largest, todo = _children(), 0, 0, [root]
  while todo:
    pid = todo.pop()
    rss = _rss(pid)
    total, largest = total + rss, max(largest, rss)
    todo.extend(tree.get(pid, []))
  return total, largest


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--every", type=float, default=0.25, help="seconds between samples")
  parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command ...")
  args = parser.parse_args()
  command = args.command[1:] if args.command[:1] == ["--"] else args.command
  if not command:
    parser.error("give the command after --")
  start = time.perf_counter()
  proc = subprocess.Popen(command)
  peak_sum = peak_one = 0
  while proc.poll() is None:
    total, largest = tree_rss(proc.pid)
    peak_sum, peak_one = max(peak_sum, total), max(peak_one, largest)
    time.sleep(args.every)
  wall = time.perf_counter() - start
  load = os.getloadavg()[0]
  print(f"tree_memory: wall {wall:.0f} s, peak of the process tree {peak_sum / 2**30:.2f} GiB, "
        f"largest process {peak_one / 2**30:.2f} GiB, load average (1 min) at the end {load:.1f}",
        file=sys.stderr)
  return proc.returncode


if __name__ == "__main__":
  sys.exit(main())
