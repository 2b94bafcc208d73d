"""Selection against plain-python float64 references written from DESIGN.md 3.

Independent of the implementation. The random problems use continuous data;
``_assert_no_near_ties`` checks that no comparison the answer depends on is
closer than float32 rounding could flip, so exact equality of index lists is a
fair demand.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msal_jax import prototypes, scoring, selection

TIE_TOL = 2e-6  # an order of magnitude above float32 rounding of a cosine (~1e-7)


# ---------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------


def _ref_top_k(scores, eligible, k):
  """k highest eligible scores, descending, ties -> lower index, -1 padding."""
  cand = [i for i in range(len(scores)) if eligible[i]]
  cand.sort(key=lambda i: (-scores[i], i))
  out = cand[:k]
  return out + [-1] * (k - len(out))


def _ref_bottom_k(scores, eligible, k):
  cand = [i for i in range(len(scores)) if eligible[i]]
  cand.sort(key=lambda i: (scores[i], i))
  out = cand[:k]
  return out + [-1] * (k - len(out))


def _ref_cosines(z, p):
  out = np.zeros((len(z), len(p)))
  for i, zi in enumerate(z):
    norm = math.sqrt(sum(float(x) ** 2 for x in zi))
    for c, pc in enumerate(p):
      out[i, c] = 0.0 if norm == 0 else float(np.dot(zi, pc)) / norm
  return out


def _ref_msal_d_parts(z, p, labeled, budget, beta, uncertainty=None):
  """Steps 1-5 of the brief, returning the answer and the intermediate values."""
  n = len(z)
  cos = _ref_cosines(z, p)
  # 1. uncertainty: the given one, else -msal.
  u = [-max(row) for row in cos] if uncertainty is None else [float(x) for x in uncertainty]
  # 2. pre-filter: the m unlabeled samples with the highest u (ties -> lower index).
  m = min(math.ceil(beta * budget), n)
  unlabeled = [i for i in range(n) if not labeled[i]]
  by_u = sorted(unlabeled, key=lambda i: (-u[i], i))
  cand = by_u[:m]
  # 3. class and closeness of each candidate.
  cls, close = {}, {}
  for i in cand:
    best = 0
    for c in range(1, len(p)):
      if cos[i, c] > cos[i, best]:
        best = c
    cls[i], close[i] = best, cos[i, best]
  # 4. within-class rank by closeness, descending (ties -> lower index).
  rank = {}
  for c in range(len(p)):
    members = sorted([i for i in cand if cls[i] == c], key=lambda i: (-close[i], i))
    for r, i in enumerate(members):
      rank[i] = r
  # 5. (rank asc, closeness desc, index asc); the first `budget`; -1 padding.
  order = sorted(cand, key=lambda i: (rank[i], -close[i], i))
  out = order[:budget] + [-1] * max(0, budget - len(order))
  last_rank = rank[order[min(budget, len(order)) - 1]] if order else 0
  return out, dict(u=u, by_u=by_u, m=m, cand=cand, cos=cos, close=close, rank=rank,
                   last_rank=last_rank)


def _ref_msal_d(*args, **kwargs):
  return _ref_msal_d_parts(*args, **kwargs)[0]


def _assert_no_near_ties(parts, check_u=True):
  """The reference's answer must not hinge on a float32-rounding-sized gap."""
  u, by_u, m = parts["u"], parts["by_u"], parts["m"]
  if check_u and m < len(by_u):  # the pre-filter boundary
    gap = u[by_u[m - 1]] - u[by_u[m]]
    assert gap > TIE_TOL, f"test data: near-tie at the pre-filter boundary ({gap})"
  # Only candidates of rank <= last returned rank + 1 can change the answer
  # (their within-class order sets the ranks, their cross-class order the output).
  rank, last = parts["rank"], parts["last_rank"]
  close = sorted(v for i, v in parts["close"].items() if rank[i] <= last + 1)
  gaps = np.diff(close)
  assert (gaps > TIE_TOL).all(), f"test data: near-tie in closeness ({gaps.min()})"
  for row in parts["cos"][parts["cand"]]:
    if not row.any():
      continue  # a zero feature vector: an exact tie, class 0 by the tie rule
    top2 = sorted(row)[-2:]
    assert top2[1] - top2[0] > TIE_TOL, "test data: near-tie in the class assignment"


