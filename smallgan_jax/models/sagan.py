"""SAGAN's generator and discriminator (Zhang et al. 2019, the 128x128 ImageNet networks),
unconditional, for square images whose side is in `RESOLUTIONS`.

Both networks are ResNets of `resnet_blocks` with a `SelfAttention` layer after the block whose
feature maps are `attention_resolution` pixels wide (32 in the paper), and both are spectrally
normalised throughout (the generator too, one of SAGAN's two stabilisers; the other, TTUR, is
the optimiser's business). The generator maps z through a dense layer to a (4, 4, 16 ch) base
and doubles it with `GBlock`s whose widths are the tail of `G_MULTIPLIERS` times ch (16, 8, 4,
2, 1 at 128 pixels), then BN-ReLU-conv3x3-tanh to (r, r, channels) in [-1, 1]. The
discriminator halves the image down to 4x4 with an optimized block and `DBlock`s whose widths
are the head of `D_MULTIPLIERS` times ch (1, 2, 4, 8, 16 at 128 pixels), adds one more `DBlock`
of the last width at 4x4, then ReLU, a sum over the positions and a dense layer give one logit
per sample. Batch norm ("batch_stats", generator) and spectral norm ("spectral_stats", both)
state stay in their own collections, updated only when `train=True`. Parameters are float32,
`dtype` is the compute dtype, and both networks return float32.
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from smallgan_jax.models import resnet_blocks as blocks

RESOLUTIONS = (16, 32, 64, 128)  # 4x4 base doubled 2 to 5 times.
G_MULTIPLIERS = (16, 16, 8, 4, 2, 1)  # Base, then each block's width / ch; its tail is used.
D_MULTIPLIERS = (1, 2, 4, 8, 16)  # Each down block's width / ch; its head is used.


def sagan_config(**overrides: Any) -> ml_collections.ConfigDict:
  """The `config.sagan` block of a config of model='sagan', with its defaults (Zhang et al.'s
  128-pixel widths); `overrides` set fields. The resolution and channels come from the dataset's
  (H, W, C) samples, which must be square with H in `RESOLUTIONS`.

  g_channels:            generator width ch: its blocks have (16, 8, 4, 2, 1) * ch channels at
                         128 pixels, the last ones of those at lower resolutions.
  d_channels:            discriminator width ch: its blocks have (1, 2, 4, 8, 16, 16) * ch
                         channels at 128 pixels, the first ones of those at lower resolutions.
  attention_resolution:  the width of the feature maps that self-attention is applied to, in
                         both networks; one of `attention_resolutions(resolution)`. Those maps
                         need at least 8 channels (the keys have 1/8 of them).
  sync_batch_norm:       average the generator's batch statistics over all devices (the
                         trainer's "batch" mesh axis) rather than normalise each device's shard.
  dtype:                 the networks' compute dtype, "float32" or "bfloat16" (for TPU/GPU);
                         parameters, batch/spectral statistics and both outputs stay float32.
  """
  config = ml_collections.ConfigDict({
      "g_channels": 64, "d_channels": 64, "attention_resolution": 32,
      "sync_batch_norm": False, "dtype": "float32"})
  config.update(overrides)
  return config


def attention_resolutions(resolution: int) -> tuple[int, ...]:
  """The feature-map widths both networks have, so can attend at: 8 to resolution / 2."""
  return tuple(2 ** k for k in range(3, resolution.bit_length() - 1))


def _num_blocks(model: str, resolution: int, attention_resolution: int) -> int:
  """log2(resolution / 4): the generator's up blocks and the discriminator's down blocks."""
  if resolution not in RESOLUTIONS:
    raise ValueError(f"{model}: resolution={resolution}: expected one of {RESOLUTIONS}")
  if attention_resolution not in attention_resolutions(resolution):
    raise ValueError(f"{model}: attention_resolution={attention_resolution}: expected one of "
                     f"{attention_resolutions(resolution)} at resolution {resolution}")
  return resolution.bit_length() - 3


class SAGANGenerator(nn.Module):
  """z (batch, z_dim) -> images (batch, resolution, resolution, channels) in [-1, 1], float32."""
  resolution: int
  channels: int
  width: int = 64  # ch: the last block's channels; the others are multiples (G_MULTIPLIERS).
  attention_resolution: int = 32
  dtype: Any = jnp.float32
  batch_norm_axis: Optional[str] = None  # A mapped axis to synchronise batch norm over.
  sn_steps: int = 1  # Power-iteration steps per training application.

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    n = _num_blocks("SAGANGenerator", self.resolution, self.attention_resolution)
    base, *widths = [m * self.width for m in G_MULTIPLIERS[-(n + 1):]]
    sn = {"spectral_norm": True, "sn_steps": self.sn_steps, "dtype": self.dtype}
    x = blocks.layer(nn.Dense(4 * 4 * base, dtype=self.dtype), z, spectral_norm=True,
                     sn_steps=self.sn_steps, train=train).reshape(z.shape[0], 4, 4, base)
    for features in widths:
      x = blocks.GBlock(features, batch_norm_axis=self.batch_norm_axis, **sn)(x, train)
      if x.shape[1] == self.attention_resolution:
        x = blocks.SelfAttention(**sn)(x, train)
    x = nn.relu(blocks.batch_norm(train, self.batch_norm_axis, self.dtype)(x))
    x = blocks.layer(nn.Conv(self.channels, (3, 3), padding="SAME", dtype=self.dtype), x,
                     spectral_norm=True, sn_steps=self.sn_steps, train=train)
    return jnp.tanh(x.astype(jnp.float32))


class SAGANDiscriminator(nn.Module):
  """Images (batch, r, r, channels), r in `RESOLUTIONS` -> one float32 logit per sample,
  shape (batch,). Every layer is spectrally normalised."""
  width: int = 64  # ch: the first block's channels; the others are multiples (D_MULTIPLIERS).
  attention_resolution: int = 32
  dtype: Any = jnp.float32
  sn_steps: int = 1  # Power-iteration steps per training application.

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    n = _num_blocks("SAGANDiscriminator", x.shape[1], self.attention_resolution)
    sn = {"sn_steps": self.sn_steps, "dtype": self.dtype}
    h = x.astype(self.dtype)
    for i, multiplier in enumerate(D_MULTIPLIERS[:n]):
      block = blocks.DOptimizedBlock if i == 0 else blocks.DBlock
      h = block(multiplier * self.width, **sn)(h, train)
      if h.shape[1] == self.attention_resolution:
        h = blocks.SelfAttention(**sn)(h, train)
    h = blocks.DBlock(h.shape[-1], downsample=False, **sn)(h, train)
    h = jnp.sum(nn.relu(h).astype(jnp.float32), axis=(1, 2))
    h = blocks.layer(nn.Dense(1, dtype=self.dtype), h, spectral_norm=True,
                     sn_steps=self.sn_steps, train=train)
    return h[:, 0].astype(jnp.float32)
