"""When one process of a multi-process run fails: preemption of one process, a dead or hung
process, a kill in a save, a full disk, a coordinator that is not there.

The two-process cases run the CLI in 2 local processes x 2 simulated devices joined on localhost,
one after another on one workdir (`pod`): each resumes from what the fault before it left, and
the checkpoints they write are compared with an uninterrupted run's. Faults are injected by
running the CLI under `FAULTY_MAIN`, which patches the injected process only (no fault hook
ships in the project): a hang or an exception at a step, a SIGKILL at a step or inside a
checkpoint's commit, a disk filled at a step.
"""
import datetime
import io
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import types

from absl.testing import flagsaver
import jax
import ml_collections
import numpy as np
import pytest

from smallgan_jax import checkpointing, distributed, watchdog
from tests.main_test import CONFIG, ROOT, SMALL, final_params, main_command, main_env

# Short enough for a test, long enough that a loaded 2-core machine does not miss a heartbeat of
# a live process (5 s did, once, while other jobs ran at higher priority).
HEARTBEAT = 10
WATCHDOG = 8
SLACK = 15  # Seconds for the runtime to notice a missed heartbeat and for a process to exit.
FAULT_ENV = "SMALLGAN_TEST_FAULT"
# What the runtime's abort report and a runtime failure's traceback print; none reaches a
# survivor's terminal.
STACK_TRACES = re.compile(r"^F\d{4} |\*\*\* Check failure|Fatal Python error|Traceback|^  File ",
                          re.M)
# How the supervisor starts each run's part of its stderr log.
LOG_START = re.compile(r"^--- .*: a training process starts$", re.M)

FAULTY_MAIN = """
import os, signal, sys, time
from smallgan_jax import main, watchdog
fault, _, at = os.environ.get("SMALLGAN_TEST_FAULT", "@").partition("@")
parent = any(a.startswith("--coordinator_address") for a in sys.argv) and not watchdog.supervised()
workdir = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--workdir="))
if fault and not parent:
  at = int(at)
  def injected(step=at):
    if fault != "kill_in_save":  # Once the periodic checkpoint before `at` is committed.
      while not os.path.isdir(os.path.join(workdir, "checkpoints", str(at // 10 * 10))):
        time.sleep(0.05)
    print(f"FAULT {fault} {step} {time.time()}", flush=True)
    if fault == "raise":
      raise RuntimeError(f"injected fault at step {step}")
    if fault == "hang":
      time.sleep(3600)
    if fault == "kill" or fault == "kill_in_save":
      os.kill(os.getpid(), signal.SIGKILL)
    if fault == "fill_disk":
      with open(os.path.join(workdir, "filler"), "wb") as f:
        try:
          while True:
            f.write(bytes(1 << 16))
            f.flush()
        except OSError:
          pass
  if fault == "kill_in_save":
    from orbax.checkpoint._src.path import atomicity
    finalize = atomicity.AtomicRenameTemporaryPath.finalize
    async def killed_in_commit(self):
      if f"/{at}.orbax-checkpoint-tmp" in str(self.get()):
        injected()
      return await finalize(self)
    atomicity.AtomicRenameTemporaryPath.finalize = killed_in_commit
  else:
    from smallgan_jax import preemption
    should_stop = preemption.Watcher.should_stop
    def faulty(self, step):
      if step == at:
        injected()
      return should_stop(self, step)
    preemption.Watcher.should_stop = faulty
main.run()
"""


def free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def start(workdir, process_id, address, *flags, fault=None, devices=2, logs=None):
  """One process of a 2-process run of the CLI (under FAULTY_MAIN); its stdout and stderr go to
  files under `logs`."""
  # Without the compilation cache: JAX writes it from process 0 only and process 1's keys differ,
  # so process 1 would compile cold while process 0 reads the cache; under load that put their
  # first collectives more than the 30 s apart that gloo's rendezvous waits (fixed in XLA).
  # TMPDIR: the stderr log of a process whose workdir is not there yet goes there.
  env = dict(main_env(devices), JAX_ENABLE_COMPILATION_CACHE="false", TMPDIR=str(logs))
  if fault:
    env[FAULT_ENV] = fault
  logs.mkdir(parents=True, exist_ok=True)
  command = [sys.executable, "-c", FAULTY_MAIN, f"--config={CONFIG}", f"--workdir={workdir}",
             *SMALL, f"--coordinator_address={address}", "--num_processes=2",
             f"--process_id={process_id}", f"--heartbeat_timeout={HEARTBEAT}", *flags]
  return subprocess.Popen(command, cwd=ROOT, env=env,
                          stdout=open(logs / f"out{process_id}", "w"),
                          stderr=open(logs / f"err{process_id}", "w"))