def _problem(seed, n, num_classes, frac_labeled=0.2):
  """float32 features (the reference reads the same values in float64)."""
  rng = np.random.default_rng(seed)
  z = (rng.normal(size=(n, num_classes - 1)) * rng.uniform(0.2, 5.0, size=(n, 1)))
  labeled = rng.random(n) < frac_labeled
  return z.astype(np.float32), labeled


msal_d_jit = jax.jit(selection.msal_d, static_argnames=("budget", "beta"))


# ---------------------------------------------------------------------------
# top_k_masked / bottom_k_masked
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed, n, k, frac_eligible",
    [(0, 50, 7, 0.6), (2, 500, 500, 0.7), (3, 10, 10, 0.3), (4, 97, 1, 0.9)],
)
def test_top_and_bottom_k_masked_match_reference(seed, n, k, frac_eligible):
  rng = np.random.default_rng(seed)
  scores = rng.normal(size=n).astype(np.float32)
  eligible = rng.random(n) < frac_eligible
  s64 = scores.astype(np.float64)
  for fn, ref in [(selection.top_k_masked, _ref_top_k),
                  (selection.bottom_k_masked, _ref_bottom_k)]:
    expected = ref(s64, eligible, k)
    got = fn(jnp.asarray(scores), jnp.asarray(eligible), k)
    assert isinstance(got, jax.Array) and got.dtype == jnp.int32 and got.shape == (k,)
    assert got.tolist() == expected, fn.__name__
    assert fn(scores, eligible, k).tolist() == expected, fn.__name__  # numpy inputs
    jitted = jax.jit(fn, static_argnums=2)
    assert jitted(scores, eligible, k).tolist() == expected, fn.__name__


def _ref_top_k_all(keys, k):
  """Indices of the k largest keys, ties to the lower index (a stable sort)."""
  return np.argsort(-keys.astype(np.float64), kind="stable")[:k].tolist()


@pytest.mark.parametrize("kind", ["normal", "ties", "ascending", "descending", "inf"])
@pytest.mark.parametrize("n, k, block", [(1000, 7, 8), (1003, 40, 5), (4096, 1, 64),
                                         (777, 97, 3)])
def test_blocked_top_k_is_exactly_lax_top_k(kind, n, k, block):
  rng = np.random.default_rng(n + k)
  keys = {
      "normal": rng.normal(size=n),
      "ties": rng.integers(0, 4, n).astype(float),  # many equal keys across rows
      "ascending": np.arange(n, dtype=float),  # the top k all in the last rows
      "descending": -np.arange(n, dtype=float),
      "inf": np.where(rng.random(n) < 0.97, -np.inf, rng.normal(size=n)),  # few finite
  }[kind].astype(np.float32)
  want = _ref_top_k_all(keys, k)
  for b in (block, 0):  # blocked, and the direct lax.top_k
    vals, idx = jax.jit(selection.top_k, static_argnames=("k", "block"))(keys, k=k, block=b)
    assert idx.dtype == jnp.int32 and idx.tolist() == want, b
    np.testing.assert_array_equal(vals, keys[want])


