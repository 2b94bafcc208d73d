r"""Bring your own pool: which samples to send for annotation, from features on disk.

  python -m msal_jax.query --features=feats.npy --strategy=msal_d --budget=1000 \
      [--logits=logits.npy] [--num_classes=10 | --prototypes=protos.npy] \
      [--labeled=mask.npy | --labeled_ids=ids.txt] [--beta=5] [--chunk_size=ROWS] \
      --out=ids.csv

Inputs are ``.npy`` files of any size: ``features`` ``[N, C-1]`` (the
max-separation head's outputs before the prototypes) for the MSAL
strategies, ``logits`` ``[N, C]`` for the uncertainty ones, both for
"X(MSAL-D)". They are read ``--chunk_size`` rows at a time
(:class:`NpyRows`) and streamed through :mod:`msal_jax.streaming`, so memory
stays at a few chunks plus ``O(beta * budget)`` rows whatever ``N`` (plus the
``N``-byte labeled mask). The result is the in-memory selection's
(:mod:`msal_jax.selection`), ids in query order.

Strategies: ``msal``, ``msal_d``, ``entropy``, ``margin``, ``least_conf``
(``*_msal`` accepted as the same thing on a max-separation network's logits),
``entropy_msal_d``, ``margin_msal_d``, ``least_conf_msal_d``, ``random``.

**Non-finite rows.** A NaN or Inf in an unlabeled row's features or logits is
an error by default (``--nonfinite=error``): the run stops with the first such
row's index, before anything is written. ``--nonfinite=skip`` never selects
such rows (and reports how many there were); ``--nonfinite=keep`` scores them
as the library functions do (a NaN score ranks last). Labeled rows are not
checked.

Output: ``.csv`` (a header line ``id``, then one pool index per line, in query
order) or ``.json`` (``{"ids": [...], "strategy": ..., ...}``). Fewer than
``budget`` ids are written when fewer samples are unlabeled.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from msal_jax import parallel, scoring, selection, streaming
from msal_jax import prototypes as prototypes_lib

STRATEGIES = {
    # name: (needs features, needs logits, uncertainty score or None)
    "msal": (True, False, None),
    "msal_d": (True, False, None),
    "random": (False, False, None),
    **{s: (False, True, s) for s in scoring.UNCERTAINTY},
    **{f"{s}_msal": (False, True, s) for s in scoring.UNCERTAINTY},
    **{f"{s}_msal_d": (True, True, s) for s in scoring.UNCERTAINTY},
}


class NpyRows:
  """Rows of a ``.npy`` file, read on demand: ``rows[a:b]`` is a fresh numpy array.

  Like ``np.load(path, mmap_mode="r")`` but with plain reads instead of a
  memory map: the pages read do not stay mapped into the process, so its
  resident memory stays at the chunk being read (a memory map's touched pages
  count in the resident set until the kernel reclaims them).
  """

  def __init__(self, path: str | os.PathLike):
    self.path = os.fspath(path)
    with open(self.path, "rb") as f:
      try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
          shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
          shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
      except ValueError as e:
        raise ValueError(f"{self.path}: not a .npy file ({e}).") from None
      self.offset = f.tell()
    if dtype.hasobject:
      raise ValueError(f"{self.path}: object arrays are not supported.")
    if fortran and len(shape) > 1:
      raise ValueError(f"{self.path}: Fortran-ordered arrays are not supported; save a C-order "
                       "array (np.ascontiguousarray).")
    self.shape, self.dtype = tuple(shape), np.dtype(dtype)
    self.ndim = len(self.shape)
    self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
    expected = self.offset + self._row_bytes * (self.shape[0] if self.shape else 1)
    size = os.path.getsize(self.path)
    if size < expected:
      raise ValueError(f"{self.path}: truncated ({size} bytes, the header promises {expected}).")
    self._file = None

  def __len__(self) -> int:
    return self.shape[0]

  def __array__(self, dtype=None, copy=None):
    out = self[:]
    return out if dtype is None else out.astype(dtype)

  def __getitem__(self, key: slice) -> np.ndarray:
    if not isinstance(key, slice):
      raise TypeError("NpyRows supports row slices only (rows[a:b]).")
    start, stop, step = key.indices(self.shape[0])
    if step != 1:
      raise TypeError("NpyRows supports contiguous row slices only.")
    out = np.empty((max(0, stop - start),) + self.shape[1:], self.dtype)
    self.read_into(start, out)
    return out

  def read_into(self, start: int, out: np.ndarray) -> None:
    """Reads rows ``start : start + len(out)`` into ``out`` (C-contiguous, this dtype).

    What :mod:`msal_jax.streaming` uses to refill its reused chunk buffers
    (no new array per chunk).
    """
    if out.dtype != self.dtype or out.shape[1:] != self.shape[1:] or \
        not out.flags.c_contiguous or not 0 <= start <= start + len(out) <= self.shape[0]:
      raise ValueError(f"{self.path}: cannot read rows {start}:{start + len(out)} of "
                       f"{self.shape} {self.dtype} into a {out.shape} {out.dtype} array.")
    if not out.size:
      return
    if self._file is None:
      self._file = open(self.path, "rb")  # noqa: SIM115 (kept open between chunks)
    self._file.seek(self.offset + start * self._row_bytes)
    view = memoryview(out.reshape(-1).view(np.uint8))
    got = 0
    while got < len(view):
      n = self._file.readinto(view[got:])
      if not n:
        raise ValueError(f"{self.path}: unexpected end of file.")
      got += n

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None


def _open(name: str, x: Any) -> Any:
  """A path becomes :class:`NpyRows`; arrays pass through."""
  if isinstance(x, (str, os.PathLike)):
    if not os.path.exists(x):
      raise ValueError(f"{name}: no such file {os.fspath(x)!r}.")
    return NpyRows(x)
  if not hasattr(x, "shape"):
    x = np.asarray(x)
  return x


def _check_float(name: str, x: Any, ndim: int) -> None:
  if len(x.shape) != ndim:
    raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(x.shape)}.")
  if not np.issubdtype(np.dtype(x.dtype), np.floating):
    raise ValueError(f"{name} must be floating point (float16/32/64), got dtype {x.dtype}.")


def _load_small(name: str, x: Any) -> np.ndarray:
  if isinstance(x, (str, os.PathLike)):
    if not os.path.exists(x):
      raise ValueError(f"{name}: no such file {os.fspath(x)!r}.")
    return np.load(x, allow_pickle=False)
  return np.asarray(x)


def _read_ids(path: str | os.PathLike) -> np.ndarray:
  """Ids from ``.npy`` or text (one per line or comma/space separated; a header is skipped)."""
  if os.fspath(path).endswith(".npy"):
    return _load_small("labeled_ids", path).reshape(-1)
  if not os.path.exists(path):
    raise ValueError(f"labeled_ids: no such file {os.fspath(path)!r}.")
  tokens = open(path).read().replace(",", " ").split()
  if tokens and not tokens[0].lstrip("-").isdigit():
    tokens = tokens[1:]  # a header such as "id"
  try:
    return np.array([int(t) for t in tokens], np.int64)
  except ValueError as e:
    raise ValueError(f"labeled_ids: {os.fspath(path)}: not a list of integers ({e}).") from None


def labeled_mask(num: int, labeled: Any = None, labeled_ids: Any = None) -> np.ndarray:
  """The ``[num]`` bool mask from a mask (bool or 0/1) or a list of labeled ids."""
  if labeled is not None and labeled_ids is not None:
    raise ValueError("pass either a labeled mask or labeled ids, not both.")
  if labeled is not None:
    mask = _load_small("labeled", labeled)
    if mask.shape != (num,):
      raise ValueError(f"labeled: the mask must have shape ({num},) like the pool, got "
                       f"{mask.shape}.")
    if mask.dtype != np.bool_:
      if not np.issubdtype(mask.dtype, np.integer) or not np.isin(mask, (0, 1)).all():
        raise ValueError(f"labeled: the mask must be boolean or 0/1 integers, got {mask.dtype}.")
      mask = mask.astype(bool)
    return mask
  mask = np.zeros(num, bool)
  if labeled_ids is not None:
    ids = _read_ids(labeled_ids) if isinstance(labeled_ids, (str, os.PathLike)) else \
        np.asarray(labeled_ids).reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
      raise ValueError(f"labeled_ids: ids must be integers, got dtype {ids.dtype}.")
    bad = (ids < 0) | (ids >= num)
    if bad.any():
      raise ValueError(f"labeled_ids: id {int(ids[np.argmax(bad)])} is outside the pool "
                       f"[0, {num}) ({int(bad.sum())} such ids).")
    mask[ids] = True
  return mask


def query(features: Any = None, logits: Any = None, *, strategy: str, budget: int,
          labeled: Any = None, labeled_ids: Any = None, prototypes: Any = None,
          num_classes: int | None = None, beta: float = 5.0,
          chunk_size: int | None = None, seed: int = 0, nonfinite: str = "error",
          mesh: Any = None, progress: streaming.Progress | None = None,
          info: dict | None = None) -> np.ndarray:
  """The pool ids to annotate next, in query order.

  Args:
    features: ``[N, C-1]`` array-like or ``.npy`` path (MSAL strategies).
    logits: ``[N, C]`` array-like or ``.npy`` path (uncertainty strategies).
    strategy: a key of :data:`STRATEGIES`.
    budget: number of ids, ``>= 1``.
    labeled: ``[N]`` bool (or 0/1) mask, array or ``.npy`` path; or
    labeled_ids: the already-labeled ids (sequence, ``.npy`` or text file).
    prototypes: ``[C, C-1]`` (array or ``.npy``); default
      ``prototypes.simplex(num_classes)``, ``num_classes`` defaulting to
      the features' width + 1, scored through the simplex's structure in
      ``O(C)`` per row (the result of ``scoring.msal(features, None)``).
    beta: MSAL-D's pre-filter factor (``>= 1``; paper: 5 or 10).
    chunk_size: rows per streamed chunk; default 64 MiB of input rows, at
      least 65,536 (:func:`msal_jax.streaming.default_chunk_size`).
    seed: ``random``'s key (``PRNGKey(seed)``, as the library's ``random``).
    nonfinite: ``"error"`` (default), ``"skip"`` or ``"keep"``: see the module doc.
    mesh: optional 1-D device mesh to split each chunk over.
    progress: ``progress(rows_done, N)`` callback.
    info: if a dict, receives ``num_pool``, ``num_labeled`` and the
      non-finite row count.

  Returns:
    ``int64`` pool indices, at most ``budget`` (fewer if fewer are unlabeled).
  """
  if strategy not in STRATEGIES:
    mc = strategy in scoring.MC_UNCERTAINTY or strategy.removesuffix("_msal") in \
        scoring.MC_UNCERTAINTY
    hint = " (MC-dropout strategies need T passes: not supported here)" if mc else ""
    raise ValueError(f"unknown strategy {strategy!r}{hint}; choose one of "
                     f"{', '.join(sorted(STRATEGIES))}.")
  needs_features, needs_logits, score = STRATEGIES[strategy]
  if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
    raise ValueError(f"budget must be an integer >= 1, got {budget!r}.")
  if not (isinstance(beta, (int, float)) and beta >= 1):
    raise ValueError(f"beta must be a number >= 1, got {beta!r}.")
  if chunk_size is not None and (isinstance(chunk_size, bool) or
                                 not isinstance(chunk_size, int) or chunk_size < 1):
    raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}.")
  if nonfinite not in streaming.NONFINITE:
    raise ValueError(f"nonfinite must be one of {streaming.NONFINITE}, got {nonfinite!r}.")
  if needs_features and features is None:
    raise ValueError(f"strategy {strategy!r} needs features ([N, C-1]).")
  if needs_logits and logits is None:
    raise ValueError(f"strategy {strategy!r} needs logits ([N, C]).")
  if features is None and logits is None:
    raise ValueError("pass features or logits (the pool).")

  feats = _open("features", features) if features is not None else None
  lg = _open("logits", logits) if logits is not None else None
  if feats is not None:
    _check_float("features", feats, 2)
  if lg is not None:
    _check_float("logits", lg, 2)
  if feats is not None and lg is not None and feats.shape[0] != lg.shape[0]:
    raise ValueError(f"features have {feats.shape[0]} rows but logits {lg.shape[0]}.")
  num = (feats if feats is not None else lg).shape[0]
  if num == 0:
    raise ValueError("the pool is empty.")
  mask = labeled_mask(num, labeled, labeled_ids)
  if info is not None:
    info.update(num_pool=num, num_labeled=int(mask.sum()), nonfinite_rows=0)

  protos = None
  if needs_features:
    width = feats.shape[1]
    if prototypes is not None:
      protos = _load_small("prototypes", prototypes)
      if protos.ndim != 2 or protos.shape[1] != width:
        raise ValueError(f"prototypes must be [C, {width}] for features of width {width}, got "
                         f"shape {protos.shape}.")
    else:
      classes = width + 1 if num_classes is None else num_classes
      if classes != width + 1:
        raise ValueError(f"features of width {width} are the max-separation outputs of "
                         f"{width + 1} classes, not num_classes={classes}.")
      protos = np.asarray(prototypes_lib.simplex(classes))
    if lg is not None and lg.shape[1] != protos.shape[0]:
      raise ValueError(f"logits have {lg.shape[1]} classes but the prototypes {protos.shape[0]}.")

  kwargs = dict(chunk_size=chunk_size, mesh=mesh, nonfinite=nonfinite, progress=progress,
                _name=strategy)
  try:
    if strategy == "random":
      ids = selection.top_k_masked(scoring.random(jax.random.PRNGKey(seed), num), ~mask, budget)
      stats = {"nonfinite_rows": 0}
    elif needs_features:  # msal, msal_d, X_msal_d
      sources = {"features": feats, "prototypes": protos}
      # The standard simplex (no prototypes file) is scored through its
      # structure, O(C) per row (scoring.msal(z, None)); a given matrix densely.
      msal_score = "msal" if prototypes is not None else "msal_simplex"
      if strategy == "msal":
        ids, _, stats = streaming.stream_top_k(sources, mask, score=msal_score, k=budget,
                                               **kwargs)
      else:
        if score is not None:
          sources["logits"] = lg
        m = selection.num_candidates(budget, beta, num)
        cand, cand_feats, stats = streaming.stream_top_k(
            sources, mask, score=score or msal_score, k=m, carry=True, **kwargs)
        ids = streaming.diversify(cand, cand_feats, protos, budget=budget)
    else:
      ids, _, stats = streaming.stream_top_k({"logits": lg}, mask, score=score, k=budget,
                                             **kwargs)
  finally:
    for x in (feats, lg):
      if isinstance(x, NpyRows):
        x.close()
  if info is not None:
    info["nonfinite_rows"] = stats["nonfinite_rows"]
  ids = np.asarray(ids).astype(np.int64)
  return ids[ids >= 0]


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


class ProgressBar:
  """``rows done / N`` on stderr: one updating line on a terminal, else a line per 10%."""

  def __init__(self, label: str = "scoring", stream: Any = None):
    self.label, self.stream = label, stream or sys.stderr
    self.start = time.perf_counter()
    self.tty = self.stream.isatty()
    self._last_draw, self._last_decile = 0.0, -1

  def __call__(self, done: int, total: int) -> None:
    now = time.perf_counter()
    frac = done / total
    line = (f"{self.label}: {done:,}/{total:,} rows ({100 * frac:5.1f}%) "
            f"{now - self.start:6.1f} s")
    if self.tty:
      if now - self._last_draw > 0.2 or done == total:
        width = 30
        bar = "#" * int(width * frac) + "." * (width - int(width * frac))
        self.stream.write(f"\r[{bar}] {line}" + ("\n" if done == total else ""))
        self.stream.flush()
        self._last_draw = now
    elif int(10 * frac) > self._last_decile:
      self._last_decile = int(10 * frac)
      self.stream.write(line + "\n")
      self.stream.flush()


def write_ids(path: str, ids: np.ndarray, meta: dict[str, Any]) -> None:
  """``.csv`` (header ``id``) or ``.json`` (``{"ids": [...], **meta}``)."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    if path.endswith(".json"):
      json.dump({"ids": [int(i) for i in ids], **meta}, f, indent=1)
      f.write("\n")
    else:
      f.write("id\n")
      f.writelines(f"{int(i)}\n" for i in ids)
  os.replace(tmp, path)  # never a half-written file under the final name


