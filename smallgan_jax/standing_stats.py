"""Inference statistics that match the weights and the inputs a network is evaluated on: standing
batch-norm statistics (BigGAN's "standing stats") and spectral-norm state refreshed for EMA
weights.

Why: batch norm's running averages describe the batches training fed it. A Small-GAN generator
trains on core-sets of the prior, which favour spread-out latents (Fashion-MNIST setting: mean |z|
8.66 against 7.96 for prior draws, docs/image_gans.md), yet evaluation generates from the plain
prior; an EMA generator's running averages (and spectral-norm vectors) even belong to other
weights. So before an evaluation each batch-norm layer gets the statistics of the inputs it will
then see.

What: the standing statistics of a BatchNorm layer are the mean and biased variance (as flax
stores them) of its input over all of `inputs`, with the network in inference mode and every
earlier layer already normalising with its own standing statistics, i.e. exactly the inputs the
layer sees when the network is applied in inference mode afterwards. They do not depend on how
`inputs` are chunked. A layer's input depends only on the layers called before it, so one pass
over `inputs` per batch-norm layer makes them all exact: after pass p the first p layers (in call
order) are. A synchronised batch norm (`axis_name`, models/resnet_blocks.py) needs no mapped axis
here: in inference mode it averages over nothing.

How: flax's BatchNorm exposes its batch statistics only through the running-average update
(new = 0.9 old + 0.1 batch here); solving that for the batch statistic divides rounding error by
0.1 and still leaves chunks to pool. Instead a flax method interceptor (`nn.intercept_methods`,
flax's hook for running code around any module's method) sees each BatchNorm's input and sows
its count, mean and sum of squared deviations; the chunks' moments are pooled exactly (Chan et
al.'s parallel update) in float64 on the host.

`evaluation.generator_variables` maps a run's state to the generator's inference variables with
these functions; anything that samples from a checkpoint should call that, not these directly.
"""
import functools
from typing import Any

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from smallgan_jax import distributed, sampling
from smallgan_jax.data import pipeline
from smallgan_jax.models.dcgan import SPECTRAL_STATS

# `config.eval_batch_stats`: how evaluation sets the generator's batch-norm statistics.
MODES = ("standing", "running", "batch")
BATCH_STATS = "batch_stats"
CHUNK = 500  # Inputs per call: memory stays bounded whatever the count.
# Calls of a network in training mode that refresh an EMA generator's spectral-norm state, each
# running the model's own `sn_steps` power iterations (1 in every model here) on the EMA weights,
# from the live weights' vectors (tests/standing_stats_test.py: sigma within 1% of the SVD's).
SPECTRAL_APPLICATIONS = 100
# fold_in data of the standing latents' key: evaluation's latents fold in 1, the toys' core-set
# pictures fold in step numbers, which never reach this.
_PRIOR_TAG = 2**32 - 1
_MOMENTS = "batch_norm_input_moments"  # The collection the interceptor sows into.


def prior_latents(config: ml_collections.ConfigDict) -> np.ndarray:
  """`config.eval_standing_samples` prior latents, (n, z_dim), from a key of `config.seed` of
  their own, so they are not the latents evaluation scores (`evaluation.eval_latents`)."""
  rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), _PRIOR_TAG)
  return np.asarray(sampling.sample_prior(rng, (config.eval_standing_samples, config.z_dim),
                                          config.prior))


def training_images(config: ml_collections.ConfigDict, source: Any) -> np.ndarray:
  """`config.eval_standing_samples` training images of `source` (all of them if it has fewer),
  drawn without replacement from `config.seed`, as floats in [-1, 1]: the encoder's inputs."""
  count = min(config.eval_standing_samples, len(source))
  indices = np.random.default_rng((config.seed, _PRIOR_TAG)).choice(len(source), count,
                                                                     replace=False)
  return np.asarray(pipeline.images_to_float(source.images(np.sort(indices))))


