"""``python -m msal_jax.query`` and ``query.query``: files in, the in-memory selection out."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from msal_jax import prototypes, query, scoring, selection, strategies

N, C = 157, 4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("query")
  rng = np.random.default_rng(0)
  z = (rng.normal(size=(N, C - 1)) * rng.uniform(0.2, 5.0, size=(N, 1))).astype(np.float32)
  logits = (rng.normal(size=(N, C)) * 3).astype(np.float32)
  labeled = rng.random(N) < 0.3
  np.save(tmp / "z.npy", z)
  np.save(tmp / "logits.npy", logits)
  np.save(tmp / "mask.npy", labeled)
  (tmp / "ids.txt").write_text("id\n" + "\n".join(str(i) for i in np.flatnonzero(labeled)))
  return {"tmp": tmp, "z": z, "logits": logits, "labeled": labeled}


def _in_memory(name, pool, budget, beta=5.0, seed=0):
  outputs = strategies.PoolOutputs(logits=pool["logits"], features=pool["z"],
                                   prototypes=prototypes.simplex(C))
  got = np.asarray(strategies.get(name).select(jax.random.PRNGKey(seed), outputs,
                                               pool["labeled"], budget=budget, beta=beta))
  return got[got >= 0].tolist()


def _cli(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
  return subprocess.run([sys.executable, "-m", "msal_jax.query", *args], capture_output=True,
                        text=True, env=env, timeout=300)


def test_cli_msal_d_csv_and_entropy_json(pool):
  tmp = pool["tmp"]
  proc = _cli(f"--features={tmp / 'z.npy'}", f"--labeled_ids={tmp / 'ids.txt'}",
              "--strategy=msal_d", "--budget=8", "--beta=3", "--chunk_size=50",
              f"--out={tmp / 'ids.csv'}")
  assert proc.returncode == 0, proc.stderr
  lines = (tmp / "ids.csv").read_text().split()
  assert lines[0] == "id"
  assert [int(x) for x in lines[1:]] == _in_memory("msal_d", pool, 8, beta=3.0)
  assert "157/157 rows (100.0%)" in proc.stderr  # the progress, on stderr

  proc = _cli(f"--logits={tmp / 'logits.npy'}", f"--labeled={tmp / 'mask.npy'}",
              "--strategy=entropy", "--budget=6", "--chunk_size=40", "--noprogress",
              f"--out={tmp / 'ids.json'}")
  assert proc.returncode == 0, proc.stderr
  out = json.loads((tmp / "ids.json").read_text())
  assert out["ids"] == _in_memory("entropy", pool, 6)
  assert (out["strategy"], out["budget"], out["num_pool"]) == ("entropy", 6, N)
  assert out["num_labeled"] == int(pool["labeled"].sum())


def test_cli_errors_are_one_line_and_write_nothing(pool, tmp_path):
  tmp = pool["tmp"]
  z = pool["z"].copy()
  z[np.flatnonzero(~pool["labeled"])[5]] = np.nan
  np.save(tmp_path / "nan.npy", z)
  proc = _cli(f"--features={tmp_path / 'nan.npy'}", f"--labeled={tmp / 'mask.npy'}",
              "--strategy=msal", "--budget=3", "--chunk_size=64", f"--out={tmp_path / 'o.csv'}")
  bad_row = int(np.flatnonzero(~pool["labeled"])[5])
  assert proc.returncode != 0
  assert f"error: msal: row {bad_row} of the pool has NaN or Inf" in proc.stderr
  assert "Traceback" not in proc.stderr and not (tmp_path / "o.csv").exists()
  # The way out is named as the flag, not as query()'s keyword.
  assert proc.stderr.rstrip().endswith("skip such rows (--nonfinite=skip).")
  assert "nonfinite=" not in proc.stderr.replace("--nonfinite=", "")
  proc = _cli(f"--features={tmp / 'z.npy'}", "--strategy=msal", "--budget=0",
              f"--out={tmp_path / 'o.csv'}")
  assert proc.returncode != 0
  assert proc.stderr.strip() == "error: --budget must be an integer >= 1, got 0."
  proc = _cli(f"--features={tmp / 'z.npy'}", "--strategy=msal", "--budget=3",
              "--num_classes=10", f"--out={tmp_path / 'o.csv'}")
  assert proc.stderr.strip() == (f"error: features of width {C - 1} are the max-separation "
                                 f"outputs of {C} classes, not --num_classes=10.")
  proc = _cli(f"--features={tmp / 'z.npy'}", "--strategy=msal", "--budget=3",
              f"--out={tmp_path / 'o.txt'}")
  assert proc.returncode != 0 and "--out must end in .csv or .json" in proc.stderr


def test_cli_help_is_plain_text_and_exits_0():
  proc = _cli("--help")
  assert proc.returncode == 0, proc.stderr
  text = proc.stdout
  assert text.startswith("Bring your own pool: which samples to send for annotation")
  for flag in ("--features", "--strategy", "--budget", "--nonfinite", "--out"):
    assert f"  {flag}: " in text, flag  # each flag's line of the flags list
  # No Sphinx/reST or Markdown markup, and not absl's file-path header.
  for markup in (":class:", ":func:", ":mod:", ":data:", "``", "**", query.__file__):
    assert markup not in text, markup
  assert _cli("-h").stdout == text


def test_flag_form():
  names = ("labeled", "labeled_ids", "nonfinite", "num_classes", "budget")
  assert query.flag_form("skip such rows (nonfinite='skip').", names) == \
      "skip such rows (--nonfinite=skip)."
  assert query.flag_form('x, not num_classes=10.', names) == "x, not --num_classes=10."
  assert query.flag_form("labeled_ids: id 3 is outside", names) == "--labeled_ids: id 3 is outside"
  assert query.flag_form("labeled: the mask must", names) == "--labeled: the mask must"
  assert query.flag_form("budget must be >= 1", names) == "--budget must be >= 1"
  # other words are left alone: a name inside another word or not at the start
  assert query.flag_form("msal: row 3; unlabeled rows; the budget", names) == \
      "msal: row 3; unlabeled rows; the budget"
  assert query.flag_form("al.budget=5", names) == "al.budget=5"


def test_query_function_matches_the_library_strategies(pool):
  tmp = pool["tmp"]
  files = dict(features=str(tmp / "z.npy"), logits=str(tmp / "logits.npy"))
  for name, budget in [("msal", 7), ("margin", 7), ("least_conf_msal_d", 6), ("random", 9),
                       ("entropy_msal", 5)]:
    got = query.query(**files, strategy=name, budget=budget, labeled=pool["labeled"],
                      chunk_size=64, beta=2.0, seed=3)
    assert got.dtype == np.int64
    assert got.tolist() == _in_memory(name, pool, budget, beta=2.0, seed=3), name


def test_query_arrays_ids_and_short_pool(pool):
  labeled = np.ones(N, bool)
  labeled[[4, 90, 156]] = False
  got = query.query(pool["z"], strategy="msal_d", budget=10, beta=3.0,
                    labeled_ids=np.flatnonzero(labeled), chunk_size=64)
  assert sorted(got.tolist()) == [4, 90, 156]  # fewer unlabeled than the budget
  info = {}
  z = pool["z"].copy()
  z[[4, 20]] = np.inf
  got = query.query(z, strategy="msal", budget=5, nonfinite="skip", info=info, chunk_size=64)
  assert 4 not in got.tolist() and 20 not in got.tolist() and info["nonfinite_rows"] == 2
  keep = np.zeros(N, bool)
  keep[[4, 20]] = True
  expected = selection.bottom_k_masked(scoring.msal(z, prototypes.simplex(C)), ~keep, 5)
  assert got.tolist() == expected.tolist()


def test_query_default_simplex_is_the_structured_score(tmp_path):
  # No prototypes file: simplex(C) scored in O(C) per row, as
  # selection.msal_d(z, None); at C = 40 that is not the dense product's code.
  rng = np.random.default_rng(5)
  n, classes = 3_001, 40
  z = (rng.normal(size=(n, classes - 1)) * rng.uniform(0.2, 5.0, size=(n, 1))).astype(np.float32)
  labeled = rng.random(n) < 0.2
  np.save(tmp_path / "z.npy", z)
  got = query.query(str(tmp_path / "z.npy"), strategy="msal_d", budget=16, beta=4.0,
                    labeled=labeled, chunk_size=1_000)
  want = selection.msal_d(z, None, labeled, budget=16, beta=4.0)
  assert got.tolist() == np.asarray(want).tolist()
  got = query.query(z, strategy="msal", budget=9, labeled=labeled, chunk_size=700)
  want = selection.bottom_k_masked(scoring.msal(z, None), ~labeled, 9)
  assert got.tolist() == np.asarray(want).tolist()
  # a prototypes file is scored as given (here the same matrix: the same picks)
  p = np.asarray(prototypes.simplex(classes))
  got = query.query(z, strategy="msal_d", budget=16, beta=4.0, labeled=labeled, prototypes=p,
                    chunk_size=1_000)
  assert got.tolist() == np.asarray(selection.msal_d(z, p, labeled, budget=16, beta=4.0)).tolist()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(strategy="bald", budget=3), "MC-dropout strategies need T passes"),
        (dict(strategy="msal", budget=0), "budget must be an integer >= 1"),
        (dict(strategy="msal_d", budget=3, beta=0.5), "beta must be a number >= 1"),
        (dict(strategy="entropy", budget=3), "needs logits"),
        (dict(strategy="msal", budget=3, num_classes=10), "not num_classes=10"),
        (dict(strategy="msal", budget=3, prototypes=np.zeros((4, 5))), r"prototypes must be"),
        (dict(strategy="msal", budget=3, labeled=np.zeros(N - 1, bool)), r"shape \(157,\)"),
        (dict(strategy="msal", budget=3, labeled=np.full(N, 2)), "boolean or 0/1"),
        (dict(strategy="msal", budget=3, labeled_ids=[3, 157]), r"id 157 is outside"),
        (dict(strategy="msal", budget=3, labeled_ids=[1], labeled=np.zeros(N, bool)),
         "not both"),
    ],
)
def test_query_validation(pool, kwargs, match):
  with pytest.raises(ValueError, match=match):
    query.query(pool["z"], **kwargs)


def test_file_validation(pool, tmp_path):
  np.save(tmp_path / "int.npy", np.zeros((N, 3), np.int32))
  with pytest.raises(ValueError, match="must be floating point"):
    query.query(str(tmp_path / "int.npy"), strategy="msal", budget=3)
  with pytest.raises(ValueError, match="features have 157 rows but logits 10"):
    query.query(pool["z"], np.zeros((10, C), np.float32), strategy="entropy_msal_d", budget=3)
  with pytest.raises(ValueError, match="no such file"):
    query.query(str(tmp_path / "missing.npy"), strategy="msal", budget=3)
  np.save(tmp_path / "f.npy", np.asfortranarray(pool["z"]))
  with pytest.raises(ValueError, match="Fortran-ordered"):
    query.NpyRows(tmp_path / "f.npy")
  data = (pool["tmp"] / "z.npy").read_bytes()
  (tmp_path / "cut.npy").write_bytes(data[:-7])
  with pytest.raises(ValueError, match="truncated"):
    query.NpyRows(tmp_path / "cut.npy")
  (tmp_path / "x.npy").write_text("hello")
  with pytest.raises(ValueError, match="not a .npy file"):
    query.NpyRows(tmp_path / "x.npy")
