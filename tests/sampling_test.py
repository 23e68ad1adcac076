"""Core-set samplers: what they keep, and that factor 1 is plain random sampling."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.coreset_reference import covering_radius, greedy_k_center_numpy
from smallgan_jax import sampling


def test_factor_one_is_plain_random_sampling():
  rng = jax.random.PRNGKey(0)
  got = sampling.coreset_prior(rng, num_sets=3, k=16, factor=1, z_dim=5, prior="uniform")
  np.testing.assert_array_equal(got, sampling.sample_prior(rng, (3, 16, 5), "uniform"))


@pytest.mark.parametrize("prior", sampling.PRIORS)
def test_prior_coreset_is_the_greedy_core_set_of_the_candidates(prior):
  rng = jax.random.PRNGKey(1)
  got = np.asarray(sampling.coreset_prior(rng, num_sets=2, k=8, factor=4, z_dim=3, prior=prior))
  candidates = np.asarray(sampling.sample_prior(rng, (2, 32, 3), prior))
  assert got.shape == (2, 8, 3)
  for s in range(2):
    np.testing.assert_array_equal(got[s], candidates[s][greedy_k_center_numpy(candidates[s], 8)])


def test_uniform_prior_range_and_normal_moments():
  u = np.asarray(sampling.sample_prior(jax.random.PRNGKey(2), (20000, 2), "uniform"))
  assert u.min() >= -1 and u.max() <= 1 and abs(u.mean()) < 0.02
  z = np.asarray(sampling.sample_prior(jax.random.PRNGKey(2), (20000, 2), "normal"))
  assert abs(z.std() - 1) < 0.02


def test_target_coreset_selects_by_embedding():
  """The kept samples are those whose *embeddings* form the core-set, not the samples'."""
  emb = jax.random.normal(jax.random.PRNGKey(3), (2, 40, 4))

  def draw(rng, num_sets, n):
    del rng
    labels = jnp.broadcast_to(jnp.arange(n)[:, None], (num_sets, n, 1))
    return labels, emb[:num_sets, :n]

  got = np.asarray(sampling.coreset_target(None, draw, num_sets=2, k=5, factor=8))[..., 0]
  for s in range(2):
    np.testing.assert_array_equal(got[s], greedy_k_center_numpy(np.asarray(emb[s]), 5))


def test_coreset_covers_the_candidates_better_than_random_subsets():
  """The reason for core-sets: a batch of k that covers all n candidates (lower covering radius)."""
  rng = jax.random.PRNGKey(4)
  z = np.asarray(sampling.sample_prior(rng, (1, 256, 2), "uniform"))[0]
  chosen = greedy_k_center_numpy(z, 64)
  random_radii = [covering_radius(z, np.random.default_rng(i).choice(256, 64, replace=False))
                  for i in range(20)]
  assert covering_radius(z, chosen) < min(random_radii)


def test_unknown_prior_names_it():
  with pytest.raises(ValueError, match="prior='cauchy'"):
    sampling.sample_prior(jax.random.PRNGKey(0), (2,), "cauchy")
