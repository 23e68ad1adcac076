"""Fréchet distance between feature statistics (FID), as pytorch-fid computes it.

A `FeatureNetwork` maps pixel values in [0, 255] ((b, H, W, C), uint8 or float) to features
(b, D): `load_inception` is the FID Inception's pool3 (2048-d; `inception.FIDInceptionV3` with
pytorch-fid's converted weights), `classifier_network` the penultimate layer of
`smallgan_jax.classifier`'s CNN ("classifier FID", the score a machine without the Inception
weights can compute, e.g. for Fashion-MNIST). Its features are computed jitted, in fixed-size
batches split across the local devices (`iter_features`); their mean and covariance are
accumulated in float64 on the host (`image_statistics`); `frechet_distance` compares two such
statistics with `scipy.linalg.sqrtm`, exactly as pytorch-fid's `calculate_frechet_distance`.

Generated images are scored as pytorch-fid scores image files: mapped to [0, 255] and rounded
(`to_pixels`). The statistics of a real split are computed once per (dataset/split, network,
weights sha256) and cached beside the embeddings (`reference_statistics`):

    <cache_dir>/<source>.fid-<network>.<sha12>.npz    mu (D,), sigma (D, D), float64
    <cache_dir>/<source>.fid-<network>.<sha12>.json   metadata, written last

and reused while the metadata matches the source (count, image shape, a hash of sampled images),
the network and its weights; a mismatch refuses in one line (`StatisticsCacheError`), never
recomputing over the file. The coverage metrics (`coverage.py`) need the features themselves, of a
fixed seeded subset of the split (`subset_indices`; as many images as an evaluation generates),
cached the same way under the same key (`reference_features`):

    <cache_dir>/<source>.fid-<network>.<sha12>.features-<count>.npz   features (count, D) float32,
                                                                       indices (count,) int64
    <cache_dir>/<source>.fid-<network>.<sha12>.features-<count>.json  metadata, written last
"""
import dataclasses
import functools
import hashlib
import json
import os
import time
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np
from scipy import linalg

from smallgan_jax import checkpointing, classifier, embeddings
from smallgan_jax.metrics import inception

FORMAT = 1
SUBSET_SEED = 0  # Draws the real subset whose features the coverage metrics compare against.
DEFAULT_BATCH = 200  # Images per feature batch (rounded up to a multiple of the device count).
MissingWeightsError = inception.MissingWeightsError


