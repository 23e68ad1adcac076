"""Generator / discriminator pairs, chosen by `config.model`, and the third network of an objective
with one (`get_aux_model`; `objectives.py`).

Every model is called as `model(x, train=bool)`; a discriminator returns one logit per sample.
BiGAN's critic is joint: it takes (x, z) pairs.
"""
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from smallgan_jax import distributed
from smallgan_jax.models import bigan, dcgan, meg, mlp, sagan, sngan

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}  # A model block's compute `dtype`.
# Each convolutional model's config block (same name as the model) and the resolutions it makes.
RESOLUTIONS = {"dcgan": dcgan.RESOLUTIONS, "sngan": sngan.RESOLUTIONS, "sagan": sagan.RESOLUTIONS}


def _mlp(config: ml_collections.ConfigDict, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
  hidden = (config.mlp.width,) * config.mlp.hidden_layers
  if len(data_shape) != 1:
    raise ValueError(f"model='mlp' generates vectors; the dataset has samples of shape {data_shape}")
  return mlp.MLP(hidden, data_shape[0]), mlp.MLPDiscriminator(hidden)


def _dcgan(config: ml_collections.ConfigDict,
           data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
  """The convolutional pair of `config.dcgan` (fields documented in `dcgan.dcgan_config`)."""
  _image_shape(config, data_shape)
  block, dtype = config.dcgan, DTYPES[config.dcgan.dtype]
  generator = dcgan.DCGANGenerator(data_shape[0], data_shape[2], block.g_channels, dtype)
  if config.objective == "bigan":
    return generator, bigan.JointDiscriminator(block.d_channels, dtype)
  discriminator = dcgan.DCGANDiscriminator(block.d_channels, block.spectral_norm, dtype)
  return generator, discriminator


def _image_shape(config: ml_collections.ConfigDict, data_shape: tuple[int, ...]) -> None:
  if (len(data_shape) != 3 or data_shape[0] != data_shape[1]
      or data_shape[0] not in RESOLUTIONS[config.model]):
    raise ValueError(f"model={config.model!r} generates (H, W, C) images with H == W in "
                     f"{RESOLUTIONS[config.model]}; the dataset has samples of shape {data_shape}")


def _batch_norm_axis(block: ml_collections.ConfigDict):
  """The mesh axis the generator's batch statistics average over, if synchronised."""
  return distributed.AXIS if block.sync_batch_norm else None


def _sngan(config: ml_collections.ConfigDict,
           data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
  """SN-GAN's ResNet pair of `config.sngan` (`sngan.sngan_config`)."""
  _image_shape(config, data_shape)
  block, dtype = config.sngan, DTYPES[config.sngan.dtype]
  generator = sngan.SNGANGenerator(data_shape[0], data_shape[2], block.g_channels, dtype,
                                   _batch_norm_axis(block))
  return generator, sngan.SNGANDiscriminator(block.d_channels, dtype)


def _sagan(config: ml_collections.ConfigDict,
           data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
  """SAGAN's pair of `config.sagan` (`sagan.sagan_config`)."""
  _image_shape(config, data_shape)
  block, dtype = config.sagan, DTYPES[config.sagan.dtype]
  generator = sagan.SAGANGenerator(data_shape[0], data_shape[2], block.g_channels,
                                   block.attention_resolution, dtype, _batch_norm_axis(block))
  return generator, sagan.SAGANDiscriminator(block.d_channels, block.attention_resolution, dtype)


_MODELS = {"mlp": _mlp, "dcgan": _dcgan, "sngan": _sngan, "sagan": _sagan}
MODELS = tuple(_MODELS)


def get_models(config: ml_collections.ConfigDict, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
  """Returns (generator, discriminator) for `config.model`."""
  if config.model not in _MODELS:
    raise ValueError(f"model={config.model!r} is not known; expected one of {sorted(_MODELS)}")
  return _MODELS[config.model](config, data_shape)


def get_aux_model(config: ml_collections.ConfigDict,
                  data_shape: tuple[int, ...]) -> Optional[nn.Module]:
  """The objective's third network, as wide as the critic (`config.dcgan.d_channels`): MEG's
  statistics network T(x, z), BiGAN's encoder; None for a plain GAN."""
  if config.objective == "gan":
    return None
  _image_shape(config, data_shape)
  block, dtype = config.dcgan, DTYPES[config.dcgan.dtype]
  if config.objective == "meg":
    return meg.StatisticsNetwork(block.d_channels, dtype)
  return bigan.Encoder(config.z_dim, block.d_channels, dtype)
