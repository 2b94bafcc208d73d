"""Training and inference: a TrainState and pure jitted steps, compiled once.

The pool and test images live on device as ``uint8`` arrays of fixed shape
for the whole experiment; steps receive a fixed-size vector of indices (plus
a weight mask for the padded tail of an epoch) and gather and normalise the
batch inside the compiled function. So the number of labeled samples can grow
every round without a new compilation: :class:`Trainer` counts its traces in
``Trainer.traces`` to prove it.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from msal_jax import augment as augment_lib
from msal_jax import placement, train_mesh


class TrainState(train_state.TrainState):
  """Flax TrainState plus BatchNorm statistics (an empty dict for models without)."""

  batch_stats: Any


class NonFiniteLossError(FloatingPointError):
  """Raised when a training loss is NaN or infinite."""


def normalize(images: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
  """``uint8 [B, H, W, Ch]`` -> float32 ``(x / 255 - mean) / std``; mean/std ``[1, 1, 1, Ch]``."""
  return (images.astype(jnp.float32) / 255.0 - mean) / std


@dataclasses.dataclass
class Trainer:
  """The compiled programs of one experiment (one model, one optimizer).

  Attributes:
    model: a :class:`msal_jax.models.Classifier` (``__call__(x, *, train,
      mc_dropout) -> (logits, features)``).
    image_shape: ``(H, W, Ch)`` of one input.
    mean, std: per-channel normalisation of pixels in ``[0, 1]``.
    learning_rate: Adam step size (paper: 1e-3).
    batch_size: training batch (paper: 128).
    eval_batch_size: fixed inference batch; the last one is padded.
    augment: random 4-pixel crop and horizontal flip of each training image
      (:func:`msal_jax.augment.random_crop_flip`, on device, inside the train
      step); inference never augments.
    mesh: ``None`` (one device: the programs and their arguments are exactly
      those without this field) or a 1-D :class:`jax.sharding.Mesh` (e.g.
      :func:`msal_jax.placement.make_mesh`; an Auto axis): data-parallel
      training and pool inference split over its devices, as
      :mod:`msal_jax.train_mesh` describes. Place the arrays once per
      experiment with :meth:`place_train_images` and :meth:`place_pool`.
    traces: compilations per program (``init``, ``train_step``, ``shuffle``,
      ``eval_step``, ``mc_step``), with or without a mesh.
  """

  model: nn.Module
  image_shape: tuple[int, int, int]
  mean: Sequence[float]
  std: Sequence[float]
  learning_rate: float = 1e-3
  batch_size: int = 128
  eval_batch_size: int = 1000
  augment: bool = False
  traces: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  mesh: jax.sharding.Mesh | None = None

  def __post_init__(self):
    self.tx = optax.adam(self.learning_rate)
    # [1, 1, 1, Ch]: explicit ranks (no implicit rank promotion).
    self._mean = jnp.asarray(self.mean, jnp.float32).reshape(1, 1, 1, -1)
    self._std = jnp.asarray(self.std, jnp.float32).reshape(1, 1, 1, -1)
    self._init = jax.jit(self._counted("init", self._init_fn))
    self._train_step = jax.jit(self._counted("train_step", self._train_step_fn), donate_argnums=0)
    self._eval_step = jax.jit(self._counted("eval_step", self._eval_step_fn))
    self._shuffle = jax.jit(self._counted("shuffle", self._shuffle_fn))
    self._mc_step = jax.jit(self._counted("mc_step", self._mc_step_fn))
    if self.mesh is not None:
      self._mesh_programs(self.mesh)

  def _mesh_programs(self, mesh: jax.sharding.Mesh) -> None:
    # The same pure steps, compiled for the mesh (the trace counters keep their names).
    train_mesh.check_mesh(mesh)  # a ValueError unless 1-D with an Auto axis
    self._init = train_mesh.jit_init(self._counted("init", self._init_fn), mesh)
    self._train_step = train_mesh.jit_train_step(
        self._counted("train_step", self._train_step_fn), mesh)
    self._pool_predict = train_mesh.jit_predict(
        self._counted("eval_step", self._eval_step_fn), mesh, self.eval_batch_size)
    self._pool_predict_mc = train_mesh.jit_predict_mc(
        self._counted("mc_step", self._mc_step_fn), mesh, self.eval_batch_size)

  def _counted(self, name: str, fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
      self.traces[name] += 1  # runs only while jax traces, i.e. compiles
      return fn(*args, **kwargs)

    return wrapper

  # -- pure functions (jitted in __post_init__) -------------------------------

  def _init_fn(self, key: jax.Array) -> TrainState:
    dummy = jnp.zeros((1, *self.image_shape), jnp.float32)
    variables = self.model.init({"params": key, "dropout": key}, dummy, train=False)
    return TrainState.create(
        apply_fn=self.model.apply,
        params=variables["params"],
        tx=self.tx,
        batch_stats=variables.get("batch_stats", {}),
    )

  def _train_step_fn(self, state, images, labels, idx, weight, key):
    batch = images[idx]
    if self.augment:  # a Python bool: fixed when the step is traced
      batch = augment_lib.random_crop_flip(jax.random.fold_in(key, 1), batch)
    x = normalize(batch, self._mean, self._std)
    y = labels[idx]

    def loss_fn(params):
      (logits, _), updates = state.apply_fn(
          {"params": params, "batch_stats": state.batch_stats},
          x, train=True, rngs={"dropout": key}, mutable=["batch_stats"],
      )
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
      return jnp.sum(ce * weight) / jnp.maximum(jnp.sum(weight), 1.0), updates

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads)
    state = state.replace(batch_stats=updates.get("batch_stats", state.batch_stats))
    return state, loss

  def _eval_step_fn(self, state, images, idx):
    x = normalize(images[idx], self._mean, self._std)
    return state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, x)

  def _mc_step_fn(self, state, images, idx, keys):
    # T stochastic passes over one batch, vectorised over the dropout keys.
    x = normalize(images[idx], self._mean, self._std)
    variables = {"params": state.params, "batch_stats": state.batch_stats}

    def one_pass(key):
      return state.apply_fn(variables, x, mc_dropout=True, rngs={"dropout": key})[0]

    return jax.vmap(one_pass)(keys)

  @staticmethod
  def _shuffle_fn(key, labeled):
    # A uniform shuffle of the labeled indices at the pool's fixed shape:
    # sort random keys with the unlabeled ones pushed to the end.
    u = jax.random.uniform(key, labeled.shape)
    return jnp.argsort(jnp.where(labeled, u, 2.0))

  # -- host-side drivers -----------------------------------------------------

  def place_pool(self, images: Any) -> jax.Array:
    """The pool (or test) images for :meth:`predict` / :meth:`predict_mc`; call once.

    One device: ``jnp.asarray(images)``. Mesh: rows split over it and padded
    with zero images to :meth:`pool_rows` (:func:`msal_jax.placement.shard_pool`:
    host arrays and memmaps are read one device block at a time), so each
    device holds ``1 / devices`` of the pool.
    """
    if self.mesh is None:
      return jnp.asarray(images)
    return placement.shard_pool(images, self.mesh)

  def place_train_images(self, images: Any) -> jax.Array:
    """The images :meth:`fit` gathers its batches from; call once per experiment.

    One device: ``jnp.asarray(images)``. Mesh: a whole copy on every device,
    so each device gathers its batch rows locally: ``N * H * W * Ch`` bytes
    (``uint8``) per device, e.g. 153.6 MB for CIFAR-10's 50,000 images.
    """
    if self.mesh is None:
      return jnp.asarray(images)
    return placement.replicate(images, self.mesh)

  def pool_rows(self, num: int) -> int:
    """Rows of :meth:`place_pool`'s array, so of the mesh outputs, for ``num`` images."""
    return num if self.mesh is None else placement.padded_size(num, self.mesh)

  def init(self, key: jax.Array) -> TrainState:
    """A freshly initialised model and optimizer (the paper retrains from scratch)."""
    return self._init(key)

  def fit(
      self,
      state: TrainState,
      images: jax.Array,
      labels: jax.Array,
      labeled: jax.Array,
      *,
      epochs: int,
      key: jax.Array,
      log_every: int = 0,
      log: Callable[[str], None] = print,
      rows: np.ndarray | None = None,
  ) -> tuple[TrainState, float]:
    """Trains ``epochs`` passes over the labeled samples; returns the state and last loss.

    Each epoch visits every labeled sample once in a fresh order, in batches
    of ``batch_size``; the last batch is filled up with samples from the
    start of the epoch at weight 0 (they still pass through BatchNorm, which
    keeps every batch the same shape).

    With a mesh the state, ``images`` and ``labels`` are replicated on it
    (:meth:`place_train_images` does it once; arrays placed elsewhere are
    copied here, on every call) and each batch is split over its devices; a
    ``batch_size`` that does not divide the device count is padded to
    :func:`msal_jax.train_mesh.global_batch` rows of weight 0
    (:func:`~msal_jax.train_mesh.pad_batches`), which pass through BatchNorm.
    The state stays replicated and is donated, as on one device.

    ``rows``: ``images`` and ``labels`` are a compact store of
    the labeled samples (:class:`msal_jax.streamed_pool.LabeledStore`) and
    ``rows[i]`` the store row of pool sample ``i``; the shuffle is still the
    one over the ``[N]`` mask ``labeled``, mapped to store rows, so the steps
    see exactly the batches of the pool-sized arrays. ``None``: ``images``
    and ``labels`` are the pool's.

    Raises:
      NonFiniteLossError: the loss became NaN or infinite (names the step).
    """
    num_labeled = int(jnp.sum(labeled))
    if num_labeled == 0:
      raise ValueError("fit: no labeled sample to train on.")
    steps = math.ceil(num_labeled / self.batch_size)
    padded = steps * self.batch_size
    weight = np.zeros(padded, np.float32)
    weight[:num_labeled] = 1.0
    weight = weight.reshape(steps, self.batch_size)
    if self.mesh is not None:
      state, images, labels, key = self._on_mesh(state, images, labels, key)
    loss = float("nan")
    step = 0
    for epoch in range(epochs):
      ekey = jax.random.fold_in(key, epoch)
      order = np.asarray(self._shuffle(ekey, labeled))[:num_labeled]
      if rows is not None:
        order = rows[order]
      order = np.resize(order, padded).reshape(steps, self.batch_size)
      losses = []
      for i, (idx, w) in enumerate(self._batches(order, weight)):
        state, step_loss = self._train_step(
            state, images, labels, idx, w, jax.random.fold_in(ekey, 1 + i)
        )
        losses.append(step_loss)
      # One host sync per epoch; on a fault, name the first bad step.
      losses = np.array(jax.device_get(losses), np.float32)
      bad = np.flatnonzero(~np.isfinite(losses))
      if bad.size:
        raise NonFiniteLossError(
            f"non-finite training loss {losses[bad[0]]} at epoch {epoch}, step "
            f"{step + int(bad[0])} ({num_labeled} labeled samples)."
        )
      step += steps
      loss = float(losses[-1])
      if log_every and (epoch + 1) % log_every == 0:
        log(f"  epoch {epoch + 1}/{epochs}  loss {loss:.4f}")
    return state, float(loss)

  def _batches(self, order: np.ndarray, weight: np.ndarray):
    """The steps' ``(idx, weight)``: the host rows, or on a mesh padded and split over it."""
    if self.mesh is None:
      return zip(order, weight, strict=True)
    return train_mesh.mesh_batches(order, weight, self.mesh)

  def _on_mesh(self, state, *arrays):
    """``state`` and ``arrays`` replicated on the mesh (already there: as they are)."""
    rep = train_mesh.replicated(self.mesh)
    return tuple(train_mesh.put(x, rep) for x in (state, *arrays))

  def predict_mc(
      self, state: TrainState, images: jax.Array, *, key: jax.Array, passes: int
  ) -> jax.Array:
    """``[passes, N, C]`` logits of ``passes`` dropout-on forward passes (MC dropout).

    BatchNorm uses its running averages; only dropout is stochastic, with an
    independent mask per pass and per sample.

    With a mesh: ``[passes, R, C]`` over the rows ``R`` of
    :meth:`place_pool`'s array, split over the mesh (axis 1), the same masks
    and so the same values as on one device for rows ``< N`` (rows ``>= N``
    are padding); not trimmed to ``N``, which would move rows between devices.
    """
    if self.mesh is not None:
      state, key = self._on_mesh(state, key)
      return self._pool_predict_mc(state, self.place_pool(images), key, passes)
    num = images.shape[0]
    bs = self.eval_batch_size
    out = []
    for chunk, start in enumerate(range(0, num, bs)):
      idx = np.arange(start, start + bs) % num
      keys = jax.random.split(jax.random.fold_in(key, chunk), passes)
      out.append(self._mc_step(state, images, idx, keys))
    return jnp.concatenate(out, axis=1)[:, :num]

  def predict(self, state: TrainState, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Logits ``[N, C]`` and features ``[N, K]`` of every image, in fixed-size batches.

    With a mesh: ``[R, C]`` and ``[R, K]`` over the rows ``R`` of
    :meth:`place_pool`'s array (placed here if it is not yet), split over the
    mesh; rows ``>= N`` are padding (zero images), to be masked (as
    :mod:`msal_jax.parallel` masks its own padding). Not trimmed to ``N``:
    that would move rows between devices.
    """
    if self.mesh is not None:
      (state,) = self._on_mesh(state)
      return self._pool_predict(state, self.place_pool(images))
    num = images.shape[0]
    bs = self.eval_batch_size
    logits, feats = [], []
    for start in range(0, num, bs):
      idx = np.arange(start, start + bs) % num  # the tail batch wraps around
      out_logits, out_feats = self._eval_step(state, images, idx)
      logits.append(out_logits)
      feats.append(out_feats)
    return jnp.concatenate(logits)[:num], jnp.concatenate(feats)[:num]
