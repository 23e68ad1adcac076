"""The scores of generated images that a run computes at each evaluation, from `config.fid`.

  inception   -> "fid": the FID Inception's pool3 (needs the converted weights; the published FID)
  classifier  -> "classifier_fid": the same Fréchet distance on the penultimate features of the
                 project's classifier (`smallgan_jax.classifier`), for data without Inception
                 weights at hand (Fashion-MNIST on this machine). Its seed defaults to 1, so the
                 network that scores samples is not the one (seed 0) whose features pick the
                 target core-sets; seed 0 scores with the picking network, as the paper does with
                 Inception.

Both are built before any model, with their reference statistics of the training split (cached
by `fid.reference_statistics`), so missing weights or data fail a run in seconds, in one line.
"""
import dataclasses
from typing import Any

import ml_collections
import numpy as np

from smallgan_jax import classifier, embeddings
from smallgan_jax.metrics import fid

FEATURES = ("inception", "classifier")
METRIC_NAMES = {"inception": "fid", "classifier": "classifier_fid"}


def fid_config(**overrides: Any) -> ml_collections.ConfigDict:
  """The `config.fid` block of an image config; `overrides` set fields.

  features:         which scores each evaluation computes, a tuple of names in `FEATURES`.
  classifier_seed:  the seed of the classifier behind "classifier_fid" (0: the one whose
                    features pick the target core-sets).
  """
  config = ml_collections.ConfigDict({"features": ("classifier",), "classifier_seed": 1})
  config.update(overrides)
  return config


@dataclasses.dataclass(frozen=True)
class FIDScore:
  """One Fréchet distance: generated pixels against the training split's statistics."""
  metric: str
  network: fid.FeatureNetwork
  reference: fid.Statistics

  def __call__(self, pixels: np.ndarray) -> float:
    return fid.fid(fid.image_statistics(self.network, pixels), self.reference)


def feature_network(config: ml_collections.ConfigDict, feature: str,
                    source: embeddings.ImageSource) -> fid.FeatureNetwork:
  """The network of `feature`: the converted FID Inception (`config.coreset.inception_weights`,
  '' for the default path), or the classifier of `config.fid.classifier_seed`, trained on
  `source` if it is not saved in `config.coreset.cache_dir`."""
  settings = embeddings.settings_from_config(config)
  if feature == "inception":
    return fid.load_inception(settings.inception_weights or None)
  trained = classifier.load_or_train(
      settings.cache_dir, source, None,
      settings=classifier.TrainSettings(seed=config.fid.classifier_seed))
  return fid.classifier_network(trained)


def fid_scores(config: ml_collections.ConfigDict,
               source: embeddings.ImageSource) -> tuple[FIDScore, ...]:
  """The scores `config.fid.features` names, each with its reference statistics of `source`."""
  cache_dir = embeddings.settings_from_config(config).cache_dir
  scores = []
  for feature in config.fid.features:
    network = feature_network(config, feature, source)
    scores.append(FIDScore(METRIC_NAMES[feature], network,
                           fid.reference_statistics(source, network, cache_dir)))
  return tuple(scores)
