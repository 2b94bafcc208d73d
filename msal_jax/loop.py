"""The active-learning loop: initial set, then train -> evaluate -> query rounds.

The pool keeps one fixed shape for the whole experiment and a boolean
``labeled`` mask grows round by round, so the model init, the train step, the
inference step and the strategy's selection each compile once per experiment
(``summary["traces"]`` records how often each was traced). Every PRNG key is
derived from the seed with ``fold_in`` by purpose and round.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from msal_jax import hitl, metrics, models, prototypes, report, strategies
from msal_jax.checkpoint import RoundCheckpointer
from msal_jax.data import Dataset
from msal_jax.train import NonFiniteLossError, Trainer

# Purposes for fold_in: one root key per seed, then one sub-key per use.
_KEY_INITIAL_SET = 0
_KEY_ROUNDS = 1
_KEY_EMBEDDINGS = 2  # the fixed pool sample saved for t-SNE
_KEY_MODEL_INIT, _KEY_TRAIN, _KEY_QUERY = 0, 1, 2


def _check_int(name: str, value: Any, low: int) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class ActiveLearningConfig:
  """How many labels, how fast.

  Attributes:
    initial: size of the random initial labeled set (drawn per seed).
    batch: labels queried per round ``b``.
    budget: labels queried in all, not counting the initial set.
    rounds: query rounds to run; ``None`` = ``ceil(budget / batch)``. Fewer
      rounds stop early, and AUBC is computed over the labels spent.
    beta: MSAL-D's pre-filter factor (``beta * b`` candidates), ``>= 1``.
    mc_passes: ``T``, stochastic forward passes of the MC-dropout strategies.
    ceal_delta, ceal_decay: CEAL's entropy threshold ``delta_0`` and its decay
      per round (``delta_t = max(delta_0 - decay * t, 0)``).
    ceal_cos: CEAL(MSAL)'s threshold on the cosine to the nearest prototype.
  """

  initial: int
  batch: int
  budget: int
  rounds: int | None = None
  beta: float = 5.0
  mc_passes: int = 10
  ceal_delta: float = 5e-5
  ceal_decay: float = 0.033e-5
  ceal_cos: float = 0.99

  def __post_init__(self):
    _check_int("al.initial", self.initial, 1)
    _check_int("al.batch", self.batch, 1)
    _check_int("al.budget", self.budget, 1)
    if self.rounds is not None:
      _check_int("al.rounds", self.rounds, 1)
      if self.rounds > metrics.num_rounds(self.budget, self.batch):
        raise ValueError(
            f"al.rounds={self.rounds} is more than the budget allows: budget {self.budget} "
            f"at batch {self.batch} is spent in {metrics.num_rounds(self.budget, self.batch)} "
            "rounds."
        )
    if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not (
        self.beta >= 1
    ):
      raise ValueError(f"al.beta must be a number >= 1, got {self.beta!r}.")
    _check_int("al.mc_passes", self.mc_passes, 1)
    for name in ("ceal_delta", "ceal_decay"):
      if not (isinstance(getattr(self, name), (int, float)) and getattr(self, name) >= 0):
        raise ValueError(f"al.{name} must be a number >= 0, got {getattr(self, name)!r}.")
    if not (isinstance(self.ceal_cos, (int, float)) and -1 <= self.ceal_cos <= 1):
      raise ValueError(f"al.ceal_cos must be a cosine in [-1, 1], got {self.ceal_cos!r}.")

  @property
  def num_rounds(self) -> int:
    return metrics.num_rounds(self.budget, self.batch) if self.rounds is None else self.rounds

  def check_pool(self, pool_size: int) -> None:
    """Fails when the pool cannot supply the initial set plus the budget."""
    if self.initial + self.budget > pool_size:
      raise ValueError(
          f"al.initial ({self.initial}) + al.budget ({self.budget}) = "
          f"{self.initial + self.budget} is larger than the pool ({pool_size} samples): "
          f"lower al.budget to at most {pool_size - self.initial}."
      )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Training of each round's model (paper: Adam 1e-3, batch 128).

  ``augment``: random 4-pixel crop and horizontal flip of the training images
  (:mod:`msal_jax.augment`; the paper's CIFAR and TinyImageNet setting).
  """

  epochs: int
  batch_size: int = 128
  learning_rate: float = 1e-3
  eval_batch_size: int = 1000
  augment: bool = False

  def __post_init__(self):
    if not isinstance(self.augment, bool):
      raise ValueError(f"train.augment must be True or False, got {self.augment!r}.")
    _check_int("train.epochs", self.epochs, 1)
    _check_int("train.batch_size", self.batch_size, 1)
    _check_int("train.eval_batch_size", self.eval_batch_size, 1)
    if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
      raise ValueError(f"train.learning_rate must be > 0, got {self.learning_rate!r}.")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The network: a trunk from ``models.ARCHS`` (or your own module) with the strategy's head.

  Attributes:
    arch: ``"small_cnn"`` or ``"resnet18"`` (unused when ``module`` is given).
    rho: hypersphere radius of the max-separation head (> 0).
    dropout_rate: dropout before the head.
    trunk_kwargs: extra fields of the trunk (e.g. ``{"stem": "cifar"}``).
    module: your own Flax module instead of ``arch``: an import path
      ``"package.module:Name"`` / ``"path/to/file.py:Name"``, a module class or
      factory (built with ``module_kwargs``), or a module instance. It returns
      features ``h [B, D]`` (the library adds the head) or ``(logits,
      features)``; see :mod:`msal_jax.models.custom`.
    module_kwargs: keyword arguments ``module`` is built with.
  """

  arch: str = "small_cnn"
  rho: float = 1.0
  dropout_rate: float = 0.0
  trunk_kwargs: dict = dataclasses.field(default_factory=dict)
  module: Any = None
  module_kwargs: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.module is not None:
      self.user_module()  # import and build now: a bad path fails before any work
    elif self.module_kwargs:
      raise ValueError(
          f"model.kwargs {sorted(self.module_kwargs)} are for model.module, which is not set."
      )
    elif self.arch not in models.ARCHS:
      raise ValueError(
          f"model.arch: unknown architecture {self.arch!r}; known: "
          f"{', '.join(sorted(models.ARCHS))}."
      )
    if not (isinstance(self.rho, (int, float)) and self.rho > 0):
      raise ValueError(f"model.rho must be > 0, got {self.rho!r}.")
    if not (isinstance(self.dropout_rate, (int, float)) and 0 <= self.dropout_rate < 1):
      raise ValueError(f"model.dropout_rate must be in [0, 1), got {self.dropout_rate!r}.")

  def user_module(self):
    """``module`` as an unbound Flax module (``None`` when ``arch`` is used)."""
    if self.module is None:
      return None
    obj = self.module
    if isinstance(obj, str):
      obj = models.custom.import_object(obj)
    return models.custom.instantiate(obj, self.module_kwargs)

  def build(self, num_classes: int, head: str, input_shape: tuple[int, ...] | None = None):
    """The network for ``head``; ``input_shape`` ``(H, W, Ch)`` checks a user module's outputs."""
    if self.module is not None:
      if input_shape is None:
        raise ValueError("ModelConfig.build: a user module needs input_shape to be checked.")
      return models.custom.wrap(
          self.user_module(), num_classes=num_classes, head=head, input_shape=input_shape,
          rho=self.rho, dropout_rate=self.dropout_rate,
      )
    return models.make_model(
        self.arch, num_classes=num_classes, head=head, rho=self.rho,
        dropout_rate=self.dropout_rate, **self.trunk_kwargs,
    )


