"""GAN losses against their closed forms in NumPy (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smallgan_jax import losses


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture
def logits():
  rng = np.random.default_rng(0)
  return rng.normal(size=32) * 3, rng.normal(size=32) * 3


def test_non_saturating(logits):
  real, fake = logits
  d_loss, g_loss = losses.get_losses("non_saturating")
  expected_d = -np.mean(np.log(_sigmoid(real))) - np.mean(np.log(1 - _sigmoid(fake)))
  np.testing.assert_allclose(float(d_loss(jnp.asarray(real), jnp.asarray(fake))), expected_d,
                             rtol=1e-5)
  expected_g = -np.mean(np.log(_sigmoid(fake)))
  np.testing.assert_allclose(float(g_loss(jnp.asarray(fake), jnp.ones(32))), expected_g, rtol=1e-5)


def test_hinge(logits):
  real, fake = logits
  d_loss, g_loss = losses.get_losses("hinge")
  expected_d = np.mean(np.maximum(0, 1 - real)) + np.mean(np.maximum(0, 1 + fake))
  np.testing.assert_allclose(float(d_loss(jnp.asarray(real), jnp.asarray(fake))), expected_d,
                             rtol=1e-5)
  np.testing.assert_allclose(float(g_loss(jnp.asarray(fake), jnp.ones(32))), -np.mean(fake),
                             rtol=1e-5)


def test_generator_weights_scale_each_sample(logits):
  _, fake = logits
  weights = np.random.default_rng(1).uniform(size=32)
  _, g_loss = losses.get_losses("non_saturating")
  expected = np.mean(weights * np.log1p(np.exp(-fake)))
  np.testing.assert_allclose(float(g_loss(jnp.asarray(fake), jnp.asarray(weights))), expected,
                             rtol=1e-5)


def test_unknown_loss_names_it():
  with pytest.raises(ValueError, match="loss='wgan'"):
    losses.get_losses("wgan")


@pytest.mark.parametrize("center", [0.0, 1.0])
def test_gradient_penalty_of_a_quadratic_critic(center):
  # critic(x) = sum(a * x^2) per sample has gradient 2 a x: a closed form to check against.
  rng = np.random.default_rng(2)
  a, x = rng.uniform(0.5, 2.0, size=3), rng.normal(size=(16, 3))
  expected = np.mean((np.linalg.norm(2 * a * x, axis=1) - center) ** 2)
  critic = lambda points: jnp.sum(jnp.asarray(a, jnp.float32) * points ** 2, axis=1)
  penalty = losses.gradient_penalty(critic, jnp.asarray(x, jnp.float32), center)
  np.testing.assert_allclose(float(penalty), expected, rtol=1e-5)


def test_gradient_penalty_is_zero_for_a_flat_critic_and_differentiable_in_its_weights():
  x = jnp.asarray(np.random.default_rng(3).normal(size=(8, 2)), jnp.float32)
  linear = lambda w: losses.gradient_penalty(lambda p: p @ w, x, 0.0)
  assert float(linear(jnp.zeros(2))) == 0.0
  # With a linear critic every sample's gradient is w, so the R1 penalty is |w|^2, gradient 2w.
  w = jnp.asarray([0.3, -1.2])
  np.testing.assert_allclose(float(linear(w)), 0.09 + 1.44, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(jax.grad(linear)(w)), [0.6, -2.4], rtol=1e-5)
