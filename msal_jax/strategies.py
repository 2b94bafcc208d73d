"""The query strategies, in one registry: ``STRATEGIES[name] -> Strategy``.

A strategy names the head its network needs (``"linear"``: a standard
classifier; ``"max_sep"``: the fixed-prototype head of MSAL) and a pure
selection function

    select(key, outputs, labeled, *, budget, beta) -> [budget] int32

of the model's outputs on the whole pool. ``budget`` and ``beta`` are static;
the result lists pool indices in query order with ``-1`` in slots that cannot
be filled (fewer unlabeled samples than ``budget``). Wrapped in ``jax.jit``
with ``static_argnames=("budget", "beta")``, each strategy compiles once per
experiment.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable

import flax.struct
import jax

from msal_jax import scoring, selection


@flax.struct.dataclass
class PoolOutputs:
  """What a strategy sees of the pool: one forward pass of the current model.

  Attributes:
    logits: ``[N, C]``.
    features: ``[N, K]``: the penultimate embedding for a linear head, the
      ``C-1`` outputs before the prototypes for a max-separation head.
    prototypes: ``[C, C-1]`` simplex of the max-separation head, or ``None``.
    mc_logits: ``[T, N, C]`` logits of ``T`` dropout-on passes, for the
      strategies with ``needs_mc`` (else ``None``).
  """

  logits: jax.Array
  features: jax.Array
  prototypes: jax.Array | None = None
  mc_logits: jax.Array | None = None


SelectFn = Callable[..., jax.Array]


@dataclasses.dataclass(frozen=True)
class Strategy:
  """A registered query strategy.

  Attributes:
    name: registry key.
    head: ``"linear"`` or ``"max_sep"``: the network the strategy queries with.
    select: ``(key, outputs, labeled, *, budget, beta) -> [budget] int32``.
    description: one line for ``--help`` and the docs (the paper's row name).
    needs_mc: the strategy scores ``T`` MC-dropout passes (``outputs.mc_logits``);
      the network then needs ``dropout_rate > 0``.
    pseudo: for CEAL, ``(outputs, labeled, threshold) -> [N] bool``: the
      unlabeled samples confident enough to be trained on with the model's
      prediction as label in the next round only (never counted as labels).
  """

  name: str
  head: str
  select: SelectFn
  description: str
  needs_mc: bool = False
  pseudo: Callable[..., jax.Array] | None = None


def _need_prototypes(outputs: PoolOutputs, name: str) -> jax.Array:
  if outputs.prototypes is None:
    raise ValueError(f"strategy {name!r} needs a max-separation head (outputs.prototypes).")
  return outputs.prototypes


def _random(key, outputs, labeled, *, budget, beta):
  del beta
  return selection.top_k_masked(scoring.random(key, labeled.shape[0]), ~labeled, budget)


def _uncertainty(score_name: str) -> SelectFn:
  score = scoring.UNCERTAINTY[score_name]

  def select(key, outputs, labeled, *, budget, beta):
    del key, beta
    return selection.top_k_masked(score(outputs.logits), ~labeled, budget)

  return select


def _msal(key, outputs, labeled, *, budget, beta):
  del key, beta
  certainty = scoring.msal(outputs.features, _need_prototypes(outputs, "msal"))
  return selection.bottom_k_masked(certainty, ~labeled, budget)


def _msal_d(score_name: str | None) -> SelectFn:
  score = None if score_name is None else scoring.UNCERTAINTY[score_name]

  def select(key, outputs, labeled, *, budget, beta):
    del key
    prototypes = _need_prototypes(outputs, "msal_d")
    uncertainty = None if score is None else score(outputs.logits)
    return selection.msal_d(
        outputs.features, prototypes, labeled, budget=budget, beta=beta, uncertainty=uncertainty
    )

  return select


def _mc_uncertainty(score_name: str) -> SelectFn:
  score = scoring.MC_UNCERTAINTY[score_name]

  def select(key, outputs, labeled, *, budget, beta):
    del key, beta
    if outputs.mc_logits is None:
      raise ValueError(f"strategy {score_name!r} needs outputs.mc_logits (MC-dropout passes).")
    return selection.top_k_masked(score(outputs.mc_logits), ~labeled, budget)

  return select


def _ceal_entropy_pseudo(outputs, labeled, threshold):
  # CEAL: entropy below delta_t.
  return (scoring.entropy(outputs.logits) < threshold) & ~labeled


def _ceal_msal_pseudo(outputs, labeled, threshold):
  # CEAL(MSAL): cosine to the nearest prototype above the threshold.
  certainty = scoring.msal(outputs.features, _need_prototypes(outputs, "ceal_msal"))
  return (certainty > threshold) & ~labeled


def ceal_threshold(name: str, round_index: int, *, delta: float, decay: float,
                   cos: float) -> float:
  """The pseudo-label threshold used right after the query of round ``r = 0, 1, ...``.

  ``ceal_entropy``: DeepAL+'s cumulative schedule (``query_strategies/ceal.py``
  with ``demo.py``). Its query ``t = 1, 2, ...`` (our ``t = r + 1``) first
  updates ``delta <- delta - decay * t`` and then pseudo-labels the samples of
  entropy ``< delta``, so the threshold after query ``t`` is

      delta_t = delta_0 - decay * (1 + 2 + ... + t) = delta_0 - decay * t (t + 1) / 2,

  which falls quadratically (``delta_0 = 5e-5``, ``decay = 0.033e-5``:
  ``4.967e-5`` at ``r = 0``, ``0.512e-5`` at ``r = 15``, ``<= 0`` from ``r = 16``,
  the 17th query). It is clipped at 0: an entropy is never ``< 0``, so a
  threshold of 0 pseudo-labels nothing, exactly as DeepAL+'s negative one.
  ``ceal_msal``: the fixed cosine ``cos`` (no DeepAL+ counterpart; see
  docs/fidelity.md).
  """
  if isinstance(round_index, bool) or not isinstance(round_index, numbers.Integral) or (
      round_index < 0):
    raise ValueError(f"ceal_threshold: round_index must be an int >= 0, got {round_index!r}.")
  if name == "ceal_msal":
    return cos
  t = int(round_index) + 1
  return max(delta - decay * (t * (t + 1) // 2), 0.0)


_MC_PAPER_NAMES = {
    "least_conf_dropout": "LeastConfD", "margin_dropout": "MarginD",
    "entropy_dropout": "EntropyD", "bald": "BALD", "mean_std": "MeanSTD",
    "var_ratio_mc": "VarRatioMC",
}

_PAPER_NAMES = {"entropy": "Entropy", "margin": "Margin", "least_conf": "LeastConf"}


def _build() -> dict[str, Strategy]:
  out = [
      Strategy("random", "linear", _random, "Random: uniform over the unlabeled pool."),
      Strategy("msal", "max_sep", _msal, "MSAL: lowest cosine to the nearest prototype."),
      Strategy(
          "msal_d", "max_sep", _msal_d(None),
          "MSAL-D: MSAL pre-filter of beta*b, then the closest to each prototype.",
      ),
  ]
  for score, paper in _PAPER_NAMES.items():
    out += [
        Strategy(score, "linear", _uncertainty(score), f"{paper}: standard softmax network."),
        Strategy(
            f"{score}_msal", "max_sep", _uncertainty(score),
            f"{paper}(MSAL): {paper.lower()} of the max-separation network.",
        ),
        Strategy(
            f"{score}_msal_d", "max_sep", _msal_d(score),
            f"{paper}(MSAL-D): {paper.lower()} pre-filter, then MSAL-D's diversity stage.",
        ),
    ]
  # DeepAL+'s VarRatio: 1 - max p of one deterministic pass (the paper's row).
  out += [
      Strategy("var_ratio", "linear", _uncertainty("var_ratio"),
               "VarRatio: 1 - max p of one deterministic pass (DeepAL+'s VarRatio)."),
      Strategy("var_ratio_msal", "max_sep", _uncertainty("var_ratio"),
               "VarRatio(MSAL): 1 - max p of the max-separation network."),
  ]
  for score, paper in _MC_PAPER_NAMES.items():
    out += [
        Strategy(score, "linear", _mc_uncertainty(score),
                 f"{paper}: T MC-dropout passes of a standard network.", needs_mc=True),
        Strategy(f"{score}_msal", "max_sep", _mc_uncertainty(score),
                 f"{paper}(MSAL): T MC-dropout passes of the max-separation network.",
                 needs_mc=True),
    ]
  out += [
      Strategy("ceal_entropy", "linear", _uncertainty("entropy"),
               "CEAL(Entropy): entropy queries plus pseudo-labels of low-entropy samples.",
               pseudo=_ceal_entropy_pseudo),
      Strategy("ceal_msal", "max_sep", _msal,
               "CEAL(MSAL): MSAL queries plus pseudo-labels of samples close to a prototype.",
               pseudo=_ceal_msal_pseudo),
  ]
  from msal_jax import clustering  # the diversity selectors (k-center, k-means, BADGE, DBAL)

  out += [
      Strategy("kmeans", "linear", clustering.select_kmeans,
               "KMeans: k-means with b clusters of the unlabeled embeddings, the member "
               "nearest each centre."),
      Strategy("kcenter", "linear", clustering.select_kcenter,
               "KCenter: greedy farthest-first on the embeddings, from the labeled set."),
      Strategy("badge", "linear", clustering.select_badge,
               "BADGE: k-means++ seeding on gradient embeddings (p - onehot(argmax p)) x h."),
      Strategy("dbal", "linear", clustering.select_dbal,
               "DBAL: margin pre-filter of beta*b, weighted k-means, the sample nearest "
               "each centre."),
  ]
  return {s.name: s for s in out}


STRATEGIES: dict[str, Strategy] = _build()


def get(name: str) -> Strategy:
  """``STRATEGIES[name]`` with an error that lists the known names."""
  try:
    return STRATEGIES[name]
  except KeyError:
    raise ValueError(
        f"unknown strategy {name!r}; known strategies: {', '.join(sorted(STRATEGIES))}."
    ) from None
