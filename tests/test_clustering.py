"""k-center, k-means, BADGE and DBAL against float64 numpy / scikit-learn references.

The references are written from DESIGN.md section 3 and share no code with
msal_jax.clustering. The randomised ones are fed the same random draws (the
uniforms of BADGE, the Gumbel noise of the k-means++ seeding), regenerated here
from the key. Each reference also reports the smallest gap its answer hinges on
(an argmax, an inverse-CDF boundary, a top-m boundary) and the test data must
keep it above float32 rounding, so exact equality of index lists is fair.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msal_jax import clustering, data, loop, strategies

REL_TOL = 1e-4  # relative gap required where the answer is an argmax or a boundary


def _problem(seed, n, d, frac_labeled):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=(1, d)) + 3.0  # off-centre
  return x.astype(np.float32), rng.random(n) < frac_labeled


def _softmax(logits):
  z = logits - logits.max(1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(1, keepdims=True)


def _sq(x, y):
  return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


# ---------------------------------------------------------------------------
# k-center
# ---------------------------------------------------------------------------


def _ref_kcenter(x, labeled, budget):
  """Farthest-first over the full N x N distance matrix (as the toolkits do it)."""
  x = x.astype(np.float64)
  dist = _sq(x, x)
  avail = ~labeled
  min_d = dist[:, labeled].min(1) if labeled.any() else None
  out, gaps = [], []
  for _ in range(budget):
    if not avail.any():
      out.append(-1)
      continue
    if min_d is None:  # no labeled sample: farthest from the unlabeled mean
      score = ((x - x[avail].mean(0)) ** 2).sum(1)
    else:
      score = min_d
    s = np.sort(score[avail])[::-1]
    if len(s) > 1:
      gaps.append((s[0] - s[1]) / s[0])
    j = int(np.flatnonzero(avail & (score == s[0]))[0])
    out.append(j)
    avail[j] = False
    min_d = dist[:, j] if min_d is None else np.minimum(min_d, dist[:, j])
  return out, min(gaps, default=1.0)


kcenter_jit = jax.jit(clustering.kcenter, static_argnames="budget")


@pytest.mark.parametrize(
    "seed, n, d, budget, frac",
    # 300 samples, 60 picks: many look-ahead refills; with and without labeled
    # samples (then the first pick is the farthest from the unlabeled mean);
    # 12 samples, 15 picks: fewer samples than the look-ahead and -1 padding.
    [(0, 300, 8, 60, 0.1), (1, 300, 8, 60, 0.0), (2, 12, 3, 15, 0.3)],
)
def test_kcenter_matches_full_matrix_greedy(seed, n, d, budget, frac):
  x, labeled = _problem(seed, n, d, frac)
  expected, gap = _ref_kcenter(x, labeled, budget)
  assert gap > REL_TOL, f"test data: near-tie in the greedy ({gap})"
  got = kcenter_jit(x, labeled, budget=budget)
  assert got.dtype == jnp.int32 and got.tolist() == expected


def test_min_sq_dist_to_set_blocks():
  # More members than one block (128), and none.
  x, members = _problem(4, 400, 6, 0.6)
  f = jax.jit(lambda x, m: clustering.min_sq_dist_to_set(x, jnp.sum(x * x, 1), m))
  ref = _sq(x.astype(np.float64), x[members].astype(np.float64)).min(1)
  np.testing.assert_allclose(f(x, members), ref, rtol=1e-4, atol=1e-3)
  assert np.isinf(np.asarray(f(x, np.zeros(400, bool)))).all()


# ---------------------------------------------------------------------------
# BADGE
# ---------------------------------------------------------------------------


def _grad_embedding(logits, h):
  p = _softmax(logits.astype(np.float64))
  a = p - np.eye(p.shape[1])[p.argmax(1)]
  return (a[:, :, None] * h.astype(np.float64)[:, None, :]).reshape(len(h), -1)


def _ref_badge(uniforms, logits, h, labeled):
  """DeepAL+'s init_centers on the explicit [N, C*D] embeddings, inverse CDF at `uniforms`."""
  g = _grad_embedding(logits, h)
  norms = (g**2).sum(1)
  avail = ~labeled
  s = np.sort(norms[avail])[::-1]
  gap = (s[0] - s[1]) / s[0]
  first = int(np.flatnonzero(avail & (norms == s[0]))[0])
  out, d2 = [first], ((g - g[first]) ** 2).sum(1)
  avail[first] = False
  for u in uniforms[1:]:
    mass = np.where(avail, d2, 0.0)
    cdf = np.cumsum(mass)
    target = u * cdf[-1]
    j = int(np.searchsorted(cdf, target, side="right"))
    gap = min(gap, np.abs(cdf - target).min() / cdf[-1])
    out.append(j)
    avail[j] = False
    d2 = np.minimum(d2, ((g - g[j]) ** 2).sum(1))
  return out, gap


