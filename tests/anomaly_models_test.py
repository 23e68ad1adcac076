"""MEG's statistics network and BiGAN's encoder and joint discriminator at tiny widths: shapes and
dtypes, what their outputs depend on, the encoder's batch statistics, and Zenati et al.'s anomaly
score against numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smallgan_jax.models import bigan, meg
from tests.dcgan_test import numpy_variables

WIDTH = 4  # Channels: tiny; every application is at 28x28x1, so the ops compile once.
Z_DIM = 8
BATCH = 3


def images_and_latents(seed=0):
  kx, kz = jax.random.split(jax.random.PRNGKey(seed))
  return jax.random.normal(kx, (BATCH, 28, 28, 1)), jax.random.normal(kz, (BATCH, Z_DIM))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_shapes_and_dtypes(dtype):
  x, z = jax.ShapeDtypeStruct((BATCH, 28, 28, 1), jnp.float32), jax.ShapeDtypeStruct(
      (BATCH, Z_DIM), jnp.float32)
  cases = [(bigan.Encoder(Z_DIM, WIDTH, dtype), x, {}, (BATCH, Z_DIM)),
           (bigan.JointDiscriminator(WIDTH, dtype), (x, z), {}, (BATCH,)),
           (bigan.JointDiscriminator(WIDTH, dtype), (x, z), {"features": True},
            (BATCH, 4 * WIDTH)),
           (meg.StatisticsNetwork(WIDTH, dtype), (x, z), {}, (BATCH,))]
  for model, inputs, kwargs, shape in cases:
    variables = jax.eval_shape(lambda i: model.init(jax.random.PRNGKey(0), i, train=False), inputs)
    assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(variables)), model
    for train_ in (False, True):
      out = jax.eval_shape(lambda v, i: model.apply(v, i, train=train_, mutable=train_, **kwargs),
                           variables, inputs)
      out = out[0] if train_ else out
      assert (out.shape, out.dtype) == (shape, jnp.float32), (model, kwargs)


def test_joint_discriminator_logits_are_a_dense_of_its_features():
  d = bigan.JointDiscriminator(WIDTH)
  inputs = images_and_latents()
  variables = numpy_variables(d, inputs)
  assert set(variables) == {"params"}  # No batch norm, no other state.
  features = np.asarray(d.apply(variables, inputs, train=False, features=True))
  logits = np.asarray(d.apply(variables, inputs, train=True))
  assert features.shape == (BATCH, 4 * WIDTH)
  last = variables["params"]["Dense_2"]
  assert last["kernel"].shape == (4 * WIDTH, 1)
  expected = features @ np.asarray(last["kernel"])[:, 0] + np.asarray(last["bias"])[0]
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_statistics_network_depends_on_x_and_z():
  t = meg.StatisticsNetwork(WIDTH)
  x, z = images_and_latents()
  other_x, other_z = images_and_latents(seed=1)
  variables = numpy_variables(t, (x, z))
  logits = np.asarray(t.apply(variables, (x, z)))
  for changed in ((x, other_z), (other_x, z)):
    different = np.asarray(t.apply(variables, changed))
    assert np.all(np.abs(different - logits) > 1e-4), changed
  np.testing.assert_array_equal(t.apply(variables, (x, z), train=False), logits)  # Deterministic.


def test_encoder_batch_stats_update_only_in_training():
  e = bigan.Encoder(Z_DIM, WIDTH)
  x, _ = images_and_latents()
  variables = numpy_variables(e, x)
  assert set(variables) == {"params", "batch_stats"}
  before = variables["batch_stats"]
  _, updates = e.apply(variables, x, train=False, mutable=["batch_stats"])
  jax.tree.map(np.testing.assert_array_equal, updates["batch_stats"], before)
  _, updates = e.apply(variables, x, train=True, mutable=["batch_stats"])
  moved = jax.tree.map(lambda a, b: not np.allclose(a, b), updates["batch_stats"], before)
  assert jax.tree.leaves(moved) and all(jax.tree.leaves(moved))  # Both mean and var moved.


def reference_score(x, reconstruction, features_x, features_reconstruction, weight):
  """Zenati et al.'s score in float64 numpy."""
  l1 = lambda a, b: np.abs(np.float64(a) - np.float64(b)).reshape(len(a), -1).sum(axis=1)
  return weight * l1(x, reconstruction) + (1 - weight) * l1(features_x, features_reconstruction)


def test_anomaly_score_matches_numpy():
  rng = np.random.default_rng(0)
  x, reconstruction = (rng.standard_normal((BATCH, 28, 28, 1), np.float32) for _ in range(2))
  features = [3.0 * rng.standard_normal((BATCH, 4 * WIDTH), np.float32) for _ in range(2)]
  arrays = (x, reconstruction, *features)
  for weight in (bigan.ANOMALY_WEIGHT, 0.3):
    score = bigan.anomaly_score(*arrays, weight)
    assert (score.shape, score.dtype) == ((BATCH,), jnp.float32)
    np.testing.assert_allclose(score, reference_score(*arrays, weight), rtol=1e-5)
  np.testing.assert_allclose(bigan.anomaly_score(*arrays, 1.0),
                             np.abs(x - reconstruction).sum(axis=(1, 2, 3)), rtol=1e-5)
  np.testing.assert_allclose(bigan.anomaly_score(*arrays, 0.0),
                             np.abs(features[0] - features[1]).sum(axis=1), rtol=1e-5)
  np.testing.assert_array_equal(bigan.anomaly_score(*arrays), bigan.anomaly_score(*arrays, 0.9))
