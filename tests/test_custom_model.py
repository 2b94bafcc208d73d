"""Your own Flax module: named by import path in a config, wrapped with either head, errors."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import defaults, experiment
from msal_jax import loop, models, prototypes
from msal_jax.models import custom

TESTS = os.path.dirname(os.path.abspath(__file__))
TINY_PATH = os.path.join(TESTS, "tiny_models.py")
SHAPE = (8, 8, 1)


@pytest.fixture
def tiny_on_path(monkeypatch):
  monkeypatch.syspath_prepend(TESTS)  # "tiny_models:Name" imports like an installed module


def _x(batch=3):
  return jax.random.normal(jax.random.key(0), (batch, *SHAPE))


def _blobs(n, seed, classes=3):
  """8x8 uint8 images whose bright band's row says the class."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, classes, n).astype(np.int32)
  x = rng.integers(0, 60, (n, *SHAPE)).astype(np.uint8)
  for img, c in zip(x, y, strict=True):
    img[2 * c:2 * c + 3, 2:6] = 250
  return x, y


# -- by import path, in a config, end to end ------------------------------------


def test_config_names_module_by_import_path_and_runs(tmp_path, tiny_on_path):
  (px, py), (tx, ty) = _blobs(60, 0), _blobs(30, 1)
  np.savez(tmp_path / "blobs.npz", pool_images=px, pool_labels=py, test_images=tx,
           test_labels=ty)
  config = defaults.get_config()
  config.data.source = "npz"
  config.data.path = str(tmp_path / "blobs.npz")
  config.model.module = "tiny_models:TinyTrunk"
  config.model.kwargs.width = 6
  config.strategies = ("msal",)
  config.seeds = (0,)
  config.al.initial, config.al.batch, config.al.budget = 10, 10, 10
  config.train.epochs, config.train.batch_size, config.train.eval_batch_size = 1, 8, 64
  exp = experiment.Experiment.from_config(config)
  assert exp.model.module == "tiny_models:TinyTrunk" and exp.model.module_kwargs == {"width": 6}
  workdir = tmp_path / "run"
  experiment.prepare_workdir(config, str(workdir))
  results = experiment.run(exp, str(workdir), log=lambda s: None)
  (summary,) = results["msal"]
  assert summary["dataset"] == "blobs" and summary["num_labeled"] == [10, 20]
  with open(workdir / "rounds.jsonl") as f:
    rounds = [json.loads(line) for line in f]
  assert [len(r["queried"]) for r in rounds] == [10, 0]
  assert (workdir / "results.md").exists()
  # The network it trained: the user's trunk (width 6) under a max-separation head.
  net = exp.model.build(3, "max_sep", SHAPE)
  params = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, *SHAPE)))["params"]
  assert params["module"]["Dense_0"]["kernel"].shape == (64, 6)
  assert params["head"]["dense"]["kernel"].shape == (6, 2)


# -- what the wrapper builds -----------------------------------------------------


def _tiny(name, **kwargs):
  return custom.load_module(f"{TINY_PATH}:{name}", kwargs)


def test_max_sep_head_wraps_a_trunk_exactly():
  rho = 0.5
  net = custom.wrap(_tiny("TinyTrunk", width=5), num_classes=4, head="max_sep",
                    input_shape=SHAPE, rho=rho)
  variables = net.init(jax.random.key(1), _x())
  logits, z = net.apply(variables, _x())
  assert logits.shape == (3, 4) and z.shape == (3, 3)
  want = rho * np.asarray(z, np.float64) @ prototypes.simplex_numpy(4).T
  np.testing.assert_allclose(np.asarray(logits), want, rtol=1e-5, atol=1e-6)
  assert type(net.head).__name__ == "MaxSeparationHead"


def test_linear_head_features_are_the_trunk_output():
  trunk = _tiny("TinyTrunk", width=5)
  net = custom.wrap(trunk, num_classes=3, head="linear", input_shape=SHAPE)
  variables = net.init(jax.random.key(1), _x())
  _, feats = net.apply(variables, _x())
  h = trunk.apply({"params": variables["params"]["module"]}, _x())
  np.testing.assert_array_equal(np.asarray(feats), np.asarray(h))


