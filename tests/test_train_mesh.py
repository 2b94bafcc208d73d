"""The Trainer over an 8-device CPU mesh == the one-device Trainer.

The device count has to be in ``XLA_FLAGS`` before jax is imported, so the
mesh half runs this file as a script in a subprocess (started first, so it
runs while this process computes the one-device half) and writes its arrays
to an ``.npz``:

  XLA_FLAGS=--xla_force_host_platform_device_count=8 \\
      python tests/test_train_mesh.py --out=mesh.npz

Both halves run :func:`scenario`: a BatchNorm + dropout CNN on 61 images
(8 does not divide 61), two rounds of training with augmentation (40, then 56
labeled samples), the pool outputs and MC-dropout passes before and after, and
a batch of 12 (8 does not divide it either). On one device that last run is
the reference loop :func:`padded_fit` over the same batches padded to 16.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, SHAPE, CLASSES, EVAL_BATCH, PASSES = 61, (8, 8, 1), 3, 12, 3
TRACES = {"init": 1, "shuffle": 1, "train_step": 1, "eval_step": 1, "mc_step": 1}


def _model():
  import flax.linen as nn

  from msal_jax.models.heads import Classifier, LinearHead

  class Trunk(nn.Module):
    @nn.compact
    def __call__(self, x, *, train):
      # No conv bias before BatchNorm: its true gradient is 0, and Adam would
      # turn the float noise of that 0 into steps of size learning_rate.
      h = nn.Conv(4, (3, 3), use_bias=False)(x)
      h = nn.BatchNorm(use_running_average=not train)(h)
      return nn.relu(nn.Dense(8)(nn.relu(h).reshape(h.shape[0], -1)))

  return Classifier(Trunk(), LinearHead(CLASSES), dropout_rate=0.3)


def _data():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (N, *SHAPE), np.uint8)
  labels = rng.integers(0, CLASSES, N).astype(np.int32)
  order = rng.permutation(N)
  first, second = np.zeros(N, bool), np.zeros(N, bool)
  first[order[:40]] = True
  second[order[:56]] = True  # the next round: more labeled samples, same shapes
  return images, labels, first, second


def _trainer(batch_size, mesh):
  from msal_jax.train import Trainer

  return Trainer(_model(), SHAPE, (0.5,), (0.25,), batch_size=batch_size,
                 eval_batch_size=EVAL_BATCH, augment=True, mesh=mesh)


def _leaves(prefix, state):
  import jax

  tree = {"params": state.params, "batch_stats": state.batch_stats}
  # Copies: a numpy view of a CPU buffer would keep the next step from donating it.
  return {prefix + jax.tree_util.keystr(path): np.array(leaf, copy=True)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def padded_fit(trainer, state, images, labels, labeled, *, epochs, key, width):
  """One-device reference: ``Trainer.fit``'s batches, each padded to ``width`` by pad_batches."""
  import jax

  from msal_jax import train_mesh

  num, bs = int(labeled.sum()), trainer.batch_size
  steps = math.ceil(num / bs)
  weight = (np.arange(steps * bs) < num).astype(np.float32).reshape(steps, bs)
  for epoch in range(epochs):
    ekey = jax.random.fold_in(key, epoch)
    order = np.asarray(trainer._shuffle(ekey, labeled))[:num]
    order = np.resize(order, steps * bs).reshape(steps, bs)
    idx, w = train_mesh.pad_batches(order, weight, width)
    for i in range(steps):
      state, _ = trainer._train_step(state, images, labels, idx[i], w[i],
                                     jax.random.fold_in(ekey, 1 + i))
  return state


