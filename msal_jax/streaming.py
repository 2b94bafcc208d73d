"""Pools larger than memory: score in fixed-size chunks with a running top-k.

The pool is read ``chunk_size`` rows at a time from any array-like that
slices along its first axis (a numpy array, an ``np.memmap``,
:class:`msal_jax.query.NpyRows`, an h5py dataset, ...). One compiled program
scores a chunk, takes its top ``k`` (:func:`msal_jax.pool_top_k.block_top_k`,
over a device mesh if one is given) and merges it with the running top ``k``
of the chunks before; the last chunk is padded to ``chunk_size`` with rows
marked labeled, so every chunk reuses that one program. Memory: one or two
chunks (host and device) plus ``O(k)`` candidates, where ``k`` is the budget,
or ``m = ceil(beta * budget)`` candidate rows with their features for MSAL-D.

**Streamed == in memory.** The running top ``k`` is kept ordered by (key
descending, pool index ascending), and it sits *before* the new chunk's
candidates, which all have higher pool indices; ``lax.top_k`` prefers the
lower position on ties, so each merge keeps the order one ``lax.top_k`` over
the whole pool would give, ties to the lower index included. The result is
the in-memory selection's (:mod:`msal_jax.selection`) whenever each chunk's
scores equal the whole pool's (see :mod:`msal_jax.parallel` on XLA:CPU's
size-dependent kernels; default chunks, at least 65,536 rows, use the same
kernels as any larger array).

Reading overlaps computing: JAX dispatches a chunk's program asynchronously
and the next chunk is read meanwhile; at most two chunks are in flight.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.typing import ArrayLike

from msal_jax import scoring, selection
from msal_jax.placement import dtype_of, ndim, padded_size, replicate, shard_pool
from msal_jax.pool_inputs import ROW_AXIS, msal_d_inputs, msal_inputs, pool_size
from msal_jax.pool_top_k import NO_ROW, sharded_top_k

# Default chunk: as many rows as fit in DEFAULT_CHUNK_BYTES of input, at least
# DEFAULT_CHUNK rows. Larger chunks amortise each step's fixed cost: at 10M x 10,
# 2^16-row chunks took 327 ms, 2^20-row ones 110 ms; at 10M x 100, 2^16 rows
# 1.5 s, 2^18 1.2 s (docs/benchmarks.md).
DEFAULT_CHUNK = 65_536
DEFAULT_CHUNK_BYTES = 64 << 20


def default_chunk_size(sources: Mapping[str, Any]) -> int:
  """Rows per chunk: ``DEFAULT_CHUNK_BYTES`` of the inputs' rows, at least ``DEFAULT_CHUNK``."""
  row_bytes = sum(int(np.prod(np.shape(x)[1:], dtype=np.int64)) *
                  jax.dtypes.canonicalize_dtype(dtype_of(x)).itemsize
                  for key, x in sources.items() if key != "prototypes")
  return max(DEFAULT_CHUNK, DEFAULT_CHUNK_BYTES // max(row_bytes, 1))


NONFINITE = ("keep", "skip", "error")

Progress = Callable[[int, int], None]


class NonFiniteError(ValueError):
  """A pool row holds NaN or Inf values (``nonfinite="error"``)."""


# Host chunk buffers are aligned to this many bytes: XLA:CPU then uses them in
# place (jax.device_put of an aligned numpy array does not copy it).
_ALIGN = 64


def _aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
  nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
  raw = np.empty(nbytes + _ALIGN, np.uint8)
  skip = -raw.ctypes.data % _ALIGN
  return raw[skip: skip + nbytes].view(dtype).reshape(shape)


class _ChunkReader:
  """Reads chunks of one source into two reused, aligned host buffers, in turn.

  Each chunk is ``rows`` rows, the last one padded with ``fill``. On one
  device, XLA:CPU computes on such a buffer in place, so a chunk costs one
  copy from the source (none with a fresh array and first-touch page faults
  per chunk, which on the VM of docs/benchmarks.md cost more than the
  scoring). Safe because :func:`stream_top_k` waits for chunk ``i - 1``'s
  step before it refills that chunk's buffer with chunk ``i + 1``.
  """

  def __init__(self, src: Any, rows: int, dtype: np.dtype, fill: Any):
    self.src, self.fill = src, fill
    shape = (rows,) + tuple(np.shape(src)[1:])
    self.buffers = [_aligned_empty(shape, dtype) for _ in range(2)]

  def read(self, chunk: int, start: int, stop: int) -> np.ndarray:
    out = self.buffers[chunk % 2]
    n = stop - start
    if hasattr(self.src, "read_into") and self.src.dtype == out.dtype:
      self.src.read_into(start, out[:n])  # query.NpyRows: straight from the file
    else:
      out[:n] = np.asarray(self.src[start:stop])
    out[n:] = self.fill
    return out


def merge_top_k(state: Mapping[str, jax.Array], candidates: tuple[jax.Array, ...]
                ) -> dict[str, jax.Array]:
  """The running top ``k`` ``state`` merged with one chunk's top-``k`` ``candidates``.

  ``candidates`` is :func:`msal_jax.pool_top_k.sharded_top_k`'s ``(vals [k],
  idx [k], feats [k, F], count, first_bad, num_bad)`` of a chunk whose rows
  all come after the rows already merged; ``state`` has the same keys as the
  result (``vals``, ``idx``, ``feats``, ``count``, ``first_bad``,
  ``num_bad``). Called inside a jitted step, on one device (the candidates are
  replicated). The running top ``k`` goes first: it holds lower pool indices,
  so ``lax.top_k``'s lower-position rule keeps ties in pool-index order.
  """
  vals, idx, feats, count, first_bad, num_bad = candidates
  k = state["vals"].shape[0]
  all_vals = jnp.concatenate([state["vals"], vals.astype(state["vals"].dtype)])
  _, pos = jax.lax.top_k(all_vals, k)
  return {
      "vals": all_vals[pos],
      "idx": jnp.concatenate([state["idx"], idx])[pos],
      "feats": jnp.concatenate([state["feats"], feats.astype(state["feats"].dtype)])[pos],
      "count": state["count"] + count,
      "first_bad": jnp.minimum(state["first_bad"], first_bad),
      "num_bad": state["num_bad"] + num_bad,
  }


@functools.partial(jax.jit, static_argnames=("score", "k", "carry", "mesh", "nonfinite"))
def _step(state, inputs, labeled, offset, *, score, k, carry, mesh, nonfinite):
  candidates = sharded_top_k(
      inputs, labeled, offset, score=score, k=k, carry=carry, mesh=mesh,
      nonfinite="keep" if nonfinite == "keep" else "skip" if nonfinite == "skip" else "count")
  return merge_top_k(state, candidates)


def _check_sources(name: str, sources: Mapping[str, Any], labeled: Any) -> int:
  for key in sources:
    if ROW_AXIS[key] not in (0, None):
      raise ValueError(f"{name}: {key} cannot be streamed (rows must be the first axis).")
  return pool_size(name, sources, labeled)


def _check_args(name: str, sources: Mapping[str, Any], labeled: Any, *, k: int,
                chunk_size: int | None, mesh: Mesh | None, nonfinite: str) -> tuple[int, int]:
  """``(N, rows per chunk)`` after checking :func:`stream_top_k`'s arguments."""
  if nonfinite not in NONFINITE:
    raise ValueError(f"{name}: nonfinite must be one of {NONFINITE}, got {nonfinite!r}.")
  if chunk_size is None:
    chunk_size = default_chunk_size(sources)
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
    raise ValueError(f"{name}: chunk_size must be an int >= 1, got {chunk_size!r}.")
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"{name}: k must be a Python int >= 1 (static), got {k!r}.")
  num = _check_sources(name, sources, labeled)
  if mesh is not None:
    chunk_size = mesh.size * math.ceil(chunk_size / mesh.size)
  chunk_size = min(chunk_size, padded_size(num, mesh) if mesh is not None else num)
  return num, chunk_size


