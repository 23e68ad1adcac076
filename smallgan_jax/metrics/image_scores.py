"""The scores of generated images that a run computes at each evaluation, from `config.fid`.

  inception   -> "fid": the FID Inception's pool3 (needs the converted weights; the published FID)
  classifier2 -> "classifier2_fid": the same Fréchet distance on the penultimate features of the
                 project's classifier (`smallgan_jax.features.classifier`), for data without
                 Inception weights at hand (Fashion-MNIST on this machine). Its seed defaults to
                 1, so the network that scores samples is not the one (seed 0) whose features
                 pick the target core-sets; seed 0 scores with the picking network, as the paper
                 does with Inception.
  classifier  -> "classifier_fid": as "classifier2", on the slower-to-train network that scored
                 every run before issue 24 (`classifier.RECIPES`); its scores compare with those.

Each feature network gives a dict of scores, named with its prefix ("" for the Inception,
"classifier_" for the classifier): `fid`; with `config.fid.coverage` also `precision`, `recall`
(k = pr_k), `density`, `coverage` (k = dc_k) and `kid` (`coverage.py`), of the generated samples
against the features of a fixed subset of `real_subset` training images; and where the network
has class logits (the Inception) `inception_score` and `inception_score_std` (10 splits). So an
Inception run writes `fid`, `precision`, ..., `kid`, `inception_score`; a classifier run
`classifier_fid`, `classifier_precision`, ..., `classifier_kid`.

All are built before any model, with their reference statistics and features of the training
split (cached by `fid.reference_statistics` and `fid.reference_features`), so missing weights or
data fail a run in seconds, in one line. Where the Inception is also the embedding model, a cold
start writes those caches and the embedding array from one pass over the split first
(`smallgan_jax.reference_pass`); the loaders here then find them.
"""
import dataclasses
from typing import Any, Optional

import ml_collections
import numpy as np

from smallgan_jax import features
from smallgan_jax.data import images
from smallgan_jax.features import classifier
from smallgan_jax.metrics import coverage, fid

FEATURES = ("inception", *classifier.RECIPES)
METRIC_NAMES = {"inception": "fid", **{name: f"{name}_fid" for name in classifier.RECIPES}}


def fid_config(**overrides: Any) -> ml_collections.ConfigDict:
  """The `config.fid` block of an image config; `overrides` set fields.

  features:         which scores each evaluation computes, a tuple of names in `FEATURES`.
  classifier_seed:  the seed of the classifier behind "classifier_fid" (0: the one whose
                    features pick the target core-sets).
  download:         whether "fid" downloads pytorch-fid's Inception weights on first use
                    (`inception.fetch_weights`); off, missing weights fail the run in one line.
  coverage:         also score precision, recall, density, coverage and KID on each network's
                    features (`coverage.py`; blocked k-NN passes over generated x real samples).
                    The Inception Score, where the network has classes, is scored either way.
  pr_k:             the k of improved precision and recall (Kynkäänniemi et al.: 3).
  dc_k:             the k of density and coverage (Naeem et al.: 5).
  kid_subsets:      KID is the mean unbiased MMD^2 over this many random subsets ...
  kid_subset_size:  ... of this many generated and as many real samples (fewer if a set is
                    smaller); 100 x 1000 as clean-fid and torch-fidelity.
  real_subset:      how many training images (a fixed seed-0 draw, `fid.subset_indices`) the
                    coverage metrics compare against; 0: as many as `eval_num_samples`.
  """
  config = ml_collections.ConfigDict({"features": ("classifier2",), "classifier_seed": 1,
                                      "download": True, "coverage": True, "pr_k": 3, "dc_k": 5,
                                      "kid_subsets": 100, "kid_subset_size": 1000,
                                      "real_subset": 0})
  config.update(overrides)
  return config


@dataclasses.dataclass(frozen=True)
class FIDScore:
  """The scores of one feature network: the Fréchet distance of generated pixels to the training
  split's statistics, named `metric` ("fid", "classifier_fid"); with `real` (the features of
  the real subset) the coverage metrics; with the network's class logits the Inception Score.
  The other names take the FID's prefix ("classifier_precision")."""
  metric: str
  network: features.FeatureNetwork
  reference: fid.Statistics
  real: Optional[coverage.RealReference] = None

  def __call__(self, pixels: np.ndarray) -> dict[str, float]:
    """{name: score} of uint8 `pixels` (N, H, W, C), from one pass of the network over them."""
    rows = np.concatenate(list(features.iter_features(self.network, pixels)))
    statistics = fid.StatisticsAccumulator()
    statistics.update(rows)
    scores = {"fid": fid.fid(statistics.result(), self.reference)}
    if self.real is not None:
      scores.update(self.real(rows))
    if self.network.logits is not None:
      mean, std = coverage.inception_score(self.network.logits(rows))
      scores.update(inception_score=mean, inception_score_std=std)
    prefix = self.metric.removesuffix("fid")
    return {prefix + name: value for name, value in scores.items()}


def feature_network(config: ml_collections.ConfigDict, feature: str,
                    source: images.ImageSource) -> features.FeatureNetwork:
  """The network of `feature`: the converted FID Inception (`config.coreset.inception_weights`,
  '' for the default path), or the classifier of `config.fid.classifier_seed`, trained on
  `source` if it is not saved in `config.coreset.cache_dir` (`features.network_files`)."""
  files = features.network_files(config)
  if feature == "inception":
    return features.load_inception(files.inception_weights, download=config.fid.download)
  trained = classifier.load_or_train(
      files.cache_dir, source, None,
      settings=classifier.recipe(feature, config.fid.classifier_seed), network=feature)
  return features.classifier_network(trained)


def coverage_settings(config: ml_collections.ConfigDict) -> coverage.Settings:
  """The k's and KID subsets of `config.fid`."""
  return coverage.Settings(config.fid.pr_k, config.fid.dc_k, config.fid.kid_subsets,
                           config.fid.kid_subset_size)


def real_subset_size(config: ml_collections.ConfigDict) -> int:
  """The training images the coverage metrics compare against: `config.fid.real_subset`, or
  as many as an evaluation generates."""
  return config.fid.real_subset or config.eval_num_samples


def fid_scores(config: ml_collections.ConfigDict,
               source: images.ImageSource) -> tuple[FIDScore, ...]:
  """The scores `config.fid.features` names, each with its reference statistics of `source`
  and, with `config.fid.coverage`, the features of its fixed real subset."""
  cache_dir = features.network_files(config).cache_dir
  scores = []
  for feature in config.fid.features:
    network = feature_network(config, feature, source)
    statistics = fid.reference_statistics(source, network, cache_dir)
    real = None
    if config.fid.coverage:
      rows = fid.reference_features(source, network, real_subset_size(config), cache_dir)
      real = coverage.RealReference.build(rows, coverage_settings(config))
    scores.append(FIDScore(METRIC_NAMES[feature], network, statistics, real))
  return tuple(scores)
