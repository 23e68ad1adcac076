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
  of starting the processes (launch/tpu.py, SLURM, by hand, the tests) gets it. The parent also
  keeps the runtime's abort report (and a traceback of a runtime failure) off the terminal, in a
  log file (`Relay`), and says in one line which process the runtime found gone.

Standard library only: the supervising parent never loads jax.
"""
import ctypes
import logging
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import BinaryIO, Optional

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
                    "answering, or when the coordinator is gone: the line above names it, and "
                    "{log} holds the runtime's whole report",
    signal.SIGKILL: "killed by hand, or by the kernel when out of memory",
}
# What main.py logs before the traceback of a runtime failure (most often the death of another
# process, which the traceback says nothing more about): the supervisor keeps it to the log.
RUNTIME_FAILED = "JAX's runtime failed; its traceback goes to this process's stderr log only:"
# Where in the child's stderr the lines not worth a terminal start: a glog fatal line (JAX's
# runtime aborting, e.g. `F1208 01:02:03.456789  3708 client.h:80] Terminating process ...`), the
# check-failure stack trace and Python's fatal error dump that follow it, or `RUNTIME_FAILED`.
FATAL = re.compile(rb"^F\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [^ \]]+:\d+\] |^\*\*\* Check failure|"
                   rb"^Fatal Python error: |" + re.escape(RUNTIME_FAILED.encode()))
# The line `leave` writes: every message given to it starts so.
LEFT = re.compile(rb"^(ERROR|FATAL) ")
# Set in the child to the file that keeps its whole stderr.
STDERR_LOG_ENV = "SMALLGAN_JAX_STDERR_LOG"
# Seconds the supervisor reads the child's stderr after the child ended: a process the child
# started may hold the pipe open for ever.
DRAIN_SECS = 2.0


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
  `message` starts with "ERROR " or "FATAL " (`LEFT`): so the supervisor knows it.
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


def death_message(signum: int, joined: bool, checkpoints: str, join_failure: str,
                  log: str) -> str:
  """The line for a training process ended by signal `signum`, before or after it joined the
  run; `join_failure` says what to check when the processes did not all join, `log` is the file
  that keeps the process's whole stderr."""
  if signum == signal.SIGABRT and not joined:
    return f"ERROR {join_failure} (the runtime's report is in {log})"
  name = signal.Signals(signum).name
  cause = f" ({CAUSES[signum].format(log=log)})" if signum in CAUSES else ""
  return (f"ERROR the training process was ended by {name}{cause}. Its newest complete "
          f"checkpoint in {checkpoints} is kept: run the same command again (on every process) "
          "to resume from it")


def abort_cause(report: str) -> str:
  """In one line, what the hidden part of a training process's stderr, from its first `FATAL`
  line on, says ended it: JAX's runtime names the processes (tasks) whose heartbeats stopped, and
  says that it lost the coordination service when process 0, which runs it, is gone."""
  tasks = re.search(r"stopped sending heartbeats\):\s*(.*?)\s*The tasks have crashed", report,
                    re.S)
  if tasks:
    ids = re.findall(r"(?:task:|^)\s*(\d+)\b", tasks.group(1), re.M)
    who = f"process{'es' if len(ids) > 1 else ''} {', '.join(ids) or '?'} of the run"
    return f"JAX's runtime aborted the training: {who} stopped sending heartbeats"
  if re.search(r"leader task|Failed to send RPC to coordination service", report):
    return ("JAX's runtime aborted the training: the coordinator (process 0, which runs the "
            "run's coordination service) stopped answering")
  first = re.sub(r"^F\d{4} [^\]]*\] ", "", report.strip().split("\n", 1)[0])
  return f"The training aborted: {' '.join(first.split())[:300]}"


def stderr_log(workdir: Optional[str], process_id: Optional[str]) -> tuple[BinaryIO, str]:
  """The file (open to append, a line saying when this run started written) that keeps a
  training process's whole stderr, and its path: in the workdir when that is a local directory
  already, else a new file in the temporary directory. Named by the process's index, or where
  that is not known here (JAX detects it) by the host and the supervisor's pid, so that the
  processes of a run sharing a workdir keep one each."""
  name = (f"process{process_id}" if process_id is not None
          else f"{socket.gethostname()}-{os.getpid()}")
  if workdir and "://" not in workdir and os.path.isdir(workdir):
    path = os.path.join(os.path.abspath(workdir), f"stderr-{name}.log")
    log = open(path, "ab")  # pylint: disable=consider-using-with  # The `Relay` closes it.
  else:
    fd, path = tempfile.mkstemp(prefix=f"smallgan-jax-stderr-{name}-", suffix=".log")
    log = os.fdopen(fd, "ab")
  log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}: a training process starts\n".encode())
  return log, path


