"""Target distributions, chosen by `config.dataset`.

A dataset gives the train step `draw_candidates(rng, num_sets, n, batch)`, which returns candidate
samples and the embeddings the target core-set is computed on, both with leading dims
(num_sets, n); and it evaluates and plots generated samples. The toys draw on the device (`batch`
is None); image datasets stream their candidates from the host (`batches`), one `batch` a step.
"""
import dataclasses
import itertools
from typing import Any, Iterator, Optional

import jax
from jax.sharding import Mesh
import ml_collections
import numpy as np

from smallgan_jax import embeddings as embeddings_lib
from smallgan_jax.data import images, pipeline, toy
from smallgan_jax.metrics import grids, mog, plots


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

  def save_samples(self, path: str, samples: np.ndarray, title: str, metrics: dict) -> str:
    """Plots `samples` over the modes and their 4-std circles (recovered modes green, missed ones
    red), with `metrics` (`evaluate`'s) under the title."""
    return plots.save_mog_scatter(path, samples, self.means, title, std=self.std, metrics=metrics)


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
  streamed = True

  @property
  def data_shape(self) -> tuple[int, int, int]:
    return self.source.shape

  def batches(self, config: ml_collections.ConfigDict, mesh: Mesh,
              start_step: int) -> Iterator[tuple[tuple[jax.Array, jax.Array]]]:
    """The step inputs from `start_step` on: one (images, embeddings) pair of global arrays a
    step, split over the devices of `mesh`: (devices, n_dis, n, H, W, C) uint8 and
    (devices, n_dis, n, e) float32."""
    with pipeline.stream_from_config(config, self.source, pipeline.process_device_indices(mesh),
                                     mesh.size, start_step) as stream:
      for _, x, indices in stream:
        rows = (np.zeros((*indices.shape, 1), np.float32) if self.embeddings is None
                else self.embeddings.rows(indices))
        yield (pipeline.to_devices(x, rows, mesh),)

  def draw_candidates(self, rng: jax.Array, num_sets: int, n: int,
                      batch: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """This device's streamed candidates as floats in [-1, 1], with their embeddings."""
    del rng  # Drawn on the host, from (seed, step, device).
    x, rows = batch
    assert x.shape[:2] == (num_sets, n), (x.shape, num_sets, n)
    return pipeline.images_to_float(x), rows

  def evaluate(self, samples: np.ndarray) -> dict:
    del samples  # Scores for images (classifier FID, FID) come with the image GANs.
    return {}

  def save_samples(self, path: str, samples: np.ndarray, title: str, metrics: dict) -> str:
    """Writes the first 64 samples as an 8 x 8 grid PNG."""
    del title, metrics
    return grids.save_image_grid(path, samples[:64])


def _image_dataset(config: ml_collections.ConfigDict) -> ImageDataset:
  """The config's image source, and its embeddings when the target core-set needs them (built
  on first use). A missing dataset fails here, in one line, before any model is built."""
  source = images.get_source(config.data)
  if config.coreset.factor_target == 1:
    return ImageDataset(source, None)
  return ImageDataset(source, embeddings_lib.load_or_build(config, source))


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
