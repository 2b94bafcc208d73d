r"""Ways to write the entropy score on XLA:CPU, against the read of the logits and its floor.

  python benchmarks/entropy_forms.py                      # N = 10M, C = 10
  python benchmarks/entropy_forms.py --size=1000000 --classes=100

Times, jitted, on one [N, C] float32 array already in memory (median of --repeats
after a warm-up), and prints each time over the read's:
  * read: jnp.sum(x), one pass over the array (the memory-bandwidth floor);
  * exp floor: jnp.sum(jnp.exp(x)), one exp per logit summed flat (no rows);
  * row sum / row max: jnp.sum(x, 1) / jnp.max(x, 1), one row reduction;
  * row sum (matvec), row sum (block matmul): x @ ones(C), and x viewed as
    [N/8, 8C] times the [8C, 8] block-diagonal matrix of ones;
  * row sum of squares, plain and as the block matmul of x * x;
  * max + exp + one row sum: the library's entropy without its second row sum;
  * entropy (library): msal_jax.scoring.entropy (max shift, one exp, two row sums);
  * entropy (online reduce): one variadic lax.reduce carrying (max, sum e, sum e d)
    as an online softmax, one pass;
  * entropy (shift by first logit): no row maximum (less accurate; overflows for
    logits more than ~88 above the first);
  * entropy (column max): the row maximum as C - 1 elementwise maxima of columns;
  * entropy (variadic add), entropy (stacked sums): the two row sums as one variadic
    lax.reduce with an add reducer, and as one sum over a stacked [N, 2, C].
Each entropy form prints its largest absolute difference from the library's.
docs/benchmarks.md (selection) has the measured numbers and what they mean.
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from msal_jax import scoring

from _timing import median_seconds


def _shift_exp(x, top=None):
  """``(d, e)``: ``d = x - top`` (the row maximum unless given), ``e = exp(d)``."""
  d = x - (jnp.max(x, axis=1) if top is None else top)[:, None]
  return d, jnp.exp(d)


def _from_shift(x, top):
  d, e = _shift_exp(x, top)
  s = jnp.sum(e, axis=1)
  return jnp.log(s) - jnp.sum(e * d, axis=1) / s


def entropy_online(x):
  """One variadic reduction: (m, s, u) = (max, sum exp(x - m), sum exp(x - m) (x - m))."""
  zero = jnp.zeros((), x.dtype)

  def combine(a, b):
    (m1, s1, u1), (m2, s2, u2) = a, b
    m = jnp.maximum(m1, m2)
    a1, a2 = jnp.exp(m1 - m), jnp.exp(m2 - m)
    d1 = jnp.where(a1 > 0, m1 - m, 0.0)  # -inf - m only for the initial value
    d2 = jnp.where(a2 > 0, m2 - m, 0.0)
    return m, s1 * a1 + s2 * a2, a1 * (u1 + s1 * d1) + a2 * (u2 + s2 * d2)

  _, s, u = lax.reduce((x, jnp.ones_like(x), jnp.zeros_like(x)),
                       (jnp.full((), -jnp.inf, x.dtype), zero, zero), combine, (1,))
  return jnp.log(s) - u / s


def entropy_shift_first(x):
  return _from_shift(x, x[:, 0])


def entropy_variadic_add(x):
  d, e = _shift_exp(x)
  zero = jnp.zeros((), x.dtype)
  s, t = lax.reduce((e, e * d), (zero, zero), lambda a, b: (a[0] + b[0], a[1] + b[1]), (1,))
  return jnp.log(s) - t / s


def entropy_stacked_sums(x):
  d, e = _shift_exp(x)
  st = jnp.sum(jnp.stack([e, e * d], axis=1), axis=2)
  return jnp.log(st[:, 0]) - st[:, 1] / st[:, 0]


def max_exp_one_sum(x):
  return jnp.sum(_shift_exp(x)[1], axis=1)


def entropy_column_max(x):
  top = x[:, 0]
  for j in range(1, x.shape[1]):
    top = jnp.maximum(top, x[:, j])
  return _from_shift(x, top)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", type=int, default=10_000_000)
  parser.add_argument("--classes", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=7)
  args = parser.parse_args()
  n, c = args.size, args.classes
  if n % 8:
    parser.error("--size must be a multiple of 8 (the block matmul views 8 rows as one)")
  x = jnp.asarray(np.random.default_rng(0).standard_normal((n, c), dtype=np.float32) * 3)
  # Raise glibc's mmap threshold as any process that has freed a numpy temporary has
  # (docs/benchmarks.md, "A fresh process"), so the first forms are not penalised.
  tmp = np.ones(30 << 18, np.float32)
  del tmp
  block = jnp.asarray(np.kron(np.eye(8), np.ones((c, 1))), jnp.float32)
  forms = {
      "read": jnp.sum,
      "exp floor": lambda x: jnp.sum(jnp.exp(x)),
      "row sum": lambda x: jnp.sum(x, axis=1),
      "row max": lambda x: jnp.max(x, axis=1),
      "row sum (matvec)": lambda x: x @ jnp.ones(c, x.dtype),
      "row sum (block matmul)": lambda x: (x.reshape(n // 8, 8 * c) @ block).reshape(n),
      "row sum of squares": lambda x: jnp.sum(x * x, axis=1),
      "row sum of squares (block matmul)":
          lambda x: ((x * x).reshape(n // 8, 8 * c) @ block).reshape(n),
      "max + exp + one row sum": max_exp_one_sum,
      "entropy (library)": scoring.entropy,
      "entropy (online reduce)": entropy_online,
      "entropy (shift by first logit)": entropy_shift_first,
      "entropy (column max)": entropy_column_max,
      "entropy (variadic add)": entropy_variadic_add,
      "entropy (stacked sums)": entropy_stacked_sums,
  }
  print(f"jax {jax.__version__}, {os.cpu_count()} cores; [{n:,} x {c}] float32; "
        f"medians of {args.repeats}; load average {os.getloadavg()[0]:.1f}")
  want = np.asarray(jax.jit(scoring.entropy)(x))
  t_read = None
  for name, fn in forms.items():
    f = jax.jit(fn)
    out = np.asarray(f(x))
    t = median_seconds(lambda f=f: f(x).block_until_ready(), args.repeats) * 1e3
    t_read = t_read or t
    diff = (f"  max |diff| from the library's {np.max(np.abs(out - want)):.1e}"
            if name.startswith("entropy") else "")
    print(f"{name:>33}: {t:8.1f} ms  {t / t_read:5.2f}x read{diff}", flush=True)


if __name__ == "__main__":
  main()
