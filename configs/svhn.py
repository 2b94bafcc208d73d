r"""SVHN with the paper's protocol (Table 1): ResNet18 with the 7x7 stem.

Pool = the 73,257 training digits (500 initial labels + the paper's 72,757
unlabeled), test = the 26,032 test digits. 250 labels per round up to a budget
of 20,000 (80 rounds), 20 epochs per round with Adam 1e-3 and batch 128,
rho = 1, MSAL-D pre-filter beta = 5, no augmentation, 3 seeds. Needs a GPU.

  python -m experiments.run --config=configs/svhn.py --config.data.dir=/path/to/svhn
  # the folder holds train_32x32.mat and test_32x32.mat; or, with svhn_cropped
  # prepared for TFDS (array_record): --config.data.source=tfds

CPU-sized variant: the small CNN, 500 initial labels + 6 rounds of 250, 15
epochs, 3 seeds, rho = 1 (the radius measured for the small CNN:
docs/results.md, "The radius rho"):

  python -m experiments.run --config=configs/svhn.py:cpu --config.data.dir=/path/to/svhn

Runtime of the CPU variant on a 2-core CPU (measured 2026-11-30, before the small CNN's
faster pooling backward of 2026-12-01, so an upper bound; on synthetic
files of the real sizes, docs/results.md): one (strategy, seed) run 4 min 42 s,
1.2 GB peak memory; the 4 strategies x 3 seeds about 12 times that (~56 min,
projected).

Paper (Table 2, AUBC / F-acc): Random 0.8337 / 0.8995, MSAL-D 0.8657 / 0.9287.
"""

import ml_collections

from experiments import defaults


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = defaults.get_config()
  config.data.name = "svhn"
  config.data.source = "auto"  # the .mat files in data.dir, else TFDS svhn_cropped
  config.model.arch = "resnet18"
  config.model.rho = 1.0
  config.model.trunk = ml_collections.ConfigDict({"stem": "imagenet"})
  config.al.initial = 500
  config.al.batch = 250
  config.al.budget = 20_000
  config.al.beta = 5.0
  config.train.epochs = 20
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.train.augment = False  # DeepAL+ does not augment SVHN (a flip changes digits)
  config.strategies = ("random", "entropy", "msal", "msal_d")
  config.seeds = (0, 1, 2)
  if defaults.variant(variant) == "cpu":
    defaults.cpu_sized(config, initial=500, batch=250, budget=1500, epochs=15)
  return config
