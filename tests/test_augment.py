"""CIFAR-style augmentation: crop/flip exactness against numpy, randomness, the train switch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msal_jax import augment, models, train

# One compilation each (eager mode would compile every primitive on its own).
_crop_flip = jax.jit(augment.crop_flip, static_argnames="pad")
_random_crop_flip = jax.jit(augment.random_crop_flip, static_argnames="pad")
_params = jax.jit(augment.crop_flip_params, static_argnums=1, static_argnames="pad")


def _images(b=6, h=8, w=10, ch=3):
  # Every pixel distinct (mod 256): a wrong offset or flip cannot go unnoticed.
  return (np.arange(b * h * w * ch).reshape(b, h, w, ch) * 7 % 251 + 1).astype(np.uint8)


def _numpy_crop_flip(image, dy, dx, flip, pad):
  h, w = image.shape[:2]
  padded = np.zeros((h + 2 * pad, w + 2 * pad, image.shape[2]), image.dtype)
  padded[pad:pad + h, pad:pad + w] = image
  out = padded[dy:dy + h, dx:dx + w]
  return out[:, ::-1] if flip else out


def test_crop_flip_at_hand_picked_offsets():
  x = _images(b=5)
  dy = np.array([0, 4, 8, 2, 4])
  dx = np.array([0, 4, 8, 7, 4])
  flip = np.array([False, False, False, True, True])
  out = np.asarray(_crop_flip(x, dy, dx, flip, pad=4))
  assert out.shape == x.shape and out.dtype == np.uint8
  # (0, 0): the image moves down-right by 4, zeros above and left of it.
  np.testing.assert_array_equal(out[0, 4:, 4:], x[0, :-4, :-4])
  assert not out[0, :4].any() and not out[0, :, :4].any()
  np.testing.assert_array_equal(out[1], x[1])  # (pad, pad): the image itself
  np.testing.assert_array_equal(out[2, :-4, :-4], x[2, 4:, 4:])  # up-left, zeros below/right
  assert not out[2, -4:].any() and not out[2, :, -4:].any()
  np.testing.assert_array_equal(out[4], x[4, :, ::-1])  # a plain mirror image
  for i in range(5):
    np.testing.assert_array_equal(out[i], _numpy_crop_flip(x[i], dy[i], dx[i], flip[i], 4))


def test_random_crop_flip_is_the_crop_at_the_drawn_offsets():
  x = _images(b=24, h=6, w=5, ch=2)
  key = jax.random.PRNGKey(3)
  dy, dx, flip = (np.asarray(a) for a in _params(key, 24, pad=2))
  assert dy.shape == dx.shape == flip.shape == (24,) and flip.dtype == bool
  out = np.asarray(_random_crop_flip(key, x, pad=2))
  for i in range(24):
    np.testing.assert_array_equal(out[i], _numpy_crop_flip(x[i], dy[i], dx[i], flip[i], 2))
  # Image i's choices come from its own key: split(key, B)[i].
  k_y, k_x, k_f = jax.random.split(jax.random.split(key, 24)[5], 3)
  assert dy[5] == jax.random.randint(k_y, (), 0, 5) and dx[5] == jax.random.randint(k_x, (), 0, 5)
  assert flip[5] == jax.random.bernoulli(k_f)


def test_offsets_cover_the_range_and_flip_is_fair():
  dy, dx, flip = (np.asarray(a) for a in _params(jax.random.PRNGKey(0), 2000))
  np.testing.assert_array_equal(np.unique(dy), np.arange(9))
  np.testing.assert_array_equal(np.unique(dx), np.arange(9))
  assert 0.45 < flip.mean() < 0.55
  assert abs(np.corrcoef(dy, dx)[0, 1]) < 0.05  # independent draws


def test_determinism_and_keys():
  x = jnp.asarray(_images(b=16, h=32, w=32))
  a = _random_crop_flip(jax.random.PRNGKey(1), x)
  b = _random_crop_flip(jax.random.PRNGKey(1), x)
  c = _random_crop_flip(jax.random.PRNGKey(2), x)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert a.shape == (16, 32, 32, 3) and a.dtype == jnp.uint8
  # pad=0: no room to move, so only flips remain.
  d = np.asarray(_random_crop_flip(jax.random.PRNGKey(1), x, pad=0))
  for i in range(16):
    assert np.array_equal(d[i], x[i]) or np.array_equal(d[i], np.asarray(x[i])[:, ::-1])
  # float images (e.g. already normalised) are moved the same way.
  np.testing.assert_array_equal(
      _random_crop_flip(jax.random.PRNGKey(1), x.astype(jnp.float32)), a.astype(float))


@pytest.mark.parametrize("augment_flag", [False, True])
def test_train_step_switch(monkeypatch, augment_flag):
  # Traced abstractly (jax.eval_shape: nothing compiles): the train step passes the
  # gathered uint8 batch through random_crop_flip exactly when the switch is on.
  calls, original = [], augment.random_crop_flip

  def spy(key, images, **kwargs):
    calls.append((key.shape, images.shape, images.dtype, kwargs))
    return original(key, images, **kwargs)

  monkeypatch.setattr(train.augment_lib, "random_crop_flip", spy)
  net = models.make_model("small_cnn", num_classes=3, head="max_sep", widths=(4,), hidden=8)
  trainer = train.Trainer(net, (12, 12, 3), (0.5,) * 3, (0.25,) * 3, batch_size=8,
                          augment=augment_flag)
  key = jax.random.PRNGKey(0)
  state = jax.eval_shape(trainer._init_fn, key)
  images = jax.ShapeDtypeStruct((16, 12, 12, 3), jnp.uint8)
  labels = jax.ShapeDtypeStruct((16,), jnp.int32)
  idx = jax.ShapeDtypeStruct((8,), jnp.int32)
  weight = jax.ShapeDtypeStruct((8,), jnp.float32)
  _, loss = jax.eval_shape(trainer._train_step_fn, state, images, labels, idx, weight, key)
  assert loss.shape == ()
  assert calls == ([(key.shape, (8, 12, 12, 3), jnp.uint8, {})] if augment_flag else [])
  jax.eval_shape(trainer._eval_step_fn, state, images, idx)
  assert len(calls) == int(augment_flag)  # inference never augments
