"""Evaluation's inference statistics (issue 23): standing batch-norm statistics against a NumPy
float64 recomputation, independent of chunking, used by evaluation by default; an EMA generator's
spectral norms against the SVD of its EMA kernels; BiGAN's encoder in one mode; and the
sensitivity benchmark end to end on two tiny runs."""
import re

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import eval_statistics
from configs import default, fashion_mnist_bigan, fashion_mnist_dcgan
from smallgan_jax import evaluation, models, objectives, standing_stats, train, validation
from smallgan_jax.models import sagan
from tests.images_test import write_idx
from tests.main_test import run_main

EPS = 1e-5  # The batch norms' epsilon.


class TwoBatchNorms(nn.Module):
  """z -> Dense(6) -> BN -> ReLU -> Dense(3) -> BN: the second BN's input depends on the first's
  statistics."""

  @nn.compact
  def __call__(self, z, train=True):
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=EPS)
    h = nn.Dense(6)(z)
    h = nn.relu(norm()(h))
    h = nn.Dense(3)(h)
    return norm()(h)


def random_variables(module, z_dim, seed=0):
  """`module`'s variables with random batch-norm scales and biases and wrong running stats."""
  variables = module.init(jax.random.PRNGKey(seed), jnp.zeros((1, z_dim)), train=False)
  rng = np.random.default_rng(seed)
  perturb = lambda path, x: (x * rng.uniform(0.5, 2, x.shape) + rng.normal(size=x.shape)
                             if path[-1] in ("scale", "bias", "mean", "var") else x)
  flat = traverse_util.flatten_dict(variables)
  flat = {path: np.abs(perturb(path, x)) if path[-1] == "var" else perturb(path, x)
          for path, x in flat.items()}
  return jax.tree.map(jnp.asarray, traverse_util.unflatten_dict(flat))


def test_standing_stats_are_each_layers_input_moments_in_float64():
  module = TwoBatchNorms()
  variables = random_variables(module, 4)
  z = np.random.default_rng(1).normal(size=(300, 4)).astype(np.float32)
  stats = standing_stats.standing_variables(module.apply, variables, z, chunk=64)["batch_stats"]
  p = jax.tree.map(lambda x: np.asarray(x, np.float64), variables["params"])
  h1 = z.astype(np.float64) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
  m1, v1 = h1.mean(0), h1.var(0)
  a = np.maximum((h1 - m1) / np.sqrt(v1 + EPS) * p["BatchNorm_0"]["scale"]
                 + p["BatchNorm_0"]["bias"], 0)
  h2 = a @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
  for name, h in (("BatchNorm_0", h1), ("BatchNorm_1", h2)):
    np.testing.assert_allclose(stats[name]["mean"], h.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats[name]["var"], h.var(0), rtol=1e-5, atol=1e-6)


def dcgan_config(**overrides):
  config = fashion_mnist_dcgan.get_config()
  config.dcgan.g_channels = config.dcgan.d_channels = 4
  config.z_dim = 8
  config.eval_num_samples = 520  # A full batch of 500 and a last one of 20.
  config.eval_standing_samples = 300
  config.update(overrides)
  return config


def sagan_config(**overrides):
  """A tiny SAGAN: spectral norm in the generator, synchronised batch norm."""
  config = default.get_config()
  config.model = "sagan"
  config.sagan = sagan.sagan_config(g_channels=8, d_channels=8, attention_resolution=8,
                                    sync_batch_norm=True)
  config.z_dim, config.prior = 8, "normal"
  config.eval_standing_samples = 200
  config.update(overrides)
  return config


def fresh_state(config, data_shape):
  generator, discriminator = models.get_models(config, data_shape)
  state = train.create_train_state(config, generator, discriminator, data_shape,
                                   jax.random.PRNGKey(0), models.get_aux_model(config, data_shape))
  return jax.tree.map(jnp.asarray, state)


@pytest.mark.parametrize("chunk", [7, 64])
def test_chunking_does_not_change_the_standing_stats(chunk):
  state = fresh_state(dcgan_config(), (28, 28, 1))
  variables = {"params": state.g.params, **state.g.collections}
  z = np.random.default_rng(2).normal(size=(300, 8)).astype(np.float32)
  whole = standing_stats.standing_variables(state.g.apply_fn, variables, z, chunk=300)
  chunked = standing_stats.standing_variables(state.g.apply_fn, variables, z, chunk=chunk)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7),
               chunked["batch_stats"], whole["batch_stats"])


