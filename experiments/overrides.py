"""The launcher's command line: ``--config.<field>`` overrides checked and applied, one line
per mistake.

absl and ml_collections, left alone, answer a misspelled field
(``--config.al.bugdet=3``) with a long traceback that buries the "did you
mean" hint, and merge a repeated tuple override (``--config.seeds="(0,)"
--config.seeds="(1,)"`` gives ``(0, 1)``: ml_collections parses a tuple field
with an absl ``MultiFlag``, which appends every occurrence). ``parse_flags``
(the launcher's ``app.run(..., flags_parser=...)``) checks every override's
field against the loaded config first, and keeps only the last occurrence of
a repeated override, so the later flag wins for every field, tuples included.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Sequence

import ml_collections
from absl import flags

_CONFIG_ARG = re.compile(r"^--?config(=|$)")
_OVERRIDE_ARG = re.compile(r"^--?(no)?config\.([^=]+)(=.*)?$", re.S)


def _config_path(argv: Sequence[str]) -> str | None:
  """The value of ``--config`` in ``argv`` (``--config=PATH`` or ``--config PATH``)."""
  for i, arg in enumerate(argv):
    if _CONFIG_ARG.match(arg):
      if "=" in arg:
        return arg.split("=", 1)[1]
      return argv[i + 1] if i + 1 < len(argv) else None
  return None


def _leaf(config: ml_collections.ConfigDict | None, field: str) -> object:
  node = config
  for name in field.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      return None
    node = node[name]
  return node


def _groups(argv: Sequence[str], config: ml_collections.ConfigDict | None
            ) -> list[tuple[str | None, list[str]]]:
  """``argv`` cut into ``(override field or None, its arguments)``, in order.

  ``--config.f=v`` and ``--noconfig.f`` are one argument; ``--config.f v``
  two, unless ``f`` is a boolean field (absl's ``--config.f`` alone sets it).
  """
  out: list[tuple[str | None, list[str]]] = []
  i = 0
  while i < len(argv):
    m = _OVERRIDE_ARG.match(argv[i]) if i > 0 else None  # argv[0] is the program
    if m is None:
      out.append((None, [argv[i]]))
      i += 1
      continue
    no, field, value = m.groups()
    takes_next = (value is None and not no and i + 1 < len(argv)
                  and not argv[i + 1].startswith("-")
                  and not isinstance(_leaf(config, field), bool))
    out.append((field, list(argv[i:i + 1 + takes_next])))
    i += 1 + takes_next
  return out


def override_fields(argv: Sequence[str]) -> list[str]:
  """The fields ``argv`` overrides (``al.budget`` for ``--config.al.budget=3``), in order."""
  return [field for field, _ in _groups(argv, None) if field is not None]


def last_wins(argv: Sequence[str], config: ml_collections.ConfigDict | None = None
              ) -> list[str]:
  """``argv`` with only the last occurrence of each repeated ``--config.<field>`` override.

  For a scalar field absl keeps the last value anyway; for a tuple field this
  stops ml_collections from joining the occurrences into one tuple.
  """
  groups = _groups(argv, config)
  last = {field: i for i, (field, _) in enumerate(groups) if field is not None}
  return [arg for i, (field, args) in enumerate(groups)
          if field is None or last[field] == i for arg in args]


def unknown_field(config: ml_collections.ConfigDict, field: str) -> str | None:
  """One line naming the part of ``field`` the config lacks and the closest valid names;
  None when ``config`` has the field."""
  node, seen = config, []
  for name in field.split("."):
    here = ".".join(seen)
    if not isinstance(node, ml_collections.ConfigDict):
      return (f"--config.{field}: {here} is a value ({type(node).__name__}), "
              f"not a group of fields; set it as --config.{here}=...")
    if name not in node:
      names = sorted(node.keys())
      full = [".".join([*seen, n]) for n in names]
      close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)  # by the last part
      hint = (f"did you mean {' or '.join('.'.join([*seen, c]) for c in close)}?" if close
              else f"the fields {'of ' + here if here else 'at the top'} are "
              f"{', '.join(full)}.")
      return f"--config.{field}: the config has no field {'.'.join([*seen, name])}; {hint}"
    node = node[name]
    seen.append(name)
  return None


def _load_config(argv: Sequence[str], flag_values: flags.FlagValues
                 ) -> ml_collections.ConfigDict | None:
  path = _config_path(argv)
  if path is None or "config" not in flag_values:
    return None
  config = flag_values["config"].parser.parse(path)
  return config if isinstance(config, ml_collections.ConfigDict) else None


def parse_flags(argv: list[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
  """Parses ``argv`` into ``flag_values``; a bad flag exits with one line on stderr.

  Every ``--config.<field>`` is checked against the config file before absl
  parses anything, so a misspelled field names itself and the closest valid
  names; a repeated override keeps its last value. Returns the arguments
  left (the program name), as absl's own parser does.
  """
  argv = flag_values.read_flags_from_files(argv, force_gnu=False)
  path = _config_path(argv)
  if path and not os.path.isfile(path.split(":", 1)[0]):
    sys.exit(f"error: --config={path}: no file {path.split(':', 1)[0]!r}.")
  try:
    config = _load_config(argv, flag_values)
  except ValueError as e:  # get_config refused (e.g. an unknown variant): its own message
    message = str(e).strip().splitlines()[-1].removeprefix("ValueError: ")
    sys.exit(f"error: --config={path}: {message}")
  except Exception:  # noqa: BLE001 - a broken config file: absl's parse below shows where
    config = None
  if config is not None:
    for field in override_fields(argv):
      message = unknown_field(config, field)
      if message is not None:
        sys.exit(f"error: {message}")
  try:
    return flag_values(last_wins(argv, config))
  except flags.Error as e:  # a value of the wrong type, a missing --config, ...
    if "Traceback" in str(e):
      raise  # the config file itself failed: its traceback is the useful part
    sys.exit(f"error: {' '.join(str(e).split())}")