def wait(procs, timeout=400, logs=None):
  """Waits for every process; returns each one's (exit status, end time, stderr, fault time)."""
  ends, deadline = {}, time.time() + timeout
  while len(ends) < len(procs) and time.time() < deadline:
    for i, p in enumerate(procs):
      if i not in ends and p.poll() is not None:
        ends[i] = time.time()
    time.sleep(0.05)
  for p in procs:
    if p.poll() is None:
      p.kill()  # Its child dies with it (watchdog._die_with_parent).
  assert len(ends) == len(procs), f"still running after {timeout} s: see {logs}"
  results = []
  for i, p in enumerate(procs):
    faults = re.findall(r"^FAULT \S+ \d+ (\S+)$", (logs / f"out{i}").read_text(), re.M)
    results.append(types.SimpleNamespace(
        code=p.returncode, end=ends[i], err=(logs / f"err{i}").read_text(),
        fault=float(faults[0]) if faults else None))
  return results


def last_line(result):
  return result.err.strip().splitlines()[-1]


def stderr_log(workdir, process_id):
  """What process `process_id`'s last run on `workdir` wrote to stderr, as its log in the workdir
  keeps it; None without one (a run that started without its workdir keeps it elsewhere)."""
  path = workdir / f"stderr-process{process_id}.log"
  return LOG_START.split(path.read_text())[-1] if path.exists() else None


def run_pair(workdir, logs, *flags, faults=None, own_flags=None, until=None):
  """Both processes on `workdir`, each with `flags` and its `own_flags`; `until(procs)` runs
  while they train."""
  address = f"localhost:{free_port()}"
  procs = [start(workdir, i, address, "--initialization_timeout=120", *flags,
                 *(own_flags or {}).get(i, []), fault=(faults or {}).get(i), logs=logs)
           for i in range(2)]
  if until:
    until(procs)
  results = wait(procs, logs=logs)
  for i, r in enumerate(results):
    r.log = stderr_log(workdir, i)
  return results


def sigterm_after_first_checkpoint(workdir):
  def until(procs):
    deadline = time.time() + 400
    while not (workdir / "checkpoints" / "10").exists() and time.time() < deadline:
      time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)  # To process 1 only, as launch/tpu.py stop would.
  return until


def reference_run(workdir, steps, procs, fault_log):
  """An uninterrupted 1 x 4 run of `steps` steps (its stderr in `workdir`.err), started once
  `fault_log` names the fault, or `procs` ended without one."""
  while "FAULT" not in fault_log.read_text() and all(p.poll() is None for p in procs):
    time.sleep(0.05)
  return subprocess.Popen(main_command(workdir, f"--config.num_train_steps={steps}"), cwd=ROOT,
                          env=main_env(4), stdout=subprocess.DEVNULL,
                          stderr=open(f"{workdir}.err", "w"))


def newest_step(workdir):
  return final_params(str(workdir))[0]


