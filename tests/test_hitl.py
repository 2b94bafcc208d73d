"""Human in the loop: query -> CSV -> a person's labels -> resume, from the API and the launcher."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from experiments import defaults, experiment
from msal_jax import api, data, hitl, loop, train

TINY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_models.py")
CLASSES = ("ant", "bee", "cow")


def _blobs(n, seed):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 3, n).astype(np.int32)
  x = rng.integers(0, 60, (n, 8, 8, 1)).astype(np.uint8)
  for img, c in zip(x, y, strict=True):
    img[2 * c:2 * c + 3, 2:6] = 250
  return x, y


def _rows(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def _fill(path, label_of, header=("id", "path", "label")):
  rows = _rows(path)
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    for row in rows:
      writer.writerow([row["id"], row["path"], label_of(int(row["id"]))])


# -- the CSV file ---------------------------------------------------------------


def test_csv_round_trip_by_name_index_reordered_semicolons(tmp_path):
  path = str(tmp_path / "q" / "round_000.csv")
  ids = [7, 2, 5]
  hitl.write_queries(path, ids, paths=[f"img{i}.png" for i in range(10)])
  assert _rows(path) == [{"id": str(i), "path": f"img{i}.png", "label": ""} for i in ids]
  # A spreadsheet's export: BOM, semicolons, rows sorted, a label given by index.
  with open(path, "w", encoding="utf-8-sig") as f:
    f.write("id;path;label\n2;img2.png;bee\n5;;2\n\n7;img7.png; ant \n")
  assert hitl.read_labels(path, ids, CLASSES, paths=[f"img{i}.png" for i in range(10)]
                          ).tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "body, match",
    [
        ("id,label\n7,ant\n2,bee\n5,cow\n999,ant\n",
         "row 5: id 999 was not queried in this round"),
        ("id,label\n7,ant\n2,dog\n5,cow\n",
         r"row 3 \(id 2\): label 'dog' is not a class; classes: ant, bee, cow \(or their "
         r"indices 0..2\)"),
        ("id,label\n7,ant\n2,3\n5,cow\n", r"row 3 \(id 2\): label '3' is not a class"),
        ("id,label\n7,ant\n", "2 queried id\\(s\\) have no row: 2, 5"),
        ("id,label\n7,ant\n2,bee\n7,cow\n5,cow\n", r"row 4: id 7 appears again \(first on row 2\)"),
        ("id,label\nseven,ant\n2,bee\n5,cow\n", "row 2: id 'seven' is not an integer pool id"),
        ("id,label\n7,ant\n2,\n5,cow\n", r"row 3 \(id 2\): no label"),
        ("id,path,label\n7,img7.png,ant\n2,img5.png,bee\n5,,cow\n",
         "row 3: id 2 is 'img2.png', not 'img5.png'"),
        ("ident,label\n7,ant\n", "row 1 must be the header with columns id and label"),
        ("", "row 1 must be the header"),
    ],
)
def test_csv_errors_name_the_row(tmp_path, body, match):
  path = tmp_path / "round_000.csv"
  path.write_text(body)
  with pytest.raises(ValueError, match=match) as err:
    hitl.read_labels(str(path), [7, 2, 5], CLASSES, paths=[f"img{i}.png" for i in range(10)])
  assert "Fix the file and run again" in str(err.value) or "header" in str(err.value)


def test_several_problems_are_reported_at_once(tmp_path):
  path = tmp_path / "round_000.csv"
  path.write_text("id,label\n7,dog\n999,ant\n")
  with pytest.raises(ValueError, match=r"3 problem\(s\): row 2 \(id 7\).*; row 3: id 999.*; "
                     r"2 queried id\(s\) have no row: 2, 5"):
    hitl.read_labels(str(path), [7, 2, 5], CLASSES)


def test_missing_csv_and_oracle_checks(tmp_path):
  with pytest.raises(FileNotFoundError, match="round_003.csv: the labels file"):
    hitl.read_labels(hitl.csv_path(str(tmp_path), 3), [1], CLASSES)
  with pytest.raises(ValueError, match="oracle gave label 3 for pool id 8"):
    hitl.oracle_labels(lambda ids: np.array([0, 3]), [4, 8], 3)
  with pytest.raises(ValueError, match="oracle must return 2 integer labels"):
    hitl.oracle_labels(lambda ids: [0], [4, 8], 3)


def test_loop_refuses_what_it_cannot_label(tmp_path):
  (px, py), (tx, ty) = _blobs(30, 0), _blobs(10, 1)
  py[10:] = -1
  ds = data.from_arrays(px, py, tx, ty)
  kwargs = dict(strategy="random", seed=0, al=loop.ActiveLearningConfig(initial=5, batch=5,
                budget=5), train=loop.TrainConfig(epochs=1),
                model=loop.ModelConfig(module=f"{TINY_PATH}:TinyTrunk"), log=lambda s: None)
  with pytest.raises(ValueError, match=r"20 pool labels are unknown \(-1\).*oracle='dataset'"):
    loop.run(ds, **kwargs)
  with pytest.raises(ValueError, match="oracle='csv' needs a workdir"):
    loop.run(ds, oracle="csv", **kwargs)
  with pytest.raises(ValueError, match="initial_set: 1 of its samples have no label"):
    loop.run(ds, oracle="csv", workdir=str(tmp_path), initial_set=[0, 1, 25], **kwargs)
  with pytest.raises(ValueError, match=r"10 labeled samples \+ al.budget \(25\)"):
    loop.run(ds, oracle="csv", workdir=str(tmp_path),
             **{**kwargs, "al": loop.ActiveLearningConfig(initial=5, batch=5, budget=25)})


# -- the round trip through the API ----------------------------------------------


def _no_nan(name):
  raise AssertionError(f"rounds.jsonl holds {name}, which is not JSON")


def test_api_round_trip_labels_reach_training(tmp_path, monkeypatch):
  (px, truth), test = _blobs(40, 0), _blobs(20, 1)
  py = truth.copy()
  py[12:] = -1  # the person knows 12 labels; the rest come through the CSV
  fits = []
  real_fit = train.Trainer.fit

  def recording_fit(self, state, images, labels, labeled, **kwargs):
    fits.append((np.asarray(labels).copy(), np.asarray(labeled).copy()))
    return real_fit(self, state, images, labels, labeled, **kwargs)

  monkeypatch.setattr(train.Trainer, "fit", recording_fit)
  settings = dict(strategy="msal", budget=8, batch=8, epochs=1, batch_size=8,
                  eval_batch_size=32, oracle="csv", workdir=str(tmp_path), class_names=CLASSES,
                  log=None)
  first = api.ActiveLearner(f"{TINY_PATH}:TinyTrunk", (px, py), test, **settings)
  summary = first.run()
  csv_path = str(tmp_path / "queries" / "round_000.csv")
  assert first.pending_labels == summary["pending_labels"] == csv_path
  queried = summary["rounds"][0]["queried"]
  assert len(queried) == 8 and all(i >= 12 for i in queried)  # only unknown ones are left
  assert [int(r["id"]) for r in _rows(csv_path)] == queried
  assert summary["aubc"] is None and len(fits) == 1  # stopped after round 0's query
  assert fits[0][1].sum() == 12

  # The person labels the queries; one of them against the truth, to see it used.
  given = {i: int(truth[i]) for i in queried}
  given[queried[0]] = (given[queried[0]] + 1) % 3
  _fill(csv_path, lambda i: CLASSES[given[i]])
  second = api.ActiveLearner(f"{TINY_PATH}:TinyTrunk", (px, py), test, **settings)
  summary = second.run()
  assert summary["pending_labels"] is None  # budget spent: finished
  assert summary["num_labeled"] == [12, 20] and summary["labels_spent"] == 8
  assert summary["rounds"][0]["labels"] == [given[i] for i in queried]
  labels, labeled = fits[-1]  # round 1 trained on the person's labels
  assert labeled[queried].all() and labeled.sum() == 20
  assert labels[queried].tolist() == [given[i] for i in queried]
  with open(tmp_path / "rounds.jsonl") as f:
    first = json.loads(f.readline(), parse_constant=_no_nan)  # strict JSON: no NaN
  assert first["labels"] == [given[i] for i in queried]
  assert first["unlabeled_error_rate"] is None  # no unlabeled sample has a known label
  assert (tmp_path / "results.md").exists()


# -- the round trip through the launcher's config (al.hitl) -----------------------


def _image_folder(root):
  (px, py), (tx, ty) = _blobs(24, 2), _blobs(9, 3)
  for split, xs, ys in (("train", px[:9], py[:9]), ("test", tx, ty)):
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
      os.makedirs(os.path.join(root, split, CLASSES[y]), exist_ok=True)
      Image.fromarray(x[..., 0]).save(os.path.join(root, split, CLASSES[y], f"{i:02d}.png"))
  os.makedirs(os.path.join(root, "unlabeled"))
  truth = {}
  for i, (x, y) in enumerate(zip(px[9:], py[9:], strict=True)):
    Image.fromarray(x[..., 0]).save(os.path.join(root, "unlabeled", f"u{i:02d}.png"))
    truth[f"unlabeled/u{i:02d}.png"] = CLASSES[y]
  return truth


def test_launcher_round_trip_with_an_image_folder(tmp_path):
  truth = _image_folder(str(tmp_path / "images"))
  config = defaults.get_config()
  config.data.source = "folder"
  config.data.dir = str(tmp_path / "images")
  config.model.module = f"{TINY_PATH}:TinyTrunk"
  config.strategies = ("entropy",)
  config.seeds = (0,)
  config.al.hitl = True
  config.al.initial, config.al.batch, config.al.budget = 4, 4, 4
  config.train.epochs, config.train.batch_size, config.train.eval_batch_size = 1, 8, 32
  exp = experiment.Experiment.from_config(config)
  workdir = str(tmp_path / "run")
  experiment.prepare_workdir(config, workdir)
  results = experiment.run(exp, workdir, log=lambda s: None)
  csv_path = os.path.join(workdir, "queries", "round_000.csv")
  assert results["entropy"][0]["pending_labels"] == csv_path
  rows = _rows(csv_path)
  assert len(rows) == 4 and all(r["path"].startswith("unlabeled/") for r in rows)
  assert not os.path.exists(os.path.join(workdir, "results.md"))

  # A first try with mistakes: nothing trains, the error names the rows.
  with open(csv_path, "w") as f:
    f.write("id,path,label\n")
    f.write(f"{rows[0]['id']},{rows[0]['path']},wasp\n")
    f.write(f"{rows[1]['id']},{rows[1]['path']},bee\n")
    f.write("999,,ant\n")
  with pytest.raises(ValueError, match=r"row 2 \(id \d+\): label 'wasp' is not a class.*"
                     r"row 4: id 999 was not queried.*2 queried id\(s\) have no row"):
    experiment.run(exp, workdir, log=lambda s: None)

  rows_by_id = {int(r["id"]): r["path"] for r in rows}
  with open(csv_path, "w") as f:
    f.write("id,path,label\n")
    f.writelines(f"{i},{p},{truth[p]}\n" for i, p in rows_by_id.items())
  results = experiment.run(exp, workdir, log=lambda s: None)
  (summary,) = results["entropy"]
  assert summary["pending_labels"] is None and summary["num_labeled"] == [9, 13]
  with open(os.path.join(workdir, "rounds.jsonl")) as f:
    first = json.loads(f.readline())
  assert first["labels"] == [CLASSES.index(truth[rows_by_id[i]]) for i in first["queried"]]
  assert os.path.exists(os.path.join(workdir, "results.md"))


def test_hitl_config_needs_one_run():
  config = defaults.get_config()
  config.al.hitl = True
  with pytest.raises(ValueError, match="al.hitl=True: .*one strategy and one seed"):
    experiment.Experiment.from_config(config)
