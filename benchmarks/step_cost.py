"""What one train step costs: Small-GAN at batch B against the plain GAN at B, 2B and 4B ("4x the
batch" scales both the D and the G batch), side by side in one run, with `train.train_step` itself.

The paper's claim is the quality of a larger batch at the cost of a small one; its Table 5 times
SN-GAN on a Titan XP. Toys (the default, `configs/toy_mog_100.py`):

  python benchmarks/step_cost.py --steps=2000

Each toy variant trains `--steps` steps in one compiled loop (then draws the run's 10,000
evaluation samples, as `mog_table.train_one` does), timed after a compiling run; the median time
per step over `--repeats`. Image configs:

  python benchmarks/step_cost.py --config=configs/fashion_mnist_dcgan.py --steps=100
  python benchmarks/step_cost.py --config=configs/cifar_sngan.py --data=generated --steps=50
  python benchmarks/step_cost.py --config=configs/cifar_sngan.py --data=generated --memory_only

Each image variant runs `--steps` steps after `--warmup` twice: fed by the host pipeline, as in
training (the cost of drawing and moving 8x the candidates counted), and on one ready-made device
batch. `--data=real` streams the config's own dataset (Fashion-MNIST is on this machine);
`generated` streams random uint8 images of the config's shape (50,000, CIFAR-10's count) with
random 32-d embedding rows, for a machine without the dataset. Step memory comes from XLA's
compiled memory analysis (arguments, outputs and temporaries, the donated state counted once), so
`--memory_only` reads it at the paper's sizes on a CPU without running a step.
"""
import argparse
import ast
import functools
import importlib.util
import itertools
import sys
import time

from etils import epath
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from benchmarks import coreset_speed, mog_table  # pylint: disable=g-import-not-at-top
from smallgan_jax import datasets, distributed, embeddings, train, validation  # pylint: disable=g-import-not-at-top
from smallgan_jax.data import images, toy  # pylint: disable=g-import-not-at-top

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
  if "fid" in config:
    config.fid.features = ()
  return config


def variants(batch: int, g_ratio: int) -> dict:
  """Name -> config overrides (the G batch keeps the config's G/D ratio)."""
  plain = {"coreset.factor_prior": 1, "coreset.factor_target": 1}
  sizes = lambda b: {"batch_size": b, "g_batch_size": b * g_ratio}
  return {f"GAN, batch {batch}": {**plain, **sizes(batch)},
          f"Small-GAN, batch {batch}": sizes(batch),
          f"GAN, batch {2 * batch}": {**plain, **sizes(2 * batch)},
          f"GAN, batch {4 * batch}": {**plain, **sizes(4 * batch)}}


def toy_seconds_per_step(config, steps: int, repeats: int) -> float:
  """Median wall time of one toy step, over `repeats` timed runs of `steps` steps."""
  means = jnp.asarray(toy.grid_means(config.num_modes))
  run = jax.jit(functools.partial(mog_table.train_one, means=means, num_modes=config.num_modes,
                                  config=config, steps=steps))
  key = jax.random.PRNGKey(0)
  jax.block_until_ready(run(key))
  return coreset_speed.median_ms(lambda: jax.block_until_ready(run(key)), repeats) / 1e3 / steps


def generated_dataset(config) -> datasets.ImageDataset:
  """Random images of the config's shape with random embedding rows (no dataset needed)."""
  rng = np.random.default_rng(0)
  shape = (config.data.resolution, config.data.resolution, config.data.channels)
  source = images.ArraySource("generated", rng.integers(0, 256, (GENERATED_COUNT, *shape),
                                                        dtype=np.uint8), None)
  rows = rng.standard_normal((GENERATED_COUNT, 32)).astype(np.float32)
  return datasets.ImageDataset(source, embeddings.Embeddings(rows, {"dataset": "generated"},
                                                         epath.Path("/dev/null")))


