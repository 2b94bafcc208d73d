"""Test-wide settings: strict rank promotion, float32, CPU, no network."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One XLA compilation cache on disk for the session and every process it starts
# (launcher runs, 8-device and two-process workers inherit the environment):
# the suite compiles the same small programs in hundreds of tests and
# subprocesses, and compiling was most of its time. A cached executable is the
# one the compiler made for the same program, so results are unchanged (the
# recorded fixtures are matched byte for byte); tests that count compilations
# count cache hits too (tests/mesh_loop_worker.py). A directory set by the
# caller is used as it is; else a fresh one, removed at exit.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="msal-jax-tests-xla-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import jax  # noqa: E402
import pytest  # noqa: E402

# Silent broadcasting between ranks is an error in the tests (nanodo's habit).
jax.config.update("jax_numpy_rank_promotion", "raise")
# In case a plugin imported jax before the environment above was set.
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
jax.config.update("jax_persistent_cache_min_entry_size_bytes",
                  int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))


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
