#!/usr/bin/env python3
"""Cloud TPU launcher: create a TPU VM or slice, install the project, train, watch it, delete it.

  python3 launch/tpu.py create --accelerator=v4-32 --spot     # or --queued [--spot]
  python3 launch/tpu.py install                               # on every worker
  python3 launch/tpu.py train --config=configs/toy_mog.py --workdir=gs://BUCKET/run \
      [--heartbeat_timeout=SECONDS] [--initialization_timeout=SECONDS]
  python3 launch/tpu.py logs [--follow]; python3 launch/tpu.py status
  python3 launch/tpu.py stop; python3 launch/tpu.py delete

Settings come from flags or, failing those, the environment: --project (SMALLGAN_TPU_PROJECT),
--zone (SMALLGAN_TPU_ZONE), --name (SMALLGAN_TPU_NAME), --accelerator (SMALLGAN_TPU_ACCELERATOR,
default v4-8), --runtime (SMALLGAN_TPU_RUNTIME, default tpu-ubuntu2204-base) and --queued
(SMALLGAN_TPU_QUEUED=1: the TPU is a queued resource of the same name). --dry-run prints the
commands, shell-quoted, one per line, and runs nothing. Every command on the workers runs on all of
them (--worker=all), except `logs`, which reads worker 0 unless told otherwise.

Standard library only (no jax, no project import), so it runs wherever `gcloud` does.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from typing import Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REMOTE_DIR = "smallgan-jax"  # On each worker, relative to the home directory.
ARCHIVE = "smallgan-jax.tar.gz"
LOG = "train.log"
PID = "train.pid"
PYTHON = "python3.11"
APT = "sudo apt-get -o DPkg::Lock::Timeout=600"  # Waits for the unattended upgrades of a new VM.

# Flag: (environment variable, default); a None default means the setting is required.
SETTINGS = {
    "project": ("SMALLGAN_TPU_PROJECT", None),
    "zone": ("SMALLGAN_TPU_ZONE", None),
    "name": ("SMALLGAN_TPU_NAME", None),
    "accelerator": ("SMALLGAN_TPU_ACCELERATOR", "v4-8"),
    "runtime": ("SMALLGAN_TPU_RUNTIME", "tpu-ubuntu2204-base"),
}
QUEUED_ENV = "SMALLGAN_TPU_QUEUED"
# smallgan_jax.main's flags for how long the workers wait for each other, passed on by `train`.
TIMEOUTS = {
    "initialization_timeout": "seconds every worker waits for all to join (default 300)",
    "heartbeat_timeout": "seconds of silence after which a worker counts as dead and the run "
                         "ends on every worker (default 100)",
}

Command = list[str]


class UsageError(Exception):
  """A bad setting or argument, reported as one line."""


class _Parser(argparse.ArgumentParser):
  """An ArgumentParser whose errors are one line without the usage block, like UsageError's."""

  def error(self, message: str):
    self.exit(2, f"{self.prog}: error: {message}\n")


def _gcloud(args: argparse.Namespace, group: str, verb: str, *rest: str) -> Command:
  """`gcloud compute tpus GROUP VERB ...` in the run's project and zone."""
  return ["gcloud", "compute", "tpus", group, verb, *rest, f"--project={args.project}",
          f"--zone={args.zone}"]


def _on_workers(args: argparse.Namespace, script: str, worker: str = "all") -> Command:
  """Runs a shell command over ssh on the TPU's workers (all of them by default)."""
  return _gcloud(args, "tpu-vm", "ssh", args.name, f"--worker={worker}", f"--command={script}")


def multi_host(accelerator: str) -> bool:
  """Whether an accelerator type spans several hosts: every family's `-8` or smaller (v2-8, v4-8,
  v5litepod-8, v6e-8, ...) is one host, anything larger is a multi-host slice."""
  match = re.fullmatch(r"v\d+[a-z]*-(\d+)", accelerator)
  if not match:
    raise UsageError(f"--accelerator={accelerator}: expected a type such as v4-8 or v4-32")
  return int(match.group(1)) > 8


def jax_tpu_requirement() -> str:
  """`jax[tpu]==X`, X being the jax version requirements.txt pins, so the two cannot drift."""
  with open(os.path.join(ROOT, "requirements.txt")) as f:
    version = re.search(r"^jax==(\S+)", f.read(), re.MULTILINE).group(1)
  return f"jax[tpu]=={version}"


