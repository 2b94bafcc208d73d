"""A small CNN trunk for CPU-sized experiments (XLA's CPU convolutions are slow)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
  """``nn.max_pool(x, (2, 2), strides=(2, 2))`` on NHWC, with the same gradient, faster.

  The forward pass is ``nn.max_pool``. The backward pass routes each
  output's gradient to the first maximum of its window in row-major order,
  which is what ``nn.max_pool``'s own gradient (XLA's select-and-scatter)
  does, ties included (tests compare the two bit for bit), but as
  elementwise ops on the window's four strided views: on XLA:CPU
  select-and-scatter took about 90 ms of a 225 ms SmallCNN train step of 128
  MNIST images on one core (docs/benchmarks.md). Odd heights and widths drop
  the last row or column, as VALID pooling does.
  """
  return nn.max_pool(x, (2, 2), strides=(2, 2))


def _max_pool_fwd(x):
  out = max_pool_2x2(x)
  return out, (x, out)


def _max_pool_bwd(res, g):
  x, out = res
  b, h, w, c = x.shape
  h2, w2 = h // 2, w // 2
  x6 = x[:, : 2 * h2, : 2 * w2].reshape(b, h2, 2, w2, 2, c)
  taken = jnp.zeros(out.shape, bool)
  grads = []
  for i in (0, 1):  # the window in row-major order: its first maximum takes the gradient
    for j in (0, 1):
      first = (x6[:, :, i, :, j] == out) & ~taken
      grads.append(jnp.where(first, g, jnp.zeros_like(g)))
      taken = taken | first
  dx = jnp.stack([jnp.stack(grads[0:2], axis=3), jnp.stack(grads[2:4], axis=3)], axis=2)
  dx = dx.reshape(b, 2 * h2, 2 * w2, c)
  return (jnp.pad(dx, ((0, 0), (0, h - 2 * h2), (0, w - 2 * w2), (0, 0))),)


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


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
