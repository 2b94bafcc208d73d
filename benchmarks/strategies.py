r"""Query-step speed of every registered strategy, next to toolkit-style references.

  python benchmarks/strategies.py                            # N = 20k, 60k, 1M
  python benchmarks/strategies.py --sizes=20000 --repeats=3
  python benchmarks/strategies.py --quick                    # N = 20k; BADGE reference capped

Times ``STRATEGIES[name].select`` (jitted, compiled ahead of time) on a
synthetic pool already in memory: for a linear head, ReLU class-clustered
embeddings of width 512 and their logits (C = 10); for a max-separation head,
C-1 = 9 features near the simplex prototypes; for the MC-dropout strategies,
T = 10 passes of logits. ``--labeled`` samples are labeled, b = 250, beta = 5.

References, measured in the same run on the same data (as the PyTorch AL
toolkits write them, e.g. DeepAL+):
  * kcenter: greedy k-center over the full N x N distance matrix (numpy), only
    where the matrix fits in ``--max-ref-gb`` (skipped otherwise, and said so);
  * kmeans: ``sklearn.cluster.KMeans(n_clusters=b)`` on the unlabeled embeddings
    with the defaults of the scikit-learn DeepAL+ pins (1.0.2: ``n_init=10``,
    Elkan), then the member nearest each centre; the table also gives the
    inertia of msal-jax's clustering relative to sklearn's (benchmarks/kmeans.py
    compares the two clusterings alone);
  * badge: explicit [N, C*D] gradient embeddings (numpy, vectorised) and
    DeepAL+'s ``init_centers`` k-means++ (sklearn ``pairwise_distances``, a
    per-sample Python loop over the pool, ``scipy.stats.rv_discrete`` draws).
    ``--ref-steps`` caps its seeding steps (``--quick``: 25); a capped time is
    scaled to b steps (each step costs the same: one pass over all N samples),
    marked ``~`` and footnoted.
  * msal_d: its target is entropy's query time (within 10%).
References run only for N <= ``--ref-max-size``.

Threads: by default everything runs on one thread (XLA flags and
threadpoolctl), because this machine's 2 cores are shared and multi-threaded
BLAS spin-waits badly under load; ``--threads=0`` keeps the libraries'
defaults.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import time

import numpy as np


def _parse() -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawTextHelpFormatter
  )
  parser.add_argument("--sizes", default=None, help="pool sizes (default 20000,60000,1000000; "
                      "--quick: 20000)")
  parser.add_argument("--repeats", type=int, default=3, help="timed calls per strategy (median)")
  parser.add_argument("--large-repeats", type=int, default=1,
                      help="timed calls per strategy for N > 100,000")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--budget", type=int, default=250)
  parser.add_argument("--beta", type=float, default=5.0)
  parser.add_argument("--width", type=int, default=512)
  parser.add_argument("--classes", type=int, default=10)
  parser.add_argument("--labeled", type=int, default=500, help="labeled samples in the pool")
  parser.add_argument("--mc-passes", type=int, default=10)
  parser.add_argument("--strategies", default=None, help="comma-separated (default: all)")
  parser.add_argument("--ref-max-size", type=int, default=60_000)
  parser.add_argument("--max-ref-gb", type=float, default=6.0,
                      help="largest N x N float32 matrix the k-center reference may build")
  parser.add_argument("--ref-steps", type=int, default=None,
                      help="cap on the BADGE reference's seeding steps (default: b; --quick 25)")
  parser.add_argument("--threads", type=int, default=1, help="1: single-threaded; 0: defaults")
  args = parser.parse_args()
  if args.sizes is None:
    args.sizes = "20000" if args.quick else "20000,60000,1000000"
  if args.ref_steps is None:
    args.ref_steps = 25 if args.quick else args.budget
  return args


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads == 1:  # before the XLA backend starts
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                             " intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from msal_jax import clustering, prototypes, strategies  # noqa: E402

from _timing import median_seconds  # noqa: E402

# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def make_pool(n, args, seed=0):
  """Linear-head outputs (h, logits), max-sep outputs (z, logits), labeled mask."""
  rng = np.random.default_rng(seed)
  c, d = args.classes, args.width
  y = rng.integers(0, c, n)
  mu = rng.standard_normal((c, d), dtype=np.float32)
  h = rng.standard_normal((n, d), dtype=np.float32)
  h *= 0.8
  h += mu[y]
  np.maximum(h, 0.0, out=h)
  w = (mu.T / np.sqrt(d)).astype(np.float32)
  logits = h @ w
  logits -= logits.mean(1, keepdims=True)
  p = np.asarray(prototypes.simplex(c))
  z = (2.0 * p[y] + rng.standard_normal((n, c - 1), dtype=np.float32)).astype(np.float32)
  labeled = np.zeros(n, bool)
  labeled[rng.choice(n, args.labeled, replace=False)] = True
  return h, logits, z, p, labeled


def pool_outputs(pool, args):
  """PoolOutputs per (head, needs_mc), built once per pool size."""
  h, logits, z, p, _ = pool
  z_j, p_j = jnp.asarray(z), jnp.asarray(p)
  base = {
      "linear": strategies.PoolOutputs(logits=jnp.asarray(logits), features=jnp.asarray(h)),
      "max_sep": strategies.PoolOutputs(logits=z_j @ p_j.T, features=z_j, prototypes=p_j),
  }
  out = {}
  for head, o in base.items():
    noise = jax.random.normal(jax.random.PRNGKey(1), (args.mc_passes,) + o.logits.shape)
    out[head, False] = o
    out[head, True] = o.replace(mc_logits=o.logits[None] + noise)
  return out


# ---------------------------------------------------------------------------
# references (toolkit style)
# ---------------------------------------------------------------------------


def ref_kcenter(emb, labeled, n):
  """DeepAL+'s KCenterGreedy: the full distance matrix, then farthest-first."""
  dist_mat = np.matmul(emb, emb.transpose())
  sq = np.array(dist_mat.diagonal()).reshape(len(emb), 1)
  dist_mat *= -2
  dist_mat += sq
  dist_mat += sq.transpose()
  np.maximum(dist_mat, 0, out=dist_mat)
  dist_mat = np.sqrt(dist_mat)
  lb = labeled.copy()
  mat = dist_mat[~lb, :][:, lb]
  for _ in range(n):
    q_idx_ = mat.min(axis=1).argmax()
    q_idx = np.arange(len(emb))[~lb][q_idx_]
    lb[q_idx] = True
    mat = np.delete(mat, q_idx_, 0)
    mat = np.append(mat, dist_mat[~lb, q_idx][:, None], axis=1)
  return np.arange(len(emb))[labeled ^ lb]


