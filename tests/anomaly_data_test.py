"""The anomaly-detection split (data/anomaly.py) and its metrics (metrics/anomaly.py), on tiny data
made by the tests; the AUPRC values expected are worked out by hand."""
import re

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from smallgan_jax.data import anomaly
from smallgan_jax.data import images
from smallgan_jax.metrics.anomaly import anomaly_metrics

LABELS = np.arange(50) % 5  # 10 images of each of 5 classes.


def test_split_sizes_and_partition():
  split = anomaly.anomaly_split(LABELS, 2)
  train, test, is_anomaly = split
  assert (len(train), len(test)) == (32, 18)  # 0.8 * 40 normals; 8 other normals + 10 anomalies.
  assert train.dtype == test.dtype == np.int64 and is_anomaly.dtype == np.bool_
  assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # Ascending, no repeats.
  assert not set(train) & set(test)
  np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(50))
  assert np.all(LABELS[train] != 2)
  np.testing.assert_array_equal(is_anomaly, LABELS[test] == 2)
  assert is_anomaly.sum() == 10


def test_train_count_rounds_down():
  """7 normals: 0.8 * 7 = 5.6, so 5 train (not 6) and 2 normals + 3 anomalies in test."""
  labels = np.array([0, 1, 0, 0, 1, 0, 1, 0, 0, 0])
  train, test, is_anomaly = anomaly.anomaly_split(labels, 1)
  assert (len(train), len(test), int(is_anomaly.sum())) == (5, 5, 3)


def test_split_is_the_seeded_recipe_and_deterministic():
  split = anomaly.anomaly_split(LABELS, 2)
  normal = np.flatnonzero(LABELS != 2)
  expected = np.sort(np.random.default_rng(42).permutation(normal)[:32])
  np.testing.assert_array_equal(split.train_indices, expected)
  again = anomaly.anomaly_split(LABELS, 2, seed=anomaly.SPLIT_SEED)
  for got, want in zip(again, split):
    np.testing.assert_array_equal(got, want)
  assert not np.array_equal(anomaly.anomaly_split(LABELS, 2, seed=43).train_indices, expected)
  other = anomaly.anomaly_split(LABELS, 3)
  assert not np.array_equal(other.train_indices, expected)
  assert np.all(LABELS[other.train_indices] != 3)


@pytest.mark.parametrize("labels,anomaly_class,fraction,message", [
    (LABELS, 7, 0.8, "anomaly_class=7 is not among the labels: expected one of [0, 1, 2, 3, 4]"),
    (LABELS, 2, 0.0, "train_fraction=0.0: expected a fraction in (0, 1)"),
    (LABELS, 2, 1.0, "train_fraction=1.0: expected a fraction in (0, 1)"),
    (LABELS, 2, float("nan"), "train_fraction=nan: expected a fraction in (0, 1)"),
    (np.array([0, 1, 1]), 1, 0.8, "anomaly_class=1 with train_fraction=0.8 leaves 0 of 1 normal "
     "images for training: expected at least 1")])
def test_split_refusals_are_one_line(labels, anomaly_class, fraction, message):
  with pytest.raises(ValueError) as e:
    anomaly.anomaly_split(labels, anomaly_class, train_fraction=fraction)
  assert str(e.value) == message


@pytest.fixture
def parent():
  """50 4x4 images whose pixels all hold their index, labelled LABELS."""
  pixels = np.broadcast_to(np.arange(50, dtype=np.uint8)[:, None, None, None], (50, 4, 4, 1))
  return images.ArraySource("tiny/all", np.ascontiguousarray(pixels), LABELS)


def test_anomaly_sources_read_the_parent_at_the_split(parent):
  train, test, is_anomaly = anomaly.anomaly_sources(parent, 2)
  split = anomaly.anomaly_split(LABELS, 2)
  assert isinstance(train, images.ImageSource) and isinstance(test, images.ImageSource)
  assert (len(train), len(test), train.shape, test.shape) == (32, 18, (4, 4, 1), (4, 4, 1))
  np.testing.assert_array_equal(is_anomaly, split.test_is_anomaly)
  for source, indices in ((train, split.train_indices), (test, split.test_indices)):
    picked = np.array([len(source) - 1, 0, 3, 3])  # Any order, repeats included.
    np.testing.assert_array_equal(source.images(picked), parent.images(indices[picked]))
    np.testing.assert_array_equal(source.images(picked)[:, 0, 0, 0], indices[picked])
    np.testing.assert_array_equal(source.labels(picked), LABELS[indices[picked]])
  np.testing.assert_array_equal(test.labels(np.arange(len(test))) == 2, is_anomaly)


