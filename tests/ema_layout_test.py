"""No copy of the generator's weights as `g_ema` when `ema_decay` is 0, in the state or its
checkpoints; checkpoints written before (which hold that copy) still restore, for training and for
`runs` (generate, score)."""
import functools

import jax
import numpy as np
import orbax.checkpoint as ocp

from smallgan_jax import checkpointing, datasets, distributed, runs, train
from tests.train_test import leaves, run_steps, small_config


def _save(workdir, config, state, step):
  manager = checkpointing.create_manager(checkpointing.workdir_path(str(workdir)), config)
  manager.save(step, args=ocp.args.StandardSave(state))
  manager.wait_until_finished()
  return manager


def _fresh(config):
  return train.replicated_state(config, datasets.get_dataset(config), distributed.device_mesh())


def test_state_keeps_an_average_only_when_it_is_one():
  state, _ = run_steps(small_config({"ema_decay": 0.0}), 2)
  assert state.g_ema is None
  state, _ = run_steps(small_config({"ema_decay": 0.5}), 2)
  assert [x.shape for x in leaves(state.g_ema)] == [x.shape for x in leaves(state.g.params)]
  assert not all(np.array_equal(a, b) for a, b in zip(leaves(state.g_ema),
                                                        leaves(state.g.params)))


def test_a_checkpoint_at_decay_0_holds_no_ema(tmp_path):
  config = small_config({"ema_decay": 0.0})
  manager = _save(tmp_path, config, _fresh(config), 1)
  assert manager.item_metadata(1).tree["g_ema"] is None
  restored = train.restore(manager, _fresh(config),
                           functools.partial(checkpointing.restore_latest, manager))
  assert restored.g_ema is None and int(distributed.host_value(restored.step)) == 0


def test_a_checkpoint_written_with_the_old_copy_restores(tmp_path):
  """Before issue 24 a run with `ema_decay` 0 kept and saved `g_ema` = the generator's params."""
  config = small_config({"ema_decay": 0.0})
  state, _ = run_steps(config, 2)
  old = state.replace(g_ema=state.g.params)  # What create_train_state and update_ema gave.
  manager = _save(tmp_path, config, old, 2)
  assert manager.item_metadata(2).tree["g_ema"] is not None
  restored = train.restore(manager, _fresh(config),
                           functools.partial(checkpointing.restore_latest, manager))
  assert restored.g_ema is None and int(distributed.host_value(restored.step)) == 2
  for got, want in zip(leaves(restored.g.params), leaves(state.g.params)):
    np.testing.assert_array_equal(got, want)
  manager.close()
  sampled, step = runs.restore_state(str(tmp_path), config)
  assert step == 2 and sampled.g_ema is None
  for got, want in zip(leaves(jax.tree.map(distributed.host_value, sampled.d.params)),
                       leaves(state.d.params)):
    np.testing.assert_array_equal(got, want)
