"""The launcher's sources on a pool larger than ``data.in_memory_limit`` (issue 19).

``data.source=folder`` gives a ``FolderPool`` over the pool's files and
``data.source=tfds`` a ``TfdsPool`` over the train split, never decoding the
pool whole; each is checked against the same data read into memory, and one
launcher run on an image folder with ``--config.data.in_memory_limit=0``
against the same run with the default limit.
"""

import json
import os

import numpy as np
import pytest
import test_experiment
from absl import flags as absl_flags
from ml_collections import config_flags
from PIL import Image

from experiments import defaults, experiment
from msal_jax import data, pool_source
from msal_jax.data import custom, tfds_source

N_LABELED, N_UNLABELED, N_TEST = 160, 40, 60  # pool: 200 digits, 28 x 28 x 1


@pytest.fixture(scope="module")
def digits():
  """The first embedded digits: ``(pool images, pool labels, test images, test labels)``."""
  full = data.load("mnist5k")
  n = N_LABELED + N_UNLABELED
  return (np.asarray(full.pool_images[:n]), np.asarray(full.pool_labels[:n]),
          np.asarray(full.test_images[:N_TEST]), np.asarray(full.test_labels[:N_TEST]))


def _write_folder(root, digits, unlabeled):
  """``root/train/<digit>/``, ``root/unlabeled/`` (the last ``unlabeled`` pool digits) and
  ``root/test/<digit>/`` as PNGs (lossless)."""
  px, py, tx, ty = digits
  labeled = len(px) - unlabeled
  files = [(f"train/{py[i]}/{i:04d}.png", px[i]) for i in range(labeled)]
  files += [(f"unlabeled/{i:04d}.png", px[i]) for i in range(labeled, len(px))]
  files += [(f"test/{ty[i]}/{i:04d}.png", tx[i]) for i in range(N_TEST)]
  for rel, image in files:
    os.makedirs(os.path.dirname(root / rel), exist_ok=True)
    Image.fromarray(image[:, :, 0]).save(root / rel)
  return str(root)


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory, digits):
  """The digits as an image folder: N_LABELED in train/, N_UNLABELED in unlabeled/."""
  return _write_folder(tmp_path_factory.mktemp("digits"), digits, N_UNLABELED)


def _rows(pool):
  """Every row of a pool given as an array or a PoolSource."""
  return pool if isinstance(pool, np.ndarray) else pool.read(np.arange(pool.num))


def _same_dataset(streamed, held):
  """``streamed`` (a PoolSource pool) holds exactly what ``held`` (in memory) holds."""
  assert isinstance(held.pool_images, np.ndarray)
  np.testing.assert_array_equal(_rows(streamed.pool_images), held.pool_images)
  for field in ("pool_labels", "test_images", "test_labels"):
    np.testing.assert_array_equal(getattr(streamed, field), getattr(held, field))
    assert getattr(streamed, field).dtype == getattr(held, field).dtype
  for field in ("name", "num_classes", "class_names", "mean", "std", "pool_paths"):
    assert getattr(streamed, field) == getattr(held, field), field


# ----------------------------------------------------------------------------- folder


def test_folder_over_the_limit_is_a_folder_pool_of_the_same_rows(png_folder, digits):
  px, py, tx, ty = digits
  held = data.load_folder(png_folder)
  # The in-memory load is today's: the digits, train by class then name, unlabeled last.
  order = np.argsort(py[:N_LABELED], kind="stable")
  np.testing.assert_array_equal(held.pool_images[:N_LABELED], px[order])
  np.testing.assert_array_equal(held.pool_images[N_LABELED:], px[N_LABELED:])
  np.testing.assert_array_equal(held.pool_labels,
                                np.r_[py[order], np.full(N_UNLABELED, -1)].astype(np.int32))
  assert held.pool_paths[0] == f"train/0/{order[0]:04d}.png"
  assert held.pool_paths[-1] == f"unlabeled/{len(px) - 1:04d}.png"

  streamed = data.load_folder(png_folder, in_memory_limit=0)
  pool = streamed.pool_images
  assert isinstance(pool, pool_source.FolderPool)
  assert (pool.num, pool.image_shape, pool.resize) == (len(px), (28, 28, 1), False)
  assert pool.paths == [os.path.join(png_folder, p) for p in held.pool_paths]
  _same_dataset(streamed, held)
  ids = np.array([7, 199, 0, 7])
  np.testing.assert_array_equal(pool.read(ids), held.pool_images[ids])

  # The limit is on N * H * W * Ch bytes: at it the pool is decoded, one byte under it not.
  nbytes = len(px) * 28 * 28
  assert isinstance(data.load_folder(png_folder, in_memory_limit=nbytes).pool_images,
                    np.ndarray)
  assert isinstance(data.load_folder(png_folder, in_memory_limit=nbytes - 1).pool_images,
                    pool_source.FolderPool)


