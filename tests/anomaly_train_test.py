"""MEG and BiGAN through the one train step on idx images the test writes: several steps on 4
simulated devices with replicas identical, MEG's energy loss and penalty, its entropy term and
the statistics network it trains, and the anomaly score each evaluation writes."""
import re
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from configs import fashion_mnist_bigan, fashion_mnist_meg
from smallgan_jax import datasets, distributed, evaluation, losses, objectives, standing_stats, train
from smallgan_jax.data import anomaly, images, pipeline
from tests.evaluation_test import Recorder
from tests.image_gans_test import run_on_4_devices
from tests.images_test import write_idx
from tests.main_test import final_params, run_main
from tests.resilience_test import assert_same_states

TRAIN_ON_4_DEVICES = """
import jax, numpy as np
from configs import {config}
from smallgan_jax import distributed
from tests.anomaly_train_test import tiny
from tests.image_gans_test import train_on_devices
assert jax.device_count() == 4
first, state = train_on_devices(tiny({config}.get_config(), {idx_dir!r}, {cache!r}), 3)
last = [np.asarray(distributed.host_value(x)) for x in jax.tree.leaves(state.aux.params)]
moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first.aux.params), last)]
assert all(moved), "the aux network did not move"
print("OK", int(state.d.step), int(state.aux.step))
"""


def tiny(config, idx_dir: str, cache: str):
  """An anomaly config at tiny widths and batches on the idx files in `idx_dir`."""
  config.data.idx_dir = idx_dir
  config.data.num_threads = 1
  config.coreset.cache_dir = cache
  config.dcgan.g_channels = config.dcgan.d_channels = 4
  config.batch_size = config.g_batch_size = 8
  config.z_dim = 16
  config.anomaly_class = 2
  config.eval_num_samples = 8
  return config


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
  """Fashion-MNIST-shaped idx files: 96 train and 32 test images of random pixels, classes 0-3."""
  root = tmp_path_factory.mktemp("idx")
  rng = np.random.default_rng(0)
  for prefix, n in (("train", 96), ("t10k", 32)):
    write_idx(str(root / f"{prefix}-images-idx3-ubyte"), rng.integers(0, 256, (n, 28, 28),
                                                                     dtype=np.uint8))
    write_idx(str(root / f"{prefix}-labels-idx1-ubyte"), rng.integers(0, 4, n).astype(np.uint8))
  return str(root)


@pytest.mark.parametrize("config, d_updates, aux_updates", [
    ("fashion_mnist_meg", 3, 3), ("fashion_mnist_bigan", 3, 3)])
def test_trains_on_4_devices(idx_dir, tmp_path, config, d_updates, aux_updates):
  code = textwrap.dedent(TRAIN_ON_4_DEVICES).format(config=config, idx_dir=idx_dir,
                                                    cache=str(tmp_path / "cache"))
  assert run_on_4_devices(code) == ["OK", str(d_updates), str(aux_updates)]


def one_step(config):
  """(state before, state after, metrics) of one step on this process's devices."""
  dataset = datasets.get_dataset(config)
  mesh = distributed.device_mesh()
  state = train.replicated_state(config, dataset, mesh)
  before = jax.tree.map(np.asarray, state)
  step = train.make_train_step(config, dataset, mesh, streamed=True)
  after, metrics = step(state, *next(dataset.batches(config, mesh, 1)))
  return before, after, {k: float(v) for k, v in metrics.items()}


def test_meg_energy_loss_is_the_energy_gap_plus_the_penalty(idx_dir, tmp_path):
  config = tiny(fashion_mnist_meg.get_config(), idx_dir, str(tmp_path))
  _, _, m = one_step(config)
  # D = -E: E(real) - E(fake) = d_fake - d_real, averaged over the n_dis updates like the loss.
  assert m["d_loss"] == pytest.approx(m["d_fake"] - m["d_real"] + m["d_penalty"], rel=1e-5)
  assert m["d_penalty"] > 0


