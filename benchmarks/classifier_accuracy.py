"""Trains a classifier network on Fashion-MNIST and prints its test accuracy and time, per seed.

  apt-get install -y dataset-fashion-mnist   # the idx files (`smallgan_jax.data.images`)
  python benchmarks/classifier_accuracy.py [--network=classifier2] [--seeds 0 1] [--epochs=3]

Trains with `smallgan_jax.features.classifier.train` on the settings of `--network`
(`classifier.RECIPES`; the flags override them), nothing is saved. Seeds 0 and 1 are the two a
Fashion-MNIST run trains (the core-set's embedding, the classifier FID's network). The goal of
issues 13 and 24 is >= 90% test accuracy for both.
"""
import argparse
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

from smallgan_jax.data import images  # pylint: disable=g-import-not-at-top,wrong-import-position
from smallgan_jax.features import classifier  # pylint: disable=g-import-not-at-top


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--idx_dir", default="",
                      help="folder of the idx files ('': Debian's dataset-fashion-mnist package)")
  parser.add_argument("--network", default="classifier2", choices=tuple(classifier.RECIPES))
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
  for field in ("epochs", "batch_size", "learning_rate"):
    parser.add_argument(f"--{field}", type=type(getattr(classifier.TrainSettings(), field)),
                        help=f"overrides the network's {field}")
  parser.add_argument("--classes", default=None,
                      help="comma-separated class ids to train on (default: all 10)")
  args = parser.parse_args()
  logging.set_verbosity(logging.INFO)
  data = images.data_config(source="idx", name="fashion_mnist", idx_dir=args.idx_dir,
                            resolution=28, channels=1)
  train, test = images.get_source(data, "train"), images.get_source(data, "test")
  classes = None if args.classes is None else [int(c) for c in args.classes.split(",")]
  overrides = {f: getattr(args, f) for f in ("epochs", "batch_size", "learning_rate")
               if getattr(args, f) is not None}
  for seed in args.seeds:
    settings = dataclasses.replace(classifier.recipe(args.network, seed), **overrides)
    start = time.time()
    trained = classifier.train(train, classes, settings, test_source=test)
    seconds = time.time() - start
    print(f"{args.network} on fashion_mnist ({len(train)} train, {len(test)} test images, classes "
          f"{trained.meta['class_ids']}), {settings}: test accuracy "
          f"{trained.meta['test_accuracy']:.4f}, {seconds:.0f} s on {jax.devices()[0].device_kind} "
          f"(train {trained.meta['train_seconds']:.0f} s)", flush=True)

if __name__ == "__main__":
  main()