def test_gradient_distance_factorisation_equals_outer_products():
  rng = np.random.default_rng(0)
  logits = (rng.normal(size=(50, 7)) * 2).astype(np.float32)
  h = rng.normal(size=(50, 11)).astype(np.float32)
  g = _grad_embedding(logits, h)
  idx = np.array([0, 3, 49, 3])
  a = clustering.gradient_embedding_factors(jnp.asarray(logits))
  got = clustering.gradient_sq_dists(a, jnp.asarray(h), jnp.asarray(idx))
  np.testing.assert_allclose(got, _sq(g, g[idx]), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(got)[idx[:3], [0, 1, 2]], 0.0, atol=1e-5)


badge_jit = jax.jit(clustering.badge, static_argnames="budget")
badge_u_jit = jax.jit(clustering.badge_from_uniforms)


@pytest.mark.parametrize("seed, n, budget, frac", [(5, 200, 20, 0.2), (7, 200, 20, 0.0)])
def test_badge_seeding_matches_reference_with_the_same_draws(seed, n, budget, frac):
  rng = np.random.default_rng(seed)
  logits = (rng.normal(size=(n, 5)) * 1.5).astype(np.float32)
  h = np.abs(rng.normal(size=(n, 12))).astype(np.float32)  # ReLU-like embeddings
  labeled = rng.random(n) < frac
  uniforms = rng.random(budget).astype(np.float32)
  expected, gap = _ref_badge(uniforms.astype(np.float64), logits, h, labeled.copy())
  assert gap > REL_TOL, f"test data: near-tie or CDF boundary ({gap})"
  assert badge_u_jit(uniforms, logits, h, labeled).tolist() == expected
  # badge(key) draws jax.random.uniform(key, (budget,)).
  key = jax.random.PRNGKey(seed)
  u = jax.random.uniform(key, (budget,))
  assert badge_jit(key, logits, h, labeled, budget=budget).tolist() == badge_u_jit(
      u, logits, h, labeled).tolist()


# ---------------------------------------------------------------------------
# k-means++ seeding, Lloyd, the k-means query
# ---------------------------------------------------------------------------


