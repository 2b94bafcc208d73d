"""Result tables and figures of finished runs, re-created from their files alone.

In memory, results are ``{key: [summary, ...]}``, one summary per seed as
:func:`msal_jax.loop.run` returns it (the per-round records under
``"rounds"``); ``key`` is the strategy name, or ``(strategy, value)`` when a
config field is swept (``value`` as written in the run's folder name).

On disk, a *workdir* holds one run (``summary.json`` and ``rounds.jsonl`` in
the folder itself) or many, one per sub-folder (``<strategy>/seed_<k>/``); a
folder name ``<field>=<value>`` on the way to a run marks the value of a
swept field (``msal_d/al.beta=5/seed_0/``). :func:`write_report` re-creates
every table and figure from these files, and the experiment launcher calls it
too, so a report regenerated later is the one written during the run.

Standard deviations are over seeds with ``ddof=0``. No JAX is needed here;
matplotlib and scikit-learn (t-SNE) are imported only when plotting.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Key = str | tuple[str, str]
Results = Mapping[Key, Sequence[Mapping[str, Any]]]

REFERENCE = "entropy"  # query-time overhead is relative to this strategy
_SWEEP_DIR = re.compile(r"^([A-Za-z_][\w.]*)=(.+)$")


def format_value(value: Any) -> str:
  """A swept value as it appears in folder names and tables (``2.0`` -> ``"2"``)."""
  text = repr(value) if isinstance(value, float) else str(value)
  return text[:-2] if isinstance(value, float) and text.endswith(".0") else text


def _label(key: Key, sweep_field: str | None = None) -> str:
  return key if isinstance(key, str) else f"{key[0]} {sweep_field or 'value'}={key[1]}"


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  arr = np.asarray(values, np.float64)
  return float(arr.mean()), float(arr.std())


def _key_columns(key: Key, sweep_field: str | None) -> dict[str, Any]:
  if sweep_field is None:
    return {"strategy": _label(key)}
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


def _sweep_values(results: Results) -> list[str]:
  return list(dict.fromkeys(key[1] for key in results))


def sweep_markdown(results: Results, sweep_field: str) -> str:
  """AUBC and F-acc against the swept value: rows = strategies, columns = values."""
  values = _sweep_values(results)
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


def _pyplot():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _save(fig, path: str) -> None:
  fig.tight_layout()
  # No date or version in the file: the same results give the same bytes.
  fig.savefig(path, metadata={"Software": None})
  _pyplot().close(fig)


def _plot_rounds(results: Results, path: str, y: Callable[[Mapping[str, Any]], list[float]],
                 ylabel: str, title: str | None, sweep_field: str | None) -> None:
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  for key, runs in results.items():
    x = np.asarray(runs[0]["num_labeled"])
    ys = np.array([y(r) for r in runs], np.float64)
    mean, std = ys.mean(0), ys.std(0)
    (line,) = ax.plot(x, mean, marker="o", markersize=3, label=_label(key, sweep_field))
    if len(runs) > 1:
      ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
  ax.set_xlabel("labeled samples")
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize="small")
  _save(fig, path)


def plot_curves(results: Results, path: str, *, title: str | None = None,
                sweep_field: str | None = None) -> None:
  """Test accuracy against labeled samples, mean over seeds with a ±std band (Fig. 1)."""
  _plot_rounds(results, path, lambda r: r["accuracies"], "test accuracy", title, sweep_field)


def _nan_if_none(value: float | None) -> float:
  return float("nan") if value is None else value


def plot_error_rates(results: Results, path: str, *, title: str | None = None,
                     sweep_field: str | None = None) -> None:
  """Error rate on the unlabeled pool per round, mean ± std over seeds (Fig. 3)."""
  _plot_rounds(results, path,
               lambda r: [_nan_if_none(rec["unlabeled_error_rate"]) for rec in r["rounds"]],
               "error rate on the unlabeled pool", title, sweep_field)


def plot_sweep(results: Results, sweep_field: str, path: str, *, title: str | None = None
               ) -> None:
  """AUBC and F-acc against the swept value, one line per strategy, ±std bars (Figs. 4-5)."""
  plt = _pyplot()
  values = _sweep_values(results)
  try:
    xs = dict(zip(values, (float(v) for v in values), strict=True))
  except ValueError:  # not numbers: evenly spaced, labelled ticks
    xs = {v: float(i) for i, v in enumerate(values)}
  rows = table_rows(results, sweep_field)
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
  for ax, (metric, name) in zip(axes, (("aubc", "AUBC"), ("f_acc", "F-acc")), strict=True):
    for strategy in dict.fromkeys(row["strategy"] for row in rows):
      mine = [row for row in rows if row["strategy"] == strategy]
      ax.errorbar([xs[row[sweep_field]] for row in mine], [row[f"{metric}_mean"] for row in mine],
                  yerr=[row[f"{metric}_std"] for row in mine], marker="o", capsize=3,
                  label=strategy)
    ax.set_xticks(list(xs.values()), list(xs))
    ax.set_xlabel(sweep_field)
    ax.set_ylabel(name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
  if title:
    fig.suptitle(title)
  _save(fig, path)


# Pool embeddings for t-SNE (paper Fig. 2): written by the loop for chosen rounds.
EMBEDDING_FIELDS = ("round", "indices", "features", "labels", "labeled", "queried")


def save_embeddings(path: str, *, round: int, indices: np.ndarray, features: np.ndarray,
                    labels: np.ndarray, labeled: np.ndarray, queried: np.ndarray) -> None:
  """Writes one round's pool sample as a compressed ``.npz`` (atomically).

  Args:
    path: the ``.npz`` file.
    round: the round whose model made the features.
    indices: ``[M]`` pool indices of the sample.
    features: ``[M, K]`` the features the strategy saw.
    labels: ``[M]`` true classes.
    labeled: ``[M]`` labeled before this round's query.
    queried: ``[M]`` queried in this round.
  """
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    np.savez_compressed(
        f, round=np.int64(round), indices=np.asarray(indices, np.int64),
        features=np.asarray(features, np.float32), labels=np.asarray(labels, np.int32),
        labeled=np.asarray(labeled, bool), queried=np.asarray(queried, bool),
    )
  os.replace(tmp, path)


def load_embeddings(path: str) -> dict[str, np.ndarray]:
  with np.load(path) as z:
    missing = [k for k in EMBEDDING_FIELDS if k not in z.files]
    if missing:
      raise ValueError(f"{path}: not an embeddings file, missing {', '.join(missing)}.")
    return {k: z[k] for k in EMBEDDING_FIELDS}


def tsne(features: np.ndarray, *, seed: int = 0) -> np.ndarray:
  """``[M, K] -> [M, 2]`` t-SNE (scikit-learn, PCA init, fixed seed).

  Perplexity ``min(30, (M - 1) / 3)``. Below 1,000 points it runs on one
  thread: there OpenMP threads mostly spin, 20x slower on a busy 2-core host.
  """
  import contextlib

  from sklearn.manifold import TSNE
  from threadpoolctl import threadpool_limits

  feats = np.asarray(features, np.float64)
  n = feats.shape[0]
  if n < 4:
    raise ValueError(f"t-SNE needs at least 4 points, got {n}.")
  perplexity = float(min(30.0, (n - 1) / 3))
  with threadpool_limits(1) if n < 1000 else contextlib.nullcontext():
    return TSNE(2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed).fit_transform(feats)


def plot_tsne(panels: Sequence[tuple[str, Mapping[str, np.ndarray]]], path: str, *,
              columns: int | None = None) -> None:
  """A grid of t-SNE maps, one per ``(title, embeddings)`` (paper Fig. 2).

  Pool samples are dots coloured by class; the samples queried in that round
  are stars of their class's colour.
  """
  plt = _pyplot()
  cols = columns or min(len(panels), 3)
  rows = math.ceil(len(panels) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), dpi=100, squeeze=False)
  for ax in axes.flat[len(panels):]:
    ax.axis("off")
  for ax, (title, emb) in zip(axes.flat, panels, strict=False):
    xy = tsne(emb["features"])
    labels, queried = emb["labels"], emb["queried"]
    cmap = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
    colors = cmap(labels % cmap.N)
    colors[labels < 0] = (0.5, 0.5, 0.5, 1.0)  # ground truth unknown (labels from a person)
    ax.scatter(xy[~queried, 0], xy[~queried, 1], c=colors[~queried], s=3, alpha=0.5,
               linewidths=0)
    ax.scatter(xy[queried, 0], xy[queried, 1], c=colors[queried], s=60, marker="*",
               edgecolors="black", linewidths=0.6, label=f"queried ({int(queried.sum())})")
    ax.set_title(title, fontsize="small")
    ax.set_xticks([])
    ax.set_yticks([])
    if queried.any():
      ax.legend(fontsize="x-small", loc="lower right")
  _save(fig, path)


@dataclasses.dataclass(frozen=True)
class Workdir:
  """What :func:`load` finds under a workdir.

  Attributes:
    results: ``{key: [summary per seed]}`` with the records under ``"rounds"``.
    sweep_field: the swept config field, or ``None``.
    embeddings: ``{key: {seed: {round: npz path}}}``.
    title: dataset and protocol, from the runs.
  """

  results: dict[Key, list[dict[str, Any]]]
  sweep_field: str | None
  embeddings: dict[Key, dict[int, dict[int, str]]]
  title: str


def _strategy_order(workdir: str) -> list[str]:
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      names = json.load(f).get("strategies", [])
  except (OSError, ValueError):
    return []
  names = [names] if isinstance(names, str) else names
  return [n.strip() for item in names for n in str(item).split(",") if n.strip()]


def _value_order(value: str) -> tuple[int, float, str]:
  try:
    return (0, float(value), value)
  except ValueError:
    return (1, 0.0, value)


def _title(results: Results, sweep_field: str | None) -> str:
  runs = [s for group in results.values() for s in group]
  datasets = ", ".join(sorted({s["dataset"] for s in runs}))
  initial = {s["num_labeled"][0] for s in runs}
  spent = {s["labels_spent"] for s in runs}
  batch = {s["num_labeled"][1] - s["num_labeled"][0] for s in runs if len(s["num_labeled"]) > 1}
  title = datasets
  if len(initial) == 1 and len(spent) == 1:
    title += f": {initial.pop()} initial + {spent.pop()} queried"
    if len(batch) == 1:
      title += f", {batch.pop()} per round"
  return title + (f"; sweep over {sweep_field}" if sweep_field else "")


def load(workdir: str) -> Workdir:
  """Every finished run under ``workdir`` (those with a ``summary.json``)."""
  found = []
  fields = set()
  for root, dirs, files in os.walk(workdir):
    dirs[:] = sorted(d for d in dirs if d not in ("checkpoints", "embeddings"))
    if "summary.json" not in files:
      continue
    with open(os.path.join(root, "summary.json")) as f:
      summary = json.load(f)
    records = []
    if os.path.exists(os.path.join(root, "rounds.jsonl")):
      with open(os.path.join(root, "rounds.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    summary["rounds"] = records
    parts = os.path.relpath(root, workdir).split(os.sep)
    sweep = [m.groups() for m in map(_SWEEP_DIR.match, parts) if m]
    fields.update(field for field, _ in sweep)
    emb_dir = os.path.join(root, "embeddings")
    emb = {}
    if os.path.isdir(emb_dir):
      for name in os.listdir(emb_dir):
        if m := re.fullmatch(r"round_(\d+)\.npz", name):
          emb[int(m.group(1))] = os.path.join(emb_dir, name)
    found.append((summary, sweep[0][1] if sweep else None, emb))
  if len(fields) > 1:
    raise ValueError(f"{workdir}: runs of several sweeps ({', '.join(sorted(fields))}).")
  sweep_field = fields.pop() if fields else None
  if sweep_field and any(value is None for _, value, _ in found):
    raise ValueError(f"{workdir}: some runs are outside the sweep over {sweep_field}.")
  order = {name: i for i, name in enumerate(_strategy_order(workdir))}

  def sort_key(item):
    summary, value, _ = item
    strategy = summary["strategy"]
    return (order.get(strategy, len(order)), strategy,
            _value_order(value) if value is not None else (0, 0.0, ""), summary["seed"])

  results: dict[Key, list[dict[str, Any]]] = {}
  embeddings: dict[Key, dict[int, dict[int, str]]] = {}
  for summary, value, emb in sorted(found, key=sort_key):
    key = summary["strategy"] if value is None else (summary["strategy"], value)
    results.setdefault(key, []).append(summary)
    if emb:
      embeddings.setdefault(key, {})[summary["seed"]] = dict(sorted(emb.items()))
  return Workdir(results, sweep_field, embeddings, _title(results, sweep_field) if found else "")


def write_report(workdir: str, *, log: Callable[[str], None] | None = None) -> list[str]:
  """Writes every table and figure of ``workdir`` from its files; returns the paths.

  ``results.md`` / ``results.csv`` (AUBC and F-acc), ``timing.md`` /
  ``timing.csv`` (seconds per round, query-time overhead), ``sweep.md`` and
  ``sweep.png`` in a sweep, ``curves.png`` (accuracy), ``error_rate.png``
  (unlabeled pool), ``tsne.png`` where the runs saved embeddings (the first
  seed of each strategy), and ``report.md`` with all of them.
  """
  log = log or (lambda s: None)
  wd = load(workdir)
  if not wd.results:
    raise ValueError(f"{workdir}: no finished run (no summary.json) to report on.")
  res, field, title = wd.results, wd.sweep_field, wd.title
  written = []

  def write(name: str, text: str) -> None:
    with open(os.path.join(workdir, name), "w") as f:
      f.write(text)
    written.append(os.path.join(workdir, name))

  table = markdown_table(res, field)
  timing = timing_markdown(res, field)
  write("results.md", f"# {title}\n\n" + table)
  write("results.csv", csv_table(res, field))
  write("timing.md", f"# {title}: time per round\n\n" + timing)
  write("timing.csv", timing_csv(res, field))
  sections = [f"# {title}\n", "## AUBC and F-acc\n", table]
  if field:
    sweep = sweep_markdown(res, field)
    write("sweep.md", f"# {title}\n\n" + sweep)
    plot_sweep(res, field, os.path.join(workdir, "sweep.png"), title=title)
    written.append(os.path.join(workdir, "sweep.png"))
    sections += [f"## Against {field}\n", sweep, "![sweep](sweep.png)\n"]
  plot_curves(res, os.path.join(workdir, "curves.png"), title=title, sweep_field=field)
  plot_error_rates(res, os.path.join(workdir, "error_rate.png"), title=title, sweep_field=field)
  written += [os.path.join(workdir, n) for n in ("curves.png", "error_rate.png")]
  sections += ["## Accuracy\n", "![accuracy](curves.png)\n",
               "## Error rate on the unlabeled pool\n", "![error rate](error_rate.png)\n",
               "## Time per round\n", timing]
  panels = []
  for key, seeds in wd.embeddings.items():
    seed = min(seeds)
    for r, path in seeds[seed].items():
      panels.append((f"{_label(key, field)}, seed {seed}, round {r}", load_embeddings(path)))
  if panels:
    log(f"t-SNE of {len(panels)} embeddings ...")
    columns = max(len(seeds[min(seeds)]) for seeds in wd.embeddings.values())
    plot_tsne(panels, os.path.join(workdir, "tsne.png"), columns=columns)
    written.append(os.path.join(workdir, "tsne.png"))
    sections += ["## t-SNE of the pool (queried samples as stars)\n", "![t-SNE](tsne.png)\n"]
  write("report.md", "\n".join(sections))
  return written
