"""The caches written before the features layer was redrawn (issue 24) are found by today's code:
the same file names and the same digests, so running experiments reuse their classifiers, arrays
and reference statistics, and classifier FIDs before and after stay comparable. Also the
progress lines every long computation logs."""
import hashlib
import json

import flax
import jax
import ml_collections
import numpy as np
import pytest

from smallgan_jax import caching, embeddings, features
from smallgan_jax.features import classifier
from smallgan_jax.metrics import fid


class PinnedSource:
  """100 fixed 4x4 grey images: the digests below are those the code before issue 24 computed."""
  name, shape = "fashion_mnist/train", (4, 4, 1)

  def __init__(self):
    self._images = (np.arange(100 * 16) % 251).astype(np.uint8).reshape(100, 4, 4, 1)

  def __len__(self):
    return len(self._images)

  def images(self, indices):
    return self._images[np.asarray(indices)]

  def labels(self, indices):
    return np.asarray(indices) % 3


def test_fingerprints_are_the_digests_the_old_code_wrote():
  """Every cache's metadata records a sample fingerprint; a changed digest refuses them all."""
  source = PinnedSource()
  assert caching.sample_fingerprint(source) == (
      "cdf537ad97644512217c5e03b70e6faaed17ba94c81fdd1b9e8721d118bcac01")
  assert caching.full_fingerprint(source) == (
      "9e02b033396e7338ab9e03af099ff0443a4e70116cd669477b692ebb052a1a87")


def _network(name: str, sha: str) -> features.FeatureNetwork:
  def unused_apply(variables, pixels):
    raise AssertionError("recomputed a cached reference")
  return features.FeatureNetwork(name, unused_apply, {}, sha)


def test_the_names_of_existing_caches_are_the_names_computed_now(tmp_path):
  """The files in ~/.cache/smallgan_jax of the Fashion-MNIST runs, name for name."""
  cache = str(tmp_path)
  scoring = classifier.weights_path(cache, "fashion_mnist/train", None, seed=1)
  picking = classifier.weights_path(cache, "fashion_mnist/train", None)
  array = embeddings.cache_path(embeddings.Settings(model="classifier", cache_dir=cache),
                                "fashion_mnist/train")
  network = _network(classifier.network_tag(None, 1), "4fb69125dade" + "0" * 52)
  statistics = fid.statistics_path(cache, "fashion_mnist/train", network)
  reference = fid.features_path(cache, "fashion_mnist/train", network, 10000)
  assert [p.name for p in (scoring, picking, array, statistics, reference)] == [
      "fashion_mnist.train.classifier-all-seed1.msgpack",
      "fashion_mnist.train.classifier-all.msgpack",
      "fashion_mnist.train.classifier-all.d32.seed0.npy",
      "fashion_mnist.train.fid-classifier-all-seed1.4fb69125dade.npz",
      "fashion_mnist.train.fid-classifier-all-seed1.4fb69125dade.features-10000.npz"]
  assert caching.meta_path(scoring).name == "fashion_mnist.train.classifier-all-seed1.json"


def test_a_classifier_saved_under_the_old_name_is_reused_not_retrained(tmp_path, monkeypatch):
  """The scoring classifier (seed 1) behind classifier FID, written as the old code wrote it."""
  source = PinnedSource()
  settings = classifier.TrainSettings(seed=1)
  model = classifier.make_model(3, settings)
  params = jax.tree.map(np.asarray, model.init(jax.random.PRNGKey(3), np.zeros((1, 4, 4, 1),
                                                                              np.uint8)))
  data = flax.serialization.to_bytes(params)
  (tmp_path / "fashion_mnist.train.classifier-all-seed1.msgpack").write_bytes(data)
  (tmp_path / "fashion_mnist.train.classifier-all-seed1.json").write_text(json.dumps({
      "format": 1, "dataset": source.name, "count": 100,
      "sample_fingerprint": "cdf537ad97644512217c5e03b70e6faaed17ba94c81fdd1b9e8721d118bcac01",
      "classes": None, "class_ids": [0, 1, 2], "train_images": 100,
      "settings": {"epochs": 6, "batch_size": 128, "learning_rate": 0.001, "seed": 1,
                   "channels": [32, 64], "feature_dim": 128}, "train_seconds": 1.0,
      "sha256": hashlib.sha256(data).hexdigest()}))
  monkeypatch.setattr(classifier, "train", lambda *a, **k: pytest.fail("retrained"))
  trained = classifier.load_or_train(str(tmp_path), source, None, settings=settings)
  assert features.classifier_network(trained).name == "classifier-all-seed1"
  assert jax.tree.all(jax.tree.map(np.array_equal, trained.params, params))