def initial_labeled(key: jax.Array, pool_size: int, initial: int) -> np.ndarray:
  """``[N]`` bool mask of ``initial`` pool samples drawn uniformly without replacement."""
  chosen = np.asarray(jax.random.choice(key, pool_size, (initial,), replace=False))
  mask = np.zeros(pool_size, bool)
  mask[chosen] = True
  return mask


def _write_json(path: str, obj: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2)
    f.write("\n")
  os.replace(tmp, path)  # never a half-written file under the real name


def _write_rounds(path: str, records: list[dict[str, Any]]) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(json.dumps(rec) + "\n" for rec in records)
  os.replace(tmp, path)


def check_dropout(names: Sequence[str], model: ModelConfig) -> None:
  """The MC-dropout strategies among ``names`` need ``model.dropout_rate > 0``."""
  mc = [n for n in names if strategies.get(n).needs_mc]
  if mc and model.dropout_rate <= 0:
    raise ValueError(
        f"model.dropout_rate must be > 0 for the MC-dropout strategies {', '.join(mc)} "
        f"(got {model.dropout_rate}): set model.dropout_rate > 0, e.g. 0.25 "
        "(--config.model.dropout_rate=0.25)."
    )


def run(
    dataset: Dataset,
    *,
    strategy: str,
    seed: int,
    al: ActiveLearningConfig,
    train: TrainConfig,
    model: ModelConfig,
    workdir: str | None = None,
    max_to_keep: int | None = 2,
    log: Callable[[str], None] = print,
    embedding_rounds: Sequence[int] = (),
    embedding_points: int = 2000,
    initial_set: np.ndarray | Sequence[int] | None = None,
    oracle: str | Callable[[np.ndarray], Any] = "dataset",
) -> dict[str, Any]:
  """Runs one (strategy, seed) active-learning experiment, resuming if it can.

  Args:
    dataset: pool and test arrays.
    strategy: a name in :data:`msal_jax.strategies.STRATEGIES`.
    seed: root of every key (initial set, model inits, training order, queries).
    al, train, model: typed settings.
    workdir: when given, ``rounds.jsonl`` (one line per round, written as the
      round ends), a checkpoint per round under ``checkpoints/``,
      ``summary.json`` and ``curve.png`` are written there, and a run that
      finds checkpoints there continues after the last finished round (which
      gives exactly what an uninterrupted run gives: every key is derived from
      the seed and the round).
    max_to_keep: round checkpoints kept (``None``: all).
    embedding_rounds: rounds whose pool features are saved for t-SNE, to
      ``embeddings/round_<r>.npz`` (see :func:`msal_jax.report.save_embeddings`):
      a fixed random sample of ``embedding_points`` pool samples (the same in
      every round) plus all samples queried in that round. Needs ``workdir``.
    log: progress printer.
    initial_set: pool ids (or an ``[N]`` bool mask) labeled at the start,
      instead of ``al.initial`` drawn at random; by default the pool samples
      with known labels when some are ``-1`` (see :func:`hitl.start_labeled`).
    oracle: where the labels of queried samples come from: ``"dataset"``
      (the pool labels, held back until queried), a function ``ids -> labels``
      (recorded as ``"labels"`` in the round's record), or ``"csv"``: each
      round writes ``queries/round_<r>.csv`` and returns; the next call
      (needs ``workdir``) reads the filled-in labels and goes on (:mod:`hitl`).

  Returns:
    The summary: strategy, dataset, seed, aubc, f_acc, accuracies,
    num_labeled, labels_spent, traces, seconds, the per-round records
    under ``"rounds"`` and the last round's model under ``"variables"``
    (``{"params", "batch_stats"}``: the network whose test accuracy is the
    last entry of ``accuracies``; not written to ``summary.json``); with
    ``oracle="csv"`` also ``pending_labels``: the CSV to fill in, or ``None``
    when the run is finished.
  """
  strat = strategies.get(strategy)
  start_mask = hitl.start_labeled(np.asarray(dataset.pool_labels), initial_set)
  if start_mask is None:
    al.check_pool(dataset.num_pool)
  elif int(start_mask.sum()) + al.budget > dataset.num_pool:
    raise ValueError(
        f"{int(start_mask.sum())} labeled samples + al.budget ({al.budget}) is larger than the "
        f"pool ({dataset.num_pool} samples): lower al.budget to at most "
        f"{dataset.num_pool - int(start_mask.sum())}."
    )
  hitl.check_oracle(oracle, pool_labels=np.asarray(dataset.pool_labels), workdir=workdir)
  num_classes = dataset.num_classes
  if num_classes < 2:
    raise ValueError(f"dataset {dataset.name!r} has {num_classes} classes; at least 2 are needed.")

  check_dropout([strategy], model)
  net = model.build(num_classes, strat.head, dataset.image_shape)
  protos = prototypes.simplex(num_classes) if strat.head == "max_sep" else None
  trainer = Trainer(
      net, dataset.image_shape, dataset.mean, dataset.std,
      learning_rate=train.learning_rate, batch_size=train.batch_size,
      eval_batch_size=train.eval_batch_size, augment=train.augment,
  )
  traces = trainer.traces

  def counted_select(key, outputs, labeled, *, budget, beta):
    traces["select"] += 1
    return strat.select(key, outputs, labeled, budget=budget, beta=beta)

  select = jax.jit(counted_select, static_argnames=("budget", "beta"))

  def counted_pseudo(outputs, labeled, threshold):
    traces["pseudo"] += 1
    return strat.pseudo(outputs, labeled, threshold)

  pseudo_fn = jax.jit(counted_pseudo) if strat.pseudo is not None else None
  pseudo_mask = np.zeros(dataset.num_pool, bool)
  pseudo_labels = np.zeros(dataset.num_pool, np.int32)

  pool_images = jnp.asarray(dataset.pool_images)
  pool_labels = jnp.asarray(dataset.pool_labels)
  test_images = jnp.asarray(dataset.test_images)
  pool_labels_np = np.asarray(dataset.pool_labels)  # ground truth, -1 where unknown
  known_np = pool_labels_np >= 0
  labels_np = pool_labels_np.astype(np.int32)  # what the learner was told; grows by oracle
  test_labels_np = np.asarray(dataset.test_labels)

  root = jax.random.PRNGKey(seed)
  if start_mask is not None:
    labeled_np = start_mask.copy()
  else:
    labeled_np = initial_labeled(
        jax.random.fold_in(root, _KEY_INITIAL_SET), dataset.num_pool, al.initial
    )
  round_keys = jax.random.fold_in(root, _KEY_ROUNDS)
  embedding_rounds = set(embedding_rounds) if workdir is not None else set()
  if embedding_rounds:
    embedding_sample = np.asarray(jax.random.choice(
        jax.random.fold_in(root, _KEY_EMBEDDINGS), dataset.num_pool,
        (min(embedding_points, dataset.num_pool),), replace=False))
  tag = f"[{strategy} seed {seed}]"
  identity = {"strategy": strategy, "seed": seed, "dataset": dataset.name,
              "num_pool": dataset.num_pool}

  records: list[dict[str, Any]] = []
  spent = 0
  first_round = 0
  rounds_path = ckpt = None
  if workdir is not None:
    os.makedirs(workdir, exist_ok=True)
    rounds_path = os.path.join(workdir, "rounds.jsonl")
    ckpt = RoundCheckpointer(os.path.join(workdir, "checkpoints"), max_to_keep=max_to_keep)
    step = ckpt.latest_step()
    if step is not None:
      meta = ckpt.restore_meta(step)
      found = {k: meta.get(k) for k in identity}
      if found != identity:
        raise ValueError(
            f"{workdir} holds checkpoints of another run ({found}), not of {identity}: "
            "use another workdir."
        )
      saved = ckpt.restore_state(step)
      saved_mask = saved["labeled"]
      if "pseudo_mask" in saved:
        pseudo_mask, pseudo_labels = saved["pseudo_mask"], saved["pseudo_labels"]
      records, spent = meta["records"], meta["spent"]
      for rec in records:
        labeled_np[rec["queried"]] = True
        if "labels" in rec:  # from an oracle function or a CSV
          labels_np[rec["queried"]] = rec["labels"]
      if not np.array_equal(saved_mask, labeled_np):
        raise ValueError(f"{workdir}: the checkpoint of round {step} is inconsistent.")
      first_round = step + 1
      if not records[-1]["queried"] and step < al.num_rounds:
        raise ValueError(
            f"{workdir}: the run there ended after round {step} (its last round queries "
            f"nothing) and cannot be extended to {al.num_rounds} rounds; use a new workdir."
        )
      if first_round > al.num_rounds:
        log(f"{tag} already finished ({step} rounds in {workdir})")
      else:
        log(f"{tag} resuming after round {step} ({int(labeled_np.sum())} labeled)")
      if oracle == "csv" and records[-1]["queried"] and "labels" not in records[-1]:
        # The last invocation stopped for a person to label its queries.
        path = hitl.csv_path(workdir, step)
        given = hitl.read_labels(path, records[-1]["queried"], dataset.class_names,
                                 paths=dataset.pool_paths)
        records[-1]["labels"] = [int(v) for v in given]
        labels_np[records[-1]["queried"]] = given
        log(f"{tag} read {given.size} labels of round {step}'s queries from {path}")
      missing = np.flatnonzero(labeled_np & (labels_np < 0))
      if missing.size:
        raise ValueError(
            f"{workdir}: {missing.size} queried samples have no label (e.g. pool id "
            f"{int(missing[0])}): they were queried for a person to label; resume with "
            "al.hitl=True (oracle='csv') to read them from the query CSV."
        )
      pool_labels = jnp.asarray(labels_np)
    _write_rounds(rounds_path, records)

  start_all = time.perf_counter()
  pending = None  # the query CSV a person has to fill in (oracle="csv")
  # The model of the last finished round (restored when nothing is left to train).
  variables = ({"params": saved["params"], "batch_stats": saved.get("batch_stats", {})}
               if first_round > 0 else None)
  try:
    for r in range(first_round, al.num_rounds + 1):
      key_r = jax.random.fold_in(round_keys, r)
      labeled = jnp.asarray(labeled_np)
      train_mask, train_labels = labeled, pool_labels
      if pseudo_mask.any():  # CEAL: this round also trains on pseudo-labels
        train_mask = jnp.asarray(labeled_np | pseudo_mask)
        train_labels = jnp.asarray(np.where(pseudo_mask, pseudo_labels, labels_np))

      t0 = time.perf_counter()
      state = trainer.init(jax.random.fold_in(key_r, _KEY_MODEL_INIT))
      try:
        state, loss = trainer.fit(
            state, pool_images, train_labels, train_mask,
            epochs=train.epochs, key=jax.random.fold_in(key_r, _KEY_TRAIN),
        )
      except NonFiniteLossError as e:
        raise NonFiniteLossError(f"{tag} round {r}: {e}") from None
      jax.block_until_ready(state.params)
      train_seconds = time.perf_counter() - t0

      t0 = time.perf_counter()
      test_logits, _ = trainer.predict(state, test_images)
      test_acc = metrics.accuracy(np.asarray(jnp.argmax(test_logits, -1)), test_labels_np)
      eval_seconds = time.perf_counter() - t0

      t0 = time.perf_counter()
      logits, feats = trainer.predict(state, pool_images)
      pool_pred = np.asarray(jnp.argmax(logits, -1))
      # Over the unlabeled samples whose ground truth is known (all, when benchmarking).
      err = metrics.unlabeled_error_rate(pool_pred, pool_labels_np, labeled_np | ~known_np)
      queried: list[int] = []
      if r < al.num_rounds:
        take = min(al.batch, al.budget - spent)
        key_q = jax.random.fold_in(key_r, _KEY_QUERY)
        mc_logits = None
        if strat.needs_mc:
          mc_logits = trainer.predict_mc(
              state, pool_images, key=jax.random.fold_in(key_q, 1), passes=al.mc_passes
          )
        outputs = strategies.PoolOutputs(
            logits=logits, features=feats, prototypes=protos, mc_logits=mc_logits
        )
        picked = select(key_q, outputs, labeled, budget=al.batch, beta=al.beta)
        picked = np.asarray(picked)
        queried = [int(i) for i in picked[picked >= 0][:take]]
        if len(queried) != take or labeled_np[queried].any() or len(set(queried)) != take:
          raise RuntimeError(
              f"{tag} strategy returned an invalid selection in round {r}: {picked.tolist()}"
          )
      num_pseudo_used = int(pseudo_mask.sum())
      checkable = pseudo_mask & known_np
      pseudo_correct = (
          float(np.mean(pseudo_labels[checkable] == pool_labels_np[checkable]))
          if checkable.any() else None
      )
      if pseudo_fn is not None and queried:
        after = labeled_np.copy()
        after[queried] = True
        threshold = strategies.ceal_threshold(
            strategy, r, delta=al.ceal_delta, decay=al.ceal_decay, cos=al.ceal_cos
        )
        pseudo_mask = np.asarray(pseudo_fn(outputs, jnp.asarray(after), threshold))
        pseudo_labels = pool_pred.astype(np.int32)
      else:
        pseudo_mask = np.zeros_like(pseudo_mask)
      query_seconds = time.perf_counter() - t0
      if r in embedding_rounds:
        idx = np.union1d(embedding_sample, np.asarray(queried, np.int64))
        report.save_embeddings(
            os.path.join(workdir, "embeddings", f"round_{r}.npz"), round=r, indices=idx,
            features=np.asarray(feats[idx]), labels=pool_labels_np[idx],
            labeled=labeled_np[idx], queried=np.isin(idx, queried),
        )

      record = {
          "round": r,
          "num_labeled": int(labeled_np.sum()),
          "test_accuracy": test_acc,
          # None (JSON null) when no unlabeled sample has a known label.
          "unlabeled_error_rate": err if math.isfinite(err) else None,
          "train_loss": loss,
          "train_seconds": train_seconds,
          "eval_seconds": eval_seconds,
          "query_seconds": query_seconds,
          "queried": queried,
      }
      if strat.pseudo is not None:
        record["num_pseudo"] = num_pseudo_used  # pseudo-labels this round trained on
        record["pseudo_accuracy"] = pseudo_correct
      if queried and callable(oracle):
        record["labels"] = hitl.oracle_labels(oracle, queried, num_classes)
        labels_np[queried] = record["labels"]
        pool_labels = jnp.asarray(labels_np)
      records.append(record)
      variables = {"params": state.params, "batch_stats": state.batch_stats}
      labeled_np[queried] = True
      spent += len(queried)
      if ckpt is not None:
        # The checkpoint first, then the line: a crash between the two is
        # repaired on resume, which rewrites rounds.jsonl from the checkpoint.
        ckpt.save(r, state, labeled_np, {**identity, "round": r, "spent": spent,
                                          "records": records},
                  pseudo=(pseudo_mask, pseudo_labels) if strat.pseudo is not None else None)
        with open(rounds_path, "a") as f:
          f.write(json.dumps(record) + "\n")
      log(
          f"{tag} round {r}/{al.num_rounds}  labeled {record['num_labeled']}  "
          f"acc {test_acc:.4f}  unlabeled err {err:.4f}  "
          f"train {train_seconds:.1f}s  query {query_seconds:.2f}s"
      )
      if oracle == "csv" and queried:
        pending = hitl.csv_path(workdir, r)
        hitl.write_queries(pending, queried, paths=dataset.pool_paths)
        log(f"{tag} round {r}: {len(queried)} samples to label in {pending}: fill in its "
            "label column and run again to continue")
        break
  finally:
    if ckpt is not None:
      ckpt.close()

  accuracies = [rec["test_accuracy"] for rec in records]
  # Labels whose effect was measured: not those still waiting for a person.
  measured = spent - (len(records[-1]["queried"]) if pending else 0)
  summary = {
      "strategy": strategy,
      "dataset": dataset.name,
      "seed": seed,
      "aubc": metrics.aubc(accuracies, budget=measured, batch=al.batch) if measured else None,
      "f_acc": metrics.final_accuracy(accuracies),
      "accuracies": accuracies,
      "num_labeled": [rec["num_labeled"] for rec in records],
      "labels_spent": spent,
      "traces": dict(traces),
      "seconds": time.perf_counter() - start_all,
  }
  if oracle == "csv":
    summary["pending_labels"] = pending
  if workdir is not None:
    _write_json(os.path.join(workdir, "summary.json"), summary)
    report.plot_curves({strategy: [summary]}, os.path.join(workdir, "curve.png"))
  summary["rounds"] = records
  summary["variables"] = variables
  return summary
