"""Test-wide settings: strict rank promotion, float32, CPU, no network."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

# Silent broadcasting between ranks is an error in the tests (nanodo's habit).
jax.config.update("jax_numpy_rank_promotion", "raise")
