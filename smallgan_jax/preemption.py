"""Stopping at a step boundary when the scheduler asks (SIGTERM) or the user does (SIGINT).

Cloud TPU and most schedulers send SIGTERM before taking a machine away. A run that sees it saves
a checkpoint at the next step boundary and exits, so nothing since the last periodic checkpoint
is lost. With several processes the stop must happen at the same step everywhere: JAX's
preemption sync point (its coordination service catches SIGTERM on any host) agrees on it;
a single process needs no agreement and handles SIGINT (Ctrl-C) the same way.
"""
import signal
from typing import Optional

import jax
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Watcher:
  """A context manager that records the first stop signal; `should_stop(step)` is the check
  every process calls after each step."""

  def __init__(self):
    self.signal: Optional[int] = None
    self._previous = {}

  def _record(self, signum, frame):  # pylint: disable=unused-argument
    self.signal = self.signal or signum

  def __enter__(self) -> "Watcher":
    if jax.process_count() == 1:
      self._previous = {s: signal.signal(s, self._record) for s in SIGNALS}
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)

  def should_stop(self, step: int) -> bool:
    if jax.process_count() > 1 and multihost_utils.reached_preemption_sync_point(step):
      self.signal = signal.SIGTERM
    return self.signal is not None


class Stopped(Exception):
  """Raised after the run saved its checkpoint and stopped for a signal."""

  def __init__(self, signum: int, step: int, directory: str):
    self.exit_code = 128 + signum  # The shell's code for a process ended by that signal.
    super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; its "
                     f"checkpoint is in {directory}: run the same command again to resume")
