"""Weighted core-sets (`config.coreset.weighting`, beyond the paper): the cell weights against a
float64 brute force, what they do to a labelled mixture's shares, every loss term that takes them
(each checked against a NumPy computation, so dropping the weights from any one term fails), the
global scope's slices on 1, 2 and 4 devices, and "none" bit for bit as before weighting existed.
"""
import hashlib
import pickle

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from benchmarks.coreset_reference import greedy_k_center_numpy
from configs import fashion_mnist_meg
from smallgan_jax import coreset, datasets, distributed, embeddings, losses, objectives
from smallgan_jax import sampling, topk, train
from smallgan_jax.data import images, pipeline
from smallgan_jax.model_state import ModelState
from tests import global_coreset_test, step_mechanisms_test
from tests.step_mechanisms_test import DIM, critic_scores, init_state, mech_config


def numpy_cell_weights(points: np.ndarray, picks: np.ndarray) -> np.ndarray:
  """k * the share of the points whose nearest pick (float64, the earliest of tied ones) is each."""
  x = points.astype(np.float64)
  nearest = np.array([np.argmin(((x[picks] - p) ** 2).sum(axis=1)) for p in x])
  return np.bincount(nearest, minlength=len(picks)) * len(picks) / len(x)


@pytest.mark.parametrize("n, d, k, seed", [(64, 2, 16, 0), (128, 32, 16, 1), (40, 5, 40, 2),
                                           (33, 3, 1, 3), (256, 64, 64, 4)])
def test_cell_weights_sum_to_k_and_match_a_float64_assignment(n, d, k, seed):
  points = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
  picks = greedy_k_center_numpy(points, k)
  got = np.asarray(coreset.cell_weights(points, picks))
  np.testing.assert_allclose(got, numpy_cell_weights(points, picks), rtol=1e-6)
  assert got.sum() == pytest.approx(k, rel=1e-6)
  assert got.min() >= k / n * (1 - 1e-6)  # Every pick is in its own cell.


def test_cell_weights_give_ties_to_the_earliest_pick():
  """Integer points on a line: 1 and 3 are as far from 0 as from 2 (and from 4), 5 from 4 and
  6; each goes to the pick listed first."""
  points = np.arange(7, dtype=np.float32)[:, None]
  for picks, want in (([0, 2, 4, 6], [2, 2, 2, 1]), ([6, 4, 2, 0], [2, 2, 2, 1]),
                      ([4, 0, 2, 6], [3, 2, 1, 1])):
    got = np.asarray(coreset.cell_weights(points, np.array(picks)))
    np.testing.assert_allclose(got, np.array(want) * 4 / 7, rtol=1e-6, err_msg=str(picks))
    np.testing.assert_allclose(got, numpy_cell_weights(points, np.array(picks)), rtol=1e-6)


def clustered(rng: np.random.Generator, k: int, factor: int) -> np.ndarray:
  """k tight clusters of `factor` points each, far apart: greedy picks one point of each."""
  centres = 100.0 * rng.normal(size=(k, 3))
  return (centres[:, None] + 0.01 * rng.normal(size=(k, factor, 3))).reshape(-1, 3)


def test_equal_cells_weigh_exactly_one():
  for seed in range(3):
    points = clustered(np.random.default_rng(seed), 8, 4)
    np.testing.assert_array_equal(coreset.cell_weights(points, greedy_k_center_numpy(points, 8)),
                                  np.ones(8, np.float32))


def test_weighted_picks_have_the_candidates_mode_shares():
  """Three far-apart modes of one spread, drawn 75% / 20% / 5%: greedy k-center gives each about
  a third of the picks, far from the candidates' shares, and the weighted picks have exactly the
  candidates' shares in every set (each candidate's nearest pick lies in its own mode)."""
  means = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])

  def draw(rng, num_sets, n):
    mode_rng, noise_rng = jax.random.split(rng)
    modes = jax.random.choice(mode_rng, 3, (num_sets, n), p=jnp.array([0.75, 0.2, 0.05]))
    x = jnp.asarray(means, jnp.float32)[modes] + jax.random.normal(noise_rng, (num_sets, n, 2))
    return modes, x

  num_sets, k, factor = 200, 16, 8
  picked, weights = sampling.coreset_target(jax.random.PRNGKey(0), draw, num_sets, k, factor,
                                            with_weights=True)
  candidates = np.asarray(draw(jax.random.PRNGKey(0), num_sets, factor * k)[0])
  picked, weights = np.asarray(picked), np.asarray(weights)
  want = np.stack([(candidates == m).mean(axis=1) for m in range(3)], axis=1)
  weighted = np.stack([(weights * (picked == m)).sum(axis=1) / k for m in range(3)], axis=1)
  unweighted = np.stack([(picked == m).mean(axis=1) for m in range(3)], axis=1)
  np.testing.assert_allclose(weighted, want, atol=1e-6)
  assert np.abs(unweighted.mean(axis=0) - want.mean(axis=0)).max() > 0.2, unweighted.mean(axis=0)


