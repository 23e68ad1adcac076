"""Command-line entry point: parses flags and runs `train.train_and_evaluate`.

  python -m smallgan_jax.main --config=configs/toy_mog.py --workdir=/tmp/toy_mog

Any config field can be overridden, e.g. `--config.num_modes=64 --config.num_train_steps=1000`.
A run over several processes (hosts) starts the same command in every process, with
`--distributed` (Cloud TPU slices and other clusters JAX detects) or with
`--coordinator_address`, `--num_processes` and `--process_id` (also read from the environment
variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID). Such a process trains
in a child process that `watchdog.supervise` watches (see there why), and a process that fails
leaves at once (`watchdog.leave`), so that the others stop within the heartbeat timeout.
"""
import importlib.machinery
import logging as py_logging
import os
import sys
import types
from typing import Optional

from absl import app, flags, logging
import ml_collections
from ml_collections import config_flags

from smallgan_jax import watchdog

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and plots "
                    "(local, or gs://... on Cloud TPU).")
flags.DEFINE_bool("distributed", False, "Join a multi-process run whose settings JAX detects "
                  "(Cloud TPU slices, SLURM, ...).")
flags.DEFINE_string("coordinator_address", os.environ.get("JAX_COORDINATOR_ADDRESS"),
                    "host:port of process 0, for a multi-process run outside detected clusters.")
flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run "
                     "(default: $JAX_NUM_PROCESSES, else 1).")
flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes) "
                     "(default: $JAX_PROCESS_ID, else 0).")
# JAX's own defaults, kept for pods: workers started minutes apart (ssh to each worker of a large
# slice) still join, and a host busy for a minute (an upload to gs://) is not taken for dead,
# while a dead one costs the others under 2 minutes.
flags.DEFINE_integer("initialization_timeout", 300, "Seconds every process of a multi-process run "
                     "waits for all of them to join before it gives up.")
flags.DEFINE_integer("heartbeat_timeout", 100, "Seconds without a heartbeat after which a process "
                     "of a multi-process run counts as dead and the run ends on every process.")
flags.mark_flags_as_required(["config", "workdir"])
for _name in ("num_processes", "initialization_timeout", "heartbeat_timeout"):
  flags.register_validator(_name, lambda n: n is None or n >= 1, "expected a positive integer")

CONFIG_FILE = "a Python file whose get_config() returns an ml_collections.ConfigDict"


def _probe(argv: list[str]) -> Optional[flags.FlagValues]:
  """The values absl will give --config, --workdir and the multi-process flags in `argv`, read
  without loading the config (or jax); None if they do not parse (absl's own parsing then says
  so)."""
  probe = flags.FlagValues()
  flags.DEFINE_string("config", None, "", flag_values=probe)
  flags.DEFINE_string("workdir", None, "", flag_values=probe)
  flags.DEFINE_bool("distributed", False, "", flag_values=probe)
  flags.DEFINE_string("coordinator_address", FLAGS["coordinator_address"].default, "",
                      flag_values=probe)
  flags.DEFINE_integer("num_processes", None, "", flag_values=probe)
  flags.DEFINE_string("process_id", os.environ.get("JAX_PROCESS_ID"), "", flag_values=probe)
  flags.DEFINE_integer("initialization_timeout", FLAGS["initialization_timeout"].default, "",
                       flag_values=probe)
  try:
    probe(argv, known_only=True)
  except flags.Error:
    return None
  return probe


def config_argument(argv: list[str]) -> Optional[str]:
  """The value absl will give --config in `argv`, read without loading it; None if there is none
  (absl's own parsing then says so)."""
  probe = _probe(argv)
  return None if probe is None else probe.config


def multi_process(probe: flags.FlagValues) -> bool:
  """Whether flags (or the environment) ask for a multi-process run."""
  processes = probe.num_processes or os.environ.get("JAX_NUM_PROCESSES", "1")
  return probe.distributed or bool(probe.coordinator_address) or str(processes) != "1"


def join_failure(probe: flags.FlagValues) -> str:
  """What a multi-process run whose processes did not all join says to check."""
  where = (f"--coordinator_address={probe.coordinator_address}" if probe.coordinator_address
           else "the coordinator address JAX detected")
  return (f"the processes of the run did not all join within --initialization_timeout="
          f"{probe.initialization_timeout} s: check that every process started, and that process "
          f"0 runs at {where}, reachable from here")


def checkpoints_dir(workdir: Optional[str]) -> str:
  """Where the run keeps its checkpoints, as `checkpointing` names it."""
  if not workdir:
    return "the workdir's checkpoints/"
  return os.path.join(workdir if "://" in workdir else os.path.abspath(workdir), "checkpoints")


