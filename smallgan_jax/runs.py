"""A run read back from its workdir: its config, a checkpoint's state and its generator.

What sampling and scoring after training start from (`generate.py`, `score.py`, notebooks):

    sample = runs.load_generator("workdirs/fmnist")          # the newest checkpoint
    images = sample(latents)                                  # (n, H, W, C) in [-1, 1]

The config is the run's record (`config.json`, written by `train.train_and_evaluate`), so
nothing has to be passed again. Fields the project added after the run was recorded take their
current defaults (`LATER_DEFAULTS`): a checkpoint is sampled the way evaluation samples today,
with standing batch-norm statistics. The state is restored on this process's devices, whatever
the device count the run trained on.
"""
import json
import types
from typing import Callable, Optional

from absl import flags
import jax
from jax.sharding import Mesh
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from smallgan_jax import checkpointing, distributed, evaluation, train
from smallgan_jax.metrics import image_scores

# Sampling fields a run recorded before they existed gets, as configs/default.py sets them now.
LATER_DEFAULTS = {"eval_batch_stats": "standing", "eval_standing_samples": 4_096}


class RunError(ValueError):
  """A workdir that holds no run, or not the checkpoint asked for; one line."""


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run in `workdir` trained with (its `config.json`), later fields defaulted."""
  path = checkpointing.workdir_path(workdir) / "config.json"
  if not path.exists():
    raise RunError(f"--workdir={workdir!r} holds no run: {path} does not exist")
  record = json.loads(path.read_text())
  record.pop(checkpointing.LAYOUT_KEY, None)
  config = ml_collections.ConfigDict({**LATER_DEFAULTS, **record})
  if "fid" in config:
    config.fid = image_scores.fid_config(**config.fid.to_dict())
  return config


def data_shape(config: ml_collections.ConfigDict) -> tuple[int, ...]:
  """The shape of one training sample, from the config alone (no data is read)."""
  if config.dataset != "images":
    return (2,)
  return (config.data.resolution, config.data.resolution, config.data.channels)


def checkpoint_step(manager: ocp.CheckpointManager, workdir: str, step: Optional[int]) -> int:
  """`step`, or the newest, after checking that `manager` holds it."""
  steps = sorted(manager.all_steps())
  if not steps:
    raise RunError(f"--workdir={workdir!r} holds no checkpoint yet")
  if step is None:
    return steps[-1]
  if step not in steps:
    raise RunError(f"--workdir={workdir!r} holds no checkpoint of step {step}; it holds steps "
                   f"{', '.join(map(str, steps))}")
  return step


def restore_state(workdir: str, config: ml_collections.ConfigDict,
                  step: Optional[int] = None) -> tuple[train.GANState, int]:
  """(the run's state at `step` (default: the newest checkpoint), that step), replicated on this
  process's devices."""
  manager = checkpointing.create_manager(checkpointing.workdir_path(workdir), config)
  step = checkpoint_step(manager, workdir, step)
  mesh = Mesh(np.asarray(jax.local_devices()), (distributed.AXIS,))
  shape = types.SimpleNamespace(data_shape=data_shape(config))  # All the state needs of data.
  template = train.replicated_state(config, shape, mesh)
  state = train.restore(manager, template, lambda template: manager.restore(
      step, args=ocp.args.StandardRestore(template)), step)
  manager.close()
  return state, step


def load_generator(workdir: str,
                   step: Optional[int] = None) -> Callable[[np.ndarray], np.ndarray]:
  """A function from latents (n, z_dim) to the run's samples (n, ...) in [-1, 1], generated as
  evaluation generates them (`evaluation.generator_variables`: EMA weights if kept, standing
  batch-norm statistics) on every local device."""
  config = read_config(workdir)
  state, _ = restore_state(workdir, config, step)
  sampler = evaluation.Sampler(config, state.g.apply_fn)
  variables = evaluation.generator_variables(config, state)
  return lambda z: sampler(variables, np.asarray(z, np.float32))


def define_checkpoint_flags(num_help: str) -> None:
  """The flags of a command that reads a run's checkpoint: --workdir, --step, --num. Defined on
  demand (by the command's `__main__`), so the commands' modules import side by side."""
  flags.DEFINE_string("workdir", None, "The run's workdir (local or gs://).")
  flags.DEFINE_integer("step", None, "The checkpoint's step (default: the newest).")
  flags.DEFINE_integer("num", 50_000, num_help)
  flags.mark_flags_as_required(["workdir"])