@pytest.fixture(scope="module")
def pod(tmp_path_factory):
  """The stages, in order, on one workdir, and an uninterrupted 1 x 4 run to compare with."""
  root = tmp_path_factory.mktemp("pod")
  workdir = root / "run"
  long_run = "--config.num_train_steps=100000"
  stages = types.SimpleNamespace(workdir=workdir, root=root)
  stages.sigterm = run_pair(workdir, root / "sigterm", long_run,
                            until=sigterm_after_first_checkpoint(workdir))
  assert all(r.code == 128 + signal.SIGTERM for r in stages.sigterm), (
      f"the first stage did not stop by SIGTERM: see {root / 'sigterm'}")
  stages.sigterm_step = newest_step(workdir)
  first = stages.first = (stages.sigterm_step // 10 + 1) * 10  # The next periodic checkpoint.
  stages.kill_worker = run_pair(workdir, root / "kill_worker", long_run,
                                faults={1: f"kill@{first + 5}"})
  stages.kill_coordinator = run_pair(workdir, root / "kill_coordinator", long_run,
                                     faults={0: f"kill_in_save@{first + 10}"})
  stages.unfinished = sorted(p.name for p in (workdir / "checkpoints").iterdir())
  stages.exception = run_pair(workdir, root / "exception", long_run,
                              faults={1: f"raise@{first + 15}"})
  # Process 0's watchdog is longer, so that the hung process's fires first (with the same time,
  # either may: a coordinator that leaves first takes the other down with it). The reference
  # trains while the watchdog waits.
  stages.reference = root / "reference"
  reference = []
  stages.hang = run_pair(workdir, root / "hang", long_run, faults={1: f"hang@{first + 25}"},
                         own_flags={0: ["--config.watchdog_timeout_secs=600"],
                                    1: [f"--config.watchdog_timeout_secs={WATCHDOG}"]},
                         until=lambda procs: reference.append(reference_run(
                             stages.reference, first + 20, procs, root / "hang" / "out1")))
  assert reference[0].wait(timeout=600) == 0, f"the reference run failed: see {root}/reference.err"
  return stages


def assert_resumed_from(results, step):
  for r in results:
    assert f"Resuming from the checkpoint of step {step} in" in r.err, r.err[-3000:]


# How a process ends when another dies: JAX's runtime aborts it (SIGABRT, the supervisor's line),
# or first a collective (or a save) with the dead one fails in Python (exit status 1, one line).
PEER_DIED = [128 + signal.SIGABRT, 1]
SURVIVOR_LINES = ("ERROR the training process was ended by SIGABRT (JAX aborts a process when "
                  "another process of the run died", "ERROR the runtime failed (",
                  "ERROR the checkpoint of step ")


def assert_others_end_within_the_heartbeat(results, victim, workdir, codes=PEER_DIED):
  """Every process but `victim` ends, with one of `codes` and one line naming the cause, within
  the heartbeat timeout of the victim's end, without a stack trace on its terminal: when JAX's
  runtime aborted it, the line before names the process that was gone, and what was hidden is
  in the log its last line names."""
  gone = (f"process {victim} of the run stopped sending heartbeats" if victim else
          "the coordinator (process 0, which runs the run's coordination service) stopped "
          "answering")
  for i, r in enumerate(results):
    if i != victim:
      assert r.code in codes, r.err[-3000:]
      assert r.end - results[victim].end < HEARTBEAT + SLACK
      assert last_line(r).startswith(SURVIVOR_LINES), r.err[-3000:]
      assert not STACK_TRACES.search(r.err), r.err[-3000:]
      if r.code == 128 + signal.SIGABRT:
        assert r.err.strip().splitlines()[-2] == f"JAX's runtime aborted the training: {gone}"
        assert f"{workdir}/stderr-process{i}.log holds the runtime's whole report" in last_line(r)
        assert "*** Check failure stack trace: ***" in r.log
      if last_line(r).startswith("ERROR the runtime failed ("):
        assert f"this one's traceback is in {workdir}/stderr-process{i}.log" in last_line(r)
        assert watchdog.RUNTIME_FAILED in r.log and "Traceback" in r.log
      assert r.err.strip().splitlines()[0] in r.log


def test_sigterm_to_one_process_stops_both_at_the_same_step(pod):
  stopped = [re.fullmatch(r".*stopped by SIGTERM after step (\d+); its checkpoint is in (\S+): run "
                          r"the same command again to resume", last_line(r)) for r in pod.sigterm]
  assert all(stopped), [last_line(r) for r in pod.sigterm]
  assert [int(m.group(1)) for m in stopped] == [pod.sigterm_step] * 2
  assert [r.code for r in pod.sigterm] == [128 + signal.SIGTERM] * 2
  assert pod.sigterm_step > 10
  # Only the training loop's thread asks JAX whether the stop step is reached: a background save
  # asking about its older step made the agreement miss a process, which then hung.
  for r in pod.sigterm:
    assert set(re.findall(r"\[thread=(\S+)\] Reached preemption sync point", r.err)) == {
        "MainThread"}
  # Started before their workdir was there, they kept their stderr in the temporary directory.
  for i, r in enumerate(pod.sigterm):
    log, = (pod.root / "sigterm").glob(f"smallgan-jax-stderr-process{i}-*.log")
    assert r.log is None and last_line(r) in log.read_text()


def test_a_killed_worker_ends_the_others_within_the_heartbeat(pod):
  results = pod.kill_worker
  assert_resumed_from(results, pod.sigterm_step)
  assert results[1].code == 128 + signal.SIGKILL
  assert last_line(results[1]).startswith("ERROR the training process was ended by SIGKILL "
                                          "(killed by hand, or by the kernel when out of memory)")
  assert_others_end_within_the_heartbeat(results, 1, pod.workdir)


def test_a_coordinator_killed_in_a_save_leaves_the_checkpoint_before(pod):
  results = pod.kill_coordinator
  assert_resumed_from(results, pod.first)
  assert results[0].code == 128 + signal.SIGKILL
  assert_others_end_within_the_heartbeat(results, 0, pod.workdir)
  assert any(name.startswith(f"{pod.first + 10}.orbax-checkpoint-tmp") for name in pod.unfinished)
  assert f"{pod.first + 10}" not in pod.unfinished


def test_an_exception_in_one_process_ends_it_at_once_and_the_others_follow(pod):
  results = pod.exception
  assert all(f"The save of step {pod.first + 10} did not finish" in r.err for r in results)
  assert_resumed_from(results, pod.first)
  failed = results[1]
  assert failed.code == 1 and "Traceback" in failed.err
  assert last_line(failed).startswith(f"ERROR this process failed (RuntimeError: injected fault "
                                      f"at step {pod.first + 15}; the traceback is above)")
  assert failed.end - failed.fault < SLACK  # Not held by JAX's shutdown barrier (5 minutes).
  assert_others_end_within_the_heartbeat(results, 1, pod.workdir)


def test_a_hung_process_is_ended_by_the_watchdog(pod):
  results = pod.hang
  assert_resumed_from(results, pod.first + 10)
  hung = results[1]
  assert hung.code == 124
  assert last_line(hung).startswith(f"ERROR no training step finished for {WATCHDOG} s "
                                    "(config.watchdog_timeout_secs; the last one started was "
                                    f"step {pod.first + 25})")
  assert WATCHDOG / 2 < hung.end - hung.fault < WATCHDOG + SLACK
  # The other, waiting for it in a collective, ends as when a process dies.
  assert_others_end_within_the_heartbeat(results, 1, pod.workdir)


def test_every_resume_continues_the_uninterrupted_run(pod):
  """The checkpoints the resumed runs wrote after each fault equal the uninterrupted run's (to
  the tolerance of scale_out_test: 2 processes all-reduce in another order than 1)."""
  for step in (pod.first, pod.first + 10, pod.first + 20):
    for x, y in zip(jax.tree.leaves(final_params(str(pod.workdir), step)[1]),
                    jax.tree.leaves(final_params(str(pod.reference), step)[1])):
      np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), atol=1e-6,
                                 rtol=0)


