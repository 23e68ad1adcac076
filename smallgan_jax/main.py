"""Command-line entry point: parses flags and runs `train.train_and_evaluate`.

  python -m smallgan_jax.main --config=configs/toy_mog.py --workdir=/tmp/toy_mog

Any config field can be overridden, e.g. `--config.num_modes=64 --config.num_train_steps=1000`.
A run over several processes (hosts) starts the same command in every process, with
`--distributed` (Cloud TPU slices and other clusters JAX detects) or with
`--coordinator_address`, `--num_processes` and `--process_id` (also read from the environment
variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID).
"""
import logging as py_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from smallgan_jax import distributed, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and plots "
                    "(local, or gs://... on Cloud TPU).")
flags.DEFINE_bool("distributed", False, "Join a multi-process run whose settings JAX detects "
                  "(Cloud TPU slices, SLURM, ...).")
flags.DEFINE_string("coordinator_address", os.environ.get("JAX_COORDINATOR_ADDRESS"),
                    "host:port of process 0, for a multi-process run outside detected clusters.")
flags.DEFINE_integer("num_processes", int(os.environ.get("JAX_NUM_PROCESSES", "1")),
                     "Number of processes of a multi-process run.")
flags.DEFINE_integer("process_id", int(os.environ.get("JAX_PROCESS_ID", "0")),
                     "This process's index in [0, num_processes).")
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with an unknown config key reported in one line, not a traceback."""
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
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_HideLibraryChatter())
  try:
    distributed.initialize(FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes,
                           FLAGS.process_id)
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except ValueError as e:
    raise app.UsageError(str(e)) from e


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
