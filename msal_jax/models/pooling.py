"""Max pooling with ``nn.max_pool``'s forward pass and gradient, and a faster backward on CPU.

``nn.max_pool``'s gradient is XLA's select-and-scatter, which XLA:CPU runs
slowly: about 90 ms of a 225 ms small-CNN train step of 128 MNIST images on
one core, and about 190 ms for the forward + backward of ResNet18's 3x3/2 stem
pooling on a batch of 128 32x32x64 maps, where the forward alone takes 12 ms
(docs/benchmarks.md, ``benchmarks/pooling.py``). :func:`max_pool` computes
the same gradient as elementwise operations on the window's strided views,
which XLA fuses.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def max_pool(
    x: jax.Array,
    window: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: Sequence[tuple[int, int]] | str = "VALID",
) -> jax.Array:
  """``nn.max_pool(x, window, strides, padding)`` on NHWC, with the same gradient, faster.

  The forward pass is ``nn.max_pool`` (padding with ``-inf``). The backward
  pass sends each output's gradient to the first maximum of its window in
  row-major order (the ``-inf`` padding included: a window whose maximum is
  ``-inf`` may lose its gradient to it), and adds up what an input receives from
  overlapping windows in window order: what ``nn.max_pool``'s own gradient
  (XLA's select-and-scatter) does, bit for bit (the tests compare the two on
  inputs full of ties, for 2x2/2 and ResNet's 3x3/2 with padding 1).

  Args:
    x: ``[B, H, W, C]``.
    window: ``(wh, ww)``.
    strides: ``(sh, sw)``; ``None`` = ``(1, 1)`` as ``nn.max_pool``.
    padding: ``"VALID"`` or ``((lo_h, hi_h), (lo_w, hi_w))``.
  """
  window = tuple(int(w) for w in window)
  strides = (1, 1) if strides is None else tuple(int(s) for s in strides)
  if padding == "VALID":
    padding = ((0, 0), (0, 0))
  elif isinstance(padding, str):
    raise ValueError(f"max_pool: padding must be 'VALID' or explicit pairs, got {padding!r}.")
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  if x.ndim != 4 or len(window) != 2 or len(strides) != 2 or len(padding) != 2:
    raise ValueError(
        f"max_pool: expected NHWC input and 2-D window/strides/padding, got x {x.shape}, "
        f"window {window}, strides {strides}, padding {padding}.")
  if min(window) < 1 or min(strides) < 1 or min(min(p) for p in padding) < 0:
    raise ValueError(f"max_pool: window {window} and strides {strides} must be >= 1, "
                     f"padding {padding} >= 0.")
  return _max_pool(x, window, strides, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool(x, window, strides, padding):
  return nn.max_pool(x, window, strides=strides, padding=padding)


def _fwd(x, window, strides, padding):
  out = _max_pool(x, window, strides, padding)
  return out, (x, out)


def _bwd(window, strides, padding, res, g):
  x, out = res
  b, h, w, c = x.shape
  (lo_h, hi_h), (lo_w, hi_w) = padding
  ho, wo = out.shape[1:3]
  sh, sw = strides
  # Padded with -inf as the forward pass is: select-and-scatter gives a window
  # whose maximum is -inf to its first entry, padding included (then it is lost).
  xp = jnp.pad(x, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)), constant_values=-jnp.inf)
  hp, wp = xp.shape[1:3]
  span_h, span_w = (ho - 1) * sh + 1, (wo - 1) * sw + 1
  offsets = list(itertools.product(range(window[0]), range(window[1])))
  taken = jnp.zeros(out.shape, bool)
  picked = {}
  for di, dj in offsets:  # the window in row-major order: its first maximum takes the gradient
    view = lax.slice(xp, (0, di, dj, 0), (b, di + span_h, dj + span_w, c), (1, sh, sw, 1))
    first = (view == out) & ~taken
    picked[di, dj] = jnp.where(first, g, jnp.zeros_like(g))
    taken = taken | first
  zero = jnp.zeros((), g.dtype)
  dxp = None
  # An input gets the gradients of overlapping windows; select-and-scatter adds
  # them in window order, i.e. from the largest offset within the window down.
  for di, dj in reversed(offsets):
    part = lax.pad(picked[di, dj], zero, (
        (0, 0, 0),
        (di, hp - di - span_h, sh - 1),
        (dj, wp - dj - span_w, sw - 1),
        (0, 0, 0)))
    dxp = part if dxp is None else dxp + part
  return (dxp[:, lo_h:lo_h + h, lo_w:lo_w + w],)


_max_pool.defvjp(_fwd, _bwd)
