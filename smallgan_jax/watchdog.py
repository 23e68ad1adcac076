"""Watching a run from outside its training loop: a step that never finishes, and a training
process that dies.

Both would otherwise cost a pod its time or bury the cause: a process that hangs (alive, its step
never done) holds every other process in the collective that waits for it, forever; and when a
process of a multi-process run dies, JAX's runtime aborts the others in C++ (a check-failure
stack trace, then Python's "Fatal Python error: Aborted" with every thread's stack), which no
Python code in that process can catch.

- `Watchdog` ends the process, in one line, when no training step finishes for a set time.
- `supervise` runs a multi-process run's training in a child process and, when the child dies by
  a signal, prints the one line the child could not: what ended it and how to resume. The line
  comes from a parent process of the CLI itself, not from the launch script, so that every way
  of starting the processes (launch/tpu.py, SLURM, by hand, the tests) gets it.

Standard library only: the supervising parent never loads jax.
"""
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Optional

# The exit status of a process the watchdog ends (that of coreutils' `timeout`).
EXIT_HUNG = 124
# Set in the child (so that it does not supervise too) to the pipe on which it reports joining.
SUPERVISED_ENV = "SMALLGAN_JAX_SUPERVISED"
JOINED = b"joined"
# The signals the parent passes on, and as what: in a multi-process run only SIGTERM makes every
# process stop at the same step (JAX's preemption sync point listens for it alone), so Ctrl-C
# stops the run as SIGTERM does.
FORWARDED = {signal.SIGTERM: signal.SIGTERM, signal.SIGINT: signal.SIGTERM}
_PR_SET_PDEATHSIG = 1  # prctl(2)

CAUSES = {
    signal.SIGABRT: "JAX aborts a process when another process of the run died or stopped "
                    "answering, or when the coordinator is gone: the lines above name it",
    signal.SIGKILL: "killed by hand, or by the kernel when out of memory",
}


def leave(message: str, code: int) -> None:
  """Prints `message` as the last line and ends the process at once, without Python's exit
  handlers or the threads still running.

  For a process that must not linger: in a multi-process run JAX's exit handler waits at a
  shutdown barrier for every process (up to 5 minutes) while the others wait for this one in a
  collective (without its heartbeat they end within the heartbeat timeout instead); after a
  failed save, orbax's writer threads would print their own failures after the line. Whatever
  the other threads log or raise from here on goes nowhere (a disk-full save's writer thread
  once printed its traceback between the line and the exit, and once its last line after it,
  seen in tests/pod_faults_test.py). The line starts after a newline of its own: a write that
  the redirection cut off (tensorstore's threads print a burst of tracebacks after a failed
  save) may have left its line unfinished, and the user's line must not be glued to it.
  """
  logging.disable(logging.CRITICAL)
  threading.excepthook = lambda args: None
  sys.stdout.flush()
  sys.stderr.flush()
  # Every later write to file descriptors 1 and 2 (Python's streams, a thread already printing a
  # traceback, C code) goes to /dev/null; the line goes to a copy of 2.
  err = os.dup(2)
  null = os.open(os.devnull, os.O_WRONLY)
  os.dup2(null, 1)
  os.dup2(null, 2)
  os.write(err, f"\n{message}\n".encode())
  os._exit(code)  # pylint: disable=protected-access


