"""Prototypes and scores against float64 numpy references and hand-derived cases."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msal_jax import prototypes, scoring


@pytest.mark.parametrize("num_classes", [2, 3, 4, 10, 100, 1000])
def test_simplex_geometry(num_classes):
  p = np.asarray(prototypes.simplex(num_classes), np.float64)
  assert p.shape == (num_classes, num_classes - 1)
  gram = p @ p.T
  np.testing.assert_allclose(np.diag(gram), 1.0, atol=1e-5)
  off = gram[~np.eye(num_classes, dtype=bool)]
  np.testing.assert_allclose(off, -1.0 / (num_classes - 1), atol=1e-5)
  np.testing.assert_allclose(p.sum(0), 0.0, atol=1e-4)


def test_simplex_c3_is_the_hand_derived_recursion():
  v2 = np.array([[1.0, -0.5, -0.5], [0.0, math.sqrt(3) / 2, -math.sqrt(3) / 2]])
  np.testing.assert_allclose(prototypes.simplex(3), v2.T, atol=1e-7)
  np.testing.assert_array_equal(prototypes.simplex(2), np.array([[1.0], [-1.0]], np.float32))


def test_simplex_under_jit_and_deterministic():
  f = jax.jit(prototypes.simplex, static_argnums=0)
  np.testing.assert_array_equal(f(7), prototypes.simplex(7))
  np.testing.assert_array_equal(prototypes.simplex(7), prototypes.simplex(7))


@pytest.mark.parametrize("bad", [1, 0, -3, 2.0, True, "3"])
def test_simplex_rejects_bad_c(bad):
  with pytest.raises(ValueError, match="num_classes"):
    prototypes.simplex(bad)


def _np_msal(z, p):
  out = np.empty(len(z))
  for i, zi in enumerate(z):
    n = np.linalg.norm(zi)
    out[i] = 0.0 if n == 0 else max(zi @ pc / n for pc in p)
  return out


@pytest.mark.parametrize("num_classes, n", [(2, 50), (3, 97), (10, 500)])
def test_msal_matches_numpy(num_classes, n):
  rng = np.random.default_rng(num_classes)
  z = rng.normal(size=(n, num_classes - 1))
  z[3] = 0.0  # the guarded zero vector
  p = np.asarray(prototypes.simplex(num_classes), np.float64)
  got = scoring.msal(jnp.asarray(z, jnp.float32), prototypes.simplex(num_classes))
  np.testing.assert_allclose(got, _np_msal(z, p), atol=1e-5)
  assert float(got[3]) == 0.0
  cls, cos = scoring.nearest_prototype(z.astype(np.float32), p.astype(np.float32))
  np.testing.assert_array_equal(cls, np.argmax(z @ p.T, axis=1))
  np.testing.assert_allclose(cos, got, atol=1e-6)


def test_msal_hand_case():
  p = prototypes.simplex(2)  # [[1], [-1]]
  z = jnp.array([[2.0], [-0.5], [0.0]])
  np.testing.assert_array_equal(scoring.msal(z, p), [1.0, 1.0, 0.0])


def test_msal_width_mismatch():
  with pytest.raises(ValueError, match="width 4 but prototypes have width 9"):
    scoring.msal(jnp.zeros((5, 4)), prototypes.simplex(10))


def _np_probs(logits):
  e = np.exp(logits - logits.max(1, keepdims=True))
  return e / e.sum(1, keepdims=True)


def test_uncertainty_scores_match_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(200, 10)) * 3
  p = _np_probs(logits)
  srt = np.sort(p, axis=1)
  x = jnp.asarray(logits, jnp.float32)
  np.testing.assert_allclose(scoring.entropy(x), -(p * np.log(p)).sum(1), atol=1e-5)
  np.testing.assert_allclose(scoring.margin(x), srt[:, -2] - srt[:, -1], atol=1e-6)
  np.testing.assert_allclose(scoring.least_confidence(x), 1 - srt[:, -1], atol=1e-6)


def test_uncertainty_hand_case_and_extremes():
  uniform = jnp.zeros((1, 4))
  np.testing.assert_allclose(scoring.entropy(uniform), [math.log(4)], rtol=1e-6)
  np.testing.assert_allclose(scoring.margin(uniform), [0.0], atol=1e-7)
  np.testing.assert_allclose(scoring.least_confidence(uniform), [0.75], rtol=1e-6)
  sharp = jnp.array([[1e4, 0.0, -1e4]])
  for fn in (scoring.entropy, scoring.margin, scoring.least_confidence):
    assert np.isfinite(np.asarray(fn(sharp))).all()
  np.testing.assert_allclose(scoring.entropy(sharp), [0.0], atol=1e-6)
  np.testing.assert_allclose(scoring.margin(sharp), [-1.0], atol=1e-6)


def test_random_scores():
  a = scoring.random(jax.random.PRNGKey(0), 100)
  np.testing.assert_array_equal(a, scoring.random(jax.random.PRNGKey(0), 100))
  assert not np.array_equal(a, scoring.random(jax.random.PRNGKey(1), 100))
  assert a.shape == (100,) and float(a.min()) >= 0 and float(a.max()) < 1
