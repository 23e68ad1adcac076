"""The feature networks and how images become features.

A `FeatureNetwork` maps pixel values in [0, 255] ((b, H, W, C), uint8 or float) to features
(b, D): `load_inception` is the FID Inception's pool3 (2048-d; `inception.FIDInceptionV3` with
pytorch-fid's converted weights), `classifier_network` the penultimate layer of the
project's classifier (`features/classifier.py`; "classifier FID", the score a machine without the
Inception weights can compute, e.g. for Fashion-MNIST). `iter_features` computes a network's
features jitted, in fixed-size batches split across the local devices. Generated images are
scored as pytorch-fid scores image files: mapped to [0, 255] and rounded (`to_pixels`).

The layer holds the networks and their weights: `inception.py` (the network), `torch_weights.py`
(reads and downloads pytorch-fid's .pth without torch), `convert_inception.py` (.pth -> .npz) and
`classifier.py`. It sits on the data layer and `caching.py`; `metrics/` (statistics, distances,
scores) and `embeddings.py` build on it, and nothing here imports them (tests/layering_test.py).
`network_files` reads where a config keeps the networks' files, for the scores and the
embeddings alike.
"""
import dataclasses
import functools
import os
from typing import Any, Callable, Iterable, Iterator, Optional

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

from smallgan_jax import caching
from smallgan_jax.features import classifier, inception

# Images per feature batch (rounded up to a multiple of the device count, `device_batch`): every
# pass of a network over real images (FID statistics, reference features, embeddings) runs at
# this one shape, so the same image gets the same features bit for bit whichever pass computed
# it (XLA may pick other kernels, summing in another order, for another batch shape).
DEFAULT_BATCH = 200


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureNetwork:
  """A feature extractor for FID and the coverage metrics.

  name: a file-name part ("inception", "classifier-all"); apply(variables, pixels) -> (b, D)
  float32 features of pixel values in [0, 255] (b, H, W, C), traceable by jit; variables: its
  weights; weights_sha256: identifies them in cached statistics; logits: features (b, D) -> the
  class logits (b, classes) of the Inception Score, or None where the network has none.
  """
  name: str
  apply: Callable[[Any, jax.Array], jax.Array]
  variables: Any
  weights_sha256: str
  logits: Optional[Callable[[np.ndarray], np.ndarray]] = None


@dataclasses.dataclass(frozen=True)
class NetworkFiles:
  """Where a config keeps the feature networks' files.

  cache_dir: the trained classifiers and every cache computed with a network (`caching.py`),
  local or gs://; inception_weights: the FID Inception's converted weights (None:
  `inception.DEFAULT_WEIGHTS`).
  """
  cache_dir: str = caching.DEFAULT_CACHE_DIR
  inception_weights: Optional[str] = None


def network_files(config: Any) -> NetworkFiles:
  """`config.coreset.cache_dir` and `.inception_weights`, the defaults where absent or empty.

  Read here, below both users, because the scores (`metrics/image_scores.py`) load the same
  networks from the same files as the embeddings (`embeddings.settings_from_config`), and the
  metrics layer does not import the embeddings.
  """
  section = config.get("coreset") or {}
  return NetworkFiles(cache_dir=section.get("cache_dir") or caching.DEFAULT_CACHE_DIR,
                      inception_weights=section.get("inception_weights") or None)


def load_inception(weights_path: Optional[str] = None,
                   model: Optional[inception.FIDInceptionV3] = None,
                   download: bool = True) -> FeatureNetwork:
  """The FID Inception (pool3, 2048-d) with the converted weights at `weights_path`.

  Default path: `inception.DEFAULT_WEIGHTS`. A missing file is made from pytorch-fid's .pth
  beside it, downloaded first if `download` (`inception.fetch_weights`); raises
  `inception.MissingWeightsError` with one line (why; what to fetch, where to put it) when that
  fails. `model` replaces the default `inception.FIDInceptionV3()` (the crosscheck's broken
  variants).
  """
  path = inception.fetch_weights(inception.resolve_weights_path(weights_path), download)
  stat = os.stat(path)
  return _load_inception(path, stat.st_mtime_ns, stat.st_size, model or inception.FIDInceptionV3())


