"""Top-k generator updates (Sinha et al., NeurIPS 2020).

Of the generated samples in a generator update, only the k the critic scores as most realistic
contribute to the generator loss. k decays from the whole batch to a floor:
k = max(gamma^epoch, nu) * batch.

Across devices the choice is either global (the default: all devices' critic scores are gathered, so
the k kept samples are the same as a single device with the whole batch would keep, whatever the
device count; it costs one all-gather of one float per sample) or local (each device keeps its own
top fraction; no communication, but the kept set depends on how the batch is split).
"""
from typing import Optional

import jax
import jax.numpy as jnp
from jax import lax

SCOPES = ("global", "local")


def keep_fraction(step: jax.Array, gamma: float, nu: float, decay_steps: int) -> jax.Array:
  """max(gamma^epoch, nu) with epoch = step // decay_steps."""
  epoch = jnp.asarray(step) // decay_steps
  return jnp.maximum(jnp.asarray(gamma, jnp.float32) ** epoch, nu)


def num_kept(step: jax.Array, batch_size: int, gamma: float, nu: float,
             decay_steps: int) -> jax.Array:
  """k for a batch of `batch_size`: floor(keep_fraction * batch_size), at least 1."""
  k = jnp.floor(keep_fraction(step, gamma, nu, decay_steps) * batch_size).astype(jnp.int32)
  return jnp.clip(k, 1, batch_size)


def top_k_weights(scores: jax.Array, k: jax.Array,
                  axis_name: Optional[str] = None) -> jax.Array:
  """Per-sample generator-loss weights that keep the k highest `scores` and drop the rest.

  Kept samples get weight total/k (total = number of scores ranked), dropped ones 0, so that the
  mean of weight * loss over the batch is the mean loss over the kept samples. Ties go to the
  lowest index (the lowest device first when global). With `axis_name`, the ranking is over the
  scores of every device on that pmapped axis and `k` counts samples over all of them.
  """
  scores = lax.stop_gradient(scores)
  local_size = scores.shape[0]
  if axis_name is None:
    ranked, offset = scores, 0
  else:
    ranked = lax.all_gather(scores, axis_name).reshape(-1)
    offset = lax.axis_index(axis_name) * local_size
  order = jnp.argsort(-ranked, stable=True)
  rank = jnp.zeros_like(order).at[order].set(jnp.arange(ranked.shape[0]))
  keep = lax.dynamic_slice_in_dim(rank < k, offset, local_size)
  return keep.astype(scores.dtype) * (ranked.shape[0] / k)


def with_sample_weights(kept: jax.Array, weights: jax.Array,
                        axis_name: Optional[str] = None) -> jax.Array:
  """Top-k's weights `kept` (`top_k_weights`: 0 for a dropped sample) combined with per-sample
  weights (weighted core-sets): N * w * mask / sum(w * mask) over the N ranked samples, summed
  over the devices of `axis_name` when the ranking was global. The mean of the result times the
  loss over the ranked samples is then the `weights`-weighted mean loss over the kept ones; with
  equal weights it is `kept` itself."""
  mask = (kept > 0).astype(weights.dtype)
  kept_weight, ranked = jnp.sum(weights * mask), weights.shape[0]
  if axis_name is not None:
    kept_weight, ranked = lax.psum((kept_weight, ranked), axis_name)
  return ranked * weights * mask / kept_weight
