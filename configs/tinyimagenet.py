r"""Tiny ImageNet with the paper's protocol (Table 1): ResNet18 with the 3x3 stem.

Pool = the 100,000 training images (1,000 initial labels + the paper's 99,000
unlabeled), test = the 10,000 labeled validation images, 200 classes, 64x64.
500 labels per round up to a budget of 40,000 (80 rounds), 40 epochs per
round with Adam 1e-3 and batch 128, random 4-pixel crop + horizontal flip
(DeepAL+ used a random rotation of up to 20 degrees + flip instead), rho = 1,
MSAL-D pre-filter beta = 10, 3 seeds. Needs a GPU. Tiny ImageNet is not in
the TFDS catalogue: the extracted tiny-imagenet-200 folder is the only source
(reading its 110,000 JPEG files takes a while).

  python -m experiments.run --config=configs/tinyimagenet.py \
      --config.data.dir=/path/to/tiny-imagenet-200

CPU-sized variant: the small CNN, 1,000 initial labels + 3 rounds of 500, 10
epochs, augmentation on, 3 seeds, rho = 1 (the radius measured for the small
CNN: docs/results.md, "The radius rho"):

  python -m experiments.run --config=configs/tinyimagenet.py:cpu \
      --config.data.dir=/path/to/tiny-imagenet-200

Runtime of the CPU variant on a 2-core CPU (measured 2026-11-30, before the small CNN's
faster pooling backward of 2026-12-01, so an upper bound; on synthetic
files of the real sizes, docs/results.md): one (strategy, seed) run 10 min 32 s,
4.1 GB peak memory; the 4 strategies x 3 seeds about 12 times that (~2 h 6 min,
projected).

Paper: Tiny ImageNet's Table 2 numbers are not recorded in DESIGN.md.
"""

import ml_collections

from experiments import defaults


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = defaults.get_config()
  config.data.name = "tinyimagenet"
  config.data.source = "local"
  config.model.arch = "resnet18"
  config.model.rho = 1.0
  config.model.trunk = ml_collections.ConfigDict({"stem": "cifar"})
  config.al.initial = 1000
  config.al.batch = 500
  config.al.budget = 40_000
  config.al.beta = 10.0
  config.train.epochs = 40
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.train.augment = True
  config.strategies = ("random", "entropy", "msal", "msal_d")
  config.seeds = (0, 1, 2)
  if defaults.variant(variant) == "cpu":
    defaults.cpu_sized(config, initial=1000, batch=500, budget=1500, epochs=10)
  return config
