"""Result tables of finished runs: AUBC and F-acc, seconds per round, sweeps.

Results are ``{key: [summary, ...]}``, one summary per seed as
:func:`msal_jax.loop.run` returns it (the per-round records under
``"rounds"``); ``key`` is the strategy name, or ``(strategy, value)`` when a
config field is swept. Each table comes as Markdown (``mean ± std``) and as
CSV (one column per number). Standard deviations are over seeds with
``ddof=0``. Pure Python and numpy: :mod:`msal_jax.report` writes these tables
into a workdir, :mod:`msal_jax.figures` draws the same results.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Key = str | tuple[str, str]
Results = Mapping[Key, Sequence[Mapping[str, Any]]]

REFERENCE = "entropy"  # query-time overhead is relative to this strategy


def format_value(value: Any) -> str:
  """A swept value as it appears in folder names and tables (``2.0`` -> ``"2"``)."""
  text = repr(value) if isinstance(value, float) else str(value)
  return text[:-2] if isinstance(value, float) and text.endswith(".0") else text



def key_label(key: Key, sweep_field: str | None = None) -> str:
  """A key as tables and legends name it: ``"msal_d"`` or ``"msal_d al.beta=5"``."""
  return key if isinstance(key, str) else f"{key[0]} {sweep_field or 'value'}={key[1]}"


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  arr = np.asarray(values, np.float64)
  return float(arr.mean()), float(arr.std())


def _key_columns(key: Key, sweep_field: str | None) -> dict[str, Any]:
  if sweep_field is None:
    return {"strategy": key_label(key)}
  return {"strategy": key[0], sweep_field: key[1]}


def table_rows(results: Results, sweep_field: str | None = None) -> list[dict[str, Any]]:
  """One row per key: AUBC and F-acc, mean and std over seeds."""
  rows = []
  for key, runs in results.items():
    aubc_mean, aubc_std = _mean_std([r["aubc"] for r in runs])
    facc_mean, facc_std = _mean_std([r["f_acc"] for r in runs])
    rows.append({
        **_key_columns(key, sweep_field), "seeds": len(runs),
        "aubc_mean": aubc_mean, "aubc_std": aubc_std,
        "f_acc_mean": facc_mean, "f_acc_std": facc_std,
    })
  return rows


def _pm(mean: float, std: float, fmt: str = ".4f") -> str:
  return f"{mean:{fmt}} ± {std:{fmt}}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines) + "\n"


def _csv(rows: Sequence[Mapping[str, Any]], default_header: Sequence[str]) -> str:
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else list(default_header))
  writer.writeheader()
  writer.writerows(rows)
  return out.getvalue()


def markdown_table(results: Results, sweep_field: str | None = None) -> str:
  """The paper-format table: ``| strategy | seeds | AUBC | F-acc |``, mean ± std."""
  keys = ["strategy"] + ([sweep_field] if sweep_field else [])
  return _markdown(
      keys + ["seeds", "AUBC", "F-acc"],
      [[row[k] for k in keys] + [row["seeds"], _pm(row["aubc_mean"], row["aubc_std"]),
                                 _pm(row["f_acc_mean"], row["f_acc_std"])]
       for row in table_rows(results, sweep_field)],
  )


def csv_table(results: Results, sweep_field: str | None = None) -> str:
  return _csv(table_rows(results, sweep_field), ["strategy"])


def run_seconds(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
  """One run's seconds per round: ``train``, ``eval`` and ``query``.

  Means over rounds 1, 2, ... (round 0 also compiles every program; it is
  used only when it is the only round); ``query`` (the pool's forward pass,
  then the selection) only over the rounds that query.
  """
  def mean(key: str, recs: list[Mapping[str, Any]]) -> float:
    later = [r for r in recs if r["round"] > 0] or recs
    return float(np.mean([r[key] for r in later])) if later else math.nan

  querying = [r for r in records if r["queried"]]
  return {"train": mean("train_seconds", list(records)),
          "eval": mean("eval_seconds", list(records)),
          "query": mean("query_seconds", querying)}


def timing_rows(results: Results, sweep_field: str | None = None) -> list[dict[str, Any]]:
  """Seconds per round (mean and std over seeds) and the query-time overhead.

  ``query_overhead = query_mean / query_mean(entropy) - 1``, against the
  entropy runs of the same swept value; ``None`` without such runs.
  """
  rows = {}
  for key, runs in results.items():
    secs = [run_seconds(r["rounds"]) for r in runs]
    row = {**_key_columns(key, sweep_field), "seeds": len(runs)}
    for part in ("train", "eval", "query"):
      row[f"{part}_mean"], row[f"{part}_std"] = _mean_std([s[part] for s in secs])
    rows[key] = row
  for key, row in rows.items():
    ref = rows.get(REFERENCE if isinstance(key, str) else (REFERENCE, key[1]))
    row["query_overhead"] = None if ref is None else row["query_mean"] / ref["query_mean"] - 1
  return list(rows.values())


def timing_markdown(results: Results, sweep_field: str | None = None) -> str:
  """Seconds per round per strategy and the query-time overhead relative to entropy."""
  rows = timing_rows(results, sweep_field)
  keys = ["strategy"] + ([sweep_field] if sweep_field else [])
  table = _markdown(
      keys + ["seeds", "train s/round", "eval s/round", "query s/round",
              f"query time vs {REFERENCE}"],
      [[row[k] for k in keys] + [row["seeds"]]
       + [_pm(row[f"{p}_mean"], row[f"{p}_std"], ".3f") for p in ("train", "eval", "query")]
       + ["n/a" if row["query_overhead"] is None else f"{100 * row['query_overhead']:+.1f}%"]
       for row in rows],
  )
  note = (
      "\nSeconds per round, mean ± std over seeds of each run's mean over rounds 1, 2, ... "
      "(round 0 also compiles). Query = the pool's forward pass (the same for every "
      "strategy), the MC-dropout passes where the strategy needs them, and the selection, "
      f"over the rounds that query; its overhead is relative to {REFERENCE}"
      f"{' at the same ' + sweep_field if sweep_field else ''}.\n"
  )
  if rows and all(row["query_overhead"] is None for row in rows):
    note += f"No {REFERENCE} run in this workdir: the query-time overhead is not computed.\n"
  return table + note


def timing_csv(results: Results, sweep_field: str | None = None) -> str:
  return _csv(timing_rows(results, sweep_field), ["strategy"])


def sweep_values(results: Results) -> list[str]:
  """The swept values of ``(strategy, value)`` keys, in the order they first appear."""
  return list(dict.fromkeys(key[1] for key in results))


def sweep_markdown(results: Results, sweep_field: str) -> str:
  """AUBC and F-acc against the swept value: rows = strategies, columns = values."""
  values = sweep_values(results)
  cells = {(row["strategy"], row[sweep_field]): row for row in table_rows(results, sweep_field)}
  strategies = list(dict.fromkeys(key[0] for key in results))
  out = []
  for metric, name in (("aubc", "AUBC"), ("f_acc", "F-acc")):
    out.append(f"{name} against {sweep_field}:\n\n" + _markdown(
        ["strategy"] + [f"{sweep_field}={v}" for v in values],
        [[s] + [_pm(cells[s, v][f"{metric}_mean"], cells[s, v][f"{metric}_std"])
                if (s, v) in cells else "" for v in values] for s in strategies],
    ))
  return "\n".join(out)

