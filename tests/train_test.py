"""The train step and loop on the 2D toy GAN: real steps on small settings."""
import functools
import importlib
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from smallgan_jax import datasets, models, train, validation

CONFIGS = sorted(p.stem for p in pathlib.Path(default.__file__).parent.glob("*.py")
                 if p.stem != "__init__")


def small_config(overrides=None):
  """A tiny toy config; `overrides` maps flattened keys ("topk.enabled") to values."""
  config = default.get_config()
  config.mlp.width = 32
  config.batch_size = config.g_batch_size = 16
  config.num_train_steps = 4
  config.eval_num_samples = 500
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 2
  config.update_from_flattened_dict(overrides or {})
  return config


def init(config):
  dataset = datasets.get_dataset(config)
  g, d = models.get_models(config, dataset.data_shape)
  state = train.create_train_state(config, g, d, dataset.data_shape,
                                   jax.random.PRNGKey(config.seed))
  step = jax.jit(functools.partial(train.train_step, config=config,
                                   draw_candidates=dataset.draw_candidates, num_replicas=1,
                                   axis_name=None))
  return state, step


def run_steps(config, n):
  state, step = init(config)
  for _ in range(n):
    state, metrics = step(state)
  return state, metrics


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize("overrides", [
    {}, {"topk.enabled": True}, {"n_dis": 3, "loss": "hinge"},
    {"coreset.factor_prior": 1, "coreset.factor_target": 1},
    {"gradient_penalty.weight": 1.0},
    {"gradient_penalty.weight": 0.1, "gradient_penalty.on": "interpolates",
     "gradient_penalty.center": 1.0}])
def test_one_step_updates_both_networks(overrides):
  config = small_config(overrides)
  state0, step = init(config)
  state1, metrics = step(state0)
  assert int(state1.step) == 1
  for name in ("g", "d"):
    before, after = leaves(getattr(state0, name).params), leaves(getattr(state1, name).params)
    assert all(np.isfinite(a).all() for a in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after)), name
  assert int(state1.d.step) == config.n_dis and int(state1.g.step) == 1
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_same_seed_same_run_other_seed_other_run():
  a, _ = run_steps(small_config(), 3)
  b, _ = run_steps(small_config(), 3)
  c, _ = run_steps(small_config({"seed": 1}), 3)
  for x, y in zip(leaves(a), leaves(b)):
    np.testing.assert_array_equal(x, y)
  assert any(not np.array_equal(x, y) for x, y in zip(leaves(a.g.params), leaves(c.g.params)))


def test_topk_keeps_the_scheduled_fraction():
  config = small_config({"topk.enabled": True, "topk.gamma": 0.5, "topk.decay_steps": 1})
  state, step = init(config)
  kept = []
  for _ in range(3):
    state, metrics = step(state)
    kept.append(float(metrics["g_kept_fraction"]))
  assert kept == [1.0, 0.5, 0.5]


def test_step_on_8_devices_keeps_replicas_identical():
  code = textwrap.dedent("""
      import jax, numpy as np
      from tests.train_test import small_config
      from smallgan_jax import datasets, distributed, train
      assert jax.device_count() == 8
      config = small_config({"topk.enabled": True, "topk.gamma": 0.5, "topk.decay_steps": 1})
      dataset = datasets.get_dataset(config)
      mesh = distributed.device_mesh()
      state = train.replicated_state(config, dataset, mesh)
      step = train.make_train_step(config, dataset, mesh)
      for _ in range(2):
        state, metrics = step(state)
      for leaf in jax.tree.leaves(state):
        copies = [np.asarray(shard.data) for shard in leaf.addressable_shards]
        assert len(copies) == 8 and all((c == copies[0]).all() for c in copies), "replicas diverged"
      assert float(metrics["g_kept_fraction"]) == 0.5 and bool(metrics["finite"])
      print("OK")
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(__file__)))
  assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-3000:]


def test_gradient_penalty_enters_the_critic_loss_only_when_weighted():
  metrics = {w: run_steps(small_config({"gradient_penalty.weight": w}), 1)[1] for w in (0.0, 10.0)}
  assert float(metrics[0.0]["d_penalty"]) == 0.0
  assert float(metrics[10.0]["d_penalty"]) > 0.0
  # Same seed, same first batch and networks: the losses differ by exactly the penalty.
  np.testing.assert_allclose(float(metrics[10.0]["d_loss"]) - float(metrics[10.0]["d_penalty"]),
                             float(metrics[0.0]["d_loss"]), rtol=1e-5)


def test_config_modules_are_found():
  assert {"default", "toy_mog", "toy_mog_100", "toy_mog_baseline"} <= set(CONFIGS)


TOY_CONFIGS = [name for name in CONFIGS
               if importlib.import_module(f"configs.{name}").get_config().dataset != "images"]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_validates(name):
  validation.validate_config(importlib.import_module(f"configs.{name}").get_config(), 1)


@pytest.mark.parametrize("name", TOY_CONFIGS)
def test_every_toy_config_trains_a_step(name):
  """(Image configs train in tests/image_train_test.py, on data the test writes.)"""
  config = importlib.import_module(f"configs.{name}").get_config()
  config.mlp.width = 16
  state, step = init(config)
  state, metrics = step(state)
  assert int(state.step) == 1 and np.isfinite(float(metrics["g_loss"]))


def test_unequal_d_and_g_batches_draw_latents_separately():
  config = small_config({"g_batch_size": 32, "n_dis": 2})
  state, step = init(config)
  state, metrics = step(state)
  assert int(state.g.step) == 1 and int(state.d.step) == 2
  assert np.isfinite(float(metrics["g_loss"]))
