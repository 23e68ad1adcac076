"""Target distributions, chosen by `config.dataset`: what a run trains on and how it is scored,
assembled from the data layer (`data/`), the embeddings and the scores.

A dataset gives the train step `draw_candidates(rng, num_sets, n, batch)`, which returns candidate
samples and the embeddings the target core-set is computed on, both with leading dims
(num_sets, n) (streamed global sets: the images of this device's shard only,
`sampling.global_coreset_target`); and it scores (`evaluate`) and pictures (`save_samples`, `coreset_picks`) what a
run generates and picks. The toys draw on the device (`batch` is None); image datasets stream
their candidates from the host (`batches`), one `batch` a step.
"""
import dataclasses
import itertools
from typing import Any, Iterator, Optional

import jax
from jax.sharding import Mesh
import ml_collections
import numpy as np

from smallgan_jax import coreset, preparation, reference_pass, sampling
from smallgan_jax import embeddings as embeddings_lib
from smallgan_jax import features
from smallgan_jax.data import anomaly, images, pipeline, toy
from smallgan_jax.metrics import anomaly as anomaly_lib
from smallgan_jax.metrics import grids, image_scores, mog, plots

MAX_PICTURED_CANDIDATES = 256  # `coreset_picks` of images shows at most this many candidates.
SCORE_BATCH = 500  # Test images an anomaly evaluation scores per call.


def _greedy_picks(points: np.ndarray, k: int) -> np.ndarray:
  return np.asarray(coreset.greedy_k_center(jax.numpy.asarray(points, np.float32), k))


