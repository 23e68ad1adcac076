"""Multi-process (multi-host) setup and the device mesh every step runs on."""
import os
from typing import Optional

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

AXIS = "batch"


def _from_env(value: Optional[int], name: str, default: int) -> int:
  """`value`, else the integer in the environment variable `name`, else `default`."""
  if value is not None:
    return value
  text = os.environ.get(name, str(default))
  try:
    return int(text)
  except ValueError:
    raise ValueError(f"${name}={text!r}: expected an integer") from None


def initialize(detect: bool, coordinator_address: Optional[str], num_processes: Optional[int],
               process_id: Optional[int]) -> None:
  """Joins the processes of a multi-process run; a no-op for a single process.

  `detect` lets JAX find the settings of a cluster it knows (Cloud TPU slices, SLURM, ...);
  otherwise a coordinator address with more than one process names them explicitly (unset
  numbers come from $JAX_NUM_PROCESSES and $JAX_PROCESS_ID).
  """
  num_processes = _from_env(num_processes, "JAX_NUM_PROCESSES", 1)
  process_id = _from_env(process_id, "JAX_PROCESS_ID", 0)
  if detect:
    jax.distributed.initialize()
  elif num_processes > 1 or coordinator_address:
    if not coordinator_address:
      raise ValueError(f"--num_processes={num_processes} needs --coordinator_address=host:port "
                       "(the address of process 0)")
    if not 0 <= process_id < num_processes:
      raise ValueError(f"--process_id={process_id}: expected an integer in [0, "
                       f"--num_processes={num_processes})")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def device_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, in global device order."""
  return Mesh(np.asarray(jax.devices()), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def host_value(x: jax.Array) -> np.ndarray:
  """The value of a replicated array, read from this process's first copy of it (a global
  array spanning several processes cannot be read whole by one)."""
  return np.asarray(x.addressable_data(0))
