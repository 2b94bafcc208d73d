"""Pool sources (array, .npy, mock TFDS, PNG folder) and the streamed pool pass (issue 19).

Every source must give the in-memory array's bytes (``read`` and ``chunks``,
zero padding included), and the streamed pass the in-memory selections of
every streamable strategy, ties included (the pool holds duplicate images).
"""

import gc
import os
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from msal_jax import models, pool_source, pool_stream, prototypes, scoring, strategies
from msal_jax.train import Trainer

N, SHAPE = 45, (6, 5, 3)
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _images(n=N, shape=SHAPE, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


class MockDataSource:
  """``tfds.data_source``-like: ``len`` and ``[i] -> {"image", "label"}``."""

  def __init__(self, images, batched=False):
    self.images, self.calls = images, 0
    if batched:
      self.__getitems__ = lambda ids: [self[i] for i in ids]

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    self.calls += 1
    return {"image": self.images[i], "label": i % 3}


def _write_pngs(folder, images):
  paths = []
  for i, im in enumerate(images):
    path = folder / f"img_{i:03d}.png"
    Image.fromarray(im).save(path)
    paths.append(str(path))
  return paths


@pytest.fixture(params=["array", "npy", "tfds", "tfds_batched", "folder"])
def pool(request, tmp_path):
  images = _images()
  if request.param == "array":
    return images, pool_source.ArrayPool(images)
  if request.param == "npy":
    np.save(tmp_path / "pool.npy", images)
    return images, pool_source.open_pool(str(tmp_path / "pool.npy"), limit_bytes=0)
  if request.param.startswith("tfds"):
    ds = MockDataSource(images, batched=request.param == "tfds_batched")
    return images, pool_source.open_pool(ds, limit_bytes=0)
  _write_pngs(tmp_path, images)
  return images, pool_source.open_pool(str(tmp_path), image_shape=SHAPE, limit_bytes=0,
                                       workers=3)


def test_read_and_chunks_equal_the_array(pool):
  images, source = pool
  assert (source.num, source.image_shape, source.dtype) == (N, SHAPE, np.uint8)
  ids = np.array([44, 0, 7, 7, 30])
  np.testing.assert_array_equal(source.read(ids), images[ids])
  assert source.read(np.array([], np.int64)).shape == (0, *SHAPE)
  got = list(source.chunks(16))
  assert [start for start, _ in got] == [0, 16, 32]
  assert all(c.shape == (16, *SHAPE) and c.dtype == np.uint8 for _, c in got)
  expected = np.zeros((48, *SHAPE), np.uint8)  # the last chunk: 13 rows, 3 zero rows
  expected[:N] = images
  np.testing.assert_array_equal(np.concatenate([c for _, c in got]), expected)
  # A process's share of each chunk (multi-host): rows [start + lo, start + hi).
  for lo, hi in ((4, 12), (8, 16), (0, 16)):
    part = list(source.chunks(16, span=(lo, hi)))
    assert [start for start, _ in part] == [0, 16, 32]
    for start, c in part:
      np.testing.assert_array_equal(c, expected[start + lo: start + hi])
  # (8, 16) of the last chunk: rows 40-44 then 3 zero rows, as in the whole chunk.
  with pytest.raises(ValueError, match=r"span must be \(lo, hi\) with 0 <= lo < hi <= "
                                       "chunk_size 16, got \\(8, 17\\)"):
    source.chunks(16, span=(8, 17))


def test_open_pool_threshold_decides_memory_or_stream(tmp_path):
  images = _images()
  path = str(tmp_path / "pool.npy")
  np.save(path, images)
  assert isinstance(pool_source.open_pool(path, limit_bytes=images.nbytes), pool_source.ArrayPool)
  streamed = pool_source.open_pool(path, limit_bytes=images.nbytes - 1)
  assert isinstance(streamed, pool_source.NpyPool) and isinstance(streamed.images, np.memmap)
  ds = MockDataSource(images)
  loaded = pool_source.open_pool(ds)  # the default limit (4 GiB): into memory
  assert isinstance(loaded, pool_source.ArrayPool)
  np.testing.assert_array_equal(loaded.images, images)
  assert isinstance(pool_source.open_pool(ds, limit_bytes=0), pool_source.TfdsPool)


def test_source_errors_name_the_problem(tmp_path):
  with pytest.raises(ValueError, match=r"ids must lie in \[0, 45\)"):
    pool_source.ArrayPool(_images()).read(np.array([45]))
  with pytest.raises(ValueError, match="uint8"):
    pool_source.ArrayPool(np.zeros((2, 3, 3, 1), np.float32))
  with pytest.raises(ValueError, match="image_shape"):
    pool_source.open_pool(str(tmp_path))  # a folder without image_shape
  paths = _write_pngs(tmp_path, _images(2))
  with pytest.raises(ValueError, match="image of 5x6 pixels, expected 4x6"):
    pool_source.FolderPool(paths, (6, 4, 3)).read(np.array([0]))
  resized = pool_source.FolderPool(paths, (6, 4, 3), resize=True).read(np.array([1]))
  with Image.open(paths[1]) as im:
    expected = np.asarray(im.resize((4, 6), Image.BILINEAR))
  np.testing.assert_array_equal(resized[0], expected)
  bad = MockDataSource(_images())
  bad.images = list(bad.images)
  bad.images[20] = np.zeros((6, 5, 1), np.uint8)
  with pytest.raises(ValueError, match=r"record 20 is uint8 \(6, 5, 1\), expected uint8 \(6, 5, 3"):
    list(pool_source.TfdsPool(bad).chunks(16))


def _read_ahead_threads():
  return [t for t in threading.enumerate() if t.name == "pool-read-ahead"]


def _wait_no_threads(timeout=5.0):
  end = time.monotonic() + timeout
  while _read_ahead_threads() and time.monotonic() < end:
    time.sleep(0.02)
  return _read_ahead_threads()


def _mapped_kb(path):
  """Resident kB of this process's mappings of ``path`` (Linux /proc/self/smaps)."""
  total, inside = 0, False
  with open("/proc/self/smaps") as f:
    for line in f:
      head = line.split()
      if "-" in head[0] and len(head) >= 5:  # a mapping's first line
        inside = line.rstrip().endswith(str(path))
      elif inside and head[0] == "Rss:":
        total += int(head[1])
  return total


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="Linux smaps")
def test_npy_reads_leave_no_pages_of_the_file_resident(tmp_path):
  # 20,000 rows of 3,072 bytes (61 MB): a pass and 2,000 scattered reads (the
  # labeled store) would keep every touched page in the resident set.
  path = tmp_path / "pool.npy"
  images = np.lib.format.open_memmap(path, "w+", np.uint8, (20_000, 32, 32, 3))
  images[::7] = 1
  images.flush()
  del images
  src = pool_source.NpyPool(str(path))
  ids = np.random.default_rng(0).choice(20_000, 2000, replace=False)
  rows = src.read(ids)
  assert rows.shape == (2000, 32, 32, 3)
  np.testing.assert_array_equal(rows[:, 0, 0, 0], (ids % 7 == 0).astype(np.uint8))
  assert _mapped_kb(path) < 64, _mapped_kb(path)  # ~14 MB without the release
  starts = [start for start, chunk in src.chunks(4096) if chunk.shape[0] == 4096]
  assert starts == [0, 4096, 8192, 12288, 16384]
  assert _mapped_kb(path) < 64, _mapped_kb(path)
  touched = np.asarray(src.images[::500]).sum()  # an unreleased read, for contrast
  assert touched >= 0 and _mapped_kb(path) > 64