@pytest.mark.parametrize("kind", ["normal", "ties", "ascending", "inf"])
@pytest.mark.parametrize("n, k, block", [(1000, 7, 8), (1003, 40, 5), (777, 97, 3)])
def test_top_k_of_recomputed_keys_is_exactly_lax_top_k(kind, n, k, block):
  rng = np.random.default_rng(n + k)
  keys = {
      "normal": rng.normal(size=n),
      "ties": rng.integers(0, 4, n).astype(float),
      "ascending": np.arange(n, dtype=float),
      "inf": np.where(rng.random(n) < 0.97, -np.inf, rng.normal(size=n)),
  }[kind].astype(np.float32)
  calls = []

  def key_fn(rows):
    calls.append(None if rows is None else tuple(rows.shape))
    return jnp.asarray(keys) if rows is None else jnp.asarray(keys)[rows]

  want = _ref_top_k_all(keys, k)
  vals, idx = selection.top_k_of(key_fn, n, k, block=block)
  assert idx.dtype == jnp.int32 and idx.tolist() == want
  np.testing.assert_array_equal(vals, keys[want])
  # blocked: the pool once, then only the k rows of `block` keys again
  assert calls == [None, (k * block,)]
  calls.clear()
  assert selection.top_k_of(key_fn, n, k, block=0)[1].tolist() == want
  assert calls == [None]
  with pytest.raises(ValueError, match="1 <= k <= N"):
    selection.top_k_of(key_fn, n, n + 1)


@pytest.mark.parametrize("num_classes, structured", [(10, False), (10, True), (100, True),
                                                     (40, False)])
def test_msal_d_prefilter_recomputes_bit_identical_keys(num_classes, structured):
  # Large enough that msal_d's pre-filter takes the blocked top_k_of path
  # (N >= 4 * m * TOP_K_BLOCK): its candidates and order must be exactly
  # those of the pool's materialised keys, so the rows' keys recomputed from
  # their gathered features must equal the pool's bit for bit (under jit, as
  # XLA compiles them in two different fusions).
  n, budget, beta = 40_000, 20, 5.0
  m = selection.num_candidates(budget, beta, n)
  assert n >= 4 * m * selection.TOP_K_BLOCK
  z, labeled = _problem(1, n, num_classes, 0.1)
  p = None if structured else prototypes.simplex(num_classes)
  z, labeled = jnp.asarray(z), jnp.asarray(labeled)

  @jax.jit
  def pool_keys(z, labeled):
    return selection.rank_keys(-scoring.msal(z, p), ~labeled)

  @jax.jit
  def row_keys(z, labeled, rows):
    return selection.rank_keys(-scoring.msal(z[rows], p), ~labeled[rows])

  keys = pool_keys(z, labeled)
  rows = jnp.asarray(np.random.default_rng(2).permutation(n)[: m * selection.TOP_K_BLOCK],
                     jnp.int32)
  np.testing.assert_array_equal(row_keys(z, labeled, rows), keys[rows])

  @functools.partial(jax.jit, static_argnames=("k",))
  def materialised_top_k(keys, k):
    return selection.top_k(keys, k, block=0)

  cand = materialised_top_k(keys, m)[1]
  cand = jnp.where(keys[cand] > -jnp.inf, cand, -1)
  pp = prototypes.simplex(num_classes) if structured else p
  want = selection.diversify(cand, z[jnp.maximum(cand, 0)], pp, budget=budget)
  got = msal_d_jit(z, p, labeled, budget=budget, beta=beta)
  assert got.tolist() == want.tolist()


def test_blocked_top_k_default_use_and_errors():
  # The default blocks only large vectors (N >= 4 k TOP_K_BLOCK); both agree.
  n = 4 * 3 * selection.TOP_K_BLOCK + 5
  keys = np.random.default_rng(0).normal(size=n).astype(np.float32)
  assert selection.top_k(keys, 3)[1].tolist() == _ref_top_k_all(keys, 3)
  with pytest.raises(ValueError, match="1 <= k <= N"):
    selection.top_k(keys, n + 1)
  with pytest.raises(ValueError, match="1 <= k <= N"):
    selection.top_k(keys.reshape(-1, 1), 1)


