"""Test-wide settings: strict rank promotion, float32, CPU, no network."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

# Silent broadcasting between ranks is an error in the tests (nanodo's habit).
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def mnist5k_head():
  """``(pool, test, name="tiny") -> Dataset``: the first digits of the embedded set."""
  from msal_jax import data

  full = data.load("mnist5k")

  def head(pool: int, test: int, name: str = "tiny") -> data.Dataset:
    return data.Dataset(name, full.pool_images[:pool], full.pool_labels[:pool],
                        full.test_images[:test], full.test_labels[:test], full.num_classes,
                        full.class_names, full.mean, full.std)

  return head