def _ref_seeds(key, x, w, num, rounds):
  """D^2 seeding in batches: Gumbel top-m of log w + log min-distance (same noise)."""
  x = x.astype(np.float64)
  n = len(x)
  gumbel = lambda r: np.asarray(jax.random.gumbel(jax.random.fold_in(key, r), (n,)), np.float64)
  with np.errstate(divide="ignore"):
    log_w = np.where(w > 0, np.log(np.where(w > 0, w, 1.0)), -np.inf)
  s0 = log_w + gumbel(0)
  first = int(np.argmax(s0))
  gap = np.diff(np.sort(s0)[-2:])[0]
  m = max(1, -(-(num - 1) // rounds))
  seeds, avail = [first], w > 0
  avail[first] = False
  min_d = ((x - x[first]) ** 2).sum(1)
  r = 0
  while len(seeds) < num:
    with np.errstate(divide="ignore"):
      s = np.where(avail & (min_d > 0), log_w + np.log(min_d) + gumbel(r + 1), -np.inf)
    order = np.argsort(-s, kind="stable")
    take = [int(i) for i in order[:m] if s[i] > -np.inf][: num - len(seeds)]
    if m < n:
      gap = min(gap, s[order[m - 1]] - s[order[m]])
    seeds += take
    avail[take] = False
    min_d = np.minimum(min_d, _sq(x, x[take]).min(1))
    r += 1
  return seeds, gap


@pytest.mark.parametrize("rounds", [19, 4])
def test_kmeanspp_seeds_match_reference_with_the_same_noise(rounds):
  x, _ = _problem(7, 300, 6, 0.0)
  w = np.random.default_rng(7).uniform(0.0, 2.0, 300).astype(np.float32)
  w[:30] = 0.0  # weight 0: never a seed
  key = jax.random.PRNGKey(3)
  expected, gap = _ref_seeds(key, x, w, 20, rounds)
  assert gap > REL_TOL, f"test data: near-tie in a top-m draw ({gap})"
  seeds = jax.jit(clustering.kmeanspp_seeds, static_argnames=("num", "rounds"))
  got = seeds(key, jnp.asarray(x), jnp.asarray(w), num=20, rounds=rounds)
  assert got.tolist() == expected and min(expected) >= 30


def _clustered(seed, n, d, k):
  rng = np.random.default_rng(seed)
  mu = rng.normal(size=(k, d)) * 3
  return (mu[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("weighted", [False, True])
def test_lloyd_inertia_matches_sklearn_from_the_same_centres(weighted):
  sklearn_cluster = pytest.importorskip("sklearn.cluster")
  x = _clustered(8, 600, 12, 8)
  rng = np.random.default_rng(8)
  w = rng.uniform(0.1, 3.0, 600).astype(np.float32) if weighted else np.ones(600, np.float32)
  init = x[rng.choice(600, 15, replace=False)]
  km = sklearn_cluster.KMeans(n_clusters=15, init=init, n_init=1, max_iter=100, tol=0.0,
                              algorithm="lloyd").fit(x, sample_weight=w)
  lloyd = jax.jit(clustering.lloyd, static_argnames="iters")
  _, assign, d = lloyd(x, w, init, iters=100)
  inertia = float(np.sum(w * np.asarray(d, np.float64)))
  assert inertia == pytest.approx(km.inertia_, rel=0.01)
  assert (np.asarray(assign) == km.labels_).mean() > 0.99
  # A fixed iteration count: sklearn with the same max_iter gives the same partition.
  km3 = sklearn_cluster.KMeans(n_clusters=15, init=init, n_init=1, max_iter=3, tol=0.0,
                               algorithm="lloyd").fit(x, sample_weight=w)
  _, _, d3 = lloyd(x, w, init, iters=3)
  assert float(np.sum(w * np.asarray(d3, np.float64))) == pytest.approx(km3.inertia_, rel=0.01)


def _ref_greedy_kmeanspp(u, x, w):
  """scikit-learn's greedy k-means++ (``_kmeans_plusplus``) in float64, inverse CDF at ``u``."""
  x, w = x.astype(np.float64), w.astype(np.float64)
  avail = w > 0
  cdf = np.cumsum(w)
  first = int(np.searchsorted(cdf, u[0, 0] * cdf[-1], side="right"))
  gap, cdf_gap = 1.0, np.abs(cdf - u[0, 0] * cdf[-1]).min() / cdf[-1]
  seeds, closest = [first], _sq(x, x[first][None])[:, 0]
  avail[first] = False
  for t in range(1, len(u)):
    cdf = np.cumsum(np.where(avail, w * closest, 0.0))
    targets = u[t] * cdf[-1]
    cand = np.searchsorted(cdf, targets, side="right")
    cdf_gap = min(cdf_gap, min(np.abs(cdf - v).min() for v in targets) / cdf[-1])
    d = np.minimum(closest[:, None], _sq(x, x[cand]))
    pots = w @ d
    b = int(np.argmin(pots))
    others = pots[cand != cand[b]]
    if len(others):
      gap = min(gap, (others.min() - pots[b]) / pots[b])
    seeds.append(int(cand[b]))
    avail[cand[b]] = False
    closest = d[:, b]
  return seeds, gap, cdf_gap


def test_greedy_kmeanspp_matches_sklearns_algorithm_with_the_same_draws():
  x, _ = _problem(13, 300, 6, 0.0)
  w = np.random.default_rng(13).uniform(0.0, 2.0, 300).astype(np.float32)
  w[:30] = 0.0  # weight 0: never a seed
  trials = clustering.local_trials(20)
  assert trials == 2 + 2  # sklearn: 2 + int(log(20))
  u = np.asarray(clustering.restart_uniforms(jax.random.PRNGKey(3), 2, 20, trials))
  for r in range(2):
    expected, gap, cdf_gap = _ref_greedy_kmeanspp(u[r], x, w)
    assert gap > REL_TOL, f"test data: near-tie in the candidates' potentials ({gap})"
    # A float32 cumsum of 300 positive terms is within 300 * 2^-24 < 2e-5 of the float64 one.
    assert cdf_gap > 2e-5, f"test data: a draw near an inverse-CDF boundary ({cdf_gap})"
    got = jax.jit(clustering.greedy_kmeanspp)(u[r], x, w)
    assert got.tolist() == expected and min(expected) >= 30


def _inertia(x, centres):
  return float(_sq(x.astype(np.float64), np.asarray(centres, np.float64)).min(1).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_inertia_within_half_a_percent_of_sklearn(seed):
  # DeepAL+'s KMeans(n_clusters=b) in the scikit-learn it pins (1.0.2): n_init=10, greedy
  # k-means++, to convergence; fitted on the unlabeled rows only (ours: labeled at weight 0).
  sklearn_cluster = pytest.importorskip("sklearn.cluster")
  x = _clustered(13, 700, 12, 8)
  labeled = np.random.default_rng(13).random(700) < 0.2
  km = sklearn_cluster.KMeans(n_clusters=20, n_init=10, random_state=seed).fit(x[~labeled])
  fit = jax.jit(clustering.kmeans_fit, static_argnames="num")
  centres, assign, d = fit(jax.random.PRNGKey(seed), x, (~labeled).astype(np.float32), num=20)
  ours = _inertia(x[~labeled], centres)  # from the centres, independently of `d`
  assert float(np.sum(np.asarray(d, np.float64)[~labeled])) == pytest.approx(ours, rel=1e-4)
  assert ours <= 1.005 * km.inertia_
  assert np.asarray(assign).tolist() == _sq(x, np.asarray(centres)).argmin(1).tolist()


def test_kmeans_fit_keeps_the_best_restart():
  # n_init restarts: each greedy seeding (restart_uniforms row r) then Lloyd with sklearn's
  # tolerance (1e-4 x the mean feature variance); the fit is the one of least inertia.
  x = _clustered(14, 400, 6, 10)
  w = np.ones(400, np.float32)
  num, n_init = 12, 4
  key = jax.random.PRNGKey(14)
  u = clustering.restart_uniforms(key, n_init, num, clustering.local_trials(num))
  tol = 1e-4 * float(np.var(x.astype(np.float64), axis=0).mean())
  inertias = []
  for r in range(n_init):
    seeds = np.asarray(clustering.greedy_kmeanspp(u[r], x, w))
    centres, _, _ = clustering.lloyd(x, w, x[seeds], tol=tol)
    inertias.append(_inertia(x, centres))
  centres, _, _ = jax.jit(clustering.kmeans_fit, static_argnames=("num", "n_init"))(
      key, x, w, num=num, n_init=n_init)
  assert _inertia(x, centres) == pytest.approx(min(inertias), rel=1e-5)
  assert max(inertias) > min(inertias) * 1.001  # the restarts differ: the choice matters


def test_lloyd_relocates_an_empty_cluster_as_sklearn():
  # 1-D points 0, 1, 10, 11 from centres 0.5 and 100: centre 1 gets no point. sklearn moves it
  # to the point farthest from its centre (11, at 10.5 from 0.5); then {0, 1} and {10, 11}.
  x = np.array([[0.0], [1.0], [10.0], [11.0]], np.float32)
  w = np.ones(4, np.float32)
  init = np.array([[0.5], [100.0]], np.float32)
  centres, assign, d = clustering.lloyd(x, w, init)
  np.testing.assert_allclose(np.asarray(centres)[:, 0], [0.5, 10.5], atol=1e-5)
  assert assign.tolist() == [0, 0, 1, 1] and float(np.sum(d)) == pytest.approx(1.0, abs=1e-4)
  km = pytest.importorskip("sklearn.cluster").KMeans(
      n_clusters=2, init=init, n_init=1, algorithm="lloyd").fit(x)
  np.testing.assert_allclose(km.cluster_centers_[:, 0], [0.5, 10.5], atol=1e-5)
  # Without relocation the empty centre stays: one cluster of all four (mean 5.5).
  centres, assign, _ = clustering.lloyd(x, w, init, relocate=False)
  np.testing.assert_allclose(np.asarray(centres)[:, 0], [5.5, 100.0], atol=1e-5)
  assert assign.tolist() == [0, 0, 0, 0]


def _ref_nearest_per_cluster(x, centres, eligible, budget):
  """Assign to the nearest centre; per cluster the nearest eligible member; fill by distance."""
  d = _sq(x.astype(np.float64), centres.astype(np.float64))
  assign, dist = d.argmin(1), d.min(1)
  picks = []
  for k in range(budget):
    members = np.flatnonzero(eligible & (assign == k))
    if len(members):
      picks.append(int(members[np.argmin(dist[members])]))
  rest = [i for i in np.argsort(dist, kind="stable") if eligible[i] and i not in picks]
  out = picks + rest[: budget - len(picks)]
  return out + [-1] * (budget - len(out))


def test_kmeans_query_is_the_member_nearest_each_centre():
  x = _clustered(9, 400, 10, 6)
  labeled = np.random.default_rng(9).random(400) < 0.25
  key = jax.random.PRNGKey(9)
  got = jax.jit(clustering.kmeans, static_argnames="budget")(key, x, labeled, budget=25)
  fit = jax.jit(clustering.kmeans_fit, static_argnames="num")
  centres, _, _ = fit(key, x, (~labeled).astype(np.float32), num=25)
  assert got.tolist() == _ref_nearest_per_cluster(x, np.asarray(centres), ~labeled, 25)


def test_nearest_per_cluster_fills_empty_clusters():
  # Cluster 1 has no eligible member (its only row, 2, is labeled); cluster 3 is empty.
  # Per cluster: 0 -> row 1 (0.1 < 0.5), 2 -> row 4. Fill by distance: row 3 (0.2), row 0 (0.5).
  assign = jnp.array([0, 0, 1, 2, 2, 0])
  dist = jnp.array([0.5, 0.1, 0.0, 0.2, 0.05, 0.9])
  eligible = jnp.array([True, True, False, True, True, True])
  got = clustering.nearest_per_cluster(assign, dist, eligible, budget=4)
  assert got.tolist() == [1, 4, 3, 0]


# ---------------------------------------------------------------------------
# DBAL
# ---------------------------------------------------------------------------


def _ref_lloyd(x, w, centres, iters):
  assign = _sq(x, centres).argmin(1)
  for _ in range(iters):
    for k in range(len(centres)):
      if w[assign == k].sum() > 0:
        centres[k] = (w[assign == k, None] * x[assign == k]).sum(0) / w[assign == k].sum()
    new = _sq(x, centres).argmin(1)
    if ((new != assign) & (w > 0)).sum() == 0:
      break
    assign = new
  return centres


def test_dbal_matches_reference():
  rng = np.random.default_rng(10)
  n, budget, beta = 300, 12, 4.0
  x = _clustered(10, n, 8, 5)
  logits = (rng.normal(size=(n, 6)) * 2).astype(np.float32)
  labeled = rng.random(n) < 0.2
  key = jax.random.PRNGKey(10)
  # 1. the 48 unlabeled samples of smallest margin p1 - p2 (ties: lower index)
  p = np.sort(_softmax(logits.astype(np.float64)), 1)
  margin = p[:, -1] - p[:, -2]
  order = sorted(np.flatnonzero(~labeled), key=lambda i: (margin[i], i))
  cand = np.array(order[:48])
  assert margin[order[48]] - margin[order[47]] > REL_TOL
  # 2. weighted k-means++ (sequential) and Lloyd, weights 1 - margin
  xc = x[cand].astype(np.float64)
  xc -= xc.mean(0)
  w = 1.0 - margin[cand]
  seeds, gap = _ref_seeds(key, xc, w, budget, budget - 1)
  assert gap > REL_TOL
  centres = _ref_lloyd(xc, w, xc[seeds].copy(), clustering.DBAL_ITERS)
  # 3. per cluster the candidate nearest its centre
  expected = cand[_ref_nearest_per_cluster(xc, centres, np.ones(48, bool), budget)]
  got = jax.jit(clustering.dbal, static_argnames=("budget", "beta"))(
      key, logits, x, labeled, budget=budget, beta=beta)
  assert got.tolist() == expected.tolist()


# ---------------------------------------------------------------------------
# The registered strategies: exactly b distinct unlabeled, padding, determinism
# ---------------------------------------------------------------------------

NAMES = ["kcenter", "kmeans", "badge", "dbal"]


def _outputs(seed, n):
  rng = np.random.default_rng(seed)
  h = np.maximum(_clustered(seed, n, 16, 5), 0.0)
  logits = (h @ rng.normal(size=(16, 10)) * 0.3).astype(np.float32)
  return strategies.PoolOutputs(logits=jnp.asarray(logits), features=jnp.asarray(h))


@pytest.mark.parametrize("name", NAMES)
def test_strategy_contract(name):
  strat = strategies.STRATEGIES[name]
  assert strat.head == "linear" and not strat.needs_mc
  select = jax.jit(strat.select, static_argnames=("budget", "beta"))
  outputs = _outputs(11, 240)
  labeled = np.random.default_rng(11).random(240) < 0.3
  key = jax.random.PRNGKey(0)
  got = np.asarray(select(key, outputs, labeled, budget=40, beta=3.0))
  assert got.shape == (40,) and len(set(got.tolist())) == 40
  assert (got >= 0).all() and not labeled[got].any()
  again = select(key, outputs, labeled, budget=40, beta=3.0)
  assert again.tolist() == got.tolist()  # deterministic for a key
  if name in ("kmeans", "badge", "dbal"):  # randomised: another key, other draws
    other = select(jax.random.PRNGKey(1), outputs, labeled, budget=40, beta=3.0)
    assert other.tolist() != got.tolist()
  # Fewer unlabeled samples (7) than the budget: all of them, then -1.
  few = np.ones(240, bool)
  few[[3, 50, 51, 99, 120, 200, 239]] = False
  padded = select(key, outputs, few, budget=40, beta=3.0).tolist()
  assert sorted(padded[:7]) == [3, 50, 51, 99, 120, 200, 239] and padded[7:] == [-1] * 33


@pytest.fixture(scope="module")
def tiny(mnist5k_head) -> data.Dataset:
  return mnist5k_head(200, 50)


@pytest.mark.parametrize("name", NAMES)
def test_strategy_in_the_loop(tiny, name):
  s = loop.run(
      tiny, strategy=name, seed=0, log=lambda s: None,
      al=loop.ActiveLearningConfig(initial=20, batch=10, budget=10, beta=2.0),
      train=loop.TrainConfig(epochs=1, batch_size=16, eval_batch_size=64),
      model=loop.ModelConfig(trunk_kwargs={"widths": (4,), "hidden": 16}),
  )
  assert [len(r["queried"]) for r in s["rounds"]] == [10, 0]
  assert s["traces"]["select"] == 1