def test_samplers_weights_are_their_picks_cells():
  rng = jax.random.PRNGKey(5)
  z, w = sampling.coreset_prior(rng, num_sets=2, k=8, factor=4, z_dim=3, prior="uniform",
                                with_weights=True)
  candidates = np.asarray(sampling.sample_prior(rng, (2, 32, 3), "uniform"))
  for s in range(2):
    picks = greedy_k_center_numpy(candidates[s], 8)
    np.testing.assert_array_equal(z[s], candidates[s][picks])
    np.testing.assert_allclose(w[s], numpy_cell_weights(candidates[s], picks), rtol=1e-6)
  z1, w1 = sampling.coreset_prior(rng, num_sets=2, k=8, factor=1, z_dim=3, prior="uniform",
                                  with_weights=True)
  np.testing.assert_array_equal(w1, np.ones((2, 8)))  # Random sampling: no weights.


# The terms that take weights, each against NumPy. The instrumented networks of
# step_mechanisms_test: G(z) = z, a linear critic (here at random weights), so the critic's
# outputs are known in float64, and R1's gradient is its weight vector.

def weighted_state(config):
  state = init_state(config, step_mechanisms_test.Recorder())
  rng = np.random.default_rng(7)
  dense = {"kernel": jnp.asarray(rng.normal(size=(DIM, 1)), jnp.float32),
           "bias": jnp.asarray([0.1], jnp.float32)}
  return state.replace(d=state.d.replace(params={"Dense_0": dense}))


def batch_and_weights(seed=0):
  rng = np.random.default_rng(seed)
  z = jnp.asarray(rng.uniform(-1, 1, size=(8, DIM)), jnp.float32)
  real = jnp.asarray(3 + rng.normal(size=(8, DIM)), jnp.float32)
  z_weights, real_weights = (jnp.asarray(rng.uniform(0.2, 2.0, size=8), jnp.float32)
                             for _ in range(2))
  return z, real, z_weights, real_weights


D_TERMS = {
    "hinge": lambda real, fake: (np.maximum(0, 1 - real), np.maximum(0, 1 + fake)),
    "non_saturating": lambda real, fake: (np.logaddexp(0, -real), np.logaddexp(0, fake)),
    "wasserstein": lambda real, fake: (-real, fake),  # MEG's energy loss: E(real) - E(fake).
}


@pytest.mark.parametrize("loss", sorted(D_TERMS))
def test_critic_loss_weights_its_real_term_fake_term_and_r1(loss):
  config = mech_config({"loss": loss, "gradient_penalty.weight": 0.5,
                        "gradient_penalty.on": "real"})
  state = weighted_state(config)
  z, real, wz, wr = batch_and_weights()
  _, metrics = train.d_update(state.d, (z, real, jax.random.PRNGKey(0), wz, wr), state.g, None,
                              config, losses.get_losses(loss)[0], None)
  real_term, fake_term = D_TERMS[loss](critic_scores(state.d.params, real),
                                       critic_scores(state.d.params, z))
  v = np.asarray(state.d.params["Dense_0"]["kernel"], np.float64)
  penalty = 0.5 * np.mean(np.asarray(wr) * np.sum(v ** 2))
  assert float(metrics["d_penalty"]) == pytest.approx(penalty, rel=1e-5)
  want = np.mean(np.asarray(wr) * real_term) + np.mean(np.asarray(wz) * fake_term) + penalty
  assert float(metrics["d_loss"]) == pytest.approx(want, rel=1e-5)
  # The logged means stay raw.
  assert float(metrics["d_real"]) == pytest.approx(critic_scores(state.d.params, real).mean(),
                                                   rel=1e-5)


