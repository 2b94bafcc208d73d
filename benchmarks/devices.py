r"""One round over a device mesh against one device, and the grid side by side against one
after another (issue 18).

  python benchmarks/devices.py                        # 4 devices, 4 runs (a few minutes here)
  python benchmarks/devices.py --devices=8 --runs=8   # on a machine with 8 accelerators

The settings are those of configs/mnist5k.py (the embedded 5,000 digits: a
4,000-image pool and 1,000 test images, the small CNN, 100 initial labels,
batches of 100, 30 epochs, MSAL-D), run with :func:`msal_jax.loop.run` on the
config's ``al`` / ``train`` / ``model``, one query round (``al.budget`` =
``al.batch``): round 0 trains on the initial labels, round 1 queries, trains
and evaluates. ``--epochs``, ``--initial``, ``--batch`` make it smaller.

What is timed, each in one process, the numbers of one invocation side by side:

- ``one``: the run on one device (a process that sees one device: on CPU
  the default; on an accelerator ``devices=1``);
- ``mesh``: the same run over an N-device mesh (``devices=N``): the pool
  sharded for inference and selection, training data-parallel;
- ``grid``: ``--runs`` runs (MSAL-D, seeds 0, 1, ...) through the launcher's
  grid (:func:`experiments.grid.run`), first one after another on one device
  (``mesh.devices=1``), then side by side, one per device
  (``mesh.devices_per_run=1``), in the same N-device process.

Wall seconds include compilation (each run compiles its programs once); the
round-1 fields (``query_seconds``, ``train_seconds``, ``eval_seconds``) are the
loop's own, compiled already. On CPU the N devices are forced
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``, a subprocess) and share
the machine's cores: there the mesh and the grid measure their overhead, not a
speed-up; that needs N real devices.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ROUND_FIELDS = ("query_seconds", "train_seconds", "eval_seconds")


def _experiment(args, **mesh):
  """configs/mnist5k.py with the flags' sizes, one query round, MSAL-D over ``args.runs``
  seeds, ``mesh`` as the launcher's ``config.mesh`` fields."""
  sys.path.insert(0, ROOT)
  from configs import mnist5k
  from experiments import experiment

  c = mnist5k.get_config()
  if args.epochs is not None:
    c.train.epochs = args.epochs
  if args.initial is not None:
    c.al.initial = args.initial
  if args.batch is not None:
    c.al.batch = args.batch
  c.al.budget = c.al.batch  # one query round
  c.strategies, c.seeds = ("msal_d",), tuple(range(args.runs))
  for k, v in mesh.items():
    c.mesh[k] = v
  return c, experiment.Experiment.from_config(c)


def _one_run(args, dataset, devices):
  """Wall seconds of one MSAL-D run (seed 0) on ``devices`` and its round-1 record."""
  from msal_jax import loop

  _, exp = _experiment(args)
  t0 = time.perf_counter()
  summary = loop.run(dataset, strategy="msal_d", seed=0, al=exp.al, train=exp.train,
                     model=exp.model, log=lambda s: None, progress_every=0, devices=devices)
  wall = time.perf_counter() - t0
  last = summary["rounds"][-1]
  return {"wall": wall, **{k: last[k] for k in ROUND_FIELDS},
          "accuracy": last["test_accuracy"]}


def _grid(args, dataset, **mesh):
  """Wall seconds of the launcher's grid of ``args.runs`` runs with ``mesh``."""
  from experiments import experiment

  cfg, exp = _experiment(args, **mesh)
  with tempfile.TemporaryDirectory() as wd:
    experiment.prepare_workdir(cfg, wd)
    t0 = time.perf_counter()
    results = experiment.run(exp, wd, log=lambda s: None, dataset=dataset, progress_every=0)
    wall = time.perf_counter() - t0
  accs = [s["accuracies"] for s in results["msal_d"]]
  return {"wall": wall, "accuracy": accs}


