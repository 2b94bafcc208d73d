"""Where labels come from: the dataset, an oracle function, or a person via CSV.

:func:`msal_jax.loop.run` takes ``oracle``:

* ``"dataset"`` (default, benchmarking): the pool labels the dataset holds,
  held back until a sample is queried.
* a function ``oracle(ids [k] int64) -> [k]`` class indices, called once per
  round with the queried pool ids.
* ``"csv"``: a person, through a CSV per round (below).

The run starts from a random ``al.initial`` samples when every pool label is
known; from the samples with known labels when some are ``-1``; or from the
ids or mask given as ``initial_set`` (:func:`start_labeled`).

With ``oracle="csv"`` (:func:`msal_jax.loop.run`; ``--config.al.hitl=True``
on the launcher) a round trains, evaluates, queries ``b`` pool samples,
saves its checkpoint, writes ``<workdir>/queries/round_<r>.csv`` and stops::

  id,path,label
  1834,unlabeled/img_0042.png,
  77,unlabeled/img_0007.png,

``id`` is the pool index and ``path`` the image file relative to the data
folder (empty for array data). Fill in ``label`` (a class name, or its index
when that is not a class name) and run the same command again: the run
continues from the checkpoint, reads and checks the file, and trains round
``r + 1`` on the new labels. Rows may be reordered; every queried id must
have exactly one row.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

COLUMNS = ("id", "path", "label")
_MAX_REPORTED = 10  # problems listed in one error message


ORACLES = ("dataset", "csv")


def start_labeled(
    pool_labels: np.ndarray, initial_set: ArrayLike | None = None
) -> np.ndarray | None:
  """The ``[N]`` bool labeled mask a run starts from, or ``None`` for a random draw.

  Args:
    pool_labels: ``[N]`` labels, ``-1`` where unknown.
    initial_set: pool ids, or an ``[N]`` bool mask, of the samples labeled at
      the start; ``None``: the samples with known labels when some are
      unknown, else ``None`` (the loop draws ``al.initial`` at random).

  Raises:
    ValueError: bad ids, an empty set, or a sample in it without a label.
  """
  n = pool_labels.shape[0]
  known = pool_labels >= 0
  if initial_set is None:
    if known.all():
      return None
    if not known.any():
      raise ValueError(
          "no pool label is known (all -1): give some labeled pool samples (labels in the "
          "data, or initial_set) to train the first model on."
      )
    return known.copy()
  arr = np.asarray(initial_set)
  if arr.dtype == bool:
    if arr.shape != (n,):
      raise ValueError(f"initial_set: a bool mask must have shape ({n},), got {arr.shape}.")
    mask = arr.copy()
  else:
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
      raise ValueError(f"initial_set: expected pool ids (1-D ints) or a [{n}] bool mask, got "
                       f"{arr.dtype} {arr.shape}.")
    bad = arr[(arr < 0) | (arr >= n)]
    if bad.size:
      raise ValueError(f"initial_set: pool id {int(bad[0])} is outside [0, {n}).")
    if np.unique(arr).size != arr.size:
      raise ValueError("initial_set: pool ids must be distinct.")
    mask = np.zeros(n, bool)
    mask[arr] = True
  if not mask.any():
    raise ValueError("initial_set: empty; the first model needs labeled samples.")
  unknown = np.flatnonzero(mask & ~known)
  if unknown.size:
    raise ValueError(
        f"initial_set: {unknown.size} of its samples have no label (-1) in the data, e.g. pool "
        f"id {int(unknown[0])}."
    )
  return mask


def check_oracle(oracle: Any, *, pool_labels: np.ndarray, workdir: str | None) -> None:
  """Fails early when ``oracle`` cannot give the labels the run will ask for."""
  if callable(oracle):
    return
  if oracle not in ORACLES:
    raise ValueError(f"oracle must be a function or one of {', '.join(ORACLES)}, got {oracle!r}.")
  if oracle == "csv" and workdir is None:
    raise ValueError("oracle='csv' needs a workdir: the query CSVs and the checkpoint to "
                     "continue from are kept there.")
  unknown = int((pool_labels < 0).sum())
  if oracle == "dataset" and unknown:
    raise ValueError(
        f"{unknown} pool labels are unknown (-1), so the data cannot answer queries "
        "(oracle='dataset'): label through CSV files (al.hitl=True / oracle='csv') or pass "
        "an oracle function."
    )


def oracle_labels(oracle: Callable[[np.ndarray], ArrayLike], ids: Sequence[int],
                  num_classes: int) -> list[int]:
  """``oracle(ids)`` checked: one class index in ``[0, C)`` per id."""
  ids_arr = np.asarray(ids, np.int64)
  try:
    got = np.asarray(oracle(ids_arr))
  except Exception as e:
    raise ValueError(f"the oracle function failed on ids {ids_arr[:5].tolist()}...: "
                     f"{type(e).__name__}: {e}") from e
  if got.shape != ids_arr.shape or (got.size and not np.issubdtype(got.dtype, np.integer)):
    raise ValueError(f"the oracle must return {ids_arr.size} integer labels (one per id), got "
                     f"{got.dtype} {got.shape}.")
  bad = np.flatnonzero((got < 0) | (got >= num_classes))
  if bad.size:
    raise ValueError(f"the oracle gave label {int(got[bad[0]])} for pool id "
                     f"{int(ids_arr[bad[0]])}; labels must lie in [0, {num_classes}).")
  return [int(v) for v in got]


def csv_path(workdir: str, round_index: int) -> str:
  """``<workdir>/queries/round_<r>.csv``, the file of round ``r``'s queries."""
  return os.path.join(workdir, "queries", f"round_{round_index:03d}.csv")