class StatisticsCacheError(ValueError):
  """Cached reference statistics or features that do not belong to this source or network; one
  line."""


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureNetwork:
  """A feature extractor for FID.

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


def load_inception(weights_path: Optional[str] = None,
                   model: Optional[inception.FIDInceptionV3] = None,
                   download: bool = True) -> FeatureNetwork:
  """The FID Inception (pool3, 2048-d) with the converted weights at `weights_path`.

  Default path: `inception.DEFAULT_WEIGHTS`. A missing file is made from pytorch-fid's .pth
  beside it, downloaded first if `download` (`inception.fetch_weights`); raises
  `MissingWeightsError` with one line (why; what to fetch, where to put it) when that fails.
  `model` replaces the default `inception.FIDInceptionV3()` (the crosscheck's broken variants).
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

  return FeatureNetwork("inception", apply, variables, embeddings.file_sha256(path), logits)


def classifier_network(trained) -> FeatureNetwork:
  """The penultimate features of a `smallgan_jax.classifier.Trained` classifier."""
  model = trained.model

  def apply(params, pixels):
    return model.apply(params, pixels, method=type(model).features)

  seed = trained.meta.get("settings", {}).get("seed", 0)
  name = classifier.network_tag(trained.meta.get("classes"), seed)
  return FeatureNetwork(name, apply, trained.params, trained.meta["sha256"])


def to_pixels(images, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
  """Generated images in `value_range` -> uint8 pixels, clipped and rounded (as saved to PNG);
  NaN (a diverged generator) becomes 0."""
  lo, hi = value_range
  scaled = (np.asarray(images, np.float32) - lo) * (255.0 / (hi - lo))
  return np.clip(np.rint(np.nan_to_num(scaled, nan=0.0)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Features, in batches across the local devices.


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
  devices = tuple(jax.local_devices())
  batch_size = -(-batch_size // len(devices)) * len(devices)
  fn, data, replicated = _sharded_apply(network.apply, devices)
  variables = _replicated_variables(network, replicated)
  pending = None
  for batch, count in fixed_batches(images, batch_size):
    result = (fn(variables, jax.device_put(batch, data)), count)
    if pending is not None:
      yield np.asarray(pending[0])[:pending[1]]
    pending = result
  if pending is not None:
    yield np.asarray(pending[0])[:pending[1]]


# ---------------------------------------------------------------------------------------------
# Statistics (float64, on the host) and the Fréchet distance.


class Statistics(NamedTuple):
  mu: np.ndarray     # (D,) float64
  sigma: np.ndarray  # (D, D) float64, the unbiased covariance (np.cov's)
  count: int


def feature_statistics(features) -> Statistics:
  """Mean and covariance of features (N, D) in float64, as pytorch-fid (np.mean, np.cov)."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or len(features) < 2:
    raise ValueError(f"features must have shape (N, D) with N >= 2; got {features.shape}")
  return Statistics(np.mean(features, axis=0), np.cov(features, rowvar=False), len(features))


class StatisticsAccumulator:
  """Mean and covariance of features given batch by batch, in float64.

  Sums are taken around the first batch's mean, so that features with a large mean lose no
  digits to cancellation; the result equals `feature_statistics` of all rows to rounding.
  """

  def __init__(self):
    self.count, self.shift, self.total, self.cross = 0, None, None, None

  def update(self, features) -> None:
    features = np.asarray(features, np.float64)
    if features.ndim != 2:
      raise ValueError(f"features must have shape (b, D); got {features.shape}")
    if not len(features):
      return
    if not np.isfinite(features).all():
      raise ValueError(f"{np.sum(~np.isfinite(features))} feature values are not finite")
    if self.shift is None:
      dim = features.shape[1]
      self.shift = features.mean(axis=0)
      self.total, self.cross = np.zeros(dim), np.zeros((dim, dim))
    centred = features - self.shift
    self.total += centred.sum(axis=0)
    self.cross += centred.T @ centred
    self.count += len(features)

  def result(self) -> Statistics:
    if self.count < 2:
      raise ValueError(f"statistics need at least 2 feature rows; got {self.count}")
    mean = self.total / self.count
    sigma = (self.cross - self.count * np.outer(mean, mean)) / (self.count - 1)
    return Statistics(self.shift + mean, (sigma + sigma.T) / 2, self.count)


def image_statistics(network: FeatureNetwork, images, batch_size: int = DEFAULT_BATCH
                     ) -> Statistics:
  """Float64 statistics of `network`'s features of `images` (as `iter_features` takes them)."""
  accumulator = StatisticsAccumulator()
  for features in iter_features(network, images, batch_size):
    accumulator.update(features)
  return accumulator.result()


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
  """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)), as pytorch-fid.

  The square root is `scipy.linalg.sqrtm` of the product in float64. Where it is not finite (a
  singular product), eps * I is added to both covariances and the root taken again; a complex
  root whose diagonal has an imaginary part above 1e-3 raises ValueError, a smaller one is
  dropped.
  """
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
    raise ValueError(f"statistics differ in shape: mu {mu1.shape} and {mu2.shape}, sigma "
                     f"{sigma1.shape} and {sigma2.shape}")
  diff = mu1 - mu2
  covmean = linalg.sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    logging.warning("FID: sqrtm of the covariance product is not finite (singular product); "
                    "adding %g to the diagonal of both covariances", eps)
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ValueError(f"FID: sqrtm of the covariance product has an imaginary component of "
                       f"{np.max(np.abs(covmean.imag)):g}")
    covmean = covmean.real
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(stats1: Statistics, stats2: Statistics) -> float:
  return frechet_distance(stats1.mu, stats1.sigma, stats2.mu, stats2.sigma)


# ---------------------------------------------------------------------------------------------
# Reference statistics of a real split, cached.


def statistics_path(cache_dir: str, source_name: str, network: FeatureNetwork):
  """Where the statistics of `source_name` under `network` are cached (.npz; .json beside)."""
  stem = (f"{embeddings.file_stem(source_name)}.fid-{embeddings.file_stem(network.name)}."
          f"{network.weights_sha256[:12]}")
  return embeddings.cache_dir_path(cache_dir) / f"{stem}.npz"


def _refuse(path, what: str, kind: str = "statistics") -> StatisticsCacheError:
  return StatisticsCacheError(f"FID {kind} cache {path} {what}; delete it and its .json to "
                              "recompute, or use another cache_dir")


def _check(path, meta: dict, source, network: FeatureNetwork, num_images: int,
           kind: str = "statistics", **more) -> None:
  """Refuses `meta` unless it is of `source` (count, shape, sampled images), `network` and
  `num_images`, and has the values `more` names."""
  expected = {"format": FORMAT, "dataset": source.name, "dataset_count": len(source),
              "image_shape": list(source.shape), "num_images": num_images,
              "feature_network": network.name, "weights_sha256": network.weights_sha256, **more}
  refuse = functools.partial(_refuse, kind=kind)
  for key, now in expected.items():
    if meta.get(key) != now:
      raise refuse(path, f"was computed with {key} {meta.get(key)!r}; this run has "
                         f"{now!r}")
  fingerprint = embeddings.sample_fingerprint(source, meta["sample_size"])
  if meta["sample_fingerprint"] != fingerprint:
    raise refuse(path, f"was computed from other images of {source.name!r} (sample sha256 "
                       f"{meta['sample_fingerprint'][:16]}..., the dataset's now "
                       f"{fingerprint[:16]}...)")


def _source_batches(source, indices: np.ndarray, batch_size: int, what: str
                    ) -> Iterator[np.ndarray]:
  progress = embeddings.Progress(len(indices), f"FID {what} of {source.name}")
  for start in range(0, len(indices), batch_size):
    yield source.images(indices[start:start + batch_size])
    progress.update(min(start + batch_size, len(indices)))


def _meta(source, network: FeatureNetwork, num_images: int, feature_dim: int, started: float,
          **more) -> dict:
  return {"format": FORMAT, "dataset": source.name, "dataset_count": len(source),
          "image_shape": list(source.shape), "num_images": num_images, **more,
          "sample_fingerprint": embeddings.sample_fingerprint(source),
          "sample_size": embeddings.SAMPLE_SIZE, "feature_network": network.name,
          "weights_sha256": network.weights_sha256, "feature_dim": feature_dim,
          "seconds": round(time.time() - started, 1)}


def _computed_once(path, compute: Callable[[], Any], what: str) -> None:
  """Runs `compute` on process 0 where the cache file at `path` is not complete (its .json
  missing); with several processes the others wait for it at a barrier named after `path`."""
  if jax.process_index() == 0 and not embeddings.meta_path(path).exists():
    logging.info("No %s at %s: computing them", what, path)
    compute()
  if jax.process_count() > 1:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    multihost_utils.sync_global_devices(f"smallgan_{what.lower().replace(' ', '_')}:{digest}")


def compute_reference(source, network: FeatureNetwork, cache_dir: str,
                      num_images: Optional[int] = None, batch_size: int = DEFAULT_BATCH):
  """Computes the statistics of the first `num_images` images of `source` (all if None) and
  writes them with their metadata (overwriting any there); returns the .npz path."""
  num_images = len(source) if num_images is None else min(int(num_images), len(source))
  path = statistics_path(cache_dir, source.name, network)
  started = time.time()
  batches = _source_batches(source, np.arange(num_images), batch_size, "statistics")
  stats = image_statistics(network, batches, batch_size)
  meta = _meta(source, network, num_images, int(stats.mu.shape[0]), started)

  def write(f):
    np.savez(f, mu=stats.mu, sigma=stats.sigma)

  checkpointing.write_atomically(path, write)
  checkpointing.write_json_atomically(embeddings.meta_path(path), meta)  # Last: marks it complete.
  logging.info("Saved the %s FID statistics of %s (%d images) to %s in %.0f s", network.name,
               source.name, num_images, path, meta["seconds"])
  return path


def load_reference(path, source, network: FeatureNetwork, num_images: Optional[int] = None
                   ) -> Statistics:
  """The cached statistics at `path`, checked against `source` and `network` (`_check`)."""
  num_images = len(source) if num_images is None else min(int(num_images), len(source))
  try:
    meta = json.loads(embeddings.meta_path(path).read_text())
    with path.open("rb") as f, np.load(f, allow_pickle=False) as npz:
      mu, sigma = npz["mu"], npz["sigma"]
  except (OSError, ValueError, KeyError) as e:
    raise _refuse(path, f"cannot be read ({type(e).__name__}: {e})") from None
  _check(path, meta, source, network, num_images)
  dim = meta["feature_dim"]
  if mu.shape != (dim,) or sigma.shape != (dim, dim) or mu.dtype != np.float64:
    raise _refuse(path, f"holds mu {mu.dtype}{mu.shape} and sigma {sigma.shape}; expected "
                  f"float64 ({dim},) and ({dim}, {dim})")
  return Statistics(mu, sigma, num_images)


def reference_statistics(source, network: FeatureNetwork,
                         cache_dir: str = embeddings.DEFAULT_CACHE_DIR,
                         num_images: Optional[int] = None,
                         batch_size: int = DEFAULT_BATCH) -> Statistics:
  """The statistics of `source` (an `embeddings.ImageSource`) under `network`, computed once.

  With several processes, process 0 computes missing statistics and the others wait for them.
  """
  path = statistics_path(cache_dir, source.name, network)
  _computed_once(path, lambda: compute_reference(source, network, cache_dir, num_images,
                                                 batch_size), "FID statistics")
  return load_reference(path, source, network, num_images)


# ---------------------------------------------------------------------------------------------
# Reference features of a fixed subset of a real split, cached.


def subset_indices(num_images: int, count: int, seed: int = SUBSET_SEED) -> np.ndarray:
  """The sorted indices of the real subset: `count` of `num_images` (all if fewer), drawn
  without replacement from `seed`."""
  count = min(count, num_images)
  return np.sort(np.random.default_rng(seed).choice(num_images, count, replace=False))


def features_path(cache_dir: str, source_name: str, network: FeatureNetwork, count: int):
  """Where the features of the `count`-image subset are cached (.npz; .json beside), keyed as
  the statistics."""
  stem = statistics_path(cache_dir, source_name, network).name.removesuffix(".npz")
  return embeddings.cache_dir_path(cache_dir) / f"{stem}.features-{count}.npz"


def compute_reference_features(source, network: FeatureNetwork, cache_dir: str, count: int,
                               batch_size: int = DEFAULT_BATCH):
  """Computes the features of `subset_indices(len(source), count)` and writes them with their
  indices and metadata (overwriting any there); returns the .npz path."""
  indices = subset_indices(len(source), count)
  path = features_path(cache_dir, source.name, network, len(indices))
  started = time.time()
  batches = _source_batches(source, indices, batch_size, "reference features")
  features = np.concatenate(list(iter_features(network, batches, batch_size)))
  meta = _meta(source, network, len(indices), int(features.shape[1]), started,
               subset_seed=SUBSET_SEED)

  def write(f):
    np.savez(f, features=features, indices=indices)

  checkpointing.write_atomically(path, write)
  checkpointing.write_json_atomically(embeddings.meta_path(path), meta)  # Last: marks it complete.
  logging.info("Saved the %s features of %d images of %s to %s in %.0f s", network.name,
               len(indices), source.name, path, meta["seconds"])
  return path


def load_reference_features(path, source, network: FeatureNetwork, count: int) -> np.ndarray:
  """The cached features at `path`, checked against `source`, `network` and the subset's
  indices."""
  indices = subset_indices(len(source), count)
  refuse = functools.partial(_refuse, kind="features")
  try:
    meta = json.loads(embeddings.meta_path(path).read_text())
    with path.open("rb") as f, np.load(f, allow_pickle=False) as npz:
      features, stored = npz["features"], npz["indices"]
  except (OSError, ValueError, KeyError) as e:
    raise refuse(path, f"cannot be read ({type(e).__name__}: {e})") from None
  _check(path, meta, source, network, len(indices), kind="features", subset_seed=SUBSET_SEED)
  dim = meta["feature_dim"]
  if features.shape != (len(indices), dim) or features.dtype != np.float32:
    raise refuse(path, f"holds features {features.dtype}{features.shape}; expected float32 "
                 f"({len(indices)}, {dim})")
  if not np.array_equal(stored, indices):
    raise refuse(path, f"holds the features of other images of {source.name!r} than the "
                 f"seed-{SUBSET_SEED} subset of {len(indices)}")
  return features


def reference_features(source, network: FeatureNetwork, count: int,
                       cache_dir: str = embeddings.DEFAULT_CACHE_DIR,
                       batch_size: int = DEFAULT_BATCH) -> np.ndarray:
  """Float32 features (min(count, len(source)), D) of the fixed real subset `subset_indices`,
  computed once (process 0; the others wait), as `reference_statistics`."""
  path = features_path(cache_dir, source.name, network, min(count, len(source)))
  _computed_once(path, lambda: compute_reference_features(source, network, cache_dir, count,
                                                          batch_size), "FID reference features")
  return load_reference_features(path, source, network, count)
