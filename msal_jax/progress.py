"""Progress lines inside a round, at most one every ``every`` seconds.

Rounds of a paper run take minutes (20 epochs over thousands of labels, then
the whole pool scored); :class:`Progress` lets the loop say where it is
without flooding a log: the training epochs and the pool scoring each offer a
line, and one is printed only when ``every`` seconds have passed since the
last (or since the round began). ``every = 0`` prints none and leaves every
call of the trainer exactly as without progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Progress:
  """Rate-limited progress lines, prefixed with the run's tag."""

  def __init__(self, log: Callable[[str], None], *, every: float, prefix: str,
               clock: Callable[[], float] = time.monotonic):
    if every < 0:
      raise ValueError(f"progress every must be >= 0 seconds, got {every!r}.")
    self._log, self.every, self._prefix, self._clock = log, every, prefix, clock
    self._last = clock()
    self._context = ""

  def step(self, context: str) -> Progress:
    """Starts a new stretch of work (e.g. ``"round 3: "``): the clock restarts."""
    self._context = context
    self._last = self._clock()
    return self

  def say(self, text: str) -> None:
    """Prints ``text`` if a line is due."""
    if not self.every:
      return
    now = self._clock()
    if now - self._last >= self.every:
      self._last = now
      self._log(f"{self._prefix} {text}")

  def _epoch(self, line: str) -> None:
    self.say(self._context + " ".join(line.split()))

  def fit_kwargs(self) -> dict[str, Any]:
    """Arguments of :meth:`msal_jax.train.Trainer.fit` that report each epoch through here."""
    return {"log_every": 1, "log": self._epoch} if self.every else {}
