"""What the core-set samplers hand a toy GAN's updates, next to plain random sampling.

Greedy k-center picks the candidates farthest from those already picked, so a core-set covers more
modes than a random batch but also over-represents each distribution's edges: real points in the
tails of their Gaussians and latents near the border of the prior. Both may shape what the GAN
learns (e.g. the share of high-quality samples at 100 modes, README). Measures, over many batches
drawn as the train step draws them (`sampling.coreset_target` / `coreset_prior`, the config's
factors):

  python benchmarks/sampler_bias.py --modes=100
  python benchmarks/sampler_bias.py --modes=100 --target_factors 2 3 4 8 --prior_factors 2 4

target: distinct modes per batch, mean distance of a point to its mode (in std), % beyond 2 std
(random sampling should give a 2D Gaussian's sqrt(pi/2) = 1.25 std and exp(-2) = 13.5%);
prior: % of latents beyond the 90th percentile of |z| under random sampling (10% by definition).
"""
import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from configs import toy_mog  # pylint: disable=g-import-not-at-top
from smallgan_jax import datasets, sampling, validation  # pylint: disable=g-import-not-at-top
from smallgan_jax.metrics import mog  # pylint: disable=g-import-not-at-top


def target_stats(batches: np.ndarray, dataset: datasets.ToyMixture) -> tuple[float, float, float]:
  """(distinct modes per batch, mean distance to the nearest mode in std, % beyond 2 std)."""
  index, dist = mog.nearest_modes(batches.reshape(-1, 2), dataset.means)
  index = index.reshape(batches.shape[:2])
  distinct = np.mean([len(np.unique(row)) for row in index])
  dist = dist / dataset.std
  return distinct, dist.mean(), 100 * np.mean(dist > 2)


def main() -> None:
  positive_int = validation.flag_type(validation.POSITIVE_INT)
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--modes", type=validation.flag_type(validation.GRID_MODES), default=100,
                      help="grid modes (a perfect square)")
  parser.add_argument("--batches", type=positive_int, default=500, help="batches drawn per sampler")
  parser.add_argument("--seed", type=validation.flag_type(validation.SEED), default=0)
  parser.add_argument("--target_factors", type=positive_int, nargs="+", default=None,
                      help="target factors to compare with random sampling (default: the config's)")
  parser.add_argument("--prior_factors", type=positive_int, nargs="+", default=None,
                      help="prior factors to compare with random sampling (default: the config's)")
  args = parser.parse_args()

  config = toy_mog.get_config()
  config.num_modes = args.modes
  dataset = datasets.get_dataset(config)
  k, factors = config.batch_size, config.coreset
  target_key, prior_key = jax.random.split(jax.random.PRNGKey(args.seed))
  print(f"{args.modes} grid modes, std {dataset.std}, batch {k}, {args.batches} batches per row")

  for factor in (1, *(args.target_factors or [factors.factor_target])):
    batches = sampling.coreset_target(target_key, dataset.draw_candidates, args.batches, k, factor)
    distinct, mean_dist, tail = target_stats(np.asarray(batches), dataset)
    print(f"target, {factor * k:>4} -> {k}: {distinct:5.1f} distinct modes, mean distance "
          f"{mean_dist:.2f} std, {tail:4.1f}% beyond 2 std")

  norms = {factor: jnp.linalg.norm(sampling.coreset_prior(
      prior_key, args.batches, k, factor, config.z_dim, config.prior), axis=-1)
           for factor in (1, *(args.prior_factors or [factors.factor_prior]))}
  edge = jnp.quantile(norms[1], 0.9)
  for factor, norm in norms.items():
    print(f"prior {config.prior} z_dim {config.z_dim}, {factor * k:>4} -> {k}: "
          f"{100 * float(jnp.mean(norm > edge)):4.1f}% of |z| beyond random's 90th percentile")


if __name__ == "__main__":
  main()
