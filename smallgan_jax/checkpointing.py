"""A run's workdir: its record (config and device layout), and checkpoints that survive bad days.

The workdir may be local or a `gs://` bucket (Cloud TPU): paths go through `etils.epath`, which
orbax uses too, so a URL is never turned into a local path. Every write that another start reads
back is atomic (written aside, then renamed), and a checkpoint that cannot be read is moved aside
with a warning instead of blocking the run: it falls back to the newest intact one.
"""
import json
import os
import sys
from typing import Any, Callable, Optional

from absl import logging
from etils import epath
import flax
import jax
from jax.experimental import multihost_utils
import ml_collections
import orbax.checkpoint as ocp

# Config fields a resumed run may change: they set how long it runs, how often it reports, how
# far ahead and on how many threads the host works and how long it waits for a hung step, not
# what it trains (`num_train_steps` is how a
# run is extended; under `optim.schedule="linear"` it also stretches the decay, which is the point
# of extending such a run).
RESUMABLE_KEYS = ("num_train_steps", "log_every_steps", "eval_every_steps", "eval_num_samples",
                  "checkpoint_every_steps", "checkpoint_max_to_keep", "steps_in_flight",
                  "data.num_threads", "watchdog_timeout_secs", "eval_batch_stats",
                  "eval_standing_samples")
LAYOUT_KEY = "device_layout"
BROKEN_DIR = "broken_checkpoints"
TMP_MARK = ".orbax-checkpoint-tmp"


class SaveError(RuntimeError):
  """A checkpoint or run record could not be written (a full disk, say); what was there before
  is whole."""


def workdir_path(workdir: str) -> epath.Path:
  """A local path made absolute, or a URL (gs://...) kept as it is."""
  return epath.Path(workdir if "://" in workdir else os.path.abspath(workdir))


def prepare_workdir(workdir: str) -> epath.Path:
  """Creates `workdir` before training and checks that it is writable."""
  path = workdir_path(workdir)
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ValueError(f"--workdir={str(path)!r} cannot be created: {e.strerror or e}") from None
  if "://" not in workdir and not os.access(path, os.W_OK | os.X_OK):
    raise ValueError(f"--workdir={str(path)!r} is not writable")
  return path


def device_layout() -> dict:
  """The devices a run trains on; per-device core-sets and batch splits depend on their count."""
  return {"devices": jax.device_count(), "processes": jax.process_count(),
          "platform": jax.devices()[0].platform}


def _describe(layout: dict) -> str:
  return (f"{layout['devices']} devices ({layout['processes']} process(es), "
          f"{layout['platform']})")


