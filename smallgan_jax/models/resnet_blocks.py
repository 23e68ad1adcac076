"""The residual blocks and self-attention layer shared by the SN-GAN and SAGAN pairs.

Generator blocks (`GBlock`) are pre-activation: batch norm and ReLU come before each convolution,
and they double the resolution with nearest-neighbour upsampling. Discriminator blocks (`DBlock`,
`DOptimizedBlock`) have no normalisation and halve the resolution with 2x2 average pooling, as
in Miyato et al. 2018 (SN-GAN) and Zhang et al. 2019 (SAGAN). Every convolution or dense layer can
be spectrally normalised with flax's `nn.SpectralNorm` (`spectral_norm=True`): its vectors and
sigmas live in the "spectral_stats" collection, updated only when `train=True`, exactly as in
`dcgan.py`. Batch norm keeps its running statistics in "batch_stats"; with `batch_norm_axis` set
(the trainer's mesh axis, "batch") the batch statistics are averaged over that mapped axis, so
every shard normalises with the global batch's mean and variance (synchronised batch norm).
Parameters are float32; `dtype` is the compute dtype.
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from smallgan_jax.models.dcgan import SPECTRAL_STATS


def layer(module: nn.Module, h: jax.Array, *, spectral_norm: bool, sn_steps: int,
          train: bool) -> jax.Array:
  """`module(h)`, with `module`'s weights spectrally normalised when `spectral_norm` (one
  `sn_steps`-step power iteration per call, kept only in training). Call it inside a compact
  method: `module` and its wrapper become submodules of the calling module."""
  if not spectral_norm:
    return module(h)
  sn = nn.SpectralNorm(module, n_steps=sn_steps, collection_name=SPECTRAL_STATS)
  return sn(h, update_stats=train)


def conv(block: nn.Module, h: jax.Array, features: int, kernel: tuple[int, int], name: str,
         train: bool, use_bias: bool = True) -> jax.Array:
  """A "SAME" convolution of `h` named `name` in `block` (the calling module), spectrally
  normalised as `block.spectral_norm` and `block.sn_steps` say, in `block.dtype`."""
  module = nn.Conv(features, kernel, padding="SAME", use_bias=use_bias, dtype=block.dtype,
                   name=name)
  return layer(module, h, spectral_norm=block.spectral_norm, sn_steps=block.sn_steps,
               train=train)


def batch_norm(train: bool, axis_name: Optional[str], dtype: Any,
               name: Optional[str] = None) -> nn.BatchNorm:
  """Batch norm with the repo's momentum and epsilon; synchronised over `axis_name` if set."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      axis_name=axis_name, dtype=dtype, name=name)


def upsample_nearest(x: jax.Array) -> jax.Array:
  """Nearest-neighbour upsampling by 2 of (b, h, w, c) maps."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def avg_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 average pooling of (b, h, w, c) maps."""
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


class GBlock(nn.Module):
  """Generator residual block: BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, plus a shortcut that
  is the (upsampled) input, through a 1x1 convolution when the block upsamples or changes the
  channels (so both branches have `features` channels)."""
  features: int
  upsample: bool = True
  spectral_norm: bool = False
  sn_steps: int = 1
  batch_norm_axis: Optional[str] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    h = nn.relu(batch_norm(train, self.batch_norm_axis, self.dtype, "bn1")(x))
    if self.upsample:
      h, x = upsample_nearest(h), upsample_nearest(x)
    h = conv(self, h, self.features, (3, 3), "conv1", train)
    h = nn.relu(batch_norm(train, self.batch_norm_axis, self.dtype, "bn2")(h))
    h = conv(self, h, self.features, (3, 3), "conv2", train)
    if self.upsample or x.shape[-1] != self.features:
      x = conv(self, x, self.features, (1, 1), "shortcut", train)
    return x + h


class DBlock(nn.Module):
  """Discriminator residual block: ReLU-conv3x3-ReLU-conv3x3, then 2x2 average pooling when
  `downsample`; the shortcut is the input, through a 1x1 convolution (then pooled) when the block
  downsamples or changes the channels."""
  features: int
  downsample: bool = True
  spectral_norm: bool = True
  sn_steps: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    h = conv(self, nn.relu(x), self.features, (3, 3), "conv1", train)
    h = conv(self, nn.relu(h), self.features, (3, 3), "conv2", train)
    if self.downsample or x.shape[-1] != self.features:
      x = conv(self, x, self.features, (1, 1), "shortcut", train)
    if self.downsample:
      h, x = avg_pool_2x2(h), avg_pool_2x2(x)
    return x + h


class DOptimizedBlock(nn.Module):
  """The discriminator's first block, on the image itself: conv3x3-ReLU-conv3x3-avgpool, with an
  avgpool-conv1x1 shortcut. No ReLU before the first convolution: it would clip the image's
  negative pixels (Miyato et al. 2018's "optimized" block)."""
  features: int
  spectral_norm: bool = True
  sn_steps: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    h = conv(self, x, self.features, (3, 3), "conv1", train)
    h = avg_pool_2x2(conv(self, nn.relu(h), self.features, (3, 3), "conv2", train))
    return conv(self, avg_pool_2x2(x), self.features, (1, 1), "shortcut", train) + h


class SelfAttention(nn.Module):
  """SAGAN's self-attention (Zhang et al. 2019) on (b, h, w, c) maps, c >= 8 and h, w even:
  every position attends to all (2x2 max-pooled) positions, so the output can depend on distant
  pixels.

  Queries g(x) and keys f(x) have c // 8 channels, values h(x) c // 2; keys and values are
  max-pooled 2x2 (as in the SAGAN/BigGAN reference code: 4x fewer positions to attend to). The
  softmax over the key positions weighs the values, which a 1x1 convolution v maps back to c
  channels: o. The output is `x + gamma * o`, with the scalar `gamma` initialised to 0 so the
  block starts as the identity. The convolutions have no bias; the logits and softmax are
  computed in float32 whatever the compute dtype.
  """
  spectral_norm: bool = True
  sn_steps: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    b, height, width, c = x.shape
    if c < 8:
      raise ValueError(f"SelfAttention: {c} channels; expected at least 8 (keys have c // 8)")
    project = lambda h, features, name: conv(self, h, features, (1, 1), name, train,
                                             use_bias=False)
    pool = lambda h: nn.max_pool(h, (2, 2), strides=(2, 2))
    queries = project(x, c // 8, "g").reshape(b, height * width, c // 8)
    keys = pool(project(x, c // 8, "f")).reshape(b, -1, c // 8)
    values = pool(project(x, c // 2, "h")).reshape(b, -1, c // 2)
    logits = jnp.einsum("bqc,bkc->bqk", queries, keys, preferred_element_type=jnp.float32)
    weights = jax.nn.softmax(logits, axis=-1).astype(values.dtype)
    attended = jnp.einsum("bqk,bkc->bqc", weights, values).reshape(b, height, width, c // 2)
    o = project(attended, c, "v")
    gamma = self.param("gamma", nn.initializers.zeros, (), jnp.float32)
    return x + gamma.astype(o.dtype) * o
