"""Top-k generator updates: the schedule, the mask, its gradients and its device split."""
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smallgan_jax import losses, topk


@pytest.mark.parametrize("step,expected", [(0, 64), (1999, 64), (2000, 63), (4000, 62),
                                           (60 * 2000, 35), (70 * 2000, 32),
                                           (10**6, 32)])
def test_num_kept_schedule(step, expected):
  # floor(max(0.99^epoch, 0.5) * 64); 0.99^70 = 0.4948 < 0.5, so the floor nu * 64 = 32 applies.
  got = topk.num_kept(jnp.int32(step), 64, gamma=0.99, nu=0.5, decay_steps=2000)
  assert int(got) == expected


def test_keep_fraction_matches_formula():
  steps = np.arange(0, 200_000, 777)
  got = np.asarray(topk.keep_fraction(jnp.asarray(steps), 0.99, 0.75, 2000))
  np.testing.assert_allclose(got, np.maximum(0.99 ** (steps // 2000), 0.75), rtol=1e-5)


def _reference_keep(scores, k):
  """Indices of the k highest scores, lowest index first among equals."""
  order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
  return set(order[:k])


@pytest.mark.parametrize("seed", range(5))
def test_weights_keep_exactly_the_k_highest(seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(1, 50))
  k = int(rng.integers(1, n + 1))
  scores = rng.integers(-3, 4, size=n).astype(np.float32)  # many ties
  weights = np.asarray(topk.top_k_weights(jnp.asarray(scores), jnp.int32(k)))
  kept = set(np.flatnonzero(weights))
  assert kept == _reference_keep(list(scores), k), (seed, scores, k)
  np.testing.assert_allclose(weights[list(kept)], n / k, rtol=1e-6)


@pytest.mark.parametrize("loss", ["non_saturating", "hinge"])
def test_lowest_scored_samples_get_zero_gradient(loss):
  """The generator-loss gradient w.r.t. each fake logit is zero exactly for dropped samples."""
  _, g_loss = losses.get_losses(loss)
  logits = jax.random.normal(jax.random.PRNGKey(3), (16,))
  k = 5

  def loss_fn(l):
    return g_loss(l, topk.top_k_weights(l, jnp.int32(k)))

  grads = np.asarray(jax.grad(loss_fn)(logits))
  lowest = np.argsort(np.asarray(logits))[: 16 - k]
  assert np.all(grads[lowest] == 0)
  assert np.all(grads[np.setdiff1d(np.arange(16), lowest)] != 0)


def test_weighted_loss_is_mean_over_kept():
  _, g_loss = losses.get_losses("non_saturating")
  logits = jnp.asarray([2.0, -1.0, 0.5, -3.0])
  got = g_loss(logits, topk.top_k_weights(logits, jnp.int32(2)))
  expected = np.mean(np.log1p(np.exp(-np.asarray([2.0, 0.5]))))
  np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_global_scope_matches_single_device_on_the_whole_batch():
  """With 4 simulated devices, global top-k keeps what one device with the whole batch keeps."""
  code = textwrap.dedent("""
      import jax, jax.numpy as jnp, numpy as np
      from smallgan_jax import topk
      assert jax.device_count() == 4
      scores = jnp.asarray(np.random.default_rng(0).integers(-4, 5, 32).astype(np.float32))
      k = jnp.int32(11)
      sharded = jax.pmap(lambda s: topk.top_k_weights(s, k, "d"), axis_name="d")(
          scores.reshape(4, 8))
      np.testing.assert_array_equal(np.asarray(sharded).reshape(-1),
                                    np.asarray(topk.top_k_weights(scores, k)))
      assert int((np.asarray(sharded) > 0).sum()) == 11
      print("OK")
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
  assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-2000:]
