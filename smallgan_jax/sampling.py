"""Core-set batch samplers (paper Sec. 3.1-3.2, Alg. 2).

Both samplers draw `factor * k` candidates per set and keep the k that greedy k-center picks, for
several independent sets at once (one per discriminator update of a train step), so all core-sets
of a step are computed in one vmapped kernel call. A factor of 1 keeps every candidate: plain random
sampling, which makes the baseline GAN the same code path.
"""
from typing import Callable

import jax
import jax.numpy as jnp

from smallgan_jax import coreset

PRIORS = ("uniform", "normal")
# `config.coreset.prior_scope`: each device's own latent core-set, or its slice of a global one.
PRIOR_SCOPES = ("device", "global")


def sample_prior(rng: jax.Array, shape: tuple[int, ...], prior: str) -> jax.Array:
  """Draws from p(z): uniform on [-1, 1]^d (the paper's choice) or a standard normal."""
  if prior == "uniform":
    return jax.random.uniform(rng, shape, minval=-1.0, maxval=1.0)
  if prior == "normal":
    return jax.random.normal(rng, shape)
  raise ValueError(f"prior={prior!r} is not known; expected one of {PRIORS}")


def select_coresets(candidates: jax.Array, embeddings: jax.Array, k: int) -> jax.Array:
  """Keeps, in each set, the k candidates whose embeddings form its greedy k-center core-set.

  candidates: (num_sets, n, ...); embeddings: (num_sets, n, e). Returns (num_sets, k, ...).
  """
  if candidates.shape[1] == k:
    return candidates
  indices = jax.vmap(coreset.greedy_k_center, in_axes=(0, None))(embeddings, k)
  return jax.vmap(lambda c, i: c[i])(candidates, indices)


def coreset_prior(rng: jax.Array, num_sets: int, k: int, factor: int, z_dim: int,
                  prior: str) -> jax.Array:
  """(num_sets, k, z_dim) latents: core-sets of `factor * k` prior draws per set."""
  z = sample_prior(rng, (num_sets, factor * k, z_dim), prior)
  return select_coresets(z, z, k)


def coreset_target(rng: jax.Array, draw_candidates: Callable, num_sets: int, k: int,
                   factor: int) -> jax.Array:
  """(num_sets, k, ...) real samples: core-sets on the embeddings of `factor * k` candidates.

  `draw_candidates(rng, num_sets, n)` returns (samples, embeddings) with leading dims (num_sets, n).
  """
  x, embeddings = draw_candidates(rng, num_sets, factor * k)
  return select_coresets(x, embeddings, k)
