"""Global core-sets: the step's keys, and the paper's algorithm on any device count.

The paper's image configs pick one prior and one target core-set of the global batch and
synchronise the generator's batch norm, so 1, 2 and 4 devices should pick the same latents and
images and train alike. One subprocess of 4 simulated CPU devices (`record`) runs the step's
samplers and a few train steps on meshes of its first 1, 2 and 4 devices, on a small image source
with random embedding rows; the tests compare what it recorded between the device counts and with
float64 greedy k-center on the global candidates' rows.
"""
import functools
import importlib
import os
import pickle
import subprocess
import sys
from typing import Any

import jax
import ml_collections
import numpy as np
import pytest

from benchmarks.coreset_reference import greedy_k_center_numpy
from smallgan_jax import datasets, distributed, embeddings, sampling, train
from smallgan_jax.data import images, pipeline
from tests.train_test import small_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_COUNTS = (1, 2, 4)
PAPER_CONFIGS = ("cifar_sngan", "lsun_church_sagan")
DATASET_SIZE, RESOLUTION, EMB_DIM = 256, 16, 4
STEPS = 2


def test_global_key_is_no_device_key():
  """The global core-sets' key is none of the 4096 first devices' keys fold_in(step key, i), nor
  the step's or the next step's key, and those two are what `split` always gave (the toy
  fingerprint's keys)."""
  for seed in range(3):
    rng = jax.random.PRNGKey(seed)
    next_rng, step_rng, global_rng = train.step_keys(rng)
    np.testing.assert_array_equal(np.stack([next_rng, step_rng]), jax.random.split(rng))
    devices = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(step_rng, np.arange(4096))
    equal = (np.asarray(devices) == np.asarray(global_rng)).all(axis=1)
    assert not equal.any(), f"seed {seed}: the global key is device {np.flatnonzero(equal)}'s"
    assert not (global_rng == next_rng).all() and not (global_rng == step_rng).all()


def paper_config(name: str, target_scope: str = "global") -> ml_collections.ConfigDict:
  """The paper config `name` at tiny sizes: 16 px, width 8, z 8, D batch 8, G batch 16, 2 critic
  updates a step, no evaluation scores."""
  config = importlib.import_module(f"configs.{name}").get_config()
  config.update_from_flattened_dict({
      "data.resolution": RESOLUTION, "z_dim": 8, "batch_size": 8, "g_batch_size": 16, "n_dis": 2,
      "num_train_steps": STEPS, "coreset.target_scope": target_scope})
  config.fid.features = ()
  block = config[config.model]
  block.g_channels = block.d_channels = 8
  if config.model == "sagan":
    block.attention_resolution = 8
  return config


