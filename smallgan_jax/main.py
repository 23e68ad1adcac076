"""Command-line entry point: parses flags and runs `train.train_and_evaluate`.

  python -m smallgan_jax.main --config=configs/toy_mog.py --workdir=/tmp/toy_mog

Any config field can be overridden, e.g. `--config.num_modes=64 --config.num_train_steps=1000`.
A run over several processes (hosts) starts the same command in every process, with
`--distributed` (Cloud TPU slices and other clusters JAX detects) or with
`--coordinator_address`, `--num_processes` and `--process_id` (also read from the environment
variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID).
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

from smallgan_jax import distributed, preemption, train
from smallgan_jax.metrics import inception

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
flags.mark_flags_as_required(["config", "workdir"])
flags.register_validator("num_processes", lambda n: n is None or n >= 1,
                         "expected a positive integer")

CONFIG_FILE = "a Python file whose get_config() returns an ml_collections.ConfigDict"


def config_argument(argv: list[str]) -> Optional[str]:
  """The value absl will give --config in `argv`, read without loading it; None if there is none
  (absl's own parsing then says so)."""
  probe = flags.FlagValues()
  flags.DEFINE_string("config", None, "", flag_values=probe)
  try:
    probe(argv, known_only=True)
  except flags.Error:
    return None
  return probe.config


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
  """Drops orbax's per-save INFO lines, which would bury the training progress."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno > py_logging.INFO or "/orbax/" not in record.pathname


def main(argv):
  if len(argv) > 1:
    sys.exit(f"FATAL Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_HideLibraryChatter())
  try:
    distributed.initialize(FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes,
                           FLAGS.process_id)
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (ValueError, inception.MissingWeightsError) as e:  # Bad input: one line, no usage.
    sys.exit(f"FATAL {e}")
  except train.Diverged as e:
    sys.exit(f"ERROR {e}")
  except preemption.Stopped as e:
    logging.warning("%s", e)
    sys.exit(e.exit_code)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
