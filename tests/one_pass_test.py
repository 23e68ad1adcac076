"""The one pass of the FID Inception over a training split (issue 24 point 5, `reference_pass`):
a cold start of an Inception-embedding, Inception-FID config runs the network over the split once
and writes every cache as the separate paths write it; caches already there are kept; configs
whose networks differ take the separate paths. The Inception is a small stand-in network (the
real one needs the converted weights and minutes of CPU); its weights file is a stand-in too."""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from smallgan_jax import caching, datasets, embeddings, features, reference_pass
from smallgan_jax.data import anomaly
from smallgan_jax.features import classifier
from smallgan_jax.metrics import fid, image_scores
from smallgan_jax.models import classifier as classifier_model

COUNT, SHAPE, SUBSET = 450, (28, 28, 1), 20  # Three batches of features.DEFAULT_BATCH.
BATCHES = -(-COUNT // features.DEFAULT_BATCH)
TIMING = ("seconds", "build_seconds")


class Source:
  """An in-memory `images.ImageSource`."""

  def __init__(self, name="toy/train", seed=0):
    self.name, self.shape = name, SHAPE
    self._images = np.random.default_rng(seed).integers(0, 256, (COUNT, *SHAPE), np.uint8)

  def __len__(self):
    return COUNT

  def images(self, indices):
    return self._images[np.asarray(indices)]


@pytest.fixture
def calls(monkeypatch):
  """Stands a small network in for the FID Inception (`features.load_inception`, which
  `features.pool3_features` and `image_scores.feature_network` call); returns the list of the
  batch sizes it was applied to, one entry per call."""
  seen, networks = [], {}
  kernel = np.random.default_rng(1).normal(size=(int(np.prod(SHAPE)), 16)).astype(np.float32)

  def apply(variables, pixels):
    jax.debug.callback(lambda x: seen.append(x.shape[0]), pixels)
    return jnp.tanh(pixels.reshape(len(pixels), -1).astype(jnp.float32) / 255.0 @ variables)

  def load_inception(weights_path=None, model=None, download=True):
    del model, download
    if weights_path not in networks:
      networks[weights_path] = features.FeatureNetwork(
          "inception", apply, kernel, caching.file_sha256(weights_path), lambda f: f[:, :10])
    return networks[weights_path]

  monkeypatch.setattr(features, "load_inception", load_inception)
  return seen


def make_config(tmp_path, cache="cache", embedding="inception", fid_features=("inception",)):
  weights = tmp_path / "inception.npz"
  if not weights.exists():
    weights.write_bytes(b"stands in for the weights")
  return ml_collections.ConfigDict({
      "dataset": "images", "eval_num_samples": 64,
      "coreset": {"embedding": embedding, "embedding_dim": 8, "projection_seed": 0,
                  "factor_target": 4, "cache_dir": str(tmp_path / cache),
                  "inception_weights": str(weights)},
      "fid": image_scores.fid_config(features=fid_features, real_subset=SUBSET, download=False,
                                     kid_subsets=2, kid_subset_size=10)})


def start(config, monkeypatch, source):
  """What a run does before its first step: the image dataset of `config` on `source`."""
  monkeypatch.setattr(anomaly, "training_sources",
                      lambda config: anomaly.TrainingSources(source, source))
  return datasets.get_dataset(config)


def cache_files(config, source):
  """The three cache paths of `config` on `source`: statistics, subset features, embeddings."""
  network = features.load_inception(config.coreset.inception_weights)
  cache_dir = config.coreset.cache_dir
  return {"statistics": fid.statistics_path(cache_dir, source.name, network),
          "features": fid.features_path(cache_dir, source.name, network, SUBSET),
          "embeddings": embeddings.cache_path(embeddings.settings_from_config(config),
                                              source.name)}


def read(path):
  """A cache file's arrays and its metadata without the timing fields."""
  meta = json.loads(caching.meta_path(path).read_text())
  with path.open("rb") as f:
    loaded = np.load(f)
    arrays = dict(loaded) if isinstance(loaded, np.lib.npyio.NpzFile) else {"array": loaded}
  return arrays, {k: v for k, v in meta.items() if k not in TIMING}


def test_a_cold_start_runs_the_network_over_the_split_once_and_writes_every_cache(
    tmp_path, monkeypatch, calls):
  source, config = Source(), make_config(tmp_path)
  dataset = start(config, monkeypatch, source)
  assert calls == [features.DEFAULT_BATCH] * BATCHES  # One pass; nothing else.
  assert all(caching.meta_path(p).exists() for p in cache_files(config, source).values())
  assert dataset.embeddings.array.shape == (COUNT, 8) and dataset.scores[0].metric == "fid"
  calls.clear()
  start(config, monkeypatch, source)  # Warm: every cache is loaded.
  assert not calls


def test_the_one_pass_writes_what_the_separate_paths_write(tmp_path, monkeypatch, calls):
  source = Source()
  together = make_config(tmp_path, "together")
  start(together, monkeypatch, source)
  alone = make_config(tmp_path, "alone")
  monkeypatch.setattr(reference_pass, "write_missing", lambda *args: None)
  calls.clear()
  start(alone, monkeypatch, source)
  # Statistics, embeddings and the subset's one batch: three passes, all at one batch shape.
  assert calls == [features.DEFAULT_BATCH] * (2 * BATCHES + 1)
  paths = cache_files(together, source)
  for name, path in cache_files(alone, source).items():
    assert path.name == paths[name].name
    (arrays, meta), (want_arrays, want_meta) = read(paths[name]), read(path)
    assert meta == want_meta, name
    assert arrays.keys() == want_arrays.keys(), name
    for key, value in arrays.items():
      np.testing.assert_array_equal(value, want_arrays[key], err_msg=f"{name}: {key}")


@pytest.mark.parametrize("present", ["statistics", "features", "embeddings"])
def test_a_cache_already_there_is_kept_and_the_others_come_from_one_pass(
    tmp_path, monkeypatch, calls, present):
  source, config = Source(), make_config(tmp_path)
  network = features.load_inception(config.coreset.inception_weights)
  build_alone = {
      "statistics": lambda: fid.reference_statistics(source, network, config.coreset.cache_dir),
      "features": lambda: fid.reference_features(source, network, SUBSET,
                                                 config.coreset.cache_dir),
      "embeddings": lambda: embeddings.load_or_build(config, source)}
  build_alone[present]()
  paths = cache_files(config, source)
  kept = os.stat(caching.meta_path(paths[present])).st_mtime_ns, paths[present].read_bytes()
  calls.clear()
  start(config, monkeypatch, source)
  assert calls == [features.DEFAULT_BATCH] * BATCHES
  assert all(caching.meta_path(p).exists() for p in paths.values())
  assert (os.stat(caching.meta_path(paths[present])).st_mtime_ns,
          paths[present].read_bytes()) == kept


def stand_in_classifier(cache_dir, source, classes=None, test_source=None,
                        settings=classifier.TrainSettings(), network="classifier"):
  """A small untrained classifier per seed, for `classifier.load_or_train` (training takes
  minutes)."""
  del cache_dir, source, classes, test_source
  model = classifier_model.CNNClassifier(num_classes=10, channels=(4,), feature_dim=8)
  params = model.init(jax.random.key(settings.seed), np.zeros((1, *SHAPE), np.uint8))
  meta = {"sha256": f"{settings.seed:02d}" * 32, "classes": None,
          "settings": {"seed": settings.seed}}
  return classifier.Trained(model, params, meta, network=network)


def test_configs_whose_networks_differ_take_the_separate_paths(tmp_path, monkeypatch, calls):
  source = Source()
  # Pixel embeddings with the Inception's FID: the network runs for the FID caches only.
  pixels = make_config(tmp_path, embedding="pixels")
  dataset = start(pixels, monkeypatch, source)
  assert len(calls) == BATCHES + 1  # Statistics, then the subset's one batch.
  assert dataset.embeddings.meta["model"] == "pixels"
  # The classifier's (seed 0) embeddings, scored by the classifier of seed 1.
  monkeypatch.setattr(classifier, "load_or_train", stand_in_classifier)
  monkeypatch.setattr(reference_pass, "one_pass", lambda *args: pytest.fail("one pass"))
  calls.clear()
  dataset = start(make_config(tmp_path, "classifier", embedding="classifier",
                              fid_features=("classifier",)), monkeypatch, source)
  assert not calls and dataset.scores[0].network.name == "classifier-all-seed1"
  assert dataset.embeddings.meta["weights_sha256"] == "00" * 32
  names = sorted(path.name for path in (tmp_path / "classifier").glob("*.json"))
  assert names == ["toy.train.classifier-all.d8.seed0.json",
                   f"toy.train.fid-classifier-all-seed1.{'01' * 6}.features-{SUBSET}.json",
                   f"toy.train.fid-classifier-all-seed1.{'01' * 6}.json"]
  # An anomaly config trains on a part of the split: not the same images.
  part = Source("toy/train-anomaly0-seed0-train", seed=2)
  reference_pass.write_missing(make_config(tmp_path, "anomaly"), source, part)
  assert not (tmp_path / "anomaly").exists()