def _sow_input_moments(next_fun, args, kwargs, context):
  """A method interceptor: a BatchNorm's call first sows (count, mean, sum of squared deviations
  from that mean) of its input over the axes it normalises over, in float32."""
  module = context.module
  if isinstance(module, nn.BatchNorm) and context.method_name == "__call__":
    x = jnp.asarray(args[0], jnp.float32)
    features = {a % x.ndim for a in np.atleast_1d(module.axis)}
    axes = tuple(a for a in range(x.ndim) if a not in features)
    mean = x.mean(axes, keepdims=True)
    squares = jnp.sum((x - mean) ** 2, axes)
    count = jnp.asarray(x.size // squares.size, jnp.int32)
    module.sow(_MOMENTS, "moments", (count, mean.reshape(squares.shape), squares))
  return next_fun(*args, **kwargs)


@functools.partial(jax.jit, static_argnums=0)
def _chunk_moments(apply_fn: Any, variables: dict, x: jax.Array) -> dict:
  with nn.intercept_methods(_sow_input_moments):
    _, sown = apply_fn(variables, x, train=False, mutable=[_MOMENTS])
  return sown[_MOMENTS]


def _pooled(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray,
                                                                                np.ndarray]:
  """The mean and biased variance, float64, of the union of chunks given by their moments."""
  counts = np.asarray([p[0] for p in parts], np.float64)
  means = np.stack([p[1] for p in parts]).astype(np.float64)
  squares = np.stack([p[2] for p in parts]).astype(np.float64)
  total = counts.sum()
  mean = np.tensordot(counts, means, 1) / total
  return mean, (squares.sum(0) + np.tensordot(counts, (means - mean) ** 2, 1)) / total


def input_statistics(apply_fn: Any, variables: dict, inputs: np.ndarray,
                     chunk: int = CHUNK) -> dict:
  """{batch-norm layer path: (mean, biased variance)} of every BatchNorm's input over `inputs`,
  float64, the network `apply_fn(variables, x, train=False)` applied in chunks of `chunk`."""
  moments = {}
  for start in range(0, len(inputs), chunk):
    sown = _chunk_moments(apply_fn, variables, jnp.asarray(inputs[start:start + chunk]))
    for path, values in traverse_util.flatten_dict(jax.device_get(sown)).items():
      if len(values) != 1:
        raise ValueError(f"the BatchNorm {'/'.join(path[:-1])} is called {len(values)} times a "
                         "pass: expected once (its standing statistics would be ambiguous)")
      moments.setdefault(path[:-1], []).append(values[0])
  return {path: _pooled(parts) for path, parts in moments.items()}


def standing_variables(apply_fn: Any, variables: dict, inputs: np.ndarray,
                       chunk: int = CHUNK) -> dict:
  """`variables` with every batch-norm layer's statistics replaced by its standing statistics
  over `inputs` (see the module docstring); unchanged if the network has no batch norm."""
  if BATCH_STATS not in variables:
    return variables
  stats = traverse_util.flatten_dict(variables[BATCH_STATS])
  for _ in range(sum(path[-1] == "mean" for path in stats)):
    for path, (mean, var) in input_statistics(apply_fn, variables, inputs, chunk).items():
      stats[(*path, "mean")] = mean.astype(stats[(*path, "mean")].dtype)
      stats[(*path, "var")] = var.astype(stats[(*path, "var")].dtype)
    variables = {**variables, BATCH_STATS: traverse_util.unflatten_dict(stats)}
  return variables


def apply_unmapped(apply_fn: Any, variables: dict, x: jax.Array, **kwargs) -> Any:
  """`apply_fn(variables, x, **kwargs)` outside the train step: a size-1 `vmap` binds the mesh
  axis that a synchronised batch norm averages over in training mode, so it normalises with the
  statistics of this call's batch, like any other batch norm."""
  apply = lambda v, x: apply_fn(v, x, **kwargs)
  out = jax.vmap(apply, in_axes=(None, 0), axis_name=distributed.AXIS)(variables, x[None])
  return jax.tree.map(lambda leaf: leaf[0], out)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _power_iterate(apply_fn: Any, variables: dict, example: jax.Array,
                   applications: int) -> dict:
  def step(_, spectral):
    _, updated = apply_unmapped(apply_fn, {**variables, SPECTRAL_STATS: spectral}, example,
                                train=True, mutable=[c for c in variables if c != "params"])
    return updated[SPECTRAL_STATS]
  return jax.lax.fori_loop(0, applications, step, variables[SPECTRAL_STATS])


def spectral_variables(apply_fn: Any, variables: dict, example: jax.Array,
                       applications: int = SPECTRAL_APPLICATIONS) -> dict:
  """`variables` with the spectral-norm vectors and sigmas of their own weights: the network is
  applied `applications` times in training mode (to `example`), each time advancing flax's power
  iteration from the vectors it holds; only those vectors are kept. Unchanged without spectral
  norm. For weights the vectors were not iterated on, e.g. an EMA of them."""
  if SPECTRAL_STATS not in variables:
    return variables
  return {**variables,
          SPECTRAL_STATS: _power_iterate(apply_fn, variables, example, applications)}
