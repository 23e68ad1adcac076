"""SN-GAN and SAGAN through the one train step: the paper's configs at tiny widths train on images
the test writes, on 4 simulated devices, with replicas identical (synchronised batch norm
included); without their dataset they fail in one line."""
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
from PIL import Image
import pytest

from smallgan_jax import datasets, distributed, train
from tests.main_test import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRAIN_ON_4_DEVICES = """
import jax, numpy as np
from configs import {config}
from smallgan_jax import distributed
from tests.image_gans_test import train_on_devices
assert jax.device_count() == 4
config = {config}.get_config()
config.data.source, config.data.folder, config.data.num_threads = "folder", {folder!r}, 1
config.coreset.embedding, config.coreset.cache_dir = "pixels", {cache!r}
config.fid.features = ()
config.batch_size = config.g_batch_size = 8
config.z_dim = 16
config.num_train_steps = 3
config.update_from_flattened_dict({overrides!r})
first, state = train_on_devices(config, 3)
last = np.asarray(distributed.host_value(jax.tree.leaves(state.g.params)[0]))
assert not np.array_equal(jax.tree.leaves(first.g.params)[0], last), "the generator did not move"
assert set(state.g.collections) == {collections!r}, state.g.collections.keys()
print("OK", int(state.d.step))
"""


def train_on_devices(config, steps: int):
  """(the initial state on the host, the state after `steps` streamed steps on every device),
  asserting that the metrics stay finite and the replicas identical. Run in the subprocesses."""
  dataset = datasets.get_dataset(config)
  mesh = distributed.device_mesh()
  state = train.replicated_state(config, dataset, mesh)
  first = jax.tree.map(lambda x: np.asarray(distributed.host_value(x)), state)
  step = train.make_train_step(config, dataset, mesh, streamed=True)
  batches = dataset.batches(config, mesh, 1)
  for _ in range(steps):
    state, metrics = step(state, *next(batches))
  assert bool(metrics["finite"]), metrics
  for leaf in jax.tree.leaves(state):
    copies = [np.asarray(shard.data) for shard in leaf.addressable_shards]
    assert len(copies) == jax.device_count(), len(copies)
    assert all((c == copies[0]).all() for c in copies), "replicas diverged"
  return first, state


def run_on_4_devices(code: str) -> list[str]:
  """The words `code` prints, run in a process of 4 simulated CPU devices (which must succeed)."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       cwd=ROOT)
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stdout.split()


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
  """64 random 40x40 RGB PNGs (resized and cropped by the folder source): a global target
  candidate set of the tests' batch, 8 x 8 images."""
  folder = tmp_path_factory.mktemp("images")
  rng = np.random.default_rng(0)
  for i in range(64):
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
  return folder


@pytest.mark.parametrize("config, overrides, collections, d_updates", [
    ("cifar_sngan", {"sngan.g_channels": 8, "sngan.d_channels": 8}, ["batch_stats"], 15),
    ("lsun_church_sagan", {"data.resolution": 32, "sagan.g_channels": 4, "sagan.d_channels": 8,
                           "sagan.attention_resolution": 16, "sagan.sync_batch_norm": True},
     ["batch_stats", "spectral_stats"], 3),
])
def test_paper_config_trains_at_tiny_width_on_4_devices(image_folder, tmp_path, config,
                                                        overrides, collections, d_updates):
  code = textwrap.dedent(TRAIN_ON_4_DEVICES).format(
      config=config, folder=str(image_folder), cache=str(tmp_path / "cache"),
      overrides=overrides, collections=set(collections))
  assert run_on_4_devices(code) == ["OK", str(d_updates)]  # n_dis critic updates a step.


@pytest.mark.parametrize("config, name", [("cifar_sngan", "cifar10"),
                                          ("lsun_church_sagan", "lsun/church_outdoor")])
def test_paper_config_without_its_dataset_fails_in_one_line(tmp_path, config, name):
  empty = tmp_path / "tfds"
  empty.mkdir()
  out = run_main(tmp_path / "run", f"--config.data.tfds_data_dir={empty}",
                 "--config.data.download=False", config=f"configs/{config}.py")
  assert out.returncode != 0
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith(f"FATAL tfds dataset '{name}' is not prepared") and str(empty) in last
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_paper_config_without_the_inception_weights_fails_in_one_line(image_folder, tmp_path):
  missing = tmp_path / "fid_inception.npz"
  out = run_main(tmp_path / "run", "--config.data.source=folder",
                 f"--config.data.folder={image_folder}", f"--config.coreset.cache_dir={tmp_path}",
                 "--config.coreset.embedding=pixels",
                 f"--config.coreset.inception_weights={missing}", "--config.fid.download=False",
                 config="configs/cifar_sngan.py")
  assert out.returncode != 0
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("FATAL ") and str(missing) in last and "convert_inception" in last, last
  assert not (tmp_path / "run" / "checkpoints").exists()