def ref_kmeans(emb, labeled, n):
  """DeepAL+'s KMeansSampling: sklearn KMeans (1.0.2's defaults), the member nearest each centre."""
  from sklearn.cluster import KMeans

  idx = np.flatnonzero(~labeled)
  x = emb[idx]
  km = KMeans(n_clusters=n, n_init=10, algorithm="elkan", random_state=0).fit(x)
  cluster = km.predict(x)
  dis = ((x - km.cluster_centers_[cluster]) ** 2).sum(axis=1)
  q = np.array([np.arange(len(x))[cluster == i][dis[cluster == i].argmin()] for i in range(n)])
  return idx[q], km


def ref_badge(h, logits, labeled, n, steps):
  """Explicit gradient embeddings + DeepAL+'s init_centers (per-sample Python loop)."""
  from scipy import stats
  from sklearn.metrics import pairwise_distances

  idx = np.flatnonzero(~labeled)
  e = np.exp(logits[idx] - logits[idx].max(1, keepdims=True))
  p = e / e.sum(1, keepdims=True)
  a = p - np.eye(p.shape[1], dtype=np.float32)[p.argmax(1)]
  x = (a[:, :, None] * h[idx][:, None, :]).reshape(len(idx), -1)  # [N, C*D]
  ind = np.argmax([np.linalg.norm(s, 2) for s in x])
  mu = [x[ind]]
  inds_all = [ind]
  cent_inds = [0.0] * len(x)
  cent = 0
  d2 = None
  while len(mu) < min(n, steps + 1):
    if len(mu) == 1:
      d2 = pairwise_distances(x, mu).ravel().astype(float)
    else:
      new_d = pairwise_distances(x, [mu[-1]]).ravel().astype(float)
      for i in range(len(x)):
        if d2[i] > new_d[i]:
          cent_inds[i] = cent
          d2[i] = new_d[i]
    d2 = d2.ravel().astype(float)
    ddist = (d2**2) / sum(d2**2)
    custom = stats.rv_discrete(name="custm", values=(np.arange(len(d2)), ddist))
    ind = custom.rvs(size=1)[0]
    while ind in inds_all:
      ind = custom.rvs(size=1)[0]
    mu.append(x[ind])
    inds_all.append(ind)
    cent += 1
  return idx[np.array(inds_all)]


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------


def _once(fn):
  t0 = time.perf_counter()
  out = fn()
  return time.perf_counter() - t0, out