def test_top_k_ties_and_padding_hand_case():
  # eligible: 0, 1, 2, 4, 5 (3 and 6 are not).
  # top-3: scores 3 (index 1), 3 (index 2), 2 (index 5): the tie goes to index 1 first.
  # bottom-3: 1 (index 0), 1 (index 4), 2 (index 5).
  scores = jnp.array([1.0, 3.0, 3.0, 9.0, 1.0, 2.0, -9.0])
  eligible = jnp.array([True, True, True, False, True, True, False])
  assert selection.top_k_masked(scores, eligible, 3).tolist() == [1, 2, 5]
  assert selection.bottom_k_masked(scores, eligible, 3).tolist() == [0, 4, 5]
  # k = 7 > 5 eligible: two -1 slots at the end.
  assert selection.top_k_masked(scores, eligible, 7).tolist() == [1, 2, 5, 0, 4, -1, -1]
  assert selection.bottom_k_masked(scores, eligible, 7).tolist() == [0, 4, 5, 1, 2, -1, -1]
  # Nothing eligible: all -1.
  none = jnp.zeros(7, bool)
  assert selection.top_k_masked(scores, none, 2).tolist() == [-1, -1]
  assert selection.bottom_k_masked(scores, none, 2).tolist() == [-1, -1]
  # All tied: index order.
  flat = jnp.zeros(6)
  assert selection.top_k_masked(flat, jnp.ones(6, bool), 4).tolist() == [0, 1, 2, 3]
  assert selection.bottom_k_masked(flat, jnp.ones(6, bool), 4).tolist() == [0, 1, 2, 3]


def test_top_k_eligible_infinite_scores_are_still_eligible():
  # An eligible sample with score -inf is among the eligible ones and must be
  # returned before any -1 slot (and +inf likewise for bottom_k).
  scores = jnp.array([-jnp.inf, 1.0, -jnp.inf, 0.5])
  eligible = jnp.array([True, False, True, True])
  assert selection.top_k_masked(scores, eligible, 4).tolist() == [3, 0, 2, -1]
  scores = jnp.array([jnp.inf, 1.0, jnp.inf, 0.5])
  assert selection.bottom_k_masked(scores, eligible, 4).tolist() == [3, 0, 2, -1]


def test_k_larger_than_the_pool_pads_with_minus_one():
  # "If fewer than k samples are eligible, the remaining slots are -1": k > N is
  # such a case (3 samples, 2 eligible, k = 5).
  scores = jnp.array([0.3, 0.1, 0.2])
  eligible = jnp.array([True, False, True])
  assert selection.top_k_masked(scores, eligible, 5).tolist() == [0, 2, -1, -1, -1]
  assert selection.bottom_k_masked(scores, eligible, 5).tolist() == [2, 0, -1, -1, -1]
  # msal_d: 3 unlabeled samples, budget 4 > N = 3.
  z = jnp.array([[1.0, 0.2], [-0.5, 0.9], [0.1, -1.0]])
  got = selection.msal_d(z, prototypes.simplex(3), jnp.zeros(3, bool), budget=4, beta=1.0)
  assert sorted(got.tolist()[:3]) == [0, 1, 2] and got.tolist()[3] == -1


