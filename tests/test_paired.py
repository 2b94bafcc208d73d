"""experiments.paired: per-seed differences of two strategies, hand-derived."""

import pytest

from experiments import paired

RESULTS = {
    "msal_d": [{"seed": 0, "aubc": 0.90, "f_acc": 0.95}, {"seed": 1, "aubc": 0.80, "f_acc": 0.93},
               {"seed": 2, "aubc": 0.70, "f_acc": 0.91}],
    "entropy": [{"seed": 0, "aubc": 0.88, "f_acc": 0.96}, {"seed": 1, "aubc": 0.79, "f_acc": 0.92}],
}


def test_pairs_only_the_shared_seeds():
  aubc, f_acc = paired.pair_rows(RESULTS, "msal_d", "entropy")
  assert aubc["seeds"] == [0, 1]
  assert aubc["diffs"] == pytest.approx([0.02, 0.01])
  assert aubc["mean"] == pytest.approx(0.015) and aubc["wins"] == 2
  assert aubc["std_a"] == pytest.approx(0.05) and aubc["std_b"] == pytest.approx(0.045)
  assert f_acc["diffs"] == pytest.approx([-0.01, 0.01]) and f_acc["wins"] == 1


def test_markdown_row():
  text = paired.markdown(RESULTS, "msal_d", ["entropy"])
  assert text.splitlines()[2] == (
      "| msal_d - entropy | aubc | 0: +0.0200, 1: +0.0100 | +0.0150 | 2 of 2 | 0.0500 / 0.0450 |")


def test_unknown_strategy_is_named():
  with pytest.raises(ValueError, match="no finished runs of 'margin'"):
    paired.pair_rows(RESULTS, "msal_d", "margin")