def _define_flags():
  from absl import flags

  flags.DEFINE_string("features", None, ".npy [N, C-1]: max-separation features (MSAL).")
  flags.DEFINE_string("logits", None, ".npy [N, C]: logits (uncertainty strategies).")
  flags.DEFINE_string("prototypes", None, ".npy [C, C-1]; default simplex(num_classes).")
  flags.DEFINE_integer("num_classes", None, "C; default: the features' width + 1.")
  flags.DEFINE_string("labeled", None, ".npy [N] bool (or 0/1) mask of labeled samples.")
  flags.DEFINE_string("labeled_ids", None, "already-labeled ids: .npy, or text/CSV of ints.")
  flags.DEFINE_enum("strategy", None, sorted(STRATEGIES), "query strategy.")
  flags.DEFINE_integer("budget", None, "number of ids to select.")
  flags.DEFINE_float("beta", 5.0, "MSAL-D pre-filter factor (paper: 5 or 10).")
  flags.DEFINE_integer("chunk_size", None, "rows per streamed chunk; default: 64 MiB of input "
                       "rows, at least 65536.")
  flags.DEFINE_integer("seed", 0, "key of the random strategy.")
  flags.DEFINE_enum("nonfinite", "error", list(streaming.NONFINITE),
                    "unlabeled rows with NaN/Inf: error, skip (never select) or keep.")
  flags.DEFINE_bool("all_devices", False, "split each chunk over all local devices.")
  flags.DEFINE_bool("progress", True, "progress on stderr.")
  flags.DEFINE_string("out", None, "output: .csv (one id per line) or .json.")
  flags.mark_flags_as_required(["strategy", "budget", "out"])
  return flags.FLAGS


