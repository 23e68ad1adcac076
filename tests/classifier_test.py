"""Tests for smallgan_jax.features.classifier and models/classifier.py on tiny synthetic images:
training on a class list, test accuracy, save with checksum and reuse, each refusal, and the
`classifier` embedding array built from it. (The >= 90% Fashion-MNIST accuracy is measured by
benchmarks/classifier_accuracy.py, which needs the dataset package.)"""
import functools
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from smallgan_jax import caching, embeddings
from smallgan_jax.features import classifier
from smallgan_jax.models import classifier as classifier_model
from tests.embeddings_test import ArraySource, assert_one_line_naming

# Few steps: every epoch is 3 steps of 32 images on the 96 training images.
FAST = classifier.TrainSettings(epochs=4, batch_size=32, learning_rate=3e-3, channels=(8, 16),
                                feature_dim=16)


def quadrant_source(name, per_class, classes=(0, 1, 2, 3), seed=0, shape=(28, 28, 1)):
  """Class c is a bright 10x10 square in quadrant c (of 4) over dark noise."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.asarray(classes), per_class)
  images = rng.integers(0, 60, (len(labels), *shape), dtype=np.uint8)
  for i, c in enumerate(labels):
    top, left = (c % 4) // 2 * 14 + 2, c % 2 * 14 + 2
    images[i, top:top + 10, left:left + 10] = rng.integers(200, 256, (10, 10, shape[2]))
  order = rng.permutation(len(labels))
  return ArraySource(name, images[order], labels[order])


@pytest.fixture(scope="module")
def sources():
  return quadrant_source("quads/train", 24), quadrant_source("quads/test", 10, seed=1)


@pytest.fixture(scope="module")
def trained(sources):
  return classifier.train(sources[0], settings=FAST, test_source=sources[1])


@pytest.mark.parametrize("downsample", ["max_pool", "stride"])
def test_model_gives_logits_and_penultimate_features(downsample):
  for shape in ((28, 28, 1), (32, 32, 3)):
    model = classifier_model.CNNClassifier(num_classes=7, downsample=downsample)
    images = jax.ShapeDtypeStruct((2, *shape), jnp.uint8)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0), images)
    assert jax.eval_shape(model.apply, params, images).shape == (2, 7)
    features = jax.eval_shape(functools.partial(
        model.apply, method=classifier_model.CNNClassifier.features), params, images)
    assert features.shape == (2, 128) and features.dtype == jnp.float32


def test_trains_to_high_test_accuracy(trained, sources):
  assert trained.meta["test_accuracy"] >= 0.9, trained.meta
  assert trained.meta["class_ids"] == [0, 1, 2, 3] and trained.meta["classes"] is None
  assert trained.meta["train_images"] == 96 and trained.meta["test_dataset"] == "quads/test"
  assert classifier.accuracy(trained, sources[1]) == trained.meta["test_accuracy"]
  assert trained.features(sources[1].images(np.arange(5))).shape == (5, 16)


def test_a_class_list_leaves_the_other_classes_out(sources):
  indices, targets, class_ids = classifier.select(sources[0], [3, 1])
  labels = sources[0].labels(indices)
  assert class_ids == [3, 1] and len(indices) == 48 and set(labels.tolist()) == {1, 3}
  np.testing.assert_array_equal(targets, np.where(labels == 3, 0, 1))
  with pytest.raises(ValueError, match=r"embedding_classes=\[1, 5\]: quads/train has no image of "
                     r"class 5 \(its labels: \[0, 1, 2, 3\]\)"):
    classifier.select(sources[0], [1, 5])
  with pytest.raises(ValueError, match="at least 2 classes"):
    classifier.select(sources[0], [2])
  with pytest.raises(ValueError, match="a class is repeated"):
    classifier.select(sources[0], [2, 2])


def test_saved_with_checksum_and_reused(tmp_path, trained, sources, monkeypatch):
  train_source = sources[0]
  path = classifier.weights_path(str(tmp_path), train_source.name, None)
  saved = classifier.save(trained, path)
  assert path.name == "quads.train.classifier-all.msgpack"
  meta = json.loads(caching.meta_path(path).read_text())
  assert meta["sha256"] == caching.file_sha256(path) == saved.meta["sha256"]
  assert classifier.stored_sha256(str(tmp_path), train_source.name, None) == meta["sha256"]

  monkeypatch.setattr(classifier, "train", lambda *args, **kwargs: pytest.fail("retrained"))
  reused = classifier.load_or_train(str(tmp_path), train_source, None, settings=FAST)
  for got, want in zip(jax.tree.leaves(reused.params), jax.tree.leaves(trained.params)):
    np.testing.assert_array_equal(got, want)
  assert classifier.accuracy(reused, sources[1]) == trained.meta["test_accuracy"]


@pytest.mark.parametrize("change,parts", [
    ("settings", ["was trained with settings", "'epochs': 4", "'epochs': 5"]),
    ("dataset", ["was trained with count 96", "this run has 95"]),
    ("images", ["was trained on other images of 'quads/train'"]),
    ("bytes", ["has sha256", "its metadata records"]),
])
def test_a_saved_classifier_that_does_not_match_is_refused(tmp_path, trained, sources, change,
                                                          parts):
  train_source = sources[0]
  path = classifier.weights_path(str(tmp_path), train_source.name, None)
  classifier.save(trained, path)
  settings, source = FAST, train_source
  if change == "settings":
    settings = classifier.TrainSettings(**{**FAST.__dict__, "epochs": 5})
  elif change == "dataset":
    source = ArraySource(train_source.name, train_source._images[:95], train_source._labels[:95])
  elif change == "images":
    source = ArraySource(train_source.name, 255 - train_source._images, train_source._labels)
  else:
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
  with pytest.raises(caching.CacheError) as error:
    classifier.load_or_train(str(tmp_path), source, None, settings=settings)
  assert_one_line_naming(error, *parts, "delete it and its .json to retrain it")


def test_classifier_embeddings_are_built_reused_and_tied_to_the_weights(tmp_path, trained,
                                                                       sources, monkeypatch):
  train_source = sources[0]
  config = ml_collections.ConfigDict({"coreset": {
      "embedding": "classifier", "embedding_dim": 4, "embedding_classes": [0, 1, 2, 3],
      "cache_dir": str(tmp_path)}})
  path = classifier.weights_path(str(tmp_path), train_source.name, [0, 1, 2, 3])
  # Save the fixture's network as the one for this class list (the default settings would
  # train a larger one), and make sure nothing trains.
  meta = {**trained.meta, "classes": [0, 1, 2, 3],
          "settings": classifier._settings_dict(classifier.TrainSettings())}
  saved = classifier.save(classifier.Trained(trained.model, trained.params, meta), path)
  monkeypatch.setattr(classifier, "make_model", lambda n, settings: trained.model)
  monkeypatch.setattr(classifier, "train", lambda *args, **kwargs: pytest.fail("retrained"))

  built = embeddings.load_or_build(config, train_source)
  assert built.path.name == "quads.train.classifier-0-1-2-3.d4.seed0.npy"
  assert built.meta["weights_sha256"] == saved.meta["sha256"] and built.meta["raw_dim"] == 16
  assert built.meta["model_info"]["classes"] == [0, 1, 2, 3]
  features = np.asarray(trained.features(train_source.images(np.arange(96))))
  matrix = embeddings.coreset.random_projection(jax.random.PRNGKey(0), 16, 4)
  np.testing.assert_allclose(built.array, features @ np.asarray(matrix), rtol=1e-4, atol=1e-5)
  embeddings.load_or_build(config, train_source)  # Reused.

  # Retrained (other weights under the same name): the array of the old weights is refused.
  other = jax.tree.map(lambda x: x * 1.5, trained.params)
  classifier.save(classifier.Trained(trained.model, other, meta), path)
  with pytest.raises(embeddings.EmbeddingCacheError) as error:
    embeddings.load_or_build(config, train_source)
  assert_one_line_naming(error, f"weights of sha256 {saved.meta['sha256']}",
                         f"{path} now has sha256")


def test_networks_are_named_apart_and_earlier_classifiers_keep_their_settings_record():
  """`classifier2` files do not collide with `classifier`'s; a field added to the settings is not
  recorded at the value earlier classifiers were trained with, so their metadata still match."""
  assert classifier.weights_path("/c", "fashion_mnist/train", None, 1, "classifier2").name == (
      "fashion_mnist.train.classifier2-all-seed1.msgpack")
  assert not {"schedule", "downsample"} & set(classifier._settings_dict(
      classifier.recipe("classifier")))
  recorded = classifier._settings_dict(classifier.recipe("classifier2", seed=1))
  assert (recorded["schedule"], recorded["downsample"], recorded["seed"]) == ("cosine", "stride", 1)
  with pytest.raises(ValueError, match="classifier network 'classifier3': expected one of"):
    classifier.recipe("classifier3")


def test_the_cosine_schedule_is_what_trains(sources):
  cosine = classifier.train(sources[0], settings=classifier.TrainSettings(
      **{**FAST.__dict__, "schedule": "cosine"}))
  constant = classifier.train(sources[0], settings=FAST)
  differs = [float(abs(a - b).max()) > 1e-6 for a, b in zip(jax.tree.leaves(cosine.params),
                                                              jax.tree.leaves(constant.params))]
  assert all(differs)
  assert cosine.meta["settings"]["schedule"] == "cosine" and "schedule" not in constant.meta[
      "settings"]
