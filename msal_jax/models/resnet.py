"""ResNet18 as in torchvision (the trunk DeepAL+ and the paper use), in Flax linen.

BasicBlock x [2, 2, 2, 2], widths 64-128-256-512, convolutions without bias,
BatchNorm with torch's defaults (torch ``momentum=0.1`` is Flax's
``momentum=0.9``; ``eps=1e-5``), global average pooling to a 512-d embedding,
no final ``fc`` (the heads live in :mod:`msal_jax.models.heads`). Two stems:

* ``"imagenet"`` (MNIST, SVHN): 7x7 stride-2 conv (pad 3), 3x3 stride-2
  max-pool (pad 1);
* ``"cifar"`` (CIFAR, TinyImageNet): 3x3 stride-1 conv (pad 1); DeepAL+ keeps
  the max-pool after it, which is the default here too (``maxpool=False``
  drops it).

Grayscale input (1 channel) is first mapped to 3 channels by a 1x1 convolution
with bias. Convolutions use torchvision's initialisation (Kaiming normal,
``fan_out``, ReLU gain); BatchNorm starts at scale 1, bias 0, and no residual
branch is zero-initialised (torchvision's ``zero_init_residual=False``).

One known difference from torch: Flax's BatchNorm keeps the biased batch
variance in its running average where torch keeps the unbiased one; the
difference is a factor ``n / (n - 1)`` with ``n = B * H * W`` values per channel.

Convolutions whose output map is tiny (at most :data:`SMALL_MAP_POSITIONS`
positions, e.g. layer3 and layer4 on 28x28 MNIST, at 2x2 and 1x1) and all 1x1
convolutions run as im2col + one matmul (:func:`conv_general_dilated`) instead
of XLA's convolution, which on the CPU is up to 100x slower there. They stay
``nn.Conv`` modules (``conv_general_dilated=`` hook) with the same parameters:
the parameter tree, and so the checkpoints, do not change. The stem's max-pool
is :func:`msal_jax.models.pooling.max_pool`: ``nn.max_pool``'s forward pass and
gradient; forward + backward 1.6-2.8x faster on XLA:CPU than with
select-and-scatter (``benchmarks/pooling.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from msal_jax.models.pooling import max_pool

STEMS = ("imagenet", "cifar")
STAGE_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = (2, 2, 2, 2)

# Output maps of at most this many positions (H_out * W_out), and all 1x1 kernels,
# are convolved as im2col + matmul. Measured on XLA:CPU (one thread, 3x3 pad-1
# convs, batch 512, forward): with <= 8 output positions (1x1, 2x2, 1x8, 2x4,
# 2x3, ...) XLA's convolution is 5-100x slower than the matmul (2x2x256: 866 vs
# 74 ms; 1x1x512: 369 vs 5 ms); from 9 positions on (3x3, 2x5, 4x4, 7x7) it is
# about 2x faster than the matmul. 1x1 kernels need no patches (a strided slice)
# and their backward pass is 1.5-4x faster as a matmul at every map size tried
# (4x4 to 16x16). The rule does not depend on the backend: im2col + matmul is also
# the usual choice for tiny maps and pointwise convs on a GPU.
SMALL_MAP_POSITIONS = 8
_NHWC = ("NHWC", "HWIO", "NHWC")


def _taps(kernel: int, stride: int, pad_lo: int, size: int, out: int) -> list[int]:
  """Kernel offsets along one axis that read some input, not only zero padding."""
  return [
    k for k in range(kernel) if any(pad_lo <= k + stride * o < pad_lo + size for o in range(out))
  ]


def _im2col_conv(
  x: jax.Array,
  kernel: jax.Array,
  strides: Sequence[int],
  pads: Sequence[tuple[int, int]],
  out_hw: tuple[int, int],
  precision,
) -> jax.Array:
  """NHWC x HWIO convolution as strided slices of the padded input + one matmul.

  Kernel taps that only ever meet zero padding are dropped (exact: they add
  zeros), e.g. a 3x3 pad-1 conv on a 1x1 map is one ``[B, Cin] @ [Cin, Cout]``.
  """
  b, h, w, cin = x.shape
  kh, kw, _, cout = kernel.shape
  (sh, sw), (ho, wo) = strides, out_hw
  rows = _taps(kh, sh, pads[0][0], h, ho)
  cols = _taps(kw, sw, pads[1][0], w, wo)
  x = jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
  patches = [
    lax.slice(
      x, (0, i, j, 0), (b, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, cin), (1, sh, sw, 1)
    )
    for i in rows
    for j in cols
  ]
  # [B, Ho, Wo, T, Cin] against [T, Cin, Cout], both flattened tap-major.
  lhs = jnp.stack(patches, axis=3).reshape(b * ho * wo, len(patches) * cin)
  rhs = jnp.stack([kernel[i, j] for i in rows for j in cols]).reshape(-1, cout)
  y = lax.dot_general(lhs, rhs, (((1,), (0,)), ((), ())), precision=precision)
  return y.reshape(b, ho, wo, cout)


def conv_general_dilated(
  lhs: jax.Array,
  rhs: jax.Array,
  window_strides: Sequence[int],
  padding,
  lhs_dilation: Sequence[int] | None = None,
  rhs_dilation: Sequence[int] | None = None,
  dimension_numbers=None,
  feature_group_count: int = 1,
  batch_group_count: int = 1,
  precision=None,
  preferred_element_type=None,
) -> jax.Array:
  """``lax.conv_general_dilated`` for ``nn.Conv(conv_general_dilated=...)``.

  A 2-D NHWC/HWIO convolution (no dilation, no groups) whose output has at
  most :data:`SMALL_MAP_POSITIONS` positions, or whose kernel is 1x1, is
  computed as im2col + matmul; every other call goes to
  ``lax.conv_general_dilated`` unchanged. The choice
  depends on static shapes only, so it is made once per trace.
  """
  conv = functools.partial(
    lax.conv_general_dilated,
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=lhs_dilation,
    rhs_dilation=rhs_dilation,
    dimension_numbers=dimension_numbers,
    feature_group_count=feature_group_count,
    batch_group_count=batch_group_count,
    precision=precision,
    preferred_element_type=preferred_element_type,
  )
  if (
    lhs.ndim != 4
    or rhs.ndim != 4
    or feature_group_count != 1
    or batch_group_count != 1
    or preferred_element_type is not None
    or lhs.dtype != rhs.dtype
    or any(d != 1 for d in (lhs_dilation or ()))
    or any(d != 1 for d in (rhs_dilation or ()))
    or lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
  ):
    return conv()
  strides = tuple(window_strides)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  if any(p < 0 for pad in pads for p in pad):
    return conv()
  out_hw = tuple(
    (n + lo + hi - k) // s + 1
    for n, (lo, hi), k, s in zip(lhs.shape[1:3], pads, rhs.shape[:2], strides, strict=True)
  )
  pointwise = rhs.shape[0] == rhs.shape[1] == 1
  if min(out_hw) < 1 or (out_hw[0] * out_hw[1] > SMALL_MAP_POSITIONS and not pointwise):
    return conv()
  rows = _taps(rhs.shape[0], strides[0], pads[0][0], lhs.shape[1], out_hw[0])
  cols = _taps(rhs.shape[1], strides[1], pads[1][0], lhs.shape[2], out_hw[1])
  if not rows or not cols:
    return conv()
  return _im2col_conv(lhs, rhs, strides, pads, out_hw, precision)


# torchvision: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
# i.e. an untruncated normal with std sqrt(2 / (out_channels * kh * kw)).
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
_Conv = functools.partial(
  nn.Conv, use_bias=False, kernel_init=_conv_init, conv_general_dilated=conv_general_dilated
)
_BatchNorm = functools.partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5)


class BasicBlock(nn.Module):
  """torchvision's ``BasicBlock``: two 3x3 convs with a (projected) shortcut.

  ``__call__(x [B, H, W, Cin], *, train) -> [B, H/s, W/s, features]`` with
  ``s = strides``. The shortcut is a 1x1 stride-``s`` conv + BatchNorm when
  the shape changes, the identity otherwise.
  """

  features: int
  strides: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    norm = functools.partial(_BatchNorm, use_running_average=not train)
    y = _Conv(self.features, (3, 3), self.strides, padding=1, name="conv1")(x)
    y = nn.relu(norm(name="bn1")(y))
    y = _Conv(self.features, (3, 3), 1, padding=1, name="conv2")(y)
    y = norm(name="bn2")(y)
    if self.strides != 1 or x.shape[-1] != self.features:
      x = _Conv(self.features, (1, 1), self.strides, padding=0, name="downsample_conv")(x)
      x = norm(name="downsample_bn")(x)
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """torchvision's ResNet18 trunk: ``__call__(x [B, H, W, Ch], *, train) -> h [B, 512]``.

  ``x`` is a float32 NHWC batch, already normalised; ``Ch`` is 1 (mapped to 3
  by a 1x1 conv first) or 3. ``train=True`` normalises with batch statistics
  and updates the running averages in the ``"batch_stats"`` collection (apply
  with ``mutable=["batch_stats"]``); ``train=False`` uses the running averages.

  With ``stem="imagenet"`` and 3 input channels the trunk has exactly
  torchvision ``resnet18``'s parameters minus its ``fc``: 11,176,512.

  Attributes:
    stem: ``"imagenet"`` (7x7/2 conv + max-pool) or ``"cifar"`` (3x3/1 conv).
    maxpool: keep the 3x3/2 max-pool after the stem conv; ``None`` = DeepAL+'s
      choice, which keeps it for both stems.
  """

  stem: str = "imagenet"
  maxpool: bool | None = None

  def __post_init__(self):
    if self.stem not in STEMS:
      raise ValueError(
        f"ResNet18: unknown stem {self.stem!r}; allowed: {', '.join(map(repr, STEMS))}."
      )
    if self.maxpool is not None and not isinstance(self.maxpool, bool):
      raise ValueError(f"ResNet18: maxpool must be True, False or None, got {self.maxpool!r}.")
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
      raise ValueError(f"ResNet18: expected NHWC input with 1 or 3 channels, got shape {x.shape}.")
    if x.shape[-1] == 1:
      x = nn.Conv(3, (1, 1), conv_general_dilated=conv_general_dilated, name="gray_to_rgb")(x)
    if self.stem == "imagenet":
      x = _Conv(64, (7, 7), 2, padding=3, name="stem_conv")(x)
    else:
      x = _Conv(64, (3, 3), 1, padding=1, name="stem_conv")(x)
    x = _BatchNorm(use_running_average=not train, name="stem_bn")(x)
    x = nn.relu(x)
    if self.maxpool is None or self.maxpool:
      # nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1))), faster backward
      x = max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
    for stage, (width, blocks) in enumerate(zip(STAGE_WIDTHS, BLOCKS_PER_STAGE, strict=True)):
      for block in range(blocks):
        strides = 2 if stage > 0 and block == 0 else 1
        x = BasicBlock(width, strides, name=f"layer{stage + 1}_{block}")(x, train=train)
    return jnp.mean(x, axis=(1, 2))