def test_energy_penalty_of_a_known_gradient():
  """E(x) = ||x||^2 / 2 has gradient x: the penalty is 100 * mean ||x||^2."""
  x = jax.random.normal(jax.random.PRNGKey(0), (5, 4, 4, 1))
  critic = lambda x: -0.5 * jnp.sum(x.reshape(5, -1) ** 2, axis=1)  # D = -E.
  expected = 100 * np.mean(np.sum(np.asarray(x, np.float64).reshape(5, -1) ** 2, axis=1))
  assert 100 * float(losses.gradient_penalty(critic, x, 0.0)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_meg_statistics_network_trains_on_the_entropy_term(idx_dir, tmp_path, weight):
  config = tiny(fashion_mnist_meg.get_config(), idx_dir, str(tmp_path))
  config.meg.entropy_weight = weight
  before, after, m = one_step(config)
  moved = [not np.array_equal(a, np.asarray(b)) for a, b in
           zip(jax.tree.leaves(before.aux.params), jax.tree.leaves(after.aux.params))]
  if weight == 0:
    assert m["g_aux_loss"] == 0 and not any(moved)
  else:  # A binary cross-entropy of near-random logits is near log 2.
    assert m["g_aux_loss"] == pytest.approx(np.log(2), abs=0.1) and all(moved)


@pytest.mark.parametrize("config_module", [fashion_mnist_meg, fashion_mnist_bigan])
def test_evaluation_scores_the_test_images_with_the_anomaly_score(idx_dir, tmp_path,
                                                                  config_module):
  """The AUPRC an evaluation writes is sklearn's average precision of the networks' scores of
  the test images; for MEG the score is the energy -D(x)."""
  config = tiny(config_module.get_config(), idx_dir, str(tmp_path))
  dataset = datasets.get_dataset(config)
  assert isinstance(dataset, datasets.AnomalyDataset)
  _, state, _ = one_step(config)
  networks = jax.tree.map(distributed.host_value, (state.g, state.d, state.aux))
  score = jax.jit(lambda *n: objectives.anomaly_scores(config, *n))
  written = dataset.anomaly_metrics(lambda x: score(*networks, x))
  test = pipeline.images_to_float(dataset.test.images(np.arange(len(dataset.test))))
  scores = np.asarray(score(*networks, test))
  if config.objective == "meg":
    critic = networks[1]
    energy = -critic.apply_fn({"params": critic.params, **critic.collections}, test, train=False)
    np.testing.assert_allclose(scores, energy, rtol=1e-5, atol=1e-6)
  expected = sk_metrics.average_precision_score(dataset.test_is_anomaly, scores)
  assert written["auprc"] == pytest.approx(expected, rel=1e-6)
  assert written["roc_auc"] == pytest.approx(
      sk_metrics.roc_auc_score(dataset.test_is_anomaly, scores), rel=1e-6)
  precision, recall, _ = sk_metrics.precision_recall_curve(dataset.test_is_anomaly, scores)
  assert written["auprc_trapz"] == pytest.approx(sk_metrics.auc(recall, precision), rel=1e-6)


def test_meg_run_through_main_resumes_bit_for_bit(idx_dir, tmp_path):
  """The CLI with --config.anomaly_class: 3 steps, then 3 more from the checkpoint, equal 6
  straight, the statistics network included; the evaluation logs AUPRC and ROC AUC."""
  flags = [f"--config.data.idx_dir={idx_dir}", "--config.data.num_threads=1",
           f"--config.coreset.cache_dir={tmp_path / 'cache'}", "--config.dcgan.g_channels=4",
           "--config.dcgan.d_channels=4", "--config.z_dim=16", "--config.batch_size=8",
           "--config.g_batch_size=8", "--config.eval_num_samples=8", "--config.anomaly_class=3",
           "--config.checkpoint_every_steps=3", "--config.eval_every_steps=3"]
  for workdir, steps in (("resumed", 3), ("resumed", 6), ("straight", 6)):
    out = run_main(tmp_path / workdir, *flags, f"--config.num_train_steps={steps}",
                   config="configs/fashion_mnist_meg.py")
    assert out.returncode == 0, out.stderr[-3000:]
  assert re.search(r"Step 6: auprc=0\.\d+, roc_auc=0\.\d+", out.stderr), out.stderr[-3000:]
  resumed, straight = (final_params(str(tmp_path / w))[1] for w in ("resumed", "straight"))
  assert "aux" in straight and jax.tree.leaves(straight["aux"])
  assert_same_states(resumed, straight)


@pytest.mark.parametrize("kind", ["clean", "reference"])
def test_the_split_key_chooses_the_datasets_split(idx_dir, tmp_path, kind):
  """`config.anomaly_split` reaches `datasets.get_dataset`: its training and test images are the
  split's of that kind (data/anomaly.py), of all 128 pooled images."""
  config = tiny(fashion_mnist_meg.get_config(), idx_dir, str(tmp_path))
  config.anomaly_split = kind
  dataset = datasets.get_dataset(config)
  labels = images.get_source(config.data).labels(np.arange(128))
  split = anomaly.anomaly_split(labels, config.anomaly_class, kind=kind)
  np.testing.assert_array_equal(dataset.source.indices, split.train_indices)
  np.testing.assert_array_equal(dataset.test.indices, split.test_indices)
  np.testing.assert_array_equal(dataset.test_is_anomaly, split.test_is_anomaly)


def test_bigan_evaluation_scores_with_standing_statistics(idx_dir, tmp_path):
  """BiGAN's reconstruction path runs the generator with standing statistics of prior latents
  and the encoder with those of training images: far-off running averages change the scores
  only under eval_batch_stats="running", the evaluation writes the AUPRC of the standing
  networks, and each encoder batch norm then outputs, over those images, mean = bias and
  variance = scale^2 var / (var + eps)."""
  config = tiny(fashion_mnist_bigan.get_config(), idx_dir, str(tmp_path))
  config.eval_standing_samples = 40
  dataset = datasets.get_dataset(config)
  _, state, _ = one_step(config)
  off = lambda n: n.replace(collections=jax.tree.map(lambda x: x * 5 + 2, n.collections))
  corrupted = state.replace(g=off(state.g), aux=off(state.aux))
  test = pipeline.images_to_float(dataset.test.images(np.arange(len(dataset.test))))
  score = jax.jit(lambda *n: objectives.anomaly_scores(config, *n))
  scores = lambda cfg, s: np.asarray(score(*evaluation.anomaly_networks(cfg, s, dataset.source),
                                           test))
  standing = scores(config, corrupted)
  np.testing.assert_allclose(standing, scores(config, state), rtol=1e-5, atol=1e-5)
  running = ml_collections.ConfigDict({**config.to_dict(), "eval_batch_stats": "running"})
  assert np.abs(scores(running, corrupted) - scores(running, state)).max() > 1
  written = evaluation.Evaluator(config, dataset, tmp_path, Recorder(), state.g.apply_fn)(
      corrupted, 1)
  assert written["auprc"] == pytest.approx(
      sk_metrics.average_precision_score(dataset.test_is_anomaly, standing), rel=1e-6)
  encoder = evaluation.anomaly_networks(config, corrupted, dataset.source)[2]
  images_ = standing_stats.training_images(config, dataset.source)
  assert len(images_) == 40
  _, captured = encoder.apply_fn({"params": encoder.params, **encoder.collections}, images_,
                                 train=False, mutable=["intermediates"],
                                 capture_intermediates=lambda m, _: isinstance(m, nn.BatchNorm))
  (y,) = captured["intermediates"]["BatchNorm_0"]["__call__"]
  y = np.asarray(y, np.float64).reshape(-1, y.shape[-1])
  bn, var = encoder.params["BatchNorm_0"], np.asarray(encoder.collections["batch_stats"][
      "BatchNorm_0"]["var"], np.float64)
  np.testing.assert_allclose(y.mean(0), bn["bias"], atol=2e-5)
  np.testing.assert_allclose(y.var(0), bn["scale"] ** 2 * var / (var + 1e-5), rtol=1e-4)
