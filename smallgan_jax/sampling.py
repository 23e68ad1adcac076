"""Core-set batch samplers (paper Sec. 3.1-3.2, Alg. 2).

Both samplers draw `factor * k` candidates per set and keep the k that greedy k-center picks, for
several independent sets at once (one per discriminator update of a train step), so all core-sets
of a step are computed in one vmapped kernel call. A factor of 1 keeps every candidate: plain random
sampling, which makes the baseline GAN the same code path.

`global_coreset_target` is the paper's target core-set on several devices: one core-set of the
global batch, its picks spread over the devices, whatever their number.
"""
from typing import Callable, Optional, Union

import jax
from jax import lax
import jax.numpy as jnp

from smallgan_jax import coreset

PRIORS = ("uniform", "normal")
# `config.coreset.prior_scope`: each device's own latent core-set, or its slice of a global one.
PRIOR_SCOPES = ("device", "global")
# `config.coreset.target_scope`: likewise for the real images (`global_coreset_target`).
TARGET_SCOPES = ("device", "global")
# `config.coreset.weighting` (beyond the paper): "none" trains on the core-set as picked (the
# paper); "target" weights the critic's real samples by their cells (`coreset.cell_weights`);
# "cells" weights the latents too.
WEIGHTINGS = ("none", "target", "cells")
# A sampler's result: the samples, or (samples, cell weights) when asked `with_weights`.
Samples = Union[jax.Array, tuple[jax.Array, jax.Array]]


def sample_prior(rng: jax.Array, shape: tuple[int, ...], prior: str) -> jax.Array:
  """Draws from p(z): uniform on [-1, 1]^d (the paper's choice) or a standard normal."""
  if prior == "uniform":
    return jax.random.uniform(rng, shape, minval=-1.0, maxval=1.0)
  if prior == "normal":
    return jax.random.normal(rng, shape)
  raise ValueError(f"prior={prior!r} is not known; expected one of {PRIORS}")


def select_coresets(candidates: jax.Array, embeddings: jax.Array, k: int,
                    with_weights: bool = False) -> Samples:
  """Keeps, in each set, the k candidates whose embeddings form its greedy k-center core-set.

  candidates: (num_sets, n, ...); embeddings: (num_sets, n, e). Returns (num_sets, k, ...), and
  with `with_weights` also each pick's cell weight (num_sets, k) (`coreset.cell_weights`; ones
  where every candidate is kept).
  """
  if candidates.shape[1] == k:
    return (candidates, jnp.ones(candidates.shape[:2])) if with_weights else candidates
  picks = coreset_indices(embeddings, k)
  if not with_weights:
    return take(candidates, picks)
  return take(candidates, picks), jax.vmap(coreset.cell_weights)(embeddings, picks)


def coreset_indices(embeddings: jax.Array, k: int) -> jax.Array:
  """(num_sets, k) int32: each set's greedy k-center picks, in pick order; embeddings
  (num_sets, n, e)."""
  return jax.vmap(coreset.greedy_k_center, in_axes=(0, None))(embeddings, k)


def take(candidates: jax.Array, indices: jax.Array) -> jax.Array:
  """(num_sets, k, ...): each set's candidates (num_sets, n, ...) at its indices (num_sets, k)."""
  return jax.vmap(lambda c, i: c[i])(candidates, indices)


def coreset_prior(rng: jax.Array, num_sets: int, k: int, factor: int, z_dim: int,
                  prior: str, with_weights: bool = False) -> Samples:
  """(num_sets, k, z_dim) latents: core-sets of `factor * k` prior draws per set (and their cell
  weights in latent space, (num_sets, k), `with_weights`)."""
  z = sample_prior(rng, (num_sets, factor * k, z_dim), prior)
  return select_coresets(z, z, k, with_weights)


