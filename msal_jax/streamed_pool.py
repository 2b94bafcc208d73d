"""The loop's pool when it does not fit in memory: streamed through the network each round.

:func:`msal_jax.loop.build` decides once per run whether the pool is held on
the device (today's path) or streamed (:func:`streamed_source`): a pool
given as a memory map (``np.memmap``, e.g. :func:`msal_jax.data.custom.load_npy_dir`)
or as a :class:`msal_jax.pool_source.PoolSource` streams when its pixels are
more than ``in_memory_limit`` bytes (default
:data:`msal_jax.pool_source.IN_MEMORY_LIMIT_BYTES`); a plain numpy array is
already in memory and stays there.

A streamed run holds, besides the model and the test set:

* :class:`LabeledStore`: the labeled samples' images, read from the source
  when they are first labeled, in a fixed-capacity ``[initial + budget, H, W,
  Ch]`` array (one shape for the whole run: the train step compiles once);
  the trainer visits them in the in-memory order (:meth:`Trainer.fit`'s
  ``rows``), so the trained model is the in-memory one;
* one chunk of pool images at a time (two in flight), scored by one
  compiled step (:func:`msal_jax.pool_stream.make_apply_chunk`), its outputs
  handed to the running consumers: the error count
  (:class:`~msal_jax.pool_stream.Predictions`) and the strategy's running
  top ``k`` (:class:`~msal_jax.pool_stream.Selection`), never the ``[N, C]``
  outputs of the whole pool;
* ``[N]`` host vectors (the labeled mask, labels, the consumers' masks).

Not streamed (refused by :func:`check_strategy` at build, with a one-line
error): the strategies that need every embedding at once
(:data:`msal_jax.pool_stream.NEEDS_ALL_EMBEDDINGS`, with the memory figure of
:func:`msal_jax.pool_stream.refusal`). CEAL streams: each row's pseudo-label
test is kept as an ``[N]`` bool vector during the pass, and the round that
trains on the pseudo-labels reads their images from the source into the
training store for that round only (:meth:`LabeledStore.arrays`'s ``extra``).

**Over a mesh** (the trainer's): each chunk's rows are split over the devices
(:func:`msal_jax.pool_stream.make_apply_chunk`'s ``mesh``; the chunk grows to
whole eval batches on every device, :func:`msal_jax.pool_stream.chunk_rows`),
the outputs are gathered to every process's host for the consumers, and the
labeled store is replicated for the data-parallel train step as the pool is
in memory (:meth:`msal_jax.train.Trainer.place_train_images`). The queries
and accuracies are those of the same run with the pool in memory on that mesh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from msal_jax import pool_source, pool_stream

# Rows of a pool chunk, in eval batches: chunk_size = CHUNK_BATCHES * eval_batch_size.
CHUNK_BATCHES = 8


def _limit(in_memory_limit: int | None) -> int:
  limit = pool_source.IN_MEMORY_LIMIT_BYTES if in_memory_limit is None else in_memory_limit
  if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
    raise ValueError(f"in_memory_limit must be an int >= 0 (bytes), got {in_memory_limit!r}.")
  return limit


def streamed_source(images: Any, in_memory_limit: int | None = None
                    ) -> pool_source.PoolSource | None:
  """The source to stream the pool from, or ``None``: the pool is held in memory.

  ``images``: a Dataset's ``pool_images``. A plain numpy array (or an
  :class:`~msal_jax.pool_source.ArrayPool`) is in memory already: ``None``.
  A memory map or another source streams when its pixels are more than
  ``in_memory_limit`` bytes (``None``: :data:`pool_source.IN_MEMORY_LIMIT_BYTES`;
  0: always).
  """
  limit = _limit(in_memory_limit)
  if isinstance(images, pool_source.ArrayPool):
    return None
  if isinstance(images, np.ndarray):
    if not isinstance(images, np.memmap) or images.nbytes <= limit:
      return None
    return pool_source.NpyPool.from_memmap(images)
  if not isinstance(images, pool_source.PoolSource):
    raise ValueError(f"pool_images: a uint8 numpy array, memory map or PoolSource, got "
                     f"{type(images).__name__}.")
  return images if images.num * int(np.prod(images.image_shape)) > limit else None


def in_memory(images: Any) -> np.ndarray:
  """The pool as one numpy array (a source under the limit is read whole here)."""
  if isinstance(images, np.ndarray):
    return images
  if isinstance(images, pool_source.ArrayPool):
    return images.images
  return images.read(np.arange(images.num))


def check_strategy(strategy: str, *, num: int, feature_dim: int, num_classes: int,
                   budget: int) -> None:
  """Raises a one-line ``ValueError`` unless ``strategy`` has a streamed form."""
  if strategy in pool_stream.NEEDS_ALL_EMBEDDINGS:
    raise ValueError(pool_stream.refusal(strategy, num, feature_dim, num_classes=num_classes,
                                         budget=budget))
  pool_stream.streamed_form(strategy)  # a ValueError when there is none


class LabeledStore:
  """The labeled samples' images and labels in fixed-capacity arrays, filled from the source.

  ``rows[i]`` is the store row of pool sample ``i`` (valid where it is
  stored); a sample is read from the source once, when it is first labeled.
  """

  def __init__(self, source: pool_source.PoolSource, capacity: int):
    self.source, self.capacity = source, capacity
    self.images = np.zeros((capacity, *source.image_shape), np.uint8)
    self.rows = np.zeros(source.num, np.int64)
    self.stored = np.zeros(source.num, bool)
    self.count = 0

  def arrays(self, mask: np.ndarray, labels: np.ndarray,
             place: Callable[[np.ndarray], jax.Array] = jnp.asarray,
             extra: tuple[np.ndarray, np.ndarray] | None = None,
             ) -> tuple[jax.Array, jax.Array, np.ndarray]:
    """``(images [capacity], labels [capacity], rows [N])`` for ``mask``, placed by ``place``.

    ``place``: ``jnp.asarray`` (one device) or the trainer's
    :meth:`~msal_jax.train.Trainer.place_train_images` (replicated on its mesh).
    ``extra``: ``(ids, labels)`` of unlabeled samples to train on as well
    (CEAL's pseudo-labels), read from the source for this call only and put
    after the store's rows (``capacity`` plus ``len(ids)`` rounded up to a
    power of two, so that the train step compiles once per size class;
    ``rows[ids]`` point at them).
    """
    new = np.flatnonzero(mask & ~self.stored)
    if self.count + new.size > self.capacity:
      raise RuntimeError(f"LabeledStore: {self.count + new.size} samples to train on, more "
                         f"than its capacity {self.capacity}.")
    if new.size:
      self.images[self.count: self.count + new.size] = self.source.read(new)
      self.rows[new] = np.arange(self.count, self.count + new.size)
      self.stored[new] = True
      self.count += new.size
    store_labels = np.zeros(self.capacity, np.int32)
    store_labels[self.rows[mask]] = labels[mask]
    if extra is None or not np.size(extra[0]):
      return place(self.images), place(store_labels), self.rows
    ids, extra_labels = np.asarray(extra[0], np.int64), np.asarray(extra[1], np.int32)
    if (mask[ids]).any():
      raise ValueError("LabeledStore.arrays: extra samples must be unlabeled.")
    rows = self.rows.copy()
    rows[ids] = self.capacity + np.arange(ids.size)
    # Padded to a power of two (rows never visited): the train step compiles
    # once per size class, not once per count.
    size = 1 << (ids.size - 1).bit_length()
    images = np.zeros((self.capacity + size, *self.images.shape[1:]), np.uint8)
    images[: self.capacity] = self.images
    images[self.capacity: self.capacity + ids.size] = self.source.read(ids)
    all_labels = np.zeros(self.capacity + size, np.int32)
    all_labels[: self.capacity] = store_labels
    all_labels[self.capacity: self.capacity + ids.size] = extra_labels
    return place(images), place(all_labels), rows


@dataclasses.dataclass
class StreamedPool:
  """The streamed pool of one run: its source, labeled store and compiled chunk step."""

  source: pool_source.PoolSource
  store: LabeledStore
  apply: Callable  # make_apply_chunk's step, with MC passes when the strategy needs them
  chunk_size: int
  mesh: Any = None  # the trainer's: chunks split over it; None: one device

  @classmethod
  def make(cls, source: pool_source.PoolSource, trainer: Any, *, capacity: int,
           mc_passes: int) -> StreamedPool:
    apply = pool_stream.make_apply_chunk(trainer.model.apply, trainer.mean, trainer.std,
                                         batch_size=trainer.eval_batch_size, mc_passes=mc_passes,
                                         traces=trainer.traces, mesh=trainer.mesh)
    return cls(source, LabeledStore(source, capacity), apply,
               pool_stream.chunk_rows(CHUNK_BATCHES, trainer.eval_batch_size, trainer.mesh),
               trainer.mesh)

  @property
  def num(self) -> int:
    return self.source.num

  def _variables(self, ts: Any, key: jax.Array) -> tuple[Any, jax.Array]:
    variables = {"params": ts.params, "batch_stats": ts.batch_stats}
    if self.mesh is None:
      return variables, key
    from msal_jax import train_mesh  # replicated on the mesh (the trainer's state already is)
    return train_mesh.put((variables, key), train_mesh.replicated(self.mesh))

  def score(self, ts: Any, consumers: list, key: jax.Array,
            progress: Callable[[int, int], None] | None = None) -> None:
    """One pass over the pool: every chunk's outputs to ``consumers``."""
    variables, key = self._variables(ts, key)
    pool_stream.stream_outputs(self.apply, variables, self.source, chunk_size=self.chunk_size,
                               consumers=consumers, key=key, progress=progress, mesh=self.mesh)

  def features(self, ts: Any, ids: np.ndarray) -> np.ndarray:
    """``[len(ids), K]`` features of pool rows ``ids``, by the pool pass's compiled step."""
    variables, key = self._variables(ts, jax.random.PRNGKey(0))
    out = []
    for start in range(0, len(ids), self.chunk_size):
      part = ids[start: start + self.chunk_size]
      chunk = np.zeros((self.chunk_size, *self.source.image_shape), np.uint8)
      chunk[:part.size] = self.source.read(part)
      result = self.apply(variables, key, pool_stream.place_chunk(chunk, self.mesh),
                          jnp.int32(0))
      if self.mesh is not None:
        result = pool_stream.host_outputs(result)
      out.append(np.asarray(result["features"])[:part.size])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def feature_dim(model: Any, image_shape: tuple[int, int, int]) -> int:
  """``K``, the width of the model's features (no computation: shapes only)."""
  def outputs(key):
    x = jnp.zeros((1, *image_shape), jnp.float32)
    return model.init_with_output({"params": key, "dropout": key}, x, train=False)[0]

  _, feats = jax.eval_shape(outputs, jax.random.PRNGKey(0))
  return int(feats.shape[-1])
