"""Tests for smallgan_jax.preparation: the line a run logs before preparing classifiers, FID
statistics and embeddings names exactly what is missing, in order, and nothing once cached."""
import logging

import ml_collections
import pytest

from smallgan_jax import embeddings, preparation
from smallgan_jax.features import classifier
from smallgan_jax.metrics import image_scores
from tests.classifier_test import FAST, quadrant_source


def image_config(cache_dir, **fid):
  return ml_collections.ConfigDict({
      "coreset": {"embedding": "classifier2", "embedding_dim": 4, "cache_dir": str(cache_dir),
                  "factor_target": 8},
      "fid": image_scores.fid_config(**{"features": ("classifier2",), "classifier_seed": 1,
                                        "real_subset": 16, **fid})})


@pytest.fixture
def fast_network(monkeypatch):
  """`classifier2` trains as the tests' few-step network."""
  monkeypatch.setitem(classifier.RECIPES, "classifier2", FAST)


def test_a_cold_cache_names_every_preparation_in_order(tmp_path, fast_network):
  source = quadrant_source("quads/train", 24)
  assert preparation.missing(image_config(tmp_path), source, source) == [
      "train the classifier2 classifier (seed 1) on quads/train: 4 epochs of its 96 images",
      "the classifier2-all-seed1 FID statistics and the features of a real subset of quads/train "
      "(96 images)",
      "train the classifier2 classifier (seed 0) on quads/train: 4 epochs of its 96 images",
      "the classifier2-all embeddings of quads/train (96 images)"]


def test_nothing_is_named_once_prepared_and_the_line_is_logged_only_before(tmp_path, fast_network,
                                                                           caplog):
  source = quadrant_source("quads/train", 24)
  config = image_config(tmp_path)
  with caplog.at_level(logging.INFO):
    preparation.announce(config, source, source)
  lines = [r.getMessage() for r in caplog.records if "Before the first step" in r.getMessage()]
  assert len(lines) == 1 and "\n" not in lines[0] and str(tmp_path) in lines[0]
  assert lines[0].endswith("the classifier2-all embeddings of quads/train (96 images)")

  image_scores.fid_scores(config, source)
  assert preparation.missing(config, source, source) == [
      "train the classifier2 classifier (seed 0) on quads/train: 4 epochs of its 96 images",
      "the classifier2-all embeddings of quads/train (96 images)"]
  embeddings.load_or_build(config, source)
  assert preparation.missing(config, source, source) == []
  caplog.clear()
  with caplog.at_level(logging.INFO):
    preparation.announce(config, source, source)
  assert not [r for r in caplog.records if "Before the first step" in r.getMessage()]


def test_inception_weights_and_runs_without_a_target_core_set(tmp_path):
  source = quadrant_source("quads/train", 24)
  config = image_config(tmp_path, features=("inception",), coverage=False)
  config.coreset.inception_weights = str(tmp_path / "absent.npz")
  config.coreset.factor_target = 1
  assert preparation.missing(config, source, source) == [
      "fetch the FID Inception weights",
      "the inception FID statistics of quads/train (96 images)"]