def test_interpolates_penalty_stays_unweighted():
  config = mech_config({"gradient_penalty.weight": 1.0, "gradient_penalty.on": "interpolates",
                        "gradient_penalty.center": 1.0})
  state = weighted_state(config)
  z, real, _, wr = batch_and_weights()
  v = np.asarray(state.d.params["Dense_0"]["kernel"], np.float64)
  got = train.d_penalty(config, state.d, state.d.params, real, z, jax.random.PRNGKey(0), 3 * wr)
  assert float(got) == pytest.approx((np.sqrt(np.sum(v ** 2)) - 1) ** 2, rel=1e-5)


@pytest.mark.parametrize("top_k", [False, True])
def test_generator_loss_weights_the_latents_within_the_kept_ones(top_k):
  """Hinge: -sum(w D(G(z))) / sum(w) over the kept samples (all, or the top 3 of 8)."""
  config = mech_config({"loss": "hinge", "topk.enabled": top_k, "topk.gamma": 0.375,
                        "topk.nu": 0.1, "topk.decay_steps": 1})
  state = weighted_state(config).replace(step=jnp.ones((), jnp.int32))
  z, real, wz, _ = batch_and_weights(1)
  _, _, metrics = train.g_update(state, state.d, z, real, jax.random.PRNGKey(0), config,
                                 losses.hinge_g_loss, None, z_weights=wz)
  scores, w = critic_scores(state.d.params, z), np.asarray(wz, np.float64)
  kept = np.argsort(-scores)[:3] if top_k else np.arange(8)
  want = -np.sum(w[kept] * scores[kept]) / (np.sum(w[kept]) if top_k else 8)
  assert float(metrics["g_loss"]) == pytest.approx(want, rel=1e-5)


def test_global_top_k_with_weights_is_one_device_top_k_of_the_whole_batch():
  """4 devices (a vmapped axis): each device's N w mask / sum(w mask) with the sums over devices
  equals one device's weights on the concatenated batch."""
  rng = np.random.default_rng(2)
  scores = jnp.asarray(rng.normal(size=(4, 4)), jnp.float32)
  w = jnp.asarray(rng.uniform(0.2, 2, size=(4, 4)), jnp.float32)

  def combined(s, weights, axis_name):
    return topk.with_sample_weights(topk.top_k_weights(s, 6, axis_name), weights, axis_name)

  spread = jax.vmap(lambda s, x: combined(s, x, "i"), axis_name="i")(scores, w)
  one = combined(scores.reshape(-1), w.reshape(-1), None)
  np.testing.assert_allclose(np.asarray(spread).reshape(-1), one, rtol=1e-6)
  top = np.argsort(-np.asarray(scores).reshape(-1), kind="stable")[:6]
  want = np.zeros(16)
  want[top] = 16 * np.asarray(w).reshape(-1)[top] / np.asarray(w).reshape(-1)[top].sum()
  np.testing.assert_allclose(one, want, rtol=1e-6)


class PairNet(nn.Module):
  """T(x, z) (MEG's statistics network) or, with `encode`, an encoder x -> z (BiGAN's)."""
  encode: bool = False

  @nn.compact
  def __call__(self, inputs, train):
    del train
    if self.encode:
      return nn.Dense(DIM)(inputs)
    x, z = inputs
    return nn.Dense(1)(jnp.concatenate([x, z], axis=-1))[:, 0]


def pair_state(module, example):
  params = module.init(jax.random.PRNGKey(1), example, train=False)["params"]
  return ModelState.create(apply_fn=module.apply, params=params, tx=optax.sgd(0.1))


def test_meg_statistics_network_weights_joint_pairs_and_shuffled_products():
  config = ml_collections.ConfigDict({"objective": "meg", "meg": {"entropy_weight": 2.0}})
  fake, z, wz, _ = batch_and_weights(3)
  aux = pair_state(PairNet(), (fake, z))
  rng = jax.random.PRNGKey(4)
  got, _ = objectives.aux_loss(config, aux, aux.params, None, fake, z, None, rng, wz, None)
  t = lambda x, y: np.asarray(aux.apply_fn({"params": aux.params}, (x, y), train=False),
                              np.float64)
  order = np.asarray(jax.random.permutation(rng, 8))
  w = np.asarray(wz, np.float64)
  products = w * w[order]
  products *= w.sum() / products.sum()
  want = 2.0 * 0.5 * (np.mean(w * np.logaddexp(0, -t(fake, z)))
                      + np.mean(products * np.logaddexp(0, t(fake, z[order]))))
  assert float(got) == pytest.approx(want, rel=1e-5)


