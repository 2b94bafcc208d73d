"""Every config file loads, validates, and says what the paper's protocol says."""

import glob
import importlib.util
import os

import pytest

from experiments import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))


def _load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_there_are_configs():
  assert {os.path.basename(p) for p in CONFIGS} >= {"mnist5k.py", "mnist_local.py", "mnist.py"}


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_validates_and_documents_its_command(path):
  module = _load(path)
  exp = experiment.Experiment.from_config(module.get_config())
  assert exp.al.num_rounds >= 1
  name = os.path.basename(path)
  assert f"python -m experiments.run --config=configs/{name}" in module.__doc__


def test_mnist_is_table_1():
  exp = experiment.Experiment.from_config(_load(os.path.join(ROOT, "configs", "mnist.py"))
                                          .get_config())
  assert (exp.al.initial, exp.al.batch, exp.al.budget, exp.al.beta) == (500, 250, 10_000, 5.0)
  assert exp.al.num_rounds == 40
  assert (exp.train.epochs, exp.train.batch_size, exp.train.learning_rate) == (20, 128, 1e-3)
  assert (exp.model.arch, exp.model.rho, exp.model.trunk_kwargs) == (
      "resnet18", 0.1, {"stem": "imagenet"})
  assert exp.dataset == "mnist" and len(exp.seeds) == 3
  assert {"random", "entropy", "msal", "msal_d"} <= set(exp.strategies)


def test_mnist5k_is_cpu_sized_and_compares_the_four():
  exp = experiment.Experiment.from_config(_load(os.path.join(ROOT, "configs", "mnist5k.py"))
                                          .get_config())
  assert exp.dataset == "mnist5k" and exp.model.arch == "small_cnn"
  assert set(exp.strategies) >= {"random", "entropy", "msal", "msal_d"}
  assert len(exp.seeds) >= 2
