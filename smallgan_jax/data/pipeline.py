"""The host's stream of target candidates: which images each device draws at each step, prepared
ahead of the devices by a thread pool, and handed to them.

Per train step and per device the host delivers `n_dis` sets of `n = factor_target * k_d`
candidate images (uint8, NHWC) and their dataset indices; the step turns them into floats on the
device (`images_to_float`) and keeps `k_d` of each set by core-set (or, for a global target
core-set, its slice of the core-set of the global sets: below). With factor 1 the same path
gives the plain GAN's random batches.

**Which images.** `candidate_indices(seed, step, device_index, ...)` is a pure function of its
arguments: NumPy's generator seeded with the SeedSequence of (a tag for this stream, seed, step,
global device index). Each set is `n` distinct indices drawn uniformly (without replacement inside
the set, so the core-set is never handed one image twice); sets, steps and devices are
independent (with replacement across them). Why not a per-epoch permutation:
- Nothing has to be carried from step to step, so a run resumed at step s draws exactly what the
  uninterrupted run drew, from (seed, s, device) alone, and a device draws the same whatever the
  device count or the number of processes: 2 processes x 2 devices draw what 1 x 4 does, and two
  devices never share a stream (their keys differ).
- A permutation would order the *candidates*, but with core-sets the critic is shown only the
  picked `1 / factor` of them, not a permutation of the data, so its guarantee would not reach the
  batches trained on; sharing one permutation between devices would also tie each device's draws
  to the device count.
- Coverage is not lost: each image is a candidate about `factor_target` times per epoch, so it is
  missed by all of an epoch's candidate sets with probability about exp(-factor) (3e-4 at 8).
An epoch is therefore counted in images seen by the critic, the unit top-k's decay is meant in:
`steps_per_epoch(dataset_size, batch_size, n_dis)` = dataset_size / (n_dis * batch_size) train
steps (global batch), whatever the factor. NumPy's generator streams are stable within a NumPy
version (pinned in requirements.txt); a new NumPy may draw other indices, which a resumed run would
then differ by.

**Global target core-sets** (`config.coreset.target_scope="global"`): each step draws `n_dis`
sets of `n = factor_target * batch_size` candidates shared by all devices, from (seed, step) alone
(`global_candidate_indices`, another stream tag), so the same images are candidates on any device
or process count. Device i receives the images of its contiguous shard, candidates i*n/D ...
(i+1)*n/D - 1 of each set (each process reads only its devices' shards: as many images as with
per-device sets), and the embedding rows of all n: every device computes the same core-set and
the step exchanges the picked images between devices (`sampling.exchange_picks`).

**Global device index.** The position of the device in the run's 1-D mesh (`jax.devices()`
order), the index `lax.axis_index` gives inside the step; `process_device_indices(mesh)` lists
this process's. The stream takes them as a list of ints so it is testable without devices.

**Ahead of the devices.** `CandidateStream` keeps `steps_in_flight` steps (the config's value,
which also bounds how far the train loop dispatches ahead) in preparation: each step's images are
split into one chunk per thread, and the chunks of all steps in flight run on a
`concurrent.futures` thread pool (PIL decoding and resizing, tfds reads and NumPy gathers release
the GIL). Each chunk writes its own slice, so the output does not depend on the thread count.
"""
import collections
import concurrent.futures
import os
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import ml_collections
import numpy as np

from smallgan_jax import distributed
from smallgan_jax.data import images as images_lib

_STREAM_TAG = 0x7A4D  # Keys this stream apart from any other NumPy stream on (seed, step, device).
_GLOBAL_STREAM_TAG = 0x7A4E  # The global sets' stream, on (seed, step).
SCOPES = ("device", "global")  # Per-device candidate sets, or global ones split over the devices.


def candidate_indices(seed: int, step: int, device_index: int, num_sets: int, n: int,
                      dataset_size: int) -> np.ndarray:
  """(num_sets, n) int64 dataset indices: device `device_index`'s candidates at `step`.

  Each row holds n distinct indices in [0, dataset_size), uniform; a pure function of the
  arguments (see the module docstring).
  """
  return _draw_sets((("seed", seed), ("step", step), ("device_index", device_index)),
                    _STREAM_TAG, num_sets, n, dataset_size)


