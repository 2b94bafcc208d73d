"""Your own network: a Flax linen module named by import path or passed as an object.

The calling convention of a user module ``m``:

* ``m(x, train=train) -> h [B, D]``: a *trunk*. The library adds dropout and
  the head the strategy needs (:class:`~msal_jax.models.LinearHead` or
  :class:`~msal_jax.models.MaxSeparationHead`): the network needs no change to
  become an MSAL network.
* ``m(x, train=train) -> (logits [B, C], h [B, D])``: a whole *classifier*.
  Strategies on a standard softmax network use its logits and features as
  they are; max-separation strategies put the max-separation head on ``h``
  (the module's own logits are then left unused).

``x`` is float32 ``[B, H, W, Ch]``, already normalised (``(pixels / 255 -
mean) / std``). ``train`` is ``True`` while training: use it for
``nn.BatchNorm(use_running_average=not train)`` (the library applies with
``mutable=["batch_stats"]``) and ``nn.Dropout(deterministic=not train)`` (rng
stream ``"dropout"``). A module whose ``__call__`` takes no ``train`` argument
is called as ``m(x)``.

>>> import flax.linen as nn
>>> class Mlp(nn.Module):
...   @nn.compact
...   def __call__(self, x, train: bool = False):
...     return nn.relu(nn.Dense(16)(x.reshape(x.shape[0], -1)))
>>> net = wrap(Mlp(), num_classes=3, head="max_sep", input_shape=(4, 4, 1))
>>> type(net.head).__name__
'MaxSeparationHead'
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from msal_jax.models.heads import LinearHead, MaxSeparationHead

_PROBE_BATCH = 2  # > 1, so a module that mixes up the batch axis is caught


def import_object(spec: str, *, field: str = "model.module") -> Any:
  """The object named by ``"package.module:Name"`` or ``"path/to/file.py:Name"``.

  ``Name`` may be dotted (``"pkg.mod:Outer.Inner"``). A file path is loaded
  as a module of its own (once per path; later calls reuse it).

  Raises:
    ValueError: a malformed spec, a module that cannot be imported (with the
      import error), or a missing name; the message names ``field``.
  """
  if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
    raise ValueError(
        f"{field}: expected 'package.module:Name' or 'path/to/file.py:Name', got {spec!r}."
    )
  where, name = spec.split(":")
  if where.endswith(".py") or os.sep in where or "/" in where:
    path = os.path.abspath(os.path.expanduser(where))
    if not os.path.isfile(path):
      raise ValueError(f"{field}: cannot import {spec!r}: file {path!r} does not exist.")
    mod_name = "msal_jax_user_" + "".join(c if c.isalnum() else "_" for c in path)
    module = sys.modules.get(mod_name)
    if module is None:
      file_spec = importlib.util.spec_from_file_location(mod_name, path)
      module = importlib.util.module_from_spec(file_spec)
      # Registered before running it: dataclasses (every Flax module) look
      # their module up in sys.modules while the class is created.
      sys.modules[mod_name] = module
      try:
        file_spec.loader.exec_module(module)
      except Exception as e:
        del sys.modules[mod_name]
        raise ValueError(
            f"{field}: cannot import {spec!r}: {type(e).__name__}: {e}"
        ) from e
  else:
    try:
      module = importlib.import_module(where)
    except Exception as e:
      raise ValueError(
          f"{field}: cannot import module {where!r} of {spec!r}: {type(e).__name__}: {e}. "
          "Is it installed or on PYTHONPATH (or give a file path: 'path/to/file.py:Name')?"
      ) from e
  obj: Any = module
  for part in name.split("."):
    if not hasattr(obj, part):
      public = sorted(n for n in dir(module) if not n.startswith("_"))
      raise ValueError(
          f"{field}: {where!r} has no attribute {name!r}; it defines: {', '.join(public)}."
      )
    obj = getattr(obj, part)
  return obj


def instantiate(
    obj: Any, kwargs: Mapping[str, Any] | None = None, *, field: str = "model.module"
) -> nn.Module:
  """An unbound module from a module class (called with ``kwargs``), a module
  instance (``kwargs`` must be empty) or a factory function returning one.

  Lists in ``kwargs`` become tuples: Flax modules are hashed on their fields.

  Raises:
    ValueError: ``obj`` is none of these, or ``kwargs`` do not fit it.
  """
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(kwargs or {}).items()}
  if isinstance(obj, nn.Module):
    if kwargs:
      raise ValueError(
          f"{field}: got a module instance and keyword arguments {sorted(kwargs)}; pass the "
          "module class to have it built with them, or no keyword arguments."
      )
    return obj
  if not callable(obj):
    raise ValueError(f"{field}: expected a Flax linen module, got {type(obj).__name__} {obj!r}.")
  try:
    module = obj(**kwargs)
  except TypeError as e:
    raise ValueError(
        f"{field}: cannot build {getattr(obj, '__name__', obj)!r} with keyword arguments "
        f"{kwargs}: {e}"
    ) from None
  if not isinstance(module, nn.Module):
    raise ValueError(
        f"{field}: {getattr(obj, '__name__', obj)!r} gave {type(module).__name__}, not a Flax "
        "linen module (flax.linen.Module)."
    )
  return module


def load_module(spec: str, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
  """``instantiate(import_object(spec), kwargs)``: the module a config names."""
  return instantiate(import_object(spec), kwargs)


def accepts_train(module: nn.Module) -> bool:
  """Whether ``module.__call__`` takes a ``train`` argument (or ``**kwargs``)."""
  try:
    params = inspect.signature(type(module).__call__).parameters
  except (TypeError, ValueError):
    return True
  return "train" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


@dataclasses.dataclass(frozen=True)
class OutputSpec:
  """What a user module returns on a probe batch.

  Attributes:
    own_logits: it returns ``(logits, features)`` (else only features).
    feature_dim: ``D`` of ``features [B, D]``.
    num_logits: ``C`` of ``logits [B, C]`` (``None`` without own logits).
  """

  own_logits: bool
  feature_dim: int
  num_logits: int | None = None


def _describe(out: Any) -> str:
  if isinstance(out, (tuple, list)):
    return f"a {type(out).__name__} of {len(out)}: ({', '.join(_describe(o) for o in out)})"
  shape = getattr(out, "shape", None)
  return f"an array of shape {tuple(shape)}" if shape is not None else type(out).__name__


def probe(module: nn.Module, input_shape: tuple[int, ...], *, name: str = "model.module"
          ) -> OutputSpec:
  """Traces ``module`` on a ``[2, *input_shape]`` batch (shapes only, no compute).

  Raises:
    ValueError: the module fails on the input, or returns something other
      than ``h [B, D]`` or ``(logits [B, C], h [B, D])`` with float arrays.
  """
  x = jax.ShapeDtypeStruct((_PROBE_BATCH, *input_shape), jnp.float32)
  kwargs = {"train": False} if accepts_train(module) else {}
  rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
  try:
    out, _ = jax.eval_shape(lambda x: module.init_with_output(rngs, x, **kwargs), x)
  except Exception as e:
    raise ValueError(
        f"{name}: {type(module).__name__} fails on an input batch of shape "
        f"{(_PROBE_BATCH, *input_shape)} (float32, NHWC): {type(e).__name__}: {e}"
    ) from e
  expected = "h [B, D] or (logits [B, C], h [B, D])"
  if isinstance(out, (tuple, list)):
    if len(out) != 2:
      raise ValueError(f"{name}: {type(module).__name__} returns {_describe(out)}; expected "
                       f"{expected}.")
    logits, feats = out
  else:
    logits, feats = None, out
  for what, arr in (("logits", logits), ("features", feats)):
    if arr is None:
      continue
    shape = getattr(arr, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] != _PROBE_BATCH or shape[1] < 1:
      hint = " (flatten or pool them in the module)" if what == "features" else ""
      raise ValueError(
          f"{name}: {type(module).__name__} returns {what} as {_describe(arr)} for a batch "
          f"of {_PROBE_BATCH}; expected [{_PROBE_BATCH}, width >= 1]{hint}. It should return "
          f"{expected}."
      )
    if not jnp.issubdtype(arr.dtype, jnp.floating):
      raise ValueError(f"{name}: {type(module).__name__} returns {what} of dtype {arr.dtype}; "
                       "expected floating point.")
  return OutputSpec(
      own_logits=logits is not None, feature_dim=int(feats.shape[1]),
      num_logits=None if logits is None else int(logits.shape[1]),
  )


class CustomClassifier(nn.Module):
  """A user module, dropout and a library head; ``__call__`` like :class:`Classifier`.

  Attributes:
    module: the user's module (see the module docstring).
    head: the library head on the module's features, or ``None`` to return
      the module's own ``(logits, features)``.
    own_logits: the module returns ``(logits, features)`` (else features).
    dropout_rate: dropout on the features before ``head`` (rng ``"dropout"``).
    pass_train: call the module with ``train=``.
  """

  module: nn.Module
  head: nn.Module | None
  own_logits: bool = False
  dropout_rate: float = 0.0
  pass_train: bool = True

  @nn.compact
  def __call__(
      self, x: jax.Array, *, train: bool = False, mc_dropout: bool = False
  ) -> tuple[jax.Array, jax.Array]:
    out = self.module(jnp.asarray(x), train=train) if self.pass_train else self.module(
        jnp.asarray(x))
    if self.own_logits:
      logits, h = out
      if self.head is None:
        return logits, h
    else:
      h = out
    h = nn.Dropout(self.dropout_rate)(h, deterministic=not (train or mc_dropout))
    return self.head(h)


def wrap(
    module: nn.Module,
    *,
    num_classes: int,
    head: str,
    input_shape: tuple[int, ...],
    rho: float = 1.0,
    dropout_rate: float = 0.0,
    name: str = "model.module",
) -> CustomClassifier:
  """The network a strategy trains, made of a user module.

  Args:
    module: a Flax linen module (see the module docstring for what it returns).
    num_classes: ``C``.
    head: ``"linear"`` or ``"max_sep"``, what the strategy needs.
    input_shape: ``(H, W, Ch)`` of one image.
    rho, dropout_rate: of the max-separation head and of the dropout before
      the library's head.
    name: how errors refer to the module (a config field).

  Returns:
    A :class:`CustomClassifier`: ``apply(variables, x, train=..., mc_dropout=...)
    -> (logits [B, C], features)``.

  Raises:
    ValueError: the module fails on the input shape, returns the wrong
      shapes, returns logits of another width than ``C``, or returns its own
      logits while a dropout layer before the (linear) head is asked for.
  """
  if not isinstance(module, nn.Module):
    raise ValueError(f"{name}: expected a Flax linen module, got {type(module).__name__}.")
  if head not in ("linear", "max_sep"):
    raise ValueError(f"unknown head {head!r}; allowed: linear, max_sep.")
  spec = probe(module, tuple(input_shape), name=name)
  if spec.own_logits and spec.num_logits != num_classes:
    raise ValueError(
        f"{name}: {type(module).__name__} returns logits of width {spec.num_logits}, but the "
        f"data has {num_classes} classes: make its last layer {num_classes} wide, or return "
        "only the features and let the library add the head."
    )
  if spec.own_logits and head == "linear":
    if dropout_rate > 0:
      raise ValueError(
          f"model.dropout_rate={dropout_rate}: {type(module).__name__} returns its own logits, "
          "so there is no place for the library's dropout before the head. Return only the "
          "features from the module (the library then adds head and dropout), or set "
          "model.dropout_rate=0 and use nn.Dropout(deterministic=not train) inside it."
      )
    head_mod = None
  elif head == "linear":
    head_mod = LinearHead(num_classes)
  else:
    head_mod = MaxSeparationHead(num_classes, rho=rho)
  return CustomClassifier(
      module=module, head=head_mod, own_logits=spec.own_logits,
      dropout_rate=dropout_rate, pass_train=accepts_train(module),
  )


def describe_module(module: Any) -> str:
  """A short JSON-friendly name of a module object (for config.json)."""
  if isinstance(module, str):
    return module
  cls = module if isinstance(module, type) else type(module)
  return f"{cls.__module__}:{cls.__qualname__}"


__all__ = [
    "CustomClassifier", "OutputSpec", "accepts_train", "describe_module", "import_object",
    "instantiate", "load_module", "probe", "wrap",
]
