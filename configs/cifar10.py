r"""CIFAR-10 with the paper's protocol (Table 1): ResNet18 with the 3x3 stem.

Pool = the 50,000 training images (1,000 initial labels + the paper's 49,000
unlabeled), test = the 10,000 test images. 500 labels per round up to a
budget of 40,000 (80 rounds), 30 epochs per round with Adam 1e-3 and batch
128, random 4-pixel crop + horizontal flip (DeepAL+'s CIFAR training
transform, here on device), rho = 1, MSAL-D pre-filter beta = 10, 3 seeds.
Needs a GPU.

  python -m experiments.run --config=configs/cifar10.py --config.data.dir=/path/to/cifar10
  # the folder holds cifar-10-python.tar.gz or the cifar-10-batches-py/ folder
  # extracted from it; or, with cifar10 prepared for TFDS (array_record):
  # --config.data.source=tfds

CPU-sized variant: the small CNN, 500 initial labels + 6 rounds of 250, 15
epochs, augmentation on, 3 seeds, rho = 1 (the radius measured for the small
CNN: docs/results.md, "The radius rho"):

  python -m experiments.run --config=configs/cifar10.py:cpu --config.data.dir=/path/to/cifar10

Runtime of the CPU variant on a 2-core CPU (measured 2026-12-01 on synthetic
files of the real sizes, docs/results.md): one (strategy, seed) run 2 min 02 s,
1.1 GB peak memory; the 4 strategies x 3 seeds about 12 times that (~24 min,
projected).

Paper (Table 2, AUBC / F-acc): Random 0.797 / 0.867, MSAL-D 0.8107 / 0.8754.
"""

import ml_collections

from experiments import defaults


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = defaults.get_config()
  config.data.name = "cifar10"
  config.data.source = "auto"  # the pickles in data.dir, else TFDS cifar10
  config.model.arch = "resnet18"
  config.model.rho = 1.0
  config.model.trunk = ml_collections.ConfigDict({"stem": "cifar"})
  config.al.initial = 1000
  config.al.batch = 500
  config.al.budget = 40_000
  config.al.beta = 10.0
  config.train.epochs = 30
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.train.augment = True
  config.strategies = ("random", "entropy", "msal", "msal_d")
  config.seeds = (0, 1, 2)
  if defaults.variant(variant) == "cpu":
    defaults.cpu_sized(config, initial=500, batch=250, budget=1500, epochs=15)
  return config
