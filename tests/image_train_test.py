"""Image GANs through the one train step: candidates streamed from the host, core-sets on their
embeddings, resumed runs bit-identical, and several processes equal to one."""
import numpy as np
import pytest

from tests.images_test import write_idx
from tests.main_test import final_params, run_main
from tests.resilience_test import assert_same_states
from tests.scale_out_test import assert_close_states, run_processes

CONFIG = "configs/fashion_mnist_dcgan.py"


def tiny_image_flags(root):
  """Flags of a tiny DCGAN on a 64-image idx dataset of noise that they write to `root`,
  embedded by its pixels."""
  rng = np.random.default_rng(0)
  write_idx(str(root / "train-images-idx3-ubyte.gz"), rng.integers(0, 256, (64, 28, 28)))
  write_idx(str(root / "train-labels-idx1-ubyte.gz"), rng.integers(0, 10, 64))
  return [f"--config.data.idx_dir={root}", "--config.data.name=tiny",
          "--config.data.num_threads=2", "--config.coreset.embedding=pixels",
          f"--config.coreset.cache_dir={root / 'cache'}", "--config.dcgan.g_channels=8",
          "--config.dcgan.d_channels=8", "--config.z_dim=8", "--config.batch_size=8",
          "--config.g_batch_size=8", "--config.eval_num_samples=16",
          "--config.checkpoint_every_steps=10", "--config.log_every_steps=5",
          "--config.fid.features=()"]


@pytest.fixture(scope="module")
def tiny_flags(tmp_path_factory):
  return tiny_image_flags(tmp_path_factory.mktemp("tiny_idx"))


def test_resumed_image_run_is_bit_identical(tiny_flags, tmp_path):
  """10 steps, then 10 more from the checkpoint, equal 20 straight: the host stream restarts at
  the resumed step and draws exactly what the uninterrupted run drew."""
  first = run_main(tmp_path / "resumed", *tiny_flags, "--config.num_train_steps=10",
                   config=CONFIG, devices=2)
  assert first.returncode == 0, first.stderr[-3000:]
  assert (tmp_path / "resumed" / "samples_00000010.png").read_bytes()[:4] == b"\x89PNG"
  second = run_main(tmp_path / "resumed", *tiny_flags, "--config.num_train_steps=20",
                    config=CONFIG, devices=2)
  assert second.returncode == 0, second.stderr[-3000:]
  straight = run_main(tmp_path / "straight", *tiny_flags, "--config.num_train_steps=20",
                      config=CONFIG, devices=2)
  assert straight.returncode == 0, straight.stderr[-3000:]
  assert_same_states(final_params(str(tmp_path / "resumed"))[1],
                     final_params(str(tmp_path / "straight"))[1])


def test_image_run_on_two_processes_equals_one_process_with_two_devices(tiny_flags, tmp_path):
  steps = ["--config.num_train_steps=10"]
  one = run_main(tmp_path / "one", *tiny_flags, *steps, config=CONFIG, devices=2)
  assert one.returncode == 0, one.stderr[-3000:]
  run_processes(tmp_path / "two", 2, 1, *tiny_flags, *steps, config=CONFIG)
  assert_close_states(final_params(str(tmp_path / "two"))[1],
                      final_params(str(tmp_path / "one"))[1], atol=1e-6)


def test_plain_image_gan_needs_no_embeddings(tiny_flags, tmp_path):
  out = run_main(tmp_path / "plain", *tiny_flags, "--config.num_train_steps=3",
                 "--config.coreset.factor_prior=1", "--config.coreset.factor_target=1",
                 config=CONFIG)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "embeddings" not in out.stderr.lower()


def test_image_config_without_its_dataset_fails_in_one_line_before_any_model(tmp_path):
  empty = tmp_path / "no_data"
  empty.mkdir()
  out = run_main(tmp_path / "run", f"--config.data.idx_dir={empty}", config=CONFIG)
  assert out.returncode != 0
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("FATAL ") and str(empty) in last and "fashion_mnist" in last, last
  assert not (tmp_path / "run" / "checkpoints").exists()