def write_queries(path: str, ids: Sequence[int], *, paths: Sequence[str] | None = None) -> None:
  """Writes ``id,path,label`` rows (``label`` empty) for the queried pool ``ids``.

  Args:
    path: the CSV file (its folder is created).
    ids: pool indices, in query order.
    paths: all ``N`` pool sample names (``Dataset.pool_paths``), or ``None``.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(COLUMNS)
    for i in ids:
      writer.writerow([int(i), "" if paths is None else paths[int(i)], ""])
  os.replace(tmp, path)  # never a half-written file under the real name


def parse_label(text: str, class_names: Sequence[str]) -> int | None:
  """The class index of ``text``: a class name, else an index in ``[0, C)``; else ``None``."""
  text = text.strip()
  if text in class_names:
    return list(class_names).index(text)
  try:
    value = int(text)
  except ValueError:
    return None
  return value if 0 <= value < len(class_names) else None


def _cell(row: list[str], col: int | None) -> str:
  return row[col].strip() if col is not None and col < len(row) else ""


def _read_rows(path: str) -> list[list[str]]:
  """The CSV's rows, header first; ``;`` or ``,`` separated (whichever row 1 has more of)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"{path}: the labels file of the last round's queries is missing; it was written when "
        "the round stopped. Restore it (ids are in that round's rounds.jsonl 'queried')."
    )
  with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheet BOMs
    text = f.read()
  first = text.splitlines()[0] if text.strip() else ""
  delimiter = ";" if first.count(";") > first.count(",") else ","
  return list(csv.reader(text.splitlines(), delimiter=delimiter))


def _columns(path: str, rows: list[list[str]]) -> tuple[int, int, int | None]:
  """The positions of the ``id``, ``label`` and (``None`` if absent) ``path`` columns."""
  header = [h.strip().lower() for h in rows[0]] if rows else []
  if "id" not in header or "label" not in header:
    raise ValueError(f"{path}: row 1 must be the header with columns id and label (and path), "
                     f"got {rows[0] if rows else 'an empty file'}.")
  col_path = header.index("path") if "path" in header else None
  return header.index("id"), header.index("label"), col_path


