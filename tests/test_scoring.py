"""Prototypes and scores, checked against float64 numpy references written here.

Independent of the implementation: every expected value below comes from a
plain loop over the definitions in DESIGN.md section 3, or from a case derived
by hand in a comment.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msal_jax import prototypes, scoring

# ---------------------------------------------------------------------------
# simplex
# ---------------------------------------------------------------------------


def _ref_simplex(num_classes):
  """The literal recursion of DESIGN.md 3 in float64: V_1 = [1, -1],
  V_k = [[1, -(1/k) 1^T], [0, sqrt(1 - 1/k^2) V_(k-1)]], P = V_(C-1)^T."""
  v = np.array([[1.0, -1.0]])
  for k in range(2, num_classes):
    top = np.concatenate([[1.0], np.full(k, -1.0 / k)])[None, :]
    bottom = np.concatenate([np.zeros((k - 1, 1)), math.sqrt(1 - 1 / k**2) * v], axis=1)
    v = np.concatenate([top, bottom], axis=0)
  assert v.shape == (num_classes - 1, num_classes)
  return v.T


@pytest.mark.parametrize("num_classes", [2, 3, 4, 10, 100, 1000])
def test_simplex_geometry(num_classes):
  p = prototypes.simplex(num_classes)
  assert p.shape == (num_classes, num_classes - 1)
  p = np.asarray(p, np.float64)
  gram = p @ p.T
  np.testing.assert_allclose(np.diag(gram), 1.0, atol=1e-5)  # unit rows
  off_diagonal = gram[~np.eye(num_classes, dtype=bool)]
  np.testing.assert_allclose(off_diagonal, -1.0 / (num_classes - 1), atol=1e-5)
  np.testing.assert_allclose(p.sum(axis=0), 0.0, atol=1e-4)  # the rows sum to the zero vector


@pytest.mark.parametrize("num_classes", [2, 3, 4, 5, 10, 50])
def test_simplex_equals_the_recursion(num_classes):
  np.testing.assert_allclose(prototypes.simplex(num_classes), _ref_simplex(num_classes),
                             atol=1e-6)


def test_simplex_c3_hand_derived():
  # V_1 = [1, -1]; V_2 = [[1, -1/2, -1/2], [0, sqrt(1 - 1/4) * V_1]]
  #                    = [[1, -1/2, -1/2], [0, sqrt(3)/2, -sqrt(3)/2]];  P = V_2^T.
  v2 = np.array([[1.0, -0.5, -0.5], [0.0, math.sqrt(3) / 2, -math.sqrt(3) / 2]])
  np.testing.assert_allclose(prototypes.simplex(3), v2.T, atol=1e-7)
  # C = 2: P = V_1^T = [[1], [-1]].
  np.testing.assert_allclose(prototypes.simplex(2), [[1.0], [-1.0]], atol=0)


def test_simplex_deterministic_and_jittable():
  a = prototypes.simplex(10)
  np.testing.assert_array_equal(a, prototypes.simplex(10))
  jitted = jax.jit(prototypes.simplex, static_argnums=0)
  np.testing.assert_allclose(jitted(10), a, atol=1e-7)
  np.testing.assert_allclose(jitted(3), prototypes.simplex(3), atol=1e-7)

  @jax.jit
  def uses_it_inside(z):
    return z @ prototypes.simplex(4).T

  z = jnp.ones((2, 3))
  np.testing.assert_allclose(uses_it_inside(z), z @ prototypes.simplex(4).T, atol=1e-6)


@pytest.mark.parametrize("bad", [1, 0, -2, 2.0, 3.5, "3", None])
def test_simplex_rejects_bad_num_classes(bad):
  with pytest.raises(ValueError):
    prototypes.simplex(bad)


# ---------------------------------------------------------------------------
# msal and nearest_prototype
# ---------------------------------------------------------------------------


def _ref_cosines(z, p):
  """[N, C] cosines (z_i . p_c) / ||z_i||, 0 for a zero z_i; float64 loops."""
  out = np.zeros((len(z), len(p)))
  for i, zi in enumerate(z):
    norm = math.sqrt(sum(float(x) ** 2 for x in zi))
    for c, pc in enumerate(p):
      out[i, c] = 0.0 if norm == 0 else float(np.dot(zi, pc)) / norm
  return out


def _ref_nearest(z, p):
  cos = _ref_cosines(z, p)
  classes = []
  for row in cos:
    best = 0
    for c in range(1, len(row)):
      if row[c] > row[best]:  # strict: ties keep the lower class index
        best = c
    classes.append(best)
  return np.array(classes), cos.max(axis=1)


def _unit_rows(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(
    "seed, n, num_classes, width",
    [(0, 50, 2, 1), (1, 97, 3, 2), (2, 500, 10, 9), (3, 333, 3, 5), (4, 61, 10, 4)],
)
def test_msal_and_nearest_prototype_match_reference(seed, n, num_classes, width):
  rng = np.random.default_rng(seed)
  z = (rng.normal(size=(n, width)) * rng.uniform(0.1, 10.0, size=(n, 1))).astype(np.float32)
  z[n // 3] = 0.0  # a zero feature vector
  if width == num_classes - 1:
    p = np.asarray(prototypes.simplex(num_classes), np.float32)
  else:  # the scores take any unit prototypes [C, K]
    p = _unit_rows(rng.normal(size=(num_classes, width))).astype(np.float32)
  z64, p64 = z.astype(np.float64), p.astype(np.float64)
  classes_ref, cos_ref = _ref_nearest(z64, p64)

  got = scoring.msal(jnp.asarray(z), jnp.asarray(p))
  assert isinstance(got, jax.Array) and got.shape == (n,)
  np.testing.assert_allclose(got, cos_ref, atol=2e-6)
  assert float(got[n // 3]) == 0.0
  np.testing.assert_allclose(scoring.msal(z, p), got, atol=0)  # numpy inputs too

  classes, cos = scoring.nearest_prototype(jnp.asarray(z), jnp.asarray(p))
  assert classes.dtype == jnp.int32 and classes.shape == (n,) and cos.shape == (n,)
  np.testing.assert_array_equal(classes, classes_ref)
  np.testing.assert_allclose(cos, cos_ref, atol=2e-6)
  assert int(classes[n // 3]) == 0 and float(cos[n // 3]) == 0.0  # all-zero row: tie -> 0

  np.testing.assert_allclose(jax.jit(scoring.msal)(z, p), got, atol=1e-6)
  jit_classes, jit_cos = jax.jit(scoring.nearest_prototype)(z, p)
  np.testing.assert_array_equal(jit_classes, classes)
  np.testing.assert_allclose(jit_cos, cos, atol=1e-6)


@pytest.mark.parametrize("num_classes", [2, 10, 17, 40, 100, 200, 513])
def test_msal_with_the_implicit_simplex_matches_reference(num_classes):
  # prototypes=None: simplex(C) evaluated through its triangular structure (C > 16, up to
  # 512 classes; 513 takes the dense product with the built matrix, 2 and 10 unroll it).
  rng = np.random.default_rng(num_classes)
  n = 300
  z = (rng.normal(size=(n, num_classes - 1)) * rng.uniform(0.1, 10.0, size=(n, 1)))
  z = z.astype(np.float32)
  z[7] = 0.0
  _, cos_ref = _ref_nearest(z.astype(np.float64), prototypes.simplex_numpy(num_classes))
  got = jax.jit(scoring.msal, static_argnums=1)(z, None)
  assert got.shape == (n,) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, cos_ref, atol=2e-6)
  assert float(got[7]) == 0.0
  with pytest.raises(ValueError, match=r"features must be \[N, C-1\]"):
    scoring.msal(np.zeros(5, np.float32), None)


def test_msal_hand_cases():
  # C = 2, P = [[1], [-1]]: cos(z, p_0) = sign(z), cos(z, p_1) = -sign(z), so
  # msal = 1 for any non-zero scalar and 0 (guarded) for z = 0.
  z = jnp.array([[2.0], [-0.5], [0.0], [1e-3]])
  got = scoring.msal(z, prototypes.simplex(2))
  np.testing.assert_allclose(got, [1.0, 1.0, 0.0, 1.0], atol=1e-6)
  assert not np.isnan(np.asarray(got)).any()
  classes, _ = scoring.nearest_prototype(z, prototypes.simplex(2))
  assert classes.tolist() == [0, 1, 0, 0]

  # C = 3 simplex, z = (0, 2): cosines (0, 2 * sqrt(3)/2, -2 * sqrt(3)/2) / 2
  # = (0, sqrt(3)/2, -sqrt(3)/2) -> class 1, msal sqrt(3)/2.
  classes, cos = scoring.nearest_prototype(jnp.array([[0.0, 2.0]]), prototypes.simplex(3))
  assert classes.tolist() == [1]
  np.testing.assert_allclose(cos, [math.sqrt(3) / 2], atol=1e-6)


def test_nearest_prototype_ties_go_to_the_lower_class():
  # Exactly representable unit prototypes; z = (1, 1) is equally close to
  # classes 0 and 1 (cosine 1/sqrt(2) each), z = (-1, 1) to classes 1 and 2.
  p = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
  z = jnp.array([[1.0, 1.0], [-1.0, 1.0], [3.0, 3.0], [0.0, 0.0]])
  classes, cos = scoring.nearest_prototype(z, p)
  assert classes.tolist() == [0, 1, 0, 0]
  np.testing.assert_allclose(cos, [1 / math.sqrt(2)] * 3 + [0.0], atol=1e-6)


# ---------------------------------------------------------------------------
# uncertainty scores on logits
# ---------------------------------------------------------------------------


def _ref_softmax_row(row):
  m = max(row)
  e = [math.exp(x - m) for x in row]
  s = sum(e)
  return [x / s for x in e]


def _ref_entropy(logits):
  out = []
  for row in logits:
    p = _ref_softmax_row(row)
    out.append(-sum(x * math.log(x) for x in p if x > 0))
  return np.array(out)


def _ref_margin(logits):
  out = []
  for row in logits:
    p = sorted(_ref_softmax_row(row), reverse=True)
    out.append(p[1] - p[0])  # second largest minus largest
  return np.array(out)


def _ref_least_confidence(logits):
  return np.array([1.0 - max(_ref_softmax_row(row)) for row in logits])


@pytest.mark.parametrize(
    "seed, n, num_classes, scale",
    [(0, 50, 2, 1.0), (1, 123, 3, 3.0), (2, 500, 10, 5.0), (3, 77, 10, 0.3)],
)
def test_uncertainty_scores_match_reference(seed, n, num_classes, scale):
  rng = np.random.default_rng(seed)
  logits = (rng.normal(size=(n, num_classes)) * scale).astype(np.float32)
  logits64 = logits.astype(np.float64).tolist()
  for fn, ref, atol in [
      (scoring.entropy, _ref_entropy, 2e-5),
      (scoring.margin, _ref_margin, 2e-6),
      (scoring.least_confidence, _ref_least_confidence, 2e-6),
  ]:
    expected = ref(logits64)
    got = fn(jnp.asarray(logits))
    assert isinstance(got, jax.Array) and got.shape == (n,), fn.__name__
    np.testing.assert_allclose(got, expected, atol=atol, err_msg=fn.__name__)
    np.testing.assert_allclose(fn(logits), got, atol=0, err_msg=fn.__name__)  # numpy input
    np.testing.assert_allclose(jax.jit(fn)(logits), got, atol=1e-6, err_msg=fn.__name__)


def test_uncertainty_ranges_and_direction():
  rng = np.random.default_rng(5)
  logits = jnp.asarray(rng.normal(size=(300, 10)) * 4, jnp.float32)
  ent = np.asarray(scoring.entropy(logits))
  mar = np.asarray(scoring.margin(logits))
  lc = np.asarray(scoring.least_confidence(logits))
  assert (ent >= -1e-6).all() and (ent <= math.log(10) + 1e-5).all()
  assert (mar >= -1 - 1e-6).all() and (mar <= 1e-6).all()
  assert (lc >= -1e-6).all() and (lc <= 0.9 + 1e-6).all()
  # Higher = more uncertain: a flat row beats a peaked row under every score.
  flat_vs_peaked = jnp.array([[0.1, 0.0, -0.1], [5.0, 0.0, -5.0]])
  for fn in (scoring.entropy, scoring.margin, scoring.least_confidence):
    s = np.asarray(fn(flat_vs_peaked))
    assert s[0] > s[1], fn.__name__


def test_uncertainty_hand_cases():
  # Uniform over 4: entropy log 4, margin 1/4 - 1/4 = 0, least confidence 3/4.
  uniform = jnp.zeros((1, 4))
  np.testing.assert_allclose(scoring.entropy(uniform), [math.log(4)], rtol=1e-6)
  np.testing.assert_allclose(scoring.margin(uniform), [0.0], atol=1e-7)
  np.testing.assert_allclose(scoring.least_confidence(uniform), [0.75], rtol=1e-6)
  # Two classes, logits (log 3, 0): p = (3/4, 1/4).
  two = jnp.array([[math.log(3.0), 0.0]])
  np.testing.assert_allclose(
      scoring.entropy(two), [-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))], rtol=1e-6)
  np.testing.assert_allclose(scoring.margin(two), [0.25 - 0.75], atol=1e-6)
  np.testing.assert_allclose(scoring.least_confidence(two), [0.25], atol=1e-6)
  # A tied maximum: p = (0.4, 0.4, 0.2) for logits (log 2, log 2, 0): margin 0 exactly;
  # one maximum and a tied runner-up: p = (1/2, 1/4, 1/4), margin 1/4 - 1/2.
  tied = jnp.array([[math.log(2.0), math.log(2.0), 0.0], [math.log(2.0), 0.0, 0.0]])
  np.testing.assert_allclose(scoring.margin(tied), [0.0, -0.25], atol=1e-6)
  np.testing.assert_allclose(scoring.least_confidence(tied), [0.6, 0.5], atol=1e-6)


def test_uncertainty_extreme_logits_are_finite():
  logits = jnp.array([
      [1e4, 0.0, -1e4],  # one-hot: entropy 0, margin -1, least confidence 0
      [1e4, 1e4, -1e4],  # two-way tie: entropy log 2, margin 0, least confidence 1/2
      [-1e4, -1e4, -1e4],  # uniform: entropy log 3, margin 0, least confidence 2/3
      [1e30, 0.0, -1e30],  # far larger spread, still finite in float32
  ])
  ent, mar, lc = (np.asarray(f(logits))
                  for f in (scoring.entropy, scoring.margin, scoring.least_confidence))
  for s in (ent, mar, lc):
    assert np.isfinite(s).all()
  np.testing.assert_allclose(ent, [0.0, math.log(2), math.log(3), 0.0], atol=1e-5)
  np.testing.assert_allclose(mar, [-1.0, 0.0, 0.0, -1.0], atol=1e-6)
  np.testing.assert_allclose(lc, [0.0, 0.5, 2 / 3, 0.0], atol=1e-6)


# ---------------------------------------------------------------------------
# random
# ---------------------------------------------------------------------------


def test_random_scores():
  key = jax.random.PRNGKey(0)
  a = scoring.random(key, 257)
  assert isinstance(a, jax.Array) and a.shape == (257,)
  assert jnp.issubdtype(a.dtype, jnp.floating)
  np.testing.assert_array_equal(a, scoring.random(jax.random.PRNGKey(0), 257))
  assert not np.array_equal(a, scoring.random(jax.random.PRNGKey(1), 257))
  a = np.asarray(a)
  assert a.min() >= 0.0 and a.max() < 1.0
  assert len(np.unique(a)) == 257
  assert 0.4 < a.mean() < 0.6  # uniform on [0, 1): mean 1/2, sd of the mean ~ 0.018
  jitted = jax.jit(scoring.random, static_argnums=1)
  np.testing.assert_array_equal(jitted(key, 257), a)
  np.testing.assert_array_equal(scoring.random(jax.random.key(3), 9),
                                scoring.random(jax.random.key(3), 9))


# ---------------------------------------------------------------------------
# Beyond the brief's spec: API checks carried over from the earlier version of
# this file (they name implementation details, so they are not independent).
# ---------------------------------------------------------------------------


def test_msal_width_mismatch():
  with pytest.raises(ValueError, match="width 4 but prototypes have width 9"):
    scoring.msal(jnp.zeros((5, 4)), prototypes.simplex(10))


def test_uncertainty_table():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(20, 5)), jnp.float32)
  for name, fn in [("entropy", scoring.entropy), ("margin", scoring.margin),
                   ("least_conf", scoring.least_confidence)]:
    np.testing.assert_array_equal(scoring.UNCERTAINTY[name](logits), fn(logits))
