"""The SN-GAN and SAGAN pairs and their residual blocks at tiny widths: shapes and dtypes, the
architectures' widths, variable collections and when they change, the spectral norm's sigma
against numpy's SVD, self-attention against a NumPy reference, and synchronised batch norm.

Variables come from `jax.eval_shape` filled by numpy (compiling the initializers costs seconds of
CPU per network); shapes alone are checked with `jax.eval_shape` (traced, never compiled)."""
import functools

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smallgan_jax.models import resnet_blocks, sagan, sngan
from tests.dcgan_test import discriminator_variables, numpy_variables

Z_DIM = 8


@functools.lru_cache
def jitted_apply(model, train, collections):
  """`model.apply` with `train`, returning (output, {collection: value}) for `collections`;
  compiled once per model and input shape for all the tests."""
  return jax.jit(lambda v, x: model.apply(v, x, train=train, mutable=list(collections)))


def normal(shape, seed=0):
  """Standard normal float32 inputs from numpy (no random-number program to compile)."""
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def flat(tree):
  return traverse_util.flatten_dict(tree, sep="/")


def spectral_sigmas(stats):
  """{path of a normalised kernel in "params": the sigma kept for it in "spectral_stats"}."""
  return {"/".join((*key[:-2], *key[-1].split("/")[:-1])): sigma  # Drops "SpectralNorm_i".
          for key, sigma in traverse_util.flatten_dict(stats).items()
          if key[-1].endswith("/sigma")}


def sngan_pair(resolution, dtype=jnp.float32):
  return (sngan.SNGANGenerator(resolution, 3, width=8, dtype=dtype),
          sngan.SNGANDiscriminator(width=8, dtype=dtype))


def sagan_pair(resolution, dtype=jnp.float32, attention=16, g_width=4, d_width=8):
  return (sagan.SAGANGenerator(resolution, 3, g_width, attention, dtype=dtype),
          sagan.SAGANDiscriminator(d_width, attention, dtype=dtype))


SNGAN_G16 = sngan.SNGANGenerator(16, 3, 8)  # Real runs: 16 pixels, compiled once per test file.
SNGAN_D16 = sngan.SNGANDiscriminator(8)
SAGAN_G16 = sagan.SAGANGenerator(16, 3, 4, attention_resolution=8)
BATCH = 4

PAIRS = {  # name: (generator, discriminator, resolution), tiny widths.
    "sngan32": (*sngan_pair(32), 32),
    "sngan16_bf16": (*sngan_pair(16, jnp.bfloat16), 16),
    "sagan32": (*sagan_pair(32), 32),
    "sagan32_bf16": (*sagan_pair(32, jnp.bfloat16), 32),
    "sagan128": (*sagan_pair(128, attention=32, g_width=2, d_width=4), 128),
}


@pytest.mark.parametrize("name", PAIRS)
def test_shapes_dtypes_and_collections(name):
  g, d, resolution = PAIRS[name]
  z = jax.ShapeDtypeStruct((5, Z_DIM), jnp.float32)
  key = jax.random.PRNGKey(0)
  g_vars = jax.eval_shape(lambda z: g.init(key, z, train=False), z)
  for train_ in (False, True):
    fake = jax.eval_shape(lambda v, z: g.apply(v, z, train=train_, mutable=train_), g_vars, z)
    fake = fake[0] if train_ else fake
    assert (fake.shape, fake.dtype) == ((5, resolution, resolution, 3), jnp.float32)
  d_vars = discriminator_variables(d, fake, g_vars)
  spectral_g = name.startswith("sagan")  # SAGAN's generator is spectrally normalised too.
  assert set(g_vars) == {"params", "batch_stats"} | ({"spectral_stats"} if spectral_g else set())
  assert set(d_vars) == {"params", "spectral_stats"}  # No batch norm in the discriminators.


