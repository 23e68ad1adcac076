"""The DCGAN pair at tiny widths: shapes and dtypes, the spectral norm's power iteration against
numpy's SVD, its collection, and the `config.dcgan` block's validation."""
from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import default
from smallgan_jax import models, train, validation
from smallgan_jax.data import images
from smallgan_jax.models import dcgan

WIDTH = 8  # Channels: tiny. Every real run is at 28x28x1, so the ops compile once for all tests;
# the other shapes are checked with `jax.eval_shape` (traced, never compiled).


def image_config(**dcgan_overrides):
  """A config of model='dcgan' on 28-pixel grey images, tiny widths."""
  config = default.get_config()
  config.dataset = "images"
  config.model = "dcgan"
  config.data = images.data_config(source="idx", name="fashion_mnist", resolution=28, channels=1)
  config.dcgan = dcgan.dcgan_config(g_channels=WIDTH, d_channels=WIDTH)
  config.update_from_flattened_dict({f"dcgan.{k}": v for k, v in dcgan_overrides.items()})
  return config


@pytest.mark.parametrize("resolution,channels,dtype", [
    (28, 1, "float32"), (32, 3, "float32"), (28, 3, "bfloat16"), (32, 1, "bfloat16")])
def test_shapes_and_dtypes(resolution, channels, dtype):
  config = image_config(dtype=dtype)
  g, d = models.get_models(config, (resolution, resolution, channels))
  z = jax.ShapeDtypeStruct((5, config.z_dim), jnp.float32)
  key = jax.random.PRNGKey(0)
  g_vars = jax.eval_shape(lambda z: g.init(key, z, train=False), z)
  fake, _ = jax.eval_shape(lambda v, z: g.apply(v, z, train=True, mutable=["batch_stats"]),
                           g_vars, z)
  assert (fake.shape, fake.dtype) == ((5, resolution, resolution, channels), jnp.float32)
  d_vars = discriminator_variables(d, fake, g_vars)
  assert set(g_vars) == {"params", "batch_stats"}
  assert set(d_vars) == {"params", "spectral_stats"}  # No batch norm in the discriminator.


def discriminator_variables(d, fake, g_vars=None):
  """`d`'s variable shapes for `fake` images; asserts one float32 logit per image in training and
  in inference, and float32 variables (also `g_vars`) whatever the compute dtype."""
  d_vars = jax.eval_shape(lambda x: d.init(jax.random.PRNGKey(0), x, train=False), fake)
  for train_ in (False, True):
    logits = jax.eval_shape(lambda v, x: d.apply(v, x, train=train_, mutable=train_), d_vars, fake)
    logits = logits[0] if train_ else logits
    assert (logits.shape, logits.dtype) == ((fake.shape[0],), jnp.float32)
  for variables in (d_vars, g_vars or {}):  # Parameters and statistics stay float32 in bfloat16.
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
  return d_vars


def numpy_variables(model, x, seed=0):
  """`model.init`'s variables without compiling its initializers (seconds of CPU per layer shape):
  their shapes from `jax.eval_shape`, the values from numpy (kernels scaled by 1/sqrt(fan-in);
  batch-norm scales and variances, and spectral sigmas, 1)."""
  shapes = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), x)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    if path[-1].key in ("scale", "var") or path[-1].key.endswith("/sigma"):
      return np.ones(leaf.shape, leaf.dtype)
    scale = 1 / np.sqrt(np.prod(leaf.shape[:-1])) if path[-1].key == "kernel" else 1.0
    return (scale * rng.standard_normal(leaf.shape)).astype(leaf.dtype)
  return jax.tree_util.tree_map_with_path(fill, shapes)


def test_generator_output_is_in_range():
  g = dcgan.DCGANGenerator(28, 1, WIDTH)
  z = 30.0 * jax.random.normal(jax.random.PRNGKey(0), (8, 2))  # Saturates the tanh.
  variables = numpy_variables(g, z)
  for train_ in (True, False):
    fake = g.apply(variables, z, train=train_, mutable=train_)
    fake = np.asarray(fake[0] if train_ else fake)
    assert fake.shape == (8, 28, 28, 1)
    assert fake.min() >= -1.0 and fake.max() <= 1.0
    assert np.abs(fake).max() > 0.9  # The range is used, not all near 0.


def spectral_layers(params, stats):
  """(name, kernel reshaped as flax's SpectralNorm does, its kept sigma) for every layer."""
  layers = []
  for entry in stats.values():
    layer = next(key.split("/")[0] for key in entry)
    kernel = np.asarray(params[layer]["kernel"])
    layers.append((layer, kernel.reshape(-1, kernel.shape[-1]),
                   float(entry[f"{layer}/kernel/sigma"])))
  return layers


def test_spectral_sigma_converges_to_the_largest_singular_value():
  d = dcgan.DCGANDiscriminator(WIDTH, spectral_norm=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 28, 28, 1))
  variables = numpy_variables(d, x)
  params = variables["params"]

  def train_apply(stats):  # One training application; the kernels stay fixed.
    _, updates = d.apply({"params": params, "spectral_stats": stats}, x, train=True,
                         mutable=["spectral_stats"])
    return updates["spectral_stats"]

  stats = variables["spectral_stats"]
  for _ in range(50):
    stats = train_apply(stats)
  layers = spectral_layers(params, stats)
  assert [name for name, _, _ in layers] == ["Conv_0", "Conv_1", "Dense_0"]
  for name, kernel, sigma in layers:
    largest = np.linalg.svd(kernel, compute_uv=False)[0]
    assert sigma == pytest.approx(largest, rel=0.01), name
  # The layers use the normalised kernels: the logits are those of W / sigma.
  manual = dcgan.DCGANDiscriminator(WIDTH, spectral_norm=False)
  normalised = {name: {**params[name], "kernel": params[name]["kernel"] / sigma}
                for name, _, sigma in layers}
  np.testing.assert_allclose(
      d.apply({"params": params, "spectral_stats": stats}, x, train=False),
      manual.apply({"params": normalised}, x, train=False), rtol=1e-3, atol=1e-4)


