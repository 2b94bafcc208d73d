"""The workdir of an experiment: its ``config.json``, and whether a launch resumes it.

``prepare_workdir`` is called once every check that can be made without
writing (the config's fields, the budget against the pool) has passed, so a
refused launch leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import ml_collections

from experiments.validation import _as_names, _as_seeds

# What a launch writes before any run starts; a workdir holding nothing else has no
# run to resume (the launch stopped before its first round wrote anything).
_BEFORE_ANY_RUN = frozenset({"config.json", "config.json.tmp", ".write_probe", "runs.json"})
# How the runs are spread over devices changes no run's settings: a workdir may be
# resumed, or shared by the tasks of a job array, with other mesh.* values.
_DEVICE_FIELDS = "mesh."


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """``"field: old -> new"`` for every leaf that differs between two configs."""
  a, b = _flatten(old), _flatten(new)
  return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(a.keys() | b.keys())
          if a.get(k) != b.get(k)]


def _normalized(config: dict[str, Any]) -> dict[str, Any]:
  """``strategies`` and ``seeds`` as lists of names and ints, however they were typed
  (``--config.strategies=a,b`` arrives as the one string ``"a,b"``)."""
  config = dict(config)
  for field, parse in (("strategies", lambda v: _as_names(v, "strategies")),
                       ("seeds", _as_seeds)):
    try:
      config[field] = list(parse(config[field]))
    except (KeyError, ValueError):
      pass  # absent or invalid: left as it is (validation reports it)
  return config


def holds_no_run(workdir: str) -> bool:
  """Whether ``workdir`` holds nothing but what a launch writes before its first run."""
  return all(name in _BEFORE_ANY_RUN or name.endswith(".tmp") or name.startswith(".write_probe")
             for name in os.listdir(workdir))


def prepare_workdir(
    config: ml_collections.ConfigDict, workdir: str, *, allow_config_change: bool = False,
    replace_unused: bool = False,
) -> bool:
  """Makes ``workdir`` and writes ``config.json``; returns whether it resumes a run.

  A workdir that already holds a ``config.json`` is resumed when the configs
  agree; a different config is refused with the differing fields, unless
  ``allow_config_change``, or unless ``replace_unused`` and the workdir holds
  nothing but that ``config.json`` (a launch that stopped before its first run
  wrote anything: there is nothing to resume, so the corrected command starts
  afresh there). A workdir that cannot be written is an error now, not after
  the first round of training. ``mesh.*`` fields (how the runs are spread over
  devices) may differ. Safe for the tasks of a job array starting at once:
  ``config.json`` is created atomically by the first, the others compare
  with it, and an identical one is left as it is.
  """
  try:
    os.makedirs(workdir, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".write_probe", dir=workdir)
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    raise ValueError(f"workdir {workdir!r} is not writable: {e}") from None
  new = _normalized(json.loads(config.to_json_best_effort(sort_keys=True)))
  path = os.path.join(workdir, "config.json")
  text = json.dumps(new, indent=2, sort_keys=True) + "\n"
  if _create(path, text):  # the first launch (or task) here
    return False
  with open(path) as f:
    old = _normalized(json.load(f))
  diff = [d for d in config_differences(old, new) if not d.startswith(_DEVICE_FIELDS)]
  resuming = True
  if diff and replace_unused and holds_no_run(workdir):
    resuming = False
  elif diff and not allow_config_change:
    raise ValueError(
        f"workdir {workdir!r} holds a run with another config; differing fields: "
        f"{'; '.join(diff)}. Use another --workdir, or pass --allow_config_change to "
        "continue with the new config."
    )
  if old != new:
    _replace(path, text)
  return resuming


def _tmp_copy(path: str, text: str) -> str:
  """A new file next to ``path`` holding ``text`` (a name of its own: tasks write at once)."""
  fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                             dir=os.path.dirname(path) or ".")
  with os.fdopen(fd, "w") as f:
    f.write(text)
  return tmp


def _create(path: str, text: str) -> bool:
  """Writes ``path`` whole unless it exists (atomically: a hard link fails on an existing
  name, so of two tasks starting at once one writes it and the other compares)."""
  tmp = _tmp_copy(path, text)
  try:
    os.link(tmp, path)
    return True
  except FileExistsError:
    return False
  except OSError:  # a file system without hard links: create-if-absent is then not atomic
    if os.path.exists(path):
      return False
    os.replace(tmp, path)
    return True
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _replace(path: str, text: str) -> None:
  os.replace(_tmp_copy(path, text), path)