def coreset_target(rng: jax.Array, draw_candidates: Callable, num_sets: int, k: int,
                   factor: int, with_weights: bool = False) -> Samples:
  """(num_sets, k, ...) real samples: core-sets on the embeddings of `factor * k` candidates
  (and their cell weights in the embedding, (num_sets, k), `with_weights`).

  `draw_candidates(rng, num_sets, n)` returns (samples, embeddings) with leading dims (num_sets, n).
  """
  x, embeddings = draw_candidates(rng, num_sets, factor * k)
  return select_coresets(x, embeddings, k, with_weights)


def global_coreset_target(rng: jax.Array, draw_candidates: Callable, num_sets: int, k: int,
                          factor: int, num_replicas: int, axis_name: Optional[str],
                          with_weights: bool = False) -> Samples:
  """(num_sets, k / num_replicas, ...): this device's slice of one core-set of the global batch
  (and, `with_weights`, the same slice of the global set's cell weights, which sum to k over all
  devices: they are never renormalised per device, so the mean over devices of each device's
  weighted mean is the global weighted mean).

  `draw_candidates(rng, num_sets, factor * k)` returns the embeddings of every global candidate,
  (num_sets, n, e), alike on every device, and their samples: all n, drawn alike on every device
  (the toys, from a key shared by the devices), or this device's contiguous shard of n /
  num_replicas (streamed images: device i holds candidates i*n/D ... (i+1)*n/D - 1). Every device
  computes the same k picks of each set; device i keeps picks i*k/D ... (i+1)*k/D - 1, so the
  devices' batches in device order are the core-set one device would pick, on any device count.
  With shards, each device gets its picked samples from the devices holding them
  (`exchange_picks`); the weights need no exchange, every device computes all of them.
  """
  samples, embeddings = draw_candidates(rng, num_sets, factor * k)
  sharded = samples.shape[1] != embeddings.shape[1]
  k_d = k // num_replicas
  index = 0 if axis_name is None else lax.axis_index(axis_name)
  mine = lambda x: lax.dynamic_slice_in_dim(x, index * k_d, k_d, axis=1)
  weights = jnp.ones((num_sets, k_d))
  if factor == 1:  # Every candidate is kept: random sampling, no kernel.
    picks = jnp.broadcast_to(jnp.arange(k), (num_sets, k))
    chosen = samples if sharded else take(samples, mine(picks))  # A shard is this device's slice.
  else:
    picks = coreset_indices(embeddings, k)
    chosen = exchange_picks(samples, picks, axis_name) if sharded else take(samples, mine(picks))
    if with_weights:
      weights = mine(jax.vmap(coreset.cell_weights)(embeddings, picks))
  return (chosen, weights) if with_weights else chosen


def exchange_picks(shard: jax.Array, picks: jax.Array, axis_name: str) -> jax.Array:
  """(num_sets, k / D, ...): device i's slice, picks i*k/D ... (i+1)*k/D - 1, of every set's
  picked samples, which lie on the D devices of `axis_name`.

  shard: (num_sets, m, ...), this device's candidates m*i ... m*(i+1) - 1 of each set; picks:
  (num_sets, k) indices into the set's m*D candidates, the same on every device. Each device
  puts the picked samples it holds in their places of a (num_sets, k, ...) array, zeros
  elsewhere, and one reduce-scatter (`lax.psum_scatter`) over the devices sums these and leaves
  each device its slice. The sum is exact: each element has one non-zero term. It moves
  num_sets * k samples per device, the picked batch (for CIFAR-10's SN-GAN, 5 sets of 64 float32
  32x32x3 images: 3.9 MB into the reduce-scatter, each device receiving 1/D of it), where
  gathering every device's candidates would move `factor` times as much to every device.
  """
  m = shard.shape[1]
  local = picks - lax.axis_index(axis_name) * m
  held = (local >= 0) & (local < m)
  mine = take(shard, jnp.clip(local, 0, m - 1))
  mine = jnp.where(held.reshape(held.shape + (1,) * (shard.ndim - 2)), mine, 0)
  return lax.psum_scatter(mine, axis_name, scatter_dimension=1, tiled=True)
