"""The timer the benchmark scripts share (imported as ``_timing``: each script's folder
is first on ``sys.path`` when it runs as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import statistics
import time


def median_seconds(fn, repeats: int, *, warm: bool = True) -> float:
  """Median wall time of ``repeats`` calls of ``fn()``, after one untimed call if ``warm``
  (compilation, first-touch pages); ``fn`` must block until its result is ready."""
  if warm:
    fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)