@pytest.mark.parametrize("name", PAIRS)
def test_every_layer_of_a_spectral_network_is_normalised(name):
  g, d, resolution = PAIRS[name]
  networks = [(d, jnp.zeros((2, resolution, resolution, 3)))]
  if name.startswith("sagan"):
    networks.append((g, jnp.zeros((2, Z_DIM))))
  for model, x in networks:
    variables = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), x)
    kernels = {key for key in flat(variables["params"]) if key.endswith("/kernel")}
    normalised = set(spectral_sigmas(variables["spectral_stats"]))
    assert kernels == normalised and len(kernels) > 5


def kernel_shapes(model, x):
  """{module path: kernel shape} of `model`'s parameters."""
  variables = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), x)
  return {key[:-len("/kernel")]: leaf.shape for key, leaf in flat(variables["params"]).items()
          if key.endswith("/kernel")}


@pytest.mark.parametrize("resolution,blocks", [
    (32, {"DOptimizedBlock_0": True, "DBlock_0": True, "DBlock_1": False, "DBlock_2": False}),
    (16, {"DOptimizedBlock_0": True, "DBlock_0": False, "DBlock_1": False})])
def test_sngan_discriminator_halves_down_to_8x8_then_keeps_two_blocks(resolution, blocks):
  """Block: whether it has a shortcut convolution (it downsamples: every block has 8 channels)."""
  shapes = kernel_shapes(sngan.SNGANDiscriminator(8), jnp.zeros((1, resolution, resolution, 3)))
  assert {key.split("/")[0] for key in shapes} == {*blocks, "Dense_0"}
  assert {key.split("/")[0] for key in shapes if key.endswith("shortcut")} == {
      block for block, down in blocks.items() if down}
  assert shapes["Dense_0"] == (8, 1)


def test_sngan_generator_doubles_from_4x4():
  shapes = kernel_shapes(sngan.SNGANGenerator(32, 3, 8), jnp.zeros((1, Z_DIM)))
  assert shapes["Dense_0"] == (Z_DIM, 4 * 4 * 8)
  assert [key for key in shapes if key.endswith("conv1")] == [
      "GBlock_0/conv1", "GBlock_1/conv1", "GBlock_2/conv1"]
  assert shapes["Conv_0"] == (3, 3, 8, 3)


def test_sagan_128_widths_and_attention_placement():
  """Widths (16, 8, 4, 2, 1) * ch up in G, attention after the 32x32 block (4 ch); (1, 2, 4, 8,
  16, 16) * ch down in D, attention after the 32x32 block (2 ch)."""
  ch = 2
  g = kernel_shapes(sagan.SAGANGenerator(128, 3, ch), jnp.zeros((1, Z_DIM)))
  assert g["Dense_0"] == (Z_DIM, 4 * 4 * 16 * ch)
  assert [g[f"GBlock_{i}/conv2"][-1] // ch for i in range(5)] == [16, 8, 4, 2, 1]
  assert g["SelfAttention_0/v"] == (1, 1, 2 * ch, 4 * ch)
  assert "SelfAttention_1/v" not in g
  ch = 4  # Attention needs 8 channels or more.
  d = kernel_shapes(sagan.SAGANDiscriminator(ch), jnp.zeros((1, 128, 128, 3)))
  assert d["DOptimizedBlock_0/conv2"][-1] == ch
  assert [d[f"DBlock_{i}/conv2"][-1] // ch for i in range(5)] == [2, 4, 8, 16, 16]
  assert "DBlock_4/shortcut" not in d  # The last block keeps 4x4 and 16 ch.
  assert d["SelfAttention_0/v"] == (1, 1, ch, 2 * ch)
  assert "SelfAttention_1/v" not in d


@pytest.mark.parametrize("build,message", [
    (lambda: sngan.SNGANGenerator(24, 3, 8).init(
        jax.random.PRNGKey(0), jnp.zeros((1, Z_DIM))), "resolution=24"),
    (lambda: sngan.SNGANDiscriminator(8).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3))), "resolution=8"),
    (lambda: sagan.SAGANGenerator(32, 3, 8, attention_resolution=32).init(
        jax.random.PRNGKey(0), jnp.zeros((1, Z_DIM))), "attention_resolution=32"),
    (lambda: sagan.SAGANDiscriminator(8, attention_resolution=4).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))), "attention_resolution=4"),
    (lambda: resnet_blocks.SelfAttention().init(
        jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 4))), "4 channels")])