def compiled_step(config, dataset):
  """(the jitted step, a fresh state, the pipeline's batches, the compiled step's device bytes)."""
  mesh = distributed.device_mesh()
  state = train.replicated_state(config, dataset, mesh)
  step = train.make_train_step(config, dataset, mesh, streamed=True)
  batches = dataset.batches(config, mesh, 1)
  memory = step.lower(state, *next(batches)).compile().memory_analysis()
  size = (memory.argument_size_in_bytes + memory.output_size_in_bytes - memory.alias_size_in_bytes
          + memory.temp_size_in_bytes)
  return step, state, batches, size


def image_seconds_per_step(step, state, inputs, steps: int, warmup: int) -> float:
  """Mean wall time of `steps` image steps after `warmup`, each on `next(inputs)`."""
  for _ in range(warmup):
    state, metrics = step(state, *next(inputs))
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, *next(inputs))
  jax.block_until_ready(metrics)
  return (time.perf_counter() - start) / steps


def measure_image(config, args) -> tuple:
  """(s/step fed by the pipeline, s/step on one ready-made device batch, step bytes)."""
  dataset = generated_dataset(config) if args.data == "generated" else datasets.get_dataset(config)
  step, state, batches, size = compiled_step(config, dataset)
  if args.memory_only:
    return np.nan, np.nan, size
  ready = itertools.repeat(next(batches))
  fed = image_seconds_per_step(step, state, batches, args.steps, args.warmup)
  state = train.replicated_state(config, dataset, distributed.device_mesh())
  return fed, image_seconds_per_step(step, state, ready, args.steps, args.warmup), size


def measure(config, args) -> tuple:
  """(s/step fed, s/step on ready-made data, step bytes); the toys' data is made on the device,
  so their two times are the same measurement and their memory is not read."""
  if config.dataset == "images":
    return measure_image(config, args)
  seconds = toy_seconds_per_step(config, args.steps, args.repeats)
  return seconds, seconds, np.nan


def print_table(results: dict, batch: int) -> None:
  plain_fed, plain_ready, plain_bytes = results[f"GAN, batch {batch}"]
  print(f"| variant | ms / step, fed | ms / step, ready-made | fed vs GAN, batch {batch} | "
        f"ready vs GAN | step memory (MiB) | memory vs GAN |")
  print("| --- | --- | --- | --- | --- | --- | --- |")
  for name, (fed, ready, size) in results.items():
    print(f"| {name} | {1e3 * fed:.3f} | {1e3 * ready:.3f} | {fed / plain_fed:.3f}x | "
          f"{ready / plain_ready:.3f}x | {size / 2**20:.1f} | {size / plain_bytes:.3f}x |")


def main() -> None:
  positive_int = validation.flag_type(validation.POSITIVE_INT)
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/toy_mog_100.py")
  parser.add_argument("--batch", type=positive_int, help="B (default: the config's batch_size)")
  parser.add_argument("--steps", type=positive_int, help="timed steps (toys 2000, images 100)")
  parser.add_argument("--repeats", type=positive_int, default=3, help="toys: timed runs")
  parser.add_argument("--warmup", type=positive_int, default=10, help="images: untimed steps")
  parser.add_argument("--data", choices=("real", "generated"), default="real",
                      help="images: the config's dataset or random images of its shape")
  parser.add_argument("--memory_only", action="store_true",
                      help="images: compile each variant and report its memory, without running it")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a config override, e.g. --set=sngan.g_channels=64 (repeatable)")
  args = parser.parse_args()
  base = load_config(args.config, args.set)
  batch = args.batch or base.batch_size
  args.steps = args.steps or (100 if base.dataset == "images" else 2000)
  print(f"{args.config} on {jax.device_count()} x {jax.devices()[0].device_kind}, jax "
        f"{jax.__version__}: {args.steps} steps", flush=True)
  results = {}
  for name, overrides in variants(batch, base.g_batch_size // base.batch_size).items():
    config = load_config(args.config, args.set)
    config.update_from_flattened_dict(overrides)
    validation.validate_config(config, jax.device_count())
    results[name] = measure(config, args)
    fed, ready, size = results[name]
    print(f"{name}: {1e3 * fed:.3f} ms/step fed, {1e3 * ready:.3f} ready, memory "
          f"{size / 2**20:.1f} MiB", flush=True)
  print_table(results, batch)


if __name__ == "__main__":
  main()