class Relay:
  """Copies a training process's stderr (`pipe`, a file descriptor) to `log` whole and to `out`
  up to its first `FATAL` line: after that, only the process's own last line (`LEFT`, from
  `leave`). What comes after that first line, the runtime's abort report or a runtime failure's
  traceback, is kept (up to `KEEP` bytes) as `report`; `left` says whether a last line came
  after that first line.

  The copying runs in a thread from `start` until the pipe's end, or until `finish` gives up
  waiting for it: a process the child started can hold the pipe open after the child ended.
  `finish` closes `pipe` and `log`.
  """
  KEEP = 1 << 16

  def __init__(self, pipe: int, log: BinaryIO, out: BinaryIO):
    self.pipe, self.log, self.out = pipe, log, out
    self.report = b""
    self.left = False
    self._hiding = False
    self._deadline: Optional[float] = None
    self._thread = threading.Thread(target=self._copy, name="stderr relay", daemon=True)

  def start(self) -> "Relay":
    self._thread.start()
    return self

  def finish(self, timeout: float = DRAIN_SECS) -> None:
    """Reads what is left, for at most `timeout` seconds more, and stops."""
    self._deadline = time.monotonic() + timeout
    self._thread.join()
    os.close(self.pipe)
    self.log.close()

  def _copy(self) -> None:
    pending = b""
    while self._deadline is None or time.monotonic() < self._deadline:
      if not select.select([self.pipe], [], [], 0.1)[0]:
        continue
      chunk = os.read(self.pipe, 1 << 16)
      if not chunk:
        break
      self.log.write(chunk)
      self.log.flush()
      *lines, pending = (pending + chunk).split(b"\n")
      for line in lines:
        self._line(line + b"\n")
    if pending:  # Cut off by the child's end: the lines after it start on their own.
      self._line(pending + b"\n")

  def _line(self, line: bytes) -> None:
    self._hiding = self._hiding or bool(FATAL.search(line))
    if not self._hiding or LEFT.match(line):
      self.left = self.left or self._hiding
      self.out.write(line)
      self.out.flush()
    elif len(self.report) < self.KEEP:
      self.report += line


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


def supervise(checkpoints: str, join_failure: str, workdir: Optional[str],
              process_id: Optional[str]) -> int:
  """Runs this very command again as a child process and returns its exit status.

  SIGTERM and SIGINT sent to this process go to the child as `FORWARDED` says (a preemption
  notice, `launch/tpu.py stop`, Ctrl-C: the child runs in its own process group, so a terminal's
  Ctrl-C reaches it once, through here). The child's stderr goes through a `Relay`, to the file
  `stderr_log` gives for `workdir` and `process_id`, and to this process's stderr but for a
  runtime's abort report, which `abort_cause` sums up in one line. A child ended by a signal
  gets the line `death_message` says, and this process the status a shell gives such a process,
  128 + the signal's number. The child reports joining the run (`report_joined`) through a pipe.
  """
  log, log_path = stderr_log(workdir, process_id)
  read, write = os.pipe()
  err_read, err_write = os.pipe()
  child = subprocess.Popen([sys.executable, *sys.orig_argv[1:]],
                           env={**os.environ, SUPERVISED_ENV: str(write), STDERR_LOG_ENV: log_path},
                           pass_fds=(write,), stderr=err_write, process_group=0,
                           preexec_fn=_die_with_parent)
  os.close(write)
  os.close(err_write)
  relay = Relay(err_read, log, sys.stderr.buffer).start()
  for received, sent in FORWARDED.items():
    signal.signal(received, lambda *_, sent=sent: child.send_signal(sent))
  code = child.wait()
  joined = _read_joined(read)
  relay.finish()
  if relay.report and not relay.left:
    print(abort_cause(relay.report.decode(errors="replace")), file=sys.stderr, flush=True)
  if code >= 0:
    return code
  print(death_message(-code, joined, checkpoints, join_failure, log_path), file=sys.stderr,
        flush=True)
  return 128 - code
