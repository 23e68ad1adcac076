"""MLP generator and discriminator for the 2D toy GANs (paper Sec. 4.2: 4 fully connected ReLU
layers, after Azadi et al. 2018)."""
from typing import Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
  """Dense-ReLU stack with a linear output layer."""
  hidden: Sequence[int]
  out_dim: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    del train  # No batch statistics; kept for the common model signature.
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.out_dim)(x)


class MLPDiscriminator(nn.Module):
  """Critic returning one logit per sample, shape (batch,)."""
  hidden: Sequence[int]

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    return MLP(self.hidden, 1)(x.reshape(x.shape[0], -1), train)[:, 0]