# ---------------------------------------------------------------------------
# msal_d against the reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed, n, num_classes, budget, beta, frac_labeled",
    [
        (2, 500, 10, 50, 5.0, 0.1),
        (3, 301, 10, 23, 1.5, 0.2),  # m = ceil(34.5) = 35
        (4, 120, 10, 7, 1.0, 0.0),  # m = budget: every candidate is returned
        (15, 400, 4, 40, 10.0, 0.05),  # beta * budget = 400 = N: no pre-filtering
        (6, 97, 3, 10, 20.0, 0.5),  # beta * budget = 200 > N: clipped to N
        (7, 333, 10, 9, 2.5, 0.4),  # C does not divide the budget
        (8, 250, 3, 30, 1.25, 0.0),  # m = ceil(37.5) = 38
    ],
)
def test_msal_d_matches_reference(seed, n, num_classes, budget, beta, frac_labeled):
  z, labeled = _problem(seed, n, num_classes, frac_labeled)
  p = prototypes.simplex(num_classes)
  expected, parts = _ref_msal_d_parts(z.astype(np.float64), np.asarray(p, np.float64), labeled,
                                      budget, beta)
  _assert_no_near_ties(parts)
  got = msal_d_jit(jnp.asarray(z), p, jnp.asarray(labeled), budget=budget, beta=beta)
  assert isinstance(got, jax.Array) and got.dtype == jnp.int32 and got.shape == (budget,)
  assert got.tolist() == expected
  # numpy inputs give the same
  assert msal_d_jit(z, np.asarray(p), labeled, budget=budget, beta=beta).tolist() == expected


@pytest.mark.parametrize("num_classes, budget, beta", [(10, 30, 5.0), (40, 40, 3.0),
                                                       (100, 120, 2.0)])
def test_msal_d_with_the_implicit_simplex_matches_reference(num_classes, budget, beta):
  # prototypes=None is prototypes.simplex(C): the same selection as the reference.
  z, labeled = _problem(0, 600, num_classes, 0.1)
  p = prototypes.simplex_numpy(num_classes)
  expected, parts = _ref_msal_d_parts(z.astype(np.float64), p, labeled, budget, beta)
  _assert_no_near_ties(parts)
  got = msal_d_jit(jnp.asarray(z), None, jnp.asarray(labeled), budget=budget, beta=beta)
  assert got.tolist() == expected


def test_msal_d_zero_feature_vector():
  # A zero z has msal 0 (guarded): u = 0 beats every non-zero sample of the
  # C = 3 simplex (whose max cosine is >= 1/2), so it is a candidate; its
  # cosines are all 0, class 0 by the tie rule, closeness 0.
  # (Same shapes and static arguments as a reference case above: no new compile.)
  z, labeled = _problem(9, 301, 10, 0.2)
  z[11] = 0.0
  labeled[11] = False
  p = prototypes.simplex(10)
  expected, parts = _ref_msal_d_parts(z.astype(np.float64), np.asarray(p, np.float64), labeled,
                                      23, 1.5)
  _assert_no_near_ties(parts)
  assert 11 in parts["cand"] and parts["close"][11] == 0.0
  got = msal_d_jit(z, p, labeled, budget=23, beta=1.5)
  assert got.tolist() == expected


@pytest.mark.parametrize("score", ["entropy", "margin", "least_confidence"])
def test_msal_d_with_another_uncertainty(score):
  z, labeled = _problem(7, 300, 10, 0.2)
  p = prototypes.simplex(10)
  logits = 3.0 * z @ np.asarray(p).T
  u = getattr(scoring, score)(jnp.asarray(logits))
  expected, parts = _ref_msal_d_parts(z.astype(np.float64), np.asarray(p, np.float64), labeled,
                                      20, 3.0, np.asarray(u, np.float64))
  _assert_no_near_ties(parts)
  got = msal_d_jit(z, p, labeled, budget=20, beta=3.0, uncertainty=u)
  assert got.tolist() == expected
  # The pre-filter really changed: the MSAL-based answer is another one.
  assert got.tolist() != _ref_msal_d(z.astype(np.float64), np.asarray(p, np.float64), labeled,
                                     20, 3.0)


