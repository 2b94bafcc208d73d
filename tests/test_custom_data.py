"""Your own data: arrays, .npz, memory-mapped .npy and image folders read back exactly."""

import os

import numpy as np
import pytest
from PIL import Image

from experiments import defaults, experiment
from msal_jax import data
from msal_jax.data import custom


def _arrays(n=12, m=5, shape=(6, 5, 3), classes=3, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n, *shape), dtype=np.uint8),
          rng.integers(0, classes, n).astype(np.int32),
          rng.integers(0, 256, (m, *shape), dtype=np.uint8),
          rng.integers(0, classes, m).astype(np.int32))


def _stats(images):
  x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255
  return x.mean(0), x.std(0)


def _same(ds, px, py, tx, ty):
  np.testing.assert_array_equal(ds.pool_images, px)
  np.testing.assert_array_equal(ds.pool_labels, py)
  np.testing.assert_array_equal(ds.test_images, tx)
  np.testing.assert_array_equal(ds.test_labels, ty)
  assert ds.pool_images.dtype == np.uint8 and ds.pool_labels.dtype == np.int32


# -- arrays ---------------------------------------------------------------------


def test_from_arrays_grayscale_stats_and_unknown_labels():
  px, py, tx, ty = _arrays(shape=(4, 4, 1))
  py[[1, 5]] = -1
  ds = data.from_arrays(px[..., 0], py, tx[..., 0], ty)  # [N, H, W]: grayscale
  _same(ds, px, py, tx, ty)
  mean, std = _stats(px)
  np.testing.assert_allclose(ds.mean, mean, rtol=1e-12)
  np.testing.assert_allclose(ds.std, std, rtol=1e-12)
  assert ds.num_classes == 3 and ds.class_names == ("0", "1", "2")
  assert ds.pool_known.tolist() == [i not in (1, 5) for i in range(12)]
  named = data.from_arrays(px, None, tx, ty, class_names=["a", "b", "c", "d"], mean=(0.5,),
                           std=(0.25,))
  assert (named.pool_labels == -1).all() and named.num_classes == 4
  assert named.mean == (0.5,) and named.std == (0.25,)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"px": np.zeros((3, 4, 4, 1), np.float32)},
         r"pool_images must be uint8 .*got dtype float32.*\(x \* 255\)"),
        ({"px": np.zeros((3, 4), np.uint8)}, r"got shape \(3, 4\)"),
        ({"py": np.array([0, 1], np.int32)}, r"pool_labels must have shape \(3,\)"),
        ({"py": np.array([0, -2, 1])}, r"pool_labels\[1\] = -2; labels must be >= 0, or -1"),
        ({"ty": np.array([0, -1])}, r"test_labels\[1\] = -1.*all test labels known"),
        ({"py": np.array([0.5, 1, 0])}, "must be integer class indices"),
        ({"ty": np.array([0, 5]), "class_names": ("a", "b")},
         r"test_labels\[1\] = 5 is not a class index in \[0, 2\)"),
        ({"py": np.zeros(3, int), "ty": np.zeros(2, int)}, "at least 2 classes are needed"),
        ({"mean": (0.5,)}, "give both mean and std"),
    ],
)
def test_from_arrays_errors(change, match):
  args = {"px": np.zeros((3, 4, 4, 1), np.uint8), "py": np.array([0, 1, 1]),
          "tx": np.zeros((2, 4, 4, 1), np.uint8), "ty": np.array([0, 1])}
  args.update(change)
  kwargs = {k: args.pop(k) for k in ("class_names", "mean") if k in args}
  with pytest.raises(ValueError, match=match):
    data.from_arrays(args["px"], args["py"], args["tx"], args["ty"], **kwargs)


# -- npz / npy ------------------------------------------------------------------


def test_npz_uncompressed_is_memory_mapped_and_exact(tmp_path):
  px, py, tx, ty = _arrays()
  path = tmp_path / "mine.npz"
  np.savez(path, pool_images=px, pool_labels=py, test_images=tx, test_labels=ty,
           class_names=np.array(["cat", "dog", "eel"]), mean=np.array([0.1, 0.2, 0.3]),
           std=np.array([0.4, 0.5, 0.6]))
  ds = data.load_npz(str(path))
  assert isinstance(ds.pool_images, np.memmap) and isinstance(ds.test_images, np.memmap)
  _same(ds, px, py, tx, ty)
  assert ds.name == "mine" and ds.class_names == ("cat", "dog", "eel")
  assert ds.mean == (0.1, 0.2, 0.3) and ds.std == (0.4, 0.5, 0.6)


