"""Evaluation during training: the dataset's scores of a fixed draw of generated samples, a grid of
samples, a picture of what the core-set picks from one step's candidates, and for anomaly
detection (`data.AnomalyDataset`) the AUPRC and ROC AUC of the trained networks' anomaly scores.

Every evaluation generates from the same latents (drawn once from `config.seed`), so its scores
and grids are comparable along a run and across runs of one seed (an image grid shows the first
64).
Process 0 alone evaluates, on its own copy of the generator (its EMA weights when
`config.ema_decay` > 0), generating in fixed-size batches split across its local devices, and
writes scalars and images to TensorBoard (`eval/...`) and PNGs to the workdir
(`samples_<step>.png`, `coreset_picks_<step>.png`).
"""
import functools
from typing import Any

from absl import logging
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import ml_collections
import numpy as np

from smallgan_jax import data, distributed, objectives, sampling
from smallgan_jax.metrics import fid, grids

GENERATE_BATCH = 500  # Samples generated per call (rounded up to a multiple of local devices).


def eval_latents(config: ml_collections.ConfigDict) -> np.ndarray:
  """The fixed latents every evaluation of a run generates from, (eval_num_samples, z_dim)."""
  rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
  return np.asarray(sampling.sample_prior(rng, (config.eval_num_samples, config.z_dim),
                                          config.prior))


def generator_variables(config: ml_collections.ConfigDict, state: Any) -> dict:
  """The generator's inference variables on this host: EMA weights if kept, else the live ones."""
  g = jax.tree.map(distributed.host_value, state.g)
  params = jax.tree.map(distributed.host_value, state.g_ema) if config.ema_decay else g.params
  return {"params": params, **g.collections}


class Evaluator:
  """Evaluates a run's generator and writes what it measured (process 0 only)."""

  def __init__(self, config: ml_collections.ConfigDict, dataset: Any, workdir: Any, writer: Any,
               g_apply: Any):
    self.config, self.dataset, self.workdir, self.writer = config, dataset, workdir, writer
    self.z = eval_latents(config)
    mesh = Mesh(np.asarray(jax.local_devices()), ("batch",))
    self.data = NamedSharding(mesh, PartitionSpec("batch"))
    self.generate_batch = jax.jit(functools.partial(g_apply, train=False),
                                  in_shardings=(NamedSharding(mesh, PartitionSpec()), self.data),
                                  out_shardings=self.data)
    self.score_images = jax.jit(functools.partial(objectives.anomaly_scores, config))

  def samples(self, variables: dict) -> np.ndarray:
    """Generator samples of the fixed latents, in order, batch after batch."""
    size = -(-GENERATE_BATCH // self.data.mesh.size) * self.data.mesh.size
    parts = [np.asarray(self.generate_batch(variables, jax.device_put(z, self.data)))[:count]
             for z, count in fid.fixed_batches(self.z, size)]
    return np.concatenate(parts)

  def __call__(self, state: Any, step: int) -> dict:
    """Scores the generator at `step`, writes scalars, the sample grid and the core-set picks."""
    if jax.process_index() > 0:
      return {}
    samples = self.samples(generator_variables(self.config, state))
    metrics = self.dataset.evaluate(samples)
    if isinstance(self.dataset, data.AnomalyDataset):
      networks = jax.tree.map(distributed.host_value, (state.g, state.d, state.aux))
      metrics.update(self.dataset.anomaly_metrics(
          functools.partial(self.score_images, *networks)))
    self.writer.write_scalars(step, {f"eval/{k}": v for k, v in metrics.items()})
    path = str(self.workdir / f"samples_{step:08d}.png")
    grid = self.dataset.save_samples(path, samples, f"{self.config.dataset}, step {step}",
                                     metrics)
    images = {"samples": grid}
    picks = self.dataset.coreset_picks(self.config, step, jax.device_count())
    if picks is not None:
      images["coreset_picks"] = picks
      grids.save_png(str(self.workdir / f"coreset_picks_{step:08d}.png"), picks)
    self.writer.write_images(step, {k: v[None] for k, v in images.items()})
    logging.info("Step %d: %s; samples in %s", step,
                 ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()), path)
    return metrics