def test_msal_d_entropy_prefilter_against_numpy_entropy():
  # The same, with u computed by a float64 numpy entropy (the reference) rather
  # than by scoring.entropy: the candidate set must be the numpy one.
  z, labeled = _problem(21, 300, 10, 0.3)
  p = prototypes.simplex(10)
  logits = (2.0 * z @ np.asarray(p).T).astype(np.float32)
  lg = logits.astype(np.float64)
  prob = np.exp(lg - lg.max(1, keepdims=True))
  prob /= prob.sum(1, keepdims=True)
  ent = -(prob * np.log(prob)).sum(1)
  expected, parts = _ref_msal_d_parts(z.astype(np.float64), np.asarray(p, np.float64), labeled,
                                      20, 3.0, ent)
  _assert_no_near_ties(parts)
  got = msal_d_jit(z, p, labeled, budget=20, beta=3.0,
                   uncertainty=scoring.entropy(jnp.asarray(logits)))
  assert got.tolist() == expected


# ---------------------------------------------------------------------------
# msal_d: hand-derived cases
# ---------------------------------------------------------------------------


def test_msal_d_hand_case_c2_scalar_features():
  # C = 2, K = 1, P = [[1], [-1]]: cos(z, p_0) = sign(z), so every non-zero
  # sample has closeness exactly 1 and the class is 0 for z > 0, 1 for z < 0.
  # Integer features keep |z| exact in float32.
  z = jnp.array([[5.0], [-1.0], [2.0], [3.0], [-4.0], [6.0], [-2.0]])
  labeled = jnp.array([True, False, False, False, False, False, True])
  p = prototypes.simplex(2)
  # (a) No uncertainty given: u = -1 for all, ties -> lower index. budget 2,
  #     beta 2 -> m = 4: candidates = the 4 lowest unlabeled indices {1, 2, 3, 4}.
  #     class 0: 2, 3 (closeness tie -> rank 0 is 2); class 1: 1, 4 (rank 0 is 1).
  #     Rank 0 = {1, 2}, equal closeness -> index order: [1, 2].
  assert selection.msal_d(z, p, labeled, budget=2, beta=2).tolist() == [1, 2]
  # (b) budget 3, beta 1 -> m = 3: candidates {1, 2, 3}; class 0 = [2 (r0), 3 (r1)],
  #     class 1 = [1 (r0)] -> [1, 2, 3].
  assert selection.msal_d(z, p, labeled, budget=3, beta=1).tolist() == [1, 2, 3]
  # (c) Given uncertainty: unlabeled u = {1: .1, 2: .5, 3: .9, 4: .7, 5: .8}.
  #     budget 2, beta 1.5 -> m = 3: candidates {3, 5, 4} (highest u).
  #     class 0: 3, 5 (ranks 0, 1 by index); class 1: 4 (rank 0).
  #     Rank 0 = {3, 4}: closeness tie -> [3, 4].
  u = jnp.array([99.0, 0.1, 0.5, 0.9, 0.7, 0.8, 99.0])  # labeled ones must be ignored
  assert selection.msal_d(z, p, labeled, budget=2, beta=1.5, uncertainty=u).tolist() == [3, 4]
  #     budget 3, beta 1 -> the same 3 candidates, order [3, 4, 5].
  assert selection.msal_d(z, p, labeled, budget=3, beta=1, uncertainty=u).tolist() == [3, 4, 5]


def _polar(degrees, radius):
  t = math.radians(degrees)
  return [radius * math.cos(t), radius * math.sin(t)]