class Watchdog:
  """A context manager whose thread ends the process when no training step finishes (no `step`
  call) for `timeout_secs` seconds; 0 turns it off.

  The clock starts at step `start_step`: the host dispatches steps ahead of the devices, so the
  first steps' calls come before the first step has run, and the first step may take minutes
  (its compilation; its first collectives connect the processes). The time must exceed anything
  else between two steps: an evaluation, a checkpoint save. The thread cannot raise in the main
  thread, which may be blocked in a collective outside Python, so it leaves the process (`leave`).
  """

  def __init__(self, timeout_secs: float, checkpoints: str, start_step: int):
    self.timeout_secs = timeout_secs
    self.checkpoints = checkpoints
    self.start_step = start_step
    self._last: Optional[tuple[int, float]] = None  # The newest step reached, and when.
    self._done = threading.Event()
    self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

  def __enter__(self) -> "Watchdog":
    if self.timeout_secs > 0:
      self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._done.set()

  def step(self, step: int) -> None:
    """Records that the training loop reached `step` (the loop calls it once a step)."""
    if step >= self.start_step:
      self._last = (step, time.monotonic())

  def _watch(self) -> None:
    while not self._done.wait(min(1.0, self.timeout_secs / 4)):
      if self._last and time.monotonic() - self._last[1] > self.timeout_secs:
        leave(f"ERROR no training step finished for {self.timeout_secs:g} s "
              f"(config.watchdog_timeout_secs; the last one started was step {self._last[0]}): "
              "this process, or another of the run that it waits for, hangs; ended it. Run the "
              "same command again (on every process) to resume from the newest checkpoint in "
              f"{self.checkpoints}", EXIT_HUNG)


def supervised() -> bool:
  """Whether this process is the training child of `supervise`."""
  return SUPERVISED_ENV in os.environ


def report_joined() -> None:
  """Tells the supervising parent, if any, that this process joined the run: an abort before it
  is a failure to join, not a death of another process."""
  fd = os.environ.pop(SUPERVISED_ENV, None)
  if fd is not None:
    os.write(int(fd), JOINED)
    os.close(int(fd))


def _die_with_parent() -> None:
  """In the child before it runs: the kernel sends it SIGKILL when the parent dies (Linux), so a
  killed worker does not leave its training running. Elsewhere the child may outlive it."""
  try:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
  except (OSError, AttributeError):
    pass


def death_message(signum: int, joined: bool, checkpoints: str, join_failure: str) -> str:
  """The line for a training process ended by signal `signum`, before or after it joined the
  run; `join_failure` says what to check when the processes did not all join."""
  if signum == signal.SIGABRT and not joined:
    return f"ERROR {join_failure}"
  name = signal.Signals(signum).name
  cause = f" ({CAUSES[signum]})" if signum in CAUSES else ""
  return (f"ERROR the training process was ended by {name}{cause}. Its newest complete "
          f"checkpoint in {checkpoints} is kept: run the same command again (on every process) "
          "to resume from it")


def _read_joined(fd: int) -> bool:
  """Whether the child wrote `JOINED` to the pipe; never blocks (a process the child forked
  may still hold the pipe open)."""
  os.set_blocking(fd, False)
  try:
    return os.read(fd, len(JOINED)) == JOINED
  except BlockingIOError:
    return False
  finally:
    os.close(fd)


def supervise(checkpoints: str, join_failure: str) -> int:
  """Runs this very command again as a child process and returns its exit status.

  SIGTERM and SIGINT sent to this process go to the child as `FORWARDED` says (a preemption
  notice, `launch/tpu.py stop`, Ctrl-C: the child runs in its own process group, so a terminal's
  Ctrl-C reaches it once, through here). A child ended by a signal gets the line `death_message`
  says, and this process the status a shell gives such a process, 128 + the signal's number. The
  child reports joining the run (`report_joined`) through a pipe.
  """
  read, write = os.pipe()
  child = subprocess.Popen([sys.executable, *sys.orig_argv[1:]],
                           env={**os.environ, SUPERVISED_ENV: str(write)}, pass_fds=(write,),
                           process_group=0, preexec_fn=_die_with_parent)
  os.close(write)
  for received, sent in FORWARDED.items():
    signal.signal(received, lambda *_, sent=sent: child.send_signal(sent))
  code = child.wait()
  joined = _read_joined(read)
  if code >= 0:
    return code
  print(death_message(-code, joined, checkpoints, join_failure), file=sys.stderr, flush=True)
  return 128 - code
