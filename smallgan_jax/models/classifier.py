"""A small CNN classifier for 28- and 32-pixel images, whose penultimate layer is an embedding.

It is the `classifier` embedding model of the target core-set (`smallgan_jax.embeddings`): for
data where the FID Inception's weights are not at hand, `smallgan_jax.features.classifier` trains
it on the training split's labels, and its `features` (the 128-d ReLU layer before the logits) stand in for
Inception's pool3 features.

Two 3x3 conv stages (32 and 64 channels by default) that halve the resolution, a 128-unit dense
layer and the logits. A stage halves it by a 2x2 max-pool after its conv (`downsample`
"max_pool": the `classifier` network, about 0.42M parameters for 28x28x1 inputs, ~8.5 MFLOP per
image forward) or by a stride-2 conv ("stride": `classifier2`, 4x fewer conv FLOPs and no max-pool
gradient, which dominates a training step on XLA's CPU backend); a few epochs of Fashion-MNIST
train on a CPU in minutes (>= 90% test accuracy: docs/embeddings.md).
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class CNNClassifier(nn.Module):
  """uint8 or float images (batch, H, W, C) -> logits (batch, num_classes).

  `features(images)` gives the penultimate activations (batch, feature_dim); call it with
  `model.apply(params, images, method=CNNClassifier.features)`. Images are read as uint8 values
  in [0, 255] (any dtype), scaled to [-1, 1] inside.
  """
  num_classes: int
  channels: Sequence[int] = (32, 64)
  feature_dim: int = 128
  downsample: str = "max_pool"  # Or "stride".

  def setup(self):
    strides = (2, 2) if self.downsample == "stride" else (1, 1)
    self.convs = [nn.Conv(c, (3, 3), strides=strides, padding="SAME", name=f"conv{i}")
                  for i, c in enumerate(self.channels)]
    self.hidden = nn.Dense(self.feature_dim, name="hidden")
    self.head = nn.Dense(self.num_classes, name="head")

  def features(self, images: jax.Array) -> jax.Array:
    """Penultimate activations, float32 (batch, feature_dim)."""
    x = images.astype(jnp.float32) / 127.5 - 1.0
    for conv in self.convs:
      x = nn.relu(conv(x))
      if self.downsample == "max_pool":
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return nn.relu(self.hidden(x.reshape(x.shape[0], -1)))

  def __call__(self, images: jax.Array) -> jax.Array:
    return self.head(self.features(images))
