"""The grid's runs side by side, each on its own group of devices (``config.mesh.devices_per_run``).

Many small runs (strategies x seeds x sweep values) use a machine's devices
better one run per device (or per small group) than one run over all of them.
:func:`device_groups` cuts the devices of ``mesh.devices`` into groups of
``mesh.devices_per_run``; :func:`run_side_by_side` starts one thread per group,
each taking the next run of the grid and making it with
``loop.run(devices=<its group>)``: one device pins the run there
(``jax.default_device``, thread-local), several make its mesh. Every run writes
into its usual folder the files it writes when made alone; its lines are
prefixed with the group's device ids (``[dev 3]``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax


class _Stopped(Exception):
  """Raised from a run's log callback once another run failed: it stops after its checkpoint."""


def device_groups(devices: int | None, per_run: int) -> list[list[jax.Device]]:
  """The first ``devices`` devices (None: all) of the default backend in groups of
  ``per_run``; devices left over (fewer than ``per_run``) stay idle."""
  available = jax.devices()
  chosen = available if devices is None else available[:devices]
  return [chosen[i:i + per_run] for i in range(0, len(chosen) - per_run + 1, per_run)]


def group_tag(group: Sequence[jax.Device]) -> str:
  """``[dev 3]`` or ``[dev 0,1]``: the device ids a run's lines come from."""
  return f"[dev {','.join(str(d.id) for d in group)}]"


def run_side_by_side(
    jobs: Sequence[Any],
    run_one: Callable[[Any, list[jax.Device], Callable[[str], None]], Any],
    groups: Sequence[list[jax.Device]],
    log: Callable[[str], None],
) -> list[Any]:
  """``[run_one(job, group, log) for job in jobs]``, the jobs shared out over one thread
  per group; results in the order of ``jobs``.

  A run that fails stops the others at their next line (each is resumable
  after its last finished round) and its error is raised here; so is Ctrl-C.
  """
  lock, stop = threading.Lock(), threading.Event()
  results: list[Any] = [None] * len(jobs)
  errors: list[BaseException] = []
  pending = list(range(len(jobs)))[::-1]

  def worker(group: list[jax.Device]) -> None:
    tag = group_tag(group)

    def tagged(line: str) -> None:
      if stop.is_set():
        raise _Stopped
      with lock:
        log(f"{tag} {line}")

    while True:
      with lock:
        if stop.is_set() or not pending:
          return
        i = pending.pop()
      try:
        results[i] = run_one(jobs[i], group, tagged)
      except _Stopped:
        return
      except BaseException as e:  # noqa: BLE001 - handed to the main thread
        with lock:
          errors.append(e)
        stop.set()
        return

  threads = [threading.Thread(target=worker, args=(g,), daemon=True)
             for g in groups[:max(1, min(len(groups), len(jobs)))]]
  for t in threads:
    t.start()
  try:
    for t in threads:
      while t.is_alive():
        t.join(0.5)
  except KeyboardInterrupt:
    stop.set()
    raise
  if errors:
    raise errors[0]
  return results
