"""The command line end to end: outputs, resume, and clear errors on bad input."""
import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A constant learning rate: under the default run's linear decay, a run extended on resume
# (a larger num_train_steps) decays differently from a straight one, by design.
CONFIG = "configs/toy_mog_table1.py"
SMALL = ["--config.mlp.width=32", "--config.batch_size=16", "--config.g_batch_size=16",
         "--config.eval_num_samples=500", "--config.log_every_steps=5",
         "--config.checkpoint_every_steps=10", "--config.eval_every_steps=1000"]


def main_command(workdir, *flags, config=CONFIG):
  return [sys.executable, "-m", "smallgan_jax.main", f"--config={config}", f"--workdir={workdir}",
          *SMALL, *flags]


def main_env(devices=1):
  return dict(os.environ, JAX_PLATFORMS="cpu",
              XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def run_main(workdir, *flags, config=CONFIG, devices=1):
  return subprocess.run(main_command(workdir, *flags, config=config), cwd=ROOT,
                        env=main_env(devices), capture_output=True, text=True, timeout=600)


def final_params(workdir, step=None):
  """(step, state) of the workdir's latest checkpoint (or of `step`), on this process's first
  device whatever the devices that wrote it."""
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                  item_handlers=ocp.StandardCheckpointHandler())
  step = manager.latest_step() if step is None else step
  one_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one_device),
                        manager.item_metadata(step), is_leaf=lambda m: hasattr(m, "shape"))
  return step, manager.restore(step, args=ocp.args.StandardRestore(target))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  out = run_main(workdir, "--config.num_train_steps=20")
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir, out


def test_run_writes_metrics_plot_tensorboard_and_checkpoint(trained):
  workdir, out = trained
  log = out.stderr
  assert "modes_recovered_pct=" in log and "high_quality_pct=" in log
  assert "steps/s" in log and "ETA" in log
  assert "train/d_loss" in log and "train/g_loss" in log
  png = os.path.join(workdir, "samples_00000020.png")
  with open(png, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
  assert final_params(workdir)[0] == 20
  with open(os.path.join(workdir, "config.json")) as f:
    recorded = json.load(f)
  recorded = (recorded["batch_size"], recorded["num_train_steps"], recorded["mlp"]["width"])
  assert recorded == (16, 20, 32)


def test_resume_continues_bit_for_bit(trained, tmp_path):
  """20 steps then 10 more from the checkpoint equals 30 steps straight."""
  workdir, _ = trained
  resumed = run_main(workdir, "--config.num_train_steps=30")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resuming from the checkpoint of step 20" in resumed.stderr
  straight = run_main(str(tmp_path), "--config.num_train_steps=30")
  assert straight.returncode == 0, straight.stderr[-3000:]
  (step_a, a), (step_b, b) = final_params(workdir), final_params(str(tmp_path))
  assert step_a == step_b == 30
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def snapshot(workdir):
  """Every file under `workdir` with its bytes, to show a refused run changed nothing."""
  return {p: p.read_bytes() for p in sorted(pathlib.Path(workdir).rglob("*")) if p.is_file()}


def test_workdir_of_another_config_is_refused_and_kept(trained, tmp_path):
  """A change that fits the checkpoint's shapes (the target factor) would otherwise resume."""
  workdir = shutil.copytree(trained[0], tmp_path / "run")
  before = snapshot(workdir)
  out = run_main(workdir, "--config.num_train_steps=40", "--config.coreset.factor_target=1")
  assert out.returncode != 0
  assert "config.coreset.factor_target=8 there, 1 now" in out.stderr.strip().splitlines()[-1]
  assert snapshot(workdir) == before


def test_checkpoint_of_another_shape_is_refused_without_a_recorded_config(trained, tmp_path):
  workdir = shutil.copytree(trained[0], tmp_path / "run")
  os.remove(workdir / "config.json")
  before = snapshot(workdir)
  out = run_main(workdir, "--config.num_train_steps=40", "--config.mlp.width=8")
  assert out.returncode != 0
  assert "does not fit this config" in out.stderr
  assert snapshot(workdir) == before


def test_unknown_config_key_is_named(tmp_path):
  out = run_main(str(tmp_path), "--config.num_mode=64")
  assert out.returncode != 0
  assert "num_mode" in out.stderr.strip().splitlines()[-1]


def test_unwritable_workdir_is_named(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  out = run_main(str(blocker / "run"), "--config.num_train_steps=2")
  assert out.returncode != 0
  last = out.stderr.strip().splitlines()[-2:]
  assert any(f"--workdir='{blocker / 'run'}' cannot be created" in line for line in last), last