def global_candidate_indices(seed: int, step: int, num_sets: int, n: int,
                             dataset_size: int) -> np.ndarray:
  """(num_sets, n) int64 dataset indices: the global candidate sets at `step`, the same whatever
  the device and process counts (rows as in `candidate_indices`, from another stream)."""
  return _draw_sets((("seed", seed), ("step", step)), _GLOBAL_STREAM_TAG, num_sets, n,
                    dataset_size)


def _draw_sets(key: tuple[tuple[str, int], ...], tag: int, num_sets: int, n: int,
               dataset_size: int) -> np.ndarray:
  """`num_sets` rows of n distinct uniform indices from the NumPy stream of (tag, *key)."""
  for arg, value in key:
    if value < 0:
      raise ValueError(f"{arg}={value}: expected an integer >= 0")
  if n > dataset_size:
    raise ValueError(f"a candidate set of {n} images needs a dataset of at least {n} images; it "
                     f"has {dataset_size}")
  rng = np.random.default_rng([tag, *(value for _, value in key)])
  return np.stack([rng.choice(dataset_size, n, replace=False) for _ in range(num_sets)]).astype(
      np.int64)


def steps_per_epoch(dataset_size: int, batch_size: int, n_dis: int) -> int:
  """Train steps in which the critic sees `dataset_size` real images (global `batch_size`, `n_dis`
  updates per step), at least 1: e.g. top-k's `decay_steps` for a decay per epoch."""
  return max(1, round(dataset_size / (batch_size * n_dis)))


MAX_DEFAULT_THREADS = 32


def default_threads() -> int:
  """One thread per CPU core, at most 32 (a TPU VM host has 240 cores)."""
  return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_THREADS))


