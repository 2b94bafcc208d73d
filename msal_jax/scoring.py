"""Informativeness scores of a pool: pure ``[N, ...] -> [N]`` functions.

Two conventions, both stated in every docstring:

* :func:`msal` is a *certainty*: the cosine to the nearest prototype, higher =
  more certain. MSAL queries the lowest.
* The uncertainty scores (:func:`entropy`, :func:`margin`,
  :func:`least_confidence`, :func:`var_ratio`) are signed so that *higher = more uncertain =
  queried first*, so one highest-k selection serves them all.

All functions take logits (not probabilities) so that the softmax is computed
stably in log space, and all are jit-able with no static arguments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from msal_jax import prototypes as _prototypes

# Below this norm a feature vector counts as zero: its cosines are defined as 0.
_NORM_EPS = 1e-12


def _check_features(features: jax.Array, prototypes: jax.Array) -> None:
  if features.ndim != 2 or prototypes.ndim != 2:
    raise ValueError(
        f"features must be [N, K] and prototypes [C, K]; got shapes {features.shape} "
        f"and {prototypes.shape}."
    )
  if features.shape[1] != prototypes.shape[1]:
    raise ValueError(
        f"features have width {features.shape[1]} but prototypes have width "
        f"{prototypes.shape[1]}: the features must be the max-separation head's C-1 "
        "outputs for prototypes.simplex(C)."
    )


def cosines(features: ArrayLike, prototypes: ArrayLike) -> jax.Array:
  """Cosine of every feature to every prototype.

  Args:
    features: ``[N, K]`` embeddings ``z``.
    prototypes: ``[C, K]`` unit rows (``prototypes.simplex(C)``).

  Returns:
    ``[N, C]`` with entry ``(i, c) = z_i . p_c / ||z_i||``; rows of zero
    vectors are 0 (not NaN).
  """
  features = jnp.asarray(features)
  prototypes = jnp.asarray(prototypes)
  _check_features(features, prototypes)
  norms = jnp.linalg.norm(features, axis=-1, keepdims=True)
  safe = jnp.where(norms > _NORM_EPS, norms, 1.0)
  cos = (features @ prototypes.T) / safe
  return jnp.where(norms > _NORM_EPS, cos, 0.0)


def nearest_prototype(features: ArrayLike, prototypes: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """Class of the nearest prototype and the cosine to it.

  Returns:
    ``(classes [N] int32, cosine [N])``: ``argmax_c cos(z_i, p_c)`` (ties go to
    the lower class index) and that maximum.
  """
  cos = cosines(features, prototypes)
  return jnp.argmax(cos, axis=-1).astype(jnp.int32), jnp.max(cos, axis=-1)


def msal(features: ArrayLike, prototypes: ArrayLike | None) -> jax.Array:
  """MSAL certainty ``a_i = max_c cos(z_i, p_c)``; higher = more certain.

  MSAL queries the unlabeled samples with the *lowest* ``a_i`` (far from every
  prototype). A zero feature vector scores 0, which is below the score of any
  non-zero vector (the nearest simplex vertex is always at a positive cosine),
  so it counts as maximally uncertain.

  Args:
    features: ``[N, C-1]`` outputs of the max-separation head before ``P``.
    prototypes: ``[C, C-1]`` from :func:`msal_jax.prototypes.simplex`, or
      ``None`` for exactly that matrix with ``C = features.shape[1] + 1``,
      evaluated through its structure in ``O(C)`` per sample instead of the
      ``O(C^2)`` product (:func:`_simplex_best_and_sq`; 3-4x faster at C = 100 on
      XLA:CPU, docs/benchmarks.md).

  Returns:
    ``[N]`` float scores in ``[-1, 1]``.
  """
  features = jnp.asarray(features)
  if prototypes is None:
    if features.ndim != 2 or features.shape[1] < 1:
      raise ValueError(f"features must be [N, C-1] with C >= 2, got shape {features.shape}.")
    num_classes = features.shape[1] + 1
    if _UNROLL_MAX < num_classes * (num_classes - 1) and num_classes <= _STRUCTURED_MAX:
      return _max_cos(*_simplex_best_and_sq(
          features.astype(jnp.promote_types(features.dtype, jnp.float32))))
    prototypes = simplex_prototypes(num_classes, features.dtype)
  prototypes = jnp.asarray(prototypes)
  _check_features(features, prototypes)
  num_classes, width = prototypes.shape
  # max_c (z . p_c) / ||z|| = (max_c z . p_c) / ||z||: divide once per row, not per class.
  if num_classes * width <= _UNROLL_MAX:
    # Few classes: every dot product, the norm and the max unrolled into one
    # elementwise kernel, a single pass over the pool (XLA:CPU's dot and
    # reductions would make three, through an [N, C] intermediate: ~10x slower
    # at C = 10). Elementwise only, so a row's score does not depend on N.
    cols = [features[:, j] for j in range(width)]
    sq = _sum_of_squares(cols)
    best = None
    for c in range(num_classes):
      dot = cols[0] * prototypes[c, 0]
      for j in range(1, width):
        dot = dot + cols[j] * prototypes[c, j]
      best = dot if best is None else jnp.maximum(best, dot)
  else:
    sq = jnp.sum(features * features, axis=-1)
    best = jnp.max(features @ prototypes.T, axis=-1)
  return _max_cos(best, sq)


def _sum_of_squares(cols: list[jax.Array]) -> jax.Array:
  """``sum_j cols[j]^2``, elementwise (the squared row norms of unrolled columns)."""
  sq = cols[0] * cols[0]
  for col in cols[1:]:
    sq = sq + col * col
  return sq


def _max_cos(best: jax.Array, sq: jax.Array) -> jax.Array:
  """``max_c z . p_c`` and ``||z||^2`` -> ``max_c cos(z, p_c)``, 0 for a zero ``z``."""
  norms = jnp.sqrt(sq)
  ok = norms > _NORM_EPS
  return jnp.where(ok, best / jnp.where(ok, norms, 1.0), 0.0)


# Up to this many multiply-adds per row (C * (C-1): C <= 16), msal is unrolled.
_UNROLL_MAX = 256
# Up to this many classes, msal(features, None) unrolls the simplex's O(C) form.
_STRUCTURED_MAX = 512


def msal_is_elementwise(num_classes: int, structured: bool) -> bool:
  """Whether :func:`msal` of ``C`` classes is one elementwise formula per row.

  True for the unrolled product (``C (C-1) <= 256``) and for the structured
  simplex (``prototypes=None``, ``C <= 512``); otherwise it is a matrix
  product, whose kernel may sum in a different order for a different number
  of rows (:func:`msal_jax.selection.top_k_of` needs the same keys for a row
  whether it is scored with the pool or alone).
  """
  if structured and num_classes <= _STRUCTURED_MAX:
    return True
  return num_classes * (num_classes - 1) <= _UNROLL_MAX


def simplex_prototypes(num_classes: int, dtype=jnp.float32) -> jax.Array:
  """:func:`msal_jax.prototypes.simplex` in ``dtype`` promoted to at least float32."""
  return _prototypes.simplex(num_classes, dtype=jnp.promote_types(dtype, jnp.float32))


def _simplex_best_and_sq(features: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(max_c z . p_c, ||z||^2)`` for ``P = simplex(C)``, in ``O(C)`` per row.

  :func:`msal_jax.prototypes.simplex` is ``P = V^T`` with ``V`` ``[C-1, C]``
  upper triangular: ``V[r, r] = s_r`` and ``V[r, c] = -s_r / (C-1-r)`` for
  ``c > r``. So ``z . p_c = z_c s_c - sum_{r<c} z_r s_r / (C-1-r)`` (no first
  term for the last class): a running sum over the columns, unrolled into
  one elementwise kernel over the pool (XLA:CPU's cumsum was 5x slower than
  the dense product).
  """
  width = features.shape[1]
  v = _prototypes.simplex_numpy(width + 1).T  # [C-1, C], float64
  diag = [float(v[r, r]) for r in range(width)]
  step = [float(-v[r, r + 1]) for r in range(width)]  # s_r / (C-1-r)
  cols = [features[:, j] for j in range(width)]
  best = cols[0] * diag[0]
  prefix = cols[0] * step[0]
  for c in range(1, width + 1):
    dot = cols[c] * diag[c] - prefix if c < width else -prefix
    best = jnp.maximum(best, dot)
    if c < width:
      prefix = prefix + cols[c] * step[c]
  return best, _sum_of_squares(cols)