def _fmt(seconds):
  if seconds is None or math.isnan(seconds):
    return "-"
  return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def bench_size(n, names, args, rows, notes):
  pool = make_pool(n, args)
  h, logits, _, _, labeled_np = pool
  labeled = jnp.asarray(labeled_np)
  outputs = pool_outputs(pool, args)
  del pool
  # The host-to-device copies are asynchronous: finish them before any timing
  # (else the first strategy timed would pay for them).
  jax.block_until_ready(outputs)
  key = jax.random.PRNGKey(0)
  large = n > 100_000
  repeats = args.large_repeats if large else args.repeats
  jax_t = {}
  picked = {}
  for name in names:
    strat = strategies.STRATEGIES[name]
    out = outputs[strat.head, strat.needs_mc]
    compiled = jax.jit(strat.select, static_argnames=("budget", "beta")).lower(
        key, out, labeled, budget=args.budget, beta=args.beta).compile()
    run = lambda compiled=compiled, out=out: compiled(key, out, labeled).block_until_ready()
    jax_t[name] = median_seconds(run, repeats, warm=not large)
    picked[name] = np.asarray(run())
    print(f"  {n:>9} {name:<26} {_fmt(jax_t[name]):>10}", flush=True)
    assert len(set(picked[name].tolist())) == args.budget and not labeled_np[picked[name]].any()
  del outputs, out

  refs = {}
  if n <= args.ref_max_size:
    from threadpoolctl import threadpool_limits

    limit = threadpool_limits(1) if args.threads == 1 else None
    try:
      if "kcenter" in names:
        gb = 4 * n * n / 2**30
        if gb <= args.max_ref_gb:
          t, got = _once(lambda: ref_kcenter(h, labeled_np, args.budget))
          same = len(set(got.tolist()) & set(picked["kcenter"].tolist())) / args.budget
          refs["kcenter"] = (t, f"numpy full-matrix greedy (same picks: {same:.0%})")
        else:
          notes.append(f"kcenter reference skipped at N = {n:,}: its N x N float32 matrix "
                       f"needs {gb:.1f} GiB (> --max-ref-gb={args.max_ref_gb}; and the copies "
                       "it makes need as much again).")
      if "kmeans" in names:
        t, (_, km) = _once(lambda: ref_kmeans(h, labeled_np, args.budget))
        w = (~labeled_np).astype(np.float32)
        fit = jax.jit(clustering.kmeans_fit, static_argnames=("num",))
        _, _, d = fit(key, jnp.asarray(h), jnp.asarray(w), num=args.budget)
        ours = float(np.sum(w * np.asarray(d, np.float64)))
        refs["kmeans"] = (t, f"sklearn KMeans, {km.n_iter_} iterations (msal-jax inertia "
                             f"{ours / km.inertia_:.3f}x sklearn's)")
      if "badge" in names:
        steps = min(args.ref_steps, args.budget - 1)
        np.random.seed(0)
        t, _ = _once(lambda: ref_badge(h, logits, labeled_np, args.budget, steps))
        if steps < args.budget - 1:
          t = t * (args.budget - 1) / steps
          refs["badge"] = (t, f"~ DeepAL+ init_centers, {steps} of {args.budget - 1} steps "
                              "timed, scaled")
          notes.append(f"badge reference at N = {n:,}: {steps} of {args.budget - 1} seeding "
                       f"steps timed and the time scaled by {(args.budget - 1) / steps:.1f} "
                       "(every step makes one pass over all N embeddings).")
        else:
          refs["badge"] = (t, "DeepAL+ init_centers on explicit C*D embeddings")
    finally:
      if limit is not None:
        limit.unregister()
  elif any(k in names for k in ("kcenter", "kmeans", "badge")):
    notes.append(f"N = {n:,}: no references run (> --ref-max-size={args.ref_max_size:,}; "
                 "the k-center one would need a {:.0f} GiB matrix).".format(4 * n * n / 2**30))
  if "msal_d" in names and "entropy" in names:
    refs["msal_d"] = (jax_t["entropy"], "entropy's query (msal-jax)")

  for name in names:
    ref_t, ref_name = refs.get(name, (None, ""))
    ratio = "" if ref_t is None else f"{ref_t / jax_t[name]:.1f}x"
    if name == "msal_d" and ref_t is not None:
      ratio = f"{jax_t[name] / ref_t:.2f}x entropy's time"
    rows.append((name, strategies.STRATEGIES[name].head, n, _fmt(jax_t[name]), ref_name,
                 _fmt(ref_t), ratio))


def main() -> None:
  args = ARGS
  names = (args.strategies.split(",") if args.strategies else
           [n for n in strategies.STRATEGIES if not n.startswith("ceal_")])
  for name in names:
    strategies.get(name)
  print(f"date {datetime.date.today()}; {platform.node()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; jax {jax.__version__}; threads "
        f"{'1' if args.threads == 1 else 'library defaults'}; b = {args.budget}, beta = "
        f"{args.beta}, width {args.width}, C = {args.classes}, {args.labeled} labeled, "
        f"T = {args.mc_passes}", flush=True)
  rows, notes = [], []
  for n in (int(s) for s in args.sizes.split(",")):
    bench_size(n, names, args, rows, notes)
  print(f"\nload average at the end: {os.getloadavg()[0]:.1f}\n")
  print("| strategy | head | N | msal-jax | reference | reference time | speed-up |")
  print("|---|---|---:|---:|---|---:|---:|")
  for row in rows:
    print("| " + " | ".join(str(v) if not isinstance(v, int) else f"{v:,}" for v in row) + " |")
  for note in notes:
    print(f"\n- {note}")


if __name__ == "__main__":
  main()
