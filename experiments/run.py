r"""Runs an active-learning experiment from a config file.

  python -m experiments.run --config=configs/mnist5k.py [--workdir=DIR] \
      [--config.al.budget=500 --config.strategies=msal,msal_d ...]

Writes config.json, then per (strategy, seed) rounds.jsonl, summary.json and
curve.png, and results.md / results.csv / curves.png / report.md comparing
them; the last lines say where they are.

Everything that can be checked without writing is checked before the workdir
is touched, each mistake in one line: a misspelled --config.<field> (with the
closest valid names), every field's value, the budget against the pool (the
data is opened first). A repeated --config.<field> keeps its last value.

Progress inside a round (training epochs, pool scoring) is printed every
--log_every seconds: 10 by default on a terminal, none when the output goes
to a file; --log_every=0 turns it off.
"""

from __future__ import annotations

import datetime
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import experiment, overrides

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py).", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None,
    "Output folder; default: a fresh folder under runs/. An existing workdir of the same "
    "config is resumed after its last finished round.",
)
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "Resume a workdir even though its config.json differs from --config.",
)
_LOG_EVERY = flags.DEFINE_float(
    "log_every", None,
    "Seconds between progress lines inside a round (training epochs, pool scoring); 0: none. "
    "Default: 10 when standard output is a terminal, none when it is a file.",
)
flags.mark_flags_as_required(["config"])


def _default_workdir(config_path: str) -> str:
  name = os.path.splitext(os.path.basename(config_path.split(":")[0]))[0]
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  return os.path.join("runs", f"{name}-{stamp}")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    # orbax logs every checkpoint at INFO; keep the console to our progress lines
    # unless the user asks for more with --verbosity=0 (INFO) or higher.
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  log = lambda s: print(s, flush=True)  # noqa: E731
  if _LOG_EVERY.value is not None and not _LOG_EVERY.value >= 0:
    sys.exit(f"error: --log_every must be >= 0 seconds (0: no progress lines), got "
             f"{_LOG_EVERY.value}.")
  try:
    exp = experiment.Experiment.from_config(config)  # every field checked before any work
    dataset = experiment.load_dataset(exp)
    experiment.check_pool(exp, dataset)  # the budget against the pool, sweep included
    workdir = _WORKDIR.value or _default_workdir(
        config_flags.get_config_filename(flags.FLAGS["config"])
    )
    resuming = experiment.prepare_workdir(  # the first write
        config, workdir, allow_config_change=_ALLOW_CONFIG_CHANGE.value, replace_unused=True
    )
    log(f"workdir: {os.path.abspath(workdir)}{' (resuming)' if resuming else ''}")
    results = experiment.run(exp, workdir, log=log, dataset=dataset,
                             progress_every=_LOG_EVERY.value)
  except (ValueError, FileNotFoundError, FloatingPointError) as e:
    # Bad input or a diverged run: one clear line, no traceback.
    sys.exit(f"error: {e}")
  for line in experiment.end_lines(workdir, results):
    log(line)


if __name__ == "__main__":
  app.run(main, flags_parser=overrides.parse_flags)