def test_msal_d_hand_case_c3():
  # C = 3 simplex: prototypes at angles 0, 120 and 240 degrees (P = V_2^T).
  # Each feature at angle a has closeness cos(distance to the nearest prototype):
  #   idx  angle  class  distance  closeness
  #    0     5      0        5      .9962
  #    1    58      0       58      .5299
  #    2   130      1       10      .9848
  #    3   175      1       55      .5736
  #    4   160      1       40      .7660
  #    5   252      2       12      .9781
  #    6   292      2       52      .6157
  #    7   330      0       30      .8660   (labeled)
  #    8    85      1       35      .8192
  # u = -closeness; unlabeled by u descending: 1, 3, 6, 4, 8, 5, 2, 0.
  # budget 2, beta 2.5 -> m = ceil(5) = 5: candidates {1, 3, 6, 4, 8}.
  #   class 0: [1]; class 1 by closeness: [8, 4, 3]; class 2: [6].
  #   rank 0 = {1 (.53), 8 (.82), 6 (.62)} -> by closeness 8, 6, 1; rank 1: 4; rank 2: 3.
  #   Full order [8, 6, 1, 4, 3].
  angles = [5, 58, 130, 175, 160, 252, 292, 330, 85]
  radii = [1.0, 2.0, 0.5, 3.0, 1.5, 0.7, 4.0, 1.0, 2.5]  # the scale must not matter
  z = jnp.array([_polar(a, r) for a, r in zip(angles, radii, strict=True)])
  labeled = jnp.zeros(9, bool).at[7].set(True)
  p = prototypes.simplex(3)
  assert selection.msal_d(z, p, labeled, budget=2, beta=2.5).tolist() == [8, 6]
  # beta 2.25 -> m = ceil(4.5) = 5, the same candidates (floor/round would give 4
  # candidates {1, 3, 6, 4} and the answer [4, 6]).
  assert selection.msal_d(z, p, labeled, budget=2, beta=2.25).tolist() == [8, 6]
  # Short classes 0 and 2 are filled from class 1: budget 4, beta 1.25 -> m = 5.
  assert selection.msal_d(z, p, labeled, budget=4, beta=1.25).tolist() == [8, 6, 1, 4]
  assert selection.msal_d(z, p, labeled, budget=5, beta=1).tolist() == [8, 6, 1, 4, 3]
  # beta 100: all 8 unlabeled are candidates. class 0: [0 (.996), 1]; class 1:
  # [2 (.985), 8, 4, 3]; class 2: [5 (.978), 6]. rank 0 = 0, 2, 5; rank 1 = 8 (.82),
  # 6 (.62), 1 (.53); rank 2 = 4; rank 3 = 3.
  assert selection.msal_d(z, p, labeled, budget=8, beta=100).tolist() == [0, 2, 5, 8, 6, 1, 4, 3]
  # Fewer unlabeled (8) than the budget (9): one -1 slot.
  assert selection.msal_d(z, p, labeled, budget=9, beta=1).tolist() == [0, 2, 5, 8, 6, 1, 4, 3,
                                                                          -1]


# ---------------------------------------------------------------------------
# msal_d: properties
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed, num_classes, budget, beta",
    [(11, 5, 25, 8.0), (12, 3, 30, 6.0), (13, 10, 20, 10.0)],
)
def test_msal_d_equal_quota_when_every_class_has_enough(seed, num_classes, budget, beta):
  z, labeled = _problem(seed, 1500, num_classes, 0.1)
  p64 = np.asarray(prototypes.simplex(num_classes), np.float64)
  quota = budget // num_classes
  # Independently of the reference: candidates = the m unlabeled samples with the
  # lowest max-cosine; per class, the `quota` closest of them.
  cos = z.astype(np.float64) @ p64.T / np.linalg.norm(z.astype(np.float64), axis=1)[:, None]
  s = cos.max(1)
  unl = np.flatnonzero(~labeled)
  m = math.ceil(beta * budget)
  cand = unl[np.argsort(s[unl], kind="stable")[:m]]
  cls = cos[cand].argmax(1)
  counts = np.bincount(cls, minlength=num_classes)
  assert (counts >= quota).all(), f"precondition: every class needs {quota}, got {counts}"
  expected = set()
  for c in range(num_classes):
    members = cand[cls == c]
    expected |= set(members[np.argsort(-s[members], kind="stable")[:quota]].tolist())
  got = msal_d_jit(z, prototypes.simplex(num_classes), labeled, budget=budget, beta=beta)
  assert set(got.tolist()) == expected
  assert len(set(got.tolist())) == budget
  cls_of = cos[np.asarray(got)].argmax(1)
  np.testing.assert_array_equal(np.bincount(cls_of, minlength=num_classes),
                                np.full(num_classes, quota))
  # Round robin: the first C picks are one per class.
  assert sorted(cls_of[:num_classes].tolist()) == list(range(num_classes))


