"""Default experiment settings that every config starts from.

The defaults are the embedded CPU-sized run (configs/mnist5k.py); each config
file changes what differs. Every field can be overridden on the command line:
``--config.al.budget=1000``, ``--config.strategies="('msal', 'msal_d')"``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.data = ml_collections.ConfigDict()
  config.data.name = "mnist5k"
  config.data.source = "embedded"
  config.data.dir = ml_collections.config_dict.placeholder(str)

  config.model = ml_collections.ConfigDict()
  config.model.arch = "small_cnn"
  config.model.rho = 0.1  # the paper's radius for MNIST
  config.model.dropout_rate = 0.0
  config.model.trunk = ml_collections.ConfigDict({"widths": (16, 32), "hidden": 64})

  config.al = ml_collections.ConfigDict()
  config.al.initial = 100
  config.al.batch = 100
  config.al.budget = 500
  config.al.rounds = ml_collections.config_dict.placeholder(int)  # None: ceil(budget / batch)
  config.al.beta = 5.0
  config.al.mc_passes = 10  # T, passes of the MC-dropout strategies
  config.al.ceal_delta = 5e-5  # CEAL: entropy threshold delta_0 ...
  config.al.ceal_decay = 0.033e-5  # ... minus this per round
  config.al.ceal_cos = 0.99  # CEAL(MSAL): pseudo-label when cos to nearest prototype > this

  config.train = ml_collections.ConfigDict()
  config.train.epochs = 30  # few labels: enough steps for both heads to converge
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.train.eval_batch_size = 1000

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.max_to_keep = 2  # round checkpoints kept per run (resume needs the last)

  config.strategies = ("random", "entropy", "msal", "msal_d")
  config.seeds = (0, 1)
  return config