def test_bigan_encoder_term_weights_the_real_samples():
  config = ml_collections.ConfigDict({"objective": "bigan"})
  _, real, _, wr = batch_and_weights(4)
  aux = pair_state(PairNet(encode=True), real)
  v = np.random.default_rng(5).normal(size=2 * DIM)
  critic = lambda inputs: jnp.concatenate(inputs, axis=-1) @ jnp.asarray(v, jnp.float32)
  got, _ = objectives.aux_loss(config, aux, aux.params, critic, None, None, real, None, None, wr)
  encoded = np.asarray(aux.apply_fn({"params": aux.params}, real, train=False), np.float64)
  logits = np.concatenate([np.asarray(real, np.float64), encoded], axis=-1) @ v
  assert float(got) == pytest.approx(np.mean(np.asarray(wr) * np.logaddexp(0, logits)), rel=1e-5)


def test_target_weighting_with_equal_cells_is_the_unweighted_step_bit_for_bit():
  """Candidates in equal clusters: every target weight is exactly 1, and the whole train step
  (critic's loss, R1, the generator's update) is the unweighted one."""
  base = {"loss": "hinge", "gradient_penalty.weight": 0.5, "gradient_penalty.on": "real"}

  def draw(rng, num_sets, n, batch=None):
    del batch
    points = [clustered(np.random.default_rng(s), n // 4, 4) for s in range(num_sets)]
    x = jnp.asarray(np.stack(points), jnp.float32)
    return 3 + jnp.tile(x, (1, 1, 3))[..., :DIM] + jax.random.normal(rng, x.shape[:2] + (1,)), x

  params = {}
  for weighting in ("none", "target"):
    config = mech_config({**base, "coreset.weighting": weighting})
    state = weighted_state(config)
    new, _ = train.train_step(state, config=config, draw_candidates=draw, num_replicas=1,
                              axis_name=None)
    params[weighting] = jax.tree.leaves((new.g.params, new.d.params))
  for a, b in zip(params["none"], params["target"]):
    np.testing.assert_array_equal(a, b)
  config = mech_config({**base, "coreset.weighting": "cells"})  # Unequal latent cells: differs.
  new, _ = train.train_step(weighted_state(config), config=config, draw_candidates=draw,
                            num_replicas=1, axis_name=None)
  assert any(not np.array_equal(a, b) for a, b in
             zip(params["none"], jax.tree.leaves((new.g.params, new.d.params))))


def test_the_step_hands_the_generator_update_the_last_real_batchs_weights(monkeypatch):
  """BiGAN's encoder term trains on the step's last real batch: the G update gets its weights,
  and the latents' (`cells`)."""
  seen = {}
  real_batches, g_update = train.real_batches, train.g_update

  def recorded_batches(*args):
    seen["real"] = real_batches(*args)
    return seen["real"]

  def recorded_update(*args):
    seen["update"] = args
    return g_update(*args)

  monkeypatch.setattr(train, "real_batches", recorded_batches)
  monkeypatch.setattr(train, "g_update", recorded_update)
  config = mech_config({"coreset.weighting": "cells"})
  train.train_step(weighted_state(config), config=config,
                   draw_candidates=step_mechanisms_test.recording_target(
                       step_mechanisms_test.Recorder()), num_replicas=1, axis_name=None)
  (_, real_weights), (z_weights, last_weights) = seen["real"], seen["update"][-2:]
  np.testing.assert_array_equal(last_weights, real_weights[-1])
  assert z_weights.shape == (8,) and float(z_weights.sum()) == pytest.approx(8)
  assert not np.allclose(z_weights, 1) and not np.allclose(last_weights, 1)


# The global scope: every device computes the whole set's weights and keeps its slice.

def record_weights(path: str) -> None:
  """In a process of 4 devices: each step's real, D-latent and G-latent weights, gathered in
  device order, of the tiny SN-GAN config with `cells`, on 1, 2 and 4 devices."""
  assert jax.device_count() == 4
  config = global_coreset_test.paper_config("cifar_sngan")
  config.coreset.weighting = "cells"
  weights = lambda real, z_d, z_g: (real[1], z_d[1], z_g[1])
  out = {count: global_coreset_test.sampled(config, global_coreset_test.tiny_dataset(),
                                            global_coreset_test.first_devices(count), weights)
         for count in (1, 2, 4)}
  with open(path, "wb") as f:
    pickle.dump(out, f)


@pytest.fixture(scope="module")
def recorded_weights(tmp_path_factory):
  return global_coreset_test.on_4_devices("tests.weighting_test", "record_weights",
                                          tmp_path_factory.mktemp("weights"))


def test_global_weights_sliced_over_devices_are_one_devices_weights(recorded_weights):
  """On 2 and 4 devices the slices, in device order, are one device's weights (nothing
  renormalised per device); each set's weights sum to its size, and the real ones are the float64
  cells of the step's global candidates' embedding rows."""
  config = global_coreset_test.paper_config("cifar_sngan")
  dataset = global_coreset_test.tiny_dataset()
  for count in (2, 4):
    for want, got in zip(recorded_weights[1], recorded_weights[count]):
      for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b, err_msg=f"{count} devices")
  n, k = config.coreset.factor_target * config.batch_size, config.batch_size
  for step, (real, z_d, z_g) in enumerate(recorded_weights[4], start=1):
    np.testing.assert_allclose(real.sum(axis=1), k, rtol=1e-6)
    np.testing.assert_allclose(z_d.sum(axis=1), k, rtol=1e-6)
    assert z_g.sum() == pytest.approx(config.g_batch_size, rel=1e-6)
    sets = pipeline.global_candidate_indices(config.seed, step, config.n_dis, n,
                                             global_coreset_test.DATASET_SIZE)
    for u, candidates in enumerate(sets):
      rows = dataset.embeddings.rows(candidates)
      want = numpy_cell_weights(rows, greedy_k_center_numpy(rows, k))
      np.testing.assert_allclose(real[u], want, rtol=1e-6, err_msg=f"step {step}, update {u}")


# "none" is the step as it was: digests of a hinge image step and a MEG step recorded with the
# code before weighting existed (commit 5436920), the toy's in toy_fingerprint_test.

def image_dataset(channels: int, resolution: int) -> datasets.ImageDataset:
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (128, resolution, resolution, channels), dtype=np.uint8)
  rows = rng.normal(size=(128, 4)).astype(np.float32)
  return datasets.ImageDataset(images.ArraySource("random", pixels, None),
                               embeddings.Embeddings(rows, {"dataset": "random"}, None))


