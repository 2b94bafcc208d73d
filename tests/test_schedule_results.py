"""docs/results.md's "paper's label schedule" tables are those of the committed result files.

The 42 runs' ``rounds.jsonl`` / ``summary.json`` are in docs/schedule_results/;
the AUBC / F-acc table and the paired MSAL-D differences in docs/results.md
must be what ``msal_jax.tables`` and ``experiments.paired`` compute from them.
"""

import os
import subprocess
import sys

import pytest

from msal_jax import report, tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "docs", "schedule_results")


def _doc() -> str:
  with open(os.path.join(ROOT, "docs", "results.md")) as f:
    return f.read()


@pytest.mark.parametrize("data", ["mnist", "fashion"])
def test_the_tables_are_computed_from_the_result_files(data):
  wd = report.load(os.path.join(RESULTS, data))
  assert {len(runs) for runs in wd.results.values()} == {3}  # 3 seeds of 7 strategies
  assert len(wd.results) == 7
  assert tables.markdown_table(wd.results) in _doc()


@pytest.mark.parametrize("data", ["mnist", "fashion"])
def test_the_paired_differences_are_computed_from_the_result_files(data):
  out = subprocess.run(
      [sys.executable, "-m", "experiments.paired", f"--workdir={os.path.join(RESULTS, data)}",
       "--a=msal_d", "--b=entropy,margin,msal,random"],
      capture_output=True, text=True, cwd=ROOT, check=True).stdout
  rows = [line for line in out.splitlines() if line.startswith("| msal_d - ")]
  assert len(rows) == 8
  doc = _doc()
  for row in rows:
    assert row in doc
