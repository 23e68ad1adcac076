"""Generator / discriminator pairs, chosen by `config.model`.

Every model is called as `model(x, train=bool)`; a discriminator returns one logit per sample.
"""
import flax.linen as nn
import ml_collections

from smallgan_jax.models import mlp


def _mlp(config: ml_collections.ConfigDict, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
  hidden = (config.mlp.width,) * config.mlp.hidden_layers
  if len(data_shape) != 1:
    raise ValueError(f"model='mlp' generates vectors; the dataset has samples of shape {data_shape}")
  return mlp.MLP(hidden, data_shape[0]), mlp.MLPDiscriminator(hidden)


_MODELS = {"mlp": _mlp}
MODELS = tuple(_MODELS)


def get_models(config: ml_collections.ConfigDict, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
  """Returns (generator, discriminator) for `config.model`."""
  if config.model not in _MODELS:
    raise ValueError(f"model={config.model!r} is not known; expected one of {sorted(_MODELS)}")
  return _MODELS[config.model](config, data_shape)