def test_msal_d_fills_short_classes():
  # Every sample sits near prototype 0 but one near prototype 1 and none near 2:
  # the quota of 2 per class cannot be met, the others fill it, 6 distinct.
  p = np.asarray(prototypes.simplex(3), np.float64)
  rng = np.random.default_rng(0)
  z = (p[0] + 0.3 * rng.normal(size=(30, 2))).astype(np.float32)
  z[5] = p[1] * 2
  labeled = np.zeros(30, bool)
  expected, parts = _ref_msal_d_parts(z.astype(np.float64), p, labeled, 6, 5)
  _assert_no_near_ties(parts, check_u=False)
  got = selection.msal_d(z, p.astype(np.float32), labeled, budget=6, beta=5)
  assert got.tolist() == expected
  assert len(set(got.tolist())) == 6 and min(got.tolist()) >= 0
  assert 5 in got.tolist()[:2]  # the lone class-1 sample is a rank-0 pick


@pytest.mark.parametrize("frac_labeled", [0.0, 0.5, 0.9, 0.97])
def test_msal_d_distinct_unlabeled_and_padding(frac_labeled):
  for seed in range(3):
    z, labeled = _problem(100 + seed, 97, 3, frac_labeled)
    num_unlabeled = int((~labeled).sum())
    for budget, beta in [(5, 1.0), (10, 20.0)]:
      got = np.asarray(msal_d_jit(z, prototypes.simplex(3), labeled, budget=budget, beta=beta))
      assert got.shape == (budget,) and got.dtype == np.int32
      picked = got[got >= 0]
      assert len(picked) == min(budget, num_unlabeled)
      assert (got[len(picked):] == -1).all()  # padding only at the end
      assert len(set(picked.tolist())) == len(picked)
      assert not labeled[picked].any()  # never a labeled sample
      if num_unlabeled <= budget:
        assert set(picked.tolist()) == set(np.flatnonzero(~labeled).tolist())


def test_msal_d_jit_equals_eager():
  seed, n, num_classes, budget, beta = 31, 250, 3, 30, 1.25
  z, labeled = _problem(seed, n, num_classes, 0.3)
  p = prototypes.simplex(num_classes)
  expected, parts = _ref_msal_d_parts(z.astype(np.float64), np.asarray(p, np.float64), labeled,
                                      budget, beta)
  _assert_no_near_ties(parts)
  eager = selection.msal_d(z, p, labeled, budget=budget, beta=beta)
  assert isinstance(eager, jax.Array) and eager.tolist() == expected
  explicit = selection.msal_d(z, p, labeled, budget=budget, beta=beta, uncertainty=None)
  assert explicit.tolist() == expected
  f = jax.jit(functools.partial(selection.msal_d, budget=budget, beta=beta))
  assert f(z, p, labeled).tolist() == expected
  # A new mask re-uses the compiled function and still agrees with the reference.
  labeled2 = np.random.default_rng(seed).random(n) < 0.6
  expected2, parts2 = _ref_msal_d_parts(z.astype(np.float64), np.asarray(p, np.float64),
                                        labeled2, budget, beta)
  _assert_no_near_ties(parts2)
  assert f(z, p, labeled2).tolist() == expected2


# ---------------------------------------------------------------------------
# Beyond the brief's spec: API checks carried over from the earlier version of
# this file (they name implementation details, so they are not independent).
# The earlier file also expected budget > N to raise ValueError, which the
# brief's padding rule contradicts (see test_k_larger_than_the_pool_pads_with_minus_one).
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"budget": 5, "beta": 0.5}, "beta must be a number >= 1"),
        ({"budget": 0, "beta": 2.0}, "k must be a Python int"),
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
