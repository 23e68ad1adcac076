"""The one-class-out anomaly-detection split of Zenati et al. 2018 and Kumar et al. 2019 (MEG),
the protocol of the Small-GAN paper's Table 2.

One class of a labelled dataset is the anomaly and every other class is normal. All images are
pooled (for an idx dataset, the split "all": train then test), the normal ones are shuffled with a
fixed seed (`SPLIT_SEED`), and the first `floor(TRAIN_FRACTION * normals)` of them are the training
set: the GAN never sees an anomaly. The test set is the remaining normal images (in the default
split; see below) plus every anomalous one, and a detector is scored on it by how well it ranks
the anomalies first (`metrics/anomaly.py`).

Two kinds of split (`SPLITS`, `config.anomaly_split`):
- "clean" (the default): one permutation (`np.random.default_rng(seed)`) of the normal images;
  the test normals are the 20% it leaves out of training, so no test image was trained on.
- "reference": the property of MEG's reference code (`data/mnist_anomaly.py` of
  ritheshkumar95/energy_based_generative_models), for setting results beside the paper's. There a
  module-level `np.random.RandomState(42)` serves every call of the split function, and the
  training set and the test set come from two calls, each of which permutes the normal images
  afresh and then shuffles its test set: the training normals are the first 80% of the 1st draw,
  the test normals the last 20% of the 3rd (the 2nd, of the test set's length, only advances the
  generator). The test normals are thus a fresh random 20% of the normal images, about 80% of
  them also trained on. This replays that sequence of draws on our pooled order; the reference
  pools its own `mnist.npz` (train, test, valid), so the images picked differ from its.

Both parts are returned as index arrays into the pooled source, sorted ascending, so each part
reads the source in dataset order whatever the shuffle was; `SubsetSource` turns them into
`ImageSource`s the pipeline can draw from, named per anomaly class, seed, kind and part so that a
cache keyed on the source's name keeps the parts apart.
"""
from typing import NamedTuple, Optional

import ml_collections
import numpy as np

from smallgan_jax.data import images

SPLIT_SEED = 42
TRAIN_FRACTION = 0.8
SPLITS = ("clean", "reference")


class AnomalySplit(NamedTuple):
  """Indices into the pooled source: normal training images, and test images with their truth."""

  train_indices: np.ndarray  # int64, ascending; normal images only.
  test_indices: np.ndarray  # int64, ascending; the other normal images and all anomalies.
  test_is_anomaly: np.ndarray  # bool, aligned with test_indices.


def anomaly_split(labels: np.ndarray, anomaly_class: int, seed: int = SPLIT_SEED,
                  train_fraction: float = TRAIN_FRACTION, kind: str = "clean") -> AnomalySplit:
  """The split of a pooled dataset with these labels, `anomaly_class` the anomaly.

  "clean": the normal indices (label != anomaly_class), in index order, are permuted with
  `np.random.default_rng(seed).permutation`; the first `int(train_fraction * normals)` (rounded
  down) are the training set, the rest of them and all anomalous indices the test set.
  "reference": the same count trains, but the normal test images are drawn from another
  permutation, as MEG's reference code draws them (the module docstring).
  """
  labels = np.asarray(labels)
  classes = [int(c) for c in np.unique(labels)]
  if anomaly_class not in classes:
    raise ValueError(f"anomaly_class={anomaly_class!r} is not among the labels: expected one of "
                     f"{classes}")
  if not 0 < train_fraction < 1:
    raise ValueError(f"train_fraction={train_fraction!r}: expected a fraction in (0, 1)")
  if kind not in SPLITS:
    raise ValueError(f"kind={kind!r}: expected one of {SPLITS}")
  is_anomaly = labels == anomaly_class
  normal = np.flatnonzero(~is_anomaly)
  n_train = int(train_fraction * len(normal))
  if n_train == 0:
    raise ValueError(f"anomaly_class={anomaly_class!r} with train_fraction={train_fraction!r} "
                     f"leaves 0 of {len(normal)} normal images for training: expected at least 1")
  if kind == "clean":
    train, test_normal = np.split(np.random.default_rng(seed).permutation(normal), [n_train])
  else:
    train, test_normal = _reference_draws(normal, n_train, int(is_anomaly.sum()), seed)
  test = np.sort(np.concatenate([test_normal, np.flatnonzero(is_anomaly)]))
  return AnomalySplit(np.sort(train).astype(np.int64), test.astype(np.int64), is_anomaly[test])


