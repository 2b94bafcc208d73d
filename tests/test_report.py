"""The report: tables, timing, sweeps and figures from the result files alone."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import defaults, experiment
from msal_jax import data, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = b"\x89PNG\r\n\x1a\n"


def _write_run(path, strategy, seed, *, aubc, f_acc, train, query, eval_=(1.0, 0.5, 0.5),
               err=(0.5, 0.4, 0.3)):
  """A finished 2-round run (10 initial + 2 x 10) as loop.run leaves it on disk."""
  os.makedirs(path, exist_ok=True)
  records = [
      {"round": r, "num_labeled": 10 + 10 * r, "test_accuracy": 0.5 + 0.1 * r,
       "unlabeled_error_rate": err[r], "train_loss": 1.0, "train_seconds": train[r],
       "eval_seconds": eval_[r], "query_seconds": query[r],
       "queried": list(range(10 * r, 10 * r + 10)) if r < 2 else []}
      for r in range(3)
  ]
  with open(os.path.join(path, "rounds.jsonl"), "w") as f:
    f.writelines(json.dumps(rec) + "\n" for rec in records)
  summary = {"strategy": strategy, "dataset": "toy", "seed": seed, "aubc": aubc, "f_acc": f_acc,
             "accuracies": [0.5, 0.6, 0.7], "num_labeled": [10, 20, 30], "labels_spent": 20,
             "traces": {}, "seconds": 1.0}
  with open(os.path.join(path, "summary.json"), "w") as f:
    json.dump(summary, f)


def _workdir(tmp_path, strategies=("random", "entropy", "msal_d")):
  # Seconds chosen so that the per-run means (rounds >= 1; query only where it
  # queries, i.e. round 1) are round numbers: see test_timing_by_hand.
  times = {
      ("random", 0): ([10, 2, 4], [5, 1.5, 9]), ("random", 1): ([10, 2, 4], [5, 1.5, 9]),
      ("entropy", 0): ([10, 2, 4], [5, 1, 9]), ("entropy", 1): ([10, 4, 6], [5, 3, 9]),
      ("msal_d", 0): ([10, 2, 4], [6, 2.5, 9]), ("msal_d", 1): ([10, 2, 4], [6, 2, 9]),
  }
  scores = {0: (0.5, 0.25), 1: (0.75, 0.75)}
  for s in strategies:
    for seed in (0, 1):
      train, query = times[s, seed]
      _write_run(tmp_path / s / f"seed_{seed}", s, seed, aubc=scores[seed][0],
                 f_acc=scores[seed][1], train=train, query=query)
  with open(tmp_path / "config.json", "w") as f:  # gives the row order
    json.dump({"strategies": list(strategies)}, f)
  return str(tmp_path)


def test_tables_from_hand_made_files(tmp_path):
  workdir = _workdir(tmp_path)
  report.write_report(workdir)
  # aubc 0.5, 0.75 -> 0.625 ± 0.125; f_acc 0.25, 0.75 -> 0.5 ± 0.25 (std with ddof=0).
  assert (tmp_path / "results.md").read_text() == (
      "# toy: 10 initial + 20 queried, 10 per round\n\n"
      "| strategy | seeds | AUBC | F-acc |\n"
      "|---|---|---|---|\n"
      "| random | 2 | 0.6250 ± 0.1250 | 0.5000 ± 0.2500 |\n"
      "| entropy | 2 | 0.6250 ± 0.1250 | 0.5000 ± 0.2500 |\n"
      "| msal_d | 2 | 0.6250 ± 0.1250 | 0.5000 ± 0.2500 |\n"
  )
  assert (tmp_path / "results.csv").read_text().splitlines() == [
      "strategy,seeds,aubc_mean,aubc_std,f_acc_mean,f_acc_std",
      "random,2,0.625,0.125,0.5,0.25",
      "entropy,2,0.625,0.125,0.5,0.25",
      "msal_d,2,0.625,0.125,0.5,0.25",
  ]
  for name in ("curves.png", "error_rate.png"):
    content = (tmp_path / name).read_bytes()
    assert content.startswith(PNG) and len(content) > 1000
  assert not (tmp_path / "tsne.png").exists()  # no run saved embeddings
  assert not (tmp_path / "sweep.md").exists()
  text = (tmp_path / "report.md").read_text()
  assert "![accuracy](curves.png)" in text and "| msal_d | 2 | 3.000 ± 0.000" in text


def test_timing_by_hand(tmp_path):
  workdir = _workdir(tmp_path)
  rows = {r["strategy"]: r for r in report.timing_rows(report.load(workdir).results)}
  # Train: mean over rounds 1 and 2 (round 0 compiles): entropy (2+4)/2 = 3 and
  # (4+6)/2 = 5 -> 4 ± 1. Query: round 1 only (round 2 queries nothing):
  # entropy 1 and 3 -> 2 ± 1; msal_d 2.5 and 2 -> 2.25 ± 0.25, i.e. +12.5 %;
  # random 1.5 -> -25 %.
  assert (rows["entropy"]["train_mean"], rows["entropy"]["train_std"]) == (4.0, 1.0)
  assert (rows["entropy"]["query_mean"], rows["entropy"]["query_std"]) == (2.0, 1.0)
  assert (rows["msal_d"]["query_mean"], rows["msal_d"]["query_std"]) == (2.25, 0.25)
  assert rows["entropy"]["eval_mean"] == 0.5
  assert rows["msal_d"]["query_overhead"] == pytest.approx(0.125, abs=1e-15)
  assert rows["random"]["query_overhead"] == pytest.approx(-0.25, abs=1e-15)
  assert rows["entropy"]["query_overhead"] == 0.0
  report.write_report(workdir)
  md = (tmp_path / "timing.md").read_text()
  assert "| entropy | 2 | 4.000 ± 1.000 | 0.500 ± 0.000 | 2.000 ± 1.000 | +0.0% |" in md
  assert "| msal_d | 2 | 3.000 ± 0.000 | 0.500 ± 0.000 | 2.250 ± 0.250 | +12.5% |" in md
  assert "| random | 2 | 3.000 ± 0.000 | 0.500 ± 0.000 | 1.500 ± 0.000 | -25.0% |" in md
  lines = (tmp_path / "timing.csv").read_text().splitlines()
  assert lines[0] == ("strategy,seeds,train_mean,train_std,eval_mean,eval_std,query_mean,"
                      "query_std,query_overhead")
  assert lines[3] == "msal_d,2,3.0,0.0,0.5,0.0,2.25,0.25,0.125"


def test_timing_without_entropy_says_so(tmp_path):
  workdir = _workdir(tmp_path, strategies=("random", "msal_d"))
  report.write_report(workdir)
  md = (tmp_path / "timing.md").read_text()
  assert "| msal_d | 2 | 3.000 ± 0.000 | 0.500 ± 0.000 | 2.250 ± 0.250 | n/a |" in md
  assert "No entropy run in this workdir: the query-time overhead is not computed." in md
  assert (tmp_path / "timing.csv").read_text().splitlines()[2].endswith(",2.25,0.25,")


def test_sweep_layout_table_and_figure(tmp_path):
  # Folder names carry the value; 10 sorts after 5 (as numbers, not as text).
  values = {"2": (0.5, 0.75), "10": (0.75, 0.5), "5": (0.625, 0.25)}
  for s in ("msal", "msal_d"):
    for v, (aubc, facc) in values.items():
      for seed in (0, 1):
        _write_run(tmp_path / s / f"al.beta={v}" / f"seed_{seed}", s, seed,
                   aubc=aubc if s == "msal_d" else 0.5, f_acc=facc + 0.25 * seed,
                   train=[1, 1, 1], query=[1, 1, 1])
  loaded = report.load(str(tmp_path))
  assert loaded.sweep_field == "al.beta"
  assert list(loaded.results) == [("msal", "2"), ("msal", "5"), ("msal", "10"),
                                  ("msal_d", "2"), ("msal_d", "5"), ("msal_d", "10")]
  report.write_report(str(tmp_path))
  assert (tmp_path / "sweep.md").read_text() == (
      "# toy: 10 initial + 20 queried, 10 per round; sweep over al.beta\n\n"
      "AUBC against al.beta:\n\n"
      "| strategy | al.beta=2 | al.beta=5 | al.beta=10 |\n"
      "|---|---|---|---|\n"
      "| msal | 0.5000 ± 0.0000 | 0.5000 ± 0.0000 | 0.5000 ± 0.0000 |\n"
      "| msal_d | 0.5000 ± 0.0000 | 0.6250 ± 0.0000 | 0.7500 ± 0.0000 |\n"
      "\nF-acc against al.beta:\n\n"
      "| strategy | al.beta=2 | al.beta=5 | al.beta=10 |\n"
      "|---|---|---|---|\n"
      "| msal | 0.8750 ± 0.1250 | 0.3750 ± 0.1250 | 0.6250 ± 0.1250 |\n"
      "| msal_d | 0.8750 ± 0.1250 | 0.3750 ± 0.1250 | 0.6250 ± 0.1250 |\n"
  )
  lines = (tmp_path / "results.csv").read_text().splitlines()
  assert lines[0] == "strategy,al.beta,seeds,aubc_mean,aubc_std,f_acc_mean,f_acc_std"
  assert lines[6] == "msal_d,10,2,0.75,0.0,0.625,0.125"
  assert "| msal_d | 10 | 2 | 0.7500 ± 0.0000 | 0.6250 ± 0.1250 |" in (
      tmp_path / "results.md").read_text()
  assert (tmp_path / "sweep.png").read_bytes().startswith(PNG)


def test_embeddings_round_trip_and_tsne_figure(tmp_path):
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 12)
  feats = (rng.normal(size=(36, 5)) + 4 * np.eye(5)[labels]).astype(np.float32)
  queried = np.zeros(36, bool)
  queried[[0, 13, 30]] = True
  workdir = _workdir(tmp_path, strategies=("msal_d",))
  path = os.path.join(workdir, "msal_d", "seed_0", "embeddings", "round_1.npz")
  report.save_embeddings(path, round=1, indices=np.arange(100, 136), features=feats,
                         labels=labels, labeled=np.zeros(36, bool), queried=queried)
  back = report.load_embeddings(path)
  np.testing.assert_array_equal(back["features"], feats)
  np.testing.assert_array_equal(back["queried"], queried)
  assert int(back["round"]) == 1 and back["indices"][0] == 100
  assert report.tsne(feats).shape == (36, 2)
  written = report.write_report(workdir)
  assert os.path.join(workdir, "tsne.png") in written
  assert (tmp_path / "tsne.png").read_bytes().startswith(PNG)
  assert "![t-SNE](tsne.png)" in (tmp_path / "report.md").read_text()


def _config(**sweep):
  config = defaults.get_config()
  config.strategies = ("msal_d",)
  config.seeds = (0,)
  config.al.initial, config.al.batch, config.al.budget = 20, 10, 10
  config.train.epochs, config.train.batch_size, config.train.eval_batch_size = 1, 16, 100
  config.model.trunk.widths, config.model.trunk.hidden = (4, 8), 16
  config.report.tsne_rounds, config.report.tsne_points = (0,), 50
  for k, v in sweep.items():
    config.sweep[k] = v
  return config


@pytest.mark.parametrize("sweep, match", [
    ({"field": "al.betta", "values": (2,)}, "sweep.field: 'al.betta' is not a field"),
    ({"field": "seeds", "values": (2,)}, "sweep.field: 'seeds' is not a field"),
    ({"field": "model", "values": (2,)}, "sweep.field: 'model' is not a field"),
    ({"field": "al.beta", "values": ()}, "sweep.values: give a non-empty tuple"),
    ({"field": "al.beta", "values": (2, 0.5)}, "sweep.values: al.beta=0.5 is invalid: al.beta "
                                               "must be a number >= 1"),
    ({"field": "al.batch", "values": (2.5,)}, "al.batch takes values of type int"),
    ({"field": "al.beta", "values": (2, 2.0)}, "al.beta=2 is given twice"),
    ({"values": (2,)}, "sweep.values is set"),
])
def test_sweep_errors_name_the_field(sweep, match):
  with pytest.raises(ValueError, match=match):
    experiment.Experiment.from_config(_config(**sweep))


def test_tsne_rounds_are_checked():
  config = _config()
  config.report.tsne_rounds = (2,)  # 1 query round: rounds 0 and 1 only
  with pytest.raises(ValueError, match=r"report.tsne_rounds must be rounds in 0..1"):
    experiment.Experiment.from_config(config)


@pytest.fixture(scope="module")
def tiny(mnist5k_head) -> data.Dataset:
  return mnist5k_head(300, 100, "mnist5k-tiny")


def test_sweep_folders_one_per_value():
  exp = experiment.Experiment.from_config(_config(field="al.beta", values=(2, 5.0, 10)))
  assert [(v, p.al.beta) for v, p in exp.sweep] == [("2", 2.0), ("5", 5.0), ("10", 10.0)]
  assert exp.multi and exp.sweep_field == "al.beta"
  assert [exp.run_dir("w", "msal_d", 0, v) for v, _ in exp.sweep] == [
      os.path.join("w", "msal_d", f"al.beta={v}", "seed_0") for v in ("2", "5", "10")]
  exp = experiment.Experiment.from_config(_config(field="model.rho", values=(0.1, 1)))
  assert [(v, p.model.rho) for v, p in exp.sweep] == [("0.1", 0.1), ("1", 1.0)]


def test_sweep_run_report_regenerates_byte_for_byte_and_resumes(tiny, tmp_path):
  # One swept value keeps it to one (slow to compile) run; the layout with
  # several values is checked above and the report's side by hand-made files.
  exp = experiment.Experiment.from_config(_config(field="al.beta", values=(3,)))
  workdir = str(tmp_path)
  logs = []
  experiment.run(exp, workdir, dataset=tiny, log=logs.append)
  for v in ("3",):  # <strategy>/<field>=<value>/seed_<k>
    run_dir = tmp_path / "msal_d" / f"al.beta={v}" / "seed_0"
    assert (run_dir / "summary.json").exists()
    emb = report.load_embeddings(str(run_dir / "embeddings" / "round_0.npz"))
    assert emb["features"].shape[1] == 9  # the max-sep head's C-1 outputs
    with open(run_dir / "rounds.jsonl") as f:
      queried = json.loads(f.readline())["queried"]
    # The fixed 50-sample plus the 10 queried of round 0, none of them labeled before.
    assert sorted(emb["indices"][emb["queried"]].tolist()) == sorted(queried)
    assert 50 <= len(emb["indices"]) <= 60 and not (emb["labeled"] & emb["queried"]).any()
    assert not (run_dir / "embeddings" / "round_1.npz").exists()  # only the chosen round
  names = ["results.md", "results.csv", "timing.md", "timing.csv", "sweep.md", "report.md",
           "curves.png", "error_rate.png", "sweep.png", "tsne.png"]
  during = {n: (tmp_path / n).read_bytes() for n in names}
  for n in names:
    os.remove(tmp_path / n)
  report.write_report(workdir)  # what `python -m experiments.report` does
  assert {n: (tmp_path / n).read_bytes() for n in names} == during
  assert b"| msal_d | 3 | 1 |" in during["results.md"]
  # A second launch resumes each sub-run (finished: nothing is retrained).
  logs.clear()
  experiment.run(exp, workdir, dataset=tiny, log=logs.append)
  assert sum("already finished" in line for line in logs) == 1
  assert (tmp_path / "results.csv").read_bytes() == during["results.csv"]


def test_cli_regenerates_and_refuses_an_empty_workdir(tmp_path):
  workdir = _workdir(tmp_path / "wd", strategies=("entropy",))
  proc = subprocess.run([sys.executable, "-m", "experiments.report", f"--workdir={workdir}"],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "| entropy | 2 | 0.6250 ± 0.1250 | 0.5000 ± 0.2500 |" in proc.stdout
  assert (tmp_path / "wd" / "timing.md").exists()
  os.makedirs(tmp_path / "empty")
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.report", f"--workdir={tmp_path / 'empty'}"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  assert "no finished run (no summary.json)" in proc.stderr and "Traceback" not in proc.stderr


def _many_runs(n):
  """``n`` strategies with one 3-round run each, as report.load gives them."""
  return {f"strategy_{i}": [{"num_labeled": [10, 20, 30], "accuracies": [0.5, 0.6 + i / 1e3, 0.7]}]
          for i in range(n)}


def test_figure_of_32_strategies_keeps_every_line_apart_and_the_legend_off_the_curves():
  from msal_jax import figures

  fig = figures._rounds_figure(_many_runs(32), lambda r: r["accuracies"], "test accuracy",
                               None, None)
  ax, = fig.axes
  styles = [(line.get_color(), line.get_linestyle(), line.get_marker()) for line in ax.lines]
  assert len(styles) == 32 and len(set(styles)) == 32  # matplotlib's cycle repeats after 10
  legend = ax.get_legend()
  assert [t.get_text() for t in legend.get_texts()] == [f"strategy_{i}" for i in range(32)]
  fig.canvas.draw()
  renderer = fig.canvas.get_renderer()
  box, axes_box = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
  assert box.x0 >= axes_box.x1  # beside the axes, not over the curves
  assert box.y1 <= fig.bbox.y1 + 1 and box.y0 >= fig.bbox.y0 - 1  # as tall as the figure allows
  assert legend._ncols == 2  # 32 entries in columns of at most 16
  figures._pyplot().close(fig)


def test_figure_of_three_strategies_keeps_the_legend_inside():
  from msal_jax import figures

  fig = figures._rounds_figure(_many_runs(3), lambda r: r["accuracies"], "test accuracy",
                               None, None)
  ax, = fig.axes
  fig.canvas.draw()
  renderer = fig.canvas.get_renderer()
  box, axes_box = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
  assert axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1
  assert tuple(fig.get_size_inches()) == (6.0, 4.0)
  assert [line.get_color() for line in ax.lines] == ["C0", "C1", "C2"]
  figures._pyplot().close(fig)


def test_saved_figure_includes_the_legend_beside_the_axes(tmp_path):
  """bbox_inches='tight': the PNG is wider than the 6-inch axes alone."""
  from PIL import Image

  from msal_jax import figures

  figures.plot_curves(_many_runs(32), str(tmp_path / "many.png"))
  figures.plot_curves(_many_runs(3), str(tmp_path / "few.png"))
  many, few = Image.open(tmp_path / "many.png"), Image.open(tmp_path / "few.png")
  assert many.size[0] > few.size[0] + 2 * 120  # two legend columns at 120 dpi
  first = (tmp_path / "many.png").read_bytes()
  figures.plot_curves(_many_runs(32), str(tmp_path / "many.png"))
  assert (tmp_path / "many.png").read_bytes() == first  # same results, same bytes
