"""CIFAR-style augmentation as pure array ops: random crop after zero padding, then flip.

The device-side equivalent of torchvision's ``RandomCrop(size, padding=4)``
followed by ``RandomHorizontalFlip()`` (what DeepAL+ trains CIFAR with): each
image is padded with ``pad`` zero pixels on every side, a window of the
original size is cut at offsets ``(dy, dx)`` drawn uniformly from
``0 .. 2 * pad``, and the window is mirrored left-right with probability 1/2.
Applied to the raw ``uint8`` pixels before normalisation, so the padding is
black, as torchvision's.

Each image gets its own key (``jax.random.split`` of the batch key) and the
per-image op is ``vmap``-ed: a batch's result does not depend on how it is
split into devices or chunks. Everything is jit-able with static shapes.

>>> import jax, jax.numpy as jnp
>>> x = jnp.zeros((2, 32, 32, 3), jnp.uint8)
>>> random_crop_flip(jax.random.PRNGKey(0), x).shape
(2, 32, 32, 3)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

PAD = 4  # CIFAR's padding (torchvision RandomCrop(32, padding=4))


def _params_one(key: jax.Array, pad: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  k_y, k_x, k_f = jax.random.split(key, 3)
  dy = jax.random.randint(k_y, (), 0, 2 * pad + 1)
  dx = jax.random.randint(k_x, (), 0, 2 * pad + 1)
  flip = jax.random.bernoulli(k_f)
  return dy, dx, flip


def crop_flip_params(
    key: jax.Array, num: int, *, pad: int = PAD
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The random choices :func:`random_crop_flip` makes for a batch of ``num`` images.

  Args:
    key: the batch's PRNG key; image ``i`` uses ``jax.random.split(key, num)[i]``.
    num: ``B``, the number of images.
    pad: the padding, so offsets lie in ``0 .. 2 * pad``.

  Returns:
    ``(dy [B] int32, dx [B] int32, flip [B] bool)``: the top-left corner of each
    window in the padded image and whether it is mirrored.
  """
  return jax.vmap(lambda k: _params_one(k, pad))(jax.random.split(key, num))


def _crop_flip_one(image: jax.Array, dy: jax.Array, dx: jax.Array, flip: jax.Array, pad: int):
  h, w, ch = image.shape
  padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)))
  window = jax.lax.dynamic_slice(padded, (dy, dx, jnp.zeros_like(dy)), (h, w, ch))
  return jnp.where(flip, window[:, ::-1, :], window)


def crop_flip(
    images: ArrayLike, dy: ArrayLike, dx: ArrayLike, flip: ArrayLike, *, pad: int = PAD
) -> jax.Array:
  """Deterministic crop-and-flip of a batch at given offsets.

  ``out[i] = W[:, ::-1] if flip[i] else W`` with
  ``W = P_i[dy[i] : dy[i] + H, dx[i] : dx[i] + W]`` and ``P_i`` image ``i``
  padded with ``pad`` zeros on each side of both spatial axes.

  Args:
    images: ``[B, H, W, Ch]``, any dtype (the pixels are only moved).
    dy, dx: ``[B]`` integer offsets in ``0 .. 2 * pad``.
    flip: ``[B]`` bool.
    pad: zero padding on each side.

  Returns:
    ``[B, H, W, Ch]`` of the input's dtype.
  """
  images = jnp.asarray(images)
  return jax.vmap(lambda x, y, z, f: _crop_flip_one(x, y, z, f, pad))(
      images, jnp.asarray(dy), jnp.asarray(dx), jnp.asarray(flip)
  )


def random_crop_flip(key: jax.Array, images: ArrayLike, *, pad: int = PAD) -> jax.Array:
  """Random ``pad``-pixel crop and horizontal flip of every image of a batch.

  Args:
    key: PRNG key of the batch (each image uses its own split of it).
    images: ``[B, H, W, Ch]`` (normally the raw ``uint8`` pixels).
    pad: zero padding on each side (CIFAR: 4).

  Returns:
    ``[B, H, W, Ch]``, the input's dtype: :func:`crop_flip` at
    :func:`crop_flip_params` ``(key, B, pad=pad)``.
  """
  images = jnp.asarray(images)
  dy, dx, flip = crop_flip_params(key, images.shape[0], pad=pad)
  return crop_flip(images, dy, dx, flip, pad=pad)
