"""Trains the `classifier` embedding model on Fashion-MNIST and prints its test accuracy and time.

  apt-get install -y dataset-fashion-mnist   # the idx files (`smallgan_jax.data.images`)
  python benchmarks/classifier_accuracy.py [--epochs=6] [--classes=0,1,2,3,4,5,6,7,9]

Trains with `smallgan_jax.features.classifier.train` (the settings `load_or_train` uses unless
flags change them), nothing is saved. The goal of issue 13 is >= 90% test accuracy.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

from smallgan_jax.data import images  # pylint: disable=g-import-not-at-top,wrong-import-position
from smallgan_jax.features import classifier  # pylint: disable=g-import-not-at-top


def main() -> None:
  defaults = classifier.TrainSettings()
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--idx_dir", default="",
                      help="folder of the idx files ('': Debian's dataset-fashion-mnist package)")
  parser.add_argument("--epochs", type=int, default=defaults.epochs)
  parser.add_argument("--batch_size", type=int, default=defaults.batch_size)
  parser.add_argument("--learning_rate", type=float, default=defaults.learning_rate)
  parser.add_argument("--seed", type=int, default=defaults.seed)
  parser.add_argument("--classes", default=None,
                      help="comma-separated class ids to train on (default: all 10)")
  args = parser.parse_args()
  logging.set_verbosity(logging.INFO)
  data = images.data_config(source="idx", name="fashion_mnist", idx_dir=args.idx_dir,
                            resolution=28, channels=1)
  train, test = images.get_source(data, "train"), images.get_source(data, "test")
  classes = None if args.classes is None else [int(c) for c in args.classes.split(",")]
  settings = classifier.TrainSettings(epochs=args.epochs, batch_size=args.batch_size,
                                      learning_rate=args.learning_rate, seed=args.seed)
  start = time.time()
  trained = classifier.train(train, classes, settings, test_source=test)
  seconds = time.time() - start
  print(f"classifier on fashion_mnist ({len(train)} train, {len(test)} test images, classes "
        f"{trained.meta['class_ids']}), {settings}: test accuracy "
        f"{trained.meta['test_accuracy']:.4f}, {seconds:.0f} s on {jax.devices()[0].device_kind} "
        f"(train {trained.meta['train_seconds']:.0f} s)")


if __name__ == "__main__":
  main()
