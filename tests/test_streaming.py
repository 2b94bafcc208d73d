"""Streamed selection == in-memory selection, with memory bounded by the chunk.

Chunk sizes that do not divide the pool, chunks smaller than the candidate set,
exact ties straddling chunk boundaries, labeled rows and budgets larger than
the unlabeled pool, on numpy arrays, memory maps and a slice-recording
array-like that proves no read is larger than one chunk.
"""

import jax
import numpy as np
import pytest

from msal_jax import prototypes, query, scoring, selection, streaming

N, C = 203, 5


def _pool(seed=0, n=N, num_classes=C, frac_labeled=0.3):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, num_classes - 1)) * rng.uniform(0.2, 5.0, size=(n, 1))
  logits = rng.normal(size=(n, num_classes)) * 3
  labeled = rng.random(n) < frac_labeled
  if n > 200:  # exact ties on both sides of chunk boundaries (chunks of 64: 63 | 64, 127 | 128)
    z[[63, 64, 128, 200]] = z[10]
    logits[[63, 64, 128, 200]] = logits[10]
    labeled[[10, 63, 64, 128, 200]] = False
  return z.astype(np.float32), logits.astype(np.float32), labeled


class RecordingRows:
  """An array-like that only answers row slices and records their sizes."""

  def __init__(self, array):
    self.array, self.shape, self.dtype, self.reads = array, array.shape, array.dtype, []

  def __getitem__(self, key):
    assert isinstance(key, slice), f"not a row slice: {key!r}"
    rows = self.array[key]
    self.reads.append(len(rows))
    return rows


@pytest.mark.parametrize("chunk_size", [64, 5, 1000])
def test_msal_d_streamed_equals_in_memory(chunk_size):
  z, _, labeled = _pool()
  p = prototypes.simplex(C)
  expected = selection.msal_d(z, p, labeled, budget=9, beta=3.0).tolist()
  rows = RecordingRows(z)
  got = streaming.msal_d(rows, p, labeled, budget=9, beta=3.0, chunk_size=chunk_size)
  assert isinstance(got, jax.Array) and got.dtype == np.int32
  assert got.tolist() == expected
  assert max(rows.reads) <= chunk_size and sum(rows.reads) == N  # each row read once


def test_every_score_streamed_equals_in_memory():
  z, logits, labeled = _pool(1)
  p = prototypes.simplex(C)
  got = streaming.msal(z, p, labeled, budget=12, chunk_size=64)
  assert got.tolist() == selection.bottom_k_masked(scoring.msal(z, p), ~labeled, 12).tolist()
  got = streaming.msal(z, None, labeled, budget=12, chunk_size=64)  # the simplex, structured
  assert got.tolist() == selection.bottom_k_masked(scoring.msal(z, None), ~labeled, 12).tolist()
  for score, fn in scoring.UNCERTAINTY.items():
    got = streaming.uncertainty(logits, labeled, score=score, budget=12, chunk_size=64)
    assert got.tolist() == selection.top_k_masked(fn(logits), ~labeled, 12).tolist(), score
  expected = selection.msal_d(z, p, labeled, budget=9, beta=3.0,
                              uncertainty=scoring.margin(logits)).tolist()
  got = streaming.msal_d(z, p, labeled, budget=9, beta=3.0, logits=logits, score="margin",
                         chunk_size=64)
  assert got.tolist() == expected
  got = streaming.msal_d(z, p, labeled, budget=9, beta=3.0,
                         uncertainty=np.asarray(scoring.margin(logits)), chunk_size=64)
  assert got.tolist() == expected


def test_ties_go_to_the_lower_index_across_chunks():
  # Five equal scores at rows 10, 63, 64, 128, 200 (chunks of 64 split them
  # over four chunks): they rank as one pool-wide lax.top_k ranks them.
  scores = np.zeros(N, np.float32)
  scores[[10, 63, 64, 128, 200]] = 1.0
  labeled = np.zeros(N, bool)
  idx, _, _ = streaming.stream_top_k({"uncertainty": scores}, labeled, score="given", k=7,
                                     chunk_size=64)
  assert idx.tolist() == [10, 63, 64, 128, 200, 0, 1]
  assert idx.tolist() == selection.top_k_masked(scores, ~labeled, 7).tolist()


def test_budget_beyond_the_unlabeled_pool_pads_with_minus_one():
  z, _, _ = _pool(2, n=12)
  labeled = np.ones(12, bool)
  labeled[[3, 7, 11]] = False
  p = prototypes.simplex(C)
  for budget, beta in [(5, 1.0), (20, 2.0)]:
    expected = selection.msal_d(z, p, labeled, budget=budget, beta=beta).tolist()
    got = streaming.msal_d(z, p, labeled, budget=budget, beta=beta, chunk_size=5).tolist()
    assert got == expected and sorted(got[:3]) == [3, 7, 11] and set(got[3:]) == {-1}


def test_memmap_and_npy_rows_inputs(tmp_path):
  z, logits, labeled = _pool(3)
  np.save(tmp_path / "z.npy", z)
  p = prototypes.simplex(C)
  expected = selection.msal_d(z, p, labeled, budget=9, beta=3.0).tolist()
  memmap = np.load(tmp_path / "z.npy", mmap_mode="r")
  assert streaming.msal_d(memmap, p, labeled, budget=9, beta=3.0,
                          chunk_size=64).tolist() == expected
  rows = query.NpyRows(tmp_path / "z.npy")
  assert rows.shape == z.shape and rows.dtype == np.float32
  np.testing.assert_array_equal(rows[50:117], z[50:117])
  assert streaming.msal_d(rows, p, labeled, budget=9, beta=3.0,
                          chunk_size=64).tolist() == expected
  # read_into: what the streamed path refills its chunk buffers with
  out = np.full((67, C - 1), np.nan, np.float32)
  rows.read_into(50, out)
  np.testing.assert_array_equal(out, z[50:117])
  for bad in (np.empty((67, C), np.float32), np.empty((67, C - 1), np.float64),
              np.empty((N, C - 1), np.float32)):  # width, dtype, past the end
    with pytest.raises(ValueError, match="cannot read rows"):
      rows.read_into(50, bad)


