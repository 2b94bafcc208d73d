"""The active-learning loop: initial set, then train -> evaluate -> query rounds.

A run is a fixed context (:class:`Run`: the network's compiled programs, the
pool on device, the strategy, the oracle, the keys), built once, and a state
(:class:`msal_jax.run_state.RoundState`: labeled mask, labels, pseudo-labels,
records), which :func:`msal_jax.rounds.run_round` maps to the next one
through named steps (train, evaluate, score the pool, query, the strategy's
pseudo-label hook, the oracle). :func:`build` makes the context and the
round-0 state; :func:`run` is the driver: build, start or resume
(:func:`msal_jax.run_state.resume`), loop over rounds, write, summarise.

The pool keeps one fixed shape for the whole experiment and a boolean
``labeled`` mask grows round by round, so the model init, the train step, the
inference step and the strategy's selection each compile once per experiment
(``summary["traces"]`` records how often each was traced). Every PRNG key is
derived from the seed with ``fold_in`` by purpose and round, so a resumed run
replays exactly what an uninterrupted one does.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from msal_jax import (
  hitl,
  metrics,
  oracles,
  prototypes,
  pseudo,
  run_state,
  strategies,
  streamed_pool,
)
from msal_jax.checkpoint import RoundCheckpointer
from msal_jax.data import Dataset
from msal_jax.devices import gathered, mesh_select, pinned, run_mesh
from msal_jax.progress import Progress
from msal_jax.rounds import Run, run_round
from msal_jax.run_files import RunFiles
from msal_jax.run_state import RoundState
from msal_jax.settings import ActiveLearningConfig, ModelConfig, TrainConfig, check_dropout
from msal_jax.train import Trainer

__all__ = [
    "ActiveLearningConfig", "ModelConfig", "Run", "TrainConfig", "build", "check_dropout",
    "initial_labeled", "run", "run_round",
]

# Purposes for fold_in: one root key per seed, then one sub-key per use.
_KEY_INITIAL_SET = 0
_KEY_ROUNDS = 1
_KEY_EMBEDDINGS = 2  # the fixed pool sample saved for t-SNE


def initial_labeled(key: jax.Array, pool_size: int, initial: int) -> np.ndarray:
  """``[N]`` bool mask of ``initial`` pool samples drawn uniformly without replacement."""
  chosen = np.asarray(jax.random.choice(key, pool_size, (initial,), replace=False))
  mask = np.zeros(pool_size, bool)
  mask[chosen] = True
  return mask


def _counted(traces, name: str, fn: Callable, **jit_kwargs) -> Callable:
  def counted(*args, **kwargs):
    traces[name] += 1  # runs only while jax traces, i.e. compiles
    return fn(*args, **kwargs)

  return jax.jit(counted, **jit_kwargs)


def _start_mask(dataset: Dataset, al: ActiveLearningConfig,
                initial_set: np.ndarray | Sequence[int] | None) -> np.ndarray | None:
  """The given initial set as a mask (checked against the budget), or ``None``: draw one."""
  start_mask = hitl.start_labeled(np.asarray(dataset.pool_labels), initial_set)
  if start_mask is None:
    al.check_pool(dataset.num_pool)
  elif int(start_mask.sum()) + al.budget > dataset.num_pool:
    raise ValueError(
        f"{int(start_mask.sum())} labeled samples + al.budget ({al.budget}) is larger than the "
        f"pool ({dataset.num_pool} samples): lower al.budget to at most "
        f"{dataset.num_pool - int(start_mask.sum())}."
    )
  return start_mask


def _placed(trainer: Trainer, dataset: Dataset, source: Any, *, capacity: int,
            mc_passes: int) -> dict[str, Any]:
  """The pool and test images on the devices, once per run (:class:`Run`'s fields).

  A streamed pool (``source``) is not placed: only the test set is; the
  labeled samples go to a store of ``capacity`` rows (:mod:`msal_jax.streamed_pool`).
  """
  if source is not None:
    return dict(pool_images=None, train_images=None,
                test_images=trainer.place_pool(dataset.test_images),
                num_pool=dataset.num_pool, num_test=dataset.num_test,
                stream=streamed_pool.StreamedPool.make(source, trainer, capacity=capacity,
                                                       mc_passes=mc_passes))
  if trainer.mesh is None:  # one device: one copy of the pool serves training and inference
    pool = jnp.asarray(streamed_pool.in_memory(dataset.pool_images))
    return dict(pool_images=pool, train_images=pool, test_images=jnp.asarray(dataset.test_images),
                num_pool=dataset.num_pool, num_test=dataset.num_test)
  images = streamed_pool.in_memory(dataset.pool_images)
  return dict(pool_images=trainer.place_pool(images),
              train_images=trainer.place_train_images(images),
              test_images=trainer.place_pool(dataset.test_images),
              num_pool=dataset.num_pool, num_test=dataset.num_test)


def build(dataset: Dataset, *, strategy: str, seed: int, al: ActiveLearningConfig,
          train: TrainConfig, model: ModelConfig, workdir: str | None = None,
          oracle: str | Callable[[np.ndarray], Any] = "dataset",
          initial_set: np.ndarray | Sequence[int] | None = None,
          embedding_rounds: Sequence[int] = (), embedding_points: int = 2000,
          log: Callable[[str], None] = print, progress_every: float = 0.0,
          devices: int | Sequence[jax.Device] | Mesh | None = None,
          in_memory_limit: int | None = None) -> tuple[Run, RoundState]:
  """The fixed context of a run and its round-0 state; every check before any work.

  The pool is held on the device, or streamed from its source each round
  when it is a memory map or a :class:`msal_jax.pool_source.PoolSource` of
  more than ``in_memory_limit`` bytes (:func:`msal_jax.streamed_pool.streamed_source`).
  """
  strat = strategies.get(strategy)
  source = streamed_pool.streamed_source(dataset.pool_images, in_memory_limit)
  start_mask = _start_mask(dataset, al, initial_set)
  pool_truth = np.asarray(dataset.pool_labels)
  answerer = oracles.make(oracle, pool_labels=pool_truth, num_classes=dataset.num_classes,
                          class_names=dataset.class_names, pool_paths=dataset.pool_paths,
                          workdir=workdir)
  if dataset.num_classes < 2:
    raise ValueError(f"dataset {dataset.name!r} has {dataset.num_classes} classes; at least 2 "
                     "are needed.")
  check_dropout([strategy], model)
  net = model.build(dataset.num_classes, strat.head, dataset.image_shape)
  mesh = run_mesh(devices)
  if source is not None:  # only strategies with a streamed form
    streamed_pool.check_strategy(
        strategy, num=dataset.num_pool, num_classes=dataset.num_classes,
        feature_dim=streamed_pool.feature_dim(net, dataset.image_shape), budget=al.batch)
  trainer = Trainer(
      net, dataset.image_shape, dataset.mean, dataset.std,
      learning_rate=train.learning_rate, batch_size=train.batch_size,
      eval_batch_size=train.eval_batch_size, augment=train.augment, mesh=mesh,
  )
  traces = trainer.traces
  select = _counted(traces, "select", strat.select, static_argnames=("budget", "beta"))
  if mesh is not None:
    select = mesh_select(strategy, mesh, select)
  root = jax.random.PRNGKey(seed)
  if start_mask is None:
    start_mask = initial_labeled(jax.random.fold_in(root, _KEY_INITIAL_SET), dataset.num_pool,
                                 al.initial)
  tag = f"[{strategy} seed {seed}]"
  context = Run(
      name=strategy, strategy=strat, al=al, train=train, trainer=trainer, select=select,
      pseudo=pseudo.make(strategy, strat, al, pool_truth,
                         lambda fn: _counted(traces, "pseudo", fn),
                         gather=gathered if mesh is not None else None),
      oracle=answerer,
      prototypes=prototypes.simplex(dataset.num_classes) if strat.head == "max_sep" else None,
      **_placed(trainer, dataset, source, capacity=int(start_mask.sum()) + al.budget,
                mc_passes=al.mc_passes if strat.needs_mc else 0),
      mesh=mesh, pool_truth=pool_truth,
      test_labels=np.asarray(dataset.test_labels),
      round_keys=jax.random.fold_in(root, _KEY_ROUNDS), tag=tag,
      progress=Progress(log, every=progress_every, prefix=tag),
  )
  if workdir is not None:
    context.files = RunFiles(workdir)
    if embedding_rounds:
      context.embedding_rounds = frozenset(embedding_rounds)
      context.embedding_sample = np.asarray(jax.random.choice(
          jax.random.fold_in(root, _KEY_EMBEDDINGS), dataset.num_pool,
          (min(embedding_points, dataset.num_pool),), replace=False))
  return context, RoundState.start(start_mask, pool_truth)


# -- the driver ---------------------------------------------------------------


def _round_line(run: Run, record: dict[str, Any], err: float | None) -> str:
  err_value = float("nan") if err is None else err
  return (f"{run.tag} round {record['round']}/{run.al.num_rounds}  labeled "
          f"{record['num_labeled']}  acc {record['test_accuracy']:.4f}  unlabeled err "
          f"{err_value:.4f}  train {record['train_seconds']:.1f}s  query "
          f"{record['query_seconds']:.2f}s")


def _ask_person(run: Run, state: RoundState, record: dict[str, Any],
                log: Callable[[str], None]) -> None:
  """After a round whose queries wait for a person: show them, and stop the run there."""
  if not record["queried"] or "labels" in record or not run.oracle.recorded:
    return
  state.pending = run.oracle.ask(record["queried"], record["round"])
  log(f"{run.tag} round {record['round']}: {len(record['queried'])} samples to label in "
      f"{state.pending}: fill in its label column and run again to continue")


def _summary(run: Run, state: RoundState, dataset: Dataset, seed: int,
             seconds: float) -> dict[str, Any]:
  accuracies = [rec["test_accuracy"] for rec in state.records]
  # Labels whose effect was measured: not those still waiting for a person.
  measured = state.spent - (len(state.records[-1]["queried"]) if state.pending else 0)
  summary = {
      "strategy": run.name,
      "dataset": dataset.name,
      "seed": seed,
      "aubc": metrics.aubc(accuracies, budget=measured, batch=run.al.batch) if measured else None,
      "f_acc": metrics.final_accuracy(accuracies),
      "accuracies": accuracies,
      "num_labeled": [rec["num_labeled"] for rec in state.records],
      "labels_spent": state.spent,
      "traces": dict(run.traces),
      "seconds": seconds,
  }
  if isinstance(run.oracle, oracles.CsvOracle):
    summary["pending_labels"] = state.pending
  return summary


def _start(context: Run, state: RoundState, identity: dict[str, Any],
           max_to_keep: int | None, log: Callable[[str], None]):
  """``(checkpointer or None, state, variables)``: resumed from the workdir if it has a run."""
  files = context.files
  if files is None:
    return None, state, None
  ckpt = files.open_checkpoints(max_to_keep)
  state, variables = run_state.resume(
      ckpt, state, identity=identity, workdir=files.workdir, num_rounds=context.al.num_rounds,
      oracle=context.oracle, log=log, tag=context.tag)
  files.rewrite_rounds(state.records)
  return ckpt, state, variables


def _rounds(context: Run, state: RoundState, variables: dict[str, Any] | None,
            ckpt: RoundCheckpointer | None, identity: dict[str, Any],
            log: Callable[[str], None]) -> tuple[RoundState, dict[str, Any] | None]:
  """The rounds left, each saved as it ends; stops early when a person must answer."""
  while state.round <= context.al.num_rounds:
    state, ts, record = run_round(context, state)
    variables = {"params": ts.params, "batch_stats": ts.batch_stats}
    if ckpt is not None:
      # The checkpoint first, then the line: a crash between the two is
      # repaired on resume, which rewrites rounds.jsonl from the checkpoint.
      run_state.save(ckpt, state, ts, identity, with_pseudo=context.strategy.pseudo is not None)
      context.files.append_round(record)
    log(_round_line(context, record, record["unlabeled_error_rate"]))
    _ask_person(context, state, record, log)
    if state.pending:
      break
  return state, variables


def _default_progress_every() -> float:
  """Progress inside rounds every 10 s on a terminal; off when the output is a file."""
  return 10.0 if sys.stdout.isatty() else 0.0


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
    progress_every: float | None = None,
    devices: int | Sequence[jax.Device] | Mesh | None = None,
    in_memory_limit: int | None = None,
) -> dict[str, Any]:
  """Runs one (strategy, seed) active-learning experiment, resuming if it can.

  Args:
    dataset, strategy, seed: pool and test arrays; a name in
      :data:`msal_jax.strategies.STRATEGIES`; the root of every key.
    al, train, model: typed settings.
    workdir: gets ``rounds.jsonl`` (a line per finished round), a checkpoint
      per round (``checkpoints/``), ``summary.json`` and ``curve.png``; a run
      finding checkpoints there continues after the last finished round, as
      an uninterrupted run would (every key derives from seed and round).
    max_to_keep, log: round checkpoints kept (``None``: all); line printer.
    embedding_rounds: rounds whose pool features are saved for t-SNE, to
      ``embeddings/round_<r>.npz`` (see :func:`msal_jax.report.save_embeddings`):
      a fixed random sample of ``embedding_points`` pool samples (the same in
      every round) plus all samples queried in that round. Needs ``workdir``.
    initial_set: pool ids (or an ``[N]`` bool mask) labeled at the start,
      instead of ``al.initial`` drawn at random; by default the pool samples
      with known labels when some are ``-1`` (see :func:`hitl.start_labeled`).
    oracle: where the labels of queried samples come from: ``"dataset"``
      (the pool labels, held back until queried), a function ``ids -> labels``
      (recorded as ``"labels"`` in the round's record), or ``"csv"``: each
      round writes ``queries/round_<r>.csv`` and returns; the next call
      (needs ``workdir``) reads the filled-in labels and goes on (:mod:`hitl`).
    progress_every: seconds between progress lines inside a round (epochs, pool
      scoring); 0: none; ``None``: 10 s on a terminal, else none.
    devices: ``None`` every device of the default backend, an int that many,
      or devices / a 1-D mesh (:mod:`msal_jax.devices`); one device is today's
      one-device path exactly.
    in_memory_limit: bytes of pixels over which a memory-mapped or PoolSource pool streams
      (:mod:`msal_jax.streamed_pool`, docs/out_of_core.md); ``None``: 4 GiB.

  Returns:
    The summary: strategy, dataset, seed, aubc, f_acc, accuracies,
    num_labeled, labels_spent, traces, seconds, the per-round records
    under ``"rounds"`` and the last round's model under ``"variables"``
    (``{"params", "batch_stats"}``: the network whose test accuracy is the
    last entry of ``accuracies``; not written to ``summary.json``); with
    ``oracle="csv"`` also ``pending_labels``: the CSV to fill in, or ``None``
    when the run is finished.
  """
  every = _default_progress_every() if progress_every is None else progress_every
  with pinned(devices):  # one given device: this run's arrays live there
    context, state = build(
        dataset, strategy=strategy, seed=seed, al=al, train=train, model=model,
        workdir=workdir, oracle=oracle, initial_set=initial_set,
        embedding_rounds=embedding_rounds, embedding_points=embedding_points, log=log,
        progress_every=every, devices=devices, in_memory_limit=in_memory_limit)
    identity = {"strategy": strategy, "seed": seed, "dataset": dataset.name,
                "num_pool": dataset.num_pool}
    ckpt, state, variables = _start(context, state, identity, max_to_keep, log)
    start_all = time.perf_counter()
    try:
      state, variables = _rounds(context, state, variables, ckpt, identity, log)
    finally:
      if ckpt is not None:
        ckpt.close()
  summary = _summary(context, state, dataset, seed, time.perf_counter() - start_all)
  if context.files is not None:
    context.files.write_summary(summary)
  return {**summary, "rounds": state.records, "variables": variables}
