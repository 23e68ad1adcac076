"""The target core-set trains the critic on the images whose embeddings it picked, through the real
image path: the host stream (`datasets.ImageDataset.batches`, rows by `embeddings.Embeddings.rows`)
feeding the jitted step of `train.make_train_step(streamed=True)`.

Each image spells its own dataset index (tests/pipeline_test.py's `NumberedSource`) and row i of
the embedding array is a random vector of its own, so an image and a row name each other. The
critic is tests/step_mechanisms_test.py's recording critic, which sends every batch it trains on
to the host. The test draws the stream's indices itself (`pipeline.candidate_indices`, or
`global_candidate_indices` for a global target core-set: pure functions of seed, step and device),
picks from each set by float64 greedy k-center on that set's rows, and checks that the real images
of each critic update are exactly the picked indices. A lookup that pairs candidates with the wrong
rows (an off-by-one, a roll within a set) leaves training running, but turns the target core-set
into random sampling, and the step and pipeline tests do not see it (issue 23).
"""
import contextlib
import textwrap

import flax.linen as nn
import jax
import numpy as np
import pytest

from smallgan_jax import datasets, distributed, embeddings, train
from smallgan_jax.data import images, pipeline
from tests.image_gans_test import run_on_4_devices
from tests.pipeline_test import NumberedSource, spelled
from tests.step_mechanisms_test import (Recorder, RecordingCritic, ScaleShiftGenerator,
                                        assert_coresets, d_batches, mech_config)

DATASET_SIZE = 512
EMB_DIM = 4
STEPS = 2
# config.coreset.target_scope: "device", each device's core-set of its own candidates; "global"
# (skipped until the config has the field: `has_scope`), one core-set of the global batch on the
# step's global candidate sets, the devices' batches together being that core-set.
SCOPES = ("device", "global")


class ImageGenerator(nn.Module):
  """The identity-at-init G(z) = scale * z + shift, shaped as the source's images."""
  shape: tuple[int, ...]

  @nn.compact
  def __call__(self, z, train):
    return ScaleShiftGenerator()(z, train).reshape(-1, *self.shape)


class FlatCritic(nn.Module):
  """The recording linear critic on flattened images: it sends each batch it trains on."""
  recorder: Recorder

  @nn.compact
  def __call__(self, x, train):
    return RecordingCritic(self.recorder)(x.reshape(x.shape[0], -1), train)


def has_scope(scope):
  """Whether the config can ask for `scope` ("device" is the step's only path without the
  config.coreset.target_scope field)."""
  return scope == "device" or "target_scope" in mech_config().coreset


def pairing_config(scope):
  """Global batches of 16 from 8x as many candidates, 2 critic updates a step."""
  config = mech_config({"batch_size": 16, "g_batch_size": 16, "n_dis": 2,
                        "coreset.factor_target": 8})
  config.z_dim = int(np.prod(NumberedSource().shape))
  config.data = images.data_config(num_threads=2)
  if "target_scope" in config.coreset:
    config.coreset.target_scope = scope
  return config


def embedding_rows():
  """Row i: dataset index i's embedding, a random vector (float32 as on the device)."""
  return np.random.default_rng(0).normal(size=(DATASET_SIZE, EMB_DIM)).astype(np.float32)


def trained_indices(config, dataset, recorder):
  """{replica: [dataset indices of each critic update's real batch]}, over STEPS streamed steps
  of the jitted step on every device, in update order."""
  mesh = distributed.device_mesh()
  state = train.create_train_state(config, ImageGenerator(dataset.data_shape),
                                   FlatCritic(recorder), dataset.data_shape,
                                   jax.random.PRNGKey(config.seed))
  state = jax.device_put(state, distributed.replicated(mesh))
  step = train.make_train_step(config, dataset, mesh, streamed=True)
  with contextlib.closing(dataset.batches(config, mesh, start_step=1)) as batches:
    for _ in range(STEPS):
      state, _ = step(state, *next(batches))
  jax.effects_barrier()
  to_indices = lambda real: spelled(np.rint((real + 1) * 127.5).astype(np.uint8).reshape(
      -1, *dataset.data_shape))
  return {r: [to_indices(real) for real, _ in d_batches(recorder.records, r)]
          for r in range(mesh.size)}


def coreset_groups(scope, num_devices):
  """The replicas whose real batches together form one core-set."""
  replicas = list(range(num_devices))
  return [[r] for r in replicas] if scope == "device" else [replicas]


def candidate_sets(config, scope, step, group, num_devices):
  """(n_dis, n) dataset indices: the candidate sets that `group`'s batches at `step` are the
  core-sets of, drawn as the stream draws them (a pure function of seed, step and device)."""
  k = config.batch_size // num_devices * len(group)
  n = config.coreset.factor_target * k
  if scope == "device":
    (device,) = group
    return pipeline.candidate_indices(config.seed, step, device, config.n_dis, n, DATASET_SIZE)
  return pipeline.global_candidate_indices(config.seed, step, config.n_dis, n, DATASET_SIZE)


def assert_critic_trains_on_the_picked_images(scope):
  """On every device of this process: each critic update's real images (with "global", the
  devices' together) are the float64 greedy k-center picks, on the rows of their own dataset
  indices, of one candidate set the stream draws for that step (and device), each set once."""
  config = pairing_config(scope)
  rows = embedding_rows()
  dataset = datasets.ImageDataset(NumberedSource(DATASET_SIZE),
                              embeddings.Embeddings(rows, {"dataset": "numbered/train"}, None))
  recorder = Recorder(distributed.AXIS)
  trained = trained_indices(config, dataset, recorder)
  num_devices = len(trained)
  for group in coreset_groups(scope, num_devices):
    sets = [s for step in range(1, STEPS + 1)
            for s in candidate_sets(config, scope, step, group, num_devices)]
    batches = [np.concatenate(per_device) for per_device in zip(*[trained[r] for r in group])]
    assert len(batches) == len(sets) == STEPS * config.n_dis, (len(batches), len(sets))
    assert_coresets([b[:, None] for b in batches], [s[:, None] for s in sets],
                    [rows[s] for s in sets], config.coreset.factor_target)


@pytest.mark.parametrize("scope", SCOPES)
def test_critic_trains_on_the_images_whose_embeddings_the_coreset_picked(scope):
  if not has_scope(scope):
    pytest.skip(f"config.coreset has no target_scope, so no {scope!r} target core-set yet")
  assert_critic_trains_on_the_picked_images(scope)


CHECK_ON_4_DEVICES = """
import sys
import jax
from tests.embedding_pairing_test import assert_critic_trains_on_the_picked_images
assert jax.device_count() == 4
for scope in {scopes!r}:
  print("target_scope", scope, file=sys.stderr)  # Names the scope of a failure's traceback.
  assert_critic_trains_on_the_picked_images(scope)
print("OK")
"""


def test_each_of_4_devices_trains_on_the_images_its_coreset_picked():
  """Every scope the config has, in one process of 4 devices (one start-up for all)."""
  scopes = [scope for scope in SCOPES if has_scope(scope)]
  assert run_on_4_devices(textwrap.dedent(CHECK_ON_4_DEVICES).format(scopes=scopes)) == ["OK"]
