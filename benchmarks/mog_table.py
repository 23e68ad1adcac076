"""Reproduces paper Table 1 (2D mixtures of Gaussians): modes recovered % and high-quality %.

Trains plain GAN, Small-GAN (core-sets, factors 4/8), top-k, and Small-GAN + top-k on grids of 25,
49, 64, 81 and 100 modes over several seeds, with `train.train_step` itself. For each variant one
program trains every (mode count, seed) pair at once, vmapped, so a GPU runs them in parallel:

  python benchmarks/mog_table.py --steps=30000 --seeds=3

Prints mean ± std over seeds next to the paper's numbers (paper: GAN / Small-GAN only). A mode is
recovered when a high-quality sample (within 4 std) lands on it; "assigned" counts modes with any
sample assigned, the looser wording of the paper's text.
"""
import argparse
import ast
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from configs import toy_mog_table1  # pylint: disable=g-import-not-at-top
from smallgan_jax import models, sampling, train, validation  # pylint: disable=g-import-not-at-top
from smallgan_jax.data import toy  # pylint: disable=g-import-not-at-top
from smallgan_jax.metrics import mog  # pylint: disable=g-import-not-at-top

VARIANTS = {
    "GAN": {"coreset.factor_prior": 1, "coreset.factor_target": 1},
    "Small-GAN": {},
    "top-k": {"coreset.factor_prior": 1, "coreset.factor_target": 1, "topk.enabled": True},
    "Small-GAN + top-k": {"topk.enabled": True},
}
# Paper Table 1: (modes recovered %, high-quality %) for GAN and for Small-GAN ("ours").
PAPER = {25: ((100, 95.76), (100, 98.9)), 49: ((98.12, 84.28), (99.85, 88.1)),
         64: ((96.13, 68.81), (99.01, 82.11)), 81: ((92.59, 49.74), (98.84, 71.75)),
         100: ((90.67, 23.31), (97.33, 49.87))}


def padded_means(mode_counts):
  """Every grid's means padded to the largest count, so one program serves all grids."""
  top = max(mode_counts)
  return np.stack([np.pad(toy.grid_means(m), ((0, top - m), (0, 0))) for m in mode_counts])


def train_one(key, means, num_modes, config, steps):
  """Trains one (grid, seed) run for `steps` steps; returns its evaluation samples."""
  def draw_candidates(rng, num_sets, n, batch=None):  # The toy is made on the device.
    del batch
    mode_rng, noise_rng = jax.random.split(rng)
    modes = jax.random.randint(mode_rng, (num_sets, n), 0, num_modes)
    x = means[modes] + config.mog_std * jax.random.normal(noise_rng, (num_sets, n, 2))
    return x, x

  generator, discriminator = models.get_models(config, (2,))
  state = train.create_train_state(config, generator, discriminator, (2,), key)
  step = functools.partial(train.train_step, config=config, draw_candidates=draw_candidates,
                           num_replicas=1, axis_name=None)
  state = jax.lax.fori_loop(0, steps, lambda _, s: step(s)[0], state)
  z = sampling.sample_prior(jax.random.fold_in(key, 1), (mog.NUM_EVAL_SAMPLES, config.z_dim),
                            config.prior)
  return train.apply_model(state.g, state.g.params, z, train=False)[0]


def variant_config(overrides: dict, steps: int) -> ml_collections.ConfigDict:
  """Table 1's config (configs/toy_mog_table1.py) with a variant's `overrides` (flattened keys),
  trained for `steps` steps."""
  config = toy_mog_table1.get_config()
  config.update_from_flattened_dict(overrides)
  config.num_train_steps = steps
  return config


