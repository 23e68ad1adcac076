"""The anomaly-detection split (data/anomaly.py), clean and as MEG's reference code draws it, and
the config keys that choose it, on tiny labels made by the tests. (Its metrics:
tests/anomaly_metrics_test.py.)"""
import re

import numpy as np
import pytest

from configs import fashion_mnist_dcgan, fashion_mnist_meg
from smallgan_jax import validation
from smallgan_jax.data import anomaly
from smallgan_jax.data import images

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


def test_split_refuses_an_unknown_kind():
  with pytest.raises(ValueError) as e:
    anomaly.anomaly_split(LABELS, 2, kind="overlap")
  assert str(e.value) == "kind='overlap': expected one of ('clean', 'reference')"


def reference_code_split(labels: np.ndarray, label: int) -> tuple[np.ndarray, np.ndarray]:
  """(training, test) index arrays as MEG's reference `data/mnist_anomaly.py` makes them, written
  out after it on indices instead of images: a module-level RandomState(42) that `get_train` and
  then `get_test` share, each call permuting the normals, splitting at int(0.8 n), and shuffling
  its test set."""
  rng = np.random.RandomState(42)

  def adapted_dataset(split):
    normal_x = np.flatnonzero(labels != label)
    normal_x = normal_x[rng.permutation(normal_x.shape[0])]
    index = int(normal_x.shape[0] * 0.8)
    testing_x = np.concatenate([normal_x[index:], np.flatnonzero(labels == label)], axis=0)
    testing_x = testing_x[rng.permutation(testing_x.shape[0])]
    return normal_x[:index] if split == "train" else testing_x

  return adapted_dataset("train"), adapted_dataset("test")


@pytest.mark.parametrize("labels,anomaly_class", [(LABELS, 2), (np.arange(1000) % 7, 0)])
def test_reference_split_is_the_reference_codes_draws(labels, anomaly_class):
  train, test = reference_code_split(labels, anomaly_class)
  split = anomaly.anomaly_split(labels, anomaly_class, kind="reference")
  np.testing.assert_array_equal(split.train_indices, np.sort(train))
  np.testing.assert_array_equal(split.test_indices, np.sort(test))
  np.testing.assert_array_equal(split.test_is_anomaly, labels[split.test_indices] == anomaly_class)


@pytest.mark.parametrize("kind,overlap", [("clean", 0.0), ("reference", 0.8)])
def test_test_normals_overlap_training_as_the_kind_says(kind, overlap):
  """18,000 normals, 14,400 train: the reference split's 3,600 test normals are a fresh draw, each
  in the training set with probability 0.8 (std of the fraction ~0.006); the clean split's none.
  Either way every anomaly is tested, once, and none trained on."""
  labels = np.arange(20_000) % 10
  train, test, is_anomaly = anomaly.anomaly_split(labels, 3, kind=kind)
  test_normal = test[~is_anomaly]
  assert (len(train), len(test_normal)) == (14_400, 3_600)
  assert np.all(labels[train] != 3) and np.all(np.diff(test) > 0)
  np.testing.assert_array_equal(test[is_anomaly], np.flatnonzero(labels == 3))
  assert np.isin(test_normal, train).mean() == pytest.approx(overlap, abs=0.03)


@pytest.fixture
def parent():
  """50 4x4 images whose pixels all hold their index, labelled LABELS."""
  pixels = np.broadcast_to(np.arange(50, dtype=np.uint8)[:, None, None, None], (50, 4, 4, 1))
  return images.ArraySource("tiny/all", np.ascontiguousarray(pixels), LABELS)


@pytest.mark.parametrize("kind", anomaly.SPLITS)
def test_anomaly_sources_read_the_parent_at_the_split(parent, kind):
  train, test, is_anomaly = anomaly.anomaly_sources(parent, 2, kind=kind)
  split = anomaly.anomaly_split(LABELS, 2, kind=kind)
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
  names = [source.name for c in (2, 3) for kind in anomaly.SPLITS
           for source in anomaly.anomaly_sources(parent, c, kind=kind)[:2]]
  assert names[:4] == ["tiny/all-anomaly2-seed42-train", "tiny/all-anomaly2-seed42-test",
                       "tiny/all-anomaly2-seed42-reference-train",
                       "tiny/all-anomaly2-seed42-reference-test"]
  assert len(set(names)) == 8
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


def test_configs_default_to_the_clean_split():
  assert fashion_mnist_meg.get_config().anomaly_split == "clean"


@pytest.mark.parametrize("config,overrides,message", [
    (fashion_mnist_meg, {"anomaly_split": "overlap"},
     "config.anomaly_split='overlap': expected one of ('clean', 'reference')"),
    (fashion_mnist_dcgan, {"anomaly_split": "reference"},
     "config.anomaly_class is missing: expected a class id >= 0")])
def test_split_key_is_validated(config, overrides, message):
  config = config.get_config()
  config.update(overrides)
  with pytest.raises(ValueError) as e:
    validation.validate_config(config, num_devices=1)
  assert str(e.value) == message