def _reference_draws(normal: np.ndarray, n_train: int, n_anomalies: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(training normals, test normals) as MEG's reference code draws them from one
  `RandomState(seed)`: its training call permutes the normals, then shuffles its (unused) test
  set; its test call permutes the normals again and keeps the part after `n_train`."""
  rng = np.random.RandomState(seed)  # The legacy generator, as the reference code seeds it.
  train = normal[rng.permutation(len(normal))[:n_train]]
  rng.permutation(len(normal) - n_train + n_anomalies)
  return train, normal[rng.permutation(len(normal))[n_train:]]


class SubsetSource:
  """The images of `source` at `indices`, as an `ImageSource`: its index i is `indices[i]`."""

  def __init__(self, source: images.ImageSource, indices: np.ndarray, name: str):
    indices = np.asarray(indices, np.int64)
    if indices.ndim != 1:
      raise ValueError(f"{name}: indices of shape {indices.shape}: expected a 1-D array")
    outside = indices[(indices < 0) | (indices >= len(source))]
    if outside.size:
      raise ValueError(f"{name}: index {outside[0]} is outside {source.name}: expected indices "
                       f"in 0 ... {len(source) - 1}")
    self.name = name
    self.shape = source.shape
    self.indices = indices
    self._source = source

  def __len__(self) -> int:
    return len(self.indices)

  def images(self, indices: np.ndarray) -> np.ndarray:
    return self._source.images(self.indices[np.asarray(indices)])

  def labels(self, indices: np.ndarray) -> np.ndarray:
    return self._source.labels(self.indices[np.asarray(indices)])


def anomaly_sources(source: images.ImageSource, anomaly_class: int, seed: int = SPLIT_SEED,
                    kind: str = "clean") -> tuple[SubsetSource, SubsetSource, np.ndarray]:
  """(train source, test source, test_is_anomaly) of the `kind` split of all of `source`'s images,
  named "<source name>-anomaly<class>-seed<seed>-train" and "...-test" for the clean split (the
  names runs made before the reference split kept), "...-seed<seed>-reference-train" and
  "...-test" for the reference split."""
  split = anomaly_split(source.labels(np.arange(len(source))), anomaly_class, seed, kind=kind)
  stem = f"{source.name}-anomaly{anomaly_class}-seed{seed}"
  if kind != "clean":
    stem = f"{stem}-{kind}"
  return (SubsetSource(source, split.train_indices, f"{stem}-train"),
          SubsetSource(source, split.test_indices, f"{stem}-test"), split.test_is_anomaly)


class TrainingSources(NamedTuple):
  """The split `config.data` names (`split`; what the scores' reference statistics are of), the
  part of it a run trains on (`train`: all of it, or the normal training part of an anomaly
  split) and, with `config.anomaly_class`, the anomaly test part with its labels (else None)."""
  split: images.ImageSource
  train: images.ImageSource
  test: Optional[images.ImageSource] = None
  test_is_anomaly: Optional[np.ndarray] = None


def training_sources(config: ml_collections.ConfigDict) -> TrainingSources:
  """The sources of an image config: with `config.anomaly_class`, its `config.anomaly_split`
  split (`anomaly_sources`). Training and the embeddings command both take them from here, so
  the array the command builds is the one a run reads."""
  source = images.get_source(config.data)
  if "anomaly_class" not in config:
    return TrainingSources(source, source)
  return TrainingSources(source, *anomaly_sources(source, config.anomaly_class,
                                                  kind=config.anomaly_split))
