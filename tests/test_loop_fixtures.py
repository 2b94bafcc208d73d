"""The loop reproduces its recorded result files bit for bit (tests/loop_fixtures.py)."""

import json
import os
import shutil

import loop_fixtures
import pytest

from msal_jax import loop


@pytest.fixture(scope="module")
def tiny(mnist5k_head):
  return mnist5k_head(300, 100, "tiny")


@pytest.mark.parametrize("name", list(loop_fixtures.CASES))
def test_run_reproduces_recorded_files(tmp_path, tiny, name):
  with open(os.path.join(loop_fixtures.FIXTURES, f"{name}.json")) as f:
    expected = json.load(f)
  got = loop_fixtures.run_case(name, loop, tiny, str(tmp_path))
  # Through JSON, as recorded: floats compare exactly (repr round-trips).
  assert json.loads(json.dumps(got)) == expected


def test_a_workdir_of_the_old_loop_resumes(tmp_path, tiny):
  # tests/fixtures/old_workdir: the "resumed" case as the loop before its
  # redesign left it, stopped after round 1's checkpoint (orbax files as
  # written then). The new loop continues it to the same files.
  workdir = str(tmp_path / "run")
  shutil.copytree(os.path.join(os.path.dirname(loop_fixtures.FIXTURES), "old_workdir"), workdir)
  lines = []
  loop.run(tiny, strategy="margin", seed=2, workdir=workdir, log=lines.append,
           **loop_fixtures._settings(loop, rounds=None))
  assert lines[0] == "[margin seed 2] resuming after round 1 (40 labeled)"
  with open(os.path.join(loop_fixtures.FIXTURES, "resumed.json")) as f:
    expected = json.load(f)
  assert json.loads(json.dumps(loop_fixtures._files(workdir))) == expected
