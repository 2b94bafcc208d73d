"""Paired per-seed differences between strategies of one workdir.

Every seed draws the same initial labels for every strategy, so the
difference of two strategies' AUBC (or F-acc) on the same seed is a paired
comparison: it removes the seed's own luck (its initial set), which is most
of the seed-to-seed spread. Printed beside the spread of each strategy over
seeds, so a reader sees whether a difference is larger than that spread:

  python -m experiments.paired --workdir=runs/schedule/mnist --a=msal_d \\
      --b=entropy,margin

prints one Markdown table: per pair and metric, the difference on every seed,
their mean, how many seeds favour ``a``, and the two strategies' std over seeds
(population std, as the results tables).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from absl import app, flags

from msal_jax import report

_WORKDIR = flags.DEFINE_string("workdir", None, "launcher workdir with <strategy>/seed_<k>/ runs")
_A = flags.DEFINE_string("a", "msal_d", "the strategy compared")
_B = flags.DEFINE_list("b", ["entropy", "margin"], "the strategies it is compared with")

METRICS = ("aubc", "f_acc")


def per_seed(results: Mapping[str, Sequence[Mapping[str, Any]]], name: str,
             metric: str) -> dict[int, float]:
  if name not in results:
    raise ValueError(f"no finished runs of {name!r} (found: {', '.join(map(str, results))}).")
  return {int(s["seed"]): float(s[metric]) for s in results[name]}


def pair_rows(results, a: str, b: str) -> list[dict[str, Any]]:
  """One row per metric: ``{"metric", "seeds", "diffs", "mean", "wins", "std_a", "std_b"}``
  over the seeds both strategies finished."""
  rows = []
  for metric in METRICS:
    va, vb = per_seed(results, a, metric), per_seed(results, b, metric)
    seeds = sorted(set(va) & set(vb))
    if not seeds:
      raise ValueError(f"{a} and {b} share no finished seed.")
    diffs = [va[s] - vb[s] for s in seeds]
    rows.append({"metric": metric, "seeds": seeds, "diffs": diffs,
                 "mean": float(np.mean(diffs)), "wins": sum(d > 0 for d in diffs),
                 "std_a": float(np.std([va[s] for s in seeds])),
                 "std_b": float(np.std([vb[s] for s in seeds]))})
  return rows


def markdown(results, a: str, bs: Sequence[str]) -> str:
  lines = ["| pair | metric | difference per seed | mean | seeds favouring the first | "
           "std over seeds (first / second) |", "|---|---|---|---|---|---|"]
  for b in bs:
    for row in pair_rows(results, a, b):
      per = ", ".join(f"{s}: {d:+.4f}" for s, d in zip(row["seeds"], row["diffs"], strict=True))
      lines.append(f"| {a} - {b} | {row['metric']} | {per} | {row['mean']:+.4f} | "
                   f"{row['wins']} of {len(row['seeds'])} | {row['std_a']:.4f} / "
                   f"{row['std_b']:.4f} |")
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  del argv
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  print(markdown(report.load(_WORKDIR.value).results, _A.value, _B.value))


if __name__ == "__main__":
  app.run(main)
