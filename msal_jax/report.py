"""Result tables and figures from finished runs (no JAX needed).

Input everywhere: ``{strategy: [summary, ...]}`` with one summary per seed, as
written to ``summary.json`` by :func:`msal_jax.loop.run`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Results = Mapping[str, Sequence[Mapping[str, Any]]]


def table_rows(results: Results) -> list[dict[str, Any]]:
  """One row per strategy: AUBC and F-acc, mean and std (ddof=0) over seeds."""
  rows = []
  for name, runs in results.items():
    aubc = np.array([r["aubc"] for r in runs], np.float64)
    facc = np.array([r["f_acc"] for r in runs], np.float64)
    rows.append({
        "strategy": name,
        "seeds": len(runs),
        "aubc_mean": float(aubc.mean()),
        "aubc_std": float(aubc.std()),
        "f_acc_mean": float(facc.mean()),
        "f_acc_std": float(facc.std()),
    })
  return rows


def markdown_table(results: Results) -> str:
  """The paper-format table: ``| strategy | AUBC | F-acc |`` with mean ± std."""
  lines = ["| strategy | seeds | AUBC | F-acc |", "|---|---|---|---|"]
  for row in table_rows(results):
    lines.append(
        f"| {row['strategy']} | {row['seeds']} | {row['aubc_mean']:.4f} ± {row['aubc_std']:.4f} "
        f"| {row['f_acc_mean']:.4f} ± {row['f_acc_std']:.4f} |"
    )
  return "\n".join(lines) + "\n"


def csv_table(results: Results) -> str:
  rows = table_rows(results)
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["strategy"])
  writer.writeheader()
  writer.writerows(rows)
  return out.getvalue()


def plot_curves(results: Results, path: str, *, title: str | None = None) -> None:
  """Test accuracy against labeled count, one line per strategy, a band over seeds."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  for name, runs in results.items():
    x = np.asarray(runs[0]["num_labeled"])
    accs = np.array([r["accuracies"] for r in runs], np.float64)
    mean = accs.mean(0)
    (line,) = ax.plot(x, mean, marker="o", markersize=3, label=name)
    if len(runs) > 1:
      ax.fill_between(x, accs.min(0), accs.max(0), color=line.get_color(), alpha=0.2)
  ax.set_xlabel("labeled samples")
  ax.set_ylabel("test accuracy")
  if title:
    ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
