"""One round of active learning as one function of the run's state, built from named steps.

:func:`run_round` maps a :class:`msal_jax.run_state.RoundState` to the next
one: :func:`train_model` (a fresh network on the labeled and pseudo-labeled
samples), :func:`evaluate` (test accuracy), :func:`score_pool` (the pool's
outputs and error rate), :func:`query` (the strategy's selection, checked;
for a pool streamed from disk both in one pass: :func:`score_streamed`),
the strategy's pseudo-label hook (:mod:`msal_jax.pseudo`) and the oracle
(:mod:`msal_jax.oracles`). What stays fixed over the rounds is a :class:`Run`,
built by :func:`msal_jax.loop.build`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from msal_jax import metrics, oracles, pool_stream, pseudo, report, strategies
from msal_jax.placement import to_host
from msal_jax.progress import Progress
from msal_jax.run_files import RunFiles
from msal_jax.run_state import RoundState
from msal_jax.settings import ActiveLearningConfig, TrainConfig
from msal_jax.streamed_pool import StreamedPool
from msal_jax.train import NonFiniteLossError, Trainer, TrainState

# Purposes for fold_in within a round's key.
KEY_MODEL_INIT, KEY_TRAIN, KEY_QUERY = 0, 1, 2


@dataclasses.dataclass
class Run:
  """What stays fixed over the rounds of one (strategy, seed) run.

  Built once by :func:`build`; every round reads it and none changes it
  (``traces`` counts compilations, ``progress`` prints inside rounds).
  """

  name: str
  strategy: strategies.Strategy
  al: ActiveLearningConfig
  train: TrainConfig
  trainer: Trainer
  select: Callable[..., jax.Array]  # jitted strategy.select, traced once
  pseudo: pseudo.PseudoStep
  oracle: oracles.Oracle
  prototypes: jax.Array | None
  pool_images: jax.Array | None  # placed for inference (on a mesh: rows split, padded)
  test_images: jax.Array  # likewise
  train_images: jax.Array | None  # placed for training (on a mesh: replicated)
  num_pool: int
  num_test: int
  pool_truth: np.ndarray  # [N] ground truth, -1 where unknown
  test_labels: np.ndarray
  round_keys: jax.Array
  tag: str
  progress: Progress
  embedding_rounds: frozenset[int] = frozenset()
  embedding_sample: np.ndarray | None = None
  files: RunFiles | None = None
  mesh: Mesh | None = None  # None: one device, today's programs exactly
  # A pool streamed from its source (then pool_images / train_images are None);
  # its labeled store caches the images read so far (rebuilt from the mask on resume).
  stream: StreamedPool | None = None

  @property
  def traces(self):
    return self.trainer.traces

  @property
  def known(self) -> np.ndarray:
    return self.pool_truth >= 0


def _pool_rows(run: Run, x: Any, axis: int = 0) -> Any:
  """The ``num_pool`` real rows of mesh outputs (padded to the devices); as is on one device."""
  if run.mesh is None:
    return x
  return jax.tree.map(lambda a: jax.lax.slice_in_dim(a, 0, run.num_pool, axis=axis), x)


def train_model(run: Run, state: RoundState, key_r: jax.Array) -> tuple[TrainState, float, float]:
  """A fresh model trained on the labeled (and pseudo-labeled) samples: state, loss, seconds."""
  train_mask, train_labels = jnp.asarray(state.labeled), jnp.asarray(state.labels)
  images, rows = run.train_images, None
  pseudo_ids = np.flatnonzero(state.pseudo_mask)
  if pseudo_ids.size:  # CEAL: this round also trains on pseudo-labels
    train_mask = jnp.asarray(state.labeled | state.pseudo_mask)
  if run.stream is not None:  # the labeled store, visited in the in-memory order
    if pseudo_ids.size:  # read from the source for this round only
      run.progress.say(f"round {state.round}: reading {pseudo_ids.size} pseudo-labeled samples")
    images, train_labels, rows = run.stream.store.arrays(
        state.labeled, state.labels, place=run.trainer.place_train_images,
        extra=(pseudo_ids, state.pseudo_labels[pseudo_ids]))
  elif pseudo_ids.size:
    train_labels = jnp.asarray(np.where(state.pseudo_mask, state.pseudo_labels, state.labels))
  t0 = time.perf_counter()
  ts = run.trainer.init(jax.random.fold_in(key_r, KEY_MODEL_INIT))
  progress = run.progress.step(f"round {state.round}: ")
  try:
    ts, loss = run.trainer.fit(
        ts, images, train_labels, train_mask, epochs=run.train.epochs,
        key=jax.random.fold_in(key_r, KEY_TRAIN), **progress.fit_kwargs(),
        **({} if rows is None else {"rows": rows}),
    )
  except NonFiniteLossError as e:
    raise NonFiniteLossError(f"{run.tag} round {state.round}: {e}") from None
  jax.block_until_ready(ts.params)
  return ts, loss, time.perf_counter() - t0


def evaluate(run: Run, ts: TrainState) -> tuple[float, float]:
  """Test accuracy of the round's model, and the seconds it took."""
  t0 = time.perf_counter()
  test_logits, _ = run.trainer.predict(ts, run.test_images)
  # to_host: under jax.distributed the logits span every process's devices.
  acc = metrics.accuracy(to_host(jnp.argmax(test_logits, -1))[:run.num_test], run.test_labels)
  return acc, time.perf_counter() - t0


