"""Bad days: preemption signals, divergence, broken checkpoints and run records, URL workdirs."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

import jax
import ml_collections
import numpy as np
import pytest

from smallgan_jax import checkpointing, preemption
from tests.main_test import ROOT, final_params, main_command, main_env, run_main, snapshot


def assert_same_states(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """Runs of 20 and 30 steps, checkpoints every 10: the references a resumed run must equal."""
  runs = {}
  for steps in (20, 30):
    workdir = tmp_path_factory.mktemp(f"straight{steps}")
    out = run_main(workdir, f"--config.num_train_steps={steps}",
                   "--config.checkpoint_every_steps=10")
    assert out.returncode == 0, out.stderr[-3000:]
    runs[steps] = workdir
  return runs


def test_sigterm_saves_the_step_reached_and_the_resumed_run_is_bit_identical(tmp_path):
  workdir = tmp_path / "run"
  proc = subprocess.Popen(main_command(workdir, "--config.num_train_steps=1000000",
                                       "--config.checkpoint_every_steps=50"),
                          cwd=ROOT, env=main_env(), stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 120
  while not (workdir / "checkpoints" / "50").exists() and time.time() < deadline:
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  err = proc.communicate(timeout=120)[1]
  assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
  last = err.strip().splitlines()[-1]
  assert "stopped by SIGTERM after step" in last, last
  reached = int(last.split("after step ")[1].split(";")[0])
  assert reached > 50 and final_params(str(workdir))[0] == reached

  resumed = run_main(workdir, f"--config.num_train_steps={reached + 10}")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"Resuming from the checkpoint of step {reached}" in resumed.stderr
  straight = run_main(tmp_path / "straight", f"--config.num_train_steps={reached + 10}")
  assert straight.returncode == 0, straight.stderr[-3000:]
  assert_same_states(final_params(str(workdir))[1], final_params(str(tmp_path / "straight"))[1])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_watcher_stops_at_the_next_boundary_and_restores_the_handlers(signum):
  before = signal.getsignal(signum)
  with preemption.Watcher() as watcher:
    assert not watcher.should_stop(1)
    os.kill(os.getpid(), signum)
    assert watcher.should_stop(2) and watcher.signal == signum
  assert signal.getsignal(signum) == before


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(straight, tmp_path):
  """A learning rate beyond float32 on top of a good checkpoint (the run record is removed so the
  changed rate is accepted): the run stops at the first non-finite step, names the checkpoint
  it came from, and saves nothing after it."""
  workdir = shutil.copytree(straight[20], tmp_path / "run")
  os.remove(workdir / "config.json")
  before = snapshot(workdir / "checkpoints")
  out = run_main(workdir, "--config.num_train_steps=40", "--config.optim.g_lr=1e39",
                 "--config.optim.d_lr=1e39", "--config.checkpoint_every_steps=1")
  assert out.returncode != 0
  last = out.stderr.strip().splitlines()[-1]
  assert "training diverged at step 21: a loss or parameter is not finite" in last, last
  assert f"the last good checkpoint is step 20 in {workdir / 'checkpoints'}" in last, last
  assert snapshot(workdir / "checkpoints") == before


def truncate_data(step_dir):
  for f in step_dir.rglob("*"):
    if f.is_file() and f.parent.name == "d":
      f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def drop_metadata(step_dir):
  (step_dir / "default" / "_METADATA").unlink()


@pytest.mark.parametrize("damage", [truncate_data, drop_metadata])
def test_a_broken_latest_checkpoint_falls_back_to_the_one_before(straight, tmp_path, damage):
  workdir = shutil.copytree(straight[20], tmp_path / "run")
  damage(workdir / "checkpoints" / "20")
  out = run_main(workdir, "--config.num_train_steps=20")
  assert out.returncode == 0, out.stderr[-3000:]
  assert "The checkpoint of step 20 is broken" in out.stderr
  assert "Resuming from the checkpoint of step 10" in out.stderr
  assert (workdir / checkpointing.BROKEN_DIR / "20").is_dir()  # Kept aside, not deleted.
  assert_same_states(final_params(str(workdir))[1], final_params(str(straight[20]))[1])


def test_a_killed_save_is_set_aside_with_a_warning(straight, tmp_path):
  workdir = shutil.copytree(straight[20], tmp_path / "run")
  partial = workdir / "checkpoints" / "30.orbax-checkpoint-tmp-1795700000000000"
  shutil.copytree(workdir / "checkpoints" / "20", partial)
  truncate_data(partial)
  out = run_main(workdir, "--config.num_train_steps=30")
  assert out.returncode == 0, out.stderr[-3000:]
  assert "The save of step 30 did not finish" in out.stderr
  assert "Resuming from the checkpoint of step 20" in out.stderr
  assert_same_states(final_params(str(workdir))[1], final_params(str(straight[30]))[1])


def small_record_config():
  return ml_collections.ConfigDict({"seed": 0, "num_train_steps": 10})


def test_run_record_is_written_atomically(tmp_path, monkeypatch):
  """A write killed before its rename leaves the previous record whole, and a later start
  neither trips over the leftover nor refuses the workdir."""
  layout = checkpointing.device_layout()
  checkpointing.save_record(tmp_path, small_record_config(), layout)
  before = (tmp_path / "config.json").read_bytes()

  def killed(*args):
    raise KeyboardInterrupt
  monkeypatch.setattr(type(checkpointing.prepare_workdir(str(tmp_path))), "replace", killed)
  changed = small_record_config()
  changed.num_train_steps = 20
  with pytest.raises(KeyboardInterrupt):
    checkpointing.save_record(checkpointing.prepare_workdir(str(tmp_path)), changed, layout)
  monkeypatch.undo()
  assert (tmp_path / "config.json").read_bytes() == before
  checkpointing.check_same_run(checkpointing.prepare_workdir(str(tmp_path)), changed, layout)
  assert json.loads((tmp_path / "config.json").read_text())["num_train_steps"] == 10


def test_unreadable_run_record_is_named(tmp_path):
  (tmp_path / "config.json").write_text('{"seed": 0, "num_tr')
  with pytest.raises(ValueError, match="config.json is not a readable run record"):
    checkpointing.check_same_run(pathlib.Path(tmp_path), small_record_config(),
                                 checkpointing.device_layout())


def test_a_url_workdir_stays_a_url():
  path = checkpointing.workdir_path("gs://bucket/runs/toy")
  assert str(path) == "gs://bucket/runs/toy"
  assert str(path / "checkpoints") == "gs://bucket/runs/toy/checkpoints"
  assert str(checkpointing.workdir_path("runs/toy")) == os.path.join(os.getcwd(), "runs/toy")
