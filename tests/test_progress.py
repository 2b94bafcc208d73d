"""Progress lines inside a round: rate-limited, off by default in a file, never changing results."""

import json
import os

import loop_fixtures
import pytest

from msal_jax import loop
from msal_jax.progress import Progress


class _Clock:
  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_at_most_one_line_per_interval():
  clock, lines = _Clock(), []
  p = Progress(lines.append, every=10.0, prefix="[x]", clock=clock).step("round 2: ")
  fit_log = p.fit_kwargs()["log"]
  for t, text in [(3, "  epoch 1/5  loss 2.0"), (10, "  epoch 2/5  loss 1.5"),
                  (15, "  epoch 3/5  loss 1.0"), (20.5, "  epoch 4/5  loss 0.5")]:
    clock.now = t
    fit_log(text)
  clock.now = 31
  p.say("round 2: scoring the pool (9 samples)")
  assert lines == ["[x] round 2: epoch 2/5 loss 1.5", "[x] round 2: epoch 4/5 loss 0.5",
                   "[x] round 2: scoring the pool (9 samples)"]


def test_step_restarts_the_clock():
  clock, lines = _Clock(), []
  p = Progress(lines.append, every=5.0, prefix="[x]", clock=clock)
  clock.now = 100.0
  p.step("round 1: ").say("late")
  assert lines == []  # 0 s since the round began


def test_off_leaves_the_trainer_call_unchanged():
  p = Progress(print, every=0.0, prefix="[x]")
  assert p.fit_kwargs() == {}
  with pytest.raises(ValueError, match="progress every must be >= 0"):
    Progress(print, every=-1.0, prefix="[x]")


def test_default_is_off_when_output_is_not_a_terminal(capsys):
  # pytest captures stdout: not a terminal.
  assert loop._default_progress_every() == 0.0


def test_progress_lines_do_not_change_the_run(tmp_path, mnist5k_head):
  tiny = mnist5k_head(300, 100, "tiny")
  lines = []
  loop.run(tiny, strategy="entropy", seed=0, workdir=str(tmp_path), log=lines.append,
           progress_every=1e-9, **loop_fixtures._settings(loop))
  assert any("round 0: epoch 1/1 loss" in s for s in lines)
  assert any("round 2: scoring the pool (300 samples)" in s for s in lines)
  with open(os.path.join(loop_fixtures.FIXTURES, "entropy.json")) as f:
    expected = json.load(f)
  assert json.loads(json.dumps(loop_fixtures._files(str(tmp_path)))) == expected


def test_check_pool_names_the_field_to_lower():
  al = loop.ActiveLearningConfig(initial=100, batch=10, budget=50)
  al.check_pool(150)  # 100 + 50 fit exactly
  with pytest.raises(ValueError, match=r"lower al.budget to at most 40\."):
    al.check_pool(140)
  with pytest.raises(ValueError, match=r"al.initial \(100\) leaves no sample of the pool \(100 "
                     r"samples\) to query: lower al.initial to at most 99\."):
    al.check_pool(100)
