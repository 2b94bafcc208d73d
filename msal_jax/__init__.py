"""msal-jax: Maximally Separated Active Learning in JAX/Flax.

``msal_jax.ActiveLearner`` (:mod:`msal_jax.api`) runs active learning on your
own model and data; the submodules are the library. Importing the package
imports nothing else: ``ActiveLearner`` is loaded on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ActiveLearner"]


def __getattr__(name: str) -> Any:
  # PEP 562: `import msal_jax.prototypes` stays light; the API pulls in the loop.
  if name == "ActiveLearner":
    from msal_jax.api import ActiveLearner

    return ActiveLearner
  raise AttributeError(f"module 'msal_jax' has no attribute {name!r}")