@pytest.mark.parametrize("config, shape", [(dcgan_config(), (28, 28, 1)),
                                           (sagan_config(), (16, 16, 3))])
def test_with_standing_stats_every_batch_norm_sees_inputs_of_those_moments(config, shape):
  """Applied in inference mode to the latents, every BN (synchronised ones too) outputs, per
  channel, mean = bias and variance = scale^2 var / (var + eps): its inputs had exactly the
  standing mean and var."""
  state = fresh_state(config, shape)
  g = state.g
  variables = {"params": g.params, **g.collections}
  z = standing_stats.prior_latents(config)
  standing = standing_stats.standing_variables(g.apply_fn, variables, z, chunk=64)
  _, captured = g.apply_fn(standing, z, train=False, mutable=["intermediates"],
                           capture_intermediates=lambda m, _: isinstance(m, nn.BatchNorm))
  outputs = traverse_util.flatten_dict(captured["intermediates"])
  params = traverse_util.flatten_dict(standing["params"])
  stats = traverse_util.flatten_dict(standing["batch_stats"])
  assert len(outputs) == sum(path[-1] == "mean" for path in stats) > 1
  for path, (y,) in outputs.items():
    layer = path[:-1]
    y = np.asarray(y, np.float64).reshape(-1, y.shape[-1])
    var = np.asarray(stats[(*layer, "var")], np.float64)
    np.testing.assert_allclose(y.mean(0), params[(*layer, "bias")], atol=2e-5)
    np.testing.assert_allclose(y.var(0), params[(*layer, "scale")] ** 2 * var / (var + EPS),
                               rtol=1e-4)


def corrupted(state):
  """`state` with the generator's running batch-norm averages far off."""
  bad = jax.tree.map(lambda x: x * 7 + 3, state.g.collections)
  return state.replace(g=state.g.replace(collections=bad))


def evaluation_samples(config, state):
  evaluate = evaluation.Evaluator(config, None, None, None, state.g.apply_fn)
  return evaluate.samples(evaluation.generator_variables(config, state))


def test_evaluation_generates_with_standing_stats_by_default():
  config = dcgan_config()
  assert default.get_config().eval_batch_stats == config.eval_batch_stats == "standing"
  state = fresh_state(config, (28, 28, 1))
  samples = evaluation_samples(config, state)
  np.testing.assert_allclose(evaluation_samples(config, corrupted(state)), samples, atol=1e-6)
  g = state.g
  standing = standing_stats.standing_variables(g.apply_fn, {"params": g.params, **g.collections},
                                               standing_stats.prior_latents(config))
  expected = g.apply_fn(standing, evaluation.eval_latents(config), train=False)
  np.testing.assert_allclose(samples, expected, atol=1e-6)
  running = dcgan_config(eval_batch_stats="running")
  assert np.abs(evaluation_samples(running, corrupted(state))
                - evaluation_samples(running, state)).max() > 0.1
  assert not np.array_equal(standing_stats.prior_latents(config)[:10],
                            evaluation.eval_latents(config)[:10])


def test_batch_statistics_are_each_generated_batchs_own():
  config = dcgan_config(eval_batch_stats="batch")
  state = corrupted(fresh_state(config, (28, 28, 1)))
  samples = evaluation_samples(config, state)
  z, g = evaluation.eval_latents(config), state.g
  variables = {"params": g.params, **g.collections}
  for part in (slice(0, 500), slice(500, 520)):  # The last batch without padding.
    alone = g.apply_fn(variables, z[part], train=True, mutable=["batch_stats"])[0]
    np.testing.assert_allclose(samples[part], alone, atol=2e-6)


