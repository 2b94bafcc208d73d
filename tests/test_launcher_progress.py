"""--log_every: progress lines inside a round from the launcher, none in a file by default."""


from test_launcher_validation import _launch


def test_log_every_prints_epochs_and_pool_scoring(tmp_path):
  proc = _launch(tmp_path / "wd", "--config.strategies=('random',)", "--config.seeds=(0,)",
                 "--log_every=1e-9")
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  assert "[random seed 0] round 0: epoch 1/1 loss" in "\n".join(lines)
  assert "[random seed 0] round 1: scoring the pool (4000 samples)" in lines


def test_default_in_a_file_is_quiet(tmp_path):
  # stdout is a pipe here, not a terminal: no progress lines unless asked for.
  proc = _launch(tmp_path / "wd", "--config.strategies=('random',)", "--config.seeds=(0,)")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "epoch" not in proc.stdout and "scoring the pool" not in proc.stdout


def test_negative_log_every_is_one_line(tmp_path):
  proc = _launch(tmp_path / "wd", "--log_every=-1")
  assert proc.returncode != 0 and not (tmp_path / "wd").exists()
  assert proc.stderr.strip().splitlines() == [
      "error: --log_every must be >= 0 seconds (0: no progress lines), got -1.0."]