def local_archive(name: str) -> str:
  """Where `install` writes the git archive of the repository before copying it to the TPU."""
  return os.path.join(tempfile.gettempdir(), f"smallgan-jax-{name}.tar.gz")


def create(args: argparse.Namespace) -> list[Command]:
  """Creates a TPU VM or slice: on-demand, spot, or a queued resource whose node has its name."""
  spot = ["--spot"] if args.spot else []
  if args.queued:
    return [_gcloud(args, "queued-resources", "create", args.name, f"--node-id={args.name}",
                    f"--accelerator-type={args.accelerator}",
                    f"--runtime-version={args.runtime}", *spot)]
  return [_gcloud(args, "tpu-vm", "create", args.name, f"--accelerator-type={args.accelerator}",
                  f"--version={args.runtime}", *spot)]


def install(args: argparse.Namespace) -> list[Command]:
  """Copies git HEAD to every worker and installs it in a Python 3.11 venv there.

  The venv gets requirements.txt, then jax[tpu] of the same version. Python 3.11 comes from the
  deadsnakes PPA where the runtime lacks it. Running it again updates the code and keeps the venv.
  """
  archive = local_archive(args.name)
  setup_python = (f"{APT} update -q && {APT} install -y -q software-properties-common && "
                  f"sudo add-apt-repository -y ppa:deadsnakes/ppa && "
                  f"{APT} install -y -q {PYTHON} {PYTHON}-venv")
  script = " && ".join([
      f"{{ command -v {PYTHON} >/dev/null || {{ {setup_python}; }}; }}",
      f"mkdir -p {REMOTE_DIR}", f"tar -xzf {ARCHIVE} -C {REMOTE_DIR}", f"cd {REMOTE_DIR}",
      f"{{ test -d .venv || {PYTHON} -m venv .venv; }}",
      ".venv/bin/pip install -q -r requirements.txt",
      f".venv/bin/pip install -q -U {shlex.quote(jax_tpu_requirement())}",
  ])
  return [["git", "-C", ROOT, "archive", "--format=tar.gz", f"--output={archive}", "HEAD"],
          _gcloud(args, "tpu-vm", "scp", archive, f"{args.name}:{ARCHIVE}", "--worker=all"),
          _on_workers(args, script)]


def train(args: argparse.Namespace) -> list[Command]:
  """Starts the training command on every worker, detached, appending to train.log.

  It always passes --distributed: on one host JAX finds a single process, and on a slice whose
  --accelerator was left at a one-host default the workers still form one run. The timeouts go
  to smallgan_jax.main when given (its defaults otherwise).
  """
  if multi_host(args.accelerator) and not args.workdir.startswith("gs://"):
    raise UsageError(f"--workdir={args.workdir}: a multi-host slice ({args.accelerator}) needs a "
                     "gs:// workdir, or each worker would keep its own part of the checkpoints")
  bad = [a for a in args.overrides if not a.startswith("--config.")]
  if bad:
    raise UsageError(f"unrecognized arguments: {' '.join(bad)} "
                     "(train passes on --config.KEY=VALUE only)")
  timeouts = [f"--{name}={getattr(args, name)}" for name in TIMEOUTS
              if getattr(args, name) is not None]
  command = [".venv/bin/python", "-m", "smallgan_jax.main", f"--config={args.config}",
             f"--workdir={args.workdir}", *args.overrides, *timeouts, "--distributed"]
  script = (f"cd {REMOTE_DIR} && {{ setsid nohup {shlex.join(command)} >> {LOG} 2>&1 "
            f"< /dev/null & "
            f"echo $! > {PID}; }}")
  return [_on_workers(args, script)]


def logs(args: argparse.Namespace) -> list[Command]:
  """Shows the end of worker 0's train.log (--worker: another, or all); --follow keeps reading."""
  follow = " -F" if args.follow else ""
  return [_on_workers(args, f"tail -n {args.lines}{follow} {REMOTE_DIR}/{LOG}", args.worker)]


def status(args: argparse.Namespace) -> list[Command]:
  """Describes the TPU VM, or the queued resource (waiting, active, suspended: preempted)."""
  if args.queued:
    return [_gcloud(args, "queued-resources", "describe", args.name)]
  return [_gcloud(args, "tpu-vm", "describe", args.name)]