def test_npz_compressed_and_keras_keys(tmp_path):
  px, py, tx, ty = _arrays(shape=(4, 4))  # grayscale [N, H, W]
  path = tmp_path / "keras.npz"
  np.savez_compressed(path, x_train=px, y_train=py.astype(np.uint8), x_test=tx, y_test=ty)
  ds = data.load_npz(str(path), class_names=("a", "b", "c"))
  assert not isinstance(ds.pool_images, np.memmap)  # compressed: read, not mapped
  _same(ds, px[..., None], py, tx[..., None], ty)
  mean, std = _stats(px[..., None])
  np.testing.assert_allclose(ds.mean, mean, rtol=1e-12)
  np.testing.assert_allclose(ds.std, std, rtol=1e-12)


def test_npy_folder_is_memory_mapped_and_exact(tmp_path):
  px, py, tx, ty = _arrays()
  py[0] = -1  # an unknown label
  for key, arr in dict(pool_images=px, pool_labels=py, test_images=tx, test_labels=ty).items():
    np.save(tmp_path / f"{key}.npy", arr)
  ds = data.load_npy_dir(str(tmp_path))
  assert isinstance(ds.pool_images, np.memmap)
  _same(ds, px, py, tx, ty)
  # The stats stream over chunks of a memory map: same as in one go.
  mean, std = _stats(px)
  np.testing.assert_allclose(ds.mean, mean, rtol=1e-12)
  np.testing.assert_allclose(ds.std, std, rtol=1e-12)


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"pool_images": 0, "test_images": 0}, "missing test_labels; it holds pool_images"),
        ({"pool_images": 0, "test_images": 0, "test_labels": 0, "pool_label": 0},
         "unknown array 'pool_label'; allowed: pool_images"),
        ({"pool_images": 0, "x_train": 0, "test_images": 0, "test_labels": 0},
         "both 'pool_images' and 'x_train' give pool_images"),
    ],
)
def test_npz_key_errors(tmp_path, arrays, match):
  px, py, tx, ty = _arrays()
  real = {"pool_images": px, "x_train": px, "test_images": tx, "test_labels": ty,
          "pool_label": py}
  np.savez(tmp_path / "bad.npz", **{k: real[k] for k in arrays})
  with pytest.raises(ValueError, match=match):
    data.load_npz(str(tmp_path / "bad.npz"))


def test_npz_file_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    data.load_npz(str(tmp_path / "none.npz"))
  (tmp_path / "junk.npz").write_bytes(b"not a zip")
  with pytest.raises(ValueError, match="junk.npz: not a readable .npz file"):
    data.load_npz(str(tmp_path / "junk.npz"))
  px, py, tx, ty = _arrays()
  np.savez(tmp_path / "float.npz", pool_images=px / 255.0, test_images=tx, test_labels=ty)
  with pytest.raises(ValueError, match="float.npz: .*pool_images must be uint8"):
    data.load_npz(str(tmp_path / "float.npz"))


# -- image folder ---------------------------------------------------------------


def _save(path, array):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(path)


def _folder(root, channels=3, size=(6, 5)):
  """train/<cls>/, test/<cls>/ and unlabeled/ PNGs; returns what they hold, in id order."""
  rng = np.random.default_rng(1)
  img = lambda: rng.integers(0, 256, (*size, channels), dtype=np.uint8)  # noqa: E731
  want = {"pool": [], "pool_y": [], "paths": [], "test": [], "test_y": []}
  for label, cls in enumerate(["ant", "bee"]):
    for i in range(3 - label):
      a = img()
      _save(os.path.join(root, "train", cls, f"{i}.png"), a)
      want["pool"].append(a)
      want["pool_y"].append(label)
      want["paths"].append(f"train/{cls}/{i}.png")
    a = img()
    _save(os.path.join(root, "test", cls, "t.png"), a)
    want["test"].append(a)
    want["test_y"].append(label)
  for name in ("u1.png", "u0.png"):
    a = img()
    _save(os.path.join(root, "unlabeled", name), a)
  for name in ("u0.png", "u1.png"):  # ids follow the sorted file names
    with Image.open(os.path.join(root, "unlabeled", name)) as im:
      want["pool"].append(np.asarray(im).reshape(*size, channels))
    want["pool_y"].append(-1)
    want["paths"].append(f"unlabeled/{name}")
  open(os.path.join(root, "train", "ant", "notes.txt"), "w").close()  # not an image: skipped
  return want