def test_ema_generators_spectral_norms_are_those_of_its_own_weights():
  """The EMA weights differ from the live ones the vectors were iterated on (here: 1.5x plus
  noise); evaluation's sigmas are the largest singular values of the EMA kernels within 1%."""
  config = sagan_config(ema_decay=0.999)
  state = fresh_state(config, (16, 16, 3))
  rng = np.random.default_rng(3)
  ema = jax.tree.map(lambda x: 1.5 * x + 0.05 * rng.normal(size=x.shape).astype(np.float32),
                     state.g.params)
  variables = evaluation.generator_variables(config, state.replace(g_ema=ema))
  kernels = traverse_util.flatten_dict(ema, sep="/")
  sigmas = {k: v for k, v in traverse_util.flatten_dict(variables["spectral_stats"],
                                                        sep="/").items() if k.endswith("sigma")}
  assert len(sigmas) == 12  # Every spectrally normalised layer.
  for name, sigma in sigmas.items():
    kernel = np.asarray(kernels[re.sub(r"SpectralNorm_\d+/|/sigma$", "", name)], np.float64)
    largest = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    assert float(sigma) == pytest.approx(largest, rel=0.01), name


def test_bigan_critic_sees_the_encodings_the_encoders_loss_trains():
  """The critic's real pairs carry the encoder's training-mode encodings, as its loss does:
  with running averages far from the batch's statistics, two modes would differ."""
  config = fashion_mnist_bigan.get_config()
  config.dcgan.g_channels = config.dcgan.d_channels = 4
  config.z_dim = 16
  state = fresh_state(config, (28, 28, 1))
  aux = state.aux.replace(collections=jax.tree.map(lambda x: x * 5 + 2, state.aux.collections))
  real = jax.random.uniform(jax.random.PRNGKey(1), (8, 28, 28, 1), minval=-1, maxval=1)
  seen = []
  critic = lambda inputs: seen.append(inputs[1]) or jnp.zeros(len(inputs[1]))
  objectives.aux_loss(config, aux, aux.params, critic, None, None, real, None)
  np.testing.assert_allclose(objectives.real_input(config, aux, real)[1], seen[0], atol=1e-6)


@pytest.mark.parametrize("key, value, expected", [
    ("eval_batch_stats", "stnding", "one of ('standing', 'running', 'batch')"),
    ("eval_standing_samples", 0, "a positive integer")])
def test_bad_evaluation_statistics_fail_in_one_line(key, value, expected):
  config = dcgan_config(**{key: value})
  with pytest.raises(ValueError, match=re.escape(f"config.{key}={value!r}: expected {expected}")):
    validation.validate_config(config, 1)


def test_eval_statistics_benchmark_scores_two_tiny_runs(tmp_path):
  """A Small-GAN run and its plain-GAN pair, 2 steps each through the CLI; the benchmark
  restores both and prints a row per run and statistics with finite classifier FIDs."""
  rng = np.random.default_rng(0)
  write_idx(str(tmp_path / "train-images-idx3-ubyte.gz"), rng.integers(0, 256, (64, 28, 28)))
  write_idx(str(tmp_path / "train-labels-idx1-ubyte.gz"), rng.integers(0, 10, 64))
  flags = [f"--config.data.idx_dir={tmp_path}", "--config.data.name=tiny",
           "--config.data.num_threads=1", "--config.coreset.embedding=pixels",
           f"--config.coreset.cache_dir={tmp_path / 'cache'}", "--config.dcgan.g_channels=4",
           "--config.dcgan.d_channels=4", "--config.z_dim=8", "--config.batch_size=8",
           "--config.g_batch_size=8", "--config.eval_num_samples=200",
           "--config.eval_standing_samples=100", "--config.num_train_steps=2"]
  plain = ["--config.coreset.factor_prior=1", "--config.coreset.factor_target=1"]
  for name, extra in (("smallgan", []), ("plain", plain)):
    out = run_main(tmp_path / name, *flags, *extra, config="configs/fashion_mnist_dcgan.py")
    assert out.returncode == 0, out.stderr[-3000:]
  rows = eval_statistics.measure([str(tmp_path / "smallgan"), str(tmp_path / "plain")])
  assert [(r["run"], r["statistics"]) for r in rows] == [
      (run, s) for run in ("smallgan", "plain") for s in eval_statistics.STATISTICS]
  assert all(r["step"] == 2 and np.isfinite(r["classifier2_fid"]) for r in rows)
  table = eval_statistics.table(rows).splitlines()
  assert table[0].startswith("| run | step | statistics | ") and "classifier2_fid" in table[0]
  assert len(table) == 10 and table[2].startswith("| smallgan | 2 | running | ")