def test_default_chunk_size_is_64_mib_of_rows_at_least_65536():
  f32 = np.dtype(np.float32)
  shaped = lambda *shape: np.broadcast_to(np.zeros((), f32), shape)  # no memory
  assert streaming.default_chunk_size({"features": shaped(10**7, 9)}) == (64 << 20) // 36
  assert streaming.default_chunk_size({"features": shaped(10**7, 99),
                                       "prototypes": np.zeros((100, 99))}) == (64 << 20) // 396
  # features and logits together: 99 + 100 floats per row
  assert streaming.default_chunk_size({"features": shaped(10, 99), "logits": shaped(10, 100)}
                                      ) == (64 << 20) // 796
  assert streaming.default_chunk_size({"logits": shaped(10, 1000)}) == 65_536  # the floor
  z, _, labeled = _pool(6)  # the default on a small pool: one chunk, the same selection
  p = prototypes.simplex(C)
  assert streaming.msal_d(z, p, labeled, budget=7, beta=2.0).tolist() == \
      selection.msal_d(z, p, labeled, budget=7, beta=2.0).tolist()


def test_chunk_buffers_are_reused_and_aligned():
  # Two host buffers per input, refilled in turn: many chunks, each chunk's
  # rows (and the padded last one's fill) exactly as in the pool.
  z, _, labeled = _pool(5)
  reader = streaming._ChunkReader(z, 40, np.dtype(np.float32), 0)
  lab = streaming._ChunkReader(labeled, 40, np.dtype(np.bool_), True)
  assert all(b.ctypes.data % streaming._ALIGN == 0 for b in reader.buffers + lab.buffers)
  for chunk, start in enumerate(range(0, N, 40)):
    stop = min(start + 40, N)
    got, got_lab = reader.read(chunk, start, stop), lab.read(chunk, start, stop)
    assert got is reader.buffers[chunk % 2]
    np.testing.assert_array_equal(got[: stop - start], z[start:stop])
    assert (got[stop - start:] == 0).all() and got_lab[stop - start:].all()
    np.testing.assert_array_equal(got_lab[: stop - start], labeled[start:stop])


def test_one_compiled_step_for_every_chunk_and_round():
  z, _, labeled = _pool(4)
  p = prototypes.simplex(C)
  before = streaming._step._cache_size()
  for seed in range(3):  # three "rounds": new masks, same shapes
    mask = np.random.default_rng(seed).random(N) < 0.5
    streaming.msal_d(z, p, mask, budget=4, beta=2.5, chunk_size=48)  # 5 chunks, last padded
  assert streaming._step._cache_size() - before == 1


def test_nonfinite_rows_error_skip_keep():
  z, _, labeled = _pool(5)
  p = prototypes.simplex(C)
  z[[150, 170]] = np.nan
  z[160, 0] = np.inf
  labeled[[150, 160, 170]] = False
  labeled[140] = True
  z[140] = np.nan  # labeled: never checked
  with pytest.raises(streaming.NonFiniteError, match="row 150 of the pool"):
    streaming.msal_d(z, p, labeled, budget=9, beta=3.0, chunk_size=64, nonfinite="error")
  # skip == the in-memory selection with those rows labeled.
  skipped = labeled.copy()
  skipped[[150, 160, 170]] = True
  expected = selection.msal_d(z, p, skipped, budget=9, beta=3.0).tolist()
  got = streaming.msal_d(z, p, labeled, budget=9, beta=3.0, chunk_size=64, nonfinite="skip")
  assert got.tolist() == expected
  _, _, info = streaming.stream_top_k({"features": z, "prototypes": p}, labeled, score="msal",
                                      k=3, chunk_size=64, nonfinite="skip")
  assert info == {"nonfinite_rows": 3, "first_nonfinite_row": 150}
  # keep == the in-memory selection as is.
  got = streaming.msal_d(z, p, labeled, budget=9, beta=3.0, chunk_size=64, nonfinite="keep")
  assert got.tolist() == selection.msal_d(z, p, labeled, budget=9, beta=3.0).tolist()


def test_argument_errors():
  z, logits, labeled = _pool(6)
  p = prototypes.simplex(C)
  with pytest.raises(ValueError, match="must be boolean"):
    streaming.msal(z, p, labeled.astype(np.int8), budget=3)
  with pytest.raises(ValueError, match="has shape"):
    streaming.msal(z[:100], p, labeled, budget=3)
  with pytest.raises(ValueError, match="chunk_size must be an int"):
    streaming.msal(z, p, labeled, budget=3, chunk_size=0)
  with pytest.raises(ValueError, match="nonfinite must be one of"):
    streaming.msal(z, p, labeled, budget=3, nonfinite="drop")
  with pytest.raises(ValueError, match="unknown score"):
    streaming.uncertainty(logits, labeled, score="bald", budget=3)
  with pytest.raises(ValueError, match="beta must be"):
    streaming.msal_d(z, p, labeled, budget=3, beta=0.5)