def score_pool(run: Run, state: RoundState, ts: TrainState) -> tuple[
    strategies.PoolOutputs, np.ndarray, float]:
  """The pool's outputs, predictions, and error rate over its unlabeled known samples."""
  run.progress.say(f"round {state.round}: scoring the pool ({run.num_pool} samples)")
  logits, feats = _pool_rows(run, run.trainer.predict(ts, run.pool_images))
  pool_pred = to_host(jnp.argmax(logits, -1))
  # Over the unlabeled samples whose ground truth is known (all, when benchmarking).
  err = metrics.unlabeled_error_rate(pool_pred, run.pool_truth, state.labeled | ~run.known)
  outputs = strategies.PoolOutputs(logits=logits, features=feats, prototypes=run.prototypes)
  return outputs, pool_pred, err


def query(run: Run, state: RoundState, ts: TrainState, outputs: strategies.PoolOutputs,
          key_r: jax.Array) -> tuple[list[int], strategies.PoolOutputs]:
  """The round's queries (checked), and the outputs the strategy saw (with MC passes)."""
  if state.round >= run.al.num_rounds:
    return [], outputs  # the last round measures, it does not query
  take = min(run.al.batch, run.al.budget - state.spent)
  key_q = jax.random.fold_in(key_r, KEY_QUERY)
  if run.strategy.needs_mc:
    mc_logits = run.trainer.predict_mc(ts, run.pool_images, key=jax.random.fold_in(key_q, 1),
                                       passes=run.al.mc_passes)
    outputs = dataclasses.replace(outputs, mc_logits=_pool_rows(run, mc_logits, axis=1))
  picked = to_host(run.select(key_q, outputs, jnp.asarray(state.labeled),
                             budget=run.al.batch, beta=run.al.beta))
  return _checked(run, state, picked, take), outputs


def _checked(run: Run, state: RoundState, picked: np.ndarray, take: int) -> list[int]:
  """The first ``take`` valid ids of a strategy's selection; a RuntimeError if it is invalid."""
  queried = [int(i) for i in picked[picked >= 0][:take]]
  if len(queried) != take or state.labeled[queried].any() or len(set(queried)) != take:
    raise RuntimeError(
        f"{run.tag} strategy returned an invalid selection in round {state.round}: "
        f"{picked.tolist()}"
    )
  return queried


