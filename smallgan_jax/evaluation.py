"""Evaluation during training: the dataset's scores of a fixed draw of generated samples, a grid of
samples, a picture of what the core-set picks from one step's candidates, and for anomaly
detection (`datasets.AnomalyDataset`) the AUPRC and ROC AUC of the trained networks' anomaly scores.

Every evaluation generates from the same latents (drawn once from `config.seed`), so its scores
and grids are comparable along a run and across runs of one seed (an image grid shows the first
64).
Process 0 alone evaluates, on its own copy of the generator (its EMA weights when
`config.ema_decay` > 0), generating in fixed-size batches split across its local devices, and
writes scalars and images to TensorBoard (`eval/...`) and PNGs to the workdir
(`samples_<step>.png`, `coreset_picks_<step>.png`).

The generator's inference variables come from one function, `generator_variables(config,
state)`: anything that samples a run's generator (evaluation, a checkpoint's samples) calls it,
so that all of them generate alike. Its batch-norm statistics follow `config.eval_batch_stats`:
"standing" (the default, for every GAN alike) recomputes them before each evaluation on
`config.eval_standing_samples` prior latents (`standing_stats.py`), since the running averages
training kept describe the training batches, for Small-GAN core-sets of the prior, not the plain
prior evaluation samples; "running" keeps those averages; "batch" generates in training mode,
each batch of `GENERATE_BATCH` normalised by its own statistics (nothing kept). With EMA weights
the spectral-norm vectors are first iterated on the EMA weights themselves.
"""
import functools
from typing import Any

from absl import logging
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import ml_collections
import numpy as np

from smallgan_jax import datasets, distributed, features, objectives, sampling, standing_stats
from smallgan_jax.metrics import grids

GENERATE_BATCH = 500  # Samples generated per call (rounded up to a multiple of local devices).


def eval_latents(config: ml_collections.ConfigDict) -> np.ndarray:
  """The fixed latents every evaluation of a run generates from, (eval_num_samples, z_dim)."""
  rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
  return np.asarray(sampling.sample_prior(rng, (config.eval_num_samples, config.z_dim),
                                          config.prior))


def generator_variables(config: ml_collections.ConfigDict, state: Any) -> dict:
  """The generator's inference variables on this host, for every evaluation and any sampling
  from a checkpoint: its EMA weights if kept (with spectral-norm vectors iterated on them), else
  the live ones, and the batch-norm statistics `config.eval_batch_stats` names (standing ones
  computed here). Generate with `generate(config, state.g.apply_fn, variables, z)`."""
  g = jax.tree.map(distributed.host_value, state.g)
  variables = {"params": g.params, **g.collections}
  if config.ema_decay:
    ema = jax.tree.map(distributed.host_value, state.g_ema)
    variables = standing_stats.spectral_variables(g.apply_fn, {**variables, "params": ema},
                                                  np.zeros((2, config.z_dim), np.float32))
  if config.eval_batch_stats == "standing":
    variables = standing_stats.standing_variables(g.apply_fn, variables,
                                                  standing_stats.prior_latents(config))
  return variables


def generate(config: ml_collections.ConfigDict, g_apply: Any, variables: dict,
             z: jax.Array) -> jax.Array:
  """Samples of latents `z` from `generator_variables`' variables: in inference mode, or for
  `config.eval_batch_stats="batch"` in training mode with the statistics it updates dropped."""
  if config.eval_batch_stats == "batch":
    return standing_stats.apply_unmapped(g_apply, variables, z, train=True,
                                         mutable=[c for c in variables if c != "params"])[0]
  return g_apply(variables, z, train=False)


