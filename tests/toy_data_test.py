"""The 2D mixture-of-Gaussians targets: exact mode layouts and the statistics of their samples."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smallgan_jax.data import toy

STD = 0.05


def _nearest_neighbour_distances(points):
  dist = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
  np.fill_diagonal(dist, np.inf)
  return dist.min(axis=1)


def test_grid_25_is_the_paper_grid():
  means = toy.grid_means(25)
  assert means.shape == (25, 2) and means.dtype == np.float32
  expected = set(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2))
  assert {tuple(m) for m in means.tolist()} == expected


def test_grid_36_is_centred_with_exact_spacing():
  means = toy.grid_means(36)
  expected = set(itertools.product([-5.0, -3.0, -1.0, 1.0, 3.0, 5.0], repeat=2))
  assert {tuple(m) for m in means.tolist()} == expected
  np.testing.assert_array_equal(means.mean(axis=0), [0.0, 0.0])
  np.testing.assert_array_equal(_nearest_neighbour_distances(means), np.full(36, 2.0))


@pytest.mark.parametrize("num_modes", [49, 64, 81, 100])
@pytest.mark.parametrize("spacing", [1.0, 2.0])
def test_grid_layouts(num_modes, spacing):
  means = toy.grid_means(num_modes, spacing)
  assert len({tuple(m) for m in means.tolist()}) == num_modes
  np.testing.assert_allclose(means.mean(axis=0), [0.0, 0.0], atol=1e-6)
  np.testing.assert_allclose(_nearest_neighbour_distances(means), spacing, rtol=1e-6)


@pytest.mark.parametrize("num_modes", [30, 24, 0, -4])
def test_grid_rejects_non_square(num_modes):
  with pytest.raises(ValueError, match=f"num_modes={num_modes} must be a perfect square"):
    toy.grid_means(num_modes)


@pytest.mark.parametrize("num_modes", [1, 8, 25])
def test_ring_layout(num_modes):
  means = toy.ring_means(num_modes, radius=3.0)
  assert means.shape == (num_modes, 2) and means.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(means, axis=1), 3.0, rtol=1e-6)
  np.testing.assert_allclose(means[0], [3.0, 0.0], atol=1e-6)
  angles = np.unwrap(np.arctan2(means[:, 1], means[:, 0]))
  np.testing.assert_allclose(np.diff(angles), 2 * np.pi / num_modes, rtol=1e-5)


def test_mixture_means_dispatches():
  np.testing.assert_array_equal(toy.mixture_means("grid", 49, 1.5, 9.0), toy.grid_means(49, 1.5))
  np.testing.assert_array_equal(toy.mixture_means("ring", 8, 1.5, 9.0), toy.ring_means(8, 9.0))
  with pytest.raises(ValueError, match=r"kind='spiral'.*\['grid', 'ring'\]"):
    toy.mixture_means("spiral", 25, 2.0, 2.0)


def test_sample_shape_and_dtype():
  x = toy.sample_mixture(jax.random.PRNGKey(0), toy.grid_means(25), STD, 100)
  assert x.shape == (100, 2) and x.dtype == jnp.float32


def test_samples_cover_modes_uniformly_with_the_given_std():
  means = toy.grid_means(25)
  n = 50_000
  x = np.asarray(toy.sample_mixture(jax.random.PRNGKey(1), means, STD, n), np.float64)
  modes = np.argmin(np.linalg.norm(x[:, None, :] - means[None], axis=-1), axis=1)
  counts = np.bincount(modes, minlength=25)
  expected = n / 25
  chi_square = np.sum((counts - expected) ** 2 / expected)
  assert chi_square < 60, counts  # 24 degrees of freedom: P(chi2 > 60) < 1e-4.
  for m in range(25):
    residuals = x[modes == m] - means[m]
    np.testing.assert_allclose(residuals.mean(axis=0), 0.0, atol=5 * STD / np.sqrt(counts[m]))
    np.testing.assert_allclose(residuals.std(axis=0), STD, rtol=0.05)


def test_samples_are_deterministic_per_key():
  means = toy.grid_means(25)
  a = toy.sample_mixture(jax.random.PRNGKey(3), means, STD, 64)
  b = toy.sample_mixture(jax.random.PRNGKey(3), means, STD, 64)
  c = toy.sample_mixture(jax.random.PRNGKey(4), means, STD, 64)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)


def test_sample_under_jit_with_traced_means():
  means = jnp.asarray(toy.grid_means(25))
  key = jax.random.PRNGKey(5)
  jitted = jax.jit(toy.sample_mixture, static_argnums=3)
  np.testing.assert_allclose(jitted(key, means, STD, 32), toy.sample_mixture(key, means, STD, 32),
                             rtol=1e-6)


def test_sample_under_vmap_over_keys_and_means():
  keys = jax.random.split(jax.random.PRNGKey(6), 3)
  means = jnp.asarray(toy.grid_means(25))
  batched = jax.jit(jax.vmap(lambda k: toy.sample_mixture(k, means, STD, 16)))(keys)
  assert batched.shape == (3, 16, 2)
  single = jax.jit(toy.sample_mixture, static_argnums=3)
  for i in range(3):
    np.testing.assert_allclose(batched[i], single(keys[i], means, STD, 16), rtol=1e-6)
  grids = jnp.stack([means, 10.0 * means])
  per_grid = jax.jit(jax.vmap(lambda m: toy.sample_mixture(keys[0], m, 0.0, 16)))(grids)
  np.testing.assert_allclose(per_grid[1], 10.0 * per_grid[0], rtol=1e-6)
