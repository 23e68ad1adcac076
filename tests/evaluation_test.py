"""What an evaluation measures and shows: FID of the fixed latent draw's samples, the EMA weights,
the sample grid, and the core-set picks of a step's candidates, framed where the kernel put them.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import fashion_mnist_dcgan, toy_mog
from benchmarks import coreset_reference
from smallgan_jax import datasets, distributed, embeddings, evaluation, features, train
from smallgan_jax.data import images, pipeline
from smallgan_jax.metrics import fid, grids, image_scores


def test_tile_frames_exactly_the_picked_images():
  samples = np.stack([np.full((3, 3, 1), v) for v in np.linspace(-1, 1, 5)])
  frames = np.array([False, True, False, False, True])
  grid = grids.tile(samples, frames=frames, border=2)
  assert grid.shape == (2 * 7, 3 * 7, 3)  # 2 x 3 cells of 3 + 2 * 2 pixels, grey -> RGB.
  for i, framed in enumerate(frames):
    r, q = divmod(i, 3)
    cell = grid[r * 7:r * 7 + 7, q * 7:q * 7 + 7]
    np.testing.assert_array_equal(cell[2:5, 2:5], grids.to_uint8(samples[i]).repeat(3, -1))
    margin = np.concatenate([cell[:2].reshape(-1, 3), cell[5:].reshape(-1, 3),
                             cell[:, :2].reshape(-1, 3), cell[:, 5:].reshape(-1, 3)])
    assert (margin == (grids.PICK_COLOR if framed else (255, 255, 255))).all(), i


def tiny_image_config(tmp_path, factor_target: int = 4) -> ml_collections.ConfigDict:
  config = toy_mog.get_config()
  config.dataset = "images"
  config.data = images.data_config(source="folder", folder=str(tmp_path), resolution=4,
                                   channels=1)
  config.batch_size = 4
  config.coreset.factor_target = factor_target
  config.coreset.embedding = "pixels"
  config.coreset.embedding_dim = 3
  config.coreset.cache_dir = str(tmp_path / "cache")
  return config


def tiny_image_dataset(tmp_path, config) -> datasets.ImageDataset:
  rng = np.random.default_rng(0)
  source = images.ArraySource("tiny", rng.integers(0, 256, (40, 4, 4, 1), dtype=np.uint8), None)
  rows = embeddings.load_or_build(config, source) if config.coreset.factor_target > 1 else None
  return datasets.ImageDataset(source, rows)


@pytest.mark.parametrize("step", [1, 7])
def test_image_picks_are_the_greedy_k_center_picks_of_the_steps_candidates(tmp_path, step):
  """The picture frames the picks float64 greedy k-center makes on the embedding rows of device
  0's first candidate set at `step` (the same indices the input pipeline streams)."""
  config = tiny_image_config(tmp_path)
  dataset = tiny_image_dataset(tmp_path, config)
  grid = dataset.coreset_picks(config, step, num_devices=2)
  n, k = pipeline.num_candidates(config, 2), config.batch_size // 2
  indices = pipeline.candidate_indices(config.seed, step, 0, config.n_dis, n, 40)[0]
  expected = coreset_reference.greedy_k_center_numpy(dataset.embeddings.rows(indices), k)
  cols = int(np.ceil(np.sqrt(n)))
  framed = [i for i in range(n) if tuple(grid[i // cols * 8, i % cols * 8]) == grids.PICK_COLOR]
  assert sorted(framed) == sorted(expected.tolist())
  assert dataset.coreset_picks(tiny_image_config(tmp_path, 1), step, 2) is None  # No core-set.


def test_toy_picks_picture_both_core_sets():
  config = toy_mog.get_config()
  pixels = datasets.get_dataset(config).coreset_picks(config, 100, num_devices=1)
  assert pixels.ndim == 3 and pixels.shape[-1] == 3 and pixels.dtype == np.uint8
  green = np.all(np.abs(pixels.astype(int) - (44, 160, 44)) < 8, axis=-1)  # tab:green picks.
  half = pixels.shape[1] // 2
  assert green[:, :half].sum() > 50 and green[:, half:].sum() > 50  # Prior and target panels.


class MeanPixelNetwork:
  """A FeatureNetwork whose features are each image's mean and its first pixel."""

  @staticmethod
  def network() -> features.FeatureNetwork:
    apply = lambda variables, pixels: jnp.stack(
        [pixels.reshape(len(pixels), -1).mean(1), pixels.reshape(len(pixels), -1)[:, 0]], 1)
    return features.FeatureNetwork("mean-pixel", apply, {}, "0" * 64)


def test_image_scores_are_the_frechet_distance_of_the_samples_pixels():
  rng = np.random.default_rng(1)
  real = rng.integers(0, 256, (300, 4, 4, 1), dtype=np.uint8)
  network = MeanPixelNetwork.network()
  score = image_scores.FIDScore("classifier_fid", network, fid.image_statistics(network, real))
  dataset = datasets.ImageDataset(images.ArraySource("tiny", real, None), None, (score,))
  as_generated = real.astype(np.float32) / 127.5 - 1
  assert dataset.evaluate(as_generated)["classifier_fid"] == pytest.approx(0, abs=1e-6)
  shifted = dataset.evaluate(np.clip(as_generated + 0.5, -1, 1))["classifier_fid"]
  rows = np.asarray(network.apply({}, features.to_pixels(np.clip(as_generated + 0.5, -1, 1))))
  expected = fid.fid(fid.feature_statistics(rows), score.reference)
  assert shifted == pytest.approx(expected, rel=1e-9) and shifted > 100


def one_device_run(config):
  dataset = datasets.get_dataset(config)
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), (distributed.AXIS,))
  return dataset, train.replicated_state(config, dataset, mesh), train.make_train_step(
      config, dataset, mesh)


def small_toy_config(**overrides) -> ml_collections.ConfigDict:
  config = toy_mog.get_config()
  config.mlp.width, config.batch_size, config.g_batch_size = 16, 16, 16
  config.eval_num_samples = 700  # Two generation batches, the last one padded.
  config.update(overrides)
  return config


def test_ema_is_the_running_average_of_the_generators_weights():
  config = small_toy_config(ema_decay=0.9)
  _, state, step = one_device_run(config)
  as_float64 = lambda tree: jax.tree.map(
      lambda x: np.asarray(distributed.host_value(x), np.float64), tree)
  ema = as_float64(state.g.params)
  for _ in range(4):
    state, _ = step(state)
    params = as_float64(state.g.params)
    ema = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, ema, params)
  got = jax.tree.map(lambda x: np.asarray(distributed.host_value(x)), state.g_ema)
  jax.tree.map(lambda g, e: np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6), got, ema)
  assert not np.allclose(jax.tree.leaves(got)[0], jax.tree.leaves(params)[0])
  variables = evaluation.generator_variables(config, state)
  jax.tree.map(np.testing.assert_array_equal, variables["params"], got)