def test_inference_leaves_spectral_stats_alone():
  d = dcgan.DCGANDiscriminator(WIDTH, spectral_norm=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 28, 28, 1))
  variables = numpy_variables(d, x)
  d.apply(variables, x, train=False)  # Immutable collections: writing one would raise.
  _, updates = d.apply(variables, x, train=False, mutable=["spectral_stats"])
  jax.tree.map(np.testing.assert_array_equal, updates["spectral_stats"],
               variables["spectral_stats"])
  _, updates = d.apply(variables, x, train=True, mutable=["spectral_stats"])
  changed = traverse_util.flatten_dict(jax.tree.map(
      lambda a, b: not np.array_equal(a, b), updates["spectral_stats"],
      variables["spectral_stats"]), sep=".")
  assert len(changed) == 6 and all(changed.values())  # Every u and sigma moved in training.


def test_collections_are_separate_and_threaded_by_apply_model():
  """`train.apply_model` makes every collection mutable in training: the discriminator's is only
  `spectral_stats`, the generator's only `batch_stats`."""
  config = image_config()
  g, d = models.get_models(config, (28, 28, 1))
  z = jnp.ones((4, config.z_dim))
  states = []
  for model, x in ((g, z), (d, jnp.zeros((4, 28, 28, 1)))):
    variables = numpy_variables(model, x)
    params = variables.pop("params")
    states.append(train.ModelState.create(apply_fn=model.apply, params=params, tx=optax.sgd(0),
                                          collections=variables))
  g_state, d_state = states
  assert set(g_state.collections) == {"batch_stats"}
  assert set(d_state.collections) == {"spectral_stats"}  # No batch norm in the discriminator.
  fake, g_collections = train.apply_model(g_state, g_state.params, z, train=True)
  assert set(g_collections) == {"batch_stats"}
  _, collections = train.apply_model(d_state, d_state.params, fake, train=True)
  assert set(collections) == {"spectral_stats"}
  u = lambda stats: stats["spectral_stats"]["SpectralNorm_0"]["Conv_0/kernel/u"]
  assert not np.array_equal(u(collections), u(d_state.collections))  # Advanced in training.
  _, same = train.apply_model(d_state, d_state.params, fake, train=False)
  assert same is d_state.collections
  _, d_plain = models.get_models(image_config(spectral_norm=False), (28, 28, 1))
  assert set(jax.eval_shape(lambda: d_plain.init(jax.random.PRNGKey(1), fake, train=False))) == {
      "params"}


@pytest.mark.parametrize("shape", [(784,), (28, 28), (28, 32, 1), (64, 64, 3), (16, 16, 1)])
def test_bad_shape_is_refused_in_one_line(shape):
  with pytest.raises(ValueError, match=r"^model='dcgan' generates \(H, W, C\) images with H == W "
                                       r"in \(28, 32\); the dataset has samples of shape") as error:
    models.get_models(image_config(), shape)
  assert "\n" not in str(error.value)


def test_dcgan_config_validates():
  validation.validate_config(image_config(), num_devices=1)
  validation.validate_config(image_config(dtype="bfloat16", spectral_norm=False), num_devices=1)


DROP = object()  # An override that removes the key.


@pytest.mark.parametrize("overrides,message", [
    ({"dcgan.g_channels": 0}, "config.dcgan.g_channels=0: expected a positive integer"),
    ({"dcgan.d_channels": 8.0}, "config.dcgan.d_channels=8.0: expected a positive integer"),
    ({"dcgan.spectral_norm": 1}, "config.dcgan.spectral_norm=1: expected True or False"),
    ({"dcgan.dtype": "float16"},
     "config.dcgan.dtype='float16': expected one of ('float32', 'bfloat16')"),
    ({"dcgan.dtype": DROP}, "config.dcgan.dtype is missing: expected one of"),
    ({"dcgan.width": 8}, "config.dcgan.width=8: not a known key"),
    ({"data.resolution": 64},
     "config.data.resolution=64: expected one of (28, 32) for config.model='dcgan'"),
    ({f"dcgan.{key}": DROP for key in dcgan.dcgan_config()},
     "config.dcgan is missing: expected a block like models.dcgan.dcgan_config() for "
     "config.model='dcgan'"),
    ({**{f"data.{key}": DROP for key in images.data_config()}, "dataset": "mog_grid"},
     "config.model='dcgan': expected an image config (with a config.data block)")])
def test_bad_dcgan_config_is_refused_naming_the_key(overrides, message):
  """Set as a config file could set them: in a new ConfigDict, past the type checks."""
  flat = traverse_util.flatten_dict(image_config().to_dict(), sep=".")
  flat = {k: v for k, v in {**flat, **overrides}.items() if v is not DROP}
  config = ml_collections.ConfigDict(traverse_util.unflatten_dict(flat, sep="."))
  with pytest.raises(ValueError) as error:
    validation.validate_config(config, num_devices=1)
  assert str(error.value).startswith(message) and "\n" not in str(error.value)
