"""The original-format readers (CIFAR pickles, SVHN .mat, tiny-imagenet-200), TFDS names, long tail.

Every file is made in the test, in the dataset's original layout, and read
back exactly; each format also gets its truncated / corrupt file, which must
be an error naming the file, never a short dataset.
"""

import dataclasses
import io
import os
import pickle
import struct
import tarfile

import ml_collections
import numpy as np
import pytest

from experiments import defaults, experiment
from msal_jax import data
from msal_jax.data import cifar, longtail, svhn, tinyimagenet

# ----------------------------------------------------------------------------- CIFAR


def _pstr(b: bytes) -> bytes:
  return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<I", len(b)) + b)


def _pint(i: int) -> bytes:
  return b"K" + bytes([i]) if 0 <= i < 256 else b"J" + struct.pack("<i", i)


def _pvalue(v) -> bytes:
  if isinstance(v, bytes):
    return _pstr(v)
  if isinstance(v, int):
    return _pint(v)
  if isinstance(v, list):
    return b"](" + b"".join(_pvalue(x) for x in v) + b"e"
  assert isinstance(v, np.ndarray) and v.dtype == np.uint8
  dtype = (b"cnumpy\ndtype\n" + _pstr(b"u1") + _pint(0) + _pint(1) + b"\x87R(" + _pint(3)
           + _pstr(b"|") + b"NNN" + _pint(-1) + _pint(-1) + _pint(0) + b"tb")
  shape = b"(" + b"".join(_pint(d) for d in v.shape) + b"t"
  return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _pint(0) + b"\x85"
          + _pstr(b"b") + b"\x87R(" + _pint(1) + shape + dtype + b"\x89" + _pstr(v.tobytes())
          + b"tb")


def _py2_pickle(batch: dict) -> bytes:
  """``batch`` pickled as Python 2's cPickle wrote the CIFAR files: protocol 2, byte
  strings as (SHORT_)BINSTRING, numpy arrays through ``numpy.core.multiarray``."""
  return b"\x80\x02}(" + b"".join(_pstr(k) + _pvalue(v) for k, v in batch.items()) + b"u."


