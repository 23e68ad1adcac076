"""MEG's statistics network (Kumar et al. 2019, "Maximum entropy generators for energy-based
models").

MEG keeps its generator's samples diverse by raising their entropy, which it replaces with the
mutual information between G(z) and z: a statistics network T(x, z) is trained to tell the pairs
(G(z), z) from (G(z), z shuffled within the batch), and its Jensen-Shannon (binary cross-entropy)
estimate of the information is what the generator raises (`objectives`, objective "meg"). T has
the BiGAN joint discriminator's architecture (`bigan.joint_features`): the image x (batch, r, r,
c), r 28 or 32, through two 4x4 stride-2 convolutions, z through a dense layer, then a dense
hidden layer over both and one logit per pair. It has no normalisation. Parameters are float32,
`dtype` is the compute dtype, and the logits are float32.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from smallgan_jax.models import bigan


class StatisticsNetwork(nn.Module):
  """(images (batch, r, r, c), latents (batch, z_dim)) -> one float32 logit per pair, shape
  (batch,): high for a matching (G(z), z), low for a shuffled one."""
  width: int = 64  # Channels of the first convolution; the dense layers have 4 * width.
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: tuple[jax.Array, jax.Array], train: bool = True) -> jax.Array:
    del train  # No batch statistics; kept for the common model signature.
    h = bigan.joint_features(*inputs, self.width, self.dtype)
    return nn.Dense(1, dtype=self.dtype)(h)[:, 0].astype(jnp.float32)