def test_own_logits_are_used_for_linear_strategies_and_replaced_for_max_sep():
  module = _tiny("TinyClassifier", num_classes=3, width=5)
  net = custom.wrap(module, num_classes=3, head="linear", input_shape=SHAPE)
  assert net.head is None and net.own_logits
  variables = net.init(jax.random.key(1), _x())
  got = net.apply(variables, _x())
  want = module.apply({"params": variables["params"]["module"]}, _x())
  for a, b in zip(got, want, strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  net = custom.wrap(module, num_classes=3, head="max_sep", input_shape=SHAPE)
  logits, z = net.apply(net.init(jax.random.key(1), _x()), _x())
  assert logits.shape == (3, 3) and z.shape == (3, 2)  # the head on the module's features


def test_module_without_train_argument_and_factories():
  net = custom.wrap(_tiny("NoTrainArg"), num_classes=3, head="linear", input_shape=SHAPE)
  assert not net.pass_train
  variables = net.init(jax.random.key(0), _x())
  assert net.apply(variables, _x(), train=True)[0].shape == (3, 3)
  made = custom.load_module(f"{TINY_PATH}:make_trunk", {"width": 7})
  assert type(made).__name__ == "TinyTrunk" and made.width == 7


def test_train_flag_reaches_batchnorm_and_dropout():
  net = custom.wrap(_tiny("TinyBatchNormTrunk"), num_classes=3, head="max_sep",
                    input_shape=SHAPE, dropout_rate=0.5)
  variables = net.init(jax.random.key(0), _x())
  assert "batch_stats" in variables
  _, updates = net.apply(variables, _x(), train=True, rngs={"dropout": jax.random.key(2)},
                         mutable=["batch_stats"])
  before = variables["batch_stats"]["module"]["BatchNorm_0"]["mean"]
  after = updates["batch_stats"]["module"]["BatchNorm_0"]["mean"]
  assert not np.allclose(before, after)
  a = net.apply(variables, _x())[0]
  b = net.apply(variables, _x())[0]
  np.testing.assert_array_equal(a, b)  # eval: deterministic
  mc = [net.apply(variables, _x(), mc_dropout=True, rngs={"dropout": jax.random.key(k)})[0]
        for k in (3, 4)]
  assert not np.allclose(mc[0], mc[1])  # MC dropout: the library's dropout before the head


def test_model_config_by_object_and_by_path_agree():
  by_path = loop.ModelConfig(module=f"{TINY_PATH}:TinyTrunk", module_kwargs={"width": 4})
  by_obj = loop.ModelConfig(module=_tiny("TinyTrunk", width=4))
  a = by_path.build(3, "max_sep", SHAPE)
  b = by_obj.build(3, "max_sep", SHAPE)
  pa = a.init(jax.random.key(0), _x())
  pb = b.init(jax.random.key(0), _x())
  assert jax.tree.map(jnp.shape, pa) == jax.tree.map(jnp.shape, pb)
  np.testing.assert_array_equal(a.apply(pa, _x())[0], b.apply(pb, _x())[0])


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, kwargs, match",
    [
        ("no_such_package_xyz.models:Net", {}, "cannot import module 'no_such_package_xyz.models'"),
        ("tiny_models:Nope", {}, "'tiny_models' has no attribute 'Nope'; it defines: .*TinyTrunk"),
        ("tiny_models.TinyTrunk", {}, "expected 'package.module:Name'"),
        ("/no/such/file.py:Net", {}, "file '/no/such/file.py' does not exist"),
        ("tiny_models:TinyTrunk", {"depth": 3}, "cannot build 'TinyTrunk' with keyword"),
        ("math:pi", {}, "expected a Flax linen module, got float"),
        ("os.path:basename", {}, "cannot build 'basename'"),
    ],
)
def test_import_errors(tiny_on_path, spec, kwargs, match):
  with pytest.raises(ValueError, match=match):
    loop.ModelConfig(module=spec, module_kwargs=kwargs)


@pytest.mark.parametrize(
    "name, kwargs, head, match",
    [
        ("FeatureMap", {}, "max_sep",
         r"returns features as an array of shape \(2, 8, 8, 2\).*flatten or pool"),
        ("ThreeOutputs", {}, "linear", "returns a tuple of 3"),
        ("Broken", {}, "linear", r"fails on an input batch of shape \(2, 8, 8, 1\)"),
        ("TinyClassifier", {"num_classes": 4}, "linear",
         "returns logits of width 4, but the data has 3 classes"),
    ],
)
def test_wrong_outputs(name, kwargs, head, match):
  with pytest.raises(ValueError, match=match):
    custom.wrap(_tiny(name, **kwargs), num_classes=3, head=head, input_shape=SHAPE)


def test_own_logits_leave_no_place_for_dropout():
  with pytest.raises(ValueError, match="model.dropout_rate=0.2: TinyClassifier returns its own"):
    custom.wrap(_tiny("TinyClassifier"), num_classes=3, head="linear", input_shape=SHAPE,
                dropout_rate=0.2)


def test_config_errors_name_the_field(tiny_on_path):
  config = defaults.get_config()
  config.model.module = "tiny_models:Missing"
  with pytest.raises(ValueError, match="model.module: 'tiny_models' has no attribute 'Missing'"):
    experiment.Experiment.from_config(config)
  config = defaults.get_config()
  config.model.kwargs.width = 3
  with pytest.raises(ValueError, match=r"model.kwargs \['width'\] are for model.module"):
    experiment.Experiment.from_config(config)


def test_builtin_models_unchanged():
  net = loop.ModelConfig(trunk_kwargs={"widths": (4,), "hidden": 8}).build(3, "linear")
  assert isinstance(net, models.Classifier)