def test_read_ahead_stops_when_the_consumer_stops_early_or_raises():
  source = pool_source.ArrayPool(_images())
  with source.chunks(1, prefetch=2) as chunks:
    start, _ = next(chunks)
    assert start == 0
  assert not _wait_no_threads()
  abandoned = source.chunks(1)
  next(abandoned)
  del abandoned
  gc.collect()
  assert not _wait_no_threads()

  def failing(start, valid, outputs):
    if start >= 8:
      raise RuntimeError("consumer failed")

  apply = jax.jit(lambda v, k, x, off: {"logits": x.reshape(x.shape[0], -1)[:, :2] * 1.0})
  with pytest.raises(RuntimeError, match="consumer failed"):
    pool_stream.stream_outputs(apply, None, source, chunk_size=4, consumers=[failing])
  assert not _wait_no_threads()


def test_a_read_error_reaches_the_consumer():
  class Broken(pool_source.ArrayPool):
    def _range(self, start, stop):
      if start >= 16:
        raise OSError("disk gone")
      return super()._range(start, stop)

  chunks = Broken(_images()).chunks(16)
  assert next(chunks)[0] == 0
  with pytest.raises(OSError, match="disk gone"):
    next(chunks)
  assert not _wait_no_threads()


# -- the streamed pool pass -------------------------------------------------

