r"""Max pooling's forward + backward: msal_jax.models.pooling.max_pool against nn.max_pool.

  python benchmarks/pooling.py                  # the pools of the small CNN and ResNet18
  python benchmarks/pooling.py --batch=32 --repeats=20

Both compute the same values and the same gradient (the script checks it bit for bit;
tests/test_models.py checks ties and padding): nn.max_pool's gradient is XLA's
select-and-scatter, max_pool's is elementwise work on the window's strided views.
Timed: one jitted ``grad(sum(pool(x) * g))`` per call (forward + backward), float32
NHWC, the median of --repeats calls after a compiling warm-up, both alternating call by
call. The shapes are where the models pool, at --batch images:
  * small CNN (configs/*:cpu, 28x28 MNIST, widths 16-32): 2x2/2 on 28x28x16 and 14x14x32;
  * ResNet18 stem 3x3/2 (pad 1) on 64 channels: 14x14 (7x7/2 stem on 28x28 MNIST),
    16x16 (32x32 SVHN), 32x32 (3x3 stem on CIFAR), 64x64 (3x3 stem on TinyImageNet).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from msal_jax.models.pooling import max_pool

CASES = [  # (what, H, W, C, window, strides, padding)
    ("small CNN pool 1", 28, 28, 16, (2, 2), (2, 2), "VALID"),
    ("small CNN pool 2", 14, 14, 32, (2, 2), (2, 2), "VALID"),
    ("ResNet18 stem, MNIST", 14, 14, 64, (3, 3), (2, 2), ((1, 1), (1, 1))),
    ("ResNet18 stem, SVHN", 16, 16, 64, (3, 3), (2, 2), ((1, 1), (1, 1))),
    ("ResNet18 stem, CIFAR", 32, 32, 64, (3, 3), (2, 2), ((1, 1), (1, 1))),
    ("ResNet18 stem, TinyImageNet", 64, 64, 64, (3, 3), (2, 2), ((1, 1), (1, 1))),
]


def _grad_fn(pool):
  return jax.jit(jax.grad(lambda x, g: jnp.sum(pool(x) * g)))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=9)
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({os.cpu_count()} cores, "
        f"{platform.machine()}), batch {args.batch}, medians of {args.repeats}, "
        f"load average {os.getloadavg()[0]:.1f}", flush=True)
  print(f"| {'where':28s} | {'shape':>14s} | pool | nn.max_pool | max_pool | speed-up |")
  print(f"|{'-' * 30}|{'-' * 16}|------|------------:|---------:|---------:|")
  rng = np.random.default_rng(0)
  for what, h, w, c, window, strides, padding in CASES:
    x = jnp.asarray(rng.normal(size=(args.batch, h, w, c)).astype(np.float32))
    ref = lambda x, window=window, strides=strides, padding=padding: nn.max_pool(  # noqa: E731
        x, window, strides=strides, padding=padding)
    ours = lambda x, window=window, strides=strides, padding=padding: max_pool(  # noqa: E731
        x, window, strides, padding)
    g = jnp.asarray(rng.normal(size=ref(x).shape).astype(np.float32))
    f_ref, f_ours = _grad_fn(ref), _grad_fn(ours)
    want = np.asarray(f_ref(x, g))
    assert np.array_equal(np.asarray(f_ours(x, g)), want), f"{what}: gradients differ"
    times = {"ref": [], "ours": []}
    for _ in range(args.repeats):
      for name, f in (("ref", f_ref), ("ours", f_ours)):
        t0 = time.perf_counter()
        f(x, g).block_until_ready()
        times[name].append(time.perf_counter() - t0)
    t_ref, t_ours = statistics.median(times["ref"]), statistics.median(times["ours"])
    kind = f"{window[0]}x{window[1]}/{strides[0]}"
    print(f"| {what:28s} | {f'{h}x{w}x{c}':>14s} | {kind} | {t_ref * 1e3:8.1f} ms | "
          f"{t_ours * 1e3:5.1f} ms | {t_ref / t_ours:7.2f}x |", flush=True)


if __name__ == "__main__":
  main()