def test_anomaly_source_names_are_distinct_and_file_safe(parent):
  names = [source.name for c in (2, 3) for source in anomaly.anomaly_sources(parent, c)[:2]]
  assert names[0] == "tiny/all-anomaly2-seed42-train"
  assert len(set(names)) == 4
  assert all(re.fullmatch(r"[A-Za-z0-9_./-]+", name) for name in names)
  assert anomaly.anomaly_sources(parent, 2, seed=7)[0].name != names[0]


@pytest.mark.parametrize("indices,message", [
    (np.array([0, 50]), "part: index 50 is outside tiny/all: expected indices in 0 ... 49"),
    (np.array([-1]), "part: index -1 is outside tiny/all: expected indices in 0 ... 49"),
    (np.zeros((2, 2)), r"part: indices of shape (2, 2): expected a 1-D array")])
def test_subset_source_refuses_bad_indices(parent, indices, message):
  with pytest.raises(ValueError) as e:
    anomaly.SubsetSource(parent, indices, "part")
  assert str(e.value) == message


def test_metrics_by_hand():
  """Ranked 1, 0, 1, 0: precision 1 at recall 1/2, 2/3 at recall 1, so AP = 1/2 * 1 + 1/2 * 2/3;
  3 of the 4 (anomaly, normal) pairs are ordered right."""
  got = anomaly_metrics(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0]))
  assert type(got["auprc"]) is float and type(got["roc_auc"]) is float
  assert got == pytest.approx({"auprc": 5 / 6, "roc_auc": 0.75})
  same = anomaly_metrics([0.9, 0.8, 0.7, 0.1], np.array([True, False, True, False]))
  assert same == got


def test_metrics_ties_are_one_threshold():
  """Scores 0.5 (anomaly), 0.5 (normal), 0.1 (anomaly): the tied pair enters together, precision
  1/2 at recall 1/2, then 2/3 at recall 1: AP = 1/2 * 1/2 + 1/2 * 2/3 = 7/12 (the trapezoidal
  area would be 2/3). ROC AUC: the tie counts 1/2, 0.1 < 0.5 counts 0, so 1/4."""
  got = anomaly_metrics(np.array([0.5, 0.5, 0.1]), np.array([True, False, True]))
  assert got == pytest.approx({"auprc": 7 / 12, "roc_auc": 0.25})


def test_perfect_ranking_scores_one():
  got = anomaly_metrics(np.array([0.2, 3.0, -1.0, 2.5, 0.0]), np.array([0, 1, 0, 1, 0]))
  assert got == {"auprc": 1.0, "roc_auc": 1.0}


def test_metrics_agree_with_sklearn_on_random_ties():
  rng = np.random.default_rng(0)
  scores = rng.integers(0, 6, 300).astype(np.float32)  # Many ties.
  is_anomaly = rng.random(300) < 0.2 + 0.1 * scores  # Anomalies score higher, on average.
  got = anomaly_metrics(scores, is_anomaly)
  assert got["auprc"] == pytest.approx(sk_metrics.average_precision_score(is_anomaly, scores))
  assert got["roc_auc"] == pytest.approx(sk_metrics.roc_auc_score(is_anomaly, scores))
  assert 0.5 < got["roc_auc"] < 1 and is_anomaly.mean() < got["auprc"] < 1


@pytest.mark.parametrize("scores,is_anomaly,message", [
    ([0.1, np.nan, np.inf, 0.3], [1, 0, 1, 0],
     "2 of 4 scores are not finite: expected finite scores"),
    ([0.1, 0.2, 0.3], [1, 0],
     "scores of shape (3,) and is_anomaly of shape (2,): expected two 1-D arrays of one length"),
    ([0.1, 0.2], [1, 1], "is_anomaly has 2 anomalies among 2 images: expected both anomalies and "
     "normal images"),
    ([0.1, 0.2], [0, 0], "is_anomaly has 0 anomalies among 2 images: expected both anomalies and "
     "normal images"),
    ([0.1, 0.2], [2, 0], "is_anomaly holds [2]: expected booleans (or 0 and 1)")])
def test_metric_refusals_are_one_line(scores, is_anomaly, message):
  with pytest.raises(ValueError) as e:
    anomaly_metrics(np.array(scores), np.array(is_anomaly))
  assert str(e.value) == message
