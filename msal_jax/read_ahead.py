"""Read-ahead: a background thread reads a pool's chunks into a bounded queue.

:class:`ChunkIterator` is what every :mod:`msal_jax.pool_source` source's
``chunks(chunk_size)`` returns: ``(start, [chunk_size, H, W, Ch])`` pairs over
the pool in order, the last one zero-padded to ``chunk_size`` (so one
compiled step serves every chunk), or with ``span=(lo, hi)`` only rows
``[lo, hi)`` of every chunk (a process's share of a chunk split over the
devices of several hosts), read up to ``prefetch`` chunks ahead by a
daemon thread, so that reading overlaps computing. It is a concept of its
own, apart from where the rows come from: a source only supplies
``read_range(start, stop) -> [stop - start, H, W, Ch]``.
"""

from __future__ import annotations

import queue
import threading
import weakref

import numpy as np

DEFAULT_PREFETCH = 2  # chunks read ahead by the background thread

_DONE = object()


def _produce(read_range, num: int, chunk_size: int, out: queue.Queue,
             stop: threading.Event, span: tuple[int, int] | None = None) -> None:
  """The read-ahead thread: puts ``(start, chunk)``, then ``_DONE`` or the error raised.

  With ``span = (lo, hi)`` each chunk is only its rows ``[start + lo, start +
  hi)`` (those past the pool's end zero), ``hi - lo`` rows.
  """

  def put(item) -> bool:
    while not stop.is_set():
      try:
        out.put(item, timeout=0.05)
        return True
      except queue.Full:
        continue
    return False

  try:
    lo, hi = (0, chunk_size) if span is None else span
    for start in range(0, num, chunk_size):
      first, stop_row = min(start + lo, num), min(start + hi, num)
      rows = read_range(first, stop_row)
      if stop_row - first < hi - lo:  # fixed shape: zero rows after the pool's end
        padded = np.zeros((hi - lo, *rows.shape[1:]), rows.dtype)
        padded[: stop_row - first] = rows
        rows = padded
      if not put((start, rows)):
        return
    put(_DONE)
  except BaseException as e:  # handed to the consumer, which re-raises it
    put(e)


class ChunkIterator:
  """Iterator of ``(start, chunk)`` read ahead by a daemon thread; a context manager.

  ``close()`` (called by ``with``, by exhausting the iterator, or when the
  iterator is garbage-collected) stops the thread: it checks a stop flag
  between chunks and never blocks on a full queue for longer than 50 ms. An
  error raised while reading is re-raised by ``next()`` in the consumer.
  """

  def __init__(self, read_range, num: int, chunk_size: int, prefetch: int,
               span: tuple[int, int] | None = None):
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
      raise ValueError(f"chunks: chunk_size must be an int >= 1, got {chunk_size!r}.")
    if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
      raise ValueError(f"chunks: prefetch must be an int >= 1, got {prefetch!r}.")
    if span is not None and not (0 <= span[0] < span[1] <= chunk_size):
      raise ValueError(f"chunks: span must be (lo, hi) with 0 <= lo < hi <= chunk_size "
                       f"{chunk_size}, got {span!r}.")
    self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
    self._stop = threading.Event()
    self.thread = threading.Thread(
        target=_produce, args=(read_range, num, chunk_size, self._queue, self._stop, span),
        name="pool-read-ahead", daemon=True)
    self.thread.start()
    # The thread holds no reference to self: dropping the iterator stops it.
    self._finalizer = weakref.finalize(self, self._stop.set)

  def __iter__(self) -> ChunkIterator:
    return self

  def __next__(self) -> tuple[int, np.ndarray]:
    if self._stop.is_set():
      raise StopIteration
    item = self._queue.get()
    if item is _DONE:
      self.close()
      raise StopIteration
    if isinstance(item, BaseException):
      self.close()
      raise item
    return item

  def close(self, timeout: float = 10.0) -> None:
    """Stops the read-ahead thread and waits for it (at most ``timeout`` seconds)."""
    self._stop.set()
    while True:  # free the queue so that a blocked put returns at once
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    if self.thread is not threading.current_thread():
      self.thread.join(timeout)

  def __enter__(self) -> ChunkIterator:
    return self

  def __exit__(self, *exc) -> None:
    self.close()
