"""What the target core-set hands an image GAN's critic, unweighted and weighted by its cells.

benchmarks/sampler_bias.py's sibling for image configs: it draws an epoch's worth of the config's
candidate sets (`pipeline.candidate_indices`, as the input pipeline draws them), picks each set's
core-set on the config's own embeddings with the train step's sampler
(`sampling.coreset_target`, with its cell weights), and reports for random batches, the
core-set's picks and the picks weighted by their cells (`config.coreset.weighting`):

  - each class's share of the picks over its share of the candidates;
  - the distinct images picked, and the share of the dataset that holds half of all picks
    (of the weight, weighted);
  - the share of picks in the top decile of the 10-NN distance in the embedding (10% at random);
  - the weights' effective sample size (sum w)^2 / sum w^2 per set, and the largest weight over
    the mean; the same for the prior's latent cells.

  apt-get install -y dataset-fashion-mnist
  python benchmarks/image_sampler_bias.py --out=docs/weighted_coresets/sampler_bias.json \
      --figure=docs/images/weighted_sampler_bias.png
"""
import argparse
import importlib
import json
import sys

import jax
import numpy as np

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from smallgan_jax import datasets, sampling  # pylint: disable=g-import-not-at-top
from smallgan_jax.data import pipeline  # pylint: disable=g-import-not-at-top

CHUNK = 250  # Candidate sets per sampler call.


def effective_sample_size(weights: np.ndarray) -> np.ndarray:
  """(sum w)^2 / sum w^2 of each row of `weights` (sets, k): k for equal weights."""
  return weights.sum(axis=1) ** 2 / (weights ** 2).sum(axis=1)


def half_mass_share(indices: np.ndarray, mass: np.ndarray, dataset_size: int) -> float:
  """The smallest share of the dataset's images that holds half of the picks' total `mass`
  (each pick of `indices` carrying its `mass`: 1, or its weight)."""
  per_image = np.sort(np.bincount(indices.ravel(), mass.ravel(), minlength=dataset_size))[::-1]
  return float(np.searchsorted(np.cumsum(per_image), per_image.sum() / 2) + 1) / dataset_size


def knn_distance(rows: np.ndarray, neighbours: int = 10) -> np.ndarray:
  """Each row's distance to its `neighbours`-th nearest other row (float64, exact)."""
  from sklearn.neighbors import NearestNeighbors  # pylint: disable=g-import-not-at-top
  fitted = NearestNeighbors(n_neighbors=neighbours + 1).fit(rows.astype(np.float64))
  return fitted.kneighbors(rows.astype(np.float64))[0][:, -1]


def sampler_report(picked: np.ndarray, mass: np.ndarray, candidates: np.ndarray,
                   labels: np.ndarray, sparse: np.ndarray) -> dict:
  """The report of picks (sets, k) of dataset indices with their `mass` (ones: unweighted)
  against the candidates (sets, n); `labels` and `sparse` (in the top decile of the 10-NN
  distance) are per dataset image."""
  classes = np.unique(labels)
  total = mass.sum()
  share = lambda idx, w: np.array([(w * (labels[idx] == c)).sum() for c in classes]) / w.sum()
  return {"class_share_ratio": (share(picked, mass)
                                / share(candidates, np.ones(candidates.shape))).tolist(),
          "distinct_images": int(len(np.unique(picked))),
          "half_mass_share": half_mass_share(picked, mass, len(labels)),
          "top_decile_share": float((mass * sparse[picked]).sum() / total)}


def weight_report(weights: np.ndarray) -> dict:
  ess = effective_sample_size(weights)
  return {"ess_mean": float(ess.mean()), "k": int(weights.shape[1]),
          "max_over_mean": float((weights.max(axis=1) / weights.mean(axis=1)).mean())}