def score_streamed(run: Run, state: RoundState, ts: TrainState, key_r: jax.Array
                   ) -> tuple[list[int], float, dict[str, Any]]:
  """:func:`score_pool`, :func:`query` and the pseudo-label hook in one pass over a
  streamed pool: queries, error rate, the hook's record fields.

  The chunks' outputs go to the error count, the strategy's running selection
  (:mod:`msal_jax.pool_stream`) and, for CEAL, each row's pseudo-label test
  and prediction (``[N]`` host vectors); the ``[N, C]`` outputs never exist.
  The MC-dropout passes use :func:`query`'s key, so the queries are the
  in-memory ones.
  """
  r = state.round
  run.progress.say(f"round {r}: scoring the pool ({run.num_pool} samples, streamed)")
  asks = r < run.al.num_rounds  # the last round measures, it does not query
  pseudo_rows = asks and run.pseudo.select is not None  # CEAL: the next round's pseudo-labels
  preds = pool_stream.Predictions(run.num_pool, labels=run.pool_truth,
                                  exclude=state.labeled | ~run.known, keep=pseudo_rows)
  key_q = jax.random.fold_in(key_r, KEY_QUERY)
  sel = pool_stream.Selection(run.name, state.labeled, budget=run.al.batch, beta=run.al.beta,
                              prototypes=run.prototypes, key=key_q) if asks else None
  crit = pool_stream.RowValues(run.num_pool, run.pseudo.row_criterion(r, run.prototypes),
                               dtype=bool) if pseudo_rows else None
  consumers = [c for c in (preds, sel, crit) if c is not None]
  run.stream.score(ts, consumers, jax.random.fold_in(key_q, 1),
                   progress=lambda done, n: run.progress.say(f"round {r}: scored {done}/{n}"))
  queried = []
  if asks:
    take = min(run.al.batch, run.al.budget - state.spent)
    queried = _checked(run, state, sel.result(), take)
  extras = run.pseudo.streamed(state, None if crit is None else crit.values,
                               preds.predictions, queried)
  return queried, preds.error_rate(), extras


def _save_embeddings(run: Run, state: RoundState, ts: TrainState,
                     outputs: strategies.PoolOutputs | None, queried: list[int]) -> None:
  if state.round not in run.embedding_rounds:
    return
  idx = np.union1d(run.embedding_sample, np.asarray(queried, np.int64))
  if run.stream is None:  # gathered at one shape in every round (no recompilation)
    fixed = np.resize(idx, run.embedding_sample.size + run.al.batch)
    features = to_host(outputs.features[fixed])[:idx.size]
  else:  # streamed: read back from the source
    features = run.stream.features(ts, idx)
  if not run.files.writes:  # under jax.distributed: process 0 writes, once every process gathered
    return
  report.save_embeddings(
      os.path.join(run.files.workdir, "embeddings", f"round_{state.round}.npz"),
      round=state.round, indices=idx, features=features,
      labels=run.pool_truth[idx], labeled=state.labeled[idx], queried=np.isin(idx, queried),
  )


def run_round(run: Run, state: RoundState) -> tuple[RoundState, TrainState, dict[str, Any]]:
  """Round ``state.round``: train, evaluate, score the pool, query, label; the next state.

  Returns the state after the round (its queries labeled, or waiting for a
  person), the round's trained model and its record.
  """
  r = state.round
  key_r = jax.random.fold_in(run.round_keys, r)
  ts, loss, train_seconds = train_model(run, state, key_r)
  test_acc, eval_seconds = evaluate(run, ts)
  t0 = time.perf_counter()
  if run.stream is None:
    outputs, pool_pred, err = score_pool(run, state, ts)
    queried, outputs = query(run, state, ts, outputs, key_r)
    extras = run.pseudo(state, outputs, pool_pred, queried)
  else:
    (queried, err, extras), outputs = score_streamed(run, state, ts, key_r), None
  query_seconds = time.perf_counter() - t0
  _save_embeddings(run, state, ts, outputs, queried)
  record = {
      "round": r,
      "num_labeled": int(state.labeled.sum()),
      "test_accuracy": test_acc,
      # None (JSON null) when no unlabeled sample has a known label.
      "unlabeled_error_rate": err if math.isfinite(err) else None,
      "train_loss": loss,
      "train_seconds": train_seconds,
      "eval_seconds": eval_seconds,
      "query_seconds": query_seconds,
      "queried": queried,
      **extras,
  }
  labels = run.oracle.label(queried, r) if queried else None
  if labels is not None and run.oracle.recorded:
    record["labels"] = labels
  state.records.append(record)
  state.labeled[queried] = True
  if labels is not None:
    state.labels[queried] = labels
  state.spent += len(queried)
  state.round = r + 1
  return state, ts, record
