"""The launcher checks before it writes: one line per mistake, nothing written, and its
last lines say what the table's columns are and where the files are (issue 15)."""

import dataclasses
import json

import ml_collections
import pytest
import test_experiment
from absl import flags as absl_flags
from ml_collections import config_flags

from experiments import defaults, experiment, outputs, overrides
from msal_jax import defaults as lib_defaults

ROOT = test_experiment.ROOT
# test_experiment's tiny launch with one query round (budget 10).
TINY = [("--config.al.budget=10" if a.startswith("--config.al.budget=") else a)
        for a in test_experiment.TINY]


def _launch(workdir, *extra):
  return test_experiment._launch(workdir, *extra, tiny=TINY)


@pytest.mark.parametrize("override, line", [
    ("--config.al.bugdet=3",
     "error: --config.al.bugdet: the config has no field al.bugdet; did you mean al.budget or "
     "al.beta?"),  # difflib's ratio: budget 0.83, beta 0.6 (its default cutoff)
    # The config's fields are those of configs/mnist5k.py (experiments/defaults.py).
    ("--config.trian.epochs=3",
     "error: --config.trian.epochs: the config has no field trian; did you mean train?"),
    ("--config.al.budget=100000",
     "error: al.initial (20) + al.budget (100000) = 100020 is larger than the pool "
     "(4000 samples): lower al.budget to at most 3980."),
])
def test_mistake_is_one_line_and_nothing_is_written(tmp_path, override, line):
  workdir = tmp_path / "wd"
  proc = _launch(workdir, override)
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines() == [line]
  assert not workdir.exists()


def test_sweep_value_over_the_pool_is_caught_before_the_workdir(tmp_path):
  workdir = tmp_path / "wd"
  proc = _launch(workdir, "--config.sweep.field=al.budget",
                 "--config.sweep.values=(10, 3990)")
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines() == [
      "error: sweep.values: al.budget=3990: al.initial (20) + al.budget (3990) = 4010 is "
      "larger than the pool (4000 samples): lower al.budget to at most 3980."]
  assert not workdir.exists()


def test_unknown_field_names_the_closest_or_all_fields():
  config = ml_collections.ConfigDict({"al": {"budget": 1, "batch": 2}, "seeds": (0,)})
  assert overrides.unknown_field(config, "al.budget") is None
  assert overrides.unknown_field(config, "al.zzz") == (
      "--config.al.zzz: the config has no field al.zzz; the fields of al are al.batch, "
      "al.budget.")
  assert overrides.unknown_field(config, "sedes") == (
      "--config.sedes: the config has no field sedes; did you mean seeds?")
  assert overrides.unknown_field(config, "al.budget.x") == (
      "--config.al.budget.x: al.budget is a value (int), not a group of fields; set it as "
      "--config.al.budget=...")


def test_repeated_override_keeps_the_last():
  config = ml_collections.ConfigDict({"seeds": (0,), "al": {"hitl": False, "budget": 1}})
  argv = ["run.py", "--config=c.py", "--config.seeds=(0,)", "--config.al.budget", "5",
          "--config.seeds", "(1,)", "--config.al.hitl", "--noconfig.al.hitl", "--workdir=w",
          "--config.al.budget=7"]
  assert overrides.last_wins(argv, config) == [
      "run.py", "--config=c.py", "--config.seeds", "(1,)", "--noconfig.al.hitl",
      "--workdir=w", "--config.al.budget=7"]
  assert overrides.override_fields(argv) == [
      "seeds", "al.budget", "seeds", "al.hitl", "al.hitl", "al.budget"]


def test_corrected_rerun_replaces_a_config_that_ran_nothing(tmp_path):
  # A launch that stopped after config.json (nothing else) left no run to resume:
  # the corrected command on the same --workdir starts there; the repeated tuple
  # override ends as its last value; the end lines define the columns and say where
  # the report, the table and the figures are.
  workdir = tmp_path / "wd"
  workdir.mkdir()
  (workdir / "config.json").write_text(json.dumps({"al": {"budget": 100000}}))
  proc = _launch(workdir, "--config.strategies=('random',)", "--config.seeds=(0,)",
                 "--config.seeds=(1,)")
  assert proc.returncode == 0, proc.stderr[-3000:]
  config = json.loads((workdir / "config.json").read_text())
  assert config["seeds"] == [1] and config["al"]["budget"] == 10
  assert json.loads((workdir / "summary.json").read_text())["seed"] == 1  # one run: flat
  lines = proc.stdout.splitlines()
  assert lines[0] == f"workdir: {workdir}"  # not "(resuming)"
  root = str(workdir)
  table_end = max(i for i, line in enumerate(lines) if line.startswith("| random | 1 |"))
  assert lines[table_end + 1:] == [
      "",
      "AUBC: area under the accuracy-vs-labels curve, normalised by the budget; "
      "F-acc: test accuracy after the last round.",
      f"report: {root}/report.md (tables and figures on one page)",
      f"table: {root}/results.md and results.csv (time per round: timing.md)",
      f"figures: {root}/curves.png, {root}/error_rate.png",
  ]
  for name in ("report.md", "results.md", "results.csv", "curves.png", "error_rate.png"):
    assert (workdir / name).is_file()


