"""The selection benchmarks run end to end at a tiny size, their own checks included.

benchmarks/selection.py asserts that msal-jax, its streamed path, numpy and (when
installed) PyTorch select the same samples, and that the blocked top-k equals
lax.top_k; benchmarks/entropy_forms.py reports each form's difference from the
library's entropy; benchmarks/kmeans.py compares msal-jax's k-means with
scikit-learn's (docs/fidelity.md); benchmarks/out_of_core.py streams a memory-mapped
pool under an enforced memory limit (one pool pass, or with --loop one round of
loop.run) and exits non-zero when that limit does not bite or when the streamed
selection differs from the in-memory one; benchmarks/devices.py times one round on one
device and on a mesh, and the grid side by side, and exits non-zero when the grid's runs
give other accuracies side by side than one after another. They are
documented in docs/benchmarks.md; this keeps them working.
"""

import json
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


def test_kmeans_benchmark_matches_sklearn():
  out = _run("kmeans.py", "--sizes=3000", "--seeds=1", "--budget=20")
  assert re.search(r"b = 20, .* n_init = 10, sklearn algorithm elkan", out), out
  rows = re.findall(r"^\| 3,000 \| (\d+) \| (\S+) \| (\S+) \| (\S+) \|", out, re.M)
  assert [r[0] for r in rows] == ["0"], out
  ours, ref, ratio = (float(v) for v in rows[0][1:])
  assert abs(ours / ref - ratio) < 1e-3, out  # the ratio is of the two inertias shown
  # The bound tests/test_clustering.py holds msal-jax's k-means to against KMeans(n_init=10).
  assert 0.9 < ratio <= 1.005, out
  mean = re.search(r"^mean inertia ratio (\S+) \(max (\S+)\)", out, re.M)
  assert mean and float(mean.group(1)) == float(mean.group(2)) == ratio, out


def test_out_of_core_benchmark(tmp_path):
  # The script itself exits non-zero when the limit is not enforced or when the
  # streamed selection differs from the in-memory one; _run asserts it exits 0.
  out = _run("out_of_core.py", "--gb=0.05", "--subset=5000", "--chunk=4000", "--repeats=1",
             f"--dir={tmp_path}")
  rows = int(0.05 * 10**9) // (32 * 32 * 3)
  assert f"pool {rows} x 32x32x3 uint8 = 0.05 GB, RLIMIT_DATA 1.0 GiB (enforced" in out, out
  assert re.search(r"^streamed pass: [\d.]+ s, \d+ images/s, peak RSS \d+ MB", out, re.M), out
  assert "in-memory pass (5000 rows, Trainer.predict + select)" in out, out
  assert re.search(r"^streamed / in-memory images/s: [\d.]+x$", out, re.M), out
  assert not list(tmp_path.iterdir())  # the pool file is removed (no --keep)


def test_out_of_core_loop_benchmark(tmp_path):
  # --loop: one query round of loop.run streamed from the file (in_memory_limit=0), then
  # the same round on the first --subset rows in memory, under the same enforced limit.
  out = _run("out_of_core.py", "--loop", "--gb=0.01", "--subset=1000", "--chunk=1000",
             "--batch=500", "--initial=100", "--query=50", "--epochs=1", "--test=200",
             "--strategies=entropy", f"--dir={tmp_path}")
  rows = int(0.01 * 10**9) // (32 * 32 * 3)
  assert f"pool {rows} x 32x32x3 uint8 = 0.01 GB, RLIMIT_DATA 1.0 GiB (enforced" in out, out
  secs = r"(?: / [\d.]+){2} s"
  for mode, num in (("streamed", rows), ("in-memory", 1000)):
    line = (rf"^entropy +{mode} {num} +\d+ \( *\d+ / *\d+\) MB"
            rf" +[\d.]+{secs} +[\d.]+{secs} +\d+ / \d+ img/s$")
    assert re.search(line, out, re.M), out
  assert re.search(r"^ru_maxrss of each run.s process: entropy streamed \d+ MB, "
                   r"entropy in-memory \d+ MB$", out, re.M), out
  assert re.search(r"^entropy: streamed / in-memory images/s of the pool pass: [\d.]+x "
                   r"\(round 0, query\), [\d.]+x \(round 1\)$", out, re.M), out
  assert not list(tmp_path.iterdir())  # the pool file is removed (no --keep)


def test_devices_benchmark():
  # One query round on 1 device and on a mesh of 2 forced CPU devices, and a grid of 2 runs
  # one after another and side by side; the script exits non-zero when the grid's runs give
  # other accuracies side by side than one after another.
  out = _run("devices.py", "--devices=2", "--runs=2", "--epochs=1", "--initial=20",
             "--batch=10")
  assert "2 device(s) in the mesh process (forced host devices sharing the CPU cores)" in out
  walls = dict(re.findall(r"^(one device|mesh of 2): +wall +([\d.]+) s \| round 1: query", out,
                          re.M))
  assert set(walls) == {"one device", "mesh of 2"}, out
  ratio = re.search(r"^mesh / one device \(time ratio, < 1 is faster\): wall ([\d.]+)x, query "
                    r"[\d.]+x, train [\d.]+x, eval [\d.]+x$", out, re.M)
  assert ratio and abs(float(ratio.group(1)) - float(walls["mesh of 2"])
                       / float(walls["one device"])) < 0.01, out
  seq = re.search(r"^grid of 2 runs one after another on 1 device: ([\d.]+) s$", out, re.M)
  side = re.search(r"^grid of 2 runs side by side on 2 devices \(devices_per_run=1\): ([\d.]+) s$",
                   out, re.M)
  both = re.search(r"^side by side / one after another: ([\d.]+)x", out, re.M)
  assert seq and side and both, out
  assert abs(float(both.group(1)) - float(side.group(1)) / float(seq.group(1))) < 0.01, out
  accs = re.search(r"^test accuracies of every run and round equal one after another and side "
                   r"by side: (\[.*\])$", out, re.M)
  assert accs and [len(a) for a in json.loads(accs.group(1))] == [2, 2], out  # 2 runs x 2 rounds
