"""MC-dropout scores against numpy, the T-pass forward, and the strategies in the loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msal_jax import loop, models, scoring, strategies
from msal_jax.train import Trainer


def _probs(logits):
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _ent(p):
  return -(p * np.log(p)).sum(-1)


@pytest.fixture(scope="module")
def mc():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(10, 300, 7)) * 2
  return logits, _probs(logits)


def test_scores_on_the_mean(mc):
  logits, p = mc
  mean = p.mean(0)
  srt = np.sort(mean, -1)
  x = jnp.asarray(logits, jnp.float32)
  np.testing.assert_allclose(scoring.MC_UNCERTAINTY["entropy_dropout"](x), _ent(mean), atol=1e-5)
  np.testing.assert_allclose(scoring.MC_UNCERTAINTY["margin_dropout"](x), srt[:, -2] - srt[:, -1],
                             atol=1e-5)
  np.testing.assert_allclose(scoring.MC_UNCERTAINTY["least_conf_dropout"](x), 1 - srt[:, -1],
                             atol=1e-5)


def test_bald_mean_std_var_ratio(mc):
  logits, p = mc
  x = jnp.asarray(logits, jnp.float32)
  np.testing.assert_allclose(scoring.bald(x), _ent(p.mean(0)) - _ent(p).mean(0), atol=1e-5)
  np.testing.assert_allclose(scoring.mean_std(x), p.std(0).mean(-1), atol=1e-6)
  votes = np.stack([np.bincount(col, minlength=7) for col in logits.argmax(-1).T])
  np.testing.assert_allclose(scoring.var_ratio_mc(x), 1 - votes.max(1) / 10, atol=1e-7)


def test_hand_cases():
  # Two passes that agree exactly: BALD 0, MeanSTD 0, VarRatio 0.
  same = jnp.array([[[2.0, 0.0]], [[2.0, 0.0]]])
  assert float(scoring.bald(same)[0]) == pytest.approx(0.0, abs=1e-6)
  assert float(scoring.mean_std(same)[0]) == 0.0
  assert float(scoring.var_ratio_mc(same)[0]) == 0.0
  # Two confident passes that disagree: VarRatio 1/2, BALD = log 2 - H(sharp) ~ log 2.
  split = jnp.array([[[20.0, 0.0]], [[0.0, 20.0]]])
  assert float(scoring.var_ratio_mc(split)[0]) == 0.5
  assert float(scoring.bald(split)[0]) == pytest.approx(np.log(2), abs=1e-6)
  with pytest.raises(ValueError, match=r"\[T, N, C\]"):
    scoring.bald(jnp.zeros((3, 4)))


def test_predict_mc_passes():
  model = models.make_model("small_cnn", num_classes=10, head="linear", dropout_rate=0.5,
                            widths=(4,), hidden=16)
  trainer = Trainer(model, (28, 28, 1), (0.13,), (0.31,), eval_batch_size=64)
  state = trainer.init(jax.random.PRNGKey(0))
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (100, 28, 28, 1), np.uint8))
  out = trainer.predict_mc(state, images, key=jax.random.PRNGKey(1), passes=4)
  assert out.shape == (4, 100, 10)
  assert not np.allclose(out[0], out[1])
  again = trainer.predict_mc(state, images, key=jax.random.PRNGKey(1), passes=4)
  np.testing.assert_array_equal(out, again)
  # With dropout off every pass is the deterministic forward.
  plain = models.make_model("small_cnn", num_classes=10, head="linear", widths=(4,), hidden=16)
  t0 = Trainer(plain, (28, 28, 1), (0.13,), (0.31,), eval_batch_size=64)
  s0 = t0.init(jax.random.PRNGKey(0))
  out0 = t0.predict_mc(s0, images, key=jax.random.PRNGKey(1), passes=3)
  logits, _ = t0.predict(s0, images)
  for t in range(3):
    np.testing.assert_allclose(out0[t], logits, atol=1e-6)


def test_registry_has_the_mc_strategies():
  for name in ("least_conf_dropout", "margin_dropout", "entropy_dropout", "bald", "mean_std",
               "var_ratio_mc"):
    assert strategies.STRATEGIES[name].needs_mc and strategies.STRATEGIES[name].head == "linear"
    assert strategies.STRATEGIES[name + "_msal"].head == "max_sep"


@pytest.fixture(scope="module")
def tiny(mnist5k_head):
  return mnist5k_head(200, 50)


@pytest.mark.parametrize("strategy", ["bald", "var_ratio_mc_msal"])
def test_mc_strategy_in_the_loop(tiny, strategy):
  s = loop.run(
      tiny, strategy=strategy, seed=0, log=lambda s: None,
      al=loop.ActiveLearningConfig(initial=20, batch=10, budget=20, mc_passes=3),
      train=loop.TrainConfig(epochs=1, batch_size=16, eval_batch_size=64),
      model=loop.ModelConfig(dropout_rate=0.3, trunk_kwargs={"widths": (4,), "hidden": 16}),
  )
  assert [len(r["queried"]) for r in s["rounds"]] == [10, 10, 0]
  assert s["traces"]["mc_step"] == 1 and s["traces"]["select"] == 1


def test_var_ratio_is_deepal_one_pass_and_var_ratio_mc_is_freeman():
  # The registered var_ratio is DeepAL+'s VarRatio: 1 - max softmax of one
  # deterministic pass, no MC passes; Freeman's ratio over T passes is var_ratio_mc.
  assert not strategies.STRATEGIES["var_ratio"].needs_mc
  assert not strategies.STRATEGIES["var_ratio_msal"].needs_mc
  assert strategies.STRATEGIES["var_ratio_msal"].head == "max_sep"
  assert strategies.STRATEGIES["var_ratio_mc"].needs_mc
  # Logits (log 3, 0, 0): p = (3/5, 1/5, 1/5), VarRatio 2/5; (0, 0): p = 1/2, 1/2;
  # (log 9, 0): p = (9/10, 1/10), 1/10.
  logits = jnp.array([[np.log(3.0), 0.0, 0.0], [0.0, 0.0, -np.inf], [np.log(9.0), 0.0, -np.inf]])
  np.testing.assert_allclose(scoring.var_ratio(logits), [0.4, 0.5, 0.1], rtol=1e-6)
  # Selection: the largest 1 - max p among the unlabeled (row 1 is labeled).
  outputs = strategies.PoolOutputs(logits=logits, features=jnp.zeros((3, 2)))
  picked = strategies.STRATEGIES["var_ratio"].select(
      None, outputs, jnp.array([False, True, False]), budget=2, beta=1.0)
  assert picked.tolist() == [0, 2]
  # Freeman's over 3 passes voting classes (0, 0, 1): 1 - 2/3, whatever the confidences.
  passes = jnp.array([[[5.0, 0.0]], [[0.1, 0.0]], [[0.0, 9.0]]])
  np.testing.assert_allclose(scoring.var_ratio_mc(passes), [1 / 3], rtol=1e-6)


def test_mc_strategy_needs_dropout(tiny):
  with pytest.raises(ValueError, match="model.dropout_rate > 0"):
    loop.run(tiny, strategy="bald", seed=0, log=lambda s: None,
             al=loop.ActiveLearningConfig(initial=20, batch=10, budget=20),
             train=loop.TrainConfig(epochs=1), model=loop.ModelConfig())
