r"""Bring your own pool: which samples to send for annotation, from features on disk.

  python -m msal_jax.query --features=feats.npy --strategy=msal_d --budget=1000 \
      [--logits=logits.npy] [--num_classes=10 | --prototypes=protos.npy] \
      [--labeled=mask.npy | --labeled_ids=ids.txt] [--beta=5] [--chunk_size=ROWS] \
      --out=ids.csv

Inputs are .npy files of any size: --features [N, C-1] (the max-separation
head's outputs before the prototypes) for the MSAL strategies, --logits [N, C]
for the uncertainty ones, both for "X(MSAL-D)". They are read --chunk_size rows
at a time and streamed, so memory stays at a few chunks plus O(beta * budget)
rows whatever N (plus the N-byte labeled mask). The ids are those the in-memory
selection gives, in query order.

Strategies: msal, msal_d, entropy, margin, least_conf (entropy_msal, margin_msal
and least_conf_msal accepted as the same thing on a max-separation network's
logits), entropy_msal_d, margin_msal_d, least_conf_msal_d, random.

Non-finite rows: a NaN or Inf in an unlabeled row's features or logits is an
error by default (--nonfinite=error): the run stops with the first such row's
index, before anything is written. --nonfinite=skip never selects such rows
(and reports how many there were); --nonfinite=keep scores them as the library
functions do (a NaN score ranks last). Labeled rows are not checked.

Output: .csv (a header line "id", then one pool index per line, in query order)
or .json ({"ids": [...], "strategy": ..., ...}). Fewer than --budget ids are
written when fewer samples are unlabeled.

The same from Python: msal_jax.query.query(features, logits, strategy=...,
budget=...) (msal_jax/pool_query.py), with the inputs read by
msal_jax/pool_files.py.
"""

# This docstring is the program's --help: plain text, no reST markup.

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from msal_jax import parallel, streaming
from msal_jax.pool_files import NpyRows, labeled_mask
from msal_jax.pool_query import STRATEGIES, query

__all__ = ["STRATEGIES", "NpyRows", "ProgressBar", "labeled_mask", "query", "write_ids"]


def flag_form(message: str, names: Sequence[str]) -> str:
  """``message`` with the Python keywords of :func:`query` written as the flags.

  ``nonfinite='skip'`` becomes ``--nonfinite=skip``, ``num_classes=10``
  ``--num_classes=10``, and a message that starts with an argument's name
  (``budget must be ...``, ``labeled_ids: ...``) starts with its flag.
  """
  alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
  message = re.sub(rf"(?<![\w.-])({alternatives})=(['\"]?)([^'\"\s,;)]*)\2",
                   r"--\1=\3", message)
  return re.sub(rf"^({alternatives})(?=:| must )", r"--\1", message)


class ProgressBar:
  """``rows done / N`` on stderr: one updating line on a terminal, else a line per 10%."""

  def __init__(self, label: str = "scoring", stream: Any = None):
    self.label, self.stream = label, stream or sys.stderr
    self.start = time.perf_counter()
    self.tty = self.stream.isatty()
    self._last_draw, self._last_decile = 0.0, -1

  def __call__(self, done: int, total: int) -> None:
    now = time.perf_counter()
    frac = done / total
    line = (f"{self.label}: {done:,}/{total:,} rows ({100 * frac:5.1f}%) "
            f"{now - self.start:6.1f} s")
    if self.tty:
      if now - self._last_draw > 0.2 or done == total:
        width = 30
        bar = "#" * int(width * frac) + "." * (width - int(width * frac))
        self.stream.write(f"\r[{bar}] {line}" + ("\n" if done == total else ""))
        self.stream.flush()
        self._last_draw = now
    elif int(10 * frac) > self._last_decile:
      self._last_decile = int(10 * frac)
      self.stream.write(line + "\n")
      self.stream.flush()


