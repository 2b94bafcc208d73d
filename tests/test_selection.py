"""Selection against plain-python references written from DESIGN.md section 3."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msal_jax import prototypes, scoring, selection


def _ref_top_k(scores, eligible, k):
  cand = [i for i in range(len(scores)) if eligible[i]]
  cand.sort(key=lambda i: (-scores[i], i))
  out = cand[:k]
  return out + [-1] * (k - len(out))


def _ref_msal_d(z, p, labeled, budget, beta, uncertainty=None):
  """Step by step as DESIGN.md 3 states it, with python loops and float64."""
  n = len(z)
  cos = np.array([[zi @ pc / np.linalg.norm(zi) for pc in p] for zi in z])
  u = -cos.max(1) if uncertainty is None else uncertainty
  m = min(math.ceil(beta * budget), n)
  unl = sorted((i for i in range(n) if not labeled[i]), key=lambda i: (-u[i], i))
  cand = unl[:m]  # all unlabeled ones if fewer remain
  cls = {i: int(np.argmax(cos[i])) for i in cand}
  close = {i: cos[i].max() for i in cand}
  rank = {}
  for c in range(len(p)):
    members = sorted((i for i in cand if cls[i] == c), key=lambda i: (-close[i], i))
    rank.update({i: r for r, i in enumerate(members)})
  order = sorted(cand, key=lambda i: (rank[i], -close[i], i))
  out = order[:budget]
  return out + [-1] * (budget - len(out))


def _problem(seed, n, num_classes, frac_labeled=0.2):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, num_classes - 1))
  labeled = rng.random(n) < frac_labeled
  return z, labeled


msal_d_jit = jax.jit(selection.msal_d, static_argnames=("budget", "beta"))


@pytest.mark.parametrize("seed, n, k", [(0, 50, 7), (1, 333, 40), (2, 500, 500), (3, 10, 10)])
def test_top_k_masked_matches_reference(seed, n, k):
  rng = np.random.default_rng(seed)
  scores = rng.normal(size=n).astype(np.float32)
  eligible = rng.random(n) < 0.6
  got = selection.top_k_masked(scores, eligible, k)
  assert got.dtype == jnp.int32
  assert got.tolist() == _ref_top_k(scores.astype(np.float64), eligible, k)
  got = selection.bottom_k_masked(scores, eligible, k)
  assert got.tolist() == _ref_top_k(-scores.astype(np.float64), eligible, k)


def test_top_k_ties_go_to_lower_index_and_inf_nan_rank_as_documented():
  scores = jnp.array([1.0, 3.0, 3.0, jnp.nan, -jnp.inf, 2.0])
  eligible = jnp.array([True, True, True, True, True, False])
  assert selection.top_k_masked(scores, eligible, 6).tolist() == [1, 2, 0, 3, 4, -1]


@pytest.mark.parametrize(
    "seed, n, num_classes, budget, beta",
    # C = 2 is left to the hand case: in 1-d every max cosine is exactly 1, a
    # full tie that float32 rounding of the norm would break arbitrarily.
    [(0, 60, 3, 6, 2.0), (1, 200, 3, 9, 5.0), (2, 500, 10, 50, 5.0), (3, 301, 10, 23, 1.5),
     (4, 120, 10, 7, 1.0), (5, 400, 4, 40, 10.0)],
)
def test_msal_d_matches_reference(seed, n, num_classes, budget, beta):
  z, labeled = _problem(seed, n, num_classes)
  p = prototypes.simplex(num_classes)
  expected = _ref_msal_d(z, np.asarray(p, np.float64), labeled, budget, beta)
  got = msal_d_jit(jnp.asarray(z, jnp.float32), p, jnp.asarray(labeled), budget=budget, beta=beta)
  assert got.tolist() == expected
  eager = selection.msal_d(z.astype(np.float32), p, labeled, budget=budget, beta=beta)
  assert eager.tolist() == expected


@pytest.mark.parametrize("score", ["entropy", "margin", "least_conf"])
def test_msal_d_with_another_uncertainty(score):
  z, labeled = _problem(7, 300, 10)
  p = prototypes.simplex(10)
  logits = 3.0 * z.astype(np.float32) @ np.asarray(p).T
  u = scoring.UNCERTAINTY[score](logits)
  expected = _ref_msal_d(z, np.asarray(p, np.float64), labeled, 20, 3.0, np.asarray(u, np.float64))
  got = msal_d_jit(z.astype(np.float32), p, labeled, budget=20, beta=3.0, uncertainty=u)
  assert got.tolist() == expected
  assert got.tolist() != msal_d_jit(z.astype(np.float32), p, labeled, budget=20, beta=3.0).tolist()


def test_msal_d_equal_quota_when_every_class_has_enough():
  z, labeled = _problem(11, 2000, 5, frac_labeled=0.0)
  p = np.asarray(prototypes.simplex(5), np.float64)
  budget, beta = 25, 8.0
  got = msal_d_jit(z.astype(np.float32), p.astype(np.float32), labeled, budget=budget, beta=beta)
  # Independently: candidates = the 200 lowest max-cosines; per class the 5 closest.
  cos = z @ p.T / np.linalg.norm(z, axis=1, keepdims=True)
  cand = np.argsort(cos.max(1), kind="stable")[:200]
  cls = cos[cand].argmax(1)
  assert all((cls == c).sum() >= 5 for c in range(5))
  expected = set()
  for c in range(5):
    members = cand[cls == c]
    expected |= set(members[np.argsort(-cos[members].max(1))[:5]].tolist())
  assert set(got.tolist()) == expected
  picked_cls = cos[got].argmax(1)
  np.testing.assert_array_equal(np.bincount(picked_cls, minlength=5), np.full(5, 5))


def test_msal_d_fills_short_classes_and_stays_distinct():
  # All candidates sit near prototype 0 except one: the quota of 2 per class
  # cannot be met, so the others fill it.
  p = np.asarray(prototypes.simplex(3), np.float64)
  rng = np.random.default_rng(0)
  z = p[0] + 0.3 * rng.normal(size=(30, 2))
  z[5] = p[1] * 2
  labeled = np.zeros(30, bool)
  got = selection.msal_d(z.astype(np.float32), p.astype(np.float32), labeled, budget=6, beta=5)
  assert len(set(got.tolist())) == 6 and min(got.tolist()) >= 0
  assert got.tolist() == _ref_msal_d(z, p, labeled, 6, 5)


def test_msal_d_hand_case():
  # C = 2, P = [[1], [-1]], K = 1: cos = sign(z), so every non-zero sample has
  # max cosine 1 and uncertainty ties at -1 (broken by the lower index).
  # With beta = 2, budget = 2: candidates = the 4 lowest indices among the
  # unlabeled {1, 2, 3, 4, 5} -> {1, 2, 3, 4}. Classes: z > 0 -> 0, z < 0 -> 1.
  # z[1] = -1 (class 1), z[2] = 2 (class 0), z[3] = 3 (class 0), z[4] = -4 (class 1).
  # Rank 0 of class 0 is 2 (closeness ties -> lower index), of class 1 is 1.
  # Round robin, rank 0 first, ties by index: [1, 2].
  z = jnp.array([[5.0], [-1.0], [2.0], [3.0], [-4.0], [6.0]])
  labeled = jnp.array([True, False, False, False, False, False])
  got = selection.msal_d(z, prototypes.simplex(2), labeled, budget=2, beta=2)
  assert got.tolist() == [1, 2]


def test_msal_d_never_picks_labeled_and_pads_when_pool_runs_out():
  z, _ = _problem(3, 40, 4)
  labeled = np.ones(40, bool)
  labeled[[3, 17, 29]] = False
  got = selection.msal_d(z.astype(np.float32), prototypes.simplex(4), labeled, budget=5, beta=2)
  assert sorted(got.tolist()[:3]) == [3, 17, 29] and got.tolist()[3:] == [-1, -1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"budget": 5, "beta": 0.5}, "beta must be a number >= 1"),
        ({"budget": 0, "beta": 2.0}, "k must be a Python int"),
        ({"budget": 41, "beta": 2.0}, "k must be a Python int"),
    ],
)
def test_msal_d_bad_arguments(kwargs, match):
  z, labeled = _problem(0, 40, 4)
  with pytest.raises(ValueError, match=match):
    selection.msal_d(z, prototypes.simplex(4), labeled, **kwargs)


def test_mask_shape_and_dtype_errors():
  with pytest.raises(ValueError, match="mask must have the pool's shape"):
    selection.top_k_masked(jnp.zeros(5), jnp.zeros(4, bool), 2)
  with pytest.raises(ValueError, match="mask must be boolean"):
    selection.top_k_masked(jnp.zeros(5), jnp.zeros(5, jnp.int32), 2)
  with pytest.raises(ValueError, match="width 3 but prototypes have width 9"):
    selection.msal_d(jnp.zeros((5, 3)), prototypes.simplex(10), jnp.zeros(5, bool),
                     budget=2, beta=1)


def test_num_candidates_clips_to_pool():
  assert selection.num_candidates(250, 5, 59_500) == 1250
  assert selection.num_candidates(250, 5, 1000) == 1000
  assert selection.num_candidates(3, 1.5, 100) == 5


def test_compiles_once_for_new_masks():
  traces = []

  @functools.partial(jax.jit, static_argnames=("budget", "beta"))
  def f(z, p, labeled, *, budget, beta):
    traces.append(1)
    return selection.msal_d(z, p, labeled, budget=budget, beta=beta)

  z, _ = _problem(0, 100, 3)
  for seed in range(3):
    f(z, prototypes.simplex(3), np.random.default_rng(seed).random(100) < 0.5, budget=5, beta=2)
  assert len(traces) == 1
