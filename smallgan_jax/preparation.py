"""What an image run prepares before its first step, said in one line before it starts.

On a cold cache an image run trains its classifier networks, computes the FID reference
statistics (and the coverage metrics' real features) of its split and builds the target
core-set's embedding array before step 1; each is cached in `config.coreset.cache_dir` and
reused by later runs. `announce` logs, before any of it starts, what is missing and so what the
wait is for; each preparation then logs its own progress with an ETA (`caching.Progress`).
"""
import os

from absl import logging
import ml_collections

from smallgan_jax import caching, embeddings
from smallgan_jax.data import images
from smallgan_jax.features import classifier, inception
from smallgan_jax.metrics import fid


def _classifier(cache_dir: str, source: images.ImageSource, classes, seed: int,
                network: str) -> list[str]:
  """The training of classifier `network` at `seed`, if it is not saved."""
  path = classifier.weights_path(cache_dir, source.name, classes, seed, network)
  if caching.meta_path(path).exists():
    return []
  epochs = classifier.recipe(network, seed).epochs
  return [f"train the {network} classifier (seed {seed}) on {source.name}: {epochs} epochs of "
          f"its {len(source):,} images"]


def _fid(config: ml_collections.ConfigDict, split: images.ImageSource) -> list[str]:
  """The networks and reference statistics that `config.fid` scores with, where missing."""
  settings = embeddings.settings_from_config(config)
  items = []
  for feature in config.fid.features:
    if feature == "inception":
      name = "inception"
      if not os.path.isfile(inception.resolve_weights_path(settings.inception_weights)):
        items.append("fetch the FID Inception weights")
    else:
      name = classifier.network_tag(None, config.fid.classifier_seed, feature)
      items += _classifier(settings.cache_dir, split, None, config.fid.classifier_seed, feature)
    if not fid.statistics_cached(settings.cache_dir, split.name, name):
      coverage = " and the features of a real subset" if config.fid.coverage else ""
      items.append(f"the {name} FID statistics{coverage} of {split.name} ({len(split):,} images)")
  return items


def _embeddings(config: ml_collections.ConfigDict, train: images.ImageSource) -> list[str]:
  """The target core-set's embedding array (and its classifier), where missing."""
  settings = embeddings.settings_from_config(config)
  if config.coreset.factor_target == 1 or embeddings.exists(
      embeddings.cache_path(settings, train.name)):
    return []
  items = []
  if settings.model in classifier.RECIPES:
    items += _classifier(settings.cache_dir, train, settings.classes, 0, settings.model)
  return items + [f"the {embeddings.model_tag(settings)} embeddings of {train.name} "
                  f"({len(train):,} images)"]


def missing(config: ml_collections.ConfigDict, split: images.ImageSource,
            train: images.ImageSource) -> list[str]:
  """What a run of `config` on `split` (scored against) and `train` (embedded) will prepare, in
  the order it will."""
  return (_fid(config, split) if "fid" in config else []) + _embeddings(config, train)


def announce(config: ml_collections.ConfigDict, split: images.ImageSource,
             train: images.ImageSource) -> None:
  """Logs in one line what will be prepared before the first step (nothing if all is cached)."""
  items = missing(config, split, train)
  if items:
    cache_dir = caching.cache_dir_path(embeddings.settings_from_config(config).cache_dir)
    logging.info("Before the first step this run prepares, once (cached in %s): %s", cache_dir,
                 "; ".join(items))