def _initial_state(rows: Mapping[str, Any], dtypes: Mapping[str, np.dtype], *, k: int,
                   carry: bool, mesh: Mesh | None) -> dict[str, jax.Array]:
  """The running top ``k`` before any chunk: ``k`` empty slots, no row counted."""
  key_dtype = jnp.promote_types(
      jnp.result_type(*[dtypes[x] for x in rows]) if rows else jnp.float32, jnp.float32)
  feat_width = np.shape(rows["features"])[1] if carry else 0
  feat_dtype = dtypes["features"] if carry else jnp.float32
  state = {
      "vals": jnp.full(k, -jnp.inf, key_dtype),
      "idx": jnp.full(k, -1, jnp.int32),
      "feats": jnp.zeros((k, feat_width), feat_dtype),
      "count": jnp.int32(0),
      "first_bad": jnp.int32(NO_ROW),
      "num_bad": jnp.int32(0),
  }
  if mesh is not None:
    state = jax.tree.map(lambda x: replicate(x, mesh), state)
  return state


def _place_chunk(x: np.ndarray, mesh: Mesh | None, rows: int, fill: Any = 0) -> jax.Array:
  if mesh is None:
    return jax.device_put(x)
  return shard_pool(x, mesh, rows=rows, fill=fill)


def _check_finite(name: str, done: Mapping[str, jax.Array], rows: Mapping[str, Any],
                  nonfinite: str) -> None:
  """Raises :class:`NonFiniteError` for ``nonfinite="error"`` once a bad row was seen."""
  if nonfinite == "error" and int(done["num_bad"]) > 0:
    row = int(done["first_bad"])
    names = " / ".join(rows)
    raise NonFiniteError(
        f"{name}: row {row} of the pool has NaN or Inf values in its {names} (unlabeled "
        "rows must be finite); fix the input, mark the row labeled, or skip such rows "
        "(nonfinite='skip').")


