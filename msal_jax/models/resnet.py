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
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

STEMS = ("imagenet", "cifar")
STAGE_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = (2, 2, 2, 2)

# torchvision: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
# i.e. an untruncated normal with std sqrt(2 / (out_channels * kh * kw)).
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
_Conv = functools.partial(nn.Conv, use_bias=False, kernel_init=_conv_init)
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
      x = nn.Conv(3, (1, 1), name="gray_to_rgb")(x)
    if self.stem == "imagenet":
      x = _Conv(64, (7, 7), 2, padding=3, name="stem_conv")(x)
    else:
      x = _Conv(64, (3, 3), 1, padding=1, name="stem_conv")(x)
    x = _BatchNorm(use_running_average=not train, name="stem_bn")(x)
    x = nn.relu(x)
    if self.maxpool is None or self.maxpool:
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for stage, (width, blocks) in enumerate(zip(STAGE_WIDTHS, BLOCKS_PER_STAGE, strict=True)):
      for block in range(blocks):
        strides = 2 if stage > 0 and block == 0 else 1
        x = BasicBlock(width, strides, name=f"layer{stage + 1}_{block}")(x, train=train)
    return jnp.mean(x, axis=(1, 2))
