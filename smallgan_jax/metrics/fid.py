"""Fréchet distance between feature statistics (FID), as pytorch-fid computes it, and the cached
references of a real split.

Features come from a `features.FeatureNetwork` (the FID Inception's pool3 or the classifier's
penultimate layer, `smallgan_jax.features`); their mean and covariance are accumulated in float64
on the host (`image_statistics`); `frechet_distance` compares two such statistics with
`scipy.linalg.sqrtm`, exactly as pytorch-fid's `calculate_frechet_distance`.

The statistics of a real split are computed once per (dataset/split, network, weights sha256) and
cached beside the embeddings (`reference_statistics`; the directory and checks of `caching.py`):

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
import functools
import hashlib
import json
import time
import warnings
from typing import Any, Callable, Iterator, NamedTuple, Optional

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np
from scipy import linalg

from smallgan_jax import caching, checkpointing
from smallgan_jax import features as features_lib
from smallgan_jax.data import images as images_lib

FORMAT = 1
SUBSET_SEED = 0  # Draws the real subset whose features the coverage metrics compare against.
_BATCH = features_lib.DEFAULT_BATCH
_Network = features_lib.FeatureNetwork  # Short names for the signatures.
_Source = images_lib.ImageSource


class StatisticsCacheError(caching.CacheError):
  """Cached reference statistics or features that do not belong to this source or network; one
  line."""


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


def image_statistics(network: _Network, images, batch_size: int = _BATCH
                     ) -> Statistics:
  """Float64 statistics of `network`'s features of `images` (as `iter_features` takes them)."""
  accumulator = StatisticsAccumulator()
  for features in features_lib.iter_features(network, images, batch_size):
    accumulator.update(features)
  return accumulator.result()


def _sqrtm(matrix: np.ndarray) -> tuple[np.ndarray, list[str]]:
  """`linalg.sqrtm(matrix)` and the messages of the `LinAlgWarning`s it raised, caught instead of
  shown: scipy >= 1.16 warns of a singular or ill-conditioned matrix and still returns a finite
  root, which the caller keeps (as pytorch-fid does) and reports in its own log line. Other
  warnings pass on."""
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", linalg.LinAlgWarning)
    root = linalg.sqrtm(matrix)
  notes = []
  for warning in caught:
    if issubclass(warning.category, linalg.LinAlgWarning):
      notes.append(str(warning.message).split(".")[0])
    else:
      warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
  return root, notes


def _quoted(template: str, notes: list[str]) -> str:
  """`template` % the warnings `_sqrtm` caught, quoted, for a log line; '' if none."""
  return template % "; ".join(repr(note) for note in notes) if notes else ""


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
  """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)), as pytorch-fid.

  The square root is `scipy.linalg.sqrtm` of the product in float64. Where it is not finite, eps *
  I is added to both covariances and the root taken again; a complex root whose diagonal has an
  imaginary part above 1e-3 raises ValueError, a smaller one is dropped. A singular product (a
  feature dimension that never varies, e.g. a dead ReLU of the classifier) gets a finite root and
  a LinAlgWarning from scipy >= 1.16: the root is kept, as pytorch-fid keeps it with this scipy,
  and the warning becomes one log line.
  """
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
    raise ValueError(f"statistics differ in shape: mu {mu1.shape} and {mu2.shape}, sigma "
                     f"{sigma1.shape} and {sigma2.shape}")
  diff = mu1 - mu2
  covmean, notes = _sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    offset = np.eye(sigma1.shape[0]) * eps
    covmean, retried = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    logging.warning("FID: sqrtm of the covariance product is not finite%s; added %g to the "
                    "diagonal of both covariances and took the root again%s",
                    _quoted(" (scipy warned %s)", notes), eps,
                    _quoted(", which warned %s", retried))
  elif notes:
    logging.info("FID: sqrtm of the covariance product warned %s (a feature dimension that never "
                 "varies?); the root is finite, so it is kept without an eps offset, as "
                 "pytorch-fid keeps it", _quoted("%s", notes))
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


def _stem(source_name: str, network_name: str) -> str:
  return f"{caching.file_stem(source_name)}.fid-{caching.file_stem(network_name)}."


def statistics_path(cache_dir: str, source_name: str, network: _Network):
  """Where the statistics of `source_name` under `network` are cached (.npz; .json beside)."""
  stem = _stem(source_name, network.name) + network.weights_sha256[:12]
  return caching.cache_dir_path(cache_dir) / f"{stem}.npz"


