r"""Full MNIST from the original idx files, small CNN, CPU-sized.

Reads train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from a folder:

  python -m experiments.run --config=configs/mnist_local.py \
      --config.data.dir=/path/to/mnist

Pool = the 60,000 training digits, test = the 10,000 test digits. 100 initial
labels, then 10 rounds of 100 (budget 1,000), 30 epochs per round, random /
entropy / msal / msal_d over 3 seeds, rho = 1 (the radius measured for the
small CNN: docs/results.md, "The radius rho"). Fashion-MNIST in the same format:
add --config.data.name=fashion_mnist. What it gave on a 2-core CPU (run with
--config.al.budget=500) and how long it took: docs/results.md ("MNIST",
"Fashion-MNIST").
"""

import ml_collections

from experiments import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults.get_config()
  config.data.name = "mnist"
  config.data.source = "local"
  config.al.initial = 100
  config.al.batch = 100
  config.al.budget = 1000
  config.seeds = (0, 1, 2)
  return config
