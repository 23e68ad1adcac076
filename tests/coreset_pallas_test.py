"""Tests for smallgan_jax.coreset_pallas, the fused greedy k-center kernel, in Pallas interpret mode
on the CPU: the same picks as the XLA kernel, vmap folding, argument errors, and that the Triton
and Mosaic variants lower (to Triton IR and Mosaic MLIR; compiling those needs a GPU or TPU)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.coreset_reference import greedy_k_center_numpy
from smallgan_jax import coreset
from smallgan_jax import coreset_pallas


def _small_int_sets(seed, sets, n, d, high=3):
  """Coordinates in {0, .., high - 1}: every squared distance is an exact small integer, so no
  two float32 distances are near-tied (exact ties, decided by index, are frequent)."""
  return np.random.default_rng(seed).integers(0, high, size=(sets, n, d)).astype(np.float32)


def _xla(points, k):
  return np.asarray(coreset.greedy_k_center_sets(jnp.asarray(points), k, backend="xla"))


def _pallas(points, k, variant="triton"):
  slabs = jax.vmap(coreset._to_slabs)(jnp.asarray(points))
  return np.asarray(coreset_pallas.fused_greedy_k_center(slabs, points.shape[1], k,
                                                         variant=variant, interpret=True))


@pytest.mark.parametrize("sets,n,d,k,seed", [
    (1, 1, 1, 1, 0),      # a single point
    (2, 9, 1, 9, 1),      # k = n: a permutation
    (3, 37, 5, 1, 2),     # k = 1
    (2, 37, 5, 37, 3),    # k = n, many duplicated points (3^5 values for 37 points)
    (4, 100, 13, 30, 4),  # n, d, k not powers of two
    (2, 257, 9, 40, 5),   # n just past a power of two: half the padded lanes are padding
])
def test_triton_variant_matches_xla(sets, n, d, k, seed):
  points = _small_int_sets(seed, sets, n, d)
  got = _pallas(points, k)
  assert got.dtype == np.int32 and got.shape == (sets, k), (got.dtype, got.shape)
  np.testing.assert_array_equal(got, _xla(points, k))
  if k == n:
    np.testing.assert_array_equal(np.sort(got, axis=1), np.tile(np.arange(n), (sets, 1)))


@pytest.mark.parametrize("sets,n,d,k,seed", [(2, 37, 5, 37, 6), (3, 100, 13, 30, 7)])
def test_mosaic_variant_matches_xla(sets, n, d, k, seed):
  points = _small_int_sets(seed, sets, n, d)
  np.testing.assert_array_equal(_pallas(points, k, "mosaic"), _xla(points, k))


def test_identical_points_picked_in_index_order():
  points = np.full((2, 12, 4), 2.5, np.float32)
  np.testing.assert_array_equal(_pallas(points, 12), np.tile(np.arange(12), (2, 1)))


def test_float32_rounding_matches_xla_bit_for_bit_on_cpu():
  # Point 0 is the origin and the others are permutations of one Gaussian vector: all at the same
  # real distance from it, so from the second pick on, float32 rounding decides (the float64
  # reference picks otherwise). Same slabs, same summation tree, zero padding that adds exactly
  # 0: the two kernels round alike. Summing the slabs in another order fails this test.
  rng = np.random.default_rng(8)
  v = rng.standard_normal(37).astype(np.float32)
  points = np.stack([np.zeros(37, np.float32)] + [rng.permutation(v) for _ in range(119)])
  sets = np.stack([points, points[rng.permutation(120)]])
  want = _xla(sets, 40)
  assert not np.array_equal(want[0], greedy_k_center_numpy(points, 40))
  np.testing.assert_array_equal(_pallas(sets, 40), want)


def test_backend_pallas_under_nested_vmap_is_one_call():
  points = jnp.asarray(_small_int_sets(9, 6, 40, 6).reshape(3, 2, 40, 6))
  fn = jax.vmap(jax.vmap(lambda p: coreset.greedy_k_center(p, 15, backend="pallas")))
  np.testing.assert_array_equal(np.asarray(fn(points)).reshape(6, 15),
                                _xla(np.asarray(points).reshape(6, 40, 6), 15))
  jaxpr = str(jax.make_jaxpr(fn)(points))
  assert jaxpr.count("pallas_call") == 1 and "grid=(6, 1)" in jaxpr, jaxpr


def test_auto_is_xla_on_cpu():
  assert coreset.choose_backend("auto", 1024, 32, 128) == "xla"
  assert coreset.choose_backend("pallas", 1024, 32, 128) == "pallas"


@pytest.mark.parametrize("backend", ["xla", "pallas", "auto"])
def test_k_greater_than_n_raises_for_every_backend(backend):
  with pytest.raises(ValueError, match=r"k=6 must be in \[1, n=5\]"):
    coreset.greedy_k_center(jnp.zeros((5, 3)), k=6, backend=backend)
  with pytest.raises(ValueError, match=r"k=6 must be in \[1, n=5\]"):
    coreset.greedy_k_center_sets(jnp.zeros((2, 5, 3)), k=6, backend=backend)


def test_unknown_backend_raises():
  with pytest.raises(ValueError, match="backend='cuda' is not one of"):
    coreset.greedy_k_center(jnp.zeros((5, 3)), k=2, backend="cuda")


def test_several_programs_per_set_are_refused_in_interpret_mode():
  slabs = jnp.zeros((1, 4, 1, 256))
  with pytest.raises(ValueError, match="block_n=128 < 256 runs 2 programs per set"):
    coreset_pallas.fused_greedy_k_center(slabs, 256, 4, coreset_pallas.KernelConfig(block_n=128),
                                         interpret=True)


def test_block_n_must_be_a_power_of_two():
  with pytest.raises(ValueError, match="block_n=96 must be a power of two <= 256"):
    coreset_pallas.fused_greedy_k_center(jnp.zeros((1, 4, 1, 256)), 256, 4,
                                         coreset_pallas.KernelConfig(block_n=96), interpret=True)


@pytest.mark.parametrize("variant,platform,block_n", [
    ("triton", "cuda", None), ("triton", "cuda", 128), ("mosaic", "tpu", None)])
def test_variant_lowers_for_its_platform(variant, platform, block_n):
  # Runs the Pallas -> Triton IR / Mosaic MLIR lowering, not Triton's or Mosaic's own compiler.
  slabs = jax.ShapeDtypeStruct((2, 8, 3, 1000), jnp.float32)
  config = coreset_pallas.KernelConfig(block_n=block_n)
  lowered = coreset_pallas.fused_greedy_k_center.trace(slabs, 1000, 64, config, variant).lower(
      lowering_platforms=(platform,))
  target = "__gpu$xla.gpu.triton" if variant == "triton" else "tpu_custom_call"
  assert target in lowered.as_text()
