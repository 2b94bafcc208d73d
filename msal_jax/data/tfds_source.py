"""TFDS datasets through ``tfds.data_source``: random access, no TensorFlow needed.

Reading needs the dataset prepared as ``array_record`` (or parquet) in
``data_dir``; preparing TFDS's built-in datasets needs TensorFlow
(``pip install 'msal-jax[tfds]'``). Nothing here downloads: an unprepared
dataset is an error that gives the command to prepare it.
"""

from __future__ import annotations

import numpy as np


def _prepare_command(tfds_name: str, data_dir: str | None) -> str:
  where = f", data_dir={data_dir!r}" if data_dir else ""
  return (
      "pip install 'msal-jax[tfds]' && python -c \"import tensorflow_datasets as tfds; "
      f"tfds.builder({tfds_name!r}{where}).download_and_prepare(file_format='array_record')\""
  )


def _open(tfds_name: str, split: str, data_dir: str | None):
  import tensorflow_datasets as tfds  # slow import: only when this source is used

  try:
    return tfds.data_source(tfds_name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # tfds raises several types here; all mean "cannot read it"
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
      raise ValueError(
          f"TFDS dataset {tfds_name!r} is not prepared in {builder.data_dir_root}. Prepare it "
          f"once (needs network and TensorFlow):\n  {_prepare_command(tfds_name, data_dir)}\n"
          "or read the original files instead: --config.data.source=local "
          "--config.data.dir=/path/to/files."
      ) from e
    raise ValueError(
        f"TFDS dataset {tfds_name!r} in {builder.data_dir} cannot be read with random access "
        f"({e}). Prepare it as array_record:\n  {_prepare_command(tfds_name, data_dir)}"
    ) from e


def _read_split(ds, image_key: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
  num = len(ds)
  first = ds[0]
  images = np.empty((num, *np.shape(first[image_key])), np.uint8)
  labels = np.empty(num, np.int32)
  for i in range(num):
    record = ds[i]
    images[i] = record[image_key]
    labels[i] = record[label_key]
  return images, labels


def load_tfds(
    tfds_name: str,
    *,
    data_dir: str | None = None,
    image_key: str = "image",
    label_key: str = "label",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
  """``(train_x uint8 [N,H,W,Ch], train_y int32, test_x, test_y, class_names)``."""
  out = []
  names: tuple[str, ...] = ()
  for split in ("train", "test"):
    ds = _open(tfds_name, split, data_dir)
    out += _read_split(ds, image_key, label_key)
    names = tuple(ds.dataset_info.features[label_key].names)
  return (*out, names)