def write_ids(path: str, ids: np.ndarray, meta: dict[str, Any]) -> None:
  """``.csv`` (header ``id``) or ``.json`` (``{"ids": [...], **meta}``)."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    if path.endswith(".json"):
      json.dump({"ids": [int(i) for i in ids], **meta}, f, indent=1)
      f.write("\n")
    else:
      f.write("id\n")
      f.writelines(f"{int(i)}\n" for i in ids)
  os.replace(tmp, path)  # never a half-written file under the final name


def _define_flags():
  """The program's flags (defined only when run as a program; ``msal_jax`` reads no flags)."""
  from absl import flags

  flags.DEFINE_string("features", None, ".npy [N, C-1]: max-separation features (MSAL).")
  flags.DEFINE_string("logits", None, ".npy [N, C]: logits (uncertainty strategies).")
  flags.DEFINE_string("prototypes", None, ".npy [C, C-1]; default simplex(num_classes).")
  flags.DEFINE_integer("num_classes", None, "C; default: the features' width + 1.")
  flags.DEFINE_string("labeled", None, ".npy [N] bool (or 0/1) mask of labeled samples.")
  flags.DEFINE_string("labeled_ids", None, "already-labeled ids: .npy, or text/CSV of ints.")
  flags.DEFINE_enum("strategy", None, sorted(STRATEGIES), "query strategy.")
  flags.DEFINE_integer("budget", None, "number of ids to select.")
  flags.DEFINE_float("beta", 5.0, "MSAL-D pre-filter factor (paper: 5 or 10).")
  flags.DEFINE_integer("chunk_size", None, "rows per streamed chunk; default: 64 MiB of input "
                       "rows, at least 65536.")
  flags.DEFINE_integer("seed", 0, "key of the random strategy.")
  flags.DEFINE_enum("nonfinite", "error", list(streaming.NONFINITE),
                    "unlabeled rows with NaN/Inf: error, skip (never select) or keep.")
  flags.DEFINE_bool("all_devices", False, "split each chunk over all local devices.")
  flags.DEFINE_bool("progress", True, "progress on stderr.")
  flags.DEFINE_string("out", None, "output: .csv (one id per line) or .json.")
  flags.mark_flags_as_required(["strategy", "budget", "out"])
  return flags.FLAGS


def main(argv: Sequence[str]) -> None:
  from absl import app, logging

  logging.set_verbosity(logging.WARNING)  # no backend-probing chatter around the progress
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = _FLAGS
  if not f.out.endswith((".csv", ".json")):
    sys.exit(f"error: --out must end in .csv or .json, got {f.out!r}.")
  if not os.path.isdir(os.path.dirname(os.path.abspath(f.out))):
    sys.exit(f"error: --out: no such folder {os.path.dirname(os.path.abspath(f.out))!r}.")
  mesh = parallel.make_mesh(jax.local_devices()) if f.all_devices else None
  info: dict[str, Any] = {}
  t0 = time.perf_counter()
  try:
    ids = query(f.features, f.logits, strategy=f.strategy, budget=f.budget, labeled=f.labeled,
                labeled_ids=f.labeled_ids, prototypes=f.prototypes, num_classes=f.num_classes,
                beta=f.beta, chunk_size=f.chunk_size, seed=f.seed, nonfinite=f.nonfinite,
                mesh=mesh, progress=ProgressBar() if f.progress else None, info=info)
  except ValueError as e:  # bad input: one line, no traceback, naming the flags
    sys.exit(f"error: {flag_form(str(e), _FLAG_NAMES)}")
  if info.get("nonfinite_rows"):
    print(f"skipped {info['nonfinite_rows']:,} unlabeled rows with NaN/Inf values",
          file=sys.stderr)
  if len(ids) < f.budget:
    print(f"warning: only {len(ids):,} unlabeled samples: writing {len(ids):,} ids, not "
          f"{f.budget:,}", file=sys.stderr)
  meta = {"strategy": f.strategy, "budget": f.budget, "beta": f.beta, **info,
          "seconds": round(time.perf_counter() - t0, 3)}
  write_ids(f.out, ids, meta)
  print(f"wrote {len(ids):,} ids to {f.out} ({meta['seconds']:.1f} s)", file=sys.stderr)


# query()'s arguments that are flags of the same name, for the error messages.
_FLAG_NAMES = ("features", "logits", "prototypes", "num_classes", "labeled", "labeled_ids",
               "strategy", "budget", "beta", "chunk_size", "seed", "nonfinite")
_HELP_FLAGS = ("help", "helpshort", "helpfull", "h", "?")
_FLAGS = None


def _help_requested(argv: Sequence[str]) -> str | None:
  """``"help"`` or ``"helpfull"`` when ``argv`` asks for it (before any ``--``), else None."""
  for arg in argv[1:]:
    if arg == "--":
      return None
    name = arg.lstrip("-").split("=", 1)[0]
    if arg.startswith("-") and name in _HELP_FLAGS:
      return "helpfull" if name == "helpfull" else "help"
  return None


def run(argv: Sequence[str]) -> None:
  """The program: ``--help`` prints this module's docstring and the flags and exits 0
  (absl's own ``--help`` exits 1); anything else is :func:`main` under ``absl.app``."""
  from absl import app

  global _FLAGS
  _FLAGS = _define_flags()
  wanted = _help_requested(argv)
  if wanted:
    if wanted == "helpfull":
      flags_help = _FLAGS.get_help()
    else:  # this program's flags, without absl's header line (the file's path)
      flags_help = "\n".join(_FLAGS.main_module_help().strip().splitlines()[1:])
    print(f"{__doc__.strip()}\n\nflags:\n{flags_help}")
    sys.exit(0)
  app.run(main, list(argv))


if __name__ == "__main__":
  run(sys.argv)
