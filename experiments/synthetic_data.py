r"""Full-size synthetic datasets in the original file formats, for timing runs.

The runtime of a config depends on the sizes of its data, not on the pixels.
To measure the runtime of e.g. ``configs/svhn.py:cpu`` on a machine that does
not hold SVHN, write files of the real sizes and formats and point the config
at them:

  python -m experiments.synthetic_data --out=/tmp/fake --datasets=svhn
  python -m experiments.run --config=configs/svhn.py:cpu --config.data.dir=/tmp/fake/svhn

Formats (read by the same readers as the real files, msal_jax.data):
  svhn          train_32x32.mat (73,257) and test_32x32.mat (26,032), uint8 X [32, 32, 3, n]
  cifar10       cifar-10-batches-py/: data_batch_1..5 (10,000 each), test_batch
  cifar100      cifar-100-python/: train (50,000), test (10,000), fine + coarse labels
  tinyimagenet  tiny-imagenet-200/: 500 JPEGs per class x 200 classes, 10,000 val JPEGs

Images are class-dependent (a per-class colour pattern plus noise), so a
network learns something, but accuracies on them mean nothing: use the files
for time and memory only. ``--scale`` shrinks every split (tests use it).
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Sequence

import numpy as np

# name: (train size, test size, classes, image side)
SIZES = {
    "svhn": (73_257, 26_032, 10, 32),
    "cifar10": (50_000, 10_000, 10, 32),
    "cifar100": (50_000, 10_000, 100, 32),
    "tinyimagenet": (100_000, 10_000, 200, 64),
}


def _images(rng: np.random.Generator, labels: np.ndarray, templates: np.ndarray) -> np.ndarray:
  """uint8 [n, s, s, 3]: the template of each label plus uniform noise."""
  noise = rng.integers(-48, 49, (len(labels), *templates.shape[1:]), dtype=np.int16)
  return np.clip(templates[labels].astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _templates(rng: np.random.Generator, classes: int, side: int) -> np.ndarray:
  yy, xx = np.mgrid[0:side, 0:side] / side
  out = np.empty((classes, side, side, 3), np.uint8)
  for c in range(classes):
    f = rng.uniform(0.5, 3.0, (3, 2))
    phase = rng.uniform(0, 2 * np.pi, 3)
    for ch in range(3):
      wave = np.sin(2 * np.pi * (f[ch, 0] * yy + f[ch, 1] * xx) + phase[ch])
      out[c, :, :, ch] = (127.5 + 80 * wave).astype(np.uint8)
  return out


def _labels(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
  """Balanced (every class n // classes or one more), shuffled."""
  return rng.permutation(np.arange(n) % classes)


def write_svhn(out: str, scale: float = 1.0, seed: int = 0) -> str:
  import scipy.io

  n_train, n_test, classes, side = SIZES["svhn"]
  rng = np.random.default_rng(seed)
  templates = _templates(rng, classes, side)
  os.makedirs(out, exist_ok=True)
  for name, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
    labels = _labels(rng, max(classes, int(n * scale)), classes)
    x = np.ascontiguousarray(_images(rng, labels, templates).transpose(1, 2, 3, 0))
    y = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]  # the digit 0 is label 10
    scipy.io.savemat(os.path.join(out, name), {"X": x, "y": y})
  return out


def _cifar_rows(images: np.ndarray) -> np.ndarray:
  """The CIFAR row layout: 1,024 red, then green, then blue pixels (planes row-major)."""
  return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def _write_pickle(path: str, batch: dict) -> None:
  with open(path, "wb") as f:
    # Protocol 3: bytes as bytes and arrays through numpy's _reconstruct, which
    # the CIFAR reader's restricted unpickler accepts (as it does Python 2's files).
    pickle.dump(batch, f, protocol=3)