def statistics_cached(cache_dir: str, source_name: str, network_name: str) -> bool:
  """Whether complete statistics of `source_name` under a network of this name are cached, of
  any weights (without the network: they are checked against its weights when loaded)."""
  stem = _stem(source_name, network_name)
  return any(path.name.startswith(stem) and ".features-" not in path.name
             for path in caching.cache_dir_path(cache_dir).glob("*.json"))


def _refuse(path, what: str, kind: str = "statistics") -> StatisticsCacheError:
  return StatisticsCacheError(f"FID {kind} cache {path} {what}; delete it and its .json to "
                              "recompute, or use another cache_dir")


def _check(path, meta: dict, source: _Source, network: _Network, num_images: int,
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
  fingerprint = caching.sample_fingerprint(source, meta["sample_size"])
  if meta["sample_fingerprint"] != fingerprint:
    raise refuse(path, f"was computed from other images of {source.name!r} (sample sha256 "
                       f"{meta['sample_fingerprint'][:16]}..., the dataset's now "
                       f"{fingerprint[:16]}...)")


def source_batches(source: _Source, indices: np.ndarray, batch_size: int, what: str
                   ) -> Iterator[np.ndarray]:
  """The images of `source` at `indices`, `batch_size` at a time, logging "FID `what` of <source>"
  progress (`caching.Progress`)."""
  progress = caching.Progress(len(indices), f"FID {what} of {source.name}")
  for start in range(0, len(indices), batch_size):
    yield source.images(indices[start:start + batch_size])
    progress.update(min(start + batch_size, len(indices)))


def _meta(source: _Source, network: _Network, num_images: int, feature_dim: int, started: float,
          **more) -> dict:
  return {"format": FORMAT, "dataset": source.name, "dataset_count": len(source),
          "image_shape": list(source.shape), "num_images": num_images, **more,
          "sample_fingerprint": caching.sample_fingerprint(source),
          "sample_size": caching.SAMPLE_SIZE, "feature_network": network.name,
          "weights_sha256": network.weights_sha256, "feature_dim": feature_dim,
          "seconds": round(time.time() - started, 1)}


def _save(path, arrays: dict, meta: dict) -> None:
  """Writes `arrays` to the .npz at `path`, then its metadata: the .json marks it complete."""
  checkpointing.write_atomically(path, lambda f: np.savez(f, **arrays))
  checkpointing.write_json_atomically(caching.meta_path(path), meta)


def _read(path, names: tuple[str, ...], kind: str) -> tuple[dict, list]:
  """The metadata of the cache file at `path` and its arrays `names`; a file that cannot be read
  is refused (`_refuse`)."""
  try:
    meta = json.loads(caching.meta_path(path).read_text())
    with path.open("rb") as f, np.load(f, allow_pickle=False) as npz:
      return meta, [npz[name] for name in names]
  except (OSError, ValueError, KeyError) as e:
    raise _refuse(path, f"cannot be read ({type(e).__name__}: {e})", kind) from None


def _computed_once(path, compute: Callable[[], Any], what: str) -> None:
  """Runs `compute` on process 0 where the cache file at `path` is not complete (its .json
  missing); with several processes the others wait for it at a barrier named after `path`."""
  if jax.process_index() == 0 and not caching.meta_path(path).exists():
    logging.info("No %s at %s: computing them", what, path)
    compute()
  if jax.process_count() > 1:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    multihost_utils.sync_global_devices(f"smallgan_{what.lower().replace(' ', '_')}:{digest}")


def compute_reference(source: _Source, network: _Network, cache_dir: str,
                      num_images: Optional[int] = None, batch_size: int = _BATCH):
  """Computes the statistics of the first `num_images` images of `source` (all if None) and
  writes them with their metadata (overwriting any there); returns the .npz path."""
  num_images = len(source) if num_images is None else min(int(num_images), len(source))
  started = time.time()
  batches = source_batches(source, np.arange(num_images), batch_size, "statistics")
  stats = image_statistics(network, batches, batch_size)
  return save_reference(source, network, cache_dir, stats, started)


def save_reference(source: _Source, network: _Network, cache_dir: str, stats: Statistics,
                   started: float):
  """Writes `stats`, of the first `stats.count` images of `source` under `network`, with their
  metadata (overwriting any there); returns the .npz path. `started`: when the computation began
  (`time.time()`)."""
  path = statistics_path(cache_dir, source.name, network)
  meta = _meta(source, network, stats.count, int(stats.mu.shape[0]), started)
  _save(path, {"mu": stats.mu, "sigma": stats.sigma}, meta)
  logging.info("Saved the %s FID statistics of %s (%d images) to %s in %.0f s", network.name,
               source.name, stats.count, path, meta["seconds"])
  return path


def load_reference(path, source: _Source, network: _Network, num_images: Optional[int] = None
                   ) -> Statistics:
  """The cached statistics at `path`, checked against `source` and `network` (`_check`)."""
  num_images = len(source) if num_images is None else min(int(num_images), len(source))
  meta, (mu, sigma) = _read(path, ("mu", "sigma"), "statistics")
  _check(path, meta, source, network, num_images)
  dim = meta["feature_dim"]
  if mu.shape != (dim,) or sigma.shape != (dim, dim) or mu.dtype != np.float64:
    raise _refuse(path, f"holds mu {mu.dtype}{mu.shape} and sigma {sigma.shape}; expected "
                  f"float64 ({dim},) and ({dim}, {dim})")
  return Statistics(mu, sigma, num_images)


def reference_statistics(source: _Source, network: _Network,
                         cache_dir: str = caching.DEFAULT_CACHE_DIR,
                         num_images: Optional[int] = None,
                         batch_size: int = _BATCH) -> Statistics:
  """The statistics of `source` (an `ImageSource`) under `network`, computed once.

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


def features_path(cache_dir: str, source_name: str, network: _Network, count: int):
  """Where the features of the `count`-image subset are cached (.npz; .json beside), keyed as
  the statistics."""
  stem = statistics_path(cache_dir, source_name, network).name.removesuffix(".npz")
  return caching.cache_dir_path(cache_dir) / f"{stem}.features-{count}.npz"


def compute_reference_features(source: _Source, network: _Network, cache_dir: str, count: int,
                               batch_size: int = _BATCH):
  """Computes the features of `subset_indices(len(source), count)` and writes them with their
  indices and metadata (overwriting any there); returns the .npz path."""
  indices = subset_indices(len(source), count)
  started = time.time()
  batches = source_batches(source, indices, batch_size, "reference features")
  features = np.concatenate(list(features_lib.iter_features(network, batches, batch_size)))
  return save_reference_features(source, network, cache_dir, indices, features, started)


def save_reference_features(source: _Source, network: _Network, cache_dir: str,
                            indices: np.ndarray, features: np.ndarray, started: float):
  """Writes `features` (float32 (count, D)), of the images of `source` at `indices` (the subset
  `subset_indices`) under `network`, with the indices and metadata (overwriting any there);
  returns the .npz path. `started`: when the computation began (`time.time()`)."""
  path = features_path(cache_dir, source.name, network, len(indices))
  meta = _meta(source, network, len(indices), int(features.shape[1]), started,
               subset_seed=SUBSET_SEED)
  _save(path, {"features": features, "indices": indices}, meta)
  logging.info("Saved the %s features of %d images of %s to %s in %.0f s", network.name,
               len(indices), source.name, path, meta["seconds"])
  return path


def load_reference_features(path, source: _Source, network: _Network, count: int) -> np.ndarray:
  """The cached features at `path`, checked against `source`, `network` and the subset's
  indices."""
  indices = subset_indices(len(source), count)
  refuse = functools.partial(_refuse, kind="features")
  meta, (features, stored) = _read(path, ("features", "indices"), "features")
  _check(path, meta, source, network, len(indices), kind="features", subset_seed=SUBSET_SEED)
  dim = meta["feature_dim"]
  if features.shape != (len(indices), dim) or features.dtype != np.float32:
    raise refuse(path, f"holds features {features.dtype}{features.shape}; expected float32 "
                 f"({len(indices)}, {dim})")
  if not np.array_equal(stored, indices):
    raise refuse(path, f"holds the features of other images of {source.name!r} than the "
                 f"seed-{SUBSET_SEED} subset of {len(indices)}")
  return features


def reference_features(source: _Source, network: _Network, count: int,
                       cache_dir: str = caching.DEFAULT_CACHE_DIR,
                       batch_size: int = _BATCH) -> np.ndarray:
  """Float32 features (min(count, len(source)), D) of the fixed real subset `subset_indices`,
  computed once (process 0; the others wait), as `reference_statistics`."""
  path = features_path(cache_dir, source.name, network, min(count, len(source)))
  _computed_once(path, lambda: compute_reference_features(source, network, cache_dir, count,
                                                          batch_size), "FID reference features")
  return load_reference_features(path, source, network, count)
