r"""Pool selection speed: MSAL-D and entropy top-k vs numpy and PyTorch references.

  python benchmarks/selection.py                       # N = 1M and 10M, C = 10 and 100
  python benchmarks/selection.py --sizes=1000000 --classes=10 --repeats=5

For each (N, C) it times, on precomputed inputs already in memory (float32):
  * msal_d: features [N, C-1] -> MSAL certainty -> beta*b pre-filter -> per-class
    round robin (msal_jax.selection.msal_d, jitted), against numpy
    (np.argpartition) and PyTorch CPU (torch.topk) versions of the same selection;
  * msal_d/simplex: the same with prototypes=None (the same simplex, scored through
    its structure in O(C) per row instead of the [N, C-1] x [C-1, C] product);
  * msal_d/stream: the same selection through msal_jax.streaming.msal_d from the host
    array in chunks of --chunk rows (includes the host-to-device copies), against the
    same references; msal_d/stream/simplex: the same with prototypes=None (the path of
    `python -m msal_jax.query` when no prototypes file is given);
  * entropy: logits [N, C] -> entropy -> top b (msal_jax.selection.top_k_masked);
  * read-once: one pass over the input array (jitted jnp.sum), the memory-bandwidth
    floor of any selection that reads its input;
  * score-only: the score alone (scoring.msal's certainty, scoring.entropy), jitted:
    what is left of each msal-jax time is the selection (and, at C = 100, MSAL's
    [N, C-1] x [C-1, C] product is compute-bound, above read-once);
  * floor: the one step each score cannot avoid, alone, jitted: for MSAL-D one row
    reduction of the features (jnp.sum(x, axis=1), the reduction in the row norm);
    for entropy one exp of every logit, summed flat (jnp.sum(jnp.exp(x)), no row
    structure at all). On this machine's CPU both are above read-once (floor/read);
    docs/benchmarks.md says what that implies for the read-once target;
  * top-k (after the table): lax.top_k of the beta*b largest of N float32 keys against
    msal_jax.selection.top_k (blocked, exact) with each --top-k-blocks row length.
Prints medians over --repeats runs after a warm-up, the ratios reference / msal-jax and
msal-jax / read-once, and checks that the three implementations select the same set.
The references are written to be reasonably fast (one matmul, argpartition/topk of the
candidates only, in-place arithmetic where it saves a pass).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform

import jax
import jax.numpy as jnp
import numpy as np

from msal_jax import prototypes, scoring, selection, streaming

from _timing import median_seconds


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
  norms = np.sqrt(np.einsum("ij,ij->i", feats, feats))
  a = (feats @ protos.T).max(1)
  a /= np.maximum(norms, 1e-12)
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
  e = np.exp(z)
  s = e.sum(1)
  e *= z
  ent = np.log(s) - e.sum(1) / s  # -sum p log p with p = e / s
  ent[labeled] = -np.inf
  top = np.argpartition(-ent, budget - 1)[:budget]
  return top[np.argsort(-ent[top], kind="stable")]


def torch_entropy(torch, logits, labeled, budget):
  logp = torch.log_softmax(logits, dim=1)
  p = logp.exp()
  p.mul_(logp)
  ent = -p.sum(1)
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
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--chunk", type=int, default=1 << 18, help="rows per streamed chunk")
  parser.add_argument("--no-torch", action="store_true")
  parser.add_argument("--top-k-blocks", default="32,64,128,256,512",
                      help="row lengths for the top-k table (empty: skip it)")
  args = parser.parse_args()
  try:
    if args.no_torch:
      raise ImportError
    import torch

  except ImportError:
    torch = None
  torch_version = f"{torch.__version__} ({torch.get_num_threads()} threads)" if torch else \
      "not installed"
  malloc = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                    if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES") or "default"
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}); numpy {np.__version__}; "
        f"torch {torch_version}; budget {args.budget}, beta {args.beta}; "
        f"medians of {args.repeats}; malloc settings: {malloc}; "
        f"load average {os.getloadavg()[0]:.1f} at start")
  header = (f"{'N':>10} {'C':>4} {'what':>21} | {'msal-jax':>9} {'numpy':>9} {'torch':>9} "
            f"{'read-once':>9} {'score-only':>10} {'floor':>9} | {'np/jax':>6} {'torch/jax':>9} "
            f"{'jax/read':>8} {'floor/read':>10}")
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
      gc.collect()
      _bench_entropy(n, c, args, torch, entropy_top, read_once)
      gc.collect()
  blocks = [int(b) for b in args.top_k_blocks.split(",") if b]
  if blocks:
    k = math.ceil(args.beta * args.budget)
    print(f"\ntop-k of k = {k} among N float32 keys: lax.top_k vs selection.top_k(block=L)")
    for n in (int(s) for s in args.sizes.split(",")):
      _bench_top_k(n, k, blocks, args.repeats)
  print(f"load average {os.getloadavg()[0]:.1f} at the end")


def _bench_top_k(n, k, blocks, repeats):
  keys = jnp.asarray(np.random.default_rng(2).standard_normal(n, dtype=np.float32))
  direct = jax.jit(lambda x: jax.lax.top_k(x, k)[1])
  want = np.asarray(direct(keys))
  t_direct = median_seconds(lambda: direct(keys).block_until_ready(), repeats)
  cells = [f"N = {n:>10,}: lax.top_k {t_direct * 1e3:7.1f} ms"]
  for b in blocks:
    fn = jax.jit(lambda x, b=b: selection.top_k(x, k, block=b)[1])
    assert np.asarray(fn(keys)).tolist() == want.tolist(), f"top_k(block={b}) != lax.top_k"
    t = median_seconds(lambda fn=fn: fn(keys).block_until_ready(), repeats)
    cells.append(f"L={b}: {t * 1e3:.1f} ms ({t_direct / t:.1f}x)")
  print("  ".join(cells), flush=True)


def _time_jax(fn, host_args, read_once, score, floor, repeats):
  """(result, median times of fn, of reading the first array once, of its score alone,
  of the score's floor on the first array)."""
  dev = [jnp.asarray(x) for x in host_args]
  t_read = median_seconds(lambda: read_once(dev[0]).block_until_ready(), repeats)
  t_score = median_seconds(lambda: score(*dev[:2]).block_until_ready(), repeats)
  t_floor = (math.nan if floor is None
             else median_seconds(lambda: floor(dev[0]).block_until_ready(), repeats))
  got = np.asarray(fn(*dev))
  t = median_seconds(lambda: fn(*dev).block_until_ready(), repeats)
  return got, t, t_read, t_score, t_floor


def _bench_msal_d(n, c, args, torch, msal_d, read_once):
  rng = np.random.default_rng(0)
  feats_np = rng.standard_normal((n, c - 1), dtype=np.float32)
  labeled_np = rng.random(n) < 0.01
  protos_np = np.array(prototypes.simplex(c))  # writable, for torch.from_numpy
  ref = numpy_msal_d(feats_np, protos_np, labeled_np, args.budget, args.beta)
  # msal-jax first; its device copy is freed (out of scope) before the references run.
  got, t_jax, t_read, t_score, t_floor = _time_jax(
      lambda f, p, lab: msal_d(f, p, lab, budget=args.budget, beta=args.beta),
      (feats_np, protos_np, labeled_np), read_once, _MSAL_SCORE, _ROW_SUM, args.repeats)
  assert set(got.tolist()) == set(ref.tolist()), "msal_d: numpy reference disagrees"
  # prototypes=None: the same simplex, scored through its structure in O(C) per row.
  got_s, t_simplex, _, t_score_s, _ = _time_jax(
      lambda f, lab: msal_d(f, None, lab, budget=args.budget, beta=args.beta),
      (feats_np, labeled_np), read_once, lambda f, _: _MSAL_SIMPLEX(f), None, args.repeats)
  assert set(got_s.tolist()) == set(ref.tolist()), "msal_d(prototypes=None) disagrees"
  stream = lambda: streaming.msal_d(feats_np, protos_np, labeled_np, budget=args.budget,
                                    beta=args.beta, chunk_size=min(args.chunk, n))
  assert np.asarray(stream()).tolist() == got.tolist(), "msal_d: streamed != in memory"
  t_stream = median_seconds(lambda: stream().block_until_ready(), args.repeats)
  stream_s = lambda: streaming.msal_d(feats_np, None, labeled_np, budget=args.budget,
                                      beta=args.beta, chunk_size=min(args.chunk, n))
  assert np.asarray(stream_s()).tolist() == got_s.tolist(), "msal_d(None): streamed != in memory"
  t_stream_s = median_seconds(lambda: stream_s().block_until_ready(), args.repeats)
  t_np = median_seconds(
      lambda: numpy_msal_d(feats_np, protos_np, labeled_np, args.budget, args.beta), args.repeats)
  t_torch = math.nan
  if torch is not None:
    tf, tp = torch.from_numpy(feats_np), torch.from_numpy(protos_np)
    tl = torch.from_numpy(labeled_np)
    picked = torch_msal_d(torch, tf, tp, tl, args.budget, args.beta)
    assert set(picked.tolist()) == set(ref.tolist()), "msal_d: torch reference disagrees"
    t_torch = median_seconds(lambda: torch_msal_d(torch, tf, tp, tl, args.budget, args.beta),
                           args.repeats)
  _row(n, c, "msal_d", t_jax, t_np, t_torch, t_read, t_score, t_floor)
  _row(n, c, "msal_d/simplex", t_simplex, t_np, t_torch, t_read, t_score_s, t_floor)
  _row(n, c, "msal_d/stream", t_stream, t_np, t_torch, t_read, t_score, t_floor)
  _row(n, c, "msal_d/stream/simplex", t_stream_s, t_np, t_torch, t_read, t_score_s, t_floor)


def _bench_entropy(n, c, args, torch, entropy_top, read_once):
  rng = np.random.default_rng(1)
  logits_np = rng.standard_normal((n, c), dtype=np.float32)
  logits_np *= 3
  labeled_np = rng.random(n) < 0.01
  ref = numpy_entropy(logits_np, labeled_np, args.budget)
  got, t_jax, t_read, t_score, t_floor = _time_jax(
      lambda x, lab: entropy_top(x, lab, args.budget), (logits_np, labeled_np), read_once,
      lambda x, _: _ENTROPY_SCORE(x), _EXP_SUM, args.repeats)
  assert set(got.tolist()) == set(ref.tolist()), "entropy: numpy reference disagrees"
  t_np = median_seconds(lambda: numpy_entropy(logits_np, labeled_np, args.budget), args.repeats)
  t_torch = math.nan
  if torch is not None:
    tlog, tl = torch.from_numpy(logits_np), torch.from_numpy(labeled_np)
    assert set(torch_entropy(torch, tlog, tl, args.budget).tolist()) == set(ref.tolist())
    t_torch = median_seconds(lambda: torch_entropy(torch, tlog, tl, args.budget), args.repeats)
  _row(n, c, "entropy", t_jax, t_np, t_torch, t_read, t_score, t_floor)


_MSAL_SCORE = jax.jit(scoring.msal)
_MSAL_SIMPLEX = jax.jit(lambda f: scoring.msal(f, None))
_ENTROPY_SCORE = jax.jit(scoring.entropy)
_ROW_SUM = jax.jit(lambda x: jnp.sum(x, axis=1))
_EXP_SUM = jax.jit(lambda x: jnp.sum(jnp.exp(x)))


def _row(n, c, what, t_jax, t_np, t_torch, t_read, t_score, t_floor):
  print(f"{n:>10} {c:>4} {what:>21} | {t_jax * 1e3:>7.1f}ms {t_np * 1e3:>7.1f}ms "
        f"{t_torch * 1e3:>7.1f}ms {t_read * 1e3:>7.1f}ms {t_score * 1e3:>8.1f}ms "
        f"{t_floor * 1e3:>7.1f}ms | {t_np / t_jax:>6.2f} {t_torch / t_jax:>9.2f} "
        f"{t_jax / t_read:>8.2f} {t_floor / t_read:>10.2f}", flush=True)


if __name__ == "__main__":
  main()