def write_cifar(out: str, num_classes: int = 10, scale: float = 1.0, seed: int = 0) -> str:
  from msal_jax.data import cifar

  name = "cifar10" if num_classes == 10 else "cifar100"
  layout = cifar.CIFAR10 if num_classes == 10 else cifar.CIFAR100
  n_train, n_test, classes, side = SIZES[name]
  rng = np.random.default_rng(seed)
  templates = _templates(rng, classes, side)
  folder = os.path.join(out, layout.folder)
  os.makedirs(folder, exist_ok=True)
  sizes = {f: n_train // len(layout.train) for f in layout.train}
  sizes.update({f: n_test // len(layout.test) for f in layout.test})
  for file, n in sizes.items():
    labels = _labels(rng, max(classes, int(n * scale)), classes)
    batch = {b"batch_label": file.encode(), b"data": _cifar_rows(_images(rng, labels, templates)),
             layout.label_key.encode(): [int(v) for v in labels],
             b"filenames": [f"{file}_{i}.png".encode() for i in range(len(labels))]}
    if num_classes == 100:
      batch[b"coarse_labels"] = [int(v) // 5 for v in labels]
    _write_pickle(os.path.join(folder, file), batch)
  return out


def write_tinyimagenet(out: str, scale: float = 1.0, seed: int = 0) -> str:
  from PIL import Image

  n_train, n_test, classes, side = SIZES["tinyimagenet"]
  rng = np.random.default_rng(seed)
  templates = _templates(rng, classes, side)
  root = os.path.join(out, "tiny-imagenet-200")
  wnids = [f"n{c:08d}" for c in range(classes)]
  os.makedirs(os.path.join(root, "val", "images"), exist_ok=True)
  with open(os.path.join(root, "wnids.txt"), "w") as f:
    f.write("".join(w + "\n" for w in wnids))
  per_class = max(1, int(n_train // classes * scale))
  for c, wnid in enumerate(wnids):
    folder = os.path.join(root, "train", wnid, "images")
    os.makedirs(folder, exist_ok=True)
    names = [f"{wnid}_{k}.JPEG" for k in range(per_class)]
    for name, image in zip(names, _images(rng, np.full(per_class, c), templates), strict=True):
      Image.fromarray(image).save(os.path.join(folder, name), format="JPEG", quality=90)
    with open(os.path.join(root, "train", wnid, f"{wnid}_boxes.txt"), "w") as f:
      f.writelines(f"{n}\t0\t0\t{side - 1}\t{side - 1}\n" for n in names)
  labels = _labels(rng, max(classes, int(n_test * scale)), classes)
  with open(os.path.join(root, "val", "val_annotations.txt"), "w") as f:
    for k, (c, image) in enumerate(zip(labels, _images(rng, labels, templates), strict=True)):
      name = f"val_{k}.JPEG"
      Image.fromarray(image).save(os.path.join(root, "val", "images", name), format="JPEG",
                                  quality=90)
      f.write(f"{name}\t{wnids[c]}\t0\t0\t{side - 1}\t{side - 1}\n")
  return root


WRITERS = {
    "svhn": write_svhn,
    "cifar10": lambda out, **kw: write_cifar(out, 10, **kw),
    "cifar100": lambda out, **kw: write_cifar(out, 100, **kw),
    "tinyimagenet": write_tinyimagenet,
}


def main(argv: Sequence[str] | None = None) -> int:
  import argparse

  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", required=True, help="folder; each dataset goes in OUT/<name>")
  parser.add_argument("--datasets", default=",".join(WRITERS),
                      help=f"comma-separated, from {', '.join(WRITERS)}")
  parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real sizes")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  names = [n for n in args.datasets.split(",") if n]
  unknown = sorted(set(names) - set(WRITERS))
  if unknown:
    parser.error(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(WRITERS)}")
  if not 0 < args.scale <= 1:
    parser.error(f"--scale must be in (0, 1], got {args.scale}")
  for name in names:
    start = time.perf_counter()
    path = WRITERS[name](os.path.join(args.out, name), scale=args.scale, seed=args.seed)
    print(f"{name}: {path} ({time.perf_counter() - start:.1f} s); "
          f"--config.data.dir={os.path.join(args.out, name)}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