class CandidateStream:
  """This process's candidates, step after step, prepared `steps_in_flight` steps ahead.

  `next()` returns (step, images, indices): indices int64 (local devices, n_dis, n), row d for
  `device_indices[d]`, the candidates whose embedding rows that device needs, and images uint8
  (local devices, n_dis, m, H, W, C), the images it holds of them. With `scope` "device" each
  device draws its own sets of n candidates and holds all their images (m = n); with "global"
  every device gets the step's global sets of n (`global_candidate_indices`) and holds the images
  of its shard of `num_devices` (m = n / num_devices, device g: candidates g*m ... (g+1)*m - 1).
  Steps count from `start_step` (a resumed run passes its next step). `close()` (or leaving a
  `with` block) stops the threads; a worker's error is raised by the `next()` that returns its
  step.
  """

  def __init__(self, source: images_lib.ImageSource, *, seed: int,
               device_indices: Sequence[int], n_dis: int, n: int, start_step: int,
               steps_in_flight: int = 2, num_threads: Optional[int] = None,
               scope: str = "device", num_devices: Optional[int] = None):
    if not device_indices:
      raise ValueError("device_indices is empty: expected this process's global device indices")
    if len(set(device_indices)) != len(device_indices):
      raise ValueError(f"device_indices={list(device_indices)} repeats a device")
    if steps_in_flight < 1:
      raise ValueError(f"steps_in_flight={steps_in_flight}: expected a positive integer")
    _check_scope(scope, num_devices, n, device_indices)
    self.source = source
    self.seed = seed
    self.device_indices = [int(d) for d in device_indices]
    self.n_dis, self.n = n_dis, n
    self.scope, self.num_devices = scope, num_devices
    self.steps_in_flight = steps_in_flight
    self.num_threads = num_threads or default_threads()
    self._size = len(source)
    candidate_indices(seed, start_step, 0, 1, n, self._size)  # Bad arguments fail here, not later.
    self._pool = concurrent.futures.ThreadPoolExecutor(self.num_threads,
                                                       thread_name_prefix="candidates")
    self._pending = collections.deque()
    self._next_step = start_step
    self._closed = False
    for _ in range(steps_in_flight):
      self._submit()

  def _fill(self, out: np.ndarray, indices: np.ndarray) -> None:
    out[...] = self.source.images(indices)

  def _indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(the candidates each local device needs rows of, those it holds images of)."""
    if self.scope == "device":
      indices = np.stack([candidate_indices(self.seed, step, d, self.n_dis, self.n, self._size)
                          for d in self.device_indices])
      return indices, indices
    sets = global_candidate_indices(self.seed, step, self.n_dis, self.n, self._size)
    m = self.n // self.num_devices
    held = np.stack([sets[:, d * m:(d + 1) * m] for d in self.device_indices])
    return np.broadcast_to(sets, (len(self.device_indices), *sets.shape)), held

  def _submit(self) -> None:
    step = self._next_step
    self._next_step += 1
    indices, held = self._indices(step)
    flat = held.reshape(-1)
    images = np.empty((flat.size, *self.source.shape), np.uint8)
    bounds = np.linspace(0, flat.size, min(self.num_threads, flat.size) + 1).astype(int)
    futures = [self._pool.submit(self._fill, images[lo:hi], flat[lo:hi])
               for lo, hi in zip(bounds[:-1], bounds[1:])]
    self._pending.append((step, images.reshape(*held.shape, *self.source.shape), indices,
                          futures))

  def next(self) -> tuple[int, np.ndarray, np.ndarray]:
    """(step, images, indices) of the next step; waits for it if it is not ready yet."""
    if self._closed:
      raise RuntimeError("the candidate stream is closed")
    step, images, indices, futures = self._pending.popleft()
    self._submit()  # Keeps steps_in_flight steps in preparation while this one is used.
    for future in futures:
      future.result()
    return step, images, indices

  def __iter__(self):
    return self

  def __next__(self) -> tuple[int, np.ndarray, np.ndarray]:
    return self.next()

  def close(self) -> None:
    """Cancels the steps in preparation and stops the threads (idempotent)."""
    if not self._closed:
      self._closed = True
      self._pool.shutdown(wait=True, cancel_futures=True)
      self._pending.clear()

  def __enter__(self) -> "CandidateStream":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def _check_scope(scope: str, num_devices: Optional[int], n: int,
                 device_indices: Sequence[int]) -> None:
  if scope not in SCOPES:
    raise ValueError(f"scope={scope!r}: expected one of {SCOPES}")
  if scope == "global":
    if not num_devices or n % num_devices:
      raise ValueError(f"num_devices={num_devices}: expected a positive divisor of n={n} (each "
                       "device holds an equal shard of the global candidates)")
    if max(device_indices) >= num_devices:
      raise ValueError(f"device_indices={list(device_indices)}: expected indices below "
                       f"num_devices={num_devices}")


def stream_from_config(config: ml_collections.ConfigDict, source: images_lib.ImageSource,
                       device_indices: Sequence[int], num_devices: int,
                       start_step: int) -> CandidateStream:
  """The stream of an image config: per device `n_dis` sets of `factor_target * batch_size /
  num_devices` candidate images, its own or its shard of global sets of `factor_target *
  batch_size` (`config.coreset.target_scope`), `steps_in_flight` steps ahead, `data.num_threads`
  threads."""
  scope = config.coreset.target_scope
  n = num_candidates(config, num_devices) * (num_devices if scope == "global" else 1)
  return CandidateStream(source, seed=config.seed, device_indices=device_indices,
                         n_dis=config.n_dis, n=n, start_step=start_step,
                         steps_in_flight=config.steps_in_flight,
                         num_threads=config.data.num_threads or None, scope=scope,
                         num_devices=num_devices)


def num_candidates(config: ml_collections.ConfigDict, num_devices: int) -> int:
  """Candidate images per set that each device receives, in either target scope:
  factor_target * batch_size / num_devices."""
  return config.coreset.factor_target * (config.batch_size // num_devices)


def process_device_indices(mesh: Mesh) -> list[int]:
  """The global indices (positions in the 1-D `mesh`) of this process's devices, in mesh order:
  the rows of this process's local data."""
  return [i for i, d in enumerate(mesh.devices.flat) if d.process_index == jax.process_index()]


def to_devices(images: np.ndarray, indices: np.ndarray, mesh: Mesh,
               axis: str = distributed.AXIS) -> tuple[jax.Array, jax.Array]:
  """This process's (local devices, ...) arrays as global arrays split over `mesh`'s devices,
  (devices, ...), each device holding its own row: the train step's input, under
  `shard_map(in_specs=PartitionSpec(axis))`. The rows are this process's devices in mesh order
  (`process_device_indices`); each process's devices are contiguous in a mesh built from
  `jax.devices()` (`distributed.device_mesh`), which this relies on."""
  sharding = NamedSharding(mesh, PartitionSpec(axis))
  return (jax.make_array_from_process_local_data(sharding, images),
          jax.make_array_from_process_local_data(sharding, indices))


def images_to_float(images: jax.Array, dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """uint8 images to floats in [-1, 1] (0 -> -1, 255 -> 1), on the device inside the step."""
  return images.astype(dtype) / 127.5 - 1.0

