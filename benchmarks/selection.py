r"""Pool selection speed: MSAL-D and entropy top-k vs numpy and PyTorch references.

  python benchmarks/selection.py                       # N = 1M and 10M, C = 10 and 100
  python benchmarks/selection.py --sizes=1000000 --classes=10 --repeats=5

For each (N, C) it times, on precomputed inputs already in memory:
  * msal_d: features [N, C-1] -> MSAL certainty -> beta*b pre-filter -> per-class
    round robin (msal_jax.selection.msal_d, jitted), against numpy
    (np.argpartition) and PyTorch CPU (torch.topk) versions of the same selection;
  * entropy: logits [N, C] -> entropy -> top b (msal_jax.selection.top_k_masked);
  * read-once: one pass over the feature array (jnp.sum, np.sum), the memory-bandwidth
    floor of any selection.
Prints medians and the ratios reference / msal-jax, and checks that the three
implementations select the same set.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from msal_jax import prototypes, scoring, selection


def _median_time(fn, repeats: int) -> float:
  fn()  # warm-up (compilation)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def _np_diversity(cand_feats, cand_idx, protos, budget):
  cos = cand_feats @ protos.T / np.maximum(np.linalg.norm(cand_feats, axis=1, keepdims=True), 1e-12)
  cls, close = cos.argmax(1), cos.max(1)
  order = np.lexsort((cand_idx, -close, cls))
  sorted_cls = cls[order]
  start = np.searchsorted(sorted_cls, sorted_cls, side="left")
  rank = np.empty(len(cls), np.int64)
  rank[order] = np.arange(len(cls)) - start
  return cand_idx[np.lexsort((cand_idx, -close, rank))[:budget]]


def numpy_msal_d(feats, protos, labeled, budget, beta):
  norms = np.linalg.norm(feats, axis=1)
  a = (feats @ protos.T).max(1) / np.maximum(norms, 1e-12)
  a[labeled] = np.inf
  m = min(math.ceil(beta * budget), len(a))
  cand = np.argpartition(a, m - 1)[:m]
  return _np_diversity(feats[cand], cand, protos, budget)


def torch_msal_d(torch, feats, protos, labeled, budget, beta):
  a = (feats @ protos.T).max(1).values / feats.norm(dim=1).clamp_min(1e-12)
  a[labeled] = float("inf")
  m = min(math.ceil(beta * budget), a.shape[0])
  cand = torch.topk(a, m, largest=False).indices
  return _np_diversity(feats[cand].numpy(), cand.numpy(), protos.numpy(), budget)


def numpy_entropy(logits, labeled, budget):
  z = logits - logits.max(1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(1, keepdims=True))
  ent = -(np.exp(logp) * logp).sum(1)
  ent[labeled] = -np.inf
  top = np.argpartition(-ent, budget - 1)[:budget]
  return top[np.argsort(-ent[top], kind="stable")]


def torch_entropy(torch, logits, labeled, budget):
  logp = torch.log_softmax(logits, dim=1)
  ent = -(logp.exp() * logp).sum(1)
  ent[labeled] = -float("inf")
  return torch.topk(ent, budget).indices.numpy()


def main() -> None:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawTextHelpFormatter
  )
  parser.add_argument("--sizes", default="1000000,10000000")
  parser.add_argument("--classes", default="10,100")
  parser.add_argument("--budget", type=int, default=250)
  parser.add_argument("--beta", type=float, default=5.0)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--no-torch", action="store_true")
  args = parser.parse_args()
  try:
    if args.no_torch:
      raise ImportError
    import torch

  except ImportError:
    torch = None
  torch_version = torch.__version__ if torch else "not installed"
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch_version}; "
        f"budget {args.budget}, beta {args.beta}")
  header = (f"{'N':>10} {'C':>4} {'what':>8} | {'msal-jax':>9} {'numpy':>9} {'torch':>9} "
            f"{'read-once':>9} | {'np/jax':>6} {'torch/jax':>9} {'jax/read':>8}")
  print(header)
  print("-" * len(header))
  msal_d = jax.jit(selection.msal_d, static_argnames=("budget", "beta"))
  entropy_top = jax.jit(
      lambda logits, labeled, k: selection.top_k_masked(scoring.entropy(logits), ~labeled, k),
      static_argnums=2,
  )
  read_once = jax.jit(jnp.sum)
  for n in (int(s) for s in args.sizes.split(",")):
    for c in (int(s) for s in args.classes.split(",")):
      _bench_msal_d(n, c, args, torch, msal_d, read_once)
      _bench_entropy(n, c, args, torch, entropy_top, read_once)


def _bench_msal_d(n, c, args, torch, msal_d, read_once):
  rng = np.random.default_rng(0)
  feats_np = rng.standard_normal((n, c - 1), dtype=np.float32)
  labeled_np = rng.random(n) < 0.01
  protos_np = np.array(prototypes.simplex(c))  # writable, for torch.from_numpy
  feats, labeled = jnp.asarray(feats_np), jnp.asarray(labeled_np)
  protos = jnp.asarray(protos_np)
  t_read = _median_time(lambda: read_once(feats).block_until_ready(), args.repeats)
  got = np.asarray(msal_d(feats, protos, labeled, budget=args.budget, beta=args.beta))
  ref = numpy_msal_d(feats_np, protos_np, labeled_np, args.budget, args.beta)
  assert set(got.tolist()) == set(ref.tolist()), "msal_d: numpy reference disagrees"
  t_jax = _median_time(
      lambda: msal_d(feats, protos, labeled, budget=args.budget, beta=args.beta)
      .block_until_ready(), args.repeats)
  t_np = _median_time(
      lambda: numpy_msal_d(feats_np, protos_np, labeled_np, args.budget, args.beta), args.repeats)
  t_torch = math.nan
  if torch is not None:
    tf, tp = torch.from_numpy(feats_np), torch.from_numpy(protos_np)
    tl = torch.from_numpy(labeled_np)
    picked = torch_msal_d(torch, tf, tp, tl, args.budget, args.beta)
    assert set(picked.tolist()) == set(ref.tolist()), "msal_d: torch reference disagrees"
    t_torch = _median_time(lambda: torch_msal_d(torch, tf, tp, tl, args.budget, args.beta),
                           args.repeats)
  _row(n, c, "msal_d", t_jax, t_np, t_torch, t_read)


def _bench_entropy(n, c, args, torch, entropy_top, read_once):
  rng = np.random.default_rng(1)
  logits_np = rng.standard_normal((n, c), dtype=np.float32) * 3
  labeled_np = rng.random(n) < 0.01
  logits, labeled = jnp.asarray(logits_np), jnp.asarray(labeled_np)
  got = np.asarray(entropy_top(logits, labeled, args.budget))
  ref = numpy_entropy(logits_np, labeled_np, args.budget)
  assert set(got.tolist()) == set(ref.tolist()), "entropy: numpy reference disagrees"
  t_read = _median_time(lambda: read_once(logits).block_until_ready(), args.repeats)
  t_jax = _median_time(lambda: entropy_top(logits, labeled, args.budget).block_until_ready(),
                       args.repeats)
  t_np = _median_time(lambda: numpy_entropy(logits_np, labeled_np, args.budget), args.repeats)
  t_torch = math.nan
  if torch is not None:
    tlog, tl = torch.from_numpy(logits_np), torch.from_numpy(labeled_np)
    assert set(torch_entropy(torch, tlog, tl, args.budget).tolist()) == set(ref.tolist())
    t_torch = _median_time(lambda: torch_entropy(torch, tlog, tl, args.budget), args.repeats)
  _row(n, c, "entropy", t_jax, t_np, t_torch, t_read)


def _row(n, c, what, t_jax, t_np, t_torch, t_read):
  print(f"{n:>10} {c:>4} {what:>8} | {t_jax * 1e3:>7.1f}ms {t_np * 1e3:>7.1f}ms "
        f"{t_torch * 1e3:>7.1f}ms {t_read * 1e3:>7.1f}ms | {t_np / t_jax:>6.2f} "
        f"{t_torch / t_jax:>9.2f} {t_jax / t_read:>8.2f}", flush=True)


if __name__ == "__main__":
  main()
