"""Datasets: ``load(name, source=..., data_dir=...) -> Dataset``.

Sources: ``"embedded"`` (data an installed package ships; no network),
``"local"`` (the original files in ``data_dir``), ``"tfds"`` (a prepared TFDS
dataset through ``tfds.data_source``), and ``"auto"`` (local when ``data_dir``
holds the files, else TFDS; embedded for embedded-only datasets).
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


def load(name: str, *, source: str = "auto", data_dir: str | None = None) -> Dataset:
  """Loads a dataset by name (see :data:`DATASETS`) from one source."""
  if name not in DATASETS:
    raise ValueError(f"data.name: unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}.")
  spec = DATASETS[name]
  if source not in SOURCES:
    raise ValueError(f"data.source: unknown source {source!r}; known: {', '.join(SOURCES)}.")
  if source == "auto":
    if spec.sources == ("embedded",):
      source = "embedded"
    else:
      source = "local" if idx.has_idx_files(data_dir) else "tfds"
  if source not in spec.sources:
    raise ValueError(
        f"data.source: dataset {name!r} cannot be read from {source!r}; allowed: "
        f"{', '.join(spec.sources)}."
    )
  names = spec.class_names
  if source == "embedded":
    arrays = embedded.load_mnist5k()
  elif source == "local":
    if data_dir is None:
      raise ValueError(f"data.dir: dataset {name!r} from local files needs --config.data.dir.")
    arrays = idx.load_idx_dir(data_dir, spec.num_classes)
  else:
    *arrays, tfds_names = tfds_source.load_tfds(spec.tfds_name, data_dir=data_dir)
    names = tfds_names or names
  pool_x, pool_y, test_x, test_y = arrays
  return Dataset(
      name=name, pool_images=pool_x, pool_labels=pool_y, test_images=test_x, test_labels=test_y,
      num_classes=spec.num_classes, class_names=tuple(names), mean=spec.mean, std=spec.std,
  )


__all__ = ["DATASETS", "SOURCES", "Dataset", "DatasetSpec", "load"]