def _shifted(logits: ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(d, e, s)``: ``d = logits - max``, ``e = exp(d)``, ``s = sum_c e`` (so ``p = e / s``).

  One ``exp`` per entry and no ``log`` per entry: on XLA:CPU a row reduction
  fused with a second elementwise ``exp`` (what ``exp(log_softmax(x))`` makes)
  ran 1.8x (C = 10) to 2.6x (C = 100) slower than this form (docs/benchmarks.md).
  """
  logits = jnp.asarray(logits)
  if logits.ndim != 2:
    raise ValueError(f"logits must be [N, C], got shape {logits.shape}.")
  logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  top = jnp.max(logits, axis=-1, keepdims=True)
  d = logits - top
  e = jnp.exp(d)
  return d, e, jnp.sum(e, axis=-1)


def entropy(logits: ArrayLike) -> jax.Array:
  """Predictive entropy ``-sum_c p_c log p_c``; higher = more uncertain.

  ``[N, C]`` logits -> ``[N]``. With ``d = x - max x``, ``e = exp(d)``,
  ``s = sum e``: ``H = log s - sum(e d) / s``, finite for any finite logits.
  """
  d, e, s = _shifted(logits)
  return jnp.log(s) - jnp.sum(e * d, axis=-1) / s


def margin(logits: ArrayLike) -> jax.Array:
  """Negative margin ``p_(2) - p_(1)`` in ``[-1, 0]``; higher = more uncertain.

  ``p_(1)``, ``p_(2)`` are the largest and second largest probabilities, so the
  smallest margin is queried first. ``[N, C]`` logits -> ``[N]``. Computed as
  ``(exp(x_(2) - x_(1)) - 1) / s`` from the two largest logits.
  """
  d, _, s = _shifted(logits)
  # The second largest of d = x - max x (whose largest is exactly 0): 0 again
  # when the maximum is tied, else the largest negative entry. Two row
  # reductions; lax.top_k(d, 2) over short rows was ~10x slower on XLA:CPU.
  tied = jnp.sum(d == 0, axis=-1) >= 2
  second = jnp.where(tied, 0.0, jnp.max(jnp.where(d < 0, d, -jnp.inf), axis=-1))
  return (jnp.exp(second) - 1.0) / s


def least_confidence(logits: ArrayLike) -> jax.Array:
  """Least confidence ``1 - max_c p_c``; higher = more uncertain. ``[N, C] -> [N]``.

  ``max_c p_c = 1 / s`` with ``s = sum_c exp(x_c - max x)``.
  """
  _, _, s = _shifted(logits)
  return 1.0 - 1.0 / s


def var_ratio(logits: ArrayLike) -> jax.Array:
  """DeepAL+'s ``VarRatio``: ``1 - max_c p_c`` of one deterministic pass; higher first.

  ``[N, C]`` logits -> ``[N]``. DeepAL+ (``query_strategies/var_ratio.py``)
  takes the softmax of one ``predict_prob`` pass (dropout off) and queries the
  largest ``1 - max p``: the same number as :func:`least_confidence`, and the
  paper's VarRatio row. Freeman's variation ratio over ``T`` dropout passes is
  :func:`var_ratio_mc`.
  """
  return least_confidence(logits)


def random(key: jax.Array, num: int) -> jax.Array:
  """Uniform ``[num]`` scores in ``[0, 1)``: highest-k of them is a uniform sample."""
  return jax.random.uniform(key, (num,))


# Uncertainty scores from logits, by the names the strategies use.
UNCERTAINTY = {
    "entropy": entropy,
    "margin": margin,
    "least_conf": least_confidence,
    "var_ratio": var_ratio,
}


# -- MC-dropout scores: T stochastic passes, logits [T, N, C] -> [N] ---------


def _mc_log_probs(mc_logits: ArrayLike) -> jax.Array:
  mc_logits = jnp.asarray(mc_logits)
  if mc_logits.ndim != 3:
    raise ValueError(f"MC-dropout logits must be [T, N, C], got shape {mc_logits.shape}.")
  return jax.nn.log_softmax(mc_logits, axis=-1)


def mean_log_probs(mc_logits: ArrayLike) -> jax.Array:
  """``log`` of the mean of the ``T`` softmax outputs: ``[T, N, C] -> [N, C]``.

  Usable as logits by the single-pass scores: ``entropy(mean_log_probs(x))``
  is the entropy of the mean prediction (DeepAL+'s EntropyD).
  """
  logp = _mc_log_probs(mc_logits)
  return jax.nn.logsumexp(logp, axis=0) - jnp.log(logp.shape[0])


def bald(mc_logits: ArrayLike) -> jax.Array:
  """BALD mutual information ``H(mean_t p_t) - mean_t H(p_t)``; higher = more uncertain."""
  logp = _mc_log_probs(mc_logits)
  mean_entropy = jnp.mean(-jnp.sum(jnp.exp(logp) * logp, axis=-1), axis=0)
  return entropy(mean_log_probs(mc_logits)) - mean_entropy


def mean_std(mc_logits: ArrayLike) -> jax.Array:
  """MeanSTD: mean over classes of the std (over passes, ddof 0) of ``p_c``; higher first."""
  p = jnp.exp(_mc_log_probs(mc_logits))
  return jnp.mean(jnp.std(p, axis=0), axis=-1)


def var_ratio_mc(mc_logits: ArrayLike) -> jax.Array:
  """Freeman's variation ratio ``1 - (count of the modal predicted class) / T``; higher first.

  ``[T, N, C]`` -> ``[N]``. The MC-dropout definition (Gal et al. 2017), not
  the paper's row: DeepAL+'s ``VarRatio`` is :func:`var_ratio` on one
  deterministic pass.
  """
  logp = _mc_log_probs(mc_logits)
  passes, _, num_classes = logp.shape
  votes = jnp.sum(jax.nn.one_hot(jnp.argmax(logp, axis=-1), num_classes), axis=0)  # [N, C]
  return 1.0 - jnp.max(votes, axis=-1) / passes


def _on_mean(score):
  def fn(mc_logits: ArrayLike) -> jax.Array:
    return score(mean_log_probs(mc_logits))

  fn.__doc__ = f"``{score.__name__}`` of the mean of the MC-dropout predictions."
  return fn


# MC-dropout uncertainty scores, [T, N, C] -> [N], higher = more uncertain.
MC_UNCERTAINTY = {
    "least_conf_dropout": _on_mean(least_confidence),
    "margin_dropout": _on_mean(margin),
    "entropy_dropout": _on_mean(entropy),
    "bald": bald,
    "mean_std": mean_std,
    "var_ratio_mc": var_ratio_mc,
}
