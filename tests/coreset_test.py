"""Tests for smallgan_jax.coreset: exact agreement with the NumPy reference (ties, duplicates, edge
sizes), argument errors, vmap/pmap, the 2-approximation bound and the random projection."""
import functools
import itertools
import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.coreset_reference import (covering_radius, greedy_k_center_numpy,
                                            greedy_k_center_sklearn)
from smallgan_jax import coreset

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gaussian(seed, n, d):
  return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _assert_matches_reference(points, k, context):
  got = coreset.greedy_k_center(jnp.asarray(points), k=k)
  assert got.dtype == jnp.int32 and got.shape == (k,), f"{context}: {got.dtype} {got.shape}"
  want = greedy_k_center_numpy(points, k)
  np.testing.assert_array_equal(np.asarray(got), want, err_msg=context)
  return np.asarray(got)


@pytest.mark.parametrize("n,d,k,seed", [
    (1, 1, 1, 0), (1, 6, 1, 1), (9, 1, 9, 2), (10, 3, 1, 3), (33, 4, 10, 4), (100, 16, 100, 5),
    (257, 8, 64, 6), (300, 130, 50, 7), (513, 37, 128, 8),
])
def test_matches_numpy_reference(n, d, k, seed):
  _assert_matches_reference(_gaussian(seed, n, d), k, f"n={n} d={d} k={k} seed={seed}")


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_integer_grid_ties_match_reference(seed):
  # Coordinates in {0, 1, 2}: squared distances are small integers, exact in float32, with many
  # equal values and duplicated points, so lowest-index tie-breaking decides most picks.
  points = np.random.default_rng(seed).integers(0, 3, size=(60, 3)).astype(np.float32)
  for k in (1, 7, 27, 45, 60):
    got = _assert_matches_reference(points, k, f"seed={seed} k={k}")
    assert len(set(got.tolist())) == k, f"seed={seed} k={k}: repeated index in {got}"


@pytest.mark.parametrize("layout", ["repeat", "tile"])
def test_duplicated_points_are_never_picked_twice(layout):
  base = _gaussian(20, 16, 5)
  points = np.repeat(base, 3, axis=0) if layout == "repeat" else np.tile(base, (3, 1))
  n = points.shape[0]
  for k in (16, 17, 30, n):
    got = _assert_matches_reference(points, k, f"{layout} k={k}")
    assert len(set(got.tolist())) == k, f"{layout} k={k}: repeated index in {got}"
    if k == n:
      np.testing.assert_array_equal(np.sort(got), np.arange(n), err_msg=layout)


def test_identical_points_picked_in_index_order():
  points = np.full((12, 4), 2.5, np.float32)
  for k in (1, 5, 12):
    got = _assert_matches_reference(points, k, f"k={k}")
    np.testing.assert_array_equal(got, np.arange(k))


@pytest.mark.parametrize("k", [0, 6, -1])
def test_k_out_of_range_names_k_and_n(k):
  with pytest.raises(ValueError, match=rf"k={k} must be in \[1, n=5\]"):
    coreset.greedy_k_center(jnp.zeros((5, 3)), k=k)


@pytest.mark.parametrize("shape", [(5,), (2, 5, 3)])
def test_points_must_be_2d(shape):
  with pytest.raises(ValueError, match="2-D.*" + re.escape(str(shape))):
    coreset.greedy_k_center(jnp.zeros(shape), k=1)


def test_vmap_equals_loop_over_sets():
  sets = np.random.default_rng(30).standard_normal((5, 64, 12)).astype(np.float32)
  batched = jax.vmap(functools.partial(coreset.greedy_k_center, k=20))(jnp.asarray(sets))
  for b, points in enumerate(sets):
    single = coreset.greedy_k_center(jnp.asarray(points), k=20)
    np.testing.assert_array_equal(np.asarray(batched[b]), np.asarray(single), err_msg=f"set {b}")
    np.testing.assert_array_equal(np.asarray(single), greedy_k_center_numpy(points, 20),
                                  err_msg=f"set {b}")


def _optimal_covering_radius(points, k):
  return min(covering_radius(points, np.array(c))
             for c in itertools.combinations(range(len(points)), k))


@pytest.mark.parametrize("seed", range(40, 46))
def test_two_approximation_of_optimal_k_center(seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(5, 11))
  points = rng.standard_normal((n, 2)).astype(np.float32)
  for k in range(1, 5):
    got = np.asarray(coreset.greedy_k_center(jnp.asarray(points), k=k))
    context = f"seed={seed} n={n} k={k}"
    assert got[0] == 0, context
    np.testing.assert_array_equal(got, greedy_k_center_sklearn(points, k), err_msg=context)
    greedy_radius = covering_radius(points, got)
    optimal_radius = _optimal_covering_radius(points, k)
    assert greedy_radius <= 2 * optimal_radius * (1 + 1e-9), (
        f"{context}: greedy radius {greedy_radius} > 2 * optimal {optimal_radius}")


_PMAP_CHECK = textwrap.dedent("""
    import functools
    import jax, jax.numpy as jnp, numpy as np
    from smallgan_jax.coreset import greedy_k_center
    from benchmarks.coreset_reference import greedy_k_center_numpy
    assert jax.device_count() == 8, jax.devices()
    sets = np.random.default_rng(50).standard_normal((8, 96, 10)).astype(np.float32)
    sets[3] = np.repeat(sets[3, :32], 3, axis=0)
    got = np.asarray(jax.pmap(functools.partial(greedy_k_center, k=40))(jnp.asarray(sets)))
    for i, points in enumerate(sets):
      np.testing.assert_array_equal(got[i], greedy_k_center_numpy(points, 40), err_msg=str(i))
    print("PMAP_OK", got.shape)
""")


def test_runs_inside_pmap_on_simulated_devices():
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=8").strip())
  result = subprocess.run([sys.executable, "-c", _PMAP_CHECK], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "PMAP_OK (8, 40)" in result.stdout, result.stdout + result.stderr[-3000:]


def test_random_projection_is_seeded():
  a = coreset.random_projection(jax.random.PRNGKey(0), 64, 16)
  b = coreset.random_projection(jax.random.PRNGKey(0), 64, 16)
  c = coreset.random_projection(jax.random.PRNGKey(1), 64, 16)
  assert a.shape == (64, 16) and a.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.allclose(np.asarray(a), np.asarray(c))


def test_random_projection_dtype():
  m = coreset.random_projection(jax.random.PRNGKey(0), 8, 4, dtype=jnp.bfloat16)
  assert m.shape == (8, 4) and m.dtype == jnp.bfloat16


def test_random_projection_preserves_squared_norms_on_average():
  x = np.random.default_rng(60).standard_normal((2000, 512)).astype(np.float32)
  matrix = coreset.random_projection(jax.random.PRNGKey(3), 512, 256)
  projected = np.asarray(coreset.project(jnp.asarray(x), matrix), np.float64)
  ratio = (projected ** 2).sum(1) / (x.astype(np.float64) ** 2).sum(1)
  assert abs(ratio.mean() - 1.0) < 0.03, ratio.mean()
  np.testing.assert_allclose(projected, x.astype(np.float64) @ np.asarray(matrix, np.float64),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("in_dim,out_dim,name", [(0, 4, "in_dim=0"), (4, -2, "out_dim=-2")])
def test_random_projection_rejects_non_positive_dims(in_dim, out_dim, name):
  with pytest.raises(ValueError, match=name):
    coreset.random_projection(jax.random.PRNGKey(0), in_dim, out_dim)
