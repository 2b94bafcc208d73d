"""Who answers a query: three implementations of one small protocol.

An :class:`Oracle` is chosen once per run (:func:`make`) and the round
function only ever calls :meth:`Oracle.label`: labels for the queried pool
ids, or ``None`` when a person has to answer first. What a person is shown is
written by :meth:`Oracle.ask` once the round's state is saved, and read back
by :meth:`Oracle.collect` when the run is started again.

* :class:`DatasetOracle` (``"dataset"``, benchmarking): the pool labels the
  dataset holds, held back until a sample is queried.
* :class:`FunctionOracle` (a function ``ids [k] int64 -> [k]`` class indices):
  called once per round; its answers are kept in the round's record.
* :class:`CsvOracle` (``"csv"``): a person, through
  ``<workdir>/queries/round_<r>.csv`` (:mod:`msal_jax.hitl`).

``recorded`` says whether the labels go into the round's record (``"labels"``
in ``rounds.jsonl``): they must for the answers that the dataset cannot
reproduce, so a resumed run rebuilds what the learner was told.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from msal_jax import hitl


class Oracle(Protocol):
  """Gives the labels of queried pool ids, or says that a person has to answer."""

  recorded: bool

  def label(self, ids: Sequence[int], round_index: int) -> list[int] | None:
    """The ids' labels, or ``None``: waiting for a person (see :meth:`ask`)."""
    ...

  def ask(self, ids: Sequence[int], round_index: int) -> str | None:
    """Shows a person the ids :meth:`label` could not answer; returns where (a path)."""
    ...

  def collect(self, ids: Sequence[int], round_index: int) -> tuple[list[int], str]:
    """The answers a person gave since :meth:`ask` and where they were read from.

    Called when the run starts again after a round that waited for a person.
    """
    ...


class _NoPerson:
  """The oracles that answer at once: nothing to ask, nothing to collect."""

  def ask(self, ids: Sequence[int], round_index: int) -> str | None:
    raise RuntimeError(f"{type(self).__name__} answers at once; nobody is asked.")

  def collect(self, ids: Sequence[int], round_index: int) -> tuple[list[int], str]:
    raise ValueError(
        f"round {round_index}'s {len(ids)} queries were asked of a person (a CSV oracle) but "
        "this run's oracle is not one: resume with al.hitl=True (oracle='csv') to read them "
        "from the query CSV."
    )


@dataclasses.dataclass(frozen=True)
class DatasetOracle(_NoPerson):
  """The dataset's own pool labels (``[N]``, all known)."""

  pool_labels: np.ndarray
  recorded: bool = False

  def label(self, ids: Sequence[int], round_index: int) -> list[int] | None:
    return [int(v) for v in self.pool_labels[np.asarray(ids, np.int64)]]


@dataclasses.dataclass(frozen=True)
class FunctionOracle(_NoPerson):
  """A user function, its answers checked to be ``C`` class indices (:func:`hitl.oracle_labels`)."""

  fn: Callable[[np.ndarray], Any]
  num_classes: int
  recorded: bool = True

  def label(self, ids: Sequence[int], round_index: int) -> list[int] | None:
    return hitl.oracle_labels(self.fn, ids, self.num_classes)


@dataclasses.dataclass(frozen=True)
class CsvOracle:
  """A person filling in the query CSV of each round under ``workdir``."""

  workdir: str
  class_names: Sequence[str]
  pool_paths: Sequence[str] | None = None
  recorded: bool = True

  def label(self, ids: Sequence[int], round_index: int) -> list[int] | None:
    return None  # always a person: the round stops after its state is saved

  def ask(self, ids: Sequence[int], round_index: int) -> str | None:
    path = hitl.csv_path(self.workdir, round_index)
    hitl.write_queries(path, ids, paths=self.pool_paths)
    return path

  def collect(self, ids: Sequence[int], round_index: int) -> tuple[list[int], str]:
    path = hitl.csv_path(self.workdir, round_index)
    given = hitl.read_labels(path, ids, self.class_names, paths=self.pool_paths)
    return [int(v) for v in given], path


def make(oracle: str | Callable[[np.ndarray], Any], *, pool_labels: np.ndarray, num_classes: int,
         class_names: Sequence[str], pool_paths: Sequence[str] | None,
         workdir: str | None) -> Oracle:
  """The oracle ``loop.run(oracle=...)`` names, after :func:`hitl.check_oracle`'s checks."""
  hitl.check_oracle(oracle, pool_labels=pool_labels, workdir=workdir)
  if callable(oracle):
    return FunctionOracle(oracle, num_classes)
  if oracle == "csv":
    return CsvOracle(workdir, class_names, pool_paths)
  return DatasetOracle(pool_labels)