def _fields(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


def run_record(config: ml_collections.ConfigDict, layout: dict) -> dict:
  """What `config.json` holds: the config's fields, plus the device layout under its own key."""
  return {**_fields(config), LAYOUT_KEY: layout}


def write_atomically(path: epath.Path, write: Callable[[Any], None]) -> None:
  """Calls `write(file)` on `path + ".partial"` (binary), then renames it over `path`: a reader
  sees the old file or the whole new one, never a part."""
  path.parent.mkdir(parents=True, exist_ok=True)
  partial = path.with_name(path.name + ".partial")
  try:
    with partial.open("wb") as f:
      write(f)
  except OSError as e:
    partial.unlink(missing_ok=True)  # Gives back the space a full disk needs.
    raise SaveError(f"{path} could not be written ({e.strerror or e}); it is unchanged: make "
                    "room and run the same command again") from None
  partial.replace(path)


def write_json_atomically(path: epath.Path, value: dict) -> None:
  text = json.dumps(value, indent=2, sort_keys=True).encode()
  write_atomically(path, lambda f: f.write(text))


def _record_path(workdir: epath.Path) -> epath.Path:
  return workdir / "config.json"


def check_same_run(workdir: epath.Path, config: ml_collections.ConfigDict, layout: dict) -> None:
  """Refuses a workdir whose run used another config (but for `RESUMABLE_KEYS`) or another device
  count: resuming its checkpoint under either would silently mix two experiments. Fields absent
  from the record were added to the project after that run and keep their old behaviour."""
  path = _record_path(workdir)
  if not path.exists():
    return
  try:
    before = json.loads(path.read_text())
  except ValueError as e:
    raise ValueError(f"{path} is not a readable run record ({e}); move it away to start "
                     "afresh, or use another --workdir") from None
  then = before.pop(LAYOUT_KEY, None)
  before = flax.traverse_util.flatten_dict(before, sep=".")
  now = flax.traverse_util.flatten_dict(_fields(config), sep=".")
  changed = sorted(k for k in before if before[k] != now.get(k) and k not in RESUMABLE_KEYS)
  if changed:
    diffs = ", ".join(f"config.{k}={before[k]!r} there, {now.get(k)!r} now" for k in changed)
    raise ValueError(f"--workdir={str(workdir)!r} holds a run of another config ({diffs}); "
                     "use another --workdir")
  if then is not None and then["devices"] != layout["devices"]:
    raise ValueError(f"--workdir={str(workdir)!r} holds a run on {_describe(then)}; this run has "
                     f"{_describe(layout)}: core-sets are picked per device, so resume it on "
                     f"{then['devices']} devices or use another --workdir")


def save_record(workdir: epath.Path, config: ml_collections.ConfigDict, layout: dict) -> None:
  """Writes `config.json` atomically (process 0 only), so a killed write leaves the old one."""
  if jax.process_index() == 0:
    write_json_atomically(_record_path(workdir), run_record(config, layout))
  logging.info("Config (also in %s):\n%s", _record_path(workdir), config)


class _Manager(ocp.CheckpointManager):
  """Orbax's manager, whose failed saves raise `SaveError` in one line: the step, the cause and
  the newest complete checkpoint. Orbax writes in the background and re-raises a failure at the
  next save or wait as its own (tensorstore, file) error, behind several logged tracebacks."""

  _saving: Optional[int] = None  # The step of the save in progress.

  def save(self, step: int, *args, **kwargs) -> bool:
    self.wait_until_finished()
    self._saving = step
    try:
      return super().save(step, *args, **kwargs)
    except SaveError:
      raise
    except Exception as e:  # pylint: disable=broad-except  # Whatever failed the write.
      raise self._failed(e) from None

  def wait_until_finished(self) -> None:
    try:
      super().wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise self._failed(e) from None

  def _failed(self, error: Exception) -> SaveError:
    cause = " ".join(str(error).split())
    if "No space left on device" in cause:
      cause, remedy = "the disk is full", "make room, then"
    else:
      cause = f"{type(error).__name__}: {cause[:300]}"
      remedy = ("once the cause is fixed (with several processes: another may have died, see its "
                "log),")
    complete = [s for s in self.all_steps() if s != self._saving]
    newest = f"step {max(complete)}" if complete else "none"
    return SaveError(f"the checkpoint of step {self._saving} could not be written to "
                     f"{self.directory} ({cause}); the newest complete checkpoint there is "
                     f"{newest}: {remedy} run the same command again to resume from it")


def _drop_closed_loop_errors() -> None:
  """Makes Python drop the 'Event loop is closed' errors of a failed save (once per process).

  After orbax's save fails and closes its event loop, tensorstore's threads go on completing the
  writes into that loop; each completion is an unraisable error that Python prints as a traceback
  (up to 68 seen after one disk-full save, garbled together, before the run's one line). Every
  other unraisable error still goes to the hook that was there before.
  """
  previous = sys.unraisablehook
  if getattr(previous, "drops_closed_loop_errors", False):
    return

  def hook(unraisable) -> None:
    if not (unraisable.object is None and isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == "Event loop is closed"):
      previous(unraisable)

  hook.drops_closed_loop_errors = True
  sys.unraisablehook = hook


def create_manager(workdir: epath.Path,
                   config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  """The manager of `workdir/checkpoints`; told its handler up front, so that a checkpoint's
  metadata can be read before anything is restored.

  With several processes it saves in the training loop's thread, not in the background: orbax's
  background thread asks JAX's preemption sync point about the step it saved, older than the
  loop's, and JAX takes the last step asked as this process's when the processes agree on where
  to stop after a SIGTERM; agreeing on a step this process had already passed, the others
  stopped and it hung (seen in tests/pod_faults_test.py).
  """
  _drop_closed_loop_errors()
  options = ocp.CheckpointManagerOptions(max_to_keep=config.checkpoint_max_to_keep,
                                         enable_async_checkpointing=jax.process_count() == 1)
  return _Manager(workdir / "checkpoints", options=options,
                  item_handlers=ocp.StandardCheckpointHandler())


def _fits(manager: ocp.CheckpointManager, step: int, state: Any) -> bool:
  """Whether the checkpoint holds arrays of the state's shapes (compared as sorted lists: orbax
  names the tree's nodes its own way). Raises if its metadata cannot be read (a broken one)."""
  stored = jax.tree.leaves(manager.item_metadata(step), is_leaf=lambda m: hasattr(m, "shape"))
  if not stored:
    raise FileNotFoundError("its metadata is missing")
  return sorted(tuple(m.shape) for m in stored) == sorted(x.shape for x in jax.tree.leaves(state))


def _move_aside(manager: ocp.CheckpointManager, name: str) -> epath.Path:
  """Moves a broken checkpoint folder to `workdir/broken_checkpoints/` (kept for inspection, out
  of the way of the run's own later save of that step)."""
  source = epath.Path(manager.directory) / name
  target = epath.Path(manager.directory).parent / BROKEN_DIR / name
  if jax.process_index() == 0:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
      target.rmtree()
    source.rename(target)
  multihost_utils.sync_global_devices(f"smallgan_move_aside_{name}")
  manager.reload()
  return target


def _set_aside_unfinished_saves(manager: ocp.CheckpointManager) -> None:
  """Orbax writes a step into `<step>.orbax-checkpoint-tmp-<time>` and renames it when done; a
  save killed half-way leaves that folder, which orbax skips silently. Say so, and move it.

  Every process lists the folders before process 0 moves any: one that listed after the move
  would skip the barrier of `_move_aside` the others wait at (seen in tests/pod_faults_test.py).
  """
  unfinished = sorted(epath.Path(manager.directory).glob(f"*{TMP_MARK}*"))
  multihost_utils.sync_global_devices("smallgan_listed_unfinished_saves")
  for folder in unfinished:
    where = _move_aside(manager, folder.name)
    logging.warning("The save of step %s did not finish (killed while writing); moved to %s",
                    folder.name.split(TMP_MARK)[0], where)


def restore_latest(manager: ocp.CheckpointManager, state: Any) -> Any:
  """Resumes from the newest intact checkpoint in the workdir, if any.

  A checkpoint whose shapes do not fit `state` is refused (another config wrote it); one that
  cannot be read (truncated files, a save killed half-way) is moved aside with a warning naming
  its step, and the next older one is tried.
  """
  _set_aside_unfinished_saves(manager)
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      if not _fits(manager, step, state):
        raise ValueError(f"the checkpoint of step {step} in {manager.directory} does not fit "
                         "this config (other shapes); use another --workdir")
      restored = manager.restore(step, args=ocp.args.StandardRestore(state))
    except ValueError as e:
      if "does not fit" in str(e):
        raise
      broken = e
    except Exception as e:  # pylint: disable=broad-except
      broken = e  # tensorstore and file errors alike: the step's files are damaged.
    else:
      logging.info("Resuming from the checkpoint of step %d in %s", step, manager.directory)
      return restored
    where = _move_aside(manager, str(step))
    logging.warning("The checkpoint of step %d is broken (%s: %s); moved to %s, trying the "
                    "one before it", step, type(broken).__name__, str(broken).splitlines()[0][:200],
                    where)
  return state
