"""Time of one training step of the classifier network (`models/classifier.py`), its stages
halving the resolution by max-pooling (`classifier`) or by stride-2 convs (`classifier2`), side by
side in one process.

  python benchmarks/classifier_step_time.py [--channels 16 32] [--batch_size=256] [--steps=30]

Why `classifier2` downsamples by stride: on XLA's CPU backend the max-pool's gradient dominates
the step (docs/embeddings.md).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from flax.training import train_state
import jax
import numpy as np
import optax

from smallgan_jax.features import classifier
from smallgan_jax.models import classifier as classifier_model
# pylint: enable=g-import-not-at-top,wrong-import-position


def step_seconds(downsample: str, channels: tuple[int, ...], batch_size: int, steps: int) -> float:
  """Mean seconds of `steps` training steps (`classifier._train_step`), after one to compile."""
  model = classifier_model.CNNClassifier(num_classes=10, channels=channels, downsample=downsample)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (batch_size, 28, 28, 1), dtype=np.uint8)
  targets = rng.integers(0, 10, batch_size).astype(np.int32)
  params = model.init(jax.random.PRNGKey(0), images[:1])
  state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(1e-3))
  state, loss = classifier._train_step(state, images, targets)  # pylint: disable=protected-access
  loss.block_until_ready()
  start = time.perf_counter()
  for _ in range(steps):
    state, loss = classifier._train_step(state, images, targets)  # pylint: disable=protected-access
  loss.block_until_ready()
  return (time.perf_counter() - start) / steps


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--channels", type=int, nargs="+", default=[32, 64])
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--steps", type=int, default=30)
  args = parser.parse_args()
  times = {d: step_seconds(d, tuple(args.channels), args.batch_size, args.steps)
           for d in classifier.DOWNSAMPLES}
  for downsample, seconds in times.items():
    print(f"{downsample:9s} {1000 * seconds:7.1f} ms a step (channels {args.channels}, batch "
          f"{args.batch_size}, {jax.devices()[0].device_kind})")
  print(f"max_pool / stride: {times['max_pool'] / times['stride']:.1f}x")


if __name__ == "__main__":
  main()