def anomaly_networks(config: ml_collections.ConfigDict, state: Any, source: Any) -> tuple:
  """(generator, critic, aux network) on this host as `objectives.anomaly_scores` takes them.

  BiGAN's reconstruction path runs the encoder and the generator in inference mode, so both get
  standing statistics: the generator's on prior latents (`standing_stats.prior_latents`), the
  encoder's on `config.eval_standing_samples` training images of `source`. Only
  `eval_batch_stats="running"` keeps their running averages; "batch" concerns generated batches,
  and a scored batch of test images (zero-padded at the end) is no batch to normalise by. MEG's
  score, the critic's energy, has no batch norm.
  """
  g, d, aux = jax.tree.map(distributed.host_value, (state.g, state.d, state.aux))
  if config.objective != "bigan" or config.eval_batch_stats == "running":
    return g, d, aux
  return (_with_standing_stats(g, standing_stats.prior_latents(config)), d,
          _with_standing_stats(aux, standing_stats.training_images(config, source)))


def _with_standing_stats(network: Any, inputs: np.ndarray) -> Any:
  """A network's ModelState with the standing statistics of its batch norms over `inputs`."""
  variables = standing_stats.standing_variables(
      network.apply_fn, {"params": network.params, **network.collections}, inputs)
  return network.replace(collections={k: v for k, v in variables.items() if k != "params"})


class Sampler:
  """A generator's samples of given latents, as `generate` makes them, in fixed-size batches split
  across this process's devices: evaluation's, and any sampling from a checkpoint
  (`runs.load_generator`)."""

  def __init__(self, config: ml_collections.ConfigDict, g_apply: Any):
    self.config = config
    mesh = Mesh(np.asarray(jax.local_devices()), ("batch",))
    self.data = NamedSharding(mesh, PartitionSpec("batch"))
    generate_fn = functools.partial(generate, config, g_apply)
    self.generate_batch = jax.jit(generate_fn,
                                  in_shardings=(NamedSharding(mesh, PartitionSpec()), self.data),
                                  out_shardings=self.data)
    self.generate_rest = jax.jit(generate_fn)

  def __call__(self, variables: dict, z: np.ndarray) -> np.ndarray:
    """Samples of latents `z` (`generator_variables`' `variables`), in order, batch after
    batch. The last batch is zero-padded to the batch size, except under
    `eval_batch_stats="batch"`, where the padding would enter its statistics: it is generated
    as it is, on one device."""
    size = -(-GENERATE_BATCH // self.data.mesh.size) * self.data.mesh.size
    parts = []
    for batch_z, count in features.fixed_batches(z, size):
      if count < size and self.config.eval_batch_stats == "batch":
        parts.append(np.asarray(self.generate_rest(variables, batch_z[:count])))
      else:
        batch = self.generate_batch(variables, jax.device_put(batch_z, self.data))
        parts.append(np.asarray(batch)[:count])
    return np.concatenate(parts)


class Evaluator:
  """Evaluates a run's generator and writes what it measured (process 0 only)."""

  def __init__(self, config: ml_collections.ConfigDict, dataset: Any, workdir: Any, writer: Any,
               g_apply: Any):
    self.config, self.dataset, self.workdir, self.writer = config, dataset, workdir, writer
    self.z = eval_latents(config)
    self.sampler = Sampler(config, g_apply)
    self.score_images = jax.jit(functools.partial(objectives.anomaly_scores, config))

  def samples(self, variables: dict) -> np.ndarray:
    """Generator samples of the fixed latents (`generator_variables`' `variables`)."""
    return self.sampler(variables, self.z)

  def measure(self, state: Any) -> tuple[np.ndarray, dict]:
    """(the generator's samples of the fixed latents, the dataset's scores of the run)."""
    samples = self.samples(generator_variables(self.config, state))
    metrics = self.dataset.evaluate(samples)
    if isinstance(self.dataset, datasets.AnomalyDataset):
      networks = anomaly_networks(self.config, state, self.dataset.source)
      metrics.update(self.dataset.anomaly_metrics(
          functools.partial(self.score_images, *networks)))
    return samples, metrics

  def __call__(self, state: Any, step: int) -> dict:
    """Scores the generator at `step`, writes scalars, the sample grid and the core-set picks."""
    if jax.process_index() > 0:
      return {}
    samples, metrics = self.measure(state)
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