def test_a_workdir_with_a_run_still_refuses_another_config(tmp_path):
  old = ml_collections.ConfigDict({"al": {"budget": 40}, "seeds": (0,)})
  new = ml_collections.ConfigDict({"al": {"budget": 60}, "seeds": (0,)})
  assert experiment.prepare_workdir(old, str(tmp_path), replace_unused=True) is False
  assert experiment.prepare_workdir(new, str(tmp_path), replace_unused=True) is False
  assert json.loads((tmp_path / "config.json").read_text())["al"]["budget"] == 60
  (tmp_path / "rounds.jsonl").write_text("")
  with pytest.raises(ValueError, match=r"differing fields: al.budget: 60 -> 40"):
    experiment.prepare_workdir(old, str(tmp_path), replace_unused=True)
  assert experiment.prepare_workdir(new, str(tmp_path), replace_unused=True) is True


def test_where_lines_list_only_the_figures_written(tmp_path):
  (tmp_path / "tsne.png").write_bytes(b"")
  root = str(tmp_path)
  assert outputs.where_lines(root) == [
      f"report: {root}/report.md (tables and figures on one page)",
      f"table: {root}/results.md and results.csv (time per round: timing.md)",
      f"figures: {root}/tsne.png",
  ]


def test_fields_left_out_take_msal_jax_defaults(monkeypatch):
  # Values no config uses, so only a read of msal_jax.defaults can give them.
  monkeypatch.setattr(lib_defaults, "AL", dataclasses.replace(
      lib_defaults.AL, mc_passes=7, ceal_delta=0.25, ceal_decay=0.125, ceal_cos=0.5))
  monkeypatch.setattr(lib_defaults, "TRAIN", dataclasses.replace(
      lib_defaults.TRAIN, eval_batch_size=96, augment=True))
  monkeypatch.setattr(lib_defaults, "CHECKPOINT", dataclasses.replace(
      lib_defaults.CHECKPOINT, max_to_keep=5))
  tree = defaults.get_config().to_dict()
  for group, names in (("al", ("mc_passes", "ceal_delta", "ceal_decay", "ceal_cos")),
                       ("train", ("eval_batch_size", "augment"))):
    for name in names:
      tree[group].pop(name)
  tree.pop("checkpoint")
  exp = experiment.Experiment.from_config(ml_collections.ConfigDict(tree))
  assert (exp.al.mc_passes, exp.al.ceal_delta, exp.al.ceal_decay, exp.al.ceal_cos) == (
      7, 0.25, 0.125, 0.5)
  assert (exp.train.eval_batch_size, exp.train.augment, exp.max_to_keep) == (96, True, 5)


def _parse(*args):
  """``overrides.parse_flags`` in-process, on a fresh FlagValues holding a --config flag."""
  argv = ["run.py", *args]
  flag_values = absl_flags.FlagValues()
  config = config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values,
                                           sys_argv=argv)
  overrides.parse_flags(argv, flag_values)
  return config.value


@pytest.mark.parametrize("args, line", [
    (("--config=configs/nonexist.py",),
     "error: --config=configs/nonexist.py: no file 'configs/nonexist.py'."),
    (("--config=configs/mnist5k.py:bogus",),
     "error: --config=configs/mnist5k.py:bogus: config variant 'bogus': allowed default, all "
     "(--config=configs/mnist5k.py:all)."),
    (("--config=configs/mnist5k.py", "--config.data.nmae=x"),
     "error: --config.data.nmae: the config has no field data.nmae; did you mean data.name?"),
    (("--config=configs/mnist5k.py", "--config.al.budget=abc"),
     "error: flag --config.al.budget=abc: invalid literal for int() with base 10: 'abc'"),
])
def test_parse_errors_are_one_line(monkeypatch, args, line):
  monkeypatch.chdir(ROOT)
  with pytest.raises(SystemExit) as stop:
    _parse(*args)
  assert stop.value.code == line


def test_parsed_config_keeps_the_last_of_repeated_overrides(monkeypatch):
  monkeypatch.chdir(ROOT)
  config = _parse("--config=configs/mnist5k.py", "--config.seeds=(0,)", "--config.seeds=(1,)",
                  "--config.strategies=('msal',)", "--config.strategies", "('random', 'bald')",
                  "--config.al.budget=3", "--config.al.budget=4")
  assert (config.seeds, config.strategies, config.al.budget) == ((1,), ("random", "bald"), 4)
