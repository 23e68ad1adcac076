"""One pass of a feature network over a training split, for every cache that needs its features.

An Inception config (configs/cifar_sngan.py) picks its target core-sets by the FID Inception's
embeddings (`config.coreset.embedding = "inception"`) and scores FID with the same network
(`"inception"` in `config.fid.features`) against the same images. Three caches of that split need
the network's features: the FID statistics (`fid.reference_statistics`), the features of the
coverage metrics' real subset (`fid.reference_features`, with `config.fid.coverage`) and the
projected embedding array (`embeddings.load_or_build`). Each would run the network over the split
on its own; `write_missing` runs it once and writes every missing one from that pass, each with
the file name and metadata its own path writes, so that those loaders, which run next and check
it, take it as theirs. A cache already there is left as it is. Every pass of the network runs at
one batch shape (`features.DEFAULT_BATCH`), so a cache holds the same numbers whichever pass wrote
it.
"""
import dataclasses
import time
from typing import Iterator, Optional, Protocol

from absl import logging
import jax
import ml_collections
import numpy as np

from smallgan_jax import caching
from smallgan_jax import embeddings as embeddings_lib
from smallgan_jax import features
from smallgan_jax.data import images
from smallgan_jax.metrics import fid, image_scores

SHARED_FEATURE = "inception"  # The FID network that can also be the embedding model.


class _Cache(Protocol):
  """A missing cache that the pass fills: `add` takes the features of the next images."""
  what: str

  def add(self, start: int, rows: np.ndarray) -> None: ...

  def save(self, started: float) -> None: ...


@dataclasses.dataclass
class _Statistics:
  """The FID statistics of the whole split (`fid.reference_statistics`'s cache)."""
  source: images.ImageSource
  network: features.FeatureNetwork
  cache_dir: str
  accumulator: fid.StatisticsAccumulator = dataclasses.field(
      default_factory=fid.StatisticsAccumulator)
  what: str = "statistics"

  def add(self, start: int, rows: np.ndarray) -> None:
    del start  # Rows come in index order.
    self.accumulator.update(rows)

  def save(self, started: float) -> None:
    fid.save_reference(self.source, self.network, self.cache_dir, self.accumulator.result(),
                       started)


@dataclasses.dataclass
class _SubsetFeatures:
  """The features of the real subset `indices` (`fid.reference_features`'s cache)."""
  source: images.ImageSource
  network: features.FeatureNetwork
  cache_dir: str
  indices: np.ndarray
  chunks: list = dataclasses.field(default_factory=list)
  what: str = "reference features"

  def add(self, start: int, rows: np.ndarray) -> None:
    inside = self.indices[(self.indices >= start) & (self.indices < start + len(rows))]
    self.chunks.append(rows[inside - start])

  def save(self, started: float) -> None:
    fid.save_reference_features(self.source, self.network, self.cache_dir, self.indices,
                                np.concatenate(self.chunks), started)


@dataclasses.dataclass
class _Embeddings:
  """The projected embedding array (`embeddings.load_or_build`'s cache); it also fingerprints
  the images (`hash_pixels`), as `embeddings.compute` does."""
  settings: embeddings_lib.Settings
  source: images.ImageSource
  embedder: embeddings_lib.Embedder
  builder: embeddings_lib.ArrayBuilder
  what: str = "embeddings"

  def hash_pixels(self, pixels: np.ndarray) -> None:
    self.builder.hash_pixels(pixels)

  def add(self, start: int, rows: np.ndarray) -> None:
    del start  # Rows come in index order.
    self.builder.add(rows, len(rows))

  def save(self, started: float) -> None:
    embeddings_lib.save(self.settings, self.source, self.embedder, *self.builder.result(),
                        started)


def _missing(path) -> bool:
  """Whether the cache file at `path` is incomplete (its .json, written last, absent)."""
  return not caching.meta_path(path).exists()


def _shared_network(config: ml_collections.ConfigDict, split: images.ImageSource,
                    train: images.ImageSource) -> Optional[features.FeatureNetwork]:
  """The FID network that is also `config`'s embedding model over the same images (the
  Inception configs), or None where there is none: another embedding model, no FID with it, no
  embeddings needed, or a training part other than the split (anomaly configs)."""
  if ("fid" not in config or SHARED_FEATURE not in config.fid.features
      or not embeddings_lib.needed(config)
      or embeddings_lib.settings_from_config(config).model != SHARED_FEATURE):
    return None
  if (split.name, len(split), tuple(split.shape)) != (train.name, len(train), tuple(train.shape)):
    return None
  return image_scores.feature_network(config, SHARED_FEATURE, split)


def _missing_caches(config: ml_collections.ConfigDict, source: images.ImageSource,
                    network: features.FeatureNetwork) -> list[_Cache]:
  """The caches of `network`'s features of `source` that `config` reads and are not there, in
  the order the loaders read them. The embedding model must be `network` itself (same weights
  sha256); otherwise its array is left to `embeddings.load_or_build`."""
  settings = embeddings_lib.settings_from_config(config)
  missing = []
  if _missing(fid.statistics_path(settings.cache_dir, source.name, network)):
    missing.append(_Statistics(source, network, settings.cache_dir))
  if config.fid.coverage:
    indices = fid.subset_indices(len(source), image_scores.real_subset_size(config))
    if _missing(fid.features_path(settings.cache_dir, source.name, network, len(indices))):
      missing.append(_SubsetFeatures(source, network, settings.cache_dir, indices))
  if _missing(embeddings_lib.cache_path(settings, source.name)):
    embedder = embeddings_lib.get_embedder(settings, source)
    if embedder.weights_sha256 == network.weights_sha256:
      builder = embeddings_lib.ArrayBuilder(source, settings,
                                            features.device_batch(features.DEFAULT_BATCH))
      missing.append(_Embeddings(settings, source, embedder, builder))
  return missing


def _pixels(source: images.ImageSource, caches: list[_Cache]) -> Iterator[np.ndarray]:
  """The split's images in index order, in batches of `features.DEFAULT_BATCH`, with one set of
  progress lines for the pass; the embedding array's fingerprint takes each batch."""
  what = ", ".join(cache.what for cache in caches)
  for pixels in fid.source_batches(source, np.arange(len(source)), features.DEFAULT_BATCH, what):
    for cache in caches:
      if isinstance(cache, _Embeddings):
        cache.hash_pixels(pixels)
    yield pixels


def one_pass(source: images.ImageSource, network: features.FeatureNetwork,
             caches: list[_Cache]) -> None:
  """Runs `network` over `source` once (`features.iter_features`, `features.DEFAULT_BATCH`) and
  writes each of `caches` from the features."""
  logging.info("No %s of %s by %s: computing them in one pass", " or ".join(
      cache.what for cache in caches), source.name, network.name)
  started, start = time.time(), 0
  for rows in features.iter_features(network, _pixels(source, caches), features.DEFAULT_BATCH):
    for cache in caches:
      cache.add(start, rows)
    start += len(rows)
  for cache in caches:
    cache.save(started)


def write_missing(config: ml_collections.ConfigDict, split: images.ImageSource,
                  train: images.ImageSource) -> None:
  """Where `config`'s embedding model is one of its FID networks over the same images, writes
  the missing caches of that network's features of the split from one pass over it. Process 0
  writes; the others wait for the files at the loaders' barriers (`fid.reference_statistics`,
  `embeddings.load_or_build`), which run next on every process, in the same order."""
  if jax.process_index() != 0:
    return
  network = _shared_network(config, split, train)
  caches = [] if network is None else _missing_caches(config, split, network)
  if caches:
    one_pass(split, network, caches)
