"""Figures of finished runs: accuracy curves, unlabeled error rate, sweeps, t-SNE.

The same results as :mod:`msal_jax.tables` (``{key: [summary per seed]}``),
drawn with matplotlib (Agg backend, imported on first use) as PNG files
without a date or version, so the same results give the same bytes. Curves
are the mean over seeds with a ±std band; t-SNE (scikit-learn, imported on
first use) maps the pool embeddings that :func:`msal_jax.report.save_embeddings`
wrote.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from msal_jax.tables import Results, key_label, sweep_values, table_rows


def _pyplot():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _save(fig, path: str) -> None:
  fig.tight_layout()
  # No date or version in the file: the same results give the same bytes.
  # bbox_inches="tight" keeps a legend placed beside the axes in the image.
  fig.savefig(path, metadata={"Software": None}, bbox_inches="tight")
  _pyplot().close(fig)


_INSIDE = 8  # up to this many lines the legend sits inside the axes
_PER_COLUMN = 16  # legend entries per column beside the axes
_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D")


def _style(i: int) -> dict[str, Any]:
  """Line ``i``'s colour, dash and marker: distinct for up to 40 lines.

  matplotlib's default cycle repeats its 10 colours, so from the 11th line on
  two strategies looked the same; here line ``i`` takes colour ``i % 10`` and
  dash and marker ``i // 10``.
  """
  k = (i // 10) % len(_LINESTYLES)
  return {"color": f"C{i % 10}", "linestyle": _LINESTYLES[k], "marker": _MARKERS[k]}


def _legend(fig, axes, n: int) -> None:
  """A legend that does not hide the curves: inside for a few lines, else beside.

  With more than ``_INSIDE`` lines the legend goes to the right of the last
  axes, in columns of at most ``_PER_COLUMN`` entries, and the figure widens to
  make room for it (the paper-style plot of all 32 strategies stays readable).
  """
  axes = list(np.atleast_1d(axes))
  if n <= _INSIDE:
    for ax in axes:
      ax.legend(fontsize="small")
    return
  ncol = math.ceil(n / _PER_COLUMN)
  width, height = fig.get_size_inches()
  fig.set_size_inches(width + 2.3 * ncol, max(height, 0.2 * min(n, _PER_COLUMN) + 1.0))
  axes[-1].legend(fontsize="x-small", ncol=ncol, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0)


def _rounds_figure(results: Results, y: Callable[[Mapping[str, Any]], list[float]],
                   ylabel: str, title: str | None, sweep_field: str | None):
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  for i, (key, runs) in enumerate(results.items()):
    x = np.asarray(runs[0]["num_labeled"])
    ys = np.array([y(r) for r in runs], np.float64)
    mean, std = ys.mean(0), ys.std(0)
    (line,) = ax.plot(x, mean, markersize=3, label=key_label(key, sweep_field), **_style(i))
    if len(runs) > 1:
      ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
  ax.set_xlabel("labeled samples")
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  ax.grid(alpha=0.3)
  _legend(fig, ax, len(results))
  return fig


def _plot_rounds(results: Results, path: str, y: Callable[[Mapping[str, Any]], list[float]],
                 ylabel: str, title: str | None, sweep_field: str | None) -> None:
  _save(_rounds_figure(results, y, ylabel, title, sweep_field), path)


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
  values = sweep_values(results)
  try:
    xs = dict(zip(values, (float(v) for v in values), strict=True))
  except ValueError:  # not numbers: evenly spaced, labelled ticks
    xs = {v: float(i) for i, v in enumerate(values)}
  rows = table_rows(results, sweep_field)
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
  strategies = list(dict.fromkeys(row["strategy"] for row in rows))
  for ax, (metric, name) in zip(axes, (("aubc", "AUBC"), ("f_acc", "F-acc")), strict=True):
    for i, strategy in enumerate(strategies):
      mine = [row for row in rows if row["strategy"] == strategy]
      ax.errorbar([xs[row[sweep_field]] for row in mine], [row[f"{metric}_mean"] for row in mine],
                  yerr=[row[f"{metric}_std"] for row in mine], capsize=3, label=strategy,
                  **_style(i))
    ax.set_xticks(list(xs.values()), list(xs))
    ax.set_xlabel(sweep_field)
    ax.set_ylabel(name)
    ax.grid(alpha=0.3)
  _legend(fig, axes, len(strategies))
  if title:
    fig.suptitle(title)
  _save(fig, path)


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