def main(argv: Sequence[str]) -> None:
  from absl import app, logging

  logging.set_verbosity(logging.WARNING)  # no backend-probing chatter around the progress
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = _FLAGS
  if not f.out.endswith((".csv", ".json")):
    sys.exit(f"error: --out must end in .csv or .json, got {f.out!r}.")
  if not os.path.isdir(os.path.dirname(os.path.abspath(f.out))):
    sys.exit(f"error: --out: no such folder {os.path.dirname(os.path.abspath(f.out))!r}.")
  mesh = parallel.make_mesh(jax.local_devices()) if f.all_devices else None
  info: dict[str, Any] = {}
  t0 = time.perf_counter()
  try:
    ids = query(f.features, f.logits, strategy=f.strategy, budget=f.budget, labeled=f.labeled,
                labeled_ids=f.labeled_ids, prototypes=f.prototypes, num_classes=f.num_classes,
                beta=f.beta, chunk_size=f.chunk_size, seed=f.seed, nonfinite=f.nonfinite,
                mesh=mesh, progress=ProgressBar() if f.progress else None, info=info)
  except ValueError as e:  # bad input: one line, no traceback
    sys.exit(f"error: {e}")
  if info.get("nonfinite_rows"):
    print(f"skipped {info['nonfinite_rows']:,} unlabeled rows with NaN/Inf values",
          file=sys.stderr)
  if len(ids) < f.budget:
    print(f"warning: only {len(ids):,} unlabeled samples: writing {len(ids):,} ids, not "
          f"{f.budget:,}", file=sys.stderr)
  meta = {"strategy": f.strategy, "budget": f.budget, "beta": f.beta, **info,
          "seconds": round(time.perf_counter() - t0, 3)}
  write_ids(f.out, ids, meta)
  print(f"wrote {len(ids):,} ids to {f.out} ({meta['seconds']:.1f} s)", file=sys.stderr)


_FLAGS = None

if __name__ == "__main__":
  from absl import app

  _FLAGS = _define_flags()  # flags exist only when run as a program
  app.run(main)