def step_config(objective: str) -> ml_collections.ConfigDict:
  """The tiny SN-GAN config (hinge) or a tiny Fashion-MNIST MEG, with a normal prior (both
  configs' prior before weighting existed)."""
  if objective == "gan":
    config = global_coreset_test.paper_config("cifar_sngan")
  else:
    config = fashion_mnist_meg.get_config()
    config.update_from_flattened_dict({"dcgan.g_channels": 4, "dcgan.d_channels": 4, "z_dim": 8,
                                       "batch_size": 8, "g_batch_size": 8})
  config.prior = "normal"
  config.coreset.weighting = "none"
  return config


def step_digest(objective: str) -> str:
  """sha256 of every parameter's float32 bytes after 2 train steps on one device."""
  config = step_config(objective)
  dataset = image_dataset(*((3, 16) if objective == "gan" else (1, 28)))
  mesh = global_coreset_test.first_devices(1)
  state = train.replicated_state(config, dataset, mesh)
  step = train.make_train_step(config, dataset, mesh, streamed=True)
  batches = dataset.batches(config, mesh, 1)
  for _ in range(2):
    state, _ = step(state, *next(batches))
  leaves = jax.tree.leaves((state.g.params, state.d.params, state.aux and state.aux.params))
  return hashlib.sha256(b"".join(np.asarray(distributed.host_value(x)).astype(np.float32).tobytes()
                                 for x in leaves)).hexdigest()


STEP_DIGESTS = {"gan": "46b6d9571aa4870ca419a2ad82001c323b115c10dd2b4a68e623b765e5863562",
                "meg": "761a0e64ee3cd910acc7a4bcaf6c66c02bec473f8a01a1aa20c8cf308a908426"}


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="recorded on the CPU")
@pytest.mark.parametrize("objective", sorted(STEP_DIGESTS))
def test_no_weighting_is_the_step_before_weighting_bit_for_bit(objective):
  assert step_digest(objective) == STEP_DIGESTS[objective]
