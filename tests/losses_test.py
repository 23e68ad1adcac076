"""GAN losses against their closed forms in NumPy (float64)."""
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
