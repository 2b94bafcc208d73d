"""A small CNN trunk for CPU-sized experiments (XLA's CPU convolutions are slow)."""

from __future__ import annotations

import flax.linen as nn
import jax

from msal_jax.models.pooling import max_pool


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """``nn.max_pool(x, (2, 2), strides=(2, 2))`` on NHWC, with the same gradient, faster.

  :func:`msal_jax.models.pooling.max_pool` with a 2x2 window and stride: the
  forward pass is ``nn.max_pool``; the backward pass sends each output's
  gradient to the first maximum of its window in row-major order, as
  ``nn.max_pool``'s own gradient (XLA's select-and-scatter) does, ties
  included, but as elementwise ops: on XLA:CPU select-and-scatter took about
  90 ms of a 225 ms SmallCNN train step of 128 MNIST images on one core
  (docs/benchmarks.md). Odd heights and widths drop the last row or column,
  as VALID pooling does.
  """
  return max_pool(x, (2, 2), (2, 2))


class SmallCNN(nn.Module):
  """``[conv3x3 -> relu -> maxpool2] per width -> flatten -> dense(hidden) -> relu``.

  ``__call__(x [B, H, W, Ch], *, train) -> h [B, hidden]``. No BatchNorm, so a
  step costs only the convolutions; ``train`` is accepted for the common trunk
  interface and changes nothing. On 28x28x1 with the defaults the trunk has
  320 + 18,496 + 401,536 = 420,352 parameters.

  Attributes:
    widths: output channels of the conv stages (each halves H and W).
    hidden: width of the dense layer, i.e. of ``h``.
  """

  widths: tuple[int, ...] = (32, 64)
  hidden: int = 128

  def __post_init__(self):
    if not self.widths or any(int(w) < 1 for w in self.widths):
      raise ValueError(f"SmallCNN: widths must be positive ints, got {self.widths!r}.")
    if int(self.hidden) < 1:
      raise ValueError(f"SmallCNN: hidden must be a positive int, got {self.hidden!r}.")
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train
    if x.ndim != 4:
      raise ValueError(f"SmallCNN: expected NHWC input, got shape {x.shape}.")
    for width in self.widths:
      x = nn.relu(nn.Conv(int(width), (3, 3), padding="SAME")(x))
      x = max_pool_2x2(x)  # nn.max_pool(x, (2, 2), strides=(2, 2)), faster backward
    x = x.reshape(x.shape[0], -1)
    return nn.relu(nn.Dense(int(self.hidden))(x))
