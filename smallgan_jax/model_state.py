"""A network's training state and how it is applied, shared by the train step and the objectives
(`objectives.py`) that add a third network."""
from typing import Any

import flax
from flax.training import train_state
import jax


class ModelState(train_state.TrainState):
  """A network's TrainState plus its non-parameter variable collections (e.g. batch statistics or
  spectral-norm vectors), which `apply_model` threads through."""
  collections: Any = flax.struct.field(default_factory=dict)


def apply_model(state: ModelState, params: Any, x: Any, train: bool) -> tuple[jax.Array, Any]:
  """Runs a network; returns its output and its (updated, when training) collections."""
  variables = {"params": params, **state.collections}
  if not train or not state.collections:
    return state.apply_fn(variables, x, train=train), state.collections
  return state.apply_fn(variables, x, train=True, mutable=list(state.collections))
