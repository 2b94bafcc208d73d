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
The tables are built by :mod:`msal_jax.tables` and the figures drawn by
:mod:`msal_jax.figures`; their public names are importable from here too.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from msal_jax.figures import plot_curves, plot_error_rates, plot_sweep, plot_tsne, tsne
from msal_jax.tables import (
    REFERENCE,
    Key,
    Results,
    csv_table,
    format_value,
    key_label,
    markdown_table,
    run_seconds,
    sweep_markdown,
    table_rows,
    timing_csv,
    timing_markdown,
    timing_rows,
)

__all__ = [
    "EMBEDDING_FIELDS", "REFERENCE", "Key", "Results", "Workdir", "csv_table", "format_value",
    "load", "load_embeddings", "markdown_table", "plot_curves", "plot_error_rates", "plot_sweep",
    "plot_tsne", "run_seconds", "save_embeddings", "sweep_markdown", "table_rows", "timing_csv",
    "timing_markdown", "timing_rows", "tsne", "write_report",
]

_SWEEP_DIR = re.compile(r"^([A-Za-z_][\w.]*)=(.+)$")

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
      panels.append((f"{key_label(key, field)}, seed {seed}, round {r}", load_embeddings(path)))
  if panels:
    log(f"t-SNE of {len(panels)} embeddings ...")
    columns = max(len(seeds[min(seeds)]) for seeds in wd.embeddings.values())
    plot_tsne(panels, os.path.join(workdir, "tsne.png"), columns=columns)
    written.append(os.path.join(workdir, "tsne.png"))
    sections += ["## t-SNE of the pool (queried samples as stars)\n", "![t-SNE](tsne.png)\n"]
  write("report.md", "\n".join(sections))
  return written
