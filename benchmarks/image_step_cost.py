"""What one image train step costs, fed by the input pipeline: Small-GAN at batch B against the
plain GAN at B, 2B and 4B ("4x the batch" scales both the D and the G batch), side by side in one
run, with each step's device memory from XLA's compiled memory analysis.

  python benchmarks/image_step_cost.py --config=configs/fashion_mnist_dcgan.py --steps=200
  python benchmarks/image_step_cost.py --config=configs/cifar_sngan.py --data=generated

`--data=real` streams the config's own dataset (Fashion-MNIST is on this machine); `generated`
streams random uint8 images of the config's shape (50,000, CIFAR-10's count) with random 32-d
embedding rows, for a machine without the dataset (a GPU box measuring SN-GAN's step). Each
variant runs `--steps` steps after a compiling warm-up of `--warmup`; the time includes the host
pipeline, as in training. The paper's Table 5 is the same comparison for SN-GAN on a Titan XP.
"""
import argparse
import ast
import importlib.util
import sys
import time

from etils import epath
import jax
import numpy as np

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from smallgan_jax import distributed, embeddings, train, validation  # pylint: disable=g-import-not-at-top
from smallgan_jax import data  # pylint: disable=g-import-not-at-top
from smallgan_jax.data import images  # pylint: disable=g-import-not-at-top

GENERATED_COUNT = 50_000


def literal(text: str):
  """'64' -> 64, 'True' -> True, '(1, 2)' -> (1, 2); anything else stays a string."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def load_config(path: str, overrides: list[str]):
  """The config file's config with KEY=VALUE `overrides`, scoring nothing (no FID)."""
  spec = importlib.util.spec_from_file_location("config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.update_from_flattened_dict(
      {key: literal(value) for key, value in (o.split("=", 1) for o in overrides)})
  config.fid.features = ()
  return config


def generated_dataset(config) -> data.ImageDataset:
  """Random images of the config's shape with random embedding rows (no dataset needed)."""
  rng = np.random.default_rng(0)
  shape = (config.data.resolution, config.data.resolution, config.data.channels)
  source = images.ArraySource("generated", rng.integers(0, 256, (GENERATED_COUNT, *shape),
                                                        dtype=np.uint8), None)
  rows = rng.standard_normal((GENERATED_COUNT, 32)).astype(np.float32)
  return data.ImageDataset(source, embeddings.Embeddings(rows, {"dataset": "generated"},
                                                         epath.Path("/dev/null")))


def variants(batch: int, g_ratio: int) -> dict:
  """Name -> config overrides (the G batch keeps the config's G/D ratio)."""
  plain = {"coreset.factor_prior": 1, "coreset.factor_target": 1}
  sizes = lambda b: {"batch_size": b, "g_batch_size": b * g_ratio}
  return {f"GAN, batch {batch}": {**plain, **sizes(batch)},
          f"Small-GAN, batch {batch}": sizes(batch),
          f"GAN, batch {2 * batch}": {**plain, **sizes(2 * batch)},
          f"GAN, batch {4 * batch}": {**plain, **sizes(4 * batch)}}


def measure(config, dataset, steps: int, warmup: int) -> tuple[float, float]:
  """(seconds per step through the pipeline, device bytes of the compiled step: its arguments,
  outputs and temporaries)."""
  mesh = distributed.device_mesh()
  state = train.replicated_state(config, dataset, mesh)
  step = train.make_train_step(config, dataset, mesh, streamed=True)
  batches = dataset.batches(config, mesh, 1)
  first = next(batches)
  memory = step.lower(state, *first).compile().memory_analysis()
  peak = (memory.argument_size_in_bytes + memory.output_size_in_bytes - memory.alias_size_in_bytes
          + memory.temp_size_in_bytes)  # Donated state aliases its output: counted once.
  for _ in range(warmup):
    state, metrics = step(state, *next(batches))
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, *next(batches))
  jax.block_until_ready(metrics)
  return (time.perf_counter() - start) / steps, peak


def main() -> None:
  positive_int = validation.flag_type(validation.POSITIVE_INT)
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/fashion_mnist_dcgan.py")
  parser.add_argument("--data", choices=("real", "generated"), default="real")
  parser.add_argument("--steps", type=positive_int, default=100)
  parser.add_argument("--warmup", type=positive_int, default=10)
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a config override, e.g. --set=sngan.g_channels=64 (repeatable)")
  args = parser.parse_args()
  base = load_config(args.config, args.set)
  batch, g_ratio = base.batch_size, base.g_batch_size // base.batch_size
  print(f"{args.config} ({args.data} data) on {jax.device_count()} x "
        f"{jax.devices()[0].device_kind}, jax {jax.__version__}: {args.steps} steps after "
        f"{args.warmup}", flush=True)
  results = {}
  for name, overrides in variants(batch, g_ratio).items():
    config = load_config(args.config, args.set)
    config.update_from_flattened_dict(overrides)
    validation.validate_config(config, jax.device_count())
    dataset = generated_dataset(config) if args.data == "generated" else data.get_dataset(config)
    results[name] = measure(config, dataset, args.steps, args.warmup)
    print(f"{name}: {1e3 * results[name][0]:.2f} ms/step, memory {results[name][1] / 2**20:.1f} MiB",
          flush=True)
  plain_seconds, plain_bytes = results[f"GAN, batch {batch}"]
  print(f"| variant | ms / step | steps / s | time vs GAN, batch {batch} | step memory (MiB) | "
        "memory vs GAN |")
  print("| --- | --- | --- | --- | --- | --- |")
  for name, (seconds, peak) in results.items():
    print(f"| {name} | {1e3 * seconds:.2f} | {1 / seconds:.2f} | {seconds / plain_seconds:.3f}x | "
          f"{peak / 2**20:.1f} | {peak / plain_bytes:.3f}x |")


if __name__ == "__main__":
  main()