BATCH, CHUNK, PASSES = 8, 16, 3


def _pool_with_ties():
  images = _images(61, (8, 8, 3), seed=1)
  images[40:55] = images[5:20]  # equal outputs, so equal scores: ties across chunks
  labeled = np.zeros(61, bool)
  labeled[[0, 3, 17, 41, 60]] = True
  return images, labeled


def _trainer(head):
  net = models.make_model("small_cnn", num_classes=4, head=head, dropout_rate=0.3,
                          widths=(4,), hidden=8)
  return Trainer(net, (8, 8, 3), MEAN, STD, eval_batch_size=BATCH)


@pytest.mark.parametrize("head", ["linear", "max_sep"])
def test_streamed_selections_equal_in_memory(tmp_path, head):
  images, labeled = _pool_with_ties()
  np.save(tmp_path / "pool.npy", images)
  source = pool_source.open_pool(str(tmp_path / "pool.npy"), limit_bytes=0)
  trainer = _trainer(head)
  state = trainer.init(jax.random.PRNGKey(3))
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  protos = prototypes.simplex(4) if head == "max_sep" else None
  key_q, mc_key = jax.random.PRNGKey(7), jax.random.PRNGKey(8)
  budget, beta = 6, 2.0

  logits, feats = trainer.predict(state, jnp.asarray(images))
  mc = trainer.predict_mc(state, jnp.asarray(images), key=mc_key, passes=PASSES)
  outputs = strategies.PoolOutputs(logits=logits, features=feats, prototypes=protos,
                                   mc_logits=mc)
  names = [s.name for s in strategies.STRATEGIES.values()
           if s.head == head and s.name not in pool_stream.NEEDS_ALL_EMBEDDINGS]
  selections = {name: pool_stream.Selection(name, labeled, budget=budget, beta=beta,
                                            prototypes=protos, key=key_q) for name in names}
  preds = pool_stream.Predictions(61, labels=np.arange(61) % 4, exclude=labeled)
  ceal = {"linear": lambda o: scoring.entropy(o["logits"]),
          "max_sep": lambda o: scoring.msal(o["features"], protos)}[head]
  certainty = pool_stream.RowValues(61, ceal)
  got_out = []
  apply = pool_stream.make_apply_chunk(trainer.model.apply, MEAN, STD, batch_size=BATCH,
                                       mc_passes=PASSES)
  pool_stream.stream_outputs(
      apply, variables, source, chunk_size=CHUNK, key=mc_key,
      consumers=[preds, certainty, *selections.values(),
                 lambda s, v, o: got_out.append(jax.tree.map(lambda x: np.asarray(x), o))])

  # Every row's outputs are bitwise those of Trainer.predict / predict_mc.
  cat = {k: np.concatenate([o[k] for o in got_out], axis=1 if k == "mc_logits" else 0)
         for k in got_out[0]}
  np.testing.assert_array_equal(cat["logits"][:61], np.asarray(logits))
  np.testing.assert_array_equal(cat["features"][:61], np.asarray(feats))
  np.testing.assert_array_equal(cat["mc_logits"][:, :61], np.asarray(mc))
  pred = np.asarray(jnp.argmax(logits, -1))
  np.testing.assert_array_equal(preds.predictions, pred)
  rest = ~labeled
  assert preds.error_rate() == float(np.mean(pred[rest] != (np.arange(61) % 4)[rest]))

  families = {"linear": {"random", "entropy", "var_ratio", "bald", "ceal_entropy"},
              "max_sep": {"msal", "msal_d", "entropy_msal_d", "margin_msal", "bald_msal",
                          "ceal_msal"}}
  assert families[head] <= set(names)
  # CEAL's pseudo-labels: the in-memory mask from the streamed certainties.
  name, cut = {"linear": ("ceal_entropy", float(np.median(certainty.values))),
               "max_sep": ("ceal_msal", float(np.median(certainty.values)))}[head]
  mask = np.asarray(strategies.get(name).pseudo(outputs, jnp.asarray(labeled), cut))
  streamed = (certainty.values < cut if head == "linear" else certainty.values > cut) & ~labeled
  assert 0 < mask.sum() < 61
  np.testing.assert_array_equal(streamed, mask)
  for name in names:
    expected = np.asarray(strategies.get(name).select(key_q, outputs, jnp.asarray(labeled),
                                                      budget=budget, beta=beta))
    np.testing.assert_array_equal(selections[name].result(), expected, err_msg=name)