def tiny_dataset() -> datasets.ImageDataset:
  """Random 16x16 RGB images, each with a random embedding row of its own."""
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (DATASET_SIZE, RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
  rows = rng.normal(size=(DATASET_SIZE, EMB_DIM)).astype(np.float32)
  return datasets.ImageDataset(images.ArraySource("random", pixels, None),
                           embeddings.Embeddings(rows, {"dataset": "random"}, None))


def first_devices(num_devices: int) -> jax.sharding.Mesh:
  return jax.sharding.Mesh(np.asarray(jax.devices()[:num_devices]), (distributed.AXIS,))


def sampled(config, dataset, mesh, outputs=lambda *batches: batches
            ) -> list[tuple[np.ndarray, ...]]:
  """Per step: the devices' real batches, D latents and G latents, each gathered in device order
  ((n_dis, B, ...) and (G, z)), through the step's samplers on the pipeline's batches;
  `outputs(real, d_latents, g_latents)` picks those arrays out of the samplers' results."""
  size = mesh.size

  def per_device(rng, batch):
    _, _, global_rng = train.step_keys(rng)
    prior_rng, target_rng = jax.random.split(global_rng)
    draw = functools.partial(dataset.draw_candidates, batch=jax.tree.map(lambda x: x[0], batch))
    real = train.real_batches(config, draw, target_rng, target_rng, size, distributed.AXIS)
    return outputs(real, *train.global_latents(config, prior_rng, size, distributed.AXIS))

  spec = jax.sharding.PartitionSpec
  run = jax.jit(jax.shard_map(
      per_device, mesh=mesh, in_specs=(spec(), spec(distributed.AXIS)),
      out_specs=(spec(None, distributed.AXIS), spec(None, distributed.AXIS),
                 spec(distributed.AXIS)), check_vma=False))
  batches = dataset.batches(config, mesh, 1)
  return [tuple(np.asarray(x) for x in run(jax.random.PRNGKey(s), *next(batches)))
          for s in range(STEPS)]


def toy_config(scope: str = "global") -> ml_collections.ConfigDict:
  """The small toy config with both core-sets of `scope`, 2 critic updates a step."""
  return small_config({"coreset.prior_scope": scope, "coreset.target_scope": scope, "n_dis": 2,
                       "num_train_steps": STEPS})


def trained(config, mesh) -> tuple[list[dict], list[np.ndarray]]:
  """(each step's metrics, the parameters of G and D) after STEPS train steps on `mesh`."""
  dataset = datasets.get_dataset(config)
  state = train.replicated_state(config, dataset, mesh)
  step = train.make_train_step(config, dataset, mesh)
  metrics = []
  for _ in range(STEPS):
    state, step_metrics = step(state)
    metrics.append({k: float(distributed.host_value(v)) for k, v in step_metrics.items()})
  params = jax.tree.leaves((state.g.params, state.d.params))
  return metrics, [np.asarray(distributed.host_value(x)) for x in params]


def record(path: str) -> None:
  """In a process of 4 devices: what `sampled` gives for each paper config on 1, 2 and 4 of them,
  what `trained` gives for the toy with global core-sets on 1 and 4, and with per-device
  core-sets on 4."""
  assert jax.device_count() == 4
  dataset = tiny_dataset()
  out = {"sampled": {(name, d): sampled(paper_config(name), dataset, first_devices(d))
                     for name in PAPER_CONFIGS for d in DEVICE_COUNTS},
         "trained": {d: trained(toy_config(), first_devices(d)) for d in (1, 4)},
         "trained_per_device": trained(toy_config("device"), first_devices(4))}
  with open(path, "wb") as f:
    pickle.dump(out, f)


def on_4_devices(module: str, function: str, folder) -> Any:
  """What `module.function(path)` pickles to a file in `folder`, run in a process of 4 CPU
  devices."""
  path = folder / "recorded.pkl"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  code = f"from {module} import {function}; {function}({str(path)!r})"
  out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  with open(path, "rb") as f:
    return pickle.load(f)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
  return on_4_devices("tests.global_coreset_test", "record",
                      tmp_path_factory.mktemp("global_coresets"))


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_picks_globally_with_synchronised_batch_norm(name):
  config = paper_config(name)
  assert (config.coreset.prior_scope, config.coreset.target_scope) == ("global", "global")
  assert config[config.model].sync_batch_norm


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_picks_the_same_on_1_2_and_4_devices(recorded, name):
  """Real batches (images), D and G latents: bit for bit the same on every device count."""
  one = recorded["sampled"][name, 1]
  for d in DEVICE_COUNTS[1:]:
    for step, (want, got) in enumerate(zip(one, recorded["sampled"][name, d])):
      for what, a, b in zip(("real batches", "D latents", "G latents"), want, got):
        np.testing.assert_array_equal(a, b, err_msg=f"{what} of step {step + 1} on {d} devices")


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_global_target_batches_are_the_greedy_picks_of_the_global_candidates(recorded, name):
  """On 4 devices, the devices' real batches in device order are the images at the float64 greedy
  k-center picks, in pick order, of the rows of the step's global candidate sets."""
  config, dataset = paper_config(name), tiny_dataset()
  n, k = config.coreset.factor_target * config.batch_size, config.batch_size
  for step, (real, _, _) in enumerate(recorded["sampled"][name, 4], start=1):
    sets = pipeline.global_candidate_indices(config.seed, step, config.n_dis, n, DATASET_SIZE)
    for u, candidates in enumerate(sets):
      picks = candidates[greedy_k_center_numpy(dataset.embeddings.rows(candidates), k)]
      pixels = np.rint((real[u].astype(np.float64) + 1) * 127.5).astype(np.uint8)
      np.testing.assert_array_equal(pixels, dataset.source.images(picks),
                                    err_msg=f"step {step}, update {u}")


def test_toy_trains_alike_on_1_and_4_devices(recorded):
  """With global prior and target core-sets, the losses of every step and the parameters after 2
  steps agree to float32 rounding (the means over devices sum in another order) between 1 and 4
  devices; per-device core-sets on 4 devices train on other batches, and differ by far more."""
  metrics_1, params_1 = recorded["trained"][1]
  metrics_4, params_4 = recorded["trained"][4]
  for want, got in zip(metrics_1, metrics_4):
    for key in want:
      np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
  for want, got in zip(params_1, params_4):
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
  per_device = recorded["trained_per_device"][0][0]
  assert abs(per_device["d_loss"] - metrics_1[0]["d_loss"]) > 1e-3, (per_device, metrics_1[0])


def test_global_target_on_one_device_is_the_core_set_of_all_candidates():
  """One device, no mesh axis: each set's float64 greedy k-center picks, in pick order."""
  x = np.arange(2 * 8 * 3, dtype=np.float32).reshape(2, 8, 3)
  draw = lambda rng, num_sets, n: (x[:, :n], x[:, :n])
  real = sampling.global_coreset_target(None, draw, 2, 4, 2, 1, None)
  want = np.stack([s[greedy_k_center_numpy(s, 4)] for s in x])
  np.testing.assert_array_equal(np.asarray(real), want)
