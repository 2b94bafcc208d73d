"""README.md's "Use your own model and data" example runs as written."""

import json
import os
import re
import subprocess
import sys

import pytest

from msal_jax import metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example() -> str:
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
  m = re.search(r"<!-- readme-example -->\n```python\n(.*?)```\n<!-- /readme-example -->",
                text, re.S)
  assert m, "README.md lost its marked example"
  return m.group(1)


def test_readme_example_runs_as_written(tmp_path):
  (tmp_path / "mine.py").write_text(_example())
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "mine.py"], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / "runs" / "squares" / "summary.json") as f:
    summary = json.load(f)
  accs = summary["accuracies"]
  assert len(accs) == 4 and all(0.0 <= a <= 1.0 for a in accs)
  assert summary["aubc"] == pytest.approx(metrics.aubc(accs, budget=60, batch=20), abs=1e-12)
  assert f"accuracy per round: {[round(a, 3) for a in accs]}" in proc.stdout
  with open(tmp_path / "runs" / "squares" / "rounds.jsonl") as f:
    rounds = [json.loads(line) for line in f]
  assert [r["num_labeled"] for r in rounds] == [20, 40, 60, 80]
  assert (tmp_path / "runs" / "squares" / "results.md").exists()