def test_top_k_ties_go_to_the_lowest_index():
  # Hand-made outputs: all rows of equal entropy except row 9 (highest): the
  # top 4 are 9, then the lowest unlabeled indices 0, 2, 3 (1 is labeled).
  labeled = np.zeros(12, bool)
  labeled[1] = True
  top = pool_stream.TopK("entropy", labeled, 4)
  for start in (0, 5, 10):  # chunks of 5 rows, the last padded
    logits = np.zeros((5, 3), np.float32)
    logits[:, 0] = 2.0
    if start <= 9 < start + 5:
      logits[9 - start] = 0.0  # uniform: the highest entropy
    top(start, min(5, 12 - start), {"logits": jnp.asarray(logits)})
  idx, _ = top.result()
  np.testing.assert_array_equal(idx, [9, 0, 2, 3])


def test_too_few_unlabeled_rows_pad_with_minus_one():
  top = pool_stream.TopK("margin", np.array([True, False, True]), 4)
  top(0, 3, {"logits": jnp.asarray(np.eye(3, dtype=np.float32)[:, ::-1].copy())})
  np.testing.assert_array_equal(top.result()[0], [1, -1, -1, -1])


def test_embedding_strategies_are_refused_with_the_memory_figure():
  for name in pool_stream.NEEDS_ALL_EMBEDDINGS:
    with pytest.raises(ValueError, match="needs all embeddings"):
      pool_stream.Selection(name, np.zeros(4, bool), budget=2, beta=2.0)
  # kcenter: [N, K] features + 16 lookahead columns + 4 [N] vectors, float32.
  assert pool_stream.memory_needed("kcenter", 1000, 128) == 4 * 1000 * (128 + 16 + 4)
  assert pool_stream.memory_needed("badge", 10, 8, num_classes=3) == 4 * 10 * (8 + 3 + 4)
  # kmeans, b = 5: the seedings' 10 restarts x (2 + int(log 5) = 3) candidates > 5 centres.
  assert pool_stream.memory_needed("kmeans", 10, 8, budget=5) == 4 * 10 * (8 + 30 + 4)
  assert pool_stream.memory_needed("kmeans", 10, 8, budget=100) == 4 * 10 * (8 + 100 + 4)
  assert pool_stream.memory_needed("msal", 10**9, 8) == 0
  msg = pool_stream.refusal("badge", 10_000_000, 512, num_classes=10)
  assert "'badge'" in msg and f"{4 * 10**7 * 526 / 2**30:.2f} GiB" in msg and "\n" not in msg