def config_file_problem(value: str) -> Optional[str]:
  """What keeps --config=`value` from giving a config, in a few words; None when nothing does.

  config_flags defers a missing file to a traceback at the config's first use and lets an import
  error or a file without get_config() escape as a traceback (or as an "unknown config key").
  Config files are small and pure, so loading one here, before absl loads it again, costs nothing.
  """
  path, *args = value.split(":", 1)  # As config_flags: what follows a colon goes to get_config.
  if os.path.isdir(path):
    return "is a directory"
  if not os.path.isfile(path):
    return "does not exist"
  loader = importlib.machinery.SourceFileLoader("config", path)
  module = types.ModuleType(loader.name)
  module.__file__ = path
  try:
    loader.exec_module(module)
    if not hasattr(module, "get_config"):
      return "defines no get_config()"
    config = module.get_config(*args)
  except Exception as e:  # pylint: disable=broad-except  # Whatever the file raises, in one line.
    return f"raises {type(e).__name__}: {' '.join(str(e).split())}"
  if not isinstance(config, ml_collections.ConfigDict):
    return f"has a get_config() returning {type(config).__name__}"
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad config file or an unknown config key reported in one line,
  not a traceback."""
  value = config_argument(argv)
  problem = None if value is None else config_file_problem(value)
  if problem:
    sys.exit(f"FATAL Flags parsing error: --config={value!r} {problem}; expected {CONFIG_FILE}")
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    detail = " ".join(str(e).replace("\\n", " ").replace("\\'", "").strip("'\"").split())
    sys.exit(f"FATAL Flags parsing error: unknown config key {detail}")


class _HideLibraryChatter(py_logging.Filter):
  """Drops orbax's per-save INFO lines, which would bury the training progress, and the
  tracebacks of its error lines (a save that fails ends the run with a line of its own)."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    if "/orbax/" not in record.pathname:
      return True
    record.exc_info = record.exc_text = None
    return record.levelno > py_logging.INFO


def failure_line(error: BaseException, runtime: bool) -> str:
  """The last line of a process of a multi-process run that failed with `error`: a bug in this
  process, or an error of JAX's `runtime` (a collective, the coordination service), most often
  because another process died."""
  cause = " ".join(f"{type(error).__name__}: {error}".split())[:300]
  resume = ("run the same command again (on every process) to resume from the newest checkpoint "
            f"in {checkpoints_dir(FLAGS.workdir)}")
  if runtime:
    return (f"ERROR the runtime failed ({cause}): most likely another process of the run died "
            f"or stopped answering (see its log; this one's traceback is in "
            f"{os.environ.get(watchdog.STDERR_LOG_ENV, 'its stderr')}); this one ended at once. "
            f"Then {resume}")
  return (f"ERROR this process failed ({cause}; the traceback is above) and ended at once, so "
          f"that the others end within the heartbeat timeout. Once the cause is fixed, {resume}")


def end(message: str, joined: bool) -> None:
  """Exits with `message`, at once when the process is part of a multi-process run."""
  if joined:
    watchdog.leave(message, 1)
  sys.exit(message)


def main(argv):
  # Imported here, not at the top, so that the supervising parent of a multi-process run (`run`)
  # never loads jax. pylint: disable=g-import-not-at-top
  import jax
  from smallgan_jax import checkpointing, distributed, preemption, train
  from smallgan_jax.features import inception
  if len(argv) > 1:
    sys.exit(f"FATAL Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_HideLibraryChatter())
  try:
    distributed.initialize(FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes,
                           FLAGS.process_id, FLAGS.initialization_timeout, FLAGS.heartbeat_timeout)
    watchdog.report_joined()
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (ValueError, inception.MissingWeightsError) as e:  # Bad input: one line, no usage.
    end(f"FATAL {e}", distributed.joined())
  except train.Diverged as e:
    end(f"ERROR {e}", distributed.joined())
  except checkpointing.SaveError as e:  # Leaves orbax's failed writer threads behind, unheard.
    watchdog.leave(f"ERROR {e}", 1)
  except preemption.Stopped as e:
    logging.warning("%s", e)
    sys.exit(e.exit_code)
  except SystemExit:
    raise
  except BaseException as e:  # pylint: disable=broad-except  # A bug, Ctrl-C, a lost peer.
    if not distributed.joined():
      raise
    runtime = isinstance(e, jax.errors.JaxRuntimeError)
    logging.exception(watchdog.RUNTIME_FAILED if runtime else "This process failed:")
    watchdog.leave(failure_line(e, runtime), 1)


def run() -> None:
  """The command. A process of a multi-process run trains in a child it supervises."""
  probe = _probe(sys.argv)
  if probe is not None and multi_process(probe) and not watchdog.supervised():
    sys.exit(watchdog.supervise(checkpoints_dir(probe.workdir), join_failure(probe),
                                probe.workdir, probe.process_id))
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