@dataclasses.dataclass(frozen=True)
class ToyMixture:
  """A 2D mixture of Gaussians, sampled on the device; a point is its own embedding."""
  means: np.ndarray
  std: float

  data_shape = (2,)
  streamed = False

  def draw_candidates(self, rng: jax.Array, num_sets: int, n: int,
                      batch: None = None) -> tuple[jax.Array, jax.Array]:
    del batch  # Drawn on the device.
    x = toy.sample_mixture(rng, self.means, self.std, num_sets * n).reshape(num_sets, n, 2)
    return x, x

  def evaluate(self, samples: np.ndarray) -> dict:
    """Paper Table 1 metrics: modes recovered % and high-quality samples %."""
    return mog.mode_metrics(samples, self.means, self.std)

  def save_samples(self, path: str, samples: np.ndarray, title: str, metrics: dict) -> np.ndarray:
    """Plots `samples` over the modes and their 4-std circles (recovered modes green, missed ones
    red), with `metrics` (`evaluate`'s) under the title; returns the plot's pixels."""
    return plots.save_mog_scatter(path, samples, self.means, title, std=self.std, metrics=metrics)

  def coreset_picks(self, config: ml_collections.ConfigDict, step: int,
                    num_devices: int) -> np.ndarray:
    """Pixels of one global batch's prior and target candidates with their core-set picks
    marked (an illustrative draw keyed on the seed and `step`, as one device with the whole
    batch would pick)."""
    del num_devices  # Pictured as one device with the global batch.
    prior_rng, target_rng = jax.random.split(
        jax.random.fold_in(jax.random.PRNGKey(config.seed), step))
    k = config.batch_size
    z = np.asarray(sampling.sample_prior(
        prior_rng, (config.coreset.factor_prior * k, config.z_dim), config.prior))
    x = np.asarray(toy.sample_mixture(target_rng, self.means, self.std,
                                      config.coreset.factor_target * k))
    figure = plots.coreset_picks_figure((z, _greedy_picks(z, k)), (x, _greedy_picks(x, k)),
                                        f"{config.dataset}: core-sets of a batch of {k}, "
                                        f"step {step}")
    return plots.figure_pixels(figure)

  def batches(self, config: ml_collections.ConfigDict, mesh: Mesh,
              start_step: int) -> Iterator[tuple[()]]:
    """Nothing comes from the host: an empty tuple of step inputs, forever."""
    del config, mesh, start_step
    return itertools.repeat(())


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """Real images: the host streams each device's candidates (uint8) with the embedding rows of
  their dataset indices, looked up on the host (`embeddings.Embeddings.rows`): the array stays in
  host memory (CIFAR-10's 32-d rows are 6 MB, but an unprojected 2048-d array is 400 MB, which
  every device would otherwise hold), and a step moves only n x dim floats more."""
  source: images.ImageSource
  embeddings: Optional[embeddings_lib.Embeddings]
  scores: tuple[image_scores.FIDScore, ...] = ()
  streamed = True

  @property
  def data_shape(self) -> tuple[int, int, int]:
    return self.source.shape

  def batches(self, config: ml_collections.ConfigDict, mesh: Mesh,
              start_step: int) -> Iterator[tuple[tuple[jax.Array, jax.Array]]]:
    """The step inputs from `start_step` on: one (images, embeddings) pair of global arrays a
    step, split over the devices of `mesh`: (devices, n_dis, m, H, W, C) uint8 and
    (devices, n_dis, n, e) float32. With `config.coreset.target_scope` "device" each device's
    own n = m candidates; with "global" the rows of the step's n global candidates on every
    device, and the images of its shard of them, m = n / devices (`pipeline.CandidateStream`)."""
    with pipeline.stream_from_config(config, self.source, pipeline.process_device_indices(mesh),
                                     mesh.size, start_step) as stream:
      for _, x, indices in stream:
        rows = (np.zeros((*indices.shape, 1), np.float32) if self.embeddings is None
                else self.embeddings.rows(indices))
        yield (pipeline.to_devices(x, rows, mesh),)

  def draw_candidates(self, rng: jax.Array, num_sets: int, n: int,
                      batch: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """This device's streamed candidates as floats in [-1, 1], with their embeddings: all n of
    its own sets, or, of global sets of n, the images of its shard and the rows of all n."""
    del rng  # Drawn on the host, from (seed, step, device) or (seed, step).
    x, rows = batch
    assert rows.shape[:2] == (num_sets, n) and n % x.shape[1] == 0, (x.shape, rows.shape, n)
    return pipeline.images_to_float(x), rows

  def evaluate(self, samples: np.ndarray) -> dict:
    """The run's scores of `samples` in [-1, 1]: each feature network's dict of scores
    (`config.fid`, `image_scores.FIDScore`), merged."""
    pixels = features.to_pixels(samples)
    return {name: value for score in self.scores for name, value in score(pixels).items()}

  def save_samples(self, path: str, samples: np.ndarray, title: str, metrics: dict) -> np.ndarray:
    """Writes the first 64 samples as an 8 x 8 grid PNG; returns the grid."""
    del title, metrics
    return grids.save_image_grid(path, samples[:64])

  def coreset_picks(self, config: ml_collections.ConfigDict, step: int,
                    num_devices: int) -> Optional[np.ndarray]:
    """A grid of the first target candidate set at `step` (the first 256 at most), device 0's
    (or the global set, for `target_scope` "global"), the images its core-set picked framed; None
    for random batches (target factor 1)."""
    if config.coreset.factor_target == 1 or self.embeddings is None:
      return None
    if config.coreset.target_scope == "global":
      n, k = config.coreset.factor_target * config.batch_size, config.batch_size
      indices = pipeline.global_candidate_indices(config.seed, step, 1, n, len(self.source))[0]
    else:
      n, k = pipeline.num_candidates(config, num_devices), config.batch_size // num_devices
      indices = pipeline.candidate_indices(config.seed, step, 0, 1, n, len(self.source))[0]
    picks = _greedy_picks(self.embeddings.rows(indices), k)
    chosen = np.zeros(n, bool)
    chosen[picks] = True
    shown = indices[:MAX_PICTURED_CANDIDATES]
    candidates = pipeline.images_to_float(self.source.images(shown).astype(np.float32))
    return grids.tile(np.asarray(candidates), frames=chosen[:len(shown)], border=2)


@dataclasses.dataclass(frozen=True)
class AnomalyDataset(ImageDataset):
  """Anomaly detection with one class held out (`data/anomaly.py`): the GAN trains on `source`,
  80% of the normal images, and each evaluation scores `test`, 20% of the normal images (the
  others, or a fresh draw: `config.anomaly_split`) and every anomalous one, with the trained
  networks' anomaly scores (`objectives.anomaly_scores`)."""
  test: Optional[images.ImageSource] = None
  test_is_anomaly: Optional[np.ndarray] = None

  def anomaly_metrics(self, score_images: Any) -> dict:
    """AUPRC (anomalies positive) and ROC AUC of `score_images`, a function from a batch of images
    in [-1, 1] to their scores, over the test images (in fixed batches of `SCORE_BATCH`)."""
    test = self.test.images(np.arange(len(self.test)))
    scores = [np.asarray(score_images(pipeline.images_to_float(batch)))[:count]
              for batch, count in features.fixed_batches(test, SCORE_BATCH)]
    return anomaly_lib.anomaly_metrics(np.concatenate(scores), self.test_is_anomaly)


def _image_dataset(config: ml_collections.ConfigDict) -> ImageDataset:
  """The config's image source, and its embeddings when the target core-set needs them (built
  on first use; where the embedding model is also an FID network, in one pass with the FID
  caches, `reference_pass`). A missing dataset fails here, in one line, before any model is
  built. With `config.anomaly_class`, the source's normal training part and its test part."""
  sources = anomaly.training_sources(config)
  preparation.announce(config, sources.split, sources.train)
  reference_pass.write_missing(config, sources.split, sources.train)
  scores = image_scores.fid_scores(config, sources.split) if "fid" in config else ()
  extra, kind = {}, ImageDataset
  if sources.test is not None:
    extra, kind = {"test": sources.test, "test_is_anomaly": sources.test_is_anomaly}, AnomalyDataset
  rows = (embeddings_lib.load_or_build(config, sources.train) if embeddings_lib.needed(config)
          else None)
  return kind(sources.train, rows, scores, **extra)


def _toy_mixture(config: ml_collections.ConfigDict, kind: str) -> ToyMixture:
  means = toy.mixture_means(kind, config.num_modes, config.mog_spacing, config.ring_radius)
  return ToyMixture(means=means, std=config.mog_std)


_DATASETS = {
    "mog_grid": lambda config: _toy_mixture(config, "grid"),
    "mog_ring": lambda config: _toy_mixture(config, "ring"),
    "images": _image_dataset,
}
DATASETS = tuple(_DATASETS)


def get_dataset(config: ml_collections.ConfigDict) -> Any:
  """Returns the dataset named by `config.dataset`."""
  if config.dataset not in _DATASETS:
    raise ValueError(f"dataset={config.dataset!r} is not known; expected one of {sorted(_DATASETS)}")
  return _DATASETS[config.dataset](config)
