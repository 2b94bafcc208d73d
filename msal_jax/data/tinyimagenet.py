"""Tiny ImageNet in its original folder layout (``tiny-imagenet-200.zip``, extracted).

::

  tiny-imagenet-200/
    wnids.txt                              the class WordNet ids, one a line
    train/<wnid>/images/<wnid>_<k>.JPEG    500 images per class, 64x64
    train/<wnid>/<wnid>_boxes.txt          one line per training image: file name, box
    val/images/val_<k>.JPEG                10,000 images
    val/val_annotations.txt                file name, wnid, box (tab-separated)
    test/images/                           no labels: not used

Tiny ImageNet is not in the TFDS catalogue; this folder is its only source.
As in DeepAL+ (which the paper used): the pool is the training split, the
test set is the labeled validation split, class ``c`` is line ``c`` of
``wnids.txt``, and each class's training images come in the order of its
``_boxes.txt`` (sorted file names when that file is absent). The class names
are the wnids. Images are decoded with Pillow to RGB (grayscale JPEGs are
replicated to 3 channels; DeepAL+ reads BGR with OpenCV).

Completeness: every image that ``_boxes.txt`` or ``val_annotations.txt`` lists
must exist, decode completely (a truncated JPEG is an error even when
``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is set elsewhere) and be 64x64; every
class needs training images; the annotations must name known wnids. Errors
name the file.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence

import numpy as np

FOLDER = "tiny-imagenet-200"
WNIDS = "wnids.txt"
VAL_ANNOTATIONS = os.path.join("val", "val_annotations.txt")
IMAGE_SIZE = 64


def find_root(data_dir: str | None) -> str | None:
  """``data_dir`` or ``data_dir/tiny-imagenet-200``, whichever holds ``wnids.txt``."""
  if not data_dir or not os.path.isdir(data_dir):
    return None
  for root in (data_dir, os.path.join(data_dir, FOLDER)):
    if os.path.isfile(os.path.join(root, WNIDS)):
      return root
  return None


def holds_files(data_dir: str | None) -> bool:
  """Whether ``data_dir`` is (or holds) a ``tiny-imagenet-200`` folder."""
  return find_root(data_dir) is not None


def _lines(path: str) -> list[list[str]]:
  """Non-empty lines of a text file, split on whitespace."""
  try:
    with open(path, encoding="utf-8") as f:
      return [line.split() for line in f if line.strip()]
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not a text file ({e}); the file is corrupt.") from e


def read_image(path: str, size: int = IMAGE_SIZE) -> np.ndarray:
  """One image file as ``[size, size, 3] uint8`` RGB.

  Raises:
    FileNotFoundError: no such file.
    ValueError: naming the file, when it is truncated, corrupt or not ``size x size``.
  """
  from PIL import Image, ImageFile  # imported here: only this source needs it

  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file; the folder is incomplete.")
  allow_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
  ImageFile.LOAD_TRUNCATED_IMAGES = False  # a global switch: never pad a cut file silently
  try:
    with Image.open(path) as image:
      array = np.asarray(image.convert("RGB"))  # convert() decodes the whole file
  except OSError as e:  # PIL: UnidentifiedImageError, "image file is truncated", ...
    raise ValueError(
        f"{path}: cannot decode the image ({e}); the file is truncated or corrupt."
    ) from e
  finally:
    ImageFile.LOAD_TRUNCATED_IMAGES = allow_truncated
  if array.shape != (size, size, 3):
    raise ValueError(f"{path}: image is {array.shape[1]}x{array.shape[0]}, expected {size}x{size}.")
  return array


def _read_images(paths: Sequence[str], size: int) -> np.ndarray:
  out = np.empty((len(paths), size, size, 3), np.uint8)
  for i, path in enumerate(paths):
    out[i] = read_image(path, size)
  return out


def read_wnids(root: str) -> list[str]:
  """The class wnids of ``root/wnids.txt``, in file order (class ``c`` = line ``c``)."""
  path = os.path.join(root, WNIDS)
  wnids = [parts[0] for parts in _lines(path)]
  if not wnids:
    raise ValueError(f"{path}: no class ids; the file is empty or truncated.")
  duplicates = sorted(w for w, n in collections.Counter(wnids).items() if n > 1)
  if duplicates:
    raise ValueError(f"{path}: class ids listed twice: {', '.join(duplicates)}.")
  return wnids


def _train_files(root: str, wnid: str) -> list[str]:
  images = os.path.join(root, "train", wnid, "images")
  boxes = os.path.join(root, "train", wnid, f"{wnid}_boxes.txt")
  if os.path.isfile(boxes):
    names = [parts[0] for parts in _lines(boxes)]
  elif os.path.isdir(images):
    names = sorted(n for n in os.listdir(images) if n.lower().endswith((".jpeg", ".jpg")))
  else:
    raise FileNotFoundError(
        f"{images}: no such folder, and no {boxes}; the training images of class {wnid} are "
        "missing."
    )
  if not names:
    raise ValueError(f"{boxes if os.path.isfile(boxes) else images}: no training images.")
  return [os.path.join(images, n) for n in names]


def load_tinyimagenet_dir(
    data_dir: str, num_classes: int | None = None, *, size: int = IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
  """Reads the training and validation splits of a ``tiny-imagenet-200`` folder.

  Args:
    data_dir: the ``tiny-imagenet-200`` folder, or the folder that holds it.
    num_classes: the number of classes ``wnids.txt`` must list (None: any).
    size: the side of every image.

  Returns:
    ``(train_x [N, size, size, 3] uint8, train_y [N] int32, val_x [M, size,
    size, 3] uint8, val_y [M] int32, wnids)``: the pool, the test set and the
    ``C`` class wnids (class ``c`` = ``wnids[c]``). About 110,000 JPEG files
    for the full dataset: tens of seconds.

  Raises:
    FileNotFoundError: the folder, or a file that the layout needs, is missing.
    ValueError: a file is truncated or corrupt, or the lists disagree; the
      message names the file.
  """
  root = find_root(data_dir)
  if root is None:
    raise FileNotFoundError(
        f"{data_dir!r} is not a {FOLDER} folder and does not hold one (no {WNIDS} found in "
        f"it or in {os.path.join(data_dir, FOLDER)})."
    )
  wnids = read_wnids(root)
  if num_classes is not None and len(wnids) != num_classes:
    raise ValueError(
        f"{os.path.join(root, WNIDS)} lists {len(wnids)} classes, expected {num_classes}; the "
        "file is truncated or of another dataset."
    )
  train_paths, train_labels = [], []
  for label, wnid in enumerate(wnids):
    files = _train_files(root, wnid)
    train_paths += files
    train_labels += [label] * len(files)

  annotations = os.path.join(root, VAL_ANNOTATIONS)
  if not os.path.isfile(annotations):
    raise FileNotFoundError(f"{annotations}: no such file; the validation split needs it.")
  index = {w: i for i, w in enumerate(wnids)}
  val_paths, val_labels = [], []
  seen = set()
  for lineno, parts in enumerate(_lines(annotations), start=1):
    if len(parts) < 2:
      raise ValueError(f"{annotations}, line {lineno}: expected 'file<TAB>wnid ...'.")
    name, wnid = parts[0], parts[1]
    if wnid not in index:
      raise ValueError(
          f"{annotations}, line {lineno}: class {wnid!r} is not in {WNIDS}; do the files "
          "belong together?"
      )
    if name in seen:
      raise ValueError(f"{annotations}, line {lineno}: {name} is listed twice.")
    seen.add(name)
    val_paths.append(os.path.join(root, "val", "images", name))
    val_labels.append(index[wnid])
  if not val_paths:
    raise ValueError(f"{annotations}: no annotations; the file is empty or truncated.")

  train_x = _read_images(train_paths, size)
  val_x = _read_images(val_paths, size)
  return (
      train_x, np.asarray(train_labels, np.int32), val_x, np.asarray(val_labels, np.int32),
      tuple(wnids),
  )