def connecting_time(result):
  """When the process started to join, from its log line's timestamp (absl: local time)."""
  stamp = re.search(r"^I(\d{4} \d\d:\d\d:\d\d\.\d+) .*Connecting to JAX distributed service",
                    result.err, re.M).group(1)
  when = datetime.datetime.strptime(f"{datetime.date.today().year}{stamp}", "%Y%m%d %H:%M:%S.%f")
  return when.timestamp()


def test_processes_that_cannot_all_join_fail_within_the_initialization_timeout(tmp_path):
  """Process 1 pointed at a port where nothing listens, and a process 0 whose process 1 never
  comes: each ends within the initialization timeout of starting to join, in one line."""
  addresses = [f"localhost:{free_port()}" for _ in range(2)]
  procs = [start(tmp_path / "run", i, addresses[i], "--initialization_timeout=3",
                 logs=tmp_path / "logs") for i in range(2)]
  for i, (address, result) in enumerate(zip(addresses, wait(procs, logs=tmp_path / "logs"))):
    assert result.code == 128 + signal.SIGABRT, result.err[-3000:]
    assert last_line(result) == (
        "ERROR the processes of the run did not all join within --initialization_timeout=3 s: "
        "check that every process started, and that process 0 runs at "
        f"--coordinator_address={address}, reachable from here (the runtime's report is in "
        f"{next((tmp_path / 'logs').glob(f'smallgan-jax-stderr-process{i}-*.log'))})")
    assert result.err.strip().splitlines()[-2].startswith("The training aborted: ")
    assert not STACK_TRACES.search(result.err), result.err[-3000:]
    assert result.end - connecting_time(result) < 3 + SLACK
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_malformed_coordinator_address_is_refused_before_joining():
  for address in ("localhost", "localhost:0", "localhost:65536", "http://host:1234"):
    with pytest.raises(ValueError, match=re.escape(
        f"--coordinator_address={address!r}: expected host:port, the address of process 0 "
        "with a port in [1, 65535]")):
      distributed.initialize(False, address, 2, 0)
  assert not distributed.joined()