@functools.lru_cache(maxsize=2)
def _load_inception(path: str, unused_mtime_ns: int, unused_size: int,
                    model: inception.FIDInceptionV3) -> FeatureNetwork:
  """Loaded once per file version and model: the same `apply` reuses its compiled program."""
  variables = inception.load_variables(path)

  def apply(variables, pixels):
    return model.apply(variables, pixels.astype(jnp.float32) / 255.0)["pool3"]

  kernel = np.asarray(variables["params"]["fc"]["kernel"], np.float32)

  def logits(features):
    """pool3 times the fc weights, without the fc's bias: the Inception Score's logits in the
    original TensorFlow code and torch-fidelity (`logits_unbiased`), over all 1008 classes."""
    return np.asarray(features, np.float32) @ kernel

  return FeatureNetwork("inception", apply, variables, caching.file_sha256(path), logits)


def classifier_network(trained: classifier.Trained) -> FeatureNetwork:
  """The penultimate features of a trained classifier, named by its `classifier.network_tag`."""
  model = trained.model

  def apply(params, pixels):
    return model.apply(params, pixels, method=type(model).features)

  seed = trained.meta.get("settings", {}).get("seed", 0)
  name = classifier.network_tag(trained.meta.get("classes"), seed, trained.network)
  return FeatureNetwork(name, apply, trained.params, trained.meta["sha256"])


def to_pixels(images, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
  """Generated images in `value_range` -> uint8 pixels, clipped and rounded (as saved to PNG);
  NaN (a diverged generator) becomes 0."""
  lo, hi = value_range
  scaled = (np.asarray(images, np.float32) - lo) * (255.0 / (hi - lo))
  return np.clip(np.rint(np.nan_to_num(scaled, nan=0.0)), 0, 255).astype(np.uint8)


def fixed_batches(images, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
  """(batch of exactly `batch_size` images, how many are real) from an array or an iterable of
  arrays; the last batch is padded with zeros so that the jitted network compiles once."""
  chunks = [images] if isinstance(images, (np.ndarray, jax.Array)) else images
  pending, count = [], 0
  for chunk in chunks:
    chunk = np.asarray(chunk)
    while len(chunk):
      take = min(batch_size - count, len(chunk))
      pending.append(chunk[:take])
      count += take
      chunk = chunk[take:]
      if count == batch_size:
        yield np.concatenate(pending), batch_size
        pending, count = [], 0
  if count:
    last = np.concatenate(pending)
    yield np.concatenate([last, np.zeros((batch_size - count, *last.shape[1:]), last.dtype)]), count


def device_batch(batch_size: int) -> int:
  """`batch_size` rounded up to a multiple of the local device count: the batch shape
  `iter_features` runs at, each device computing an equal share."""
  devices = jax.local_device_count()
  return -(-batch_size // devices) * devices


@functools.lru_cache(maxsize=8)
def _sharded_apply(apply: Callable, devices: tuple) -> tuple[Callable, Any, Any]:
  mesh = Mesh(np.asarray(devices), ("batch",))
  data = NamedSharding(mesh, PartitionSpec("batch"))
  replicated = NamedSharding(mesh, PartitionSpec())
  return jax.jit(apply, in_shardings=(replicated, data), out_shardings=data), data, replicated


@functools.lru_cache(maxsize=4)
def _replicated_variables(network: FeatureNetwork, sharding: NamedSharding) -> Any:
  """The network's weights on every device, put there once (not at every call)."""
  return jax.device_put(network.variables, sharding)


def iter_features(network: FeatureNetwork, images: Iterable[np.ndarray] | np.ndarray,
                  batch_size: int = DEFAULT_BATCH) -> Iterator[np.ndarray]:
  """Float32 features (b, D) of `images` (pixels in [0, 255], an array (N, H, W, C) or an
  iterable of such arrays), batch by batch, in order.

  Each batch holds `batch_size` images rounded up to a multiple of the local device count, split
  across the devices; the host prepares the next batch while the devices compute.
  """
  batch_size = device_batch(batch_size)
  fn, data, replicated = _sharded_apply(network.apply, tuple(jax.local_devices()))
  variables = _replicated_variables(network, replicated)
  pending = None
  for batch, count in fixed_batches(images, batch_size):
    result = (fn(variables, jax.device_put(batch, data)), count)
    if pending is not None:
      yield np.asarray(pending[0])[:pending[1]]
    pending = result
  if pending is not None:
    yield np.asarray(pending[0])[:pending[1]]


def pool3_features(images, weights_path: Optional[str] = None) -> np.ndarray:
  """Pixel values in [0, 255] (uint8 or float, (b, H, W, C)) -> float32 pool3 features (b, 2048):
  the `inception` embedding of `embeddings.py`, `load_inception`'s network (loaded once per
  weights file), jitted across the local devices in one batch of b images."""
  images = np.asarray(images)
  network = load_inception(weights_path)
  return np.concatenate(list(iter_features(network, images, batch_size=max(len(images), 1))))
