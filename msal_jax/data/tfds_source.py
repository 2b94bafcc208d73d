"""TFDS datasets through ``tfds.data_source``: random access, no TensorFlow needed.

Reading needs the dataset prepared as ``array_record`` (or parquet) in
``data_dir``. Preparing TFDS's built-in datasets needs TensorFlow
(``pip install 'msal-jax[tfds]'``). Nothing here downloads: an unprepared
dataset is a ValueError that gives the command to prepare it.

Facts about tensorflow-datasets 4.9.10 this module relies on:

* ``tfds.data_source(..., download=False)`` never touches the network, but on
  an unprepared dataset it raises different errors depending on ``data_dir``
  (``NotImplementedError`` claiming a tfrecord format when ``data_dir`` is
  given, ``KeyError`` on empty splits when not), so the cause is told by
  ``builder.is_prepared()`` after the failure. Checking it *before* the call
  would break ``tfds.testing.mock_data``, under which ``is_prepared()`` is
  False but ``data_source`` works.
* ``__getitems__`` reads a batch of records about 3x faster than one
  ``ds[i]`` at a time, but under ``tfds.testing.mock_data`` it raises
  ``TypeError`` (the mock binds it without ``self``); then records are read
  one at a time.

A train split of more than ``in_memory_limit`` bytes of pixels (its record
count times record 0's image size) is not read into memory:
:func:`load_tfds` gives it as a :class:`msal_jax.pool_source.TfdsPool`
(the loop streams it) and reads its labels in one chunked pass
(:func:`read_labels`, each chunk's images dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from msal_jax import pool_source

_CHUNK = 2048  # records per __getitems__ call
_SPLITS = ("train", "test")


def prepare_command(tfds_name: str, data_dir: str | None) -> str:
  """The shell commands that prepare ``tfds_name`` as array_record in ``data_dir``."""
  where = f", data_dir={data_dir!r}" if data_dir else ""
  return (
      "pip install 'msal-jax[tfds]'\n"
      f"  python -c \"import tensorflow_datasets as tfds; tfds.builder({tfds_name!r}{where})"
      ".download_and_prepare(file_format='array_record')\""
  )


def _open(tfds_name: str, split: str, data_dir: str | None) -> Any:
  """``tfds.data_source`` of one split; a ValueError that says how to fix any failure."""
  import tensorflow_datasets as tfds  # slow import: only when this source is used

  try:
    return tfds.data_source(tfds_name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # tfds raises several types here (see the module docstring)
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
      raise ValueError(
          f"TFDS dataset {tfds_name!r} is not prepared in {builder.data_dir_root} (nothing "
          f"at {builder.data_dir}), and msal-jax never downloads. Prepare it once (needs "
          f"network and TensorFlow):\n  {prepare_command(tfds_name, data_dir)}\n"
          "or read the original files instead: --config.data.source=local "
          "--config.data.dir=/folder/with/the/files."
      ) from e
    if isinstance(e, NotImplementedError):
      file_format = getattr(builder.info.file_format, "value", builder.info.file_format)
      raise ValueError(
          f"TFDS dataset {tfds_name!r} in {builder.data_dir} is prepared as "
          f"{file_format}, which has no random access (tfds.data_source needs "
          "array_record or parquet). Prepare it again as array_record in another data_dir, "
          f"or delete {builder.data_dir} first:\n  {prepare_command(tfds_name, data_dir)}\n"
          "or read the original files instead: --config.data.source=local "
          "--config.data.dir=/folder/with/the/files."
      ) from e
    raise ValueError(
        f"TFDS dataset {tfds_name!r} in {builder.data_dir} cannot be read "
        f"({type(e).__name__}: {e}). Delete that folder and prepare it again:\n"
        f"  {prepare_command(tfds_name, data_dir)}"
    ) from e


def _records(ds: Any, keys: Sequence[int], batched: bool) -> tuple[list[Any], bool]:
  """Records ``keys`` of ``ds`` and whether batched reads still work."""
  if batched and hasattr(ds, "__getitems__"):  # else: ``len`` and ``[i]`` only
    try:
      return list(ds.__getitems__(list(keys))), True
    except TypeError:  # tfds.testing.mock_data's __getitems__ (see the module docstring)
      pass
  return [ds[i] for i in keys], False


def read_split(
    ds: Any, image_key: str = "image", label_key: str = "label"
) -> tuple[np.ndarray, np.ndarray]:
  """Reads a whole random-access split into memory.

  Args:
    ds: a ``tfds.data_source`` split (``len`` and ``[i]`` give feature dicts).
    image_key, label_key: the feature names.

  Returns:
    ``(images [N, H, W, Ch] uint8, labels [N] int32)`` in the split's order.
  """
  num = len(ds)
  if num == 0:
    raise ValueError(f"{ds!r} has no examples.")
  images, labels = [], []
  batched = True
  for start in range(0, num, _CHUNK):
    records, batched = _records(ds, range(start, min(start + _CHUNK, num)), batched)
    for record in records:
      if image_key not in record or label_key not in record:
        raise ValueError(
            f"{ds!r}: records have features {sorted(record)}, not {image_key!r} and "
            f"{label_key!r}; pass image_key/label_key."
        )
      images.append(record[image_key])
      labels.append(record[label_key])
  images_np = np.stack(images)
  if images_np.dtype != np.uint8 or images_np.ndim != 4:
    raise ValueError(
        f"{ds!r}: {image_key!r} is {images_np.dtype} {images_np.shape[1:]}, expected uint8 "
        "[H, W, Ch] images."
    )
  return images_np, np.asarray(labels).astype(np.int32)


def _pixel_bytes(ds: Any, image_key: str) -> int | None:
  """``len(ds)`` times record 0's image bytes; None when record 0 does not tell
  (then :func:`read_split` reads the split and reports what is wrong)."""
  if len(ds) == 0:
    return None
  record = ds[0]
  if not hasattr(record, "keys") or image_key not in record:
    return None
  return len(ds) * int(np.prod(np.shape(record[image_key])))


def read_labels(ds: Any, label_key: str = "label", image_key: str = "image",
                image_shape: tuple[int, int, int] | None = None) -> np.ndarray:
  """``[N] int32``: the labels of a random-access split, read in chunks, images dropped.

  Records are read ``_CHUNK`` at a time as in :func:`read_split`; only the
  labels are kept, so memory holds one chunk of records and the ``[N]``
  labels. Each record's image is checked against ``image_shape`` (``[H, W]``
  counts as ``Ch = 1``), as :class:`~msal_jax.pool_source.TfdsPool` will read it.
  """
  num = len(ds)
  if num == 0:
    raise ValueError(f"{ds!r} has no examples.")
  labels = np.empty(num, np.int64)
  batched = True
  for start in range(0, num, _CHUNK):
    records, batched = _records(ds, range(start, min(start + _CHUNK, num)), batched)
    for i, record in enumerate(records, start):
      if image_key not in record or label_key not in record:
        raise ValueError(
            f"{ds!r}: records have features {sorted(record)}, not {image_key!r} and "
            f"{label_key!r}; pass image_key/label_key."
        )
      if image_shape is not None:
        image = np.asarray(record[image_key])
        shape = image.shape + (1,) * (image.ndim == 2)
        if image.dtype != np.uint8 or shape != tuple(image_shape):
          raise ValueError(f"{ds!r}: record {i}'s {image_key!r} is {image.dtype} "
                           f"{image.shape}, expected uint8 {tuple(image_shape)} (every pool "
                           "image must have one shape).")
      labels[i] = record[label_key]
  return labels.astype(np.int32)


def load_tfds(
    tfds_name: str,
    *,
    data_dir: str | None = None,
    image_key: str = "image",
    label_key: str = "label",
    in_memory_limit: int | None = None,
) -> tuple[np.ndarray | pool_source.TfdsPool, np.ndarray, np.ndarray, np.ndarray,
           tuple[str, ...]]:
  """Reads the train and test splits of a prepared TFDS dataset, without TensorFlow.

  Args:
    tfds_name: TFDS name, e.g. ``"mnist"``.
    data_dir: TFDS data folder (the one holding ``<tfds_name>/<version>/``);
      None = TFDS's default (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
    image_key, label_key: feature names of the image and the class label.
    in_memory_limit: a train split of more than this many bytes of pixels is
      not read into memory: ``train_x`` is a
      :class:`~msal_jax.pool_source.TfdsPool` over it and ``train_y`` comes
      from :func:`read_labels`. ``None``:
      :data:`msal_jax.pool_source.IN_MEMORY_LIMIT_BYTES`; 0: always. The test
      split is always read into memory.

  Returns:
    ``(train_x [N, H, W, Ch] uint8 (or a TfdsPool), train_y [N] int32, test_x
    [M, H, W, Ch] uint8, test_y [M] int32, class_names)``, in TFDS's stored order.

  Raises:
    ValueError: the dataset is not prepared in ``data_dir`` (the message gives
      the command that prepares it), is prepared as tfrecord, or cannot be read.
  """
  limit = pool_source.in_memory_limit(in_memory_limit, "data.in_memory_limit")
  out: list[Any] = []
  names: tuple[str, ...] = ()
  for split in _SPLITS:
    ds = _open(tfds_name, split, data_dir)
    pixels = _pixel_bytes(ds, image_key) if split == "train" else None
    if pixels is not None and pixels > limit:
      pool = pool_source.TfdsPool(ds, image_key=image_key)
      out += [pool, read_labels(ds, label_key, image_key, pool.image_shape)]
    else:
      out += read_split(ds, image_key, label_key)
    names = tuple(getattr(ds.dataset_info.features[label_key], "names", None) or ())
  train_x, train_y, test_x, test_y = out
  return train_x, train_y, test_x, test_y, names