def target_picks(config, dataset, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(candidates (sets, n), picks (sets, k), weights (sets, k)) of `steps` steps' sets, as
  device 0 of one device draws them."""
  n, k = config.coreset.factor_target * config.batch_size, config.batch_size
  size = len(dataset.source)
  candidates = np.concatenate([pipeline.candidate_indices(config.seed, step, 0, config.n_dis, n,
                                                          size) for step in range(1, steps + 1)])
  picks, weights = [], []
  for start in range(0, len(candidates), CHUNK):
    idx = candidates[start:start + CHUNK]
    draw = lambda rng, num_sets, m, idx=idx: (idx, dataset.embeddings.rows(idx))
    got, w = sampling.coreset_target(None, draw, len(idx), k, config.coreset.factor_target,
                                     with_weights=True)
    picks.append(np.asarray(got))
    weights.append(np.asarray(w))
  return candidates, np.concatenate(picks), np.concatenate(weights)


def prior_report(config, sets: int) -> dict:
  """The prior core-set's latent cells, and the share of latents beyond random's 90th
  percentile of |z|, unweighted and weighted."""
  z, w = sampling.coreset_prior(jax.random.PRNGKey(config.seed), sets, config.batch_size,
                                config.coreset.factor_prior, config.z_dim, config.prior,
                                with_weights=True)
  random = sampling.sample_prior(jax.random.PRNGKey(config.seed + 1), (sets * config.batch_size,
                                                                       config.z_dim), config.prior)
  edge = np.quantile(np.linalg.norm(np.asarray(random), axis=-1), 0.9)
  beyond = np.linalg.norm(np.asarray(z), axis=-1) > edge
  w = np.asarray(w)
  return {**weight_report(w), "beyond_p90_unweighted": float(beyond.mean()),
          "beyond_p90_weighted": float((w * beyond).sum() / w.sum())}


def save_figure(path: str, report: dict, class_names: list[str]) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(9, 3.6))
  x = np.arange(len(class_names))
  for i, (name, label) in enumerate((("random", "random batch"), ("coreset", "core-set"),
                                     ("weighted", "core-set, cell-weighted"))):
    ax.bar(x + (i - 1) * 0.27, report[name]["class_share_ratio"], 0.27, label=label)
  ax.axhline(1.0, color="k", lw=0.8)
  ax.set_xticks(x, class_names, rotation=30, ha="right")
  ax.set_ylabel("share of picks / share of candidates")
  ax.set_title(f"{report['config']}: {report['sets']} sets, {report['candidates']} -> "
               f"{report['k']} (weighted ESS {report['weights']['ess_mean']:.1f} of {report['k']})")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


CLASS_NAMES = {"fashion_mnist": ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal",
                                 "shirt", "sneaker", "bag", "ankle boot"]}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="fashion_mnist_dcgan", help="a module of configs/")
  parser.add_argument("--factor_target", type=int, default=0, help="0: the config's")
  parser.add_argument("--steps", type=int, default=0, help="0: one epoch of the config's")
  parser.add_argument("--out", default="", help="write the report to this JSON")
  parser.add_argument("--figure", default="", help="draw the class shares to this PNG")
  args = parser.parse_args()
  config = importlib.import_module(f"configs.{args.config}").get_config()
  config.fid.features = ()
  if args.factor_target:
    config.coreset.factor_target = args.factor_target
  dataset = datasets.get_dataset(config)
  size = len(dataset.source)
  steps = args.steps or pipeline.steps_per_epoch(size, config.batch_size, config.n_dis)
  candidates, picks, weights = target_picks(config, dataset, steps)
  labels = dataset.source.labels(np.arange(size))
  distance = knn_distance(dataset.embeddings.array)
  sparse = distance >= np.quantile(distance, 0.9)
  random = candidates[:, :config.batch_size]  # The candidates are a uniform draw in random order.
  ones = np.ones(picks.shape)
  report = {"config": args.config, "sets": len(picks), "candidates": candidates.shape[1],
            "k": picks.shape[1], "dataset_size": size,
            "random": sampler_report(random, ones, candidates, labels, sparse),
            "coreset": sampler_report(picks, ones, candidates, labels, sparse),
            "weighted": sampler_report(picks, weights, candidates, labels, sparse),
            "weights": weight_report(weights), "prior": prior_report(config, len(picks))}
  print(json.dumps(report, indent=1))
  if args.out:
    with open(args.out, "w") as f:
      json.dump(report, f, indent=1)
  if args.figure:
    names = CLASS_NAMES.get(config.data.name, [str(c) for c in np.unique(labels)])
    save_figure(args.figure, report, names)


if __name__ == "__main__":
  main()
