"""Several devices and several processes: long runs, equal results, one checkpoint, layouts."""
import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from tests.main_test import CONFIG, ROOT, final_params, main_command, main_env, run_main, snapshot

STEPS = ["--config.num_train_steps=20", "--config.checkpoint_every_steps=10"]


def free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def run_processes(workdir, num_processes, devices_each, *flags, config=CONFIG):
  """The CLI in `num_processes` local processes joined by jax.distributed on localhost."""
  address = f"localhost:{free_port()}"
  procs = [subprocess.Popen(
      main_command(workdir, *flags, f"--coordinator_address={address}",
                   f"--num_processes={num_processes}", f"--process_id={i}", config=config),
      cwd=ROOT, env=main_env(devices_each), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for i in range(num_processes)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  return [err for _, err in outs]


def assert_close_states(a, b, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), atol=atol,
                               rtol=0)


def test_train_and_evaluate_runs_hundreds_of_steps_on_4_devices(tmp_path):
  """With no bound on the steps in flight, XLA:CPU's all-reduce deadlocked within a few hundred
  steps on 2-8 simulated devices."""
  code = textwrap.dedent(f"""
      import jax
      from tests.train_test import small_config
      from smallgan_jax import train
      assert jax.device_count() == 4
      config = small_config({{"num_train_steps": 400, "log_every_steps": 100,
                              "checkpoint_every_steps": 400, "eval_every_steps": 1000}})
      metrics = train.train_and_evaluate(config, {str(tmp_path)!r})
      print("OK", metrics["modes_recovered_pct"])
  """)
  out = subprocess.run([sys.executable, "-c", code], env=main_env(4), cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]
  assert final_params(str(tmp_path))[0] == 400


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
  """One process with 4 devices, 20 steps, checkpoints at 10 and 20."""
  workdir = tmp_path_factory.mktemp("one_process")
  out = run_main(workdir, *STEPS, devices=4)
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


def test_two_processes_train_as_one_process_with_four_devices(four_devices, tmp_path):
  """2 processes x 2 devices: the same run as 1 x 4, one checkpoint and one plot, and both
  processes resume from it.

  Equal up to float32 rounding, not bit for bit: across processes the gradient all-reduce runs
  through gloo, which sums the four devices' gradients in another order than XLA:CPU's in-process
  all-reduce (differences of ~1e-7 after 20 steps; a wrong batch split differs by far more).
  """
  errs = run_processes(tmp_path, 2, 2, "--config.num_train_steps=10",
                       "--config.checkpoint_every_steps=10")
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10"]
  assert "; samples in " in errs[0] and "; samples in " not in errs[1]  # Process 0 evaluates.
  assert_close_states(final_params(str(tmp_path))[1], final_params(str(four_devices), 10)[1],
                      atol=1e-6)

  errs = run_processes(tmp_path, 2, 2, *STEPS)
  assert all("Resuming from the checkpoint of step 10" in err for err in errs)
  step, resumed = final_params(str(tmp_path))
  assert step == 20
  assert_close_states(resumed, final_params(str(four_devices), 20)[1], atol=1e-6)


def test_resume_on_another_device_count_is_refused(four_devices, tmp_path):
  workdir = tmp_path / "run"
  subprocess.run(["cp", "-r", str(four_devices), str(workdir)], check=True)
  before = snapshot(workdir)
  out = run_main(workdir, "--config.num_train_steps=30", devices=2)
  assert out.returncode != 0
  last = out.stderr.strip().splitlines()[-2:]
  assert any("holds a run on 4 devices (1 process(es), cpu); this run has 2 devices" in line
             for line in last), last
  assert snapshot(workdir) == before


def test_global_prior_coreset_picks_the_same_latents_on_1_and_4_devices():
  code = textwrap.dedent("""
      import jax, numpy as np
      from jax.sharding import PartitionSpec as P
      from tests.train_test import small_config
      from smallgan_jax import distributed, train
      config = small_config({"coreset.prior_scope": "global", "n_dis": 2, "g_batch_size": 32})
      rng = jax.random.PRNGKey(7)
      one = train.global_latents(config, rng, 1, None)
      mesh = distributed.device_mesh()
      slices = (P(None, distributed.AXIS), P(distributed.AXIS))
      four = jax.jit(jax.shard_map(
          lambda r: train.global_latents(config, r, 4, distributed.AXIS), mesh=mesh,
          in_specs=P(), out_specs=slices, check_vma=False))(rng)
      for a, b in zip(one, four):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
      # Per-device core-sets differ with the device count.
      local = jax.jit(jax.shard_map(
          lambda r: train.draw_latents(config, jax.random.fold_in(r, jax.lax.axis_index("batch")),
                                       4, 8), mesh=mesh, in_specs=P(),
          out_specs=slices, check_vma=False))(rng)
      assert not np.array_equal(np.asarray(local[0]), np.asarray(one[0]))
      print("OK")
  """)
  out = subprocess.run([sys.executable, "-c", code], env=main_env(4), cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


@pytest.mark.parametrize("flags,env,message", [
    (["--num_processes=2"], {},
     "--num_processes=2 needs --coordinator_address=host:port (the address of process 0)"),
    (["--num_processes=2", "--process_id=2", "--coordinator_address=localhost:1"], {},
     "--process_id=2: expected an integer in [0, --num_processes=2)"),
    ([], {"JAX_NUM_PROCESSES": "two"}, "$JAX_NUM_PROCESSES='two': expected an integer"),
    (["--num_processes=2", "--coordinator_address=localhost"], {},
     "--coordinator_address='localhost': expected host:port, the address of process 0 with a port "
     "in [1, 65535]"),
])
def test_bad_multi_process_settings_are_one_line(tmp_path, flags, env, message):
  out = subprocess.run(main_command(tmp_path / "run", *flags), cwd=ROOT,
                       env={**main_env(), **env}, capture_output=True, text=True, timeout=120)
  assert out.returncode != 0
  assert out.stderr.strip().splitlines()[-1] == f"FATAL {message}"
  assert not (tmp_path / "run").exists()
