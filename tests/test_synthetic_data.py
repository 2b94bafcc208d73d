"""experiments.synthetic_data writes files the real readers load, with the right sizes."""

import numpy as np
import pytest

from experiments import synthetic_data
from msal_jax import data


def _nearest_template(images, templates, block=8):
  # [block, templates, pixels] at a time: all 200 images at once against Tiny
  # ImageNet's 200 templates of 64x64x3 would be a 2 GB float32 difference.
  t = templates[None].astype(np.float32)
  out = []
  for i in range(0, len(images), block):
    d = (images[i:i + block, None].astype(np.float32) - t) ** 2
    out.append(d.reshape(len(d), len(templates), -1).mean(-1).argmin(1))
  return np.concatenate(out)


@pytest.mark.parametrize("name", ["svhn", "cifar10", "cifar100", "tinyimagenet"])
def test_written_files_load_with_their_labels(tmp_path, name):
  if name == "svhn":
    pytest.importorskip("scipy.io")
  if name == "tinyimagenet":
    pytest.importorskip("PIL")
  scale = 0.002
  synthetic_data.main(["--out", str(tmp_path), "--datasets", name, "--scale", str(scale)])
  ds = data.load(name, source="local", data_dir=str(tmp_path / name))
  n_train, n_test, classes, side = synthetic_data.SIZES[name]
  assert ds.pool_images.shape[1:] == (side, side, 3) and ds.num_classes == classes
  if name == "tinyimagenet":
    want_train, want_test = classes * max(1, int(n_train // classes * scale)), classes
  elif name == "svhn":
    want_train, want_test = int(n_train * scale), max(classes, int(n_test * scale))
  else:
    layout = 5 if name == "cifar10" else 1
    want_train = layout * max(classes, int(n_train // layout * scale))
    want_test = max(classes, int(n_test * scale))
  assert (len(ds.pool_labels), len(ds.test_labels)) == (want_train, want_test)
  for labels in (ds.pool_labels, ds.test_labels):  # balanced
    counts = np.bincount(labels, minlength=classes)
    assert counts.max() - counts.min() <= (1 if name != "cifar10" else 5)
  # Each image is its class's template plus noise: the nearest template is its label
  # (a wrong pixel layout, channel order or label mapping breaks this).
  templates = synthetic_data._templates(np.random.default_rng(0), classes, side)
  for images, labels in ((ds.pool_images, ds.pool_labels), (ds.test_images, ds.test_labels)):
    np.testing.assert_array_equal(_nearest_template(images[:200], templates), labels[:200])


def test_bad_arguments():
  with pytest.raises(SystemExit):
    synthetic_data.main(["--out", "/tmp/x", "--datasets", "imagenet"])
  with pytest.raises(SystemExit):
    synthetic_data.main(["--out", "/tmp/x", "--scale", "2"])
