"""Runs the launcher's grid side by side on 8 CPU devices and prints JSON.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/launcher_devices_worker.py

Started by tests/test_launcher_devices.py (never collected by pytest itself):
the device count must be set before jax is imported. The grid of
:func:`config` (2 strategies x 1 seed) runs with ``mesh.devices_per_run=1``
through :func:`experiments.grid.run`, one thread per device; the result files of
every run and the log lines are printed for the test to compare with each run
made alone in a one-device process.
"""

import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

STRATEGIES = ("entropy", "msal_d")
SEEDS = (3,)


def config(**mesh):
  """The tiny grid (tests/loop_fixtures.py's settings) as a launcher config."""
  from experiments import defaults

  c = defaults.get_config()
  c.al.initial, c.al.batch, c.al.budget, c.al.rounds = 20, 10, 20, 2
  c.al.beta, c.al.mc_passes = 2.0, 3
  c.train.epochs, c.train.batch_size, c.train.eval_batch_size = 1, 16, 64
  c.model.arch, c.model.rho, c.model.dropout_rate = "small_cnn", 1.0, 0.0
  c.model.trunk.widths, c.model.trunk.hidden = (4, 8), 16
  c.strategies, c.seeds = STRATEGIES, SEEDS
  for k, v in mesh.items():
    c.mesh[k] = v
  return c


def main() -> None:
  import jax
  import loop_fixtures

  from experiments import experiment

  cfg = config(devices_per_run=1)
  exp = experiment.Experiment.from_config(cfg)
  lines = []
  with tempfile.TemporaryDirectory() as wd:
    experiment.prepare_workdir(cfg, wd)
    experiment.run(exp, wd, log=lines.append, dataset=loop_fixtures.dataset(), progress_every=0)
    files = {f"{s}/seed_{k}": loop_fixtures._files(os.path.join(wd, s, f"seed_{k}"))
             for s in STRATEGIES for k in SEEDS}
    written = sorted(os.listdir(wd))
  print("RESULT " + json.dumps({"devices": jax.device_count(), "files": files, "lines": lines,
                                "written": written}))


if __name__ == "__main__":
  main()