def _cifar_batch(rng, n, layout, num_classes):
  images = rng.integers(0, 256, (n, 32, 32, 3), np.uint8)
  labels = rng.integers(0, num_classes, n)
  # A row: the 1,024 red, then green, then blue pixels, each plane row-major.
  rows = np.stack([np.concatenate([im[..., ch].reshape(-1) for ch in range(3)]) for im in images])
  batch = {b"batch_label": b"a batch", b"data": rows.astype(np.uint8),
           layout.label_key.encode(): [int(v) for v in labels],
           b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
  if layout is cifar.CIFAR100:
    batch[b"coarse_labels"] = [int(v) // 5 for v in labels]
  return images, labels, _py2_pickle(batch)


def _make_cifar(root, layout, num_classes, how="folder", seed=0):
  """Writes tiny batches of ``layout`` (``how``: "folder", "parent" or "archive")."""
  rng = np.random.default_rng(seed)
  sizes = dict(zip(layout.files, (3, 2, 4, 1, 2, 3) if layout is cifar.CIFAR10 else (5, 3),
                   strict=True))
  blobs, want = {}, {}
  for name, n in sizes.items():
    images, labels, blobs[name] = _cifar_batch(rng, n, layout, num_classes)
    want[name] = (images, labels)
  if how == "archive":
    with tarfile.open(os.path.join(root, layout.archive), "w:gz") as tar:
      for name, blob in [("meta", b"unused"), *blobs.items()]:
        info = tarfile.TarInfo(f"{layout.folder}/{name}")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
  else:
    folder = root if how == "folder" else os.path.join(root, layout.folder)
    os.makedirs(folder, exist_ok=True)
    for name, blob in blobs.items():
      with open(os.path.join(folder, name), "wb") as f:
        f.write(blob)
  cat = lambda names, i: np.concatenate([want[n][i] for n in names])  # noqa: E731
  return cat(layout.train, 0), cat(layout.train, 1), cat(layout.test, 0), cat(layout.test, 1)


@pytest.mark.parametrize("how", ["folder", "parent", "archive"])
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reads_back_exactly(tmp_path, name, how):
  layout, num_classes = (cifar.CIFAR10, 10) if name == "cifar10" else (cifar.CIFAR100, 100)
  train_x, train_y, test_x, test_y = _make_cifar(str(tmp_path), layout, num_classes, how)
  for source in ("local", "auto"):
    ds = data.load(name, source=source, data_dir=str(tmp_path))
    np.testing.assert_array_equal(ds.pool_images, train_x)
    np.testing.assert_array_equal(ds.pool_labels, train_y)
    np.testing.assert_array_equal(ds.test_images, test_x)
    np.testing.assert_array_equal(ds.test_labels, test_y)
  assert ds.pool_images.dtype == np.uint8 and ds.pool_labels.dtype == np.int32
  assert ds.image_shape == (32, 32, 3) and ds.num_classes == num_classes
  assert ds.num_pool == (12 if name == "cifar10" else 5)
  assert ds.mean == data.DATASETS[name].mean and len(ds.class_names) == num_classes


def test_cifar_pixel_layout():
  # Row r, column c, channel ch of image i is data[i, ch * 1024 + r * 32 + c].
  data_row = (np.arange(3072) % 251).astype(np.uint8)[None]
  blob = _py2_pickle({b"data": data_row, b"labels": [7]})
  images, labels = cifar._batch_arrays(cifar._unpickle(io.BytesIO(blob), "x"), "x", "labels", 10)
  assert images.shape == (1, 32, 32, 3) and labels.tolist() == [7]
  for r, c, ch in [(0, 0, 0), (0, 1, 0), (1, 0, 0), (31, 31, 2), (5, 17, 1)]:
    assert images[0, r, c, ch] == (ch * 1024 + r * 32 + c) % 251


def test_cifar_truncated_archive(tmp_path):
  _make_cifar(str(tmp_path), cifar.CIFAR10, 10, "archive")
  path = tmp_path / cifar.CIFAR10.archive
  raw = path.read_bytes()
  path.write_bytes(raw[: len(raw) * 2 // 3])
  with pytest.raises(ValueError, match=r"cifar-10-python.tar.gz: cannot decompress"):
    data.load("cifar10", source="local", data_dir=str(tmp_path))


def test_cifar_corrupt_archive(tmp_path):
  _make_cifar(str(tmp_path), cifar.CIFAR100, 100, "archive")
  path = tmp_path / cifar.CIFAR100.archive
  raw = bytearray(path.read_bytes())
  raw[-8] ^= 0xFF  # the CRC-32 of the content no longer checks out
  path.write_bytes(bytes(raw))
  with pytest.raises(ValueError, match=r"cifar-100-python.tar.gz: cannot decompress"):
    data.load("cifar100", source="local", data_dir=str(tmp_path))


def test_cifar_truncated_pickle_names_the_file(tmp_path):
  _make_cifar(str(tmp_path), cifar.CIFAR10, 10, "parent")
  path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
  raw = path.read_bytes()
  path.write_bytes(raw[: len(raw) - 100])
  with pytest.raises(ValueError, match=r"cifar-10-batches-py/data_batch_3: cannot unpickle"):
    data.load("cifar10", source="local", data_dir=str(tmp_path))


def test_cifar_archive_member_truncated(tmp_path):
  blob = _cifar_batch(np.random.default_rng(0), 2, cifar.CIFAR100, 100)[2]
  with tarfile.open(tmp_path / cifar.CIFAR100.archive, "w:gz") as tar:
    for name, content in [("train", blob[:-50]), ("test", blob)]:
      info = tarfile.TarInfo(f"cifar-100-python/{name}")
      info.size = len(content)
      tar.addfile(info, io.BytesIO(content))
  with pytest.raises(ValueError, match=r"tar.gz: cifar-100-python/train: cannot unpickle"):
    data.load("cifar100", source="local", data_dir=str(tmp_path))


def test_cifar_incomplete_folder_and_archive(tmp_path):
  _make_cifar(str(tmp_path), cifar.CIFAR10, 10, "folder")
  os.remove(tmp_path / "data_batch_4")
  with pytest.raises(FileNotFoundError, match="missing data_batch_4"):
    data.load("cifar10", source="local", data_dir=str(tmp_path))
  other = tmp_path / "other"
  other.mkdir()
  with tarfile.open(other / cifar.CIFAR10.archive, "w:gz") as tar:
    info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    blob = _cifar_batch(np.random.default_rng(0), 2, cifar.CIFAR10, 10)[2]
    info.size = len(blob)
    tar.addfile(info, io.BytesIO(blob))
  with pytest.raises(ValueError, match=r"archive lacks cifar-10-batches-py/data_batch_2, .*"
                                       r"cifar-10-batches-py/test_batch"):
    data.load("cifar10", source="local", data_dir=str(other))
  with pytest.raises(FileNotFoundError, match="found none of cifar-100-python.tar.gz"):
    data.load("cifar100", source="local", data_dir=str(tmp_path / "other"))


def test_cifar_inconsistent_batches(tmp_path):
  rows = np.zeros((3, 3072), np.uint8)
  cases = [
      ({b"data": rows, b"labels": [1, 2]}, r"3 images but 'labels' holds 2 labels"),
      ({b"data": rows, b"labels": [1, 2, 10]}, r"label 10 outside 0..9"),
      ({b"data": rows[:, :3000], b"labels": [1, 2, 3]}, r"expected a uint8 array \[n, 3072\]"),
      ({b"labels": [1, 2, 3]}, r"no 'data' entry"),
      ({b"data": rows, b"fine_labels": [1, 2, 3]}, r"no 'labels' entry"),
  ]
  for batch, match in cases:
    path = tmp_path / "test_batch"
    path.write_bytes(_py2_pickle(batch))
    with pytest.raises(ValueError, match=match) as err, open(path, "rb") as f:
      cifar._batch_arrays(cifar._unpickle(f, str(path)), str(path), "labels", 10)
    assert "test_batch" in str(err.value)


def test_cifar_pickles_cannot_run_code(tmp_path):
  path = tmp_path / "data_batch_1"
  path.write_bytes(pickle.dumps({b"data": os.getcwd}, protocol=2))  # a global function
  with pytest.raises(ValueError, match=r"data_batch_1: cannot unpickle.*refusing to load"), \
      open(path, "rb") as f:
    cifar._unpickle(f, str(path))
  # What Python 3 writes with protocol 2 (bytes through _codecs.encode) is still fine.
  rows = np.arange(3072, dtype=np.uint8)[None]
  blob = pickle.dumps({b"data": rows, b"labels": [3]}, protocol=2)
  batch = cifar._unpickle(io.BytesIO(blob), "x")
  np.testing.assert_array_equal(batch["data"], rows)


# ----------------------------------------------------------------------------- SVHN


def _make_svhn(root, n_train=6, n_test=4, compress=False, seed=0):
  scipy_io = pytest.importorskip("scipy.io")
  rng = np.random.default_rng(seed)
  out = {}
  for name, n in ((svhn.TRAIN, n_train), (svhn.TEST, n_test)):
    x = rng.integers(0, 256, (32, 32, 3, n), np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    y[0, 0] = 10  # the digit 0
    scipy_io.savemat(os.path.join(root, name), {"X": x, "y": y}, do_compression=compress)
    out[name] = (x, y)
  return out


@pytest.mark.parametrize("compress", [False, True])
def test_svhn_reads_back_exactly(tmp_path, compress):
  mats = _make_svhn(str(tmp_path), compress=compress)
  for source in ("local", "auto"):
    ds = data.load("svhn", source=source, data_dir=str(tmp_path))
    for images, labels, name in [(ds.pool_images, ds.pool_labels, svhn.TRAIN),
                                 (ds.test_images, ds.test_labels, svhn.TEST)]:
      x, y = mats[name]
      assert images.shape == (x.shape[3], 32, 32, 3) and images.dtype == np.uint8
      for i in range(x.shape[3]):
        np.testing.assert_array_equal(images[i], x[:, :, :, i])
      np.testing.assert_array_equal(labels, np.where(y[:, 0] == 10, 0, y[:, 0]))
      assert labels.dtype == np.int32 and labels[0] == 0
  assert ds.mean == (0.4377, 0.4438, 0.4728) and ds.class_names == tuple("0123456789")


def test_svhn_truncated_and_corrupt(tmp_path):
  _make_svhn(str(tmp_path))
  path = tmp_path / svhn.TRAIN
  raw = path.read_bytes()
  path.write_bytes(raw[: len(raw) // 2])
  with pytest.raises(ValueError, match=r"train_32x32.mat: cannot read it as a MATLAB file"):
    data.load("svhn", source="local", data_dir=str(tmp_path))
  path.write_bytes(b"not a mat file" * 20)
  with pytest.raises(ValueError, match=r"train_32x32.mat: cannot read"):
    svhn.read_mat(str(path))


def test_svhn_inconsistent_files(tmp_path):
  import scipy.io

  path = str(tmp_path / "x.mat")
  x = np.zeros((32, 32, 3, 5), np.uint8)
  cases = [
      ({"X": x, "y": np.ones((4, 1), np.uint8)}, "5 images but 4 labels"),
      ({"X": x, "y": np.zeros((5, 1), np.uint8)}, r"labels must be integers in 1..10"),
      ({"X": x, "y": np.full((5, 1), 11.0)}, r"found \[11.0, 11.0\]"),
      ({"X": x[:16], "y": np.ones((5, 1))}, r"expected uint8 \[32, 32, 3, n\]"),
      ({"X": x}, "no variable 'y'"),
  ]
  for mat, match in cases:
    scipy.io.savemat(path, mat)
    with pytest.raises(ValueError, match=match) as err:
      svhn.read_mat(path)
    assert "x.mat" in str(err.value)
  # Labels stored as doubles (1..10) are fine.
  scipy.io.savemat(path, {"X": x, "y": np.array([[10.0], [1], [2], [3], [9]])})
  assert svhn.read_mat(path)[1].tolist() == [0, 1, 2, 3, 9]


def test_svhn_missing_file(tmp_path):
  _make_svhn(str(tmp_path))
  os.remove(tmp_path / svhn.TEST)
  with pytest.raises(FileNotFoundError, match="missing test_32x32.mat"):
    data.load("svhn", data_dir=str(tmp_path))  # "auto": a .mat file is there, so local


# ----------------------------------------------------------------------------- Tiny ImageNet


def _smooth_image(rng, gray=False):
  # Smooth content: JPEG keeps it within a few levels (random noise it would not).
  yy, xx = np.mgrid[0:64, 0:64]
  base = rng.integers(0, 128) + yy + xx
  image = np.stack([base, base[::-1], base[:, ::-1]], -1) % 256
  return image[..., 0].astype(np.uint8) if gray else image.astype(np.uint8)


def _make_tiny(root, wnids, per_class=2, val=None, boxes=True, seed=0, size=64):
  """A tiny-imagenet-200 folder; returns it and ``{split: [(path, label, pixels written)]}``."""
  from PIL import Image

  rng = np.random.default_rng(seed)
  val = tuple(k % len(wnids) for k in range(4)) if val is None else val
  base = os.path.join(root, "tiny-imagenet-200")
  os.makedirs(os.path.join(base, "val", "images"))
  with open(os.path.join(base, "wnids.txt"), "w") as f:
    f.write("".join(w + "\n" for w in wnids))
  paths = {"train": [], "val": []}
  for c, wnid in enumerate(wnids):
    folder = os.path.join(base, "train", wnid, "images")
    os.makedirs(folder, exist_ok=True)
    names = [f"{wnid}_{k}.JPEG" for k in range(per_class)][::-1]  # boxes order != sorted
    written = {}
    for k, name in enumerate(names):
      written[name] = _smooth_image(rng, gray=(c + k) % 3 == 2)[:size, :size]
      Image.fromarray(written[name]).save(os.path.join(folder, name), format="JPEG", quality=95)
    with_boxes = boxes if isinstance(boxes, bool) else c in boxes
    if with_boxes:
      with open(os.path.join(base, "train", wnid, f"{wnid}_boxes.txt"), "w") as f:
        f.writelines(f"{n}\t0\t0\t63\t63\n" for n in names)
    else:
      names = sorted(names)
    paths["train"] += [(os.path.join(folder, n), c, written[n]) for n in names]
  with open(os.path.join(base, "val", "val_annotations.txt"), "w") as f:
    for k, c in enumerate(val):
      name, image = f"val_{k}.JPEG", _smooth_image(rng)
      Image.fromarray(image).save(os.path.join(base, "val", "images", name), format="JPEG",
                                  quality=95)
      f.write(f"{name}\t{wnids[c]}\t1\t2\t40\t50\n")
      paths["val"].append((os.path.join(base, "val", "images", name), c, image))
  return base, paths


def _decoded(path):
  from PIL import Image

  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"))


def test_tinyimagenet_reads_back_exactly(tmp_path):
  wnids = ["n09999999", "n01443537", "n05555555"]  # file order, not sorted
  base, paths = _make_tiny(str(tmp_path), wnids, val=(0, 1, 2, 0), boxes={0, 2})  # 1: no boxes
  for where in (str(tmp_path), base):  # the parent or the folder itself
    train_x, train_y, val_x, val_y, names = tinyimagenet.load_tinyimagenet_dir(where, 3)
    assert names == tuple(wnids)
    assert train_x.shape == (6, 64, 64, 3) and train_x.dtype == np.uint8
    assert val_x.shape == (4, 64, 64, 3) and val_y.dtype == np.int32
    np.testing.assert_array_equal(train_y, [c for _, c, _ in paths["train"]])
    np.testing.assert_array_equal(val_y, [0, 1, 2, 0])
    for images, split in ((train_x, "train"), (val_x, "val")):
      for i, (path, _, written) in enumerate(paths[split]):
        np.testing.assert_array_equal(images[i], _decoded(path))  # Pillow's decoding, exactly
        if written.ndim == 2:  # grayscale JPEG: 3 equal channels
          np.testing.assert_array_equal(images[i][..., 0], images[i][..., 2])
          written = written[..., None]
        assert np.abs(images[i].astype(int) - written).mean() < 3  # what was written, ~JPEG
  # In boxes order (k = 1, 0) for classes 0 and 2, sorted (k = 0, 1) for class 1.
  assert [os.path.basename(p) for p, _, _ in paths["train"][:4]] == [
      "n09999999_1.JPEG", "n09999999_0.JPEG", "n01443537_0.JPEG", "n01443537_1.JPEG"]
  assert sum(w.ndim == 2 for _, _, w in paths["train"]) == 2


def test_tinyimagenet_through_load(tmp_path):
  wnids = [f"n{i:08d}" for i in range(200)]
  _make_tiny(str(tmp_path), wnids, per_class=1, val=(0, 199, 5))
  ds = data.load("tinyimagenet", data_dir=str(tmp_path))  # "auto" = local: not in TFDS
  assert ds.class_names == tuple(wnids) and ds.num_classes == 200
  assert (ds.num_pool, ds.num_test, ds.image_shape) == (200, 3, (64, 64, 3))
  np.testing.assert_array_equal(ds.pool_labels, np.arange(200))
  np.testing.assert_array_equal(ds.test_labels, [0, 199, 5])
  assert ds.std == (0.2302, 0.2265, 0.2262)
  with pytest.raises(ValueError, match="cannot be read from 'tfds'"):
    data.load("tinyimagenet", source="tfds")


def test_tinyimagenet_truncated_jpeg_names_the_file(tmp_path, monkeypatch):
  from PIL import ImageFile

  base, _ = _make_tiny(str(tmp_path), ["n1", "n2"])
  path = os.path.join(base, "val", "images", "val_1.JPEG")
  with open(path, "rb") as f:
    raw = f.read()
  with open(path, "wb") as f:
    f.write(raw[: len(raw) - 200])
  # Even with Pillow told elsewhere to pad truncated files, a cut file is an error.
  monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
  with pytest.raises(ValueError, match=r"val_1.JPEG: cannot decode the image.*truncated"):
    tinyimagenet.load_tinyimagenet_dir(str(tmp_path), 2)
  assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored
  with open(path, "wb") as f:
    f.write(b"garbage" * 50)
  with pytest.raises(ValueError, match=r"val_1.JPEG: cannot decode the image"):
    tinyimagenet.load_tinyimagenet_dir(str(tmp_path), 2)


def test_tinyimagenet_incomplete_folder(tmp_path):
  base, _ = _make_tiny(str(tmp_path), ["n1", "n2", "n3"])
  os.remove(os.path.join(base, "train", "n2", "images", "n2_0.JPEG"))
  with pytest.raises(FileNotFoundError, match=r"n2_0.JPEG: no such file; the folder is incomplete"):
    tinyimagenet.load_tinyimagenet_dir(base, 3)
  with pytest.raises(ValueError, match=r"wnids.txt lists 3 classes, expected 200"):
    data.load("tinyimagenet", source="local", data_dir=base)
  missing = tmp_path / "empty"
  missing.mkdir()
  with pytest.raises(FileNotFoundError, match="is not a tiny-imagenet-200 folder"):
    data.load("tinyimagenet", source="local", data_dir=str(missing))


def test_tinyimagenet_bad_lists_and_sizes(tmp_path):
  base, _ = _make_tiny(str(tmp_path / "a"), ["n1", "n2"])
  annotations = os.path.join(base, "val", "val_annotations.txt")
  with open(annotations, "a") as f:
    f.write("val_0.JPEG\tn7\t0\t0\t1\t1\n")
  with pytest.raises(ValueError, match=r"val_annotations.txt, line 5: class 'n7' is not in"):
    tinyimagenet.load_tinyimagenet_dir(base, 2)
  base, _ = _make_tiny(str(tmp_path / "b"), ["n1", "n1"])
  with pytest.raises(ValueError, match=r"wnids.txt: class ids listed twice: n1"):
    tinyimagenet.load_tinyimagenet_dir(base)
  base, _ = _make_tiny(str(tmp_path / "c"), ["n1", "n2"], size=32)
  with pytest.raises(ValueError, match=r"n1_1.JPEG: image is 32x32, expected 64x64"):
    tinyimagenet.load_tinyimagenet_dir(base, 2)


# ----------------------------------------------------------------------------- TFDS


@pytest.mark.parametrize("name", ["svhn", "cifar10", "cifar100"])
def test_tfds_mock_data_color(tmp_path, name):
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=6):
    ds = data.load(name, source="tfds", data_dir=str(tmp_path))
  assert ds.pool_images.shape == (6, 32, 32, 3) and ds.test_images.shape == (6, 32, 32, 3)
  assert ds.pool_labels.dtype == np.int32
  assert ds.pool_labels.max() < data.DATASETS[name].num_classes
  assert ds.class_names == data.DATASETS[name].class_names


@pytest.mark.parametrize("name, tfds_name", [
    ("svhn", "svhn_cropped"), ("cifar10", "cifar10"), ("cifar100", "cifar100")])
def test_tfds_not_prepared_gives_the_command(tmp_path, name, tfds_name):
  with pytest.raises(ValueError, match="not prepared in") as err:
    data.load(name, source="tfds", data_dir=str(tmp_path))
  msg = str(err.value)
  assert "pip install 'msal-jax[tfds]'" in msg
  assert (f"tfds.builder({tfds_name!r}, data_dir={str(tmp_path)!r})"
          ".download_and_prepare(file_format='array_record')") in msg
  # "auto" with an empty folder tries TFDS, and says which local files it looked for.
  with pytest.raises(ValueError, match="holds none of .*not prepared"):
    data.load(name, data_dir=str(tmp_path))
  assert os.listdir(tmp_path) == []


def test_registry():
  specs = data.DATASETS
  assert {"mnist", "fashion_mnist", "svhn", "cifar10", "cifar100", "tinyimagenet"} <= set(specs)
  assert {n: specs[n].tfds_name for n in ("svhn", "cifar10", "cifar100", "tinyimagenet")} == {
      "svhn": "svhn_cropped", "cifar10": "cifar10", "cifar100": "cifar100", "tinyimagenet": None}
  assert specs["cifar100"].class_names[:3] == ("apple", "aquarium_fish", "baby")
  assert specs["cifar100"].class_names[-1] == "worm"
  assert len(set(specs["cifar100"].class_names)) == 100
  assert specs["cifar10"].class_names[::9] == ("airplane", "truck")
  for name, spec in specs.items():
    assert name in data.LOCAL_FORMATS or "local" not in spec.sources, name
    assert len(spec.mean) == len(spec.std) == (1 if "mnist" in name else 3), name


# ----------------------------------------------------------------------------- long tail


@pytest.mark.parametrize("n_max, classes, imbalance, total", [
    (5000, 10, 0.1, 20431), (5000, 10, 0.01, 12406),  # CIFAR-10-LT (LDAM)
    (500, 100, 0.1, 19573), (500, 100, 0.01, 10847),  # CIFAR-100-LT
])
def test_class_sizes_of_long_tailed_cifar(n_max, classes, imbalance, total):
  sizes = longtail.class_sizes(n_max, classes, imbalance)
  assert sizes.sum() == total and sizes[0] == n_max and sizes[-1] == round(n_max * imbalance)
  assert (np.diff(sizes) <= 0).all()


def test_class_sizes_exact():
  assert longtail.class_sizes(5000, 10, 0.1).tolist() == [
      5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]
  assert longtail.class_sizes(100, 3, 0.25).tolist() == [100, 50, 25]
  assert longtail.class_sizes(7, 4, 1.0).tolist() == [7, 7, 7, 7]
  assert longtail.class_sizes(9, 1, 0.1).tolist() == [9]
  with pytest.raises(ValueError, match="leaves class 3 empty"):
    longtail.class_sizes(50, 4, 0.01)
  for bad in (0, -0.1, 1.5, True, "0.1"):
    with pytest.raises(ValueError, match=r"data.imbalance must be None .* in \(0, 1\]"):
      longtail.class_sizes(100, 3, bad)
  assert longtail.check_imbalance(None) is None and longtail.check_imbalance(1) == 1.0


def test_subsample_counts_determinism_and_nesting():
  labels = np.random.default_rng(0).permutation(np.repeat(np.arange(4), 60))
  keep = longtail.subsample(labels, 4, 0.1, seed=3)
  np.testing.assert_array_equal(np.bincount(labels[keep], minlength=4), [60, 27, 12, 6])
  assert (np.diff(keep) > 0).all()  # increasing: pool order kept, no repeats
  np.testing.assert_array_equal(keep, longtail.subsample(labels, 4, 0.1, seed=3))
  assert not np.array_equal(keep, longtail.subsample(labels, 4, 0.1, seed=4))
  # A stronger imbalance with the same seed keeps a subset.
  stronger = longtail.subsample(labels, 4, 0.05, seed=3)
  np.testing.assert_array_equal(np.bincount(labels[stronger], minlength=4), [60, 22, 8, 3])
  assert set(stronger) <= set(keep)
  # n_max defaults to the smallest class; a class short of its share is an error.
  np.testing.assert_array_equal(
      np.bincount(labels[longtail.subsample(labels, 4, 0.5, n_max=40)], minlength=4),
      [40, 31, 25, 20])
  with pytest.raises(ValueError, match="class 0 has 60 samples, fewer than .* 61"):
    longtail.subsample(labels, 4, 0.5, n_max=61)


def test_long_tailed_dataset_only_changes_the_pool():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 20).astype(np.int32)
  images = rng.integers(0, 256, (60, 4, 4, 1), np.uint8)
  ds = data.Dataset("toy", images, labels, images[:5], labels[:5], 3, ("a", "b", "c"), (0.5,),
                    (0.2,))
  lt = longtail.long_tailed(ds, 0.25, seed=1)
  np.testing.assert_array_equal(np.bincount(lt.pool_labels), [20, 10, 5])
  keep = longtail.subsample(labels, 3, 0.25, seed=1)
  np.testing.assert_array_equal(lt.pool_images, images[keep])
  assert lt.test_images is ds.test_images and lt.name == "toy_lt0.25" and lt.pool_paths is None
  paths = tuple(f"img_{i}.png" for i in range(60))
  with_paths = longtail.long_tailed(dataclasses.replace(ds, pool_paths=paths), 0.25, seed=1)
  assert with_paths.pool_paths == tuple(paths[i] for i in keep)
  unknown = dataclasses.replace(ds, pool_labels=np.where(labels == 2, -1, labels).astype(np.int32))
  with pytest.raises(ValueError, match="needs every pool label, but 20 are unknown"):
    longtail.long_tailed(unknown, 0.25)


def test_experiment_subsamples_the_pool_only(tmp_path, monkeypatch):
  config = defaults.get_config()
  config.data.imbalance = 0.5
  config.al.initial, config.al.batch, config.al.budget = 10, 10, 10
  exp = experiment.Experiment.from_config(config)
  assert (exp.imbalance, exp.imbalance_seed) == (0.5, 0)
  seen = {}

  class Stop(Exception):
    pass

  def fake_run(dataset, **kwargs):
    seen["dataset"] = dataset
    raise Stop

  monkeypatch.setattr(experiment.loop, "run", fake_run)
  labels = np.repeat(np.arange(10, dtype=np.int32), 30)
  images = np.zeros((300, 28, 28, 1), np.uint8)
  full = data.Dataset("mnist5k", images, labels, images[:7], labels[:7], 10, tuple("0123456789"),
                      (0.5,), (0.2,))
  with pytest.raises(Stop):
    experiment.run(exp, str(tmp_path), log=lambda s: None, dataset=full)
  got = seen["dataset"]
  np.testing.assert_array_equal(
      np.bincount(got.pool_labels, minlength=10), longtail.class_sizes(30, 10, 0.5))
  assert got.num_test == 7 and got.name == "mnist5k_lt0.5"
  for bad, match in [(2.0, "data.imbalance must be"), ("x", "data.imbalance must be")]:
    bad_config = ml_collections.ConfigDict(config.to_dict(), type_safe=False)
    bad_config.data.imbalance = bad
    with pytest.raises(ValueError, match=match):
      experiment.Experiment.from_config(bad_config)
  config.data.imbalance_seed = -1
  with pytest.raises(ValueError, match="data.imbalance_seed must be an integer >= 0"):
    experiment.Experiment.from_config(config)
