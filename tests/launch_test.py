"""launch/tpu.py against a fake gcloud that records its arguments, and against the real one's
argument parsing and --help text where the Google Cloud CLI is installed."""
import concurrent.futures
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "launch", "tpu.py")
SETTINGS = ["--project=my-proj", "--zone=us-central2-b", "--name=my-tpu"]
WHERE = ["--project=my-proj", "--zone=us-central2-b"]
FAKE_GCLOUD = """#!{python}
import json, os, sys
with open(os.environ["FAKE_GCLOUD_LOG"], "a") as f:
  f.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit(int(os.environ.get("FAKE_GCLOUD_RC", "0")))
"""


def load_tpu():
  spec = importlib.util.spec_from_file_location("tpu", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


tpu = load_tpu()


@pytest.fixture
def launch(tmp_path):
  """Runs tpu.py with a fake gcloud first on PATH; returns (process, the gcloud argvs it ran)."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  fake = bin_dir / "gcloud"
  fake.write_text(FAKE_GCLOUD.format(python=sys.executable))
  fake.chmod(0o755)
  log = tmp_path / "gcloud_calls.jsonl"

  def run(*argv, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("SMALLGAN_TPU_")}
    base.update(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE_GCLOUD_LOG=str(log),
                TMPDIR=str(tmp_path))
    log.unlink(missing_ok=True)
    out = subprocess.run([sys.executable, SCRIPT, *argv], env={**base, **env}, capture_output=True,
                         text=True, timeout=60, check=False)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return out, calls

  return run


def worker_script(call):
  """The --command of a recorded `tpu-vm ssh` call."""
  (command,) = [a[len("--command="):] for a in call if a.startswith("--command=")]
  return command


def test_create_on_demand_slice(launch):
  out, calls = launch("create", *SETTINGS, "--accelerator=v4-32")
  assert out.returncode == 0, out.stderr
  assert calls == [["compute", "tpus", "tpu-vm", "create", "my-tpu", "--accelerator-type=v4-32",
                    "--version=tpu-ubuntu2204-base", *WHERE]]


def test_create_spot_and_queued(launch):
  _, spot = launch("create", *SETTINGS, "--spot")
  assert spot[0][:5] == ["compute", "tpus", "tpu-vm", "create", "my-tpu"]
  assert "--spot" in spot[0]
  _, queued = launch("create", *SETTINGS, "--queued", "--spot", "--runtime=v2-alpha-tpuv5")
  assert queued == [["compute", "tpus", "queued-resources", "create", "my-tpu",
                     "--node-id=my-tpu", "--accelerator-type=v4-8",
                     "--runtime-version=v2-alpha-tpuv5", "--spot", *WHERE]]
  _, on_demand_queue = launch("create", *SETTINGS, "--queued")
  assert "--spot" not in on_demand_queue[0]


def test_settings_come_from_the_environment_and_flags_win(launch):
  env = dict(SMALLGAN_TPU_PROJECT="env-proj", SMALLGAN_TPU_ZONE="europe-west4-a",
             SMALLGAN_TPU_NAME="env-tpu", SMALLGAN_TPU_ACCELERATOR="v5litepod-16",
             SMALLGAN_TPU_RUNTIME="v2-alpha-tpuv5-lite", SMALLGAN_TPU_QUEUED="1")
  _, calls = launch("create", **env)
  assert calls == [["compute", "tpus", "queued-resources", "create", "env-tpu", "--node-id=env-tpu",
                    "--accelerator-type=v5litepod-16", "--runtime-version=v2-alpha-tpuv5-lite",
                    "--project=env-proj", "--zone=europe-west4-a"]]
  _, calls = launch("delete", "--zone=us-east5-a", **env)
  assert calls == [["compute", "tpus", "queued-resources", "delete", "env-tpu", "--force",
                    "--quiet", "--project=env-proj", "--zone=us-east5-a"]]


def test_install_copies_head_to_every_worker_and_installs_jax_tpu(launch, tmp_path):
  out, calls = launch("install", *SETTINGS)
  assert out.returncode == 0, out.stderr
  archive = str(tmp_path / "smallgan-jax-my-tpu.tar.gz")
  with tarfile.open(archive) as tar:
    assert {"requirements.txt", "smallgan_jax/main.py", "configs/toy_mog.py"} <= set(tar.getnames())
  scp, ssh = calls
  assert scp == ["compute", "tpus", "tpu-vm", "scp", archive, "my-tpu:smallgan-jax.tar.gz",
                 "--worker=all", *WHERE]
  assert ssh[:6] == ["compute", "tpus", "tpu-vm", "ssh", "my-tpu", "--worker=all"]
  assert ssh[-2:] == WHERE
  steps = worker_script(ssh).split(" && ")
  version = re.search(r"^jax==(\S+)", open(os.path.join(ROOT, "requirements.txt")).read(), re.M)
  assert steps[-5:] == [
      "tar -xzf smallgan-jax.tar.gz -C smallgan-jax", "cd smallgan-jax",
      "{ test -d .venv || python3.11 -m venv .venv; }",
      ".venv/bin/pip install -q -r requirements.txt",
      f".venv/bin/pip install -q -U 'jax[tpu]=={version.group(1)}'"]


def test_train_starts_the_same_detached_command_on_every_worker(launch):
  out, calls = launch("train", *SETTINGS, "--accelerator=v4-32", "--config=configs/toy_mog.py",
                      "--workdir=gs://my-bucket/runs/mog 1", "--config.num_train_steps=1000")
  assert out.returncode == 0, out.stderr
  (call,) = calls
  assert call[:6] == ["compute", "tpus", "tpu-vm", "ssh", "my-tpu", "--worker=all"]
  assert call[-2:] == WHERE
  script = worker_script(call)
  assert script == (
      "cd smallgan-jax && { setsid nohup .venv/bin/python -m smallgan_jax.main "
      "--config=configs/toy_mog.py '--workdir=gs://my-bucket/runs/mog 1' "
      "--config.num_train_steps=1000 --distributed >> train.log 2>&1 < /dev/null & "
      "echo $! > train.pid; }")
  words = shlex.split(script)
  main = words[words.index("nohup") + 1:words.index(">>")]
  assert main == [".venv/bin/python", "-m", "smallgan_jax.main", "--config=configs/toy_mog.py",
                  "--workdir=gs://my-bucket/runs/mog 1", "--config.num_train_steps=1000",
                  "--distributed"]


def test_train_passes_on_the_timeouts_a_pod_waits_with(launch):
  _, calls = launch("train", *SETTINGS, "--config=configs/toy_mog.py", "--workdir=gs://b/r",
                    "--heartbeat_timeout=30", "--initialization_timeout=900",
                    "--config.num_train_steps=10")
  words = shlex.split(worker_script(calls[0]))
  assert words[words.index("nohup") + 1:words.index(">>")] == [
      ".venv/bin/python", "-m", "smallgan_jax.main", "--config=configs/toy_mog.py",
      "--workdir=gs://b/r", "--config.num_train_steps=10", "--initialization_timeout=900",
      "--heartbeat_timeout=30", "--distributed"]


def test_logs_status_stop_and_delete(launch):
  _, calls = launch("logs", *SETTINGS)
  assert calls == [["compute", "tpus", "tpu-vm", "ssh", "my-tpu", "--worker=0",
                    "--command=tail -n 50 smallgan-jax/train.log", *WHERE]]
  _, calls = launch("logs", *SETTINGS, "--worker=all", "--lines=5", "--follow")
  assert calls[0][5:7] == ["--worker=all", "--command=tail -n 5 -F smallgan-jax/train.log"]
  _, calls = launch("status", *SETTINGS)
  assert calls == [["compute", "tpus", "tpu-vm", "describe", "my-tpu", *WHERE]]
  _, calls = launch("status", *SETTINGS, "--queued")
  assert calls == [["compute", "tpus", "queued-resources", "describe", "my-tpu", *WHERE]]
  _, calls = launch("stop", *SETTINGS)
  assert calls == [["compute", "tpus", "tpu-vm", "ssh", "my-tpu", "--worker=all",
                    '--command=kill -TERM "$(cat smallgan-jax/train.pid)"', *WHERE]]
  _, calls = launch("delete", *SETTINGS)
  assert calls == [["compute", "tpus", "tpu-vm", "delete", "my-tpu", "--quiet", *WHERE]]


def test_dry_run_prints_the_commands_and_runs_nothing(launch, tmp_path, monkeypatch):
  argv = ["install", *SETTINGS, "--dry-run"]
  out, calls = launch(*argv)
  assert out.returncode == 0 and not calls
  assert not list(tmp_path.glob("*.tar.gz"))
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  assert [shlex.split(line) for line in out.stdout.splitlines()] == tpu.plan(argv)[1]
  out, calls = launch("create", *SETTINGS, "--spot", "--dry-run")
  assert not calls
  assert out.stdout == ("gcloud compute tpus tpu-vm create my-tpu --accelerator-type=v4-8 "
                        "--version=tpu-ubuntu2204-base --spot --project=my-proj "
                        "--zone=us-central2-b\n")


def test_a_failing_command_stops_the_rest(launch):
  out, calls = launch("install", *SETTINGS, FAKE_GCLOUD_RC="3")
  assert out.returncode == 3
  assert [c[3] for c in calls] == ["scp"]


@pytest.mark.parametrize("argv, named", [
    (["create", "--project=p", "--name=n"], "SMALLGAN_TPU_ZONE"),
    (["delete", "--zone=z", "--name=n"], "SMALLGAN_TPU_PROJECT"),
    (["status", "--project=p", "--zone=z"], "SMALLGAN_TPU_NAME"),
    (["frobnicate", *SETTINGS], "'frobnicate'"),
    (["train", *SETTINGS, "--accelerator=v4-32", "--config=configs/toy_mog.py",
      "--workdir=/tmp/run"], "--workdir=/tmp/run"),
    (["train", *SETTINGS, "--accelerator=tpu7", "--config=configs/toy_mog.py",
      "--workdir=gs://b/r"], "--accelerator=tpu7"),
    (["train", *SETTINGS, "--config=configs/toy_mog.py"], "--workdir"),
    (["train", *SETTINGS, "--config=configs/toy_mog.py", "--workdir=gs://b/r", "--steps=3"],
     "--steps=3"),
    (["create", *SETTINGS, "--workdir=gs://b/r"], "--workdir=gs://b/r"),
    (["train", *SETTINGS, "--config=configs/toy_mog.py", "--workdir=gs://b/r",
      "--heartbeat_timeout=0"], "--heartbeat_timeout: '0': expected a positive whole number"),
    (["train", *SETTINGS, "--config=configs/toy_mog.py", "--workdir=gs://b/r",
      "--initialization_timeout=5m"], "--initialization_timeout: '5m': expected a positive"),
])
def test_bad_input_is_one_line_naming_it(launch, argv, named):
  out, calls = launch(*argv)
  assert out.returncode != 0
  assert not calls and not out.stdout
  assert len(out.stderr.splitlines()) == 1 and named in out.stderr, out.stderr


def test_single_host_accepts_a_local_workdir(launch):
  out, calls = launch("train", *SETTINGS, "--config=configs/toy_mog.py", "--workdir=/tmp/run")
  assert out.returncode == 0, out.stderr
  assert "--workdir=/tmp/run" in worker_script(calls[0])


# Every option of every subcommand, so that each flag the script can pass to gcloud is checked.
VARIANTS = [
    ["create"], ["create", "--spot"], ["create", "--queued"], ["create", "--queued", "--spot"],
    ["install"],
    ["train", "--accelerator=v4-32", "--config=configs/toy_mog.py", "--workdir=gs://b/r",
     "--config.seed=1"],
    ["logs"], ["logs", "--worker=all", "--follow"],
    ["status"], ["status", "--queued"],
    ["stop"],
    ["delete"], ["delete", "--queued"],
]


def gcloud_commands():
  """The gcloud argvs of every variant, after checking the variants cover every subcommand."""
  assert {v[0] for v in VARIANTS} == set(tpu.COMMANDS)
  commands = [c for v in VARIANTS for c in tpu.plan([*v, *SETTINGS])[1] if c[0] == "gcloud"]
  assert all(c[1:3] == ["compute", "tpus"] for c in commands)
  return commands


def real_gcloud(argv, tmp_dir):
  """Runs the installed gcloud offline, without prompts, with a fresh config and home under
  tmp_dir (one per call: calls run in parallel)."""
  home = tempfile.mkdtemp(dir=tmp_dir)
  env = dict(os.environ, CLOUDSDK_CONFIG=os.path.join(home, "gcloud"), HOME=home,
             CLOUDSDK_CORE_DISABLE_PROMPTS="1", CLOUDSDK_CORE_CHECK_GCE_METADATA="false",
             CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="1",
             CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="1")
  return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def in_parallel(fn, items):
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    return list(pool.map(fn, items))


needs_gcloud = pytest.mark.skipif(shutil.which("gcloud") is None, reason="no gcloud on PATH")


@needs_gcloud
def test_every_flag_is_in_the_subcommands_gcloud_help(tmp_path):
  commands = gcloud_commands()
  subcommands = sorted({tuple(c[:5]) for c in commands})
  helps = in_parallel(lambda s: real_gcloud([*s, "--help"], tmp_path), subcommands)
  help_text = {}
  for subcommand, out in zip(subcommands, helps):
    assert out.returncode == 0, out.stderr
    help_text[subcommand] = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout)
  for command in commands:
    for flag in {a.split("=")[0] for a in command if a.startswith("--")}:
      assert re.search(rf"(?<![\w-]){flag}(?![\w-])", help_text[tuple(command[:5])]), (
          f"{flag} is not in `{' '.join(command[:5])} --help`")


@needs_gcloud
def test_gcloud_parses_every_command_up_to_authentication(tmp_path):
  """With no account, gcloud stops after parsing the arguments: a bad flag, value or combination
  fails earlier (exit 2, 'unrecognized arguments' or 'argument --x: ...')."""
  commands = gcloud_commands()
  outs = in_parallel(lambda c: real_gcloud(c, tmp_path), commands)
  for command, out in zip(commands, outs):
    assert out.returncode == 1 and "do not currently have an active account" in out.stderr, (
        shlex.join(command), out.stderr)