def scenario(mesh) -> dict[str, np.ndarray]:
  """Outputs and trained variables of both rounds; ``mesh=None``: on one device."""
  import jax

  images, labels, first, second = _data()
  out = {}
  trainer = _trainer(16, mesh)  # 16 divides 8: the plain one-device Trainer is the reference
  state = trainer.init(jax.random.PRNGKey(0))
  train_images, pool = trainer.place_train_images(images), trainer.place_pool(images)
  for rnd, labeled in enumerate((first, second)):
    logits, feats = trainer.predict(state, pool)
    mc = trainer.predict_mc(state, pool, key=jax.random.PRNGKey(10 + rnd), passes=PASSES)
    out.update({f"r{rnd}/logits": logits, f"r{rnd}/features": feats, f"r{rnd}/mc": mc})
    donated = jax.tree.leaves(state.params)[0]
    state, _ = trainer.fit(state, train_images, labels, labeled, epochs=2,
                           key=jax.random.PRNGKey(20 + rnd))
    out[f"r{rnd}/donated"] = np.array(donated.is_deleted())
    out.update(_leaves(f"r{rnd}/", state))
    out[f"r{rnd}/traces"] = np.array(sorted(trainer.traces.items()))
  out["specs"] = np.array([str(x.sharding.spec) if mesh else "" for x in (logits, mc)])

  odd = _trainer(12, mesh)  # 12 does not divide 8: batches padded to 16
  state = trainer.init(jax.random.PRNGKey(1))  # same model and optimizer; init compiled once
  if mesh is None:
    state = padded_fit(odd, state, jax.numpy.asarray(images), labels, first, epochs=2,
                       key=jax.random.PRNGKey(30), width=16)
  else:
    state, _ = odd.fit(state, odd.place_train_images(images), labels, first, epochs=2,
                       key=jax.random.PRNGKey(30))
  out.update(_leaves("odd/", state))
  return {k: np.asarray(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
  path = tmp_path_factory.mktemp("train_mesh") / "mesh.npz"
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
  env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8"
  proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), f"--out={path}"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    one = scenario(None)  # meanwhile, on this process's one device
    _, err = proc.communicate(timeout=300)
  finally:
    proc.kill()
  assert proc.returncode == 0, err[-4000:]
  with np.load(path) as mesh:
    return one, dict(mesh)


def _variables(out, prefix):
  return {k: v for k, v in out.items()
          if k.startswith(prefix) and ("params" in k or "batch_stats" in k)}


@pytest.mark.parametrize("prefix", ["r0/", "r1/"])
def test_dividing_batch_trains_as_one_device(halves, prefix):
  one, mesh = halves
  want, got = _variables(one, prefix), _variables(mesh, prefix)
  assert any("batch_stats" in k for k in want) and set(got) == set(want)
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)
  assert mesh[prefix + "donated"] and one[prefix + "donated"]


def test_non_dividing_batch_trains_as_the_padded_one_device_batch(halves):
  one, mesh = halves
  want, got = _variables(one, "odd/"), _variables(mesh, "odd/")
  assert want and set(got) == set(want)
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("rnd", [0, 1])
def test_sharded_pool_outputs_equal_one_device(halves, rnd):
  one, mesh = halves
  for name in ("logits", "features"):
    got, want = mesh[f"r{rnd}/{name}"], one[f"r{rnd}/{name}"]
    assert want.shape[0] == N and got.shape == (64, *want.shape[1:])  # padded to 8 * 8 rows
    np.testing.assert_allclose(got[:N], want, rtol=1e-5, atol=1e-6, err_msg=name)
  got, want = mesh[f"r{rnd}/mc"], one[f"r{rnd}/mc"]
  assert want.shape == (PASSES, N, CLASSES) and got.shape == (PASSES, 64, CLASSES)
  assert not np.allclose(want[0], want[1])  # dropout on: the passes differ, the masks match
  np.testing.assert_allclose(got[:, :N], want, rtol=1e-5, atol=1e-6)
  assert mesh["specs"].tolist() == ["P('data',)", "P(None, 'data')"]


def test_no_recompilation_across_rounds(halves):
  for out in halves:
    for rnd in (0, 1):
      assert dict((k, int(v)) for k, v in out[f"r{rnd}/traces"]) == TRACES, rnd


def test_pad_batches_and_blocks():
  from msal_jax import train_mesh

  idx, w = train_mesh.pad_batches(np.array([[4, 9, 2], [7, 4, 9]]),
                                  np.array([[1, 1, 1], [1, 0, 0]], np.float32), 8)
  assert idx.tolist() == [[4, 9, 2, 4, 9, 2, 4, 9], [7, 4, 9, 7, 4, 9, 7, 4]]
  assert w.tolist() == [[1, 1, 1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]]
  # 64 rows on 8 devices, 8 each; global batches of 12 rows: device 1 (rows 8..15)
  # overlaps batches 0 and 1, device 2 (16..23) only batch 1.
  assert train_mesh.blocks_per_device(64, 8, 12, aligned=True) == 2
  assert train_mesh.blocks_per_device(64, 8, 16, aligned=True) == 1
  assert train_mesh.blocks_per_device(64, 8, 3, aligned=False) == 3


def test_mesh_must_be_one_dimensional_and_auto():
  import jax
  from jax.sharding import Mesh

  mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("a", "b"))
  with pytest.raises(ValueError, match="1-D"):
    _trainer(16, mesh)
  explicit = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
  with pytest.raises(ValueError, match="pass an Auto axis"):
    _trainer(16, explicit)


if __name__ == "__main__":
  parser = argparse.ArgumentParser()
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  import jax

  jax.config.update("jax_numpy_rank_promotion", "raise")
  from msal_jax import placement

  assert jax.device_count() == 8, jax.devices()
  np.savez(args.out, **scenario(placement.make_mesh()))
