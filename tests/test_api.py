"""The Python API: your module object, your arrays, an oracle, the launcher's files."""

import json
import os

import jax
import numpy as np
import pytest

import msal_jax
from experiments import defaults, experiment
from msal_jax import api, data, loop
from msal_jax.models import custom

TINY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_models.py")


def _blobs(n, seed):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 3, n).astype(np.int32)
  x = rng.integers(0, 60, (n, 8, 8, 1)).astype(np.uint8)
  for img, c in zip(x, y, strict=True):
    img[2 * c:2 * c + 3, 2:6] = 250
  return x, y


def test_module_object_arrays_and_oracle_write_the_launchers_files(tmp_path):
  trunk = custom.load_module(f"{TINY_PATH}:TinyTrunk", {"width": 6})  # the config test's module
  (px, py), test = _blobs(50, 0), _blobs(20, 1)
  asked = []

  def oracle(ids):
    asked.append(ids.tolist())
    return 2 - py[ids]  # a deliberately different labelling: it must be what is used

  learner = msal_jax.ActiveLearner(
      trunk, (px, py), test, strategy="msal_d", initial=10, budget=10, batch=5, rounds=1,
      oracle=oracle, epochs=1, batch_size=8, eval_batch_size=32, beta=2.0,
      workdir=str(tmp_path), class_names=("a", "b", "c"), log=None,
  )
  summary = learner.run()
  assert summary["num_labeled"] == [10, 15] and summary["labels_spent"] == 5
  queried = summary["rounds"][0]["queried"]
  assert asked == [queried]
  assert summary["rounds"][0]["labels"] == (2 - py[queried]).tolist()
  # The oracle's labels reach the device as a new array of the same shape: no retracing.
  assert summary["traces"]["train_step"] == 1 and summary["traces"]["init"] == 1
  # The launcher's files, from the same loop: per-round lines, summary, table, curves.
  for name in ("config.json", "rounds.jsonl", "summary.json", "curve.png", "results.md",
               "results.csv", "curves.png"):
    assert (tmp_path / name).exists(), name
  with open(tmp_path / "rounds.jsonl") as f:
    assert [json.loads(line) for line in f] == summary["rounds"]
  with open(tmp_path / "summary.json") as f:
    on_disk = json.load(f)
  assert on_disk["accuracies"] == summary["accuracies"] and on_disk["aubc"] == summary["aubc"]
  assert "| msal_d |" in (tmp_path / "results.md").read_text()
  with open(tmp_path / "config.json") as f:
    config = json.load(f)
  assert config["strategies"] == ["msal_d"] and config["model"]["module"].endswith(":TinyTrunk")
  assert config["al"]["oracle"] == "function" and config["model"]["kwargs"] == {}

  # Run again: the finished run is found, nothing retrains, the same results come back.
  again = msal_jax.ActiveLearner(
      trunk, (px, py), test, strategy="msal_d", initial=10, budget=10, batch=5, rounds=1,
      oracle=oracle, epochs=1, batch_size=8, eval_batch_size=32, beta=2.0,
      workdir=str(tmp_path), class_names=("a", "b", "c"), log=None,
  ).run()
  assert again["accuracies"] == summary["accuracies"] and len(asked) == 1
  # The last round's network comes back: its test accuracy is the run's last one, and
  # the finished run found again returns the same weights (restored from the checkpoint).
  from msal_jax import train
  from msal_jax.strategies import get

  net = learner.model.build(3, get("msal_d").head, (8, 8, 1))
  ds = learner.dataset
  x = train.normalize(np.asarray(ds.test_images),
                      np.reshape(ds.mean, (1, 1, 1, -1)), np.reshape(ds.std, (1, 1, 1, -1)))
  logits = net.apply(learner.variables, x)[0]
  assert np.mean(np.argmax(logits, 1) == ds.test_labels) == summary["f_acc"]
  assert learner.variables is summary["variables"]
  for a, b in zip(jax.tree.leaves(summary["variables"]), jax.tree.leaves(again["variables"]),
                  strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with pytest.raises(ValueError, match="holds a run with other settings .*al"):
    msal_jax.ActiveLearner(trunk, (px, py), test, strategy="msal_d", initial=10, budget=15,
                           batch=5, workdir=str(tmp_path), class_names=("a", "b", "c"),
                           log=None).run()


def test_pool_forms(tmp_path):
  (px, py), (tx, ty) = _blobs(12, 0), _blobs(6, 1)
  np.savez(tmp_path / "d.npz", pool_images=px, pool_labels=py, test_images=tx, test_labels=ty)
  from_file = api.as_dataset(str(tmp_path / "d.npz"))
  from_arrays = api.as_dataset((px, py), (tx, ty), name="d")
  for ds in (from_file, from_arrays):
    np.testing.assert_array_equal(ds.pool_images, px)
    np.testing.assert_array_equal(ds.pool_labels, py)
  assert from_file.mean == from_arrays.mean
  unlabeled = api.as_dataset(px, (tx, ty))
  assert (unlabeled.pool_labels == -1).all()
  assert api.as_dataset(from_arrays) is from_arrays
  os.makedirs(tmp_path / "npy")
  for key, arr in dict(pool_images=px, test_images=tx, test_labels=ty).items():
    np.save(tmp_path / "npy" / f"{key}.npy", arr)
  assert isinstance(api.as_dataset(str(tmp_path / "npy")).pool_images, np.memmap)


def test_model_forms():
  # The small CNN's kwargs go over the configs' trunk, as --config.model.trunk.widths does.
  assert api.model_config("small_cnn", kwargs={"widths": (4,)}).trunk_kwargs == \
      {"widths": (4,), "hidden": defaults.get_config().model.trunk.hidden}
  assert api.model_config("resnet18", kwargs={"stem": "cifar"}).trunk_kwargs == {"stem": "cifar"}
  assert api.model_config(f"{TINY_PATH}:TinyTrunk").module.endswith(":TinyTrunk")
  cls = type(custom.load_module(f"{TINY_PATH}:TinyTrunk"))
  by_class = api.model_config(cls, kwargs={"width": 3})
  assert by_class.user_module().width == 3
  given = loop.ModelConfig(rho=0.1)
  assert api.model_config(given) is given


def test_defaults_are_the_configs():
  # What is left out means the same in both: the API's settings equal the launcher's
  # typed config built from the default config with the same labels.
  (px, py), test = _blobs(12, 0), _blobs(6, 1)
  learner = msal_jax.ActiveLearner("small_cnn", (px, py), test, budget=4, batch=2, log=None)
  config = defaults.get_config()
  config.al.initial, config.al.budget, config.al.batch = 2, 4, 2
  exp = experiment.Experiment.from_config(config)
  assert learner.al == exp.al
  assert learner.train == exp.train
  assert learner.model == exp.model
  assert learner.max_to_keep == exp.max_to_keep


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"strategy": "nope"}, "unknown strategy 'nope'"),
        ({"model": "resnet50"}, "'resnet50' is not a built-in arch"),
        ({"model": 3}, "expected a Flax module, an import path or an arch name, got int"),
        ({"test": None}, "give the test set as"),
        ({"oracle": "human"}, "oracle must be None, 'csv' or a function"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"budget": 0}, "al.budget must be an integer >= 1"),
        ({"pool": "unlabeled", "initial": 5}, "a random initial set needs every pool label"),
        ({"pool": "dataset"}, "pool is a Dataset, which holds its test set"),
    ],
)
def test_errors(changes, match):
  (px, py), test = _blobs(12, 0), _blobs(6, 1)
  kwargs = dict(model=f"{TINY_PATH}:TinyTrunk", pool=(px, py), test=test, budget=4, batch=2,
                log=None)
  if changes.get("pool") == "unlabeled":
    changes["pool"] = px
  elif changes.get("pool") == "dataset":
    changes["pool"] = data.from_arrays(px, py, *test)
  kwargs.update(changes)
  with pytest.raises(ValueError, match=match):
    msal_jax.ActiveLearner(kwargs.pop("model"), kwargs.pop("pool"), kwargs.pop("test"),
                           **kwargs)


def test_example_runs_as_written(tmp_path):
  import subprocess
  import sys

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [sys.executable, "examples/custom_model_npz.py", f"--workdir={tmp_path}"], cwd=root,
      env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True, timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  table = [line.split() for line in lines[lines.index("round  labeled  test accuracy") + 1:]
           if line.strip()[:1].isdigit()]
  assert [(int(r), int(n)) for r, n, _ in table] == [(0, 20), (1, 40), (2, 60), (3, 80)]
  accs = [float(a) for _, _, a in table]
  assert accs[-1] > accs[0] + 0.2  # it learns: about 0.5 -> 0.9
  with open(tmp_path / "summary.json") as f:
    assert json.load(f)["f_acc"] == pytest.approx(accs[-1], abs=5e-4)
  assert (tmp_path / "shapes.npz").exists() and (tmp_path / "results.md").exists()
