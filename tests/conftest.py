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


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """After each test module: drop JAX's compiled programs and give the heap back.

  One pytest process runs every module; without this the executables and
  traced functions of all earlier modules stay resident, and the process grew
  to 4.7 GB over the suite. No test relies on a program compiled in another
  module (trace counts are per module or per run).
  """
  yield
  import ctypes
  import gc

  jax.clear_caches()
  gc.collect()
  try:
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc: return freed pages to the OS
  except (OSError, AttributeError):
    pass
