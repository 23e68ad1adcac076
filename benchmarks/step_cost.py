"""What one train step costs: Small-GAN at batch B against the plain GAN at B and at 4B.

The paper's claim is the quality of a larger batch at the cost of a small one (its Table 5 times
SN-GAN); this measures the cost side on the 100-mode toy (`configs/toy_mog_100.py`), side by
side in one run, with `train.train_step` itself:

  python benchmarks/step_cost.py --steps=2000

Each variant trains `--steps` steps in one compiled loop (then draws the run's 10,000 evaluation
samples, as `mog_table.train_one` does), timed after a compiling run; prints the median time per
step over `--repeats` and its ratio to the plain GAN at batch B.
"""
import argparse
import functools
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from benchmarks import coreset_speed, mog_table  # pylint: disable=g-import-not-at-top
from configs import toy_mog_100  # pylint: disable=g-import-not-at-top
from smallgan_jax import validation  # pylint: disable=g-import-not-at-top
from smallgan_jax.data import toy  # pylint: disable=g-import-not-at-top


def variants(batch: int) -> dict:
  """Name -> config overrides."""
  plain = mog_table.VARIANTS["GAN"]
  return {
      f"GAN, batch {batch}": {**plain, "batch_size": batch, "g_batch_size": batch},
      f"Small-GAN, batch {batch}": {"batch_size": batch, "g_batch_size": batch},
      f"GAN, batch {4 * batch}": {**plain, "batch_size": 4 * batch, "g_batch_size": 4 * batch},
  }


def seconds_per_step(overrides: dict, steps: int, repeats: int) -> float:
  """Median wall time of one step, over `repeats` timed runs of `steps` steps."""
  config = toy_mog_100.get_config()
  config.update_from_flattened_dict(overrides)
  means = jnp.asarray(toy.grid_means(config.num_modes))
  run = jax.jit(functools.partial(mog_table.train_one, means=means, num_modes=config.num_modes,
                                  config=config, steps=steps))
  key = jax.random.PRNGKey(0)
  jax.block_until_ready(run(key))
  return coreset_speed.median_ms(lambda: jax.block_until_ready(run(key)), repeats) / 1e3 / steps


def main() -> None:
  positive_int = validation.flag_type(validation.POSITIVE_INT)
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=positive_int, default=2000)
  parser.add_argument("--repeats", type=positive_int, default=3)
  parser.add_argument("--batch", type=positive_int, default=64)
  args = parser.parse_args()
  print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}, {args.steps} steps, "
        f"median of {args.repeats}", flush=True)
  results = {}
  for name, overrides in variants(args.batch).items():
    results[name] = seconds_per_step(overrides, args.steps, args.repeats)
    print(f"{name}: {1e3 * results[name]:.3f} ms/step", flush=True)
  base = results[f"GAN, batch {args.batch}"]
  print(f"| variant | ms / step | steps / s | time vs GAN, batch {args.batch} |")
  print("| --- | --- | --- | --- |")
  for name, seconds in results.items():
    print(f"| {name} | {1e3 * seconds:.3f} | {1 / seconds:.0f} | {seconds / base:.2f}x |")


if __name__ == "__main__":
  main()
