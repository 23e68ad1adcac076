"""GAN objectives, written on the critic's raw outputs (logits).

Each generator loss takes per-sample `weights`, so top-k training (see `topk.py`) and plain training
share one code path: plain training passes ones, top-k passes a renormalised 0/1 mask. The critic's
losses and the gradient penalty take optional per-sample weights of each term (weighted core-sets,
`coreset.cell_weights`): None is the plain mean, computed as it always was.
"""
from typing import Callable, Optional

import jax
import jax.numpy as jnp


def weighted_mean(values: jax.Array, weights: Optional[jax.Array]) -> jax.Array:
  """mean(weights * values) over the samples (the leading axis); the plain mean when None."""
  if weights is None:
    return jnp.mean(values)
  return jnp.mean(weights.reshape(weights.shape + (1,) * (values.ndim - 1)) * values)


def non_saturating_d_loss(real_logits: jax.Array, fake_logits: jax.Array,
                          real_weights: Optional[jax.Array] = None,
                          fake_weights: Optional[jax.Array] = None) -> jax.Array:
  """Paper Eq. 1: -log D(x) - log(1 - D(G(z))), with D = sigmoid(logits)."""
  return (weighted_mean(jax.nn.softplus(-real_logits), real_weights)
          + weighted_mean(jax.nn.softplus(fake_logits), fake_weights))


def non_saturating_g_loss(fake_logits: jax.Array, weights: jax.Array) -> jax.Array:
  """Paper Eq. 2 (the non-saturating form): -log D(G(z)), weighted per sample."""
  return jnp.mean(weights * jax.nn.softplus(-fake_logits))


def hinge_d_loss(real_logits: jax.Array, fake_logits: jax.Array,
                 real_weights: Optional[jax.Array] = None,
                 fake_weights: Optional[jax.Array] = None) -> jax.Array:
  """Hinge loss of SN-GAN / SAGAN: relu(1 - D(x)) + relu(1 + D(G(z)))."""
  return (weighted_mean(jax.nn.relu(1.0 - real_logits), real_weights)
          + weighted_mean(jax.nn.relu(1.0 + fake_logits), fake_weights))


def hinge_g_loss(fake_logits: jax.Array, weights: jax.Array) -> jax.Array:
  """Hinge generator loss: -D(G(z)), weighted per sample."""
  return -jnp.mean(weights * fake_logits)


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], points: jax.Array,
                     center: float, weights: Optional[jax.Array] = None) -> jax.Array:
  """Mean over samples of (||grad_x critic(x)|| - center)^2 at `points` (weighted by `weights`).

  center 0 on real samples is R1 (Mescheder et al. 2018; MEG's energy penalty); center 1 on
  real/fake interpolates is WGAN-GP (Gulrajani et al. 2017). Samples are independent in the
  critic (no batch statistics in inference mode), so one gradient of the summed outputs gives
  every per-sample gradient.
  """
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(points)
  squared_norms = jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=1)
  if center == 0:  # Exact, and differentiable where a gradient vanishes (sqrt is not at 0).
    return weighted_mean(squared_norms, weights)
  return weighted_mean((jnp.sqrt(squared_norms + 1e-12) - center) ** 2, weights)


def wasserstein_d_loss(real_logits: jax.Array, fake_logits: jax.Array,
                       real_weights: Optional[jax.Array] = None,
                       fake_weights: Optional[jax.Array] = None) -> jax.Array:
  """-D(x) + D(G(z)): with D = -E, MEG's energy loss E(x) - E(G(z)) (its penalty added apart)."""
  return weighted_mean(fake_logits, fake_weights) - weighted_mean(real_logits, real_weights)


_LOSSES = {
    "non_saturating": (non_saturating_d_loss, non_saturating_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
    # The generator's side is hinge's: -D(G(z)) = E(G(z)).
    "wasserstein": (wasserstein_d_loss, hinge_g_loss),
}
LOSSES = tuple(_LOSSES)
# Where the critic's gradient penalty is taken: real samples (R1) or interpolates (WGAN-GP).
PENALTY_POINTS = ("real", "interpolates")


def get_losses(name: str) -> tuple[Callable, Callable]:
  """Returns (discriminator_loss, generator_loss) for a loss name from the config."""
  if name not in _LOSSES:
    raise ValueError(f"loss={name!r} is not known; expected one of {sorted(_LOSSES)}")
  return _LOSSES[name]
