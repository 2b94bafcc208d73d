"""The selection benchmarks run end to end at a tiny size, their own checks included.

benchmarks/selection.py asserts that msal-jax, its streamed path, numpy and (when
installed) PyTorch select the same samples, and that the blocked top-k equals
lax.top_k; benchmarks/entropy_forms.py reports each form's difference from the
library's entropy. Both are documented in docs/benchmarks.md; this keeps them working.
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args):
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
                        cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_selection_benchmark_implementations_agree():
  out = _run("selection.py", "--sizes=3000", "--classes=10,100", "--repeats=1",
             "--top-k-blocks=16", "--no-torch", "--chunk=1024")
  rows = re.findall(r"^\s+3000\s+(\d+)\s+(\S+) \|", out, re.M)
  whats = ["msal_d", "msal_d/simplex", "msal_d/stream", "msal_d/stream/simplex", "entropy"]
  assert rows == [(c, w) for c in ("10", "100") for w in whats], out
  assert re.search(r"N =\s+3,000: lax.top_k .* L=16: ", out), out


def test_entropy_forms_benchmark():
  out = _run("entropy_forms.py", "--size=4000", "--classes=10", "--repeats=1")
  diffs = dict(re.findall(r"^\s*(entropy \([^)]*\)):.*from the library's (\S+)$", out, re.M))
  assert set(diffs) == {"entropy (library)", "entropy (online reduce)",
                        "entropy (shift by first logit)", "entropy (column max)",
                        "entropy (variadic add)", "entropy (stacked sums)"}, out
  assert float(diffs["entropy (library)"]) == 0.0
  assert float(diffs["entropy (column max)"]) == 0.0  # the same max, the same formula
  for form in ("online reduce", "variadic add", "stacked sums"):  # other summation orders
    assert float(diffs[f"entropy ({form})"]) < 1e-5
