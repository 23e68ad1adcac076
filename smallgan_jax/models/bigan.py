"""BiGAN's encoder and joint discriminator (Donahue et al. 2017) and the anomaly score Zenati et
al. (2018, "Efficient GAN-based anomaly detection") compute with them, for 28- and 32-pixel images.

The encoder Enc(x) halves the image twice with 4x4 stride-2 convolutions and leaky ReLU (batch
norm after the second, in "batch_stats", updated only when `train=True`) and maps it to a latent
z with a dense layer. The joint discriminator D(x, z) halves the image the same way (no batch
norm), embeds z with a dense layer, and maps the two through one dense hidden layer, the
"feature" layer f_D(x, z), to one logit per pair. A BiGAN trains D to tell (x, Enc(x)) from
(G(z), z); a well-trained Enc inverts G on the data, so a test image far from G(Enc(x)), in pixels
or in D's features, is anomalous (`anomaly_score`). Parameters are float32, `dtype` is the compute
dtype, and every output is float32. MEG's statistics network T(x, z) (`meg`) has D's architecture:
it builds on `joint_features`.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# Zenati et al.'s alpha, the reconstruction term's weight in the score (1 - alpha: the feature
# term's), the value of their MNIST experiments.
ANOMALY_WEIGHT = 0.9
_KERNEL = (4, 4)


def _halve(features: int, dtype: Any) -> nn.Conv:
  return nn.Conv(features, _KERNEL, strides=(2, 2), padding="SAME", dtype=dtype)


def joint_features(x: jax.Array, z: jax.Array, width: int, dtype: Any) -> jax.Array:
  """The hidden layer of a network of an image x (batch, r, r, c) and a latent z (batch, z_dim):
  x through two stride-2 convolutions (width, 2 * width channels), z through a dense layer of
  4 * width, both leaky ReLU, then a dense leaky ReLU layer of 4 * width over the two, shape
  (batch, 4 * width) in `dtype`. Call it inside a compact module, which owns its layers."""
  h = nn.leaky_relu(_halve(width, dtype)(x.astype(dtype)), 0.2)
  h = nn.leaky_relu(_halve(2 * width, dtype)(h), 0.2)
  e = nn.leaky_relu(nn.Dense(4 * width, dtype=dtype)(z.astype(dtype)), 0.2)
  h = jnp.concatenate([h.reshape(h.shape[0], -1), e], axis=-1)
  return nn.leaky_relu(nn.Dense(4 * width, dtype=dtype)(h), 0.2)


class Encoder(nn.Module):
  """Images (batch, r, r, channels) -> latents (batch, z_dim), float32."""
  z_dim: int
  width: int = 64  # Channels of the first convolution; the second has 2 * width.
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    h = nn.leaky_relu(_halve(self.width, self.dtype)(x.astype(self.dtype)), 0.2)
    h = _halve(2 * self.width, self.dtype)(h)
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                     dtype=self.dtype)(h)
    h = nn.leaky_relu(h, 0.2).reshape(h.shape[0], -1)
    return nn.Dense(self.z_dim, dtype=self.dtype)(h).astype(jnp.float32)


class JointDiscriminator(nn.Module):
  """(images (batch, r, r, c), latents (batch, z_dim)) -> one float32 logit per pair, shape
  (batch,), or with `features=True` the feature layer f_D(x, z), (batch, 4 * width) float32."""
  width: int = 64  # Channels of the first convolution; the dense layers have 4 * width.
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: tuple[jax.Array, jax.Array], train: bool = True,
               features: bool = False) -> jax.Array:
    del train  # Deterministic (no batch statistics, no dropout); the common model signature.
    h = joint_features(*inputs, self.width, self.dtype)
    if features:
      return h.astype(jnp.float32)
    return nn.Dense(1, dtype=self.dtype)(h)[:, 0].astype(jnp.float32)


def anomaly_score(x: jax.Array, reconstruction: jax.Array, features_x: jax.Array,
                  features_reconstruction: jax.Array,
                  weight: float = ANOMALY_WEIGHT) -> jax.Array:
  """Zenati et al.'s A(x) = weight * ||x - G(Enc(x))||_1 + (1 - weight) * ||f_D(x, Enc(x)) -
  f_D(G(Enc(x)), Enc(x))||_1 per sample (higher = more anomalous), shape (batch,) float32.

  `reconstruction` is G(Enc(x)); `features_x` and `features_reconstruction` are the joint
  discriminator's feature layers of the two pairs. Each L1 norm sums over all non-batch axes.
  """
  def l1(a: jax.Array, b: jax.Array) -> jax.Array:
    diff = jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32))
    return diff.reshape(diff.shape[0], -1).sum(axis=-1)
  return (weight * l1(x, reconstruction)
          + (1 - weight) * l1(features_x, features_reconstruction))
