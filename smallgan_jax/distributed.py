"""Multi-process (multi-host) setup and the device mesh every step runs on."""
import os
import re
from typing import Optional

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

AXIS = "batch"
# host:port, the host a name, an IPv4 address or a bracketed IPv6 one.
ADDRESS = re.compile(r"(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):(\d{1,5})")


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
               process_id: Optional[int], initialization_timeout: int = 300,
               heartbeat_timeout: int = 100) -> None:
  """Joins the processes of a multi-process run; a no-op for a single process.

  `detect` lets JAX find the settings of a cluster it knows (Cloud TPU slices, SLURM, ...);
  otherwise a coordinator address with more than one process names them explicitly (unset
  numbers come from $JAX_NUM_PROCESSES and $JAX_PROCESS_ID). Every process waits at most
  `initialization_timeout` seconds for all to join, and a process silent for `heartbeat_timeout`
  seconds (dead, or its host gone) ends the run everywhere.
  """
  timeouts = {"initialization_timeout": initialization_timeout,
              "heartbeat_timeout_seconds": heartbeat_timeout}
  num_processes = _from_env(num_processes, "JAX_NUM_PROCESSES", 1)
  process_id = _from_env(process_id, "JAX_PROCESS_ID", 0)
  if detect:
    jax.distributed.initialize(**timeouts)
  elif num_processes > 1 or coordinator_address:
    if not coordinator_address:
      raise ValueError(f"--num_processes={num_processes} needs --coordinator_address=host:port "
                       "(the address of process 0)")
    match = ADDRESS.fullmatch(coordinator_address)
    if not match or not 1 <= int(match.group(2)) <= 65535:
      raise ValueError(f"--coordinator_address={coordinator_address!r}: expected host:port, the "
                       "address of process 0 with a port in [1, 65535]")
    if not 0 <= process_id < num_processes:
      raise ValueError(f"--process_id={process_id}: expected an integer in [0, "
                       f"--num_processes={num_processes})")
    jax.distributed.initialize(coordinator_address, num_processes, process_id, **timeouts)


def joined() -> bool:
  """Whether this process joined a run through `jax.distributed` (`initialize`)."""
  return jax.distributed.is_initialized()


def device_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, in global device order."""
  return Mesh(np.asarray(jax.devices()), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def host_value(x: jax.Array) -> np.ndarray:
  """The value of a replicated array, read from this process's first copy of it (a global
  array spanning several processes cannot be read whole by one)."""
  return np.asarray(x.addressable_data(0))
