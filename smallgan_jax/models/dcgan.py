"""A DCGAN-sized convolutional generator and discriminator for 28- and 32-pixel images, small
enough to train on a CPU at narrow widths.

The generator maps z through a dense layer to an (r/4, r/4, 2c) base (7x7 at 28 pixels, 8x8 at
32) and doubles it twice with stride-2 transposed convolutions, batch norm and ReLU between them,
to (r, r, channels) in [-1, 1] (tanh). The discriminator halves the image twice with strided
convolutions and leaky ReLU and returns one logit per sample; it has no batch norm. Optionally it
is spectrally normalised (Miyato et al. 2018) with flax's `nn.SpectralNorm`, one power-iteration
step per training application: the vectors and sigmas live in their own `spectral_stats`
collection, updated only when `train=True` (so `mutable=["spectral_stats"]` then), never in
inference. Parameters are float32 and `dtype` is the compute dtype (e.g. bfloat16 on TPU/GPU);
both networks return float32. `models.get_models` builds the pair from `dcgan_config`'s block.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

SPECTRAL_STATS = "spectral_stats"  # The spectral norm's collection (not "batch_stats").
RESOLUTIONS = (28, 32)  # Two stride-2 stages from a 7x7 or 8x8 base.
_KERNEL = (4, 4)


def dcgan_config(**overrides: Any) -> ml_collections.ConfigDict:
  """The `config.dcgan` block of a config of model='dcgan', with its defaults; `overrides` set
  fields. The resolution and channels come from the dataset's (H, W, C) samples.

  g_channels:     generator width: its base is (r/4, r/4, 2 * g_channels), its hidden layer
                  (r/2, r/2, g_channels).
  d_channels:     discriminator width: its convolutions have d_channels and 2 * d_channels.
  spectral_norm:  spectrally normalise every discriminator layer (state in "spectral_stats").
  dtype:          the networks' compute dtype, "float32" or "bfloat16" (for TPU/GPU); parameters,
                  batch/spectral statistics and both outputs stay float32.
  """
  config = ml_collections.ConfigDict({
      "g_channels": 64, "d_channels": 64, "spectral_norm": True, "dtype": "float32"})
  config.update(overrides)
  return config


class DCGANGenerator(nn.Module):
  """z (batch, z_dim) -> images (batch, resolution, resolution, channels) in [-1, 1], float32."""
  resolution: int
  channels: int
  width: int = 64  # Channels of the last hidden layer; the base has 2 * width.
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    if self.resolution not in RESOLUTIONS:
      raise ValueError(f"DCGANGenerator: resolution={self.resolution}: expected one of "
                       f"{RESOLUTIONS}")
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                dtype=self.dtype)
    base = self.resolution // 4
    x = nn.Dense(base * base * 2 * self.width, dtype=self.dtype)(z)
    x = nn.relu(norm()(x.reshape(z.shape[0], base, base, 2 * self.width)))
    x = nn.ConvTranspose(self.width, _KERNEL, strides=(2, 2), padding="SAME", dtype=self.dtype)(x)
    x = nn.relu(norm()(x))
    x = nn.ConvTranspose(self.channels, _KERNEL, strides=(2, 2), padding="SAME",
                         dtype=self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32))


class DCGANDiscriminator(nn.Module):
  """Images (batch, r, r, channels) -> one float32 logit per sample, shape (batch,)."""
  width: int = 64  # Channels of the first convolution; the second has 2 * width.
  spectral_norm: bool = True
  dtype: Any = jnp.float32
  sn_steps: int = 1  # Power-iteration steps per application (SN-GAN: 1).

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    def layer(module: nn.Module, h: jax.Array) -> jax.Array:
      if not self.spectral_norm:
        return module(h)
      sn = nn.SpectralNorm(module, n_steps=self.sn_steps, collection_name=SPECTRAL_STATS)
      return sn(h, update_stats=train)

    h = x.astype(self.dtype)
    h = nn.leaky_relu(layer(nn.Conv(self.width, _KERNEL, strides=(2, 2), padding="SAME",
                                    dtype=self.dtype), h), 0.2)
    h = nn.leaky_relu(layer(nn.Conv(2 * self.width, _KERNEL, strides=(2, 2), padding="SAME",
                                    dtype=self.dtype), h), 0.2)
    h = layer(nn.Dense(1, dtype=self.dtype), h.reshape(h.shape[0], -1))
    return h[:, 0].astype(jnp.float32)
