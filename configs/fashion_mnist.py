r"""Fashion-MNIST with MNIST's protocol (Table 1): ResNet18 with the 7x7 stem.

Fashion-MNIST has no row in the paper's Table 1; this config uses MNIST's:
500 initial labels, 250 per round up to a budget of 10,000 (40 rounds), 20
epochs per round (DeepAL+'s FashionMNIST setting too) with Adam 1e-3 and
batch 128, MSAL-D pre-filter beta = 5, 3 seeds; rho = 1 (the paper uses 0.1
for MNIST only). Needs a GPU.

  python -m experiments.run --config=configs/fashion_mnist.py \
      --config.data.dir=/path/to/fashion_mnist
  # the folder holds the four idx .gz files; or, prepared for TFDS
  # (array_record): --config.data.source=tfds

CPU-sized variant: the small CNN, 100 initial labels + 10 rounds of 100, 30
epochs, 3 seeds (configs/mnist_local.py's settings), rho = 1 (the radius
measured for the small CNN: docs/results.md, "The radius rho"):

  python -m experiments.run --config=configs/fashion_mnist.py:cpu \
      --config.data.dir=/path/to/fashion_mnist

Runtime of the CPU variant on a 2-core CPU (measured 2026-11-30, before the small CNN's
faster pooling backward of 2026-12-01, so an upper bound; on the real idx
files, docs/results.md): one (strategy, seed) run 3 min 49 s, 0.7 GB peak memory;
the 4 strategies x 3 seeds about 12 times that (~46 min, projected).

Paper: no Fashion-MNIST reference numbers are recorded in DESIGN.md.

The paper's label schedule on the CPU (the `:cpu` variant with 500 initial
labels, 10 rounds of 250, 20 epochs; docs/results.md, "The paper's label
schedule", 3 seeds, 2026-12-02), AUBC / F-acc: MSAL-D 0.8367 / 0.8602 against
margin 0.8445 / 0.8607, entropy 0.8280 / 0.8473, MSAL 0.8258 / 0.8498, random
0.8296 / 0.8464.
"""

import ml_collections

from experiments import defaults


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = defaults.get_config()
  config.data.name = "fashion_mnist"
  config.data.source = "auto"  # local idx files in data.dir, else TFDS
  config.model.arch = "resnet18"
  config.model.rho = 1.0
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