def test_folder_pool_resizes_and_converts_as_the_in_memory_load(png_folder):
  # image_size and channels=3: the bytes are (200 * 20 * 24 * 3), the rows resized alike.
  kw = dict(image_size=(20, 24), channels=3)
  held = data.load_folder(png_folder, **kw)
  streamed = data.load_folder(png_folder, in_memory_limit=0, **kw)
  assert isinstance(streamed.pool_images, pool_source.FolderPool)
  assert streamed.pool_images.resize and streamed.image_shape == (20, 24, 3)
  _same_dataset(streamed, held)


def test_stats_pass_over_a_source_reads_bounded_chunks(png_folder, monkeypatch):
  held = data.load_folder(png_folder)
  pool = data.load_folder(png_folder, in_memory_limit=0).pool_images
  reads = []
  read = pool.read
  monkeypatch.setattr(pool, "read", lambda ids: reads.append(len(ids)) or read(ids))
  monkeypatch.setattr(custom, "_STATS_BYTES", 64 * 28 * 28 * 8)  # 64 images a chunk
  got = custom.pixel_stats(pool)
  assert reads == [64, 64, 64, 8]  # never the whole pool at once
  np.testing.assert_allclose(got, custom.pixel_stats(held.pool_images), rtol=1e-12)


def test_folder_of_two_sizes_fails_at_load_with_the_in_memory_error(tmp_path, png_folder):
  import shutil

  root = tmp_path / "mixed"
  shutil.copytree(png_folder, root)
  Image.fromarray(np.zeros((9, 9), np.uint8)).save(root / "unlabeled" / "zz.png")
  errors = []
  for limit in (None, 0):
    with pytest.raises(ValueError) as err:
      data.load_folder(str(root), in_memory_limit=limit)
    errors.append(str(err.value))
  assert errors[0] == errors[1]
  assert "zz.png: image of 9x9 pixels, but train/0/" in errors[0]
  assert "data.image_size=(H, W)" in errors[0]


# ----------------------------------------------------------------------------- TFDS


def test_tfds_over_the_limit_is_a_tfds_pool_with_streamed_labels(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  monkeypatch.setattr(tfds_source, "_CHUNK", 4)  # 11 records: label chunks of 4, 4, 3
  seen = []
  records = tfds_source._records
  monkeypatch.setattr(tfds_source, "_records",
                      lambda ds, keys, batched: seen.append(len(keys)) or records(ds, keys,
                                                                                   batched))
  with tfds.testing.mock_data(num_examples=11):
    held = data.load("mnist", source="tfds", data_dir=str(tmp_path))
    assert seen == [4, 4, 3] * 2  # today's: train then test, read whole
    seen.clear()
    streamed = data.load("mnist", source="tfds", data_dir=str(tmp_path), in_memory_limit=0)
    assert seen == [4, 4, 3] * 2  # the train split's labels, then the test split
    pool = streamed.pool_images
    assert isinstance(pool, pool_source.TfdsPool)
    assert (pool.num, pool.image_shape) == (11, (28, 28, 1))
    _same_dataset(streamed, held)
    ids = np.array([10, 3, 3])
    np.testing.assert_array_equal(pool.read(ids), held.pool_images[ids])
  assert held.pool_labels.shape == (11,)
  assert ((0 <= held.pool_labels) & (held.pool_labels < 10)).all()


class _MockTfds:
  """``tfds.data_source``-like: ``len`` and ``[i] -> {"image", "label"}``."""

  def __init__(self, images, labels):
    self.images, self.labels = images, labels

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return {"image": self.images[i], "label": self.labels[i]}


def test_read_labels_keeps_labels_and_checks_each_image(digits, monkeypatch):
  px, py, _, _ = digits
  monkeypatch.setattr(tfds_source, "_CHUNK", 64)
  ds = _MockTfds(list(px[:150]), list(py[:150]))
  got = tfds_source.read_labels(ds, image_shape=(28, 28, 1))
  assert got.dtype == np.int32
  np.testing.assert_array_equal(got, py[:150])
  np.testing.assert_array_equal(tfds_source.read_split(ds)[1], got)  # as the in-memory read
  ds.images[100] = np.zeros((27, 28, 1), np.uint8)
  with pytest.raises(ValueError, match=r"record 100's 'image' is uint8 \(27, 28, 1\), "
                                       r"expected uint8 \(28, 28, 1\)"):
    tfds_source.read_labels(ds, image_shape=(28, 28, 1))
  with pytest.raises(ValueError, match="not 'image' and 'target'; pass image_key/label_key"):
    tfds_source.read_labels(ds, label_key="target")


# ----------------------------------------------------------------------------- launcher


def _config(*overrides):
  """The launcher's config of test_experiment's tiny launch, parsed from its flags."""
  argv = ["run.py", "--config=" + os.path.join(test_experiment.ROOT, "configs", "mnist5k.py"),
          *test_experiment.TINY, *overrides]
  values = absl_flags.FlagValues()
  holder = config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)
  values(argv)
  return holder.value