def _result(state: Mapping[str, jax.Array], k: int
            ) -> tuple[jax.Array, jax.Array, dict[str, int]]:
  """The final state as :func:`stream_top_k` returns it."""
  idx = jnp.where(jnp.arange(k) < state["count"], state["idx"], -1)
  num_bad = int(state["num_bad"])
  info = {"nonfinite_rows": num_bad,
          "first_nonfinite_row": int(state["first_bad"]) if num_bad else -1}
  return idx, state["feats"], info


def stream_top_k(sources: Mapping[str, Any], labeled: Any, *, score: str, k: int,
                 carry: bool = False, chunk_size: int | None = None, mesh: Mesh | None = None,
                 nonfinite: str = "keep", progress: Progress | None = None,
                 _name: str = "stream_top_k") -> tuple[jax.Array, jax.Array, dict[str, int]]:
  """The ``k`` highest keys of ``pool_top_k.SCORES[score]`` over the pool, chunk by chunk.

  Args:
    sources: ``{"features" | "logits" | "uncertainty": [N, ...] array-like,
      "prototypes": [C, K]}`` (the inputs of the score).
    labeled: ``[N]`` bool array-like; ``True`` rows are never selected.
    score: a key of :data:`msal_jax.pool_top_k.SCORES`.
    k: static number of samples.
    carry: also keep the candidates' ``features`` rows (MSAL-D).
    chunk_size: rows per step (rounded up to a multiple of the mesh size);
      default :func:`default_chunk_size` (64 MiB of input rows, at least
      65,536 rows). Memory is about two chunks on the host and one on the device.
    mesh: optional 1-D mesh; each chunk is then split over its devices.
    nonfinite: ``"keep"``: rows with NaN/Inf values are scored like any other
      (the in-memory functions' behaviour); ``"skip"``: never selected;
      ``"error"``: raise :class:`NonFiniteError` naming the first such
      unlabeled row (labeled rows are not checked).
    progress: called as ``progress(rows_done, N)`` after each chunk is queued.

  Returns:
    ``(index [k] int32 with -1 padding, features [k, K] of those rows,
    {"nonfinite_rows": count, "first_nonfinite_row": row or -1})``.
  """
  num, chunk_size = _check_args(_name, sources, labeled, k=k, chunk_size=chunk_size, mesh=mesh,
                                nonfinite=nonfinite)
  rows = {key: x for key, x in sources.items() if key != "prototypes"}
  dtypes = {key: jax.dtypes.canonicalize_dtype(dtype_of(x)) for key, x in rows.items()}
  consts = {}
  if "prototypes" in sources:
    protos = sources["prototypes"]
    consts["prototypes"] = replicate(protos, mesh) if mesh is not None else jnp.asarray(protos)
  state = _initial_state(rows, dtypes, k=k, carry=carry, mesh=mesh)
  readers = {key: _ChunkReader(x, chunk_size, dtypes[key], 0) for key, x in rows.items()}
  lab_reader = _ChunkReader(labeled, chunk_size, np.dtype(np.bool_), True)  # padding: labeled

  previous = None
  for chunk, start in enumerate(range(0, num, chunk_size)):
    stop = min(start + chunk_size, num)
    inputs = {key: _place_chunk(r.read(chunk, start, stop), mesh, chunk_size)
              for key, r in readers.items()}
    lab = _place_chunk(lab_reader.read(chunk, start, stop), mesh, chunk_size, fill=True)
    state = _step(state, {**inputs, **consts}, lab, jnp.int32(start), score=score, k=k,
                  carry=carry, mesh=mesh, nonfinite=nonfinite)
    if previous is not None:  # at most two chunks in flight
      jax.block_until_ready(previous)
      _check_finite(_name, previous, rows, nonfinite)
    previous = state
    if progress is not None:
      progress(stop, num)
  state = jax.block_until_ready(state)
  _check_finite(_name, state, rows, nonfinite)
  return _result(state, k)


