r"""One streamed pool pass of the small CNN over a memory-mapped pool far larger than its memory.

  python benchmarks/out_of_core.py                         # 2 GB pool, 1 GiB limit
  python benchmarks/out_of_core.py --gb=20 --limit_gb=3    # the issue's 20 GB case
  python benchmarks/out_of_core.py --loop                  # one round of loop.run instead

Writes a random uint8 ``[N, 32, 32, 3]`` ``.npy`` of ``--gb`` gigabytes under
``--dir`` (in a child process; the free space is checked first), then runs the
measurement in a second child whose data segment is limited with
``resource.setrlimit(RLIMIT_DATA, --limit_gb)`` before JAX is imported. The
child first proves the limit is enforced (allocating ``--limit_gb`` bytes must
raise ``MemoryError``), then:

1. compiles the pass on one in-memory chunk;
2. streams the whole file (``pool_source.NpyPool``, a memory map whose pages
   are unmapped after each chunk) through ``pool_stream.stream_outputs`` with
   the MSAL query (``Selection("msal")``) and the predictions of every row;
   its peak RSS (``ru_maxrss``) is read right after this pass;
3. the in-memory path of today's loop on the first ``--subset`` rows of the
   same file (``Trainer.predict`` of the pool on the device, then the
   strategy's jitted ``select``), and the streamed pass of that subset from
   memory (``ArrayPool``), for the images/s ratio.

``--limit=as`` uses RLIMIT_AS instead: it counts the memory map of the whole
file (and XLA's virtual reservations), so it refuses any pool larger than the
limit; RLIMIT_DATA counts the heap and anonymous mappings only, which is what
the pool pass allocates. ``--cold`` drops the file's pages from the page
cache first (``posix_fadvise(DONTNEED)``, this file only), so the pass reads
the disk. The file is removed at the end unless ``--keep``.

``--loop`` measures the experiment loop instead of a bare pass, in the same
limited child (the limit is checked the same way): ``loop.run`` on a Dataset
whose pool is the memory-mapped file (``np.load(mmap_mode="r")``; labels
``i % 10``; test set: the file's last ``--test`` rows, in memory), forced to
stream (``in_memory_limit=0``), one query round (``--initial`` labeled,
``--query`` queried, ``rounds=1``: round 0 trains, scores the pool and queries;
round 1 trains on the larger set and counts the pool's errors, a second pass),
the small CNN, ``--epochs`` epochs, for each of ``--strategies``. Then the
same runs on the first ``--subset`` rows as a numpy array (the in-memory
path). Each run has its own limited child (two runs in one process under
1 GiB failed: the second ran out of memory). Per run it prints the peak RSS
(the most of ``/proc/self/status`` VmRSS, and of its anonymous and
file-backed parts, sampled every 50 ms during the run; ``ru_maxrss`` of its
process), the seconds
of each round from ``rounds.jsonl`` (train, eval, query), the images/s of
each round's pool pass (N / query seconds: round 0's includes compiling the
pool step, round 1's does not) and the streamed / in-memory ratio of each. The child runs with
``MALLOC_ARENA_MAX=2`` unless set: glibc reserves 64 MB of address space per
thread arena, which RLIMIT_DATA counts though little of it is resident (the
loop's threads otherwise hit a 1 GiB limit with under 0.8 GB resident).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

GB = 10**9
SHAPE = (32, 32, 3)
MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)  # CIFAR-like, any values do

_WRITE_CHILD = """
import sys, numpy as np
path, rows = sys.argv[1], int(sys.argv[2])
out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, 32, 32, 3))
rng = np.random.default_rng(0)
step = 1 << 14
for start in range(0, rows, step):
  stop = min(start + step, rows)
  out[start:stop] = rng.integers(0, 256, (stop - start, 32, 32, 3), dtype=np.uint8)
  out.flush()