def child(args) -> None:
  """The measuring process: ``--part=one`` (one device) or ``--part=many`` (mesh and grid)."""
  import jax

  from experiments import experiment

  _, exp = _experiment(args)
  dataset = experiment.load_dataset(exp)
  out = {"backend": jax.default_backend(), "devices": jax.device_count(),
         "kind": jax.devices()[0].device_kind}
  if args.part == "one":
    out["one"] = _one_run(args, dataset, 1)
  elif jax.device_count() >= 2:
    n = min(args.devices, jax.device_count())
    out["n"] = n
    out["mesh"] = _one_run(args, dataset, n)
    out["sequential"] = _grid(args, dataset, devices=1)
    out["side_by_side"] = _grid(args, dataset, devices=min(n, args.runs), devices_per_run=1)
  print("RESULT " + json.dumps(out), flush=True)


def _spawn(args, part: str, env: dict[str, str]) -> dict:
  flags = [f"--{k}={v}" for k, v in vars(args).items() if v is not None and k != "part"]
  proc = subprocess.run([sys.executable, os.path.abspath(__file__), f"--part={part}", *flags],
                        env=env, cwd=ROOT, capture_output=True, text=True)
  if proc.returncode != 0:
    sys.exit(f"the {part} process failed:\n{proc.stderr[-3000:]}")
  line = next(s for s in proc.stdout.splitlines() if s.startswith("RESULT "))
  return json.loads(line.removeprefix("RESULT "))


def _round(r: dict) -> str:
  return (f"wall {r['wall']:6.2f} s | round 1: query {r['query_seconds']:.3f} s, train "
          f"{r['train_seconds']:.2f} s, eval {r['eval_seconds']:.3f} s | accuracy "
          f"{r['accuracy']:.4f}")


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--devices", type=int, default=4, help="N, the mesh's devices")
  p.add_argument("--runs", type=int, default=4, help="runs of the grid (MSAL-D, seeds 0..)")
  p.add_argument("--epochs", type=int, default=None, help="train.epochs (config: 30)")
  p.add_argument("--initial", type=int, default=None, help="al.initial (config: 100)")
  p.add_argument("--batch", type=int, default=None, help="al.batch (config: 100)")
  p.add_argument("--part", choices=("one", "many"), default=None, help=argparse.SUPPRESS)
  args = p.parse_args()
  for name in ("devices", "runs"):
    if getattr(args, name) < 1 or (name == "devices" and args.devices < 2):
      p.error(f"--{name} must be >= {2 if name == 'devices' else 1}, got {getattr(args, name)}")
  if args.part:
    return child(args)
  print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
  env = dict(os.environ)
  one = _spawn(args, "one", env)
  if one["backend"] == "cpu":
    env["XLA_FLAGS"] = (f"{env.get('XLA_FLAGS', '')} "
                        f"--xla_force_host_platform_device_count={args.devices}").strip()
  many = _spawn(args, "many", env)
  forced = " (forced host devices sharing the CPU cores)" if one["backend"] == "cpu" else ""
  print(f"backend {one['backend']} ({one['kind']}), {many['devices']} device(s) in the mesh "
        f"process{forced}")
  print(f"one device:  {_round(one['one'])}")
  if "mesh" not in many:
    print("only one device: no mesh and no grid to time")
    return
  n, mesh = many["n"], many["mesh"]
  print(f"mesh of {n}:   {_round(mesh)}")
  ratios = ", ".join(f"{k.removesuffix('_seconds')} {mesh[k] / one['one'][k]:.2f}x"
                     for k in ("wall", *ROUND_FIELDS))
  print(f"mesh / one device (time ratio, < 1 is faster): {ratios}")
  seq, side = many["sequential"], many["side_by_side"]
  per = min(n, args.runs)
  print(f"grid of {args.runs} runs one after another on 1 device: {seq['wall']:.2f} s")
  print(f"grid of {args.runs} runs side by side on {per} devices (devices_per_run=1): "
        f"{side['wall']:.2f} s")
  print(f"side by side / one after another: {side['wall'] / seq['wall']:.2f}x "
        f"(speed-up {seq['wall'] / side['wall']:.2f}x)")
  same = seq["accuracy"] == side["accuracy"]
  print(f"test accuracies of every run and round {'equal' if same else 'DIFFER'} one after "
        f"another and side by side: {seq['accuracy']}"
        + ("" if same else f" vs {side['accuracy']}"))
  if not same:
    sys.exit(1)


if __name__ == "__main__":
  main()