def test_reference_statistics_written_by_the_old_code_are_loaded(tmp_path):
  """An .npz and .json as the old `fid.compute_reference` wrote them: loaded, not recomputed."""
  source = PinnedSource()
  network = _network("classifier-all-seed1", "4fb69125dade" + "1" * 52)
  stem = "fashion_mnist.train.fid-classifier-all-seed1.4fb69125dade"
  mu, sigma = np.arange(3.0), np.eye(3) * 2.0
  np.savez(tmp_path / f"{stem}.npz", mu=mu, sigma=sigma)
  (tmp_path / f"{stem}.json").write_text(json.dumps({
      "format": 1, "dataset": source.name, "dataset_count": 100, "image_shape": [4, 4, 1],
      "num_images": 100,
      "sample_fingerprint": "cdf537ad97644512217c5e03b70e6faaed17ba94c81fdd1b9e8721d118bcac01",
      "sample_size": 64, "feature_network": network.name,
      "weights_sha256": network.weights_sha256, "feature_dim": 3, "seconds": 1.0}))
  stats = fid.reference_statistics(source, network, str(tmp_path))
  np.testing.assert_array_equal(stats.mu, mu)
  np.testing.assert_array_equal(stats.sigma, sigma)


def test_an_embedding_array_written_by_the_old_code_is_loaded(tmp_path):
  source = PinnedSource()
  config = ml_collections.ConfigDict({"coreset": {"embedding": "pixels", "embedding_dim": None,
                                                  "cache_dir": str(tmp_path)}})
  array = (source.images(np.arange(100)).reshape(100, 16) / 255.0).astype(np.float32)
  np.save(tmp_path / "fashion_mnist.train.pixels.raw.seed0.npy", array)
  (tmp_path / "fashion_mnist.train.pixels.raw.seed0.json").write_text(json.dumps({
      "format": 1, "dataset": source.name, "count": 100, "image_shape": [4, 4, 1],
      "fingerprint": "9e02b033396e7338ab9e03af099ff0443a4e70116cd669477b692ebb052a1a87",
      "sample_fingerprint": "cdf537ad97644512217c5e03b70e6faaed17ba94c81fdd1b9e8721d118bcac01",
      "sample_size": 64, "model": "pixels", "model_info": {}, "weights": None,
      "weights_sha256": None, "raw_dim": 16, "embedding_dim": None, "projection_seed": 0,
      "dtype": "float32", "array_sha256": hashlib.sha256(array.tobytes()).hexdigest(),
      "build_seconds": 1.0}))
  loaded = embeddings.load_or_build(config, source)
  np.testing.assert_array_equal(loaded.array, array)
  assert embeddings.load(embeddings.settings_from_config(config), source,
                         verify_full=True).array.shape == (100, 16)


def test_progress_logs_the_rate_and_the_time_left(caplog, monkeypatch):
  clock = iter([100.0, 104.0, 110.0])
  monkeypatch.setattr(caching.time, "monotonic", lambda: next(clock))
  progress = caching.Progress(1000, "Embedding mock/train", every_s=5.0)
  with caplog.at_level("INFO"):
    progress.update(100)  # 4 s after the start: too soon for a line.
    progress.update(250)
  assert [r.getMessage() for r in caplog.records] == [
      "Embedding mock/train: 250/1000 images (25.0%), 25.0 images/s, 10 s elapsed, ETA 30 s"]


def test_progress_counts_the_rate_from_its_initial_count(caplog, monkeypatch):
  """A resumed run at step 500 of 1,000: 100 steps in 10 s is 10 steps/s, 40 s left."""
  clock = iter([0.0, 10.0])
  monkeypatch.setattr(caching.time, "monotonic", lambda: next(clock))
  progress = caching.Progress(1000, "Training", unit="steps", every_s=5.0, initial=500)
  with caplog.at_level("INFO"):
    progress.update(600)
  assert [r.getMessage() for r in caplog.records] == [
      "Training: 600/1000 steps (60.0%), 10.0 steps/s, 10 s elapsed, ETA 40 s"]