def test_bad_sizes_are_refused(build, message):
  with pytest.raises(ValueError, match=message):
    jax.eval_shape(build)


def test_attention_resolutions():
  assert sagan.attention_resolutions(128) == (8, 16, 32, 64)
  assert sagan.attention_resolutions(16) == (8,)


def test_configs_defaults_and_overrides():
  assert sngan.sngan_config().to_dict() == {
      "g_channels": 256, "d_channels": 128, "sync_batch_norm": False, "dtype": "float32"}
  assert sagan.sagan_config().to_dict() == {
      "g_channels": 64, "d_channels": 64, "attention_resolution": 32, "sync_batch_norm": False,
      "dtype": "float32"}
  assert sagan.sagan_config(attention_resolution=16).attention_resolution == 16
  assert sngan.sngan_config(dtype="bfloat16").dtype == "bfloat16"


@pytest.mark.parametrize("generator", [SNGAN_G16, SAGAN_G16])
def test_generator_output_is_in_range(generator):
  z = normal((BATCH, Z_DIM))
  variables = numpy_variables(generator, z)
  bias = ("params", "Conv_0", "bias")  # Pre-tanh values far outside [-1, 1].
  variables = traverse_util.unflatten_dict({
      **traverse_util.flatten_dict(variables), bias: np.array([10.0, -10.0, 0.0], np.float32)})
  collections = tuple(name for name in variables if name != "params")
  for train_ in (True, False):
    fake = np.asarray(jitted_apply(generator, train_, collections)(variables, z)[0])
    assert fake.shape == (BATCH, 16, 16, 3)
    assert fake.min() >= -1.0 and fake.max() <= 1.0
    assert fake[..., 0].min() > 0.9 and fake[..., 1].max() < -0.9


@pytest.mark.parametrize("model,x_shape", [
    (SNGAN_G16, (BATCH, Z_DIM)), (SNGAN_D16, (BATCH, 16, 16, 3)), (SAGAN_G16, (BATCH, Z_DIM))])
def test_statistics_change_in_training_only(model, x_shape):
  x = normal(x_shape)
  variables = numpy_variables(model, x)
  stats = {k: v for k, v in variables.items() if k != "params"}
  _, updates = jitted_apply(model, False, tuple(stats))(variables, x)
  assert set(updates) == set(stats)
  jax.tree.map(np.testing.assert_array_equal, updates, stats)
  _, updates = jitted_apply(model, True, tuple(stats))(variables, x)
  assert set(updates) == set(stats)
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), updates, stats)
  assert all(jax.tree.leaves(changed)), flat(changed)


def test_spectral_sigma_converges_to_the_largest_singular_value():
  x = normal((BATCH, 16, 16, 3))
  variables = numpy_variables(SNGAN_D16, x)
  params, stats = variables["params"], variables["spectral_stats"]
  train_apply = jitted_apply(SNGAN_D16, True, ("spectral_stats",))
  for _ in range(100):  # One power-iteration step each; the kernels stay fixed.
    stats = train_apply({"params": params, "spectral_stats": stats}, x)[1]["spectral_stats"]
  sigmas = spectral_sigmas(stats)
  assert len(sigmas) == 8 and "DBlock_0/conv1/kernel" in sigmas
  for path, sigma in sigmas.items():
    kernel = np.asarray(flat(params)[path])
    kernel = kernel.reshape(-1, kernel.shape[-1])  # (kh * kw * cin, cout), as flax's SN does.
    largest = np.linalg.svd(kernel, compute_uv=False)[0]
    assert float(sigma) == pytest.approx(largest, rel=0.01), path


