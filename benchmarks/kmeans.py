r"""k-means: msal-jax's clustering against scikit-learn's as DeepAL+ calls it.

  python benchmarks/kmeans.py                        # N = 20000, 3 seeds
  python benchmarks/kmeans.py --sizes=20000,60000 --seeds=1

DeepAL+'s KMeansSampling fits ``sklearn.cluster.KMeans(n_clusters=b)`` on the
unlabeled embeddings; in the scikit-learn it pins (1.0.2) that means
``n_init=10``, greedy k-means++ and ``algorithm="auto"`` = Elkan, to
convergence (``tol=1e-4``, at most 300 iterations). The reference here is
exactly that, spelled out (newer scikit-learn defaults to ``n_init="auto"``).
msal-jax's side is :func:`msal_jax.clustering.kmeans_fit` on the whole pool
with the labeled rows at weight 0 (what the ``kmeans`` strategy runs),
compiled ahead of time. Per seed ``s``: sklearn with ``random_state=s``,
msal-jax with ``PRNGKey(s)``; the table gives each inertia over the unlabeled
rows, their ratio, and both times (msal-jax: median of ``--repeats`` calls).

Data: the pool of ``benchmarks/strategies.py`` (ReLU class-clustered
embeddings, width 512, C = 10, 500 labeled), b = 250. Single-threaded by
default (XLA flags, threadpoolctl), as benchmarks/strategies.py.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time


def _parse() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--sizes", default="20000", help="pool sizes, comma-separated")
  parser.add_argument("--seeds", type=int, default=3, help="seeds per size")
  parser.add_argument("--repeats", type=int, default=1, help="timed msal-jax calls (median)")
  parser.add_argument("--budget", type=int, default=250)
  parser.add_argument("--width", type=int, default=512)
  parser.add_argument("--classes", type=int, default=10)
  parser.add_argument("--labeled", type=int, default=500)
  parser.add_argument("--n-init", type=int, default=10, help="restarts, both sides")
  parser.add_argument("--algorithm", default="elkan", help="sklearn's (1.0.2's auto = elkan)")
  parser.add_argument("--threads", type=int, default=1, help="1: single-threaded; 0: defaults")
  return parser.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads == 1:  # before the XLA backend starts
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                             " intra_op_parallelism_threads=1")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from strategies import make_pool  # noqa: E402  (benchmarks/strategies.py)

from msal_jax import clustering  # noqa: E402

from _timing import median_seconds  # noqa: E402


def sklearn_kmeans(x: np.ndarray, k: int, seed: int, n_init: int, algorithm: str):
  """DeepAL+'s ``KMeans(n_clusters=k)`` with scikit-learn 1.0.2's defaults spelled out."""
  from sklearn.cluster import KMeans

  return KMeans(n_clusters=k, n_init=n_init, init="k-means++", max_iter=300, tol=1e-4,
                algorithm=algorithm, random_state=seed).fit(x)


def bench_size(n: int, args, rows: list) -> None:
  from threadpoolctl import threadpool_limits

  h, _, _, _, labeled = make_pool(n, args)
  w = (~labeled).astype(np.float32)
  fit = jax.jit(clustering.kmeans_fit, static_argnames=("num", "n_init"))
  h_j, w_j = jax.device_put(h), jax.device_put(w)
  for seed in range(args.seeds):
    key = jax.random.PRNGKey(seed)
    compiled = fit.lower(key, h_j, w_j, num=args.budget, n_init=args.n_init).compile()
    run = lambda compiled=compiled, key=key: jax.block_until_ready(compiled(key, h_j, w_j))
    ours_t = median_seconds(run, args.repeats, warm=False)
    ours = float(np.sum(w * np.asarray(run()[2], np.float64)))
    limit = threadpool_limits(1) if args.threads == 1 else None
    try:
      t0 = time.perf_counter()
      km = sklearn_kmeans(h[~labeled], args.budget, seed, args.n_init, args.algorithm)
      ref_t = time.perf_counter() - t0
    finally:
      if limit is not None:
        limit.unregister()
    rows.append((n, seed, ours, km.inertia_, ours / km.inertia_, ours_t, ref_t, km.n_iter_))
    print(f"  N={n} seed={seed}: inertia ratio {ours / km.inertia_:.4f}, msal-jax {ours_t:.2f} s,"
          f" sklearn {ref_t:.2f} s ({km.n_iter_} iterations in its best run)", flush=True)


def main() -> None:
  import sklearn

  args = ARGS
  print(f"date {datetime.date.today()}; {platform.node()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; jax {jax.__version__}, scikit-learn {sklearn.__version__}; "
        f"threads {'1' if args.threads == 1 else 'library defaults'}; b = {args.budget}, width "
        f"{args.width}, C = {args.classes}, {args.labeled} labeled, n_init = {args.n_init}, "
        f"sklearn algorithm {args.algorithm}", flush=True)
  rows = []
  for n in (int(s) for s in args.sizes.split(",")):
    bench_size(n, args, rows)
  print(f"\nload average at the end: {os.getloadavg()[0]:.1f}\n")
  print("| N | seed | msal-jax inertia | sklearn inertia | ratio | msal-jax | sklearn | speed-up |")
  print("|---:|---:|---:|---:|---:|---:|---:|---:|")
  for n, seed, ours, ref, ratio, ours_t, ref_t, _ in rows:
    print(f"| {n:,} | {seed} | {ours:.6g} | {ref:.6g} | {ratio:.4f} | {ours_t:.2f} s | "
          f"{ref_t:.2f} s | {ref_t / ours_t:.1f}x |")
  ratios = [r[4] for r in rows]
  print(f"\nmean inertia ratio {np.mean(ratios):.4f} (max {np.max(ratios):.4f}); mean speed-up "
        f"{np.mean([r[6] / r[5] for r in rows]):.1f}x")


if __name__ == "__main__":
  main()