@pytest.fixture
def small_disk(tmp_path):
  """A 16 MiB tmpfs (mounting needs root, or the right capability)."""
  disk = tmp_path / "disk"
  disk.mkdir()
  try:
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
                         capture_output=True, text=True, check=False)
  except FileNotFoundError:
    pytest.skip("no mount command here: the full disk is not tested")
  if out.returncode:
    pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip()}): the full disk is not tested")
  yield disk
  subprocess.run(["umount", str(disk)], check=True)


def test_only_a_failed_saves_closed_loop_errors_are_dropped(monkeypatch, tmp_path):
  """The unraisable 'Event loop is closed' errors that tensorstore's threads raise after a failed
  save go unprinted; any other unraisable error reaches the hook that was there before."""
  heard = []
  monkeypatch.setattr(sys, "unraisablehook", heard.append)
  options = ml_collections.ConfigDict({"checkpoint_max_to_keep": 1})
  checkpointing.create_manager(checkpointing.workdir_path(str(tmp_path / "a")), options)
  hook = sys.unraisablehook
  checkpointing.create_manager(checkpointing.workdir_path(str(tmp_path / "b")), options)
  assert sys.unraisablehook is hook  # Installed once, not once per manager.

  def unraisable(message, obj=None):
    return types.SimpleNamespace(exc_type=RuntimeError, exc_value=RuntimeError(message),
                                 exc_traceback=None, err_msg=None, object=obj)

  closed, other, in_del = (unraisable("Event loop is closed"), unraisable("another error"),
                           unraisable("Event loop is closed", obj=object()))
  for error in (closed, other, in_del):
    sys.unraisablehook(error)
  assert heard == [other, in_del]