"""


def _limit(kind: str, nbytes: int) -> None:
  """Sets the limit and checks it bites: ``nbytes`` of fresh memory must not be granted."""
  which = {"data": resource.RLIMIT_DATA, "as": resource.RLIMIT_AS}[kind]
  resource.setrlimit(which, (nbytes, nbytes))
  try:
    block = bytearray(nbytes)
  except MemoryError:
    return
  del block
  raise SystemExit(f"RLIMIT_{kind.upper()} of {nbytes} bytes is not enforced here.")


def _rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _stage(name: str) -> None:
  print(f"  [{name}: peak RSS so far {_rss_mb():.0f} MB]", file=sys.stderr, flush=True)


class _RssSampler:
  """The most resident memory seen since ``reset``, from ``/proc/self/status`` every 50 ms.

  ``ru_maxrss`` is the process's peak over its whole life; the sampler gives
  the peak of one run inside it (it may miss a peak shorter than 50 ms), as
  VmRSS and its two parts, each at its own peak: RssAnon (heap, what
  RLIMIT_DATA bounds) and RssFile (mapped files: the libraries and the pool's
  pages while a chunk is read; reclaimable, not counted by RLIMIT_DATA).
  """

  FIELDS = ("VmRSS", "RssAnon", "RssFile")

  def __init__(self):
    import threading
    self.peak, self._stop = self.now(), threading.Event()
    self._thread = threading.Thread(target=self._loop, daemon=True)
    self._thread.start()

  @classmethod
  def now(cls) -> dict[str, int]:
    with open("/proc/self/status") as f:
      fields = dict(line.split(":", 1) for line in f)
    return {k: int(fields[k].split()[0]) for k in cls.FIELDS}  # KiB

  def _loop(self) -> None:
    while not self._stop.wait(0.05):
      now = self.now()
      self.peak = {k: max(self.peak[k], now[k]) for k in self.FIELDS}

  def reset(self) -> None:
    self.peak = self.now()

  def peak_mb(self) -> dict[str, float]:
    now = self.now()
    return {k: max(self.peak[k], now[k]) / 1024 for k in self.FIELDS}


def _loop_child(args) -> None:
  """One query round of ``loop.run`` per strategy, streamed from the file, then in memory."""
  from msal_jax import loop, streamed_pool
  from msal_jax.data import custom

  streamed_pool.CHUNK_BATCHES = args.chunk // args.batch  # chunk = CHUNK_BATCHES * eval batch
  pool = np.load(args.path, mmap_mode="r")
  num = pool.shape[0]
  test_x = np.array(pool[num - args.test:])  # a small test set, in memory
  test_y = (np.arange(num - args.test, num) % 10).astype(np.int32)
  labels = (np.arange(num) % 10).astype(np.int32)  # any valid labels do: a fixed pattern

  def dataset(images, n):
    return custom.from_arrays(images, labels[:n], test_x, test_y, num_classes=10,
                              mean=MEAN, std=STD, name="out_of_core")

  kw = dict(seed=0, log=lambda line: print("  " + line, file=sys.stderr, flush=True),
            progress_every=0,
            al=loop.ActiveLearningConfig(initial=args.initial, batch=args.query,
                                         budget=args.query, rounds=1),
            train=loop.TrainConfig(epochs=args.epochs, batch_size=64,
                                   eval_batch_size=args.batch),
            model=loop.ModelConfig(arch="small_cnn", trunk_kwargs={"widths": (16, 32),
                                                                   "hidden": 64}))
  sampler = _RssSampler()
  out = {"num": num, "file_gb": os.path.getsize(args.path) / GB, "limit": args.limit,
         "limit_gib": args.limit_gb, "runs": []}

  def one(ds, strategy, mode, limit):
    with tempfile.TemporaryDirectory() as workdir:
      sampler.reset()
      t0 = time.perf_counter()
      loop.run(ds, strategy=strategy, workdir=workdir, in_memory_limit=limit, **kw)
      seconds = time.perf_counter() - t0
      with open(os.path.join(workdir, "rounds.jsonl")) as f:
        rounds = [json.loads(line) for line in f]
    n = ds.num_pool
    out["runs"].append({
        "strategy": strategy, "mode": mode, "num": n, "seconds": seconds,
        "peak_mb": sampler.peak_mb(),
        "rounds": [{k: r[k] for k in ("train_seconds", "eval_seconds", "query_seconds")}
                   for r in rounds],
        "pass_img_s": [n / r["query_seconds"] for r in rounds]})
    _stage(f"{mode} {strategy}")

  strategy, mode = args.one.split(":")
  if mode == "streamed":
    one(dataset(pool, num), strategy, mode, 0)
  else:
    m = min(args.subset, num)
    one(dataset(np.array(pool[:m]), m), strategy, mode, None)  # a numpy array: in memory
  out["runs"][0]["ru_maxrss_mb"] = _rss_mb()
  print(json.dumps(out))


def _child(args) -> None:
  _limit(args.limit, int(args.limit_gb * 2**30))
  if args.loop:
    return _loop_child(args)
  import jax
  import jax.numpy as jnp

  from msal_jax import models, pool_source, pool_stream, prototypes, strategies
  from msal_jax.train import Trainer

  from _timing import median_seconds

  net = models.make_model("small_cnn", num_classes=10, head="max_sep", widths=(16, 32),
                          hidden=64)
  trainer = Trainer(net, SHAPE, MEAN, STD, eval_batch_size=args.batch)
  state = trainer.init(jax.random.PRNGKey(0))
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  protos = prototypes.simplex(10)
  apply = pool_stream.make_apply_chunk(net.apply, MEAN, STD, batch_size=args.batch)
  source = pool_source.NpyPool(args.path)
  num, budget = source.num, 1000
  labeled = np.zeros(num, bool)
  labeled[:: 100] = True

  def streamed(src, lab):
    sel = pool_stream.Selection("msal", lab, budget=budget, beta=1.0, prototypes=protos)
    preds = pool_stream.Predictions(src.num)
    t0 = time.perf_counter()
    pool_stream.stream_outputs(apply, variables, src, chunk_size=args.chunk,
                               consumers=[preds, sel])
    ids = sel.result()
    return time.perf_counter() - t0, ids

  warm = pool_source.ArrayPool(source.read(np.arange(min(args.chunk, num))))
  streamed(warm, labeled[: warm.num])  # compiles the step and the merge
  _stage("compiled")
  out = {"num": num, "file_gb": os.path.getsize(args.path) / GB, "limit": args.limit,
         "limit_gib": args.limit_gb, "rss_before_pass_mb": _rss_mb()}
  if args.cold:
    fd = os.open(args.path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
  seconds, _ = streamed(source, labeled)
  _stage("streamed pass")
  out.update(stream_seconds=seconds, stream_img_s=num / seconds, peak_rss_mb=_rss_mb())

  m = min(args.subset, num)
  images = source.read(np.arange(m))
  select = jax.jit(strategies.get("msal").select, static_argnames=("budget", "beta"))
  sub_lab = labeled[:m]

  dev = [jnp.asarray(images)]  # the loop places its pool on the device once

  def in_memory():
    logits, feats = trainer.predict(state, dev[0])
    outs = strategies.PoolOutputs(logits=logits, features=feats, prototypes=protos)
    return np.asarray(select(None, outs, jnp.asarray(sub_lab), budget=budget, beta=1.0))

  expected = in_memory()  # compiles
  _stage("in-memory pass")
  mem_seconds = median_seconds(in_memory, args.repeats, warm=False)
  dev.clear()  # the streamed pass of the subset gets the memory back
  sub_pool = pool_source.ArrayPool(images)
  sub_seconds = median_seconds(lambda: streamed(sub_pool, sub_lab), args.repeats, warm=False)
  if not np.array_equal(streamed(sub_pool, sub_lab)[1], expected):
    raise SystemExit("the streamed selection differs from the in-memory one.")
  out.update(subset=m, memory_img_s=m / mem_seconds, stream_memory_img_s=m / sub_seconds,
             ratio=(num / seconds) / (m / mem_seconds))
  print(json.dumps(out))


def _measure(path: str, extra: list[str]) -> dict:
  """Runs the limited measuring child on ``path``; its JSON result (exits if it failed)."""
  cmd = [sys.executable, os.path.abspath(__file__), "--child", f"--path={path}", *extra] + [
      a for a in sys.argv[1:] if not a.startswith(("--path", "--child", "--one"))]
  env = dict(os.environ)
  if extra:  # --loop; see the docstring: arenas' address space counts against RLIMIT_DATA
    env.setdefault("MALLOC_ARENA_MAX", "2")
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
  if proc.returncode:
    print(proc.stdout + proc.stderr[-4000:])
    raise SystemExit(proc.returncode)
  print(proc.stderr.strip(), flush=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--gb", type=float, default=2.0, help="size of the pool file")
  p.add_argument("--limit_gb", type=float, default=1.0, help="memory limit of the pass (GiB)")
  p.add_argument("--limit", choices=("data", "as"), default="data")
  p.add_argument("--subset", type=int, default=20_000, help="rows of the in-memory pass")
  p.add_argument("--chunk", type=int, default=8000, help="rows per streamed chunk")
  p.add_argument("--batch", type=int, default=1000, help="rows per forward pass")
  p.add_argument("--repeats", type=int, default=3, help="timed runs of the subset passes")
  p.add_argument("--dir", default=tempfile.gettempdir())
  p.add_argument("--cold", action="store_true", help="drop the file from the page cache first")
  p.add_argument("--keep", action="store_true", help="keep the pool file")
  p.add_argument("--loop", action="store_true",
                 help="one query round of loop.run (streamed, then in memory) instead of a pass")
  p.add_argument("--strategies", type=lambda v: v.split(","), default=["msal_d", "entropy"],
                 help="--loop: comma-separated strategies")
  p.add_argument("--initial", type=int, default=500, help="--loop: initial labeled samples")
  p.add_argument("--query", type=int, default=250, help="--loop: samples queried (one round)")
  p.add_argument("--epochs", type=int, default=2, help="--loop: epochs per round")
  p.add_argument("--test", type=int, default=1000, help="--loop: test-set rows (in memory)")
  p.add_argument("--path", help=argparse.SUPPRESS)
  p.add_argument("--one", help=argparse.SUPPRESS)  # --loop child: "strategy:mode"
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.chunk % args.batch:
    p.error(f"--chunk ({args.chunk}) must be a multiple of --batch ({args.batch}).")
  if args.child:
    return _child(args)
  rows = int(args.gb * GB) // int(np.prod(SHAPE))
  path = os.path.join(args.dir, f"out_of_core_{rows}.npy")
  if not os.path.exists(path):
    free = shutil.disk_usage(args.dir).free
    if free < rows * np.prod(SHAPE) * 1.1:
      p.error(f"--dir {args.dir} has {free / GB:.1f} GB free, the pool needs {args.gb} GB.")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", _WRITE_CHILD, path, str(rows)], check=True)
    print(f"wrote {path} ({rows} images, {time.perf_counter() - t0:.0f} s)", flush=True)
  try:
    if not args.loop:
      r = _measure(path, [])
    else:  # a fresh limited child per run: each run's peak is its own
      runs = [_measure(path, [f"--one={s}:{mode}"]) for mode in ("streamed", "in-memory")
              for s in args.strategies]
      r = {**runs[0], "runs": [x["runs"][0] for x in runs]}
  finally:
    if not args.keep and os.path.exists(path):
      os.remove(path)
  print(f"pool {r['num']} x 32x32x3 uint8 = {r['file_gb']:.2f} GB, RLIMIT_{r['limit'].upper()} "
        f"{r['limit_gib']} GiB (enforced: {r['limit_gib']} GiB allocation refused)")
  if args.loop:
    return _print_loop(r)
  print(f"streamed pass: {r['stream_seconds']:.1f} s, {r['stream_img_s']:.0f} images/s, "
        f"peak RSS {r['peak_rss_mb']:.0f} MB (before the pass {r['rss_before_pass_mb']:.0f} MB)")
  print(f"in-memory pass ({r['subset']} rows, Trainer.predict + select): "
        f"{r['memory_img_s']:.0f} images/s; streamed from memory: "
        f"{r['stream_memory_img_s']:.0f} images/s")
  print(f"streamed / in-memory images/s: {r['ratio']:.2f}x")


def _print_loop(r: dict) -> None:
  """The ``--loop`` table: a line per run, then the streamed / in-memory ratio per strategy."""
  print(f"{'strategy':10} {'pool':>16} {'peak RSS (anon / file)':>23} "
        f"{'round 0 train/eval/query':>25} {'round 1 train/eval/query':>25} "
        f"{'pass, rounds 0 / 1':>23}")
  for run in r["runs"]:
    pk = run["peak_mb"]
    r0, r1 = (" / ".join(f"{x[k]:.1f}" for k in ("train_seconds", "eval_seconds",
                                                  "query_seconds")) + " s" for x in run["rounds"])
    print(f"{run['strategy']:10} {run['mode'] + ' ' + str(run['num']):>16} "
          f"{pk['VmRSS']:5.0f} ({pk['RssAnon']:4.0f} / {pk['RssFile']:4.0f}) MB {r0:>25} {r1:>25} "
          f"{run['pass_img_s'][0]:7.0f} / {run['pass_img_s'][1]:.0f} img/s")
  print("ru_maxrss of each run's process: " + ", ".join(
      f"{x['strategy']} {x['mode']} {x['ru_maxrss_mb']:.0f} MB" for x in r["runs"]))
  rate = {(x["strategy"], x["mode"]): x["pass_img_s"] for x in r["runs"]}
  for strategy in dict.fromkeys(x["strategy"] for x in r["runs"]):
    ratios = [a / b for a, b in zip(rate[strategy, "streamed"], rate[strategy, "in-memory"],
                                    strict=True)]
    print(f"{strategy}: streamed / in-memory images/s of the pool pass: {ratios[0]:.2f}x "
          f"(round 0, query), {ratios[1]:.2f}x (round 1)")


if __name__ == "__main__":
  main()