def _row_pool_id(row_no: int, raw_id: str, wanted: dict[int, int],
                 first_row: dict[int, int]) -> int | str:
  """The row's pool id, or the problem with it: not an int, not queried, repeated."""
  try:
    pool_id = int(raw_id)
  except ValueError:
    return f"row {row_no}: id {raw_id!r} is not an integer pool id"
  if pool_id not in wanted:
    return f"row {row_no}: id {pool_id} was not queried in this round"
  if pool_id in first_row:
    return f"row {row_no}: id {pool_id} appears again (first on row {first_row[pool_id]})"
  return pool_id


def _row_label(row_no: int, pool_id: int, given_path: str, raw_label: str,
               class_names: Sequence[str], paths: Sequence[str] | None) -> int | str:
  """The row's class index, or the problem: a path not its id's, no label, not a class."""
  if paths is not None and given_path and given_path != paths[pool_id]:
    return f"row {row_no}: id {pool_id} is {paths[pool_id]!r}, not {given_path!r}"
  if not raw_label:
    return f"row {row_no} (id {pool_id}): no label"
  label = parse_label(raw_label, class_names)
  if label is None:
    allowed = (f"classes: {', '.join(class_names)} (or their indices 0..{len(class_names) - 1})")
    return f"row {row_no} (id {pool_id}): label {raw_label!r} is not a class; {allowed}"
  return label


def _missing_rows(ids: Sequence[int], first_row: dict[int, int]) -> list[str]:
  """The problem of the queried ids without a row, if any."""
  missing = [i for i in ids if int(i) not in first_row]
  if not missing:
    return []
  shown = ", ".join(str(i) for i in missing[:_MAX_REPORTED])
  return [f"{len(missing)} queried id(s) have no row: {shown}"
          f"{', ...' if len(missing) > _MAX_REPORTED else ''}"]


def _problems_message(path: str, problems: list[str]) -> str:
  """The first ``_MAX_REPORTED`` problems in one line, and how many more there are."""
  more = len(problems) - _MAX_REPORTED
  listed = "; ".join(problems[:_MAX_REPORTED]) + (f"; and {more} more" if more > 0 else "")
  return f"{path}: {len(problems)} problem(s): {listed}. Fix the file and run again."


def read_labels(
    path: str,
    ids: Sequence[int],
    class_names: Sequence[str],
    *,
    paths: Sequence[str] | None = None,
) -> np.ndarray:
  """The labels a person filled into the CSV of the queried ``ids``.

  Args:
    path: the CSV written by :func:`write_queries`, ``label`` column filled.
    ids: the pool indices queried (the rows expected), in query order.
    class_names: ``C`` names; a label is one of them or its index.
    paths: all ``N`` pool sample names; when given, a non-empty ``path`` cell
      must be the one of its row's id (catches rows edited out of line).

  Returns:
    ``[len(ids)] int32`` labels, in the order of ``ids``.

  Raises:
    FileNotFoundError: no CSV at ``path``.
    ValueError: listing every problem by row number (the header is row 1):
      missing ``id`` / ``label`` columns, ids that are not integers, not
      queried or repeated, empty labels, labels outside the class list,
      a path that is not its id's, and queried ids without a row.
  """
  rows = _read_rows(path)
  col_id, col_label, col_path = _columns(path, rows)
  wanted = {int(i): k for k, i in enumerate(ids)}
  labels = np.full(len(ids), -1, np.int32)
  first_row: dict[int, int] = {}
  problems: list[str] = []
  for row_no, row in enumerate(rows[1:], start=2):
    if not any(cell.strip() for cell in row):
      continue  # blank lines are fine
    pool_id = _row_pool_id(row_no, _cell(row, col_id), wanted, first_row)
    if isinstance(pool_id, str):
      problems.append(pool_id)
      continue
    first_row[pool_id] = row_no
    label = _row_label(row_no, pool_id, _cell(row, col_path), _cell(row, col_label),
                       class_names, paths)
    if isinstance(label, str):
      problems.append(label)
      continue
    labels[wanted[pool_id]] = label
  problems += _missing_rows(ids, first_row)
  if problems:
    raise ValueError(_problems_message(path, problems))
  return labels


__all__ = [
    "COLUMNS", "ORACLES", "check_oracle", "csv_path", "oracle_labels", "parse_label",
    "read_labels", "start_labeled", "write_queries",
]
