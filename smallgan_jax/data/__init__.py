"""Target distributions, chosen by `config.dataset`.

A dataset gives the train step `draw_candidates(rng, num_sets, n)`, which returns candidate samples
and the embeddings the target core-set is computed on, both with leading dims (num_sets, n); and it
evaluates and plots generated samples.
"""
import dataclasses

import jax
import ml_collections
import numpy as np

from smallgan_jax.data import toy
from smallgan_jax.metrics import mog, plots


@dataclasses.dataclass(frozen=True)
class ToyMixture:
  """A 2D mixture of Gaussians, sampled on the device; a point is its own embedding."""
  means: np.ndarray
  std: float

  data_shape = (2,)

  def draw_candidates(self, rng: jax.Array, num_sets: int, n: int) -> tuple[jax.Array, jax.Array]:
    x = toy.sample_mixture(rng, self.means, self.std, num_sets * n).reshape(num_sets, n, 2)
    return x, x

  def evaluate(self, samples: np.ndarray) -> dict:
    """Paper Table 1 metrics: modes recovered % and high-quality samples %."""
    return mog.mode_metrics(samples, self.means, self.std)

  def save_samples(self, path: str, samples: np.ndarray, title: str, metrics: dict) -> str:
    """Plots `samples` over the modes and their 4-std circles (recovered modes green, missed ones
    red), with `metrics` (`evaluate`'s) under the title."""
    return plots.save_mog_scatter(path, samples, self.means, title, std=self.std, metrics=metrics)


def _toy_mixture(config: ml_collections.ConfigDict, kind: str) -> ToyMixture:
  means = toy.mixture_means(kind, config.num_modes, config.mog_spacing, config.ring_radius)
  return ToyMixture(means=means, std=config.mog_std)


_DATASETS = {
    "mog_grid": lambda config: _toy_mixture(config, "grid"),
    "mog_ring": lambda config: _toy_mixture(config, "ring"),
}
DATASETS = tuple(_DATASETS)


def get_dataset(config: ml_collections.ConfigDict) -> ToyMixture:
  """Returns the dataset named by `config.dataset`."""
  if config.dataset not in _DATASETS:
    raise ValueError(f"dataset={config.dataset!r} is not known; expected one of {sorted(_DATASETS)}")
  return _DATASETS[config.dataset](config)