def run_variant(overrides, mode_counts, seeds, steps):
  """Evaluation samples (modes, seeds, N, 2) and an array (modes, seeds, 3) of (modes recovered %,
  high-quality %, modes with any sample assigned % (the paper's wording))."""
  config = variant_config(overrides, steps)
  means = jnp.asarray(padded_means(mode_counts))
  keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(seeds))
  per_seed = jax.vmap(functools.partial(train_one, config=config, steps=steps),
                      in_axes=(0, None, None))
  per_grid = jax.jit(jax.vmap(per_seed, in_axes=(None, 0, 0)))
  samples = np.asarray(per_grid(keys, means, jnp.asarray(mode_counts)))
  results = np.zeros((len(mode_counts), seeds, 3))
  for i, m in enumerate(mode_counts):
    for s in range(seeds):
      metrics = mog.mode_metrics(samples[i, s], toy.grid_means(m), config.mog_std)
      results[i, s] = [metrics[k] for k in
                       ("modes_recovered_pct", "high_quality_pct", "modes_assigned_pct")]
  return samples, results


def format_table(results, mode_counts):
  header = ["modes", *(f"{v} modes% / HQ% (assigned%)" for v in results), "paper GAN",
            "paper Small-GAN"]
  rows = [" | ".join(header), " | ".join("---" for _ in header)]
  for i, m in enumerate(mode_counts):
    cells = [str(m)]
    for r in results.values():
      mean, std = r[i].mean(axis=0), r[i].std(axis=0)
      cells.append(f"{mean[0]:.2f} ± {std[0]:.2f} / {mean[1]:.2f} ± {std[1]:.2f} "
                   f"({mean[2]:.2f})")
    if m in PAPER:
      cells += [f"{PAPER[m][0][0]} / {PAPER[m][0][1]}", f"{PAPER[m][1][0]} / {PAPER[m][1][1]}"]
    else:
      cells += ["-", "-"]
    rows.append(" | ".join(cells))
  return "\n".join(rows)


def parse_override(item: str) -> tuple[str, object]:
  """KEY=VALUE, VALUE a Python literal (1e-3, True, 'linear') or, failing that, a bare string."""
  key, sep, value = item.partition("=")
  if not sep or not key:
    raise argparse.ArgumentTypeError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.g_lr=3e-4")
  try:
    return key, ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return key, value


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
  """Refuses, in one line, a --set that makes a variant's config invalid and a --save-samples
  path that cannot be written: either would otherwise fail only after all the training."""
  for name in args.variants:
    try:
      config = variant_config({**dict(args.set), **VARIANTS[name]}, args.steps)
      validation.validate_config(config, num_devices=1)
    except (KeyError, TypeError, ValueError) as e:
      parser.error(f"--set ({name}): {e.args[0]}")
  if args.save_samples:
    folder = os.path.dirname(args.save_samples) or "."
    if os.path.isdir(args.save_samples) or not os.access(folder, os.W_OK):
      parser.error(f"--save-samples={args.save_samples!r}: expected a file in an existing, "
                   "writable directory")


def main():
  positive_int = validation.flag_type(validation.POSITIVE_INT)
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=positive_int, default=30_000)
  parser.add_argument("--seeds", type=positive_int, default=3)
  parser.add_argument("--modes", type=validation.flag_type(validation.GRID_MODES), nargs="+",
                      default=[25, 49, 64, 81, 100])
  parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
  parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", type=parse_override,
                      help="config overrides for every variant, e.g. optim.g_lr=3e-4 "
                           "gradient_penalty.on=interpolates")
  parser.add_argument("--save-samples", metavar="PATH.npz",
                      help="also save every run's evaluation samples, keyed by variant")
  args = parser.parse_args()
  check_args(parser, args)
  common = dict(args.set)
  print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}, steps {args.steps}, "
        f"seeds {args.seeds}, overrides {common}", flush=True)
  results, samples = {}, {}
  for name in args.variants:
    start = time.perf_counter()
    samples[name], results[name] = run_variant({**common, **VARIANTS[name]}, args.modes,
                                               args.seeds, args.steps)
    print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
  print(format_table(results, args.modes))
  if args.save_samples:
    np.savez_compressed(args.save_samples, modes=np.asarray(args.modes), **samples)


if __name__ == "__main__":
  main()