def _launch_in_process(workdir, *overrides):
  config = _config(*overrides)
  exp = experiment.Experiment.from_config(config)
  dataset = experiment.load_dataset(exp)
  experiment.check_pool(exp, dataset)
  experiment.prepare_workdir(config, str(workdir))
  results = experiment.run(exp, str(workdir), log=lambda s: None, dataset=dataset,
                           progress_every=0)
  with open(workdir / "rounds.jsonl") as f:
    return dataset, results, [json.loads(line) for line in f]


def test_launcher_streams_an_image_folder_with_the_in_memory_results(tmp_path, digits):
  root = _write_folder(tmp_path / "digits", digits, 0)  # every label known: the data answers
  folder = ["--config.data.source=folder", f"--config.data.dir={root}",
            "--config.strategies=('msal_d',)", "--config.seeds=(0,)"]
  held_ds, held, held_rounds = _launch_in_process(tmp_path / "held", *folder)
  ds, streamed, rounds = _launch_in_process(tmp_path / "streamed", *folder,
                                            "--config.data.in_memory_limit=0")
  assert isinstance(held_ds.pool_images, np.ndarray)
  assert isinstance(ds.pool_images, pool_source.FolderPool)
  assert streamed["msal_d"][0]["traces"].get("pool_step") == 1  # it did stream
  assert held["msal_d"][0]["traces"].get("pool_step") is None
  assert [r["num_labeled"] for r in rounds] == [20, 30, 40]  # test_experiment.TINY's
  assert [len(r["queried"]) for r in rounds] == [10, 10, 0]
  for key in ("queried", "test_accuracy", "unlabeled_error_rate"):
    assert [r[key] for r in rounds] == [r[key] for r in held_rounds], key
  assert (tmp_path / "streamed" / "results.md").exists()


def test_long_tailed_subset_of_a_streamed_pool_is_refused_before_the_workdir(tmp_path, digits):
  root = _write_folder(tmp_path / "digits", digits, 0)
  config = _config("--config.data.source=folder", f"--config.data.dir={root}",
                   "--config.data.in_memory_limit=0", "--config.data.imbalance=0.5")
  exp = experiment.Experiment.from_config(config)
  dataset = experiment.load_dataset(exp)
  with pytest.raises(ValueError, match=r"data.imbalance=0.5: a long-tailed subset of a pool "
                                       r"streamed from its files \(FolderPool: more than "
                                       r"data.in_memory_limit"):
    experiment.check_pool(exp, dataset)
  config.data.in_memory_limit = None  # in memory: the subset is made as before
  experiment.check_pool(exp := experiment.Experiment.from_config(config),
                        experiment.load_dataset(exp))


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("value", [-1, True])
def test_bad_in_memory_limit_is_one_line(value):
  config = defaults.get_config()
  config.data.in_memory_limit = value
  with pytest.raises(ValueError) as err:
    experiment.Experiment.from_config(config)
  assert str(err.value) == (f"data.in_memory_limit must be an integer >= 0 (bytes of pool "
                            f"pixels; 0: always stream), got {value!r}.")


def test_in_memory_limit_reaches_the_experiment():
  assert experiment.Experiment.from_config(defaults.get_config()).in_memory_limit is None
  exp = experiment.Experiment.from_config(_config("--config.data.in_memory_limit=8589934592"))
  assert exp.in_memory_limit == 8 << 30


def test_launcher_refuses_a_bad_in_memory_limit_before_writing(tmp_path):
  workdir = tmp_path / "wd"
  proc = test_experiment._launch(workdir, "--config.data.in_memory_limit=-5")
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines() == [
      "error: data.in_memory_limit must be an integer >= 0 (bytes of pool pixels; 0: always "
      "stream), got -5."]
  assert not workdir.exists()