@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder_reads_back_exactly(tmp_path, channels):
  want = _folder(str(tmp_path), channels)
  ds = data.load_folder(str(tmp_path))
  assert ds.class_names == ("ant", "bee") and ds.image_shape == (6, 5, channels)
  np.testing.assert_array_equal(ds.pool_images, np.stack(want["pool"]))
  np.testing.assert_array_equal(ds.pool_labels, want["pool_y"])
  np.testing.assert_array_equal(ds.test_images, np.stack(want["test"]))
  np.testing.assert_array_equal(ds.test_labels, want["test_y"])
  assert ds.pool_paths == tuple(want["paths"])
  assert ds.name == os.path.basename(str(tmp_path))


def test_image_folder_sizes_classes_and_errors(tmp_path):
  _folder(str(tmp_path))
  _save(str(tmp_path / "train" / "bee" / "big.png"), np.zeros((9, 9, 3), np.uint8))
  with pytest.raises(ValueError, match=r"big.png: image of 9x9 pixels.*data.image_size"):
    data.load_folder(str(tmp_path))
  ds = data.load_folder(str(tmp_path), image_size=(4, 3), channels=1,
                        class_names=("bee", "ant", "cow"))
  assert ds.image_shape == (4, 3, 1) and ds.num_classes == 3
  assert ds.pool_labels.tolist() == [0, 0, 0, 1, 1, 1, -1, -1]  # bee first now
  with pytest.raises(ValueError, match=r"class folders \['ant'\] are not in class_names"):
    data.load_folder(str(tmp_path), image_size=(4, 3), class_names=("bee",))
  (tmp_path / "train" / "ant" / "broken.png").write_bytes(b"\x89PNG broken")
  with pytest.raises(ValueError, match="broken.png: cannot read the image"):
    data.load_folder(str(tmp_path), image_size=(4, 3))
  with pytest.raises(FileNotFoundError, match="must hold train/<class>/ and test/<class>/"):
    data.load_folder(str(tmp_path / "train"))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    data.load_folder(str(tmp_path / "nope"))


# -- through the config -----------------------------------------------------------


def test_config_sources_and_their_errors(tmp_path):
  px, py, tx, ty = _arrays()
  np.savez(tmp_path / "d.npz", pool_images=px, pool_labels=py, test_images=tx, test_labels=ty)
  config = defaults.get_config()
  config.data.source = "npz"
  config.data.path = str(tmp_path / "d.npz")
  config.data.class_names = ("x", "y", "z")
  exp = experiment.Experiment.from_config(config)
  assert exp.data_path == str(tmp_path / "d.npz") and exp.data_options == {
      "class_names": ("x", "y", "z")}
  ds = data.load_custom(exp.source, exp.data_path, **exp.data_options)
  _same(ds, px, py, tx, ty)
  assert ds.class_names == ("x", "y", "z")

  cases = [
      ({"source": "npz"}, ValueError, "data.path: data.source='npz' needs the .npz file"),
      ({"source": "npz", "path": str(tmp_path / "no.npz")}, FileNotFoundError,
       "data.path: file .* does not exist"),
      ({"source": "folder"}, ValueError, r"data.dir: data.source='folder' needs the image"),
      ({"source": "folder", "dir": str(tmp_path), "image_size": (3,)}, ValueError,
       r"data.image_size must be \(H, W\)"),
      ({"source": "ftp"}, ValueError, "unknown source 'ftp'"),
  ]
  for fields, error, match in cases:
    config = defaults.get_config()
    for k, v in fields.items():
      config.data[k] = v
    with pytest.raises(error, match=match):
      experiment.Experiment.from_config(config)


def test_stats_stream_in_chunks(monkeypatch):
  px = np.random.default_rng(3).integers(0, 256, (11, 3, 2, 2), dtype=np.uint8)
  whole = custom.pixel_stats(px)
  monkeypatch.setattr(custom, "_STATS_CHUNK", 4)
  np.testing.assert_allclose(custom.pixel_stats(px), whole, rtol=1e-12)
