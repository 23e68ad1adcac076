"""What each kind of GAN trains, beyond a generator and a critic (`config.objective`).

Every objective goes through the one `train.train_step`: core-set latents and real samples, n_dis
critic updates, one generator update. An objective with a third network (`GANState.aux`) says
what the critic sees of a batch and what the third network adds to the generator's loss; the aux
network is updated together with the generator, on the same loss, at every generator update.

- "gan": a generator and a critic, nothing else.
- "meg": MEG (Kumar et al. 2019). The critic is the negative energy, D(x) = -E(x), trained with
  `loss="wasserstein"` (mean E(real) - mean E(fake)) and the real-sample gradient penalty of
  weight 100 (`gradient_penalty`, center 0). The aux network is the statistics network T(x, z),
  which tells (G(z), z) from (G(z), z shuffled within the batch) with a binary cross-entropy (the
  Jensen-Shannon estimator of the mutual information between G(z) and z, Deep InfoMax style). G
  and T minimise E(G(z)) + `meg.entropy_weight` * that cross-entropy: T to estimate the
  information, G to raise it, the entropy proxy. The anomaly score is the energy E(x).
- "bigan": BiGAN (Donahue et al. 2017) as Zenati et al. (2018) use it for anomaly detection. The
  aux network is the encoder Enc(x); the critic is the joint D(x, z), shown (x, Enc(x)) as real and
  (G(z), z) as fake. G and Enc minimise the critic's loss with the labels flipped (non-saturating:
  the generator's loss on (G(z), z), plus softplus(D(x, Enc(x))) on the step's last real batch).
  The encoder runs in training mode wherever it encodes for training (`real_input`).
  The anomaly score is Zenati et al.'s (`bigan.anomaly_score`).
"""
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections

from smallgan_jax import losses
from smallgan_jax.model_state import apply_model
from smallgan_jax.models import bigan

OBJECTIVES = ("gan", "meg", "bigan")


def critic_example(config: ml_collections.ConfigDict, data_shape: tuple[int, ...]) -> Any:
  """An input of one sample for initialising the critic."""
  x = jnp.zeros((1, *data_shape))
  return (x, jnp.zeros((1, config.z_dim))) if config.objective == "bigan" else x


def aux_example(config: ml_collections.ConfigDict, data_shape: tuple[int, ...]) -> Any:
  """An input of one sample for initialising the aux network (None: the objective has none)."""
  x = jnp.zeros((1, *data_shape))
  return {"gan": None, "meg": (x, jnp.zeros((1, config.z_dim))), "bigan": x}[config.objective]


def real_input(config: ml_collections.ConfigDict, aux: Any, real: jax.Array) -> Any:
  """What the critic sees of a real batch when it is updated (the encoder not trained here).

  BiGAN's encoder runs in training mode here, as in `aux_loss`: its batch norm normalises with
  the statistics of this real batch, so the critic learns on the very encodings the encoder's
  loss produces and trains. Inference mode in both would not do: the encoder's running averages
  would then never be updated. Its batch-statistics update is dropped here, kept only where the
  encoder is trained (`aux_loss`); evaluation gives it standing statistics of training images
  (`evaluation.anomaly_networks`).
  """
  if config.objective != "bigan":
    return real
  return real, jax.lax.stop_gradient(apply_model(aux, aux.params, real, train=True)[0])


def fake_input(config: ml_collections.ConfigDict, fake: jax.Array, z: jax.Array) -> Any:
  """What the critic sees of a generated batch."""
  return (fake, z) if config.objective == "bigan" else fake


def aux_loss(config: ml_collections.ConfigDict, aux: Any, aux_params: Any, critic: Any,
             fake: jax.Array, z: jax.Array, real: jax.Array, rng: jax.Array,
             z_weights: Optional[jax.Array] = None,
             real_weights: Optional[jax.Array] = None) -> tuple[jax.Array, Any]:
  """The aux network's term of the generator's loss and its updated collections.

  `critic(inputs)` applies the critic in inference mode; `real` is the step's last real batch.
  With core-set weights (None: unweighted), MEG's joint pairs (G(z), z) take the latents'
  weights w, its shuffled pairs (G(z_i), z_pi(i)) the products w_i * w_pi(i), rescaled to the
  joint pairs' sum; BiGAN's encoder term takes the real samples' weights.
  """
  if config.objective == "meg":
    permutation = jax.random.permutation(rng, z.shape[0])
    shuffled = z[permutation]
    pairs = (jnp.concatenate([fake, fake]), jnp.concatenate([z, shuffled]))
    logits, collections = apply_model(aux, aux_params, pairs, train=True)
    joint, marginal = jnp.split(logits, 2)
    marginal_weights = None
    if z_weights is not None:
      products = z_weights * z_weights[permutation]
      marginal_weights = products * jnp.sum(z_weights) / jnp.sum(products)
    cross_entropy = 0.5 * (losses.weighted_mean(jax.nn.softplus(-joint), z_weights)
                           + losses.weighted_mean(jax.nn.softplus(marginal), marginal_weights))
    return config.meg.entropy_weight * cross_entropy, collections
  encoded, collections = apply_model(aux, aux_params, real, train=True)
  return losses.weighted_mean(jax.nn.softplus(critic((real, encoded))), real_weights), collections


def anomaly_scores(config: ml_collections.ConfigDict, g: Any, d: Any, aux: Optional[Any],
                   x: jax.Array) -> jax.Array:
  """Per-image anomaly scores (higher = more anomalous) of the trained networks, inference mode:
  the energy -D(x) for "gan" and "meg", Zenati et al.'s score for "bigan" (evaluation passes
  the generator and encoder with standing batch-norm statistics, `evaluation.anomaly_networks`)."""
  if config.objective != "bigan":
    return -apply_model(d, d.params, x, train=False)[0]
  z = apply_model(aux, aux.params, x, train=False)[0]
  reconstruction = apply_model(g, g.params, z, train=False)[0]
  features = lambda inputs: d.apply_fn({"params": d.params, **d.collections}, inputs, train=False,
                                       features=True)
  return bigan.anomaly_score(x, reconstruction, features((x, z)), features((reconstruction, z)),
                             bigan.ANOMALY_WEIGHT)
