"""Short runs of every strategy family, recorded as files: the loop's behaviour pinned.

``python tests/loop_fixtures.py`` (from the repository root) runs each case of
:data:`CASES` with :func:`msal_jax.loop.run` and writes its result files to
``tests/fixtures/loop/<case>.json``; ``tests/test_loop_fixtures.py`` runs the
same cases and asserts the files are identical. What is compared: every line
of ``rounds.jsonl`` and ``summary.json`` except the wall-clock fields
(:data:`TIMING`), and the query CSVs of the human-in-the-loop case. The
fixtures were recorded with the loop as it was before it was split into a
round state and a round function (issue 17), after the DeepAL+ fidelity
changes of issue 16, so the new loop must reproduce the old one bit for bit.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

TINY_TRUNK = {"widths": (4, 8), "hidden": 16}
TIMING = ("train_seconds", "eval_seconds", "query_seconds", "seconds")
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "loop")


class _Stop(Exception):
  """Raised from the log callback to interrupt a run after a round's checkpoint."""


def _settings(loop, *, dropout: float = 0.0, rounds: int = 2, **al):
  return dict(
      al=loop.ActiveLearningConfig(initial=20, batch=10, budget=20, rounds=rounds, beta=2.0,
                                   mc_passes=3, **al),
      train=loop.TrainConfig(epochs=1, batch_size=16, eval_batch_size=64),
      model=loop.ModelConfig(arch="small_cnn", rho=1.0, dropout_rate=dropout,
                             trunk_kwargs=TINY_TRUNK),
  )


def _files(workdir: str) -> dict[str, Any]:
  """The run's result files, with the wall-clock fields dropped."""
  with open(os.path.join(workdir, "rounds.jsonl")) as f:
    rounds = [json.loads(line) for line in f]
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  for rec in [*rounds, summary]:
    for k in TIMING:
      rec.pop(k, None)
  out = {"rounds": rounds, "summary": summary}
  csvs = sorted(glob.glob(os.path.join(workdir, "queries", "*.csv")))
  if csvs:
    out["queries"] = {os.path.basename(p): open(p).read() for p in csvs}
  for path in sorted(glob.glob(os.path.join(workdir, "embeddings", "*.npz"))):
    with np.load(path) as z:  # the t-SNE sample: ids, features, flags
      out.setdefault("embeddings", {})[os.path.basename(path)] = {
          k: z[k].tolist() for k in sorted(z.files)}
  return out


def _fill_csv(path: str, labels: np.ndarray) -> None:
  """A person's answer: each queried id labelled with ``(true label + 1) % 10``."""
  with open(path) as f:
    rows = list(csv.reader(f))
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(rows[0])
    for i, p, _ in rows[1:]:
      w.writerow([i, p, str((int(labels[int(i)]) + 1) % 10)])


def _plain(loop, dataset, workdir, strategy, **kw):
  dropout, al = kw.pop("dropout", 0.0), kw.pop("al", {})
  loop.run(dataset, strategy=strategy, seed=kw.pop("seed", 0), workdir=workdir,
           log=lambda s: None, **_settings(loop, dropout=dropout, **al), **kw)


def _function_oracle(loop, dataset, workdir):
  _plain(loop, dataset, workdir, "random", oracle=lambda ids: (ids * 7 + 3) % 10)


def _csv_oracle(loop, dataset, workdir):
  labels = np.asarray(dataset.pool_labels)
  for _ in range(3):  # round 0 stops, round 1 stops, round 2 ends the run
    loop.run(dataset, strategy="msal", seed=1, workdir=workdir, log=lambda s: None,
             oracle="csv", **_settings(loop))
    for path in glob.glob(os.path.join(workdir, "queries", "*.csv")):
      with open(path) as f:
        filled = "".join(f.readlines()[1:2]).rstrip().rsplit(",", 1)[-1] != ""
      if not filled:
        _fill_csv(path, labels)


def _resumed(loop, dataset, workdir):
  def stop_after_round_1(line):
    if "round 1/" in line:
      raise _Stop
  try:
    loop.run(dataset, strategy="margin", seed=2, workdir=workdir, log=stop_after_round_1,
             **_settings(loop, rounds=None))
  except _Stop:
    pass
  else:
    raise AssertionError("the run was not interrupted")
  loop.run(dataset, strategy="margin", seed=2, workdir=workdir, log=lambda s: None,
           **_settings(loop, rounds=None))


CASES: dict[str, Callable[..., None]] = {
    "entropy": lambda loop, d, w: _plain(loop, d, w, "entropy"),
    "msal_d": lambda loop, d, w: _plain(loop, d, w, "msal_d", embedding_rounds=(0, 2),
                                        embedding_points=40),
    "bald": lambda loop, d, w: _plain(loop, d, w, "bald", dropout=0.25),
    "kcenter": lambda loop, d, w: _plain(loop, d, w, "kcenter"),
    "badge": lambda loop, d, w: _plain(loop, d, w, "badge"),
    "kmeans": lambda loop, d, w: _plain(loop, d, w, "kmeans"),
    # Thresholds loose enough for a 1-epoch model to pseudo-label some samples.
    "ceal_msal": lambda loop, d, w: _plain(loop, d, w, "ceal_msal", seed=3,
                                           al={"ceal_cos": 0.3}),
    "ceal_entropy": lambda loop, d, w: _plain(loop, d, w, "ceal_entropy", seed=3,
                                              al={"ceal_delta": 2.2}),
    "function_oracle": _function_oracle,
    "csv_oracle": _csv_oracle,
    "resumed": _resumed,
}


def dataset():
  """The first 300 pool / 100 test digits of the embedded set (tests' ``mnist5k_head``)."""
  from msal_jax import data

  full = data.load("mnist5k")
  return data.Dataset("tiny", full.pool_images[:300], full.pool_labels[:300],
                      full.test_images[:100], full.test_labels[:100], full.num_classes,
                      full.class_names, full.mean, full.std)


def run_case(name: str, loop, ds, workdir: str) -> dict[str, Any]:
  CASES[name](loop, ds, workdir)
  return _files(workdir)


def main() -> None:
  import tempfile

  from msal_jax import loop

  os.makedirs(FIXTURES, exist_ok=True)
  ds = dataset()
  names = sys.argv[1:] or list(CASES)
  for name in names:
    with tempfile.TemporaryDirectory() as tmp:
      files = run_case(name, loop, ds, tmp)
    with open(os.path.join(FIXTURES, f"{name}.json"), "w") as f:
      json.dump(files, f, indent=1, sort_keys=True)
      f.write("\n")
    print(f"{name}: {len(files['rounds'])} rounds")


if __name__ == "__main__":
  main()
