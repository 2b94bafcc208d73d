"""Tests of msal_jax.models: exact parameter counts, the fixed prototype matrix,
shapes, gradients, BatchNorm statistics and dropout. Inputs are tiny: XLA's
CPU convolutions are slow."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from msal_jax import models, prototypes
from msal_jax.models import heads, resnet

# torchvision resnet18: 11,689,512 parameters, of which fc = 512 * 1000 + 1000.
TORCH_RESNET18_TRUNK = 11_689_512 - (512 * 1000 + 1000)
CIFAR_STEM_DELTA = -3 * 64 * 7 * 7 + 3 * 64 * 3 * 3


def _count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _init_shapes(module: nn.Module, shape: tuple[int, ...], **kwargs):
  """Variable shapes of ``module`` without running its initialisers."""
  x = jnp.zeros(shape, jnp.float32)
  return jax.eval_shape(lambda: module.init(jax.random.key(0), x, **kwargs))


class _Flatten(nn.Module):
  """A parameter-free trunk (``[B, H, W, Ch] -> [B, H*W*Ch]``) for fast head tests."""

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train
    return x.reshape(x.shape[0], -1)


# -- max-separation head -------------------------------------------------------


def test_max_separation_head_logits_are_rho_z_times_simplex():
  num_classes, rho = 7, 0.1
  head = heads.MaxSeparationHead(num_classes, rho=rho)
  h = jax.random.normal(jax.random.key(1), (5, 12))
  variables = head.init(jax.random.key(0), h)
  logits, z = head.apply(variables, h)
  assert logits.shape == (5, num_classes) and z.shape == (5, num_classes - 1)
  want = rho * np.asarray(z, np.float64) @ prototypes.simplex_numpy(num_classes).T
  np.testing.assert_allclose(np.asarray(logits), want, rtol=1e-5, atol=1e-6)


def test_max_separation_head_has_only_dense_params():
  head = heads.MaxSeparationHead(10)
  variables = head.init(jax.random.key(0), jnp.zeros((2, 16)))
  assert set(variables) == {"params"}
  flat = {k: v.shape for k, v in traverse_util.flatten_dict(variables["params"], sep="/").items()}
  assert flat == {"dense/kernel": (16, 9), "dense/bias": (9,)}


def test_max_separation_head_prototypes_stay_fixed_under_adam():
  num_classes, rho = 5, 1.0
  model = models.Classifier(trunk=_Flatten(), head=heads.MaxSeparationHead(num_classes, rho))
  kx, ky = jax.random.split(jax.random.key(0))
  x = jax.random.normal(kx, (16, 2, 2, 3))
  y = jax.random.randint(ky, (16,), 0, num_classes)
  params = model.init(jax.random.key(1), x)["params"]
  tx = optax.adam(1e-2)
  opt_state = tx.init(params)
  # The optimizer state mirrors the params: no [C, C-1] matrix anywhere in it.
  assert (num_classes, num_classes - 1) not in {leaf.shape for leaf in jax.tree.leaves(opt_state)}

  @jax.jit
  def step(params, opt_state):
    def loss_fn(p):
      logits, _ = model.apply({"params": p}, x, train=True)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  new_params = params
  for _ in range(5):
    new_params, opt_state, _ = step(new_params, opt_state)
  kernel0 = params["head"]["dense"]["kernel"]
  kernel1 = new_params["head"]["dense"]["kernel"]
  assert float(jnp.max(jnp.abs(kernel1 - kernel0))) > 1e-3
  logits, z = model.apply({"params": new_params}, x)
  # Recover the matrix the trained model uses: logits = rho * z @ P^T.
  used, *_ = np.linalg.lstsq(rho * np.asarray(z, np.float64), np.asarray(logits, np.float64))
  np.testing.assert_allclose(used.T, prototypes.simplex_numpy(num_classes), atol=1e-4)


@pytest.mark.parametrize(
  ("kwargs", "match"),
  [
    ({"num_classes": 1}, "num_classes must be >= 2"),
    ({"num_classes": 3, "rho": 0.0}, "rho must be > 0"),
    ({"num_classes": 3, "rho": -1.0}, "rho must be > 0"),
  ],
)
def test_max_separation_head_validates(kwargs, match):
  with pytest.raises(ValueError, match=match):
    heads.MaxSeparationHead(**kwargs)


def test_linear_head_returns_h_as_features():
  head = heads.LinearHead(3)
  h = jnp.arange(8.0).reshape(2, 4)
  variables = head.init(jax.random.key(0), h)
  logits, feats = head.apply(variables, h)
  assert logits.shape == (2, 3)
  np.testing.assert_array_equal(np.asarray(feats), np.asarray(h))
  np.testing.assert_allclose(
    np.asarray(logits),
    np.asarray(h) @ np.asarray(variables["params"]["dense"]["kernel"])
    + np.asarray(variables["params"]["dense"]["bias"]),
    rtol=1e-6,
  )


# -- ResNet18 ------------------------------------------------------------------


def test_torchvision_trunk_count_arithmetic():
  # Recount torchvision's resnet18 without fc: conv weights + BN (scale, bias).
  bn = lambda c: 2 * c
  stem = 3 * 64 * 7 * 7 + bn(64)
  total, cin = stem, 64
  for width in (64, 128, 256, 512):
    for block in range(2):
      total += cin * width * 9 + bn(width) + width * width * 9 + bn(width)
      if block == 0 and cin != width:
        total += cin * width + bn(width)
      cin = width
  assert total == TORCH_RESNET18_TRUNK == 11_176_512


@pytest.mark.parametrize(
  ("stem", "channels", "expected"),
  [
    ("imagenet", 3, TORCH_RESNET18_TRUNK),
    ("cifar", 3, TORCH_RESNET18_TRUNK + CIFAR_STEM_DELTA),
    ("imagenet", 1, TORCH_RESNET18_TRUNK + 1 * 3 + 3),
    ("cifar", 1, TORCH_RESNET18_TRUNK + CIFAR_STEM_DELTA + 1 * 3 + 3),
  ],
)
def test_resnet18_param_count_matches_torchvision(stem, channels, expected):
  variables = _init_shapes(resnet.ResNet18(stem=stem), (1, 32, 32, channels), train=False)
  assert _count(variables["params"]) == expected
  # BatchNorm running mean and var: the same channels as the BN scales and biases.
  bn_channels = 64 + sum(2 * 2 * w for w in (64, 128, 256, 512)) + 128 + 256 + 512
  assert _count(variables["batch_stats"]) == 2 * bn_channels


def test_resnet18_maxpool_option_changes_no_params_but_resolution():
  x = jnp.zeros((1, 32, 32, 3))
  for maxpool in (None, True, False):
    variables = _init_shapes(resnet.ResNet18(stem="cifar", maxpool=maxpool), x.shape, train=False)
    assert _count(variables["params"]) == TORCH_RESNET18_TRUNK + CIFAR_STEM_DELTA

  def last_block_output(maxpool):
    module = resnet.ResNet18(stem="cifar", maxpool=maxpool)
    _, state = jax.eval_shape(
      lambda: module.init_with_output(jax.random.key(0), x, train=False, capture_intermediates=True)
    )
    return state["intermediates"]["layer4_1"]["__call__"][0].shape

  assert last_block_output(None) == (1, 2, 2, 512)
  assert last_block_output(False) == (1, 4, 4, 512)


def test_resnet18_rejects_unknown_stem():
  with pytest.raises(ValueError, match="allowed: 'imagenet', 'cifar'"):
    resnet.ResNet18(stem="tiny")
  with pytest.raises(ValueError, match="allowed: 'imagenet', 'cifar'"):
    models.make_model("resnet18", num_classes=10, head="linear", stem="7x7")


@pytest.fixture(scope="module")
def resnet_imagenet():
  """A really initialised ResNet18 Classifier (max-sep head, C = 4), its input
  ``[2, 32, 32, 3]`` and variables; initialised once, as eager init on CPU costs
  seconds (one small compilation per op and shape)."""
  model = models.make_model("resnet18", num_classes=4, head="max_sep", stem="imagenet")
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  return model, x, model.init(jax.random.key(1), x)


def test_resnet18_forward_shapes_both_stems(resnet_imagenet):
  model, x, variables = resnet_imagenet
  logits, z = model.apply(variables, x)  # eager: faster than compiling on CPU
  h = model.apply(variables, x, method=lambda m, x: m.trunk(x, train=False))
  assert h.shape == (2, 512) and logits.shape == (2, 4) and z.shape == (2, 3)
  assert np.all(np.isfinite(np.asarray(logits)))

  model = models.make_model("resnet18", num_classes=10, head="linear", stem="cifar")
  variables = model.init(jax.random.key(1), x)
  logits, h = model.apply(variables, x)
  assert h.shape == (2, 512) and logits.shape == (2, 10)
  assert np.all(np.isfinite(np.asarray(logits)))


def test_resnet18_gradients_and_batch_stats(resnet_imagenet):
  model, x, variables = resnet_imagenet
  y = jnp.array([0, 3])
  params, stats = variables["params"], variables["batch_stats"]

  @jax.jit
  def grad_step(params, stats):
    def loss_fn(p):
      (logits, _), updates = model.apply(
        {"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
      )
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates

    (_, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    _, eval_updates = model.apply(
      {"params": params, "batch_stats": stats}, x, train=False, mutable=["batch_stats"]
    )
    _, state = model.apply(
      {"params": params, "batch_stats": stats},
      x,
      train=True,
      mutable=["batch_stats", "intermediates"],
      capture_intermediates=lambda mdl, _: mdl.name == "stem_conv",
    )
    stem_out = state["intermediates"]["trunk"]["stem_conv"]["__call__"][0]
    return grads, updates["batch_stats"], eval_updates["batch_stats"], stem_out

  grads, train_stats, eval_stats, stem_out = grad_step(params, stats)
  flat = traverse_util.flatten_dict(grads, sep="/")
  assert len(flat) == len(jax.tree.leaves(params))
  for name, g in flat.items():
    g = np.asarray(g)
    assert np.all(np.isfinite(g)), name
    assert np.any(g != 0), name
  # Train mode moves every running mean and var off its init (0 and 1); eval
  # mode leaves them untouched.
  before = traverse_util.flatten_dict(stats, sep="/")
  after_train = traverse_util.flatten_dict(train_stats, sep="/")
  after_eval = traverse_util.flatten_dict(eval_stats, sep="/")
  assert set(after_train) == set(before) == set(after_eval)
  for name, value in before.items():
    assert not np.array_equal(np.asarray(after_train[name]), np.asarray(value)), name
    np.testing.assert_array_equal(np.asarray(after_eval[name]), np.asarray(value))
  # Torch's momentum 0.1 is Flax's 0.9: running = 0.9 * running + 0.1 * batch
  # statistic (Flax keeps the biased variance; torch the unbiased one).
  stem_out = np.asarray(stem_out, np.float64)
  np.testing.assert_allclose(
    after_train["trunk/stem_bn/mean"], 0.1 * stem_out.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6
  )
  np.testing.assert_allclose(
    after_train["trunk/stem_bn/var"], 0.9 + 0.1 * stem_out.var(axis=(0, 1, 2)), rtol=1e-4
  )


# -- SmallCNN and dropout --------------------------------------------------------


def test_small_cnn_shapes_and_param_count():
  x = jnp.zeros((3, 28, 28, 1))
  h, variables = jax.eval_shape(
    lambda: models.SmallCNN().init_with_output(jax.random.key(0), x, train=False)
  )
  assert set(variables) == {"params"} and h.shape == (3, 128)
  conv1, conv2, dense = 9 * 1 * 32 + 32, 9 * 32 * 64 + 64, 7 * 7 * 64 * 128 + 128
  assert _count(variables["params"]) == conv1 + conv2 + dense == 420_352
  model = models.make_model("small_cnn", num_classes=10, head="max_sep", widths=[8, 16], hidden=32)
  logits, feats = model.apply(model.init(jax.random.key(0), x), x)
  assert logits.shape == (3, 10) and feats.shape == (3, 9)


@pytest.mark.parametrize("shape", [(3, 28, 28, 5), (2, 7, 9, 3), (1, 2, 2, 1), (2, 3, 3, 4)])
def test_small_cnn_pooling_is_nn_max_pool_with_the_same_gradient(shape):
  # Integer values: many tied maxima per window; the gradient must go where
  # nn.max_pool's (XLA select-and-scatter) sends it, bit for bit. Odd sizes
  # drop the last row/column as VALID pooling does.
  from msal_jax.models.cnn import max_pool_2x2

  rng = np.random.default_rng(sum(shape))
  x = jnp.asarray(rng.integers(0, 3, shape).astype(np.float32))
  g = jnp.asarray(rng.normal(size=(shape[0], shape[1] // 2, shape[2] // 2, shape[3])),
                  jnp.float32)
  ref = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))  # noqa: E731
  out, vjp = jax.vjp(max_pool_2x2, x)
  want, ref_vjp = jax.vjp(ref, x)
  np.testing.assert_array_equal(out, want)
  np.testing.assert_array_equal(vjp(g)[0], ref_vjp(g)[0])
  jitted = jax.jit(lambda x, g: jax.vjp(max_pool_2x2, x)[1](g)[0])
  np.testing.assert_array_equal(jitted(x, g), ref_vjp(g)[0])


_PAD1 = ((1, 1), (1, 1))


@pytest.mark.parametrize("shape,window,strides,padding,values", [
    ((3, 14, 14, 4), (3, 3), (2, 2), _PAD1, "ties"),  # ResNet18's stem pooling
    ((3, 14, 14, 4), (3, 3), (2, 2), _PAD1, "normal"),
    ((2, 7, 9, 3), (3, 3), (2, 2), _PAD1, "with_-inf"),  # -inf windows: padding picked
    ((1, 2, 2, 1), (3, 3), (2, 2), _PAD1, "ties"),
    ((2, 8, 8, 3), (3, 3), (1, 1), _PAD1, "ties"),  # up to 9 windows per input
    ((2, 9, 6, 2), (3, 2), (2, 1), ((0, 1), (2, 0)), "with_-inf"),
    ((2, 7, 9, 3), (2, 2), (2, 2), "VALID", "ties"),
])
def test_max_pool_is_nn_max_pool_with_the_same_gradient(shape, window, strides, padding, values):
  # The gradient must be select-and-scatter's bit for bit: the first maximum
  # of each window (ties: integer values; -inf windows may pick padding), and
  # overlapping windows' gradients summed in the same order (3x3/1: up to 9).
  from msal_jax.models.pooling import max_pool

  rng = np.random.default_rng(sum(shape) + len(values))
  if values == "normal":
    x = rng.normal(size=shape).astype(np.float32)
  else:
    x = rng.integers(0, 3, shape).astype(np.float32)
    if values == "with_-inf":
      x[x == 0] = -np.inf
  x = jnp.asarray(x)
  want, ref_vjp = jax.vjp(lambda x: nn.max_pool(x, window, strides=strides, padding=padding), x)
  out, vjp = jax.vjp(lambda x: max_pool(x, window, strides, padding), x)
  np.testing.assert_array_equal(out, want)
  g = jnp.asarray(rng.normal(size=want.shape), jnp.float32)
  np.testing.assert_array_equal(vjp(g)[0], ref_vjp(g)[0])
  pool = lambda x: max_pool(x, window, strides, padding)  # noqa: E731
  jitted = jax.jit(lambda x, g: jax.vjp(pool, x)[1](g)[0])
  np.testing.assert_array_equal(jitted(x, g), ref_vjp(g)[0])


def test_max_pool_rejects_bad_arguments():
  from msal_jax.models.pooling import max_pool

  x = jnp.zeros((1, 4, 4, 1))
  with pytest.raises(ValueError, match="padding must be 'VALID'"):
    max_pool(x, (2, 2), (2, 2), "SAME")
  with pytest.raises(ValueError, match="NHWC"):
    max_pool(jnp.zeros((4, 4, 1)), (2, 2), (2, 2))
  with pytest.raises(ValueError, match=">= 1"):
    max_pool(x, (0, 2), (2, 2))


def test_resnet18_stem_pools_with_max_pool():
  # Its backward is the custom one: a custom_vjp call in the traced gradient
  # (tracing only; the tests above compare that backward with nn.max_pool's).
  from msal_jax.models import resnet

  x = jnp.zeros((1, 8, 8, 3))
  model = resnet.ResNet18(stem="cifar")
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  grad = jax.grad(lambda x, v: jnp.sum(model.apply(v, x, train=False)))
  jaxpr = str(jax.make_jaxpr(grad)(x, variables))
  assert jaxpr.count("custom_vjp_call") == 1
  assert "select_and_scatter" not in jaxpr


def test_dropout_train_eval_and_mc_dropout():
  x = jax.random.normal(jax.random.key(0), (4, 28, 28, 1))
  model = models.make_model(
    "small_cnn", num_classes=10, head="linear", dropout_rate=0.5, widths=(4, 8), hidden=32
  )
  variables = model.init(jax.random.key(1), x)
  run = lambda seed, **kw: np.asarray(
    model.apply(variables, x, rngs={"dropout": jax.random.key(seed)}, **kw)[0]
  )
  np.testing.assert_array_equal(run(2), run(3))  # train=False: deterministic
  assert not np.array_equal(run(2, mc_dropout=True), run(3, mc_dropout=True))
  assert not np.array_equal(run(2, train=True), run(3, train=True))
  np.testing.assert_array_equal(run(2, mc_dropout=True), run(2, mc_dropout=True))

  no_dropout = models.make_model(
    "small_cnn", num_classes=10, head="linear", dropout_rate=0.0, widths=(4, 8), hidden=32
  )
  for kw in ({}, {"mc_dropout": True}, {"train": True}):
    a = no_dropout.apply(variables, x, rngs={"dropout": jax.random.key(2)}, **kw)[0]
    b = no_dropout.apply(variables, x, rngs={"dropout": jax.random.key(3)}, **kw)[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(a), run(2))


# -- make_model ----------------------------------------------------------------


def test_make_model_builds_the_named_parts():
  model = models.make_model("resnet18", num_classes=100, head="max_sep", rho=0.5, stem="cifar")
  assert isinstance(model.trunk, models.ResNet18) and model.trunk.stem == "cifar"
  assert isinstance(model.head, models.MaxSeparationHead) and model.head.rho == 0.5
  assert set(models.ARCHS) == {"small_cnn", "resnet18"}


@pytest.mark.parametrize(
  ("kwargs", "match"),
  [
    ({"arch": "vgg", "head": "linear"}, "unknown model arch 'vgg'; allowed: resnet18, small_cnn"),
    ({"arch": "small_cnn", "head": "cos"}, "unknown head 'cos'; allowed: linear, max_sep"),
    ({"arch": "small_cnn", "head": "linear", "stem": "cifar"}, "bad keyword arguments"),
    ({"arch": "small_cnn", "head": "max_sep", "rho": 0.0}, "rho must be > 0"),
    ({"arch": "small_cnn", "head": "linear", "dropout_rate": 1.0}, "dropout_rate"),
  ],
)
def test_make_model_errors(kwargs, match):
  arch = kwargs.pop("arch")
  with pytest.raises(ValueError, match=match):
    models.make_model(arch, num_classes=10, **kwargs)


# -- im2col + matmul convolutions on small maps -----------------------------------

# (kernel, stride, padding, cin, cout, H, W) of ResNet18's convs on 28x28 MNIST
# ("imagenet" stem: layer1 7x7, layer2 4x4, layer3 2x2, layer4 1x1) and on 32x32
# CIFAR (layer4 at 2x2), a 3x3 map, a non-square map and the 7x7 stem on a tiny
# input; the last field says whether the im2col path applies (else lax's conv).
_RESNET_CONV_CASES = [
  ((1, 1, 0, 1, 3, 28, 28), True),  # gray_to_rgb (with bias)
  ((7, 2, 3, 3, 64, 28, 28), False),  # stem_conv -> 14x14
  ((7, 2, 3, 3, 64, 3, 4), True),  # stem_conv on a tiny non-square input -> 2x2
  ((3, 1, 1, 64, 64, 7, 7), False),  # layer1
  ((3, 2, 1, 64, 128, 7, 7), False),  # layer2_0 conv1 -> 4x4
  ((1, 2, 0, 64, 128, 7, 7), True),  # layer2_0 downsample -> 4x4
  ((3, 1, 1, 128, 128, 4, 4), False),  # layer2 at 4x4
  ((3, 2, 1, 128, 256, 4, 4), True),  # layer3_0 conv1 -> 2x2
  ((1, 2, 0, 128, 256, 4, 4), True),  # layer3_0 downsample -> 2x2
  ((3, 1, 1, 256, 256, 2, 2), True),  # layer3 at 2x2
  ((3, 2, 1, 256, 512, 2, 2), True),  # layer4_0 conv1 -> 1x1
  ((1, 2, 0, 256, 512, 2, 2), True),  # layer4_0 downsample -> 1x1
  ((3, 1, 1, 512, 512, 1, 1), True),  # layer4 at 1x1
  ((3, 2, 1, 256, 512, 4, 4), True),  # CIFAR layer4_0 conv1 -> 2x2
  ((3, 1, 1, 512, 512, 2, 2), True),  # CIFAR layer4 at 2x2
  ((3, 1, 1, 32, 48, 3, 3), False),  # 3x3 map: 9 positions
  ((3, 1, 1, 32, 48, 2, 3), True),  # non-square 2x3
  ((3, 2, 1, 32, 48, 3, 5), True),  # non-square, stride 2 -> 2x3
  ((3, 2, 1, 32, 48, 1, 1), True),  # stride 2 on 1x1: only the centre tap reads input
]


@pytest.mark.parametrize(
  ("case", "im2col"),
  _RESNET_CONV_CASES,
  ids=["k{}s{}p{}_{}to{}_{}x{}".format(*c) for c, _ in _RESNET_CONV_CASES],
)
def test_small_map_conv_matches_nn_conv(case, im2col):
  k, s, p, cin, cout, h, w = case
  bias = cin == 1  # gray_to_rgb has a bias; the rest do not
  ref = nn.Conv(cout, (k, k), s, padding=p, use_bias=bias, kernel_init=resnet._conv_init)
  new = nn.Conv(
    cout,
    (k, k),
    s,
    padding=p,
    use_bias=bias,
    kernel_init=resnet._conv_init,
    conv_general_dilated=resnet.conv_general_dilated,
  )
  kx, kv, kc = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (2, h, w, cin))
  variables = ref.init(kv, x)
  assert jax.tree.map(jnp.shape, new.init(kv, x)) == jax.tree.map(jnp.shape, variables)
  y_ref = ref.apply(variables, x)
  cot = jax.random.normal(kc, y_ref.shape)

  def value_and_grads(module):
    def loss(variables, x):
      y = module.apply(variables, x)
      return jnp.sum(y * cot), y

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(variables, x)

  jaxpr = str(jax.make_jaxpr(lambda v, x: new.apply(v, x))(variables, x))
  assert ("conv_general_dilated" not in jaxpr) == im2col
  (_, y_a), (gv_a, gx_a) = value_and_grads(ref)
  (_, y_b), (gv_b, gx_b) = value_and_grads(new)
  assert y_b.shape == y_ref.shape
  tol = {"rtol": 1e-5, "atol": 1e-5}
  np.testing.assert_allclose(np.asarray(y_b), np.asarray(y_a), **tol)
  np.testing.assert_allclose(np.asarray(gx_b), np.asarray(gx_a), **tol)
  for name in gv_a["params"]:
    np.testing.assert_allclose(
      np.asarray(gv_b["params"][name]), np.asarray(gv_a["params"][name]), err_msg=name, **tol
    )


def _expected_resnet18_shapes(stem: str, channels: int) -> tuple[dict, dict]:
  """ResNet18's parameter and batch-stat paths and shapes, written out by hand."""
  params, stats = {}, {}

  def bn(name, c):
    params.update({f"{name}/scale": (c,), f"{name}/bias": (c,)})
    stats.update({f"{name}/mean": (c,), f"{name}/var": (c,)})

  if channels == 1:
    params.update({"gray_to_rgb/kernel": (1, 1, 1, 3), "gray_to_rgb/bias": (3,)})
  k = 7 if stem == "imagenet" else 3
  params["stem_conv/kernel"] = (k, k, 3, 64)
  bn("stem_bn", 64)
  cin = 64
  for stage, width in enumerate((64, 128, 256, 512)):
    for block in range(2):
      name = f"layer{stage + 1}_{block}"
      params[f"{name}/conv1/kernel"] = (3, 3, cin, width)
      bn(f"{name}/bn1", width)
      params[f"{name}/conv2/kernel"] = (3, 3, width, width)
      bn(f"{name}/bn2", width)
      if cin != width or (stage > 0 and block == 0):
        params[f"{name}/downsample_conv/kernel"] = (1, 1, cin, width)
        bn(f"{name}/downsample_bn", width)
      cin = width
  return params, stats