ATTENTION = resnet_blocks.SelfAttention(spectral_norm=False)  # Plain kernels: a NumPy reference.
attend = lambda variables, x: jitted_apply(ATTENTION, False, ())(variables, x)[0]


def attention_input_and_variables(gamma):
  x = normal((2, 8, 8, 16), seed=1)
  variables = numpy_variables(ATTENTION, x)
  variables["params"]["gamma"] = np.float32(gamma)
  return x, variables


def test_attention_starts_as_the_identity():
  """gamma is initialised to 0, so the block's output is its input whatever the convolutions."""
  block = resnet_blocks.SelfAttention()  # Spectrally normalised, as in the models.
  x = normal((2, 8, 8, 16))
  variables = jax.jit(functools.partial(block.init, train=False))(jax.random.PRNGKey(1), x)
  assert variables["params"]["gamma"].shape == ()
  apply = jitted_apply(block, False, ())
  np.testing.assert_array_equal(apply(variables, x)[0], x)
  variables["params"]["gamma"] = jnp.float32(0.5)
  assert not np.allclose(apply(variables, x)[0], x)


def test_attention_reaches_distant_positions():
  x, variables = attention_input_and_variables(gamma=1.0)
  far = x.copy()
  far[:, 7, 7] += 5.0  # The opposite corner from (0, 0).
  change = np.abs(attend(variables, far) - attend(variables, x))
  assert change[:, 0, 0].min(axis=0).max() > 1e-3  # Position (0, 0) of both samples moved.


def numpy_attention(x, params):
  """SAGAN attention in float64: queries g, max-pooled keys f and values h, softmax, v."""
  x = x.astype(np.float64)
  b, height, width, c = x.shape
  proj = lambda h, name: h @ np.asarray(params[name]["kernel"], np.float64)[0, 0]
  pool = lambda h: h.reshape(b, height // 2, 2, width // 2, 2, -1).max(axis=(2, 4))
  queries = proj(x, "g").reshape(b, height * width, -1)
  keys = pool(proj(x, "f")).reshape(b, -1, c // 8)
  values = pool(proj(x, "h")).reshape(b, -1, c // 2)
  logits = queries @ keys.transpose(0, 2, 1)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  o = proj((weights @ values).reshape(b, height, width, c // 2), "v")
  return x + float(params["gamma"]) * o


def test_attention_matches_numpy():
  x, variables = attention_input_and_variables(gamma=0.7)
  np.testing.assert_allclose(attend(variables, x), numpy_attention(x, variables["params"]),
                             atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda axis: sngan.SNGANGenerator(16, 3, 8, batch_norm_axis=axis),
    lambda axis: sagan.SAGANGenerator(16, 3, 4, attention_resolution=8, batch_norm_axis=axis)])
def test_synchronised_batch_norm_matches_the_whole_batch(make):
  """Two shards of 2 normalised with statistics averaged over the "batch" axis: as the whole
  batch of 4 is; without the axis, each shard is normalised with its own statistics."""
  z = normal((BATCH, Z_DIM))
  variables = numpy_variables(make(None), z)
  collections = tuple(name for name in variables if name != "params")
  shards = z.reshape(2, BATCH // 2, Z_DIM)
  run = lambda axis, **vmap: jax.jit(jax.vmap(
      functools.partial(jitted_apply(make(axis), True, collections), variables), **vmap))(shards)
  whole, whole_stats = jitted_apply(make(None), True, collections)(variables, z)
  synced, synced_stats = run("batch", axis_name="batch")
  np.testing.assert_allclose(synced.reshape(whole.shape), whole, rtol=1e-4, atol=1e-5)
  for shard in range(2):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[shard], b, rtol=1e-4, atol=1e-6),
                 synced_stats, whole_stats)
  alone, alone_stats = run(None)
  assert not np.allclose(alone.reshape(whole.shape), whole, atol=1e-3)
  mean = lambda stats: stats["batch_stats"]["BatchNorm_0"]["mean"]
  assert not np.allclose(mean(alone_stats)[0], mean(whole_stats), atol=1e-4)
