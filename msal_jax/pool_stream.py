"""Pool inference streamed through the network: chunks in, running reductions out.

:func:`stream_outputs` reads a :class:`msal_jax.pool_source.PoolSource` in
fixed-size chunks, places each on the device and runs one compiled step
(:func:`make_apply_chunk`: normalise, forward pass, optional MC-dropout
passes) on it; the chunk's outputs go to *consumers* that keep only what a
round needs, so the ``[N, C]`` outputs of the whole pool never exist:

* :class:`Predictions`, :class:`RowValues`, :class:`TopK`: the consumers of
  :mod:`msal_jax.pool_consumers` (re-exported here): the ``[N]`` argmax and
  the error rate, one value per row, the running top ``k`` of a score;
* :class:`Selection`: the consumer whose ``result()`` is a strategy's selection.

**Same as in memory.** A chunk is ``chunk_size = j * batch_size`` rows and the
step runs the model on ``batch_size`` rows at a time, with ``Trainer``'s
normalisation and, for MC dropout, its keys (``fold_in(key, batch index)``),
so every row's outputs are those of ``Trainer.predict`` / ``predict_mc`` with
``eval_batch_size = batch_size``. The running top ``k`` keeps the order of
one ``lax.top_k`` over the pool, ties to the lower index (see
:mod:`msal_jax.streaming`), so the selections are those of
:mod:`msal_jax.strategies`, given equal per-row scores; on XLA:CPU that needs
the chunks and the pool on the same side of its size-dependent kernels (see
:mod:`msal_jax.parallel`).

**Overlap.** JAX dispatches asynchronously: chunk ``i + 1`` is placed and its
step queued before the host waits for chunk ``i``'s outputs, and the source
reads further chunks in its own thread, so transfer, reading and the forward
pass overlap. At most two chunks are on the device.

**Over a mesh** (``mesh=``) each chunk's rows are split over the devices
(:func:`place_chunk`) and every device runs the step on its rows. Under
``jax.distributed`` a process reads only the rows of its own devices
(:func:`local_span`), so the hosts share the reading; every process then
gets the whole chunk's outputs (:func:`host_outputs`) for its consumers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from msal_jax import scoring, selection
from msal_jax.pool_consumers import Predictions, RowValues, TopK
from msal_jax.pool_source import DEFAULT_PREFETCH
from msal_jax.train import normalize

__all__ = [
    "NEEDS_ALL_EMBEDDINGS", "Consumer", "Predictions", "RowValues", "Selection", "TopK",
    "chunk_rows", "host_outputs", "local_span", "make_apply_chunk", "memory_needed",
    "place_chunk", "refusal", "stream_outputs", "streamed_form",
]

Consumer = Callable[[int, int, dict[str, jax.Array]], None]


def chunk_rows(batches: int, batch_size: int, mesh: Mesh | None = None) -> int:
  """Rows of a chunk: ``batches * batch_size``, rounded up to whole batches on every device.

  >>> chunk_rows(8, 50), chunk_rows(2, 50, jax.sharding.Mesh(jax.devices()[:1], ("data",)))
  (400, 100)
  """
  size = 1 if mesh is None else mesh.size
  return -(-batches // size) * size * batch_size


def local_span(chunk_size: int, mesh: Mesh | None = None) -> tuple[int, int] | None:
  """Rows ``[lo, hi)`` of a chunk that this process's devices hold on ``mesh``.

  ``None`` when the process holds every row (one device, or a mesh of this
  process's devices only) or when its devices' rows are not one contiguous
  range (it then reads whole chunks). With 2 processes of 4 devices each on
  an 8-device mesh, a 512-row chunk is rows ``[0, 256)`` for process 0 and
  ``[256, 512)`` for process 1.
  """
  if mesh is None:
    return None
  me = jax.process_index()
  if all(d.process_index == me for d in mesh.devices.flat):
    return None
  from msal_jax import train_mesh
  blocks = train_mesh.rows_sharded(mesh).addressable_devices_indices_map((chunk_size,))
  spans = sorted({(idx[0].start or 0, chunk_size if idx[0].stop is None else idx[0].stop)
                  for idx in blocks.values()})
  lo, hi = spans[0][0], spans[-1][1]
  if sum(b - a for a, b in spans) != hi - lo:
    return None
  return lo, hi


def place_chunk(chunk: np.ndarray, mesh: Mesh | None = None, *,
                span: tuple[int, int] | None = None, rows: int | None = None) -> jax.Array:
  """A host chunk on the device, or its rows split over ``mesh`` (each process its own).

  With ``span=(lo, hi)`` (from :func:`local_span`) ``chunk`` holds only rows
  ``[lo, hi)`` of a ``rows``-row chunk: this process's devices' rows, from
  which it builds its blocks of the global array.
  """
  if mesh is None:
    return jax.device_put(chunk)
  from msal_jax import train_mesh
  if span is None:
    return train_mesh.put(chunk, train_mesh.rows_sharded(mesh))
  lo = span[0]
  return jax.make_array_from_callback(
      (rows, *chunk.shape[1:]), train_mesh.rows_sharded(mesh),
      lambda idx: chunk[idx[0].start - lo: idx[0].stop - lo])


def make_apply_chunk(apply_fn: Callable, mean: Sequence[float], std: Sequence[float], *,
                     batch_size: int, mc_passes: int = 0,
                     traces: Any = None, mesh: Mesh | None = None) -> Callable:
  """The compiled step ``(variables, key, chunk, offset) -> outputs`` of one chunk.

  Args:
    apply_fn: ``model.apply``: ``(variables, x) -> (logits [B, C], features [B, K])``.
    mean, std: per-channel normalisation, as given to ``Trainer``.
    batch_size: rows per forward pass (``Trainer.eval_batch_size``); a chunk
      must hold a multiple of it.
    mc_passes: ``T > 0`` adds ``"mc_logits" [T, n, C]``: ``T`` dropout-on
      passes, keyed as ``Trainer.predict_mc(key=key)`` keys them.
    traces: optional ``collections.Counter``: ``traces["pool_step"]`` counts
      the step's compilations (as ``Trainer.traces`` counts its own).
    mesh: ``None`` (one device), or a 1-D mesh: the chunk (placed by
      :func:`place_chunk`, ``n`` a multiple of ``mesh.size * batch_size``,
      see :func:`chunk_rows`) is split over it and every device runs the step
      on its rows; the outputs keep that split (:func:`stream_outputs` brings
      them to the host), the same values as on one device.

  Returns:
    A jitted function of ``variables`` (``{"params", "batch_stats"}``), a PRNG
    ``key`` (ignored without MC passes), ``chunk`` ``[n, H, W, Ch]`` uint8 and
    ``offset`` (int32 pool row of its first row), returning ``{"logits": [n,
    C], "features": [n, K]}`` (plus ``"mc_logits"``).
  """
  mean = jnp.asarray(mean, jnp.float32).reshape(1, 1, 1, -1)
  std = jnp.asarray(std, jnp.float32).reshape(1, 1, 1, -1)

  def step(variables, key, chunk, offset):
    if traces is not None:
      traces["pool_step"] += 1  # runs only while jax traces, i.e. compiles
    n = chunk.shape[0]
    if n % batch_size:
      raise ValueError(f"apply_chunk: a chunk of {n} rows is not a multiple of batch_size "
                       f"{batch_size}.")
    batches = chunk.reshape(n // batch_size, batch_size, *chunk.shape[1:])
    first = offset // batch_size  # Trainer.predict_mc folds in the batch index

    def one(args):
      b, images = args
      x = normalize(images, mean, std)
      logits, feats = apply_fn(variables, x)
      out = {"logits": logits, "features": feats}
      if mc_passes:
        keys = jax.random.split(jax.random.fold_in(key, first + b), mc_passes)
        out["mc_logits"] = jax.vmap(lambda k: apply_fn(
            variables, x, mc_dropout=True, rngs={"dropout": k})[0])(keys)
      return out

    out = jax.lax.map(one, (jnp.arange(n // batch_size, dtype=jnp.int32), batches))
    result = {name: out[name].reshape(n, *out[name].shape[2:]) for name in ("logits", "features")}
    if mc_passes:  # [n/B, T, B, C] -> [T, n, C]
      mc = jnp.moveaxis(out["mc_logits"], 1, 0)
      result["mc_logits"] = mc.reshape(mc_passes, n, mc.shape[-1])
    return result

  if mesh is None:
    return jax.jit(step)
  from msal_jax.placement import mesh_axis
  axis, size = mesh_axis(mesh), mesh.size

  def local(variables, key, x, offset):  # one device's rows, at their place in the pool
    return step(variables, key, x, offset + jax.lax.axis_index(axis) * x.shape[0])

  specs = {"logits": P(axis), "features": P(axis)}
  if mc_passes:
    specs["mc_logits"] = P(None, axis)
  sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P(axis), P()),
                                  out_specs=specs, check_vma=False))

  def on_mesh(variables, key, chunk, offset):
    if chunk.shape[0] % (size * batch_size):
      raise ValueError(f"apply_chunk: a chunk of {chunk.shape[0]} rows does not split into "
                       f"whole batches of {batch_size} over {size} devices (see chunk_rows).")
    return sharded(variables, key, chunk, offset)

  return on_mesh


def host_outputs(out: dict[str, jax.Array]) -> dict[str, np.ndarray]:
  """A mesh step's outputs as host arrays on every process (the consumers' inputs)."""
  from msal_jax.placement import to_host
  return {name: to_host(value) for name, value in out.items()}


def stream_outputs(apply_chunk: Callable, variables: Any, source: Any, *, chunk_size: int,
                   consumers: Sequence[Consumer], key: jax.Array | None = None,
                   prefetch: int = DEFAULT_PREFETCH,
                   progress: Callable[[int, int], None] | None = None,
                   mesh: Mesh | None = None) -> None:
  """Runs ``apply_chunk`` over every chunk of ``source`` and hands the outputs to ``consumers``.

  Args:
    apply_chunk: from :func:`make_apply_chunk` (any ``(variables, key, chunk,
      offset) -> dict`` works).
    variables: the model's variables, passed to every step.
    source: a :class:`~msal_jax.pool_source.PoolSource`.
    chunk_size: rows per step; the last chunk is zero-padded to it, so the
      step compiles once.
    consumers: each called as ``consumer(start, valid, outputs)`` per chunk,
      in pool order, with the chunk's first pool row, its number of real rows
      and its (device) outputs; the padded rows' outputs are to be ignored.
    key: passed to every step (MC dropout).
    prefetch: chunks the source reads ahead.
    progress: ``progress(rows_done, N)`` after each chunk is handed on.
    mesh: the mesh ``apply_chunk`` was made for (chunks placed by
      :func:`place_chunk`); ``None``: one device.
  """
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
    raise ValueError(f"stream_outputs: chunk_size must be an int >= 1, got {chunk_size!r}.")
  num = source.num

  def hand_on(start: int, out: dict[str, jax.Array]) -> None:
    valid = min(chunk_size, num - start)
    if mesh is not None:  # split over the devices (and processes): gathered on each host
      out = host_outputs(out)
    for consume in consumers:
      consume(start, valid, out)
    jax.block_until_ready(out)  # at most two chunks in flight
    if progress is not None:
      progress(start + valid, num)

  span = local_span(chunk_size, mesh)  # this process's rows of each chunk (multi-host)
  by_span = span is not None and "span" in inspect.signature(source.chunks).parameters
  opened = (source.chunks(chunk_size, prefetch=prefetch, span=span) if by_span
            else source.chunks(chunk_size, prefetch=prefetch))
  with opened as chunks:
    previous = None
    for start, chunk in chunks:
      if span is not None and not by_span:  # a source without span: read whole, sliced
        chunk = chunk[span[0]: span[1]]
      placed = place_chunk(chunk, mesh, span=span, rows=chunk_size)
      out = apply_chunk(variables, key, placed, jnp.int32(start))
      if previous is not None:  # chunk i+1 is queued before chunk i is waited for
        hand_on(*previous)
      previous = (start, out)
    if previous is not None:
      hand_on(*previous)


# ---------------------------------------------------------------------------
# a strategy's selection, streamed
# ---------------------------------------------------------------------------

# Strategies that need every row's embedding at once (msal_jax.clustering).
NEEDS_ALL_EMBEDDINGS = ("kcenter", "kmeans", "badge", "dbal")


def memory_needed(strategy: str, num: int, feature_dim: int, *, num_classes: int = 0,
                  budget: int = 0) -> int:
  """Bytes of the pool-sized float32 arrays a strategy of :data:`NEEDS_ALL_EMBEDDINGS` holds.

  A lower bound: the ``[N, K]`` features it is handed (BADGE and DBAL also the
  ``[N, C]`` logits; BADGE's ``[N, K*C]`` gradient embeddings are never built,
  see :mod:`msal_jax.badge`), k-means' ``[N, max(budget, n_init * trials)]``
  distances (:mod:`msal_jax.kmeans`) and k-center's ``[N, KCENTER_LOOKAHEAD]``
  distance columns, plus four ``[N]`` vectors. 0 for a streamed strategy.
  """
  if strategy not in NEEDS_ALL_EMBEDDINGS:
    return 0
  width = feature_dim + 4
  if strategy in ("badge", "dbal"):
    width += num_classes
  from msal_jax import clustering
  if strategy == "kmeans":  # Lloyd's [N, b] distances, or the seedings' [N, n_init * trials]
    width += max(budget, clustering.KMEANS_N_INIT * clustering.local_trials(max(budget, 1)))
  if strategy == "kcenter":
    width += clustering.KCENTER_LOOKAHEAD
  return 4 * num * width


def refusal(strategy: str, num: int, feature_dim: int, **kwargs: int) -> str:
  """The one-line error for a strategy of :data:`NEEDS_ALL_EMBEDDINGS` on a streamed pool."""
  need = memory_needed(strategy, num, feature_dim, **kwargs)
  return (f"strategy {strategy!r} needs the embeddings of the whole pool in memory (at least "
          f"{need / 2**30:.2f} GiB for N={num}, K={feature_dim}), but the pool is streamed: use "
          "a streamed strategy (msal, msal_d, entropy, bald, ...) or, if that fits, raise "
          "in_memory_limit (launcher: --config.data.in_memory_limit=BYTES).")


def _plan(strategy: str) -> tuple[str, str | None]:
  """``(kind, score)``: kind ``"top_k"``, ``"msal_d"`` or ``"random"`` (no pool pass)."""
  if strategy == "random":
    return "random", None
  if strategy in ("msal", "ceal_msal"):
    return "top_k", "msal"
  if strategy == "msal_d":
    return "msal_d", "msal"
  if strategy.endswith("_msal_d") and strategy[: -len("_msal_d")] in scoring.UNCERTAINTY:
    return "msal_d", strategy[: -len("_msal_d")]
  base = strategy.removeprefix("ceal_").removesuffix("_msal")
  if base in scoring.UNCERTAINTY or base in scoring.MC_UNCERTAINTY:
    return "top_k", base
  raise ValueError(f"selector: strategy {strategy!r} has no streamed form.")


def streamed_form(strategy: str) -> tuple[str, str | None]:
  """How :class:`Selection` streams ``strategy``: ``(kind, score)`` (a ValueError if it cannot)."""
  if strategy in NEEDS_ALL_EMBEDDINGS:
    raise ValueError(f"strategy {strategy!r} needs all embeddings (see pool_stream.refusal).")
  return _plan(strategy)


class Selection:
  """A strategy's query, fed chunk by chunk: ``result()`` equals ``strategy.select``.

  Args:
    strategy: a name of :data:`msal_jax.strategies.STRATEGIES` other than
      :data:`NEEDS_ALL_EMBEDDINGS` (those raise, see :func:`refusal`).
    labeled: ``[N]`` bool.
    budget, beta: as ``select`` gets them.
    prototypes: ``[C, C-1]`` of a max-separation head.
    key: the query key (``random`` only: it scores no outputs, and consumes none).
  """

  def __init__(self, strategy: str, labeled: np.ndarray, *, budget: int, beta: float,
               prototypes: Any = None, key: jax.Array | None = None):
    if strategy in NEEDS_ALL_EMBEDDINGS:
      raise ValueError(f"Selection: strategy {strategy!r} needs all embeddings; check it first "
                       "with pool_stream.refusal.")
    self.kind, score = _plan(strategy)
    self.strategy, self.labeled, self.budget, self.beta = strategy, labeled, budget, beta
    self.key, self.prototypes = key, prototypes
    self.top = None
    if self.kind == "top_k":
      self.top = TopK(score, labeled, budget, prototypes=prototypes)
    elif self.kind == "msal_d":
      if prototypes is None:
        raise ValueError(f"Selection: {strategy!r} needs the prototypes of a max-separation head.")
      m = selection.num_candidates(budget, beta, np.shape(labeled)[0])
      self.top = TopK(score, labeled, m, prototypes=prototypes, carry=True)
    self.needs_mc = score in scoring.MC_UNCERTAINTY

  def __call__(self, start: int, valid: int, outputs: dict[str, jax.Array]) -> None:
    if self.top is not None:
      self.top(start, valid, outputs)

  def result(self) -> np.ndarray:
    """``[budget] int32`` pool ids in query order, ``-1`` in slots that cannot be filled."""
    if self.kind == "random":
      from msal_jax import strategies
      return np.asarray(strategies.get("random").select(
          self.key, None, jnp.asarray(self.labeled), budget=self.budget, beta=self.beta))
    idx, feats = self.top.result()
    if self.kind == "top_k":
      return idx
    from msal_jax.streaming import diversify  # selection.diversify, compiled
    return np.asarray(diversify(jnp.asarray(idx), jnp.asarray(feats),
                                jnp.asarray(self.prototypes), budget=self.budget))