def test_a_disk_filled_during_a_run_ends_it_in_one_line_and_keeps_what_was_whole(small_disk):
  """The disk fills after the checkpoint of step 10: the save of step 20 fails, the run ends in
  one line naming the checkpoint it keeps, `config.json` stays whole (a start on the full disk
  cannot rewrite it and leaves it as it was), and with room again the half-written save is set
  aside and step 10 restored."""
  workdir = small_disk / "run"
  out = subprocess.run([sys.executable, "-c", FAULTY_MAIN, f"--config={CONFIG}",
                        f"--workdir={workdir}", *SMALL, "--config.num_train_steps=40",
                        "--config.log_every_steps=1000"],
                       cwd=ROOT, env={**main_env(), FAULT_ENV: "fill_disk@15"}, capture_output=True,
                       text=True, timeout=600, check=False)
  assert out.returncode == 1, out.stderr[-3000:]
  assert "Event loop is closed" not in out.stderr, out.stderr[-3000:]
  assert out.stderr.strip().splitlines()[-1] == (
      f"ERROR the checkpoint of step 20 could not be written to {workdir / 'checkpoints'} (the "
      "disk is full); the newest complete checkpoint there is step 10: make room, then run the "
      "same command again to resume from it")

  record = (workdir / "config.json").read_bytes()
  assert json.loads(record)["num_train_steps"] == 40
  path = checkpointing.workdir_path(str(workdir))
  other = ml_collections.ConfigDict({"seed": 0, "num_train_steps": 50})
  with pytest.raises(checkpointing.SaveError, match=re.escape(
      f"{workdir / 'config.json'} could not be written (No space left on device); it is "
      "unchanged: make room and run the same command again")):
    checkpointing.save_record(path, other, checkpointing.device_layout())
  assert (workdir / "config.json").read_bytes() == record
  assert not (workdir / "config.json.partial").exists()

  (workdir / "filler").unlink()
  manager = checkpointing.create_manager(path, ml_collections.ConfigDict(
      {"checkpoint_max_to_keep": 3}))
  step_10 = final_params(str(workdir), 10)[1]
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                        step_10)
  restored = checkpointing.restore_latest(manager, target)
  for x, y in zip(jax.tree.leaves(restored), jax.tree.leaves(step_10)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert manager.all_steps() == [10]
  assert [p.name.split(".")[0] for p in (workdir / checkpointing.BROKEN_DIR).iterdir()] == ["20"]


# What JAX's runtime prints when it aborts a process whose peer died (trimmed), for each way the
# runtime reports it, and the line the supervisor sums it up in.
WORKER_GONE = """\
E1208 01:48:07.901278    3697 coordination_service.cc:1549] [1824] Use error polling to propagate \
the following error to all tasks: UNAVAILABLE: The following tasks are unhealthy (stopped sending \
heartbeats):
1
The tasks have crashed. Check the task logs for an earlier error.
F1208 01:48:07.902340    3708 client.h:80] Terminating process because the JAX distributed \
service detected fatal errors. absl::Status: UNAVAILABLE: The following tasks are unhealthy \
(stopped sending heartbeats):
/job:jax_worker/replica:0/task:1
/job:jax_worker/replica:0/task:3
The tasks have crashed. Check the task logs for an earlier error.
*** Check failure stack trace: ***
    @     0x7fbdc4740634  absl::log_internal::LogMessage::SendToLog()
Fatal Python error: Aborted

Thread 0x00007fbd5f6e96c0 (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 331 in wait
"""
COORDINATOR_GONE = """\
F1208 02:00:11.255296   12432 client.h:80] Terminating process because the JAX distributed \
service detected fatal errors. absl::Status: UNAVAILABLE: Failed to send RPC to coordination \
service. Either the leader task was preempted/died/restarted unexpectedly or this task is \
experiencing network issues.
*** Check failure stack trace: ***
"""
REPORTS = [
    (WORKER_GONE[WORKER_GONE.index("F1208"):],
     "JAX's runtime aborted the training: processes 1, 3 of the run stopped sending heartbeats"),
    (COORDINATOR_GONE, "JAX's runtime aborted the training: the coordinator (process 0, which runs "
                       "the run's coordination service) stopped answering"),
    ("F1208 02:00:11.255296   12432 client.h:80] Barrier timed out.\n*** Check failure",
     "The training aborted: Barrier timed out."),
]


@pytest.mark.parametrize("report, cause", REPORTS, ids=["workers", "coordinator", "other"])
def test_abort_cause_names_the_process_the_runtime_found_gone(report, cause):
  assert watchdog.abort_cause(report) == cause


class Kept(io.BytesIO):
  """A log file whose text stays readable after the relay closes it."""

  def close(self):
    pass


def relayed(text, timeout=watchdog.DRAIN_SECS):
  """`text` through a `watchdog.Relay`, written in pieces that split lines: (what reaches the
  terminal, the log, the relay)."""
  read, write = os.pipe()
  out, log = io.BytesIO(), Kept()
  relay = watchdog.Relay(read, log, out).start()
  data = text.encode()
  for i in range(0, len(data), 7):
    os.write(write, data[i:i + 7])
  os.close(write)
  relay.finish(timeout)
  return out.getvalue().decode(), log.getvalue().decode(), relay


BEFORE = "I1208 01:47:59.163852 140453290634112 reporting.py:43] [30] train/d_loss=1.43\n"
LEFT = "\nERROR the runtime failed (JaxRuntimeError: ...): most likely another process died\n"
RUNTIME_TRACEBACK = f"""\
E1208 01:48:07.9 140453290634112 main.py:206] {watchdog.RUNTIME_FAILED}
Traceback (most recent call last):
  File "/work/main/smallgan_jax/main.py", line 190, in main
jax.errors.JaxRuntimeError: UNKNOWN: Gloo AllGather failed: Connection closed by peer
"""


@pytest.mark.parametrize("hidden", [
    WORKER_GONE[WORKER_GONE.index("F1208"):],  # The glog fatal line.
    WORKER_GONE[WORKER_GONE.index("*** Check"):],
    WORKER_GONE[WORKER_GONE.index("Fatal Python"):],
    RUNTIME_TRACEBACK,
], ids=["glog F line", "Check failure", "Fatal Python error", "runtime failure's traceback"])
def test_relay_hides_from_the_first_fatal_line_but_the_last_line_and_logs_all(hidden):
  text = BEFORE + hidden + LEFT + "Fatal Python error: Aborted\n  File x\na line cut off"
  out, log, relay = relayed(text)
  assert out == BEFORE + LEFT.lstrip()
  assert log == text
  assert relay.left and relay.report.decode().startswith(hidden)


def test_relay_passes_everything_on_without_a_fatal_line():
  text = BEFORE + 'Traceback (most recent call last):\n  File "x.py"\nRuntimeError: own bug\n'
  out, log, relay = relayed(text + "a line cut off")
  assert out == text + "a line cut off\n" and log == text + "a line cut off"
  assert not relay.report and not relay.left


def test_relay_stops_reading_when_a_grandchild_holds_the_pipe():
  read, write = os.pipe()
  out, log = io.BytesIO(), Kept()
  relay = watchdog.Relay(read, log, out).start()
  child = subprocess.Popen(["sh", "-c", "echo before >&2; sleep 60 & echo $!"],
                           stdout=subprocess.PIPE, stderr=write)
  os.close(write)
  grandchild = int(child.stdout.readline())
  child.wait()
  started = time.monotonic()
  relay.finish(1)
  finished = time.monotonic()
  os.kill(grandchild, signal.SIGKILL)
  child.stdout.close()
  assert 1 <= finished - started < 3
  assert out.getvalue() == log.getvalue() == b"before\n"


@pytest.mark.parametrize("error, logged, left", [
    (jax.errors.JaxRuntimeError("UNKNOWN: Gloo AllGather failed"), watchdog.RUNTIME_FAILED,
     "ERROR the runtime failed (JaxRuntimeError: UNKNOWN: Gloo AllGather failed): most likely "
     "another process of the run died or stopped answering (see its log; this one's traceback is "
     "in LOG); this one ended at once."),
    (RuntimeError("own bug"), "This process failed:",
     "ERROR this process failed (RuntimeError: own bug; the traceback is above)"),
], ids=["the runtime", "its own code"])
def test_a_runtime_failures_traceback_is_logged_for_the_log_only(error, logged, left, monkeypatch,
                                                                 caplog, tmp_path):
  """A process of a run that fails logs its traceback; after `watchdog.RUNTIME_FAILED` when the
  runtime failed (the supervisor keeps it to the log: most often another process died), so that
  the terminal gets one line; after its own words when its own code raised."""
  from smallgan_jax import main, train  # pylint: disable=g-import-not-at-top

  def failing(*_):
    raise error

  lines = []
  monkeypatch.setenv(watchdog.STDERR_LOG_ENV, "LOG")
  monkeypatch.setattr(distributed, "initialize", lambda *_: None)
  monkeypatch.setattr(distributed, "joined", lambda: True)
  monkeypatch.setattr(train, "train_and_evaluate", failing)
  monkeypatch.setattr(watchdog, "leave", lambda line, code: lines.append((line, code)))
  with flagsaver.flagsaver():
    main.FLAGS(["main", f"--config={CONFIG}", f"--workdir={tmp_path}"])
    main.main(["main"])
  record, = [r for r in caplog.records if r.exc_info]
  assert record.getMessage() == logged and record.exc_info[1] is error
  assert lines[0][0].startswith(left) and lines[0][1] == 1


SUPERVISED = """
import os, signal, sys, time
from smallgan_jax import watchdog
if not watchdog.supervised():
  sys.exit(watchdog.supervise("CHECKPOINTS", "JOIN FAILURE", sys.argv[2], "7"))
signal.signal(signal.SIGTERM, lambda *_: (print("got SIGTERM", file=sys.stderr), os._exit(143)))
print(os.getpid(), flush=True)
mode = sys.argv[1]
if mode == "joined, then aborted by the runtime":
  watchdog.report_joined()
  sys.stderr.write(os.environ["REPORT"])
  sys.stderr.flush()
  os.abort()
if mode == "abort":
  os.abort()
if mode == "exit 3":
  sys.exit(3)
time.sleep(60)
"""


def supervised(mode, workdir, **env):
  return subprocess.run([sys.executable, "-c", SUPERVISED, mode, str(workdir)], cwd=ROOT,
                        capture_output=True, text=True, timeout=60, check=False,
                        env={**os.environ, **env})


def test_supervisor_keeps_the_runtimes_abort_report_to_the_log_and_names_the_cause(tmp_path):
  out = supervised("joined, then aborted by the runtime", tmp_path, REPORT=BEFORE + WORKER_GONE)
  assert out.returncode == 134
  log = tmp_path / "stderr-process7.log"
  # The runtime's error lines before its fatal one reach the terminal; none is a stack trace.
  assert out.stderr.splitlines() == [
      *(BEFORE + WORKER_GONE[:WORKER_GONE.index("F1208")]).splitlines(), REPORTS[0][1],
      "ERROR the training process was ended by SIGABRT (JAX aborts a process when another process "
      "of the run died or stopped answering, or when the coordinator is gone: the line above names "
      f"it, and {log} holds the runtime's whole report). Its newest complete checkpoint in "
      "CHECKPOINTS is kept: run the same command again (on every process) to resume from it"]
  assert LOG_START.split(log.read_text()) == ["", "\n" + BEFORE + WORKER_GONE]


@pytest.mark.parametrize("mode, code, line", [
    ("abort", 134, "ERROR JOIN FAILURE (the runtime's report is in {log})"),
    ("exit 3", 3, None),
])
def test_supervisor_says_in_one_line_what_ended_its_child(mode, code, line, tmp_path):
  workdir = tmp_path / "not there yet"
  out = supervised(mode, workdir, TMPDIR=str(tmp_path))
  assert out.returncode == code
  log, = tmp_path.glob("smallgan-jax-stderr-process7-*.log")  # In the temporary directory.
  assert out.stderr.strip().splitlines()[-1:] == ([line.format(log=log)] if line else [])


def alive(pid):
  """Whether process `pid` exists and is not a zombie."""
  try:
    return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
  except FileNotFoundError:
    return False


def test_supervisor_passes_sigterm_on_and_takes_its_child_with_it(tmp_path):
  def started():
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISED, "wait", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())

  for signum in (signal.SIGTERM, signal.SIGINT):  # Ctrl-C stops a run of several as SIGTERM.
    proc, _ = started()
    proc.send_signal(signum)
    assert proc.wait(timeout=60) == 143
    assert proc.stderr.read().strip() == "got SIGTERM"

  proc, child = started()
  proc.kill()
  proc.wait(timeout=60)
  deadline = time.time() + 30
  while alive(child) and time.time() < deadline:
    time.sleep(0.05)
  assert not alive(child)


