"""The loop on a pool streamed from its source equals the loop with the pool in memory (issue 19).

The pool is the 300 tiny digits of tests/loop_fixtures.py, written as a
``.npy`` and memory-mapped (or served by a mock TFDS source or a PNG folder),
and forced to stream (threshold 0) in chunks of 2 eval batches (3 chunks, the
last one padded). The result files must be the recorded in-memory fixtures
(tests/fixtures/loop/<case>.json) byte for byte: queries, accuracies, error
rates, the t-SNE sample's features, and the killed-and-resumed run.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import loop_fixtures
import numpy as np
import pytest
from PIL import Image

from msal_jax import kcenter, loop, pool_source, streamed_pool


@pytest.fixture(scope="module")
def tiny(mnist5k_head):
  return mnist5k_head(300, 100, "tiny")


@pytest.fixture
def memmapped(tiny, tmp_path):
  """The tiny set with its pool as a memory-mapped ``.npy``."""
  path = tmp_path / "pool.npy"
  np.save(path, np.asarray(tiny.pool_images))
  return dataclasses.replace(tiny, pool_images=np.load(path, mmap_mode="r"))


@pytest.fixture
def streamed(monkeypatch):
  """Every memory map / source streams (threshold 0), in chunks of 2 eval batches."""
  monkeypatch.setattr(pool_source, "IN_MEMORY_LIMIT_BYTES", 0)
  monkeypatch.setattr(streamed_pool, "CHUNK_BATCHES", 2)


def _recorded(name):
  with open(os.path.join(loop_fixtures.FIXTURES, f"{name}.json")) as f:
    return json.load(f)


def _got(files):
  return json.loads(json.dumps(files))  # through JSON, as recorded


# A streamed run compiles one pool step (no pool-sized eval_step, no select).
STREAMED_TRACES = {"init": 1, "shuffle": 1, "train_step": 1, "eval_step": 1, "pool_step": 1}


# CEAL also compiles its pseudo-label test, and a train step per size class of
# the training store: ceal_entropy trains on none, then 8 and 113 pseudo-labels
# (0, 8 and 128 extra rows: 3 classes); ceal_msal on none, 270, 260 (0, 512, 512).
CEAL_TRACES = {"ceal_entropy": {**STREAMED_TRACES, "pseudo": 1, "train_step": 3},
               "ceal_msal": {**STREAMED_TRACES, "pseudo": 1, "train_step": 2}}


def _same_but_traces(got, expected, traces=STREAMED_TRACES):
  """The result files equal, but for the compile counts, which differ by design."""
  got, expected = _got(got), json.loads(json.dumps(expected))
  assert got["summary"].pop("traces") == traces
  expected["summary"].pop("traces")
  assert got == expected


@pytest.mark.parametrize("name", ["entropy", "msal_d", "resumed", "ceal_entropy", "ceal_msal"])
def test_streamed_run_reproduces_the_in_memory_fixture(tmp_path, memmapped, streamed, name):
  # msal_d also saves the t-SNE sample (rounds 0 and 2); resumed: margin
  # killed from the log after round 1, then resumed. (bald, MC dropout: on
  # the image folder below.)
  # ceal_*: thresholds that pseudo-label (8 then 113, 270 then 260 samples),
  # read from the source for the round that trains on them.
  got = loop_fixtures.run_case(name, loop, memmapped, str(tmp_path / "run"))
  _same_but_traces(got, _recorded(name), CEAL_TRACES.get(name, STREAMED_TRACES))


def test_streamed_msal_equals_in_memory(tmp_path, tiny, memmapped):
  kw = dict(strategy="msal", seed=4, log=lambda s: None, **loop_fixtures._settings(loop, rounds=1))
  loop.run(tiny, workdir=str(tmp_path / "mem"), **kw)
  got = loop.run(memmapped, workdir=str(tmp_path / "stream"), in_memory_limit=0, **kw)
  assert len(got["rounds"][0]["queried"]) == 10
  _same_but_traces(loop_fixtures._files(str(tmp_path / "stream")),
                   loop_fixtures._files(str(tmp_path / "mem")))


def test_the_threshold_decides_once_in_build(memmapped):
  kw = dict(strategy="entropy", seed=0, **loop_fixtures._settings(loop))
  nbytes = memmapped.pool_images.nbytes
  run, _ = loop.build(memmapped, in_memory_limit=nbytes, **kw)
  assert run.stream is None and run.pool_images.shape == memmapped.pool_images.shape
  run, _ = loop.build(memmapped, in_memory_limit=nbytes - 1, **kw)
  assert run.pool_images is None and run.stream.store.images.shape == (40, 28, 28, 1)
  with pytest.raises(ValueError, match="in_memory_limit must be an int >= 0"):
    loop.build(memmapped, in_memory_limit=-1, **kw)


class _Unread:
  """A PoolSource of 600,000 images (470 MB) that must never be read."""

  num, image_shape, dtype = 600_000, (28, 28, 1), np.dtype(np.uint8)

  def read(self, ids):
    raise AssertionError("read")

  def chunks(self, chunk_size, *, prefetch=2):
    raise AssertionError("chunks")


def test_a_strategy_needing_all_embeddings_is_refused_with_its_memory(tiny):
  num = _Unread.num
  big = dataclasses.replace(tiny, pool_images=_Unread(), pool_labels=np.zeros(num, np.int32))
  settings = loop_fixtures._settings(loop)
  net = settings["model"].build(10, "linear", (28, 28, 1))
  x = jnp.zeros((1, 28, 28, 1), jnp.float32)
  feats = net.apply(net.init(jax.random.PRNGKey(0), x), x)[1]
  k = feats.shape[1]
  need = 4 * num * (k + 4 + kcenter.KCENTER_LOOKAHEAD)  # [N, K] + 4 [N] + [N, lookahead]
  with pytest.raises(ValueError, match=(
      rf"strategy 'kcenter' needs the embeddings of the whole pool in memory \(at least "
      rf"{need / 2**30:.2f} GiB for N={num}, K={k}\)")):
    loop.build(big, strategy="kcenter", seed=0, in_memory_limit=1 << 28, **settings)
  # CEAL streams (tested above): its build reads nothing of the pool.
  run, _ = loop.build(big, strategy="ceal_entropy", seed=0, in_memory_limit=1 << 28, **settings)
  assert run.stream is not None


class _MockTfds:
  """``tfds.data_source``-like: ``len`` and ``[i] -> {"image", "label"}``."""

  def __init__(self, images):
    self.images = images

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return {"image": self.images[i], "label": 0}


def test_mock_tfds_pool_reproduces_entropy(tmp_path, tiny, streamed):
  source = pool_source.TfdsPool(_MockTfds(np.asarray(tiny.pool_images)))
  ds = dataclasses.replace(tiny, pool_images=source)
  got = loop_fixtures.run_case("entropy", loop, ds, str(tmp_path / "run"))
  _same_but_traces(got, _recorded("entropy"))


def test_image_folder_pool_reproduces_bald(tmp_path, tiny, streamed):
  paths = []
  for i, im in enumerate(np.asarray(tiny.pool_images)):
    paths.append(str(tmp_path / f"{i:03d}.png"))
    Image.fromarray(im[:, :, 0]).save(paths[-1])  # PNG: lossless
  source = pool_source.FolderPool(paths, (28, 28, 1), workers=2)
  ds = dataclasses.replace(tiny, pool_images=source)
  got = loop_fixtures.run_case("bald", loop, ds, str(tmp_path / "run"))
  _same_but_traces(got, _recorded("bald"))


def test_active_learner_streams_a_memory_mapped_pool(tmp_path, tiny):
  import msal_jax

  path = tmp_path / "pool.npy"
  np.save(path, np.asarray(tiny.pool_images))
  kw = dict(strategy="entropy", initial=20, budget=10, batch=10, epochs=1, batch_size=16,
            eval_batch_size=64, model_kwargs=dict(loop_fixtures.TINY_TRUNK), log=None)
  test = (np.asarray(tiny.test_images), np.asarray(tiny.test_labels))
  labels = np.asarray(tiny.pool_labels)
  mapped = msal_jax.ActiveLearner("small_cnn", (np.load(path, mmap_mode="r"), labels), test,
                                  in_memory_limit=0, **kw).run()
  held = msal_jax.ActiveLearner("small_cnn", (np.asarray(tiny.pool_images), labels), test,
                                **kw).run()
  assert mapped["traces"].get("pool_step") == 1  # it did stream
  assert [r["queried"] for r in mapped["rounds"]] == [r["queried"] for r in held["rounds"]]
  assert mapped["accuracies"] == held["accuracies"]
  with pytest.raises(ValueError, match="in_memory_limit must be None or an integer >= 0"):
    msal_jax.ActiveLearner("small_cnn", (np.asarray(tiny.pool_images), labels), test,
                           in_memory_limit=-1, **kw)
