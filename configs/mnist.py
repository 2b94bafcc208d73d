r"""MNIST with the paper's protocol (Table 1): ResNet18 with the 7x7 stem.

500 initial labels, 250 per round up to a budget of 10,000 (40 rounds),
20 epochs per round with Adam 1e-3 and batch 128, radius rho = 0.1 (the
paper's, and measured here: on the 500 initial labels ResNet18 with the
max-separation head reached 0.9532 test accuracy at rho = 0.1 against 0.9065
for the linear head and 0.9255 at rho = 1, 3 seeds; docs/results.md, "The
radius rho"), MSAL-D pre-filter beta = 5, 3 seeds. Meant for a GPU: on a 2-core CPU a
ResNet18 train step runs at about 190 images/s and inference at about 770
(docs/benchmarks.md), i.e. roughly 7 hours per (strategy, seed) (an estimate
from those rates, not a measured run).

  python -m experiments.run --config=configs/mnist.py --config.data.dir=/path/to/mnist
  # or, with MNIST prepared for TFDS (array_record): --config.data.source=tfds

CPU-sized variant: the small CNN, 100 initial labels + 10 rounds of 100, 30
epochs, 3 seeds (the settings of configs/mnist_local.py), rho = 1 (the radius
measured for the small CNN: docs/results.md, "The radius rho"):

  python -m experiments.run --config=configs/mnist.py:cpu --config.data.dir=/path/to/mnist

Runtime of the CPU variant on a 2-core CPU (measured 2026-12-01 on the real idx
files, docs/results.md): one (strategy, seed) run 2 min 11 s, 0.7 GB peak memory;
the 4 strategies x 3 seeds about 12 times that (~26 min, projected).

Paper (Table 2, AUBC / F-acc): Random 0.959 / 0.9814, Entropy 0.968 / 0.9917,
MSAL 0.976 / 0.9924, MSAL-D 0.982 / 0.9931.

The paper's label schedule on the CPU (the `:cpu` variant with 500 initial
labels, 10 rounds of 250, 20 epochs; docs/results.md, "The paper's label
schedule", 3 seeds, 2026-12-02), AUBC / F-acc: MSAL-D 0.9697 / 0.9837 against
margin 0.9716 / 0.9847, entropy 0.9690 / 0.9844, MSAL 0.9687 / 0.9834, random
0.9521 / 0.9665.
"""

import ml_collections

from experiments import defaults


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = defaults.get_config()
  config.data.name = "mnist"
  config.data.source = "auto"  # local idx files in data.dir, else TFDS
  config.model.arch = "resnet18"
  config.model.rho = 0.1
  config.model.trunk = ml_collections.ConfigDict({"stem": "imagenet"})
  config.al.initial = 500
  config.al.batch = 250
  config.al.budget = 10_000
  config.al.beta = 5.0
  config.train.epochs = 20
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.strategies = ("random", "entropy", "msal", "msal_d")
  config.seeds = (0, 1, 2)
  if defaults.variant(variant) == "cpu":
    defaults.cpu_sized(config, initial=100, batch=100, budget=1000, epochs=30)
  return config
