"""Generator / discriminator pairs, chosen by `config.model`.

Every model is called as `model(x, train=bool)`; a discriminator returns one logit per sample.
"""
import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from smallgan_jax.models import dcgan, mlp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}  # `config.dcgan.dtype`: compute dtype.


def _mlp(config: ml_collections.ConfigDict, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
  hidden = (config.mlp.width,) * config.mlp.hidden_layers
  if len(data_shape) != 1:
    raise ValueError(f"model='mlp' generates vectors; the dataset has samples of shape {data_shape}")
  return mlp.MLP(hidden, data_shape[0]), mlp.MLPDiscriminator(hidden)


def _dcgan(config: ml_collections.ConfigDict,
           data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
  """The convolutional pair of `config.dcgan` (fields documented in `dcgan.dcgan_config`)."""
  if (len(data_shape) != 3 or data_shape[0] != data_shape[1]
      or data_shape[0] not in dcgan.RESOLUTIONS):
    raise ValueError(f"model='dcgan' generates (H, W, C) images with H == W in "
                     f"{dcgan.RESOLUTIONS}; the dataset has samples of shape {data_shape}")
  block, dtype = config.dcgan, DTYPES[config.dcgan.dtype]
  generator = dcgan.DCGANGenerator(data_shape[0], data_shape[2], block.g_channels, dtype)
  discriminator = dcgan.DCGANDiscriminator(block.d_channels, block.spectral_norm, dtype)
  return generator, discriminator


_MODELS = {"mlp": _mlp, "dcgan": _dcgan}
MODELS = tuple(_MODELS)


def get_models(config: ml_collections.ConfigDict, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
  """Returns (generator, discriminator) for `config.model`."""
  if config.model not in _MODELS:
    raise ValueError(f"model={config.model!r} is not known; expected one of {sorted(_MODELS)}")
  return _MODELS[config.model](config, data_shape)
