"""benchmarks/tree_memory.py sums the memory of a process and its children."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = "import numpy as np, time; b = np.ones(300 * 2**20 // 8); time.sleep(2)"
PARENT = ("import numpy as np, subprocess, sys; a = np.ones(200 * 2**20 // 8); "
          f"subprocess.run([sys.executable, '-c', {CHILD!r}])")


def test_peak_counts_parent_and_child_together():
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "tree_memory.py"), "--every=0.05", "--",
       sys.executable, "-c", PARENT], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  m = re.search(r"peak of the process tree ([\d.]+) GiB, largest process ([\d.]+) GiB",
                proc.stderr)
  total, largest = float(m.group(1)), float(m.group(2))
  # 200 MiB held by the parent while its child holds 300 MiB (plus interpreters).
  assert 0.49 <= total < 1.5 and 0.29 <= largest < total


def test_exit_status_is_the_commands():
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "tree_memory.py"), "--",
                         sys.executable, "-c", "raise SystemExit(3)"], capture_output=True)
  assert proc.returncode == 3
