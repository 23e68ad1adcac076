"""SN-GAN's ResNet generator and discriminator (Miyato et al. 2018, the CIFAR-10 32x32 networks),
for square images whose side is in `RESOLUTIONS`.

The generator maps z through a dense layer to a (4, 4, width) base and doubles it with `GBlock`s
(nearest upsampling, batch norm, ReLU; three blocks at 32 pixels) up to the resolution, then
BN-ReLU-conv3x3-tanh to (r, r, channels) in [-1, 1]. It is not spectrally normalised. The
discriminator is fully spectrally normalised: an optimized block and plain `DBlock`s halve the
image down to 8x8 (two halvings at 32 pixels), two `DBlock`s keep it there, then ReLU, a sum over
the positions and a dense layer give one logit per sample. The blocks live in `resnet_blocks`;
batch norm ("batch_stats", generator) and spectral norm ("spectral_stats", discriminator) state
stay in their own collections, updated only when `train=True`. Parameters are float32, `dtype`
is the compute dtype, and both networks return float32.
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from smallgan_jax.models import resnet_blocks as blocks

RESOLUTIONS = (16, 32, 64, 128)  # Powers of two: 4x4 base for G, halved to 8x8 in D.
_D_MAP = 8  # The discriminator's last maps: 8x8 (Miyato et al.'s CIFAR network).


def sngan_config(**overrides: Any) -> ml_collections.ConfigDict:
  """The `config.sngan` block of a config of model='sngan', with its defaults (Miyato et al.'s
  CIFAR widths); `overrides` set fields. The resolution and channels come from the dataset's
  (H, W, C) samples, which must be square with H in `RESOLUTIONS`.

  g_channels:       generator width: every generator block has g_channels channels.
  d_channels:       discriminator width: every discriminator block has d_channels channels.
  sync_batch_norm:  average the generator's batch statistics over all devices (the trainer's
                    "batch" mesh axis) rather than normalise each device's shard alone.
  dtype:            the networks' compute dtype, "float32" or "bfloat16" (for TPU/GPU);
                    parameters, batch/spectral statistics and both outputs stay float32.
  """
  config = ml_collections.ConfigDict({
      "g_channels": 256, "d_channels": 128, "sync_batch_norm": False, "dtype": "float32"})
  config.update(overrides)
  return config


def _check_resolution(model: str, resolution: int) -> None:
  if resolution not in RESOLUTIONS:
    raise ValueError(f"{model}: resolution={resolution}: expected one of {RESOLUTIONS}")


class SNGANGenerator(nn.Module):
  """z (batch, z_dim) -> images (batch, resolution, resolution, channels) in [-1, 1], float32."""
  resolution: int
  channels: int
  width: int = 256  # Channels of the base and of every block.
  dtype: Any = jnp.float32
  batch_norm_axis: Optional[str] = None  # A mapped axis to synchronise batch norm over.

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    _check_resolution("SNGANGenerator", self.resolution)
    x = nn.Dense(4 * 4 * self.width, dtype=self.dtype)(z).reshape(z.shape[0], 4, 4, self.width)
    for _ in range(self.resolution.bit_length() - 3):  # log2(resolution / 4) doublings.
      x = blocks.GBlock(self.width, batch_norm_axis=self.batch_norm_axis, dtype=self.dtype)(
          x, train)
    x = nn.relu(blocks.batch_norm(train, self.batch_norm_axis, self.dtype)(x))
    x = nn.Conv(self.channels, (3, 3), padding="SAME", dtype=self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32))


class SNGANDiscriminator(nn.Module):
  """Images (batch, r, r, channels), r in `RESOLUTIONS` -> one float32 logit per sample,
  shape (batch,). Every layer is spectrally normalised."""
  width: int = 128  # Channels of every block.
  dtype: Any = jnp.float32
  sn_steps: int = 1  # Power-iteration steps per training application (SN-GAN: 1).

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    _check_resolution("SNGANDiscriminator", x.shape[1])
    kwargs = {"sn_steps": self.sn_steps, "dtype": self.dtype}
    h = blocks.DOptimizedBlock(self.width, **kwargs)(x.astype(self.dtype), train)
    while h.shape[1] > _D_MAP:
      h = blocks.DBlock(self.width, **kwargs)(h, train)
    for _ in range(2):
      h = blocks.DBlock(self.width, downsample=False, **kwargs)(h, train)
    h = jnp.sum(nn.relu(h).astype(jnp.float32), axis=(1, 2))
    h = blocks.layer(nn.Dense(1, dtype=self.dtype), h, spectral_norm=True,
                     sn_steps=self.sn_steps, train=train)
    return h[:, 0].astype(jnp.float32)