WATCHED = """
import sys, time
from smallgan_jax import watchdog
timeout, stall = float(sys.argv[1]), float(sys.argv[2])
with watchdog.Watchdog(timeout, "CHECKPOINTS", start_step=3) as dog:
  dog.step(1)
  dog.step(2)
  time.sleep(timeout * 1.5)  # Before start_step: not timed.
  for step in range(3, 13):
    dog.step(step)
    time.sleep(timeout / 20)
  print(time.time(), flush=True)
  time.sleep(stall)
print("not ended")
"""


def test_watchdog_ends_a_process_whose_steps_stop_in_one_line():
  out = subprocess.run([sys.executable, "-c", WATCHED, "2", "60"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, check=False)
  ended = time.time()
  assert out.returncode == 124
  assert out.stderr.strip().splitlines() == [
      "ERROR no training step finished for 2 s (config.watchdog_timeout_secs; the last one "
      "started was step 12): this process, or another of the run that it waits for, hangs; ended "
      "it. Run the same command again (on every process) to resume from the newest checkpoint in "
      "CHECKPOINTS"]
  # The time printed is that of step 12 and a sleep of timeout / 20 after it.
  assert 2 - 2 / 20 <= ended - float(out.stdout) < 2 + SLACK


def test_watchdog_of_timeout_0_is_off():
  out = subprocess.run([sys.executable, "-c", WATCHED, "0", "1"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, check=False)
  assert out.returncode == 0 and out.stdout.strip().endswith("not ended"), out.stderr



LEAVING = """
import os, sys, threading, time
from smallgan_jax import watchdog
old = sys.stderr  # As a traceback being printed holds it.

def noise(write):
  while True:
    write()
    time.sleep(0.001)

threading.Thread(target=noise, daemon=True,
                 args=(lambda: old.write("noise from a stream\\n") and old.flush(),)).start()
threading.Thread(target=noise, daemon=True,
                 args=(lambda: os.write(2, b"noise from file descriptor 2\\n"),)).start()
real_exit = os._exit

def slow_exit(code):  # The other threads run between the line and the exit.
  time.sleep(0.2)
  real_exit(code)

os._exit = slow_exit
time.sleep(0.1)
os.write(2, b"a line the exit cut off")  # As a traceback being printed when the line comes.
watchdog.leave("ERROR the last line", 3)
"""


def test_leave_writes_the_last_line_whatever_other_threads_print():
  out = subprocess.run([sys.executable, "-c", LEAVING], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, check=False)
  assert out.returncode == 3
  lines = out.stderr.splitlines()
  assert lines[-1] == "ERROR the last line" and "noise from a stream" in lines, lines[-5:]