@pytest.mark.parametrize(("stem", "channels"), [("imagenet", 1), ("imagenet", 3), ("cifar", 3)])
def test_resnet18_param_tree_is_the_nn_conv_one(stem, channels):
  # 28x28: layer3 and layer4 (imagenet stem) run on 2x2 and 1x1 maps, i.e. the
  # im2col path; the tree must be exactly the hand-written nn.Conv one.
  variables = _init_shapes(resnet.ResNet18(stem=stem), (2, 28, 28, channels), train=False)
  assert set(variables) == {"params", "batch_stats"}
  got = {
    name: tuple(v.shape)
    for name, v in traverse_util.flatten_dict(variables["params"], sep="/").items()
  }
  got_stats = {
    name: tuple(v.shape)
    for name, v in traverse_util.flatten_dict(variables["batch_stats"], sep="/").items()
  }
  want, want_stats = _expected_resnet18_shapes(stem, channels)
  assert got == want
  assert got_stats == want_stats


def test_resnet18_matches_its_plain_nn_conv_definition(monkeypatch):
  # The definition before the im2col convs: plain nn.Conv everywhere. Same
  # initialised values from the same key, and (on 28x28, where layer3 and
  # layer4 take the im2col path) the same outputs from the same variables.
  x = jax.random.normal(jax.random.key(0), (2, 28, 28, 1))
  model = resnet.ResNet18(stem="imagenet")
  init = lambda: jax.jit(lambda x: model.init(jax.random.key(1), x, train=False))(x)
  fwd = lambda v: jax.jit(lambda v, x: model.apply(v, x, train=False))(v, x)
  variables = init()
  h = fwd(variables)
  with monkeypatch.context() as m:
    m.setattr(resnet, "conv_general_dilated", jax.lax.conv_general_dilated)
    m.setattr(
      resnet,
      "_Conv",
      functools.partial(nn.Conv, use_bias=False, kernel_init=resnet._conv_init),
    )
    ref_variables = init()
    h_ref = fwd(ref_variables)
    jaxpr = str(jax.make_jaxpr(lambda v: model.apply(v, x, train=False))(variables))
  assert jaxpr.count("conv_general_dilated") == 21  # 1 + 1 + 16 + 3: all convs in lax
  # With the hook: only the stem, layer1 and layer2's 3x3 convs (>= 4x4 maps).
  jaxpr = str(jax.make_jaxpr(lambda v: model.apply(v, x, train=False))(variables))
  assert jaxpr.count("conv_general_dilated") == 1 + 4 + 4
  assert jax.tree.structure(ref_variables) == jax.tree.structure(variables)
  for a, b in zip(jax.tree.leaves(ref_variables), jax.tree.leaves(variables), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  np.testing.assert_allclose(np.asarray(h), np.asarray(h_ref), rtol=1e-4, atol=1e-5)