def test_without_ema_the_evaluated_weights_are_the_generators():
  config = small_toy_config()
  _, state, step = one_device_run(config)
  state, _ = step(state)
  variables = evaluation.generator_variables(config, state)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, distributed.host_value(b)),
               variables["params"], state.g.params)


class Recorder:
  """A metric writer that keeps what it is given."""

  def __init__(self):
    self.scalars, self.images = {}, {}

  def write_scalars(self, step, scalars):
    self.scalars[step] = scalars

  def write_images(self, step, images_):
    self.images[step] = images_


def test_evaluations_generate_the_same_fixed_draw_in_batches(tmp_path):
  config = small_toy_config()
  dataset, state, _ = one_device_run(config)
  writer = Recorder()
  evaluate = evaluation.Evaluator(config, dataset, tmp_path, writer, state.g.apply_fn)
  variables = evaluation.generator_variables(config, state)
  samples = evaluate.samples(variables)
  unbatched = state.g.apply_fn(variables, jnp.asarray(evaluation.eval_latents(config)),
                               train=False)
  assert samples.shape == (700, 2)
  np.testing.assert_allclose(samples, np.asarray(unbatched), rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(evaluate.samples(variables), samples)
  metrics = evaluate(state, 5)
  assert metrics == dataset.evaluate(samples) and writer.scalars[5] == {
      f"eval/{k}": v for k, v in metrics.items()}
  assert set(writer.images[5]) == {"samples", "coreset_picks"}
  assert all(v.ndim == 4 and v.dtype == np.uint8 for v in writer.images[5].values())
  assert (tmp_path / "samples_00000005.png").exists()
  assert (tmp_path / "coreset_picks_00000005.png").exists()


def last_update_size(config, updates_per_step, step):
  """The size of the critic's last of its n_dis updates in `step` (1-based), for a constant
  gradient: Adam's direction is then 1, so the size is the learning rate of that update."""
  optimizer = train.create_optimizer(config, 1.0, updates_per_step)
  params, grads = {"w": jnp.zeros(())}, {"w": jnp.ones(())}
  opt_state = optimizer.init(params)
  for _ in range(step * updates_per_step):
    updates, opt_state = optimizer.update(grads, opt_state, params)
  return -float(updates["w"])


def test_the_critics_linear_decay_spans_the_run_whatever_n_dis():
  config = small_toy_config(num_train_steps=10, n_dis=5)
  config.optim.schedule = "linear"
  assert last_update_size(config, 5, 5) == pytest.approx(1 - 24 / 50, rel=1e-5)
  assert last_update_size(config, 5, 10) == pytest.approx(1 / 50, rel=1e-4)  # > 0 at the end.
  assert last_update_size(config, 1, 10) == pytest.approx(1 / 10, rel=1e-4)  # The generator's.


def test_the_critic_still_learns_in_the_last_step_of_a_linear_decay():
  """With n_dis 5, a decay counting updates as steps would reach 0 at step 2 of 10."""
  config = small_toy_config(num_train_steps=10, n_dis=5)
  config.optim.schedule = "linear"
  _, state, step = one_device_run(config)
  for _ in range(9):
    state, _ = step(state)
  before = np.asarray(distributed.host_value(jax.tree.leaves(state.d.params)[0]))
  state, _ = step(state)
  after = np.asarray(distributed.host_value(jax.tree.leaves(state.d.params)[0]))
  assert np.abs(after - before).max() > 0


def test_a_topk_epoch_counts_the_images_the_critic_trains_on(tmp_path):
  config = tiny_image_config(tmp_path)
  config.n_dis = 2
  config.topk.decay_per_epoch = True
  dataset = tiny_image_dataset(tmp_path, config)
  resolved = train.step_config(config, dataset)
  assert resolved.topk.decay_steps == pipeline.steps_per_epoch(40, 4, 2) == 5  # Not 40 / 32.
  assert config.topk.decay_steps == 2000  # The run's own config is left as it was.


def test_an_image_evaluation_writes_each_networks_coverage_scores(tmp_path, monkeypatch):
  """The scores `image_scores.fid_scores` builds from the config (the feature network replaced
  by `MeanPixelNetwork`) reach TensorBoard as eval/<prefix><score>: FID, precision, recall,
  density, coverage and KID, against a real subset of eval_num_samples training images."""
  config = fashion_mnist_dcgan.get_config()
  config.dcgan.g_channels = config.dcgan.d_channels = 8
  config.z_dim, config.eval_num_samples = 8, 60
  config.coreset.factor_target = 1
  config.coreset.cache_dir = str(tmp_path / "cache")
  config.fid.kid_subset_size = 20
  rng = np.random.default_rng(2)
  pixels = rng.integers(0, 256, (80, 28, 28, 1), dtype=np.uint8)
  source = images.ArraySource("tiny", pixels, None)
  monkeypatch.setattr(image_scores, "feature_network",
                      lambda config, feature, source: MeanPixelNetwork.network())
  dataset = datasets.ImageDataset(source, None, image_scores.fid_scores(config, source))
  assert len(dataset.scores[0].real.features) == 60
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), (distributed.AXIS,))
  state = train.replicated_state(config, dataset, mesh)
  writer = Recorder()
  metrics = evaluation.Evaluator(config, dataset, tmp_path, writer, state.g.apply_fn)(state, 2)
  names = ("fid", "precision", "recall", "density", "coverage", "kid")
  assert set(metrics) == {f"classifier2_{name}" for name in names}
  assert writer.scalars[2] == {f"eval/{k}": v for k, v in metrics.items()}
  assert all(np.isfinite(v) for v in metrics.values())
  assert all(0 <= metrics[f"classifier2_{k}"] <= 1 for k in ("precision", "recall", "coverage"))