# ---------------------------------------------------------------------------
# the selections
# ---------------------------------------------------------------------------


def msal(features: Any, prototypes: ArrayLike | None, labeled: Any, *, budget: int,
         chunk_size: int | None = None, mesh: Mesh | None = None, nonfinite: str = "keep",
         progress: Progress | None = None) -> jax.Array:
  """Streamed MSAL: ``bottom_k_masked(scoring.msal(features, P), ~labeled, budget)``.

  Args:
    features: ``[N, C-1]`` array-like, read ``chunk_size`` rows at a time.
    prototypes: ``[C, C-1]``, or ``None`` for ``prototypes.simplex(C)`` scored
      through its structure (see :func:`msal_jax.scoring.msal`).
    labeled: ``[N]`` bool.
    budget: static, ``>= 1``.
    chunk_size, mesh, nonfinite, progress: see :func:`stream_top_k`.

  Returns:
    ``[budget] int32`` pool indices, lowest certainty first, ``-1`` padded.
  """
  sources, score = msal_inputs("msal", features, prototypes)
  idx, _, _ = stream_top_k(sources, labeled, score=score, k=budget, chunk_size=chunk_size,
                           mesh=mesh, nonfinite=nonfinite, progress=progress, _name="msal")
  return idx


def uncertainty(logits: Any, labeled: Any, *, score: str, budget: int,
                chunk_size: int | None = None, mesh: Mesh | None = None,
                nonfinite: str = "keep", progress: Progress | None = None) -> jax.Array:
  """Streamed ``top_k_masked(scoring.<score>(logits), ~labeled, budget)``.

  ``score`` is a name in ``scoring.UNCERTAINTY`` (``entropy``, ``margin``,
  ``least_conf``); ``logits`` an ``[N, C]`` array-like. Other arguments as in
  :func:`msal`.
  """
  if score not in scoring.UNCERTAINTY:
    raise ValueError(f"uncertainty: unknown score {score!r}; known: "
                     f"{', '.join(sorted(scoring.UNCERTAINTY))}.")
  if ndim(logits) != 2:
    raise ValueError(f"uncertainty: logits must be [N, C], got shape {np.shape(logits)}.")
  idx, _, _ = stream_top_k({"logits": logits}, labeled, score=score, k=budget,
                           chunk_size=chunk_size, mesh=mesh, nonfinite=nonfinite,
                           progress=progress, _name="uncertainty")
  return idx


# selection.diversify, compiled (the last stage of the streamed MSAL-D).
diversify = jax.jit(selection.diversify, static_argnames="budget")


def msal_d(features: Any, prototypes: ArrayLike | None, labeled: Any, *, budget: int,
           beta: float, uncertainty: Any | None = None, logits: Any | None = None,
           score: str | None = None,
           chunk_size: int | None = None, mesh: Mesh | None = None, nonfinite: str = "keep",
           progress: Progress | None = None) -> jax.Array:
  """Streamed MSAL-D: the same ``[budget]`` indices as :func:`selection.msal_d`.

  The pre-filter keeps a running top ``m = min(ceil(beta*budget), N)`` with the
  candidates' feature rows (``O(m * (C-1))`` memory); the diversity stage
  (:func:`selection.diversify`) runs on them at the end.

  Args:
    features, prototypes, labeled, budget, beta: as in :func:`selection.msal_d`
      (``features`` any ``[N, C-1]`` array-like).
    uncertainty: optional ``[N]`` array-like pre-filter score, higher first.
    logits, score: or ``[N, C]`` logits and a name in ``scoring.UNCERTAINTY``
      (the "X(MSAL-D)" strategies); default MSAL's ``-max cos``.
    chunk_size, mesh, nonfinite, progress: see :func:`stream_top_k`.
  """
  sources, name = msal_d_inputs(features, prototypes, budget=budget, beta=beta,
                                         uncertainty=uncertainty, logits=logits, score=score)
  m = selection.num_candidates(budget, beta, np.shape(features)[0])
  cand, feats, _ = stream_top_k(sources, labeled, score=name, k=m, carry=True,
                                chunk_size=chunk_size, mesh=mesh, nonfinite=nonfinite,
                                progress=progress, _name="msal_d")
  return diversify(cand, feats, sources["prototypes"] if mesh is None else
                    replicate(sources["prototypes"], mesh), budget=budget)