def stop(args: argparse.Namespace) -> list[Command]:
  """Sends SIGTERM to the training on every worker, as a preemption does.

  The run saves a checkpoint and exits cleanly; `train` with the same workdir resumes it.
  """
  return [_on_workers(args, f'kill -TERM "$(cat {REMOTE_DIR}/{PID})"')]


def delete(args: argparse.Namespace) -> list[Command]:
  """Deletes the TPU, or the queued resource together with its TPU, without asking."""
  if args.queued:
    return [_gcloud(args, "queued-resources", "delete", args.name, "--force", "--quiet")]
  return [_gcloud(args, "tpu-vm", "delete", args.name, "--quiet")]


COMMANDS: dict[str, Callable[[argparse.Namespace], list[Command]]] = {
    "create": create, "install": install, "train": train, "logs": logs, "status": status,
    "stop": stop, "delete": delete,
}


def _seconds(text: str) -> int:
  """An argparse type: a positive whole number of seconds."""
  if not text.isdigit() or int(text) < 1:
    raise argparse.ArgumentTypeError(f"{text!r}: expected a positive whole number of seconds")
  return int(text)


def _parser() -> _Parser:
  """The command line; setting flags default to their environment variables."""
  common = _Parser(add_help=False)
  for flag, (env, default) in SETTINGS.items():
    value = os.environ.get(env) or default
    common.add_argument(f"--{flag}", default=value, help=f"env {env}; now {value!r}")
  common.add_argument("--queued", action="store_true",
                      default=os.environ.get(QUEUED_ENV, "") in ("1", "true", "yes"),
                      help=f"the TPU is a queued resource (env {QUEUED_ENV}=1)")
  common.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
  parser = _Parser(prog="tpu.py", description=__doc__.split("\n")[0])
  sub = parser.add_subparsers(dest="command", required=True)
  for name, build in COMMANDS.items():
    cmd = sub.add_parser(name, parents=[common], help=build.__doc__.split("\n")[0])
    cmd.set_defaults(build=build)
  sub.choices["create"].add_argument("--spot", action="store_true", help="a spot TPU")
  sub.choices["train"].add_argument("--config", required=True, help="e.g. configs/toy_mog.py")
  sub.choices["train"].add_argument("--workdir", required=True, help="gs://BUCKET/PATH")
  for name, text in TIMEOUTS.items():
    sub.choices["train"].add_argument(f"--{name}", type=_seconds, help=text)
  sub.choices["logs"].add_argument("--worker", default="0", help="a worker index, or all")
  sub.choices["logs"].add_argument("--lines", type=int, default=50)
  sub.choices["logs"].add_argument("--follow", action="store_true")
  return parser


def plan(argv: list[str]) -> tuple[argparse.Namespace, list[Command]]:
  """Parses a command line and returns it with the commands it would run, in order."""
  args, extra = _parser().parse_known_args(argv)
  args.overrides = extra
  if extra and args.command != "train":
    raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
  for flag, (env, _) in SETTINGS.items():
    if not getattr(args, flag):
      raise UsageError(f"--{flag} is not set (flag --{flag}, or environment variable {env})")
  return args, args.build(args)


def _warn_if_uncommitted() -> None:
  """`install` copies HEAD only: say so when the working tree has changes it would leave out."""
  changes = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"], capture_output=True,
                           text=True, check=False).stdout
  if changes:
    print("tpu.py: note: uncommitted changes and untracked files are not installed (install "
          "copies git HEAD)", file=sys.stderr)


def main(argv: Optional[list[str]] = None) -> int:
  """Prints or runs the commands of a command line; returns the exit status of the first that
  fails, or 0."""
  try:
    args, commands = plan(sys.argv[1:] if argv is None else argv)
  except UsageError as e:
    print(f"tpu.py: error: {e}", file=sys.stderr)
    return 2
  if args.dry_run:
    print("\n".join(shlex.join(c) for c in commands))
    return 0
  if args.command == "install":
    _warn_if_uncommitted()
  for command in commands:
    print(f"+ {shlex.join(command)}", file=sys.stderr, flush=True)
    try:
      returncode = subprocess.call(command)
    except FileNotFoundError:
      print(f"tpu.py: error: {command[0]} not found on PATH", file=sys.stderr)
      return 127
    except KeyboardInterrupt:
      return 130
    if returncode:
      return returncode
  return 0


if __name__ == "__main__":
  sys.exit(main())
