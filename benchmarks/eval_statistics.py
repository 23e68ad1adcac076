"""How much a run's evaluation scores depend on the generator's batch-norm statistics (issue 23).

A Small-GAN generator's running batch-norm averages come from core-sets of the prior, which are
more spread out than the prior evaluation samples; the plain GAN's come from prior draws. For
each workdir given, this restores its latest checkpoint with the config its run recorded
(`runs.read_config`, `runs.restore_state`) and scores the generator's samples of the evaluation latents (the dataset's `evaluate`: classifier
FID on Fashion-MNIST) under

  running    the running averages training kept (evaluation before issue 23);
  standing   standing statistics of prior latents (evaluation's default);
  batch      each generated batch of evaluation.GENERATE_BATCH (500) normalised by its own
             statistics;
  coreset    standing statistics of core-set latents instead (`sampling.coreset_prior` at the
             run's factor_prior and per-device batch, as training drew them);

and prints one markdown table, a row per run and statistics. A Small-GAN run and its plain-GAN
pair:

  python -m smallgan_jax.main --config=configs/fashion_mnist_dcgan.py --workdir=W
  python -m smallgan_jax.main --config=configs/fashion_mnist_dcgan.py --workdir=P \\
      --config.coreset.factor_prior=1 --config.coreset.factor_target=1
  python benchmarks/eval_statistics.py W P
"""
import argparse
import json
import os
import sys
from typing import Any

import jax
import ml_collections
import numpy as np

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from smallgan_jax import checkpointing, datasets, evaluation, runs  # pylint: disable=g-import-not-at-top
from smallgan_jax import sampling, standing_stats  # pylint: disable=g-import-not-at-top

STATISTICS = ("running", "standing", "batch", "coreset")
_CORESET_TAG = 2  # fold_in data of the core-set latents' key (of the run's seed).


def recorded_devices(workdir: str) -> int:
  """The device count the run in `workdir` trained on (its per-device core-set size)."""
  record = json.loads((checkpointing.workdir_path(workdir) / "config.json").read_text())
  return record[checkpointing.LAYOUT_KEY]["devices"]


def coreset_latents(config: ml_collections.ConfigDict, devices: int) -> np.ndarray:
  """`config.eval_standing_samples` latents from core-sets as the run's train step drew them."""
  k = config.batch_size // (devices if config.coreset.prior_scope == "device" else 1)
  sets = -(-config.eval_standing_samples // k)
  rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), _CORESET_TAG)
  z = sampling.coreset_prior(rng, sets, k, config.coreset.factor_prior, config.z_dim,
                             config.prior)
  return np.asarray(z).reshape(-1, config.z_dim)[:config.eval_standing_samples]


def scores(config: ml_collections.ConfigDict, devices: int, dataset: Any, state: Any,
           statistics: str) -> dict:
  """The dataset's scores of the generator's evaluation samples under `statistics`."""
  mode = {"coreset": "running"}.get(statistics, statistics)
  config = ml_collections.ConfigDict({**config.to_dict(), "eval_batch_stats": mode})
  variables = evaluation.generator_variables(config, state)
  if statistics == "coreset":
    variables = standing_stats.standing_variables(state.g.apply_fn, variables,
                                                  coreset_latents(config, devices))
  sampler = evaluation.Sampler(config, state.g.apply_fn)
  return dataset.evaluate(sampler(variables, evaluation.eval_latents(config)))


def table(rows: list[dict]) -> str:
  """A markdown table of `rows`, each {"run", "step", "statistics", metric: value, ...}."""
  metrics = sorted({k for row in rows for k in row} - {"run", "step", "statistics"})
  lines = ["| run | step | statistics | " + " | ".join(metrics) + " |",
           "| --- | --- | --- | " + " | ".join("---" for _ in metrics) + " |"]
  for row in rows:
    values = " | ".join(f"{row[m]:.4g}" if m in row else "" for m in metrics)
    lines.append(f"| {row['run']} | {row['step']} | {row['statistics']} | {values} |")
  return "\n".join(lines)


def measure(workdirs: list[str]) -> list[dict]:
  """A row per workdir and statistics (`STATISTICS`), from its newest checkpoint."""
  rows = []
  for workdir in workdirs:
    config = runs.read_config(workdir)
    state, step = runs.restore_state(workdir, config)
    dataset = datasets.get_dataset(config)
    for statistics in STATISTICS:
      rows.append({"run": os.path.basename(os.path.normpath(workdir)), "step": step,
                   "statistics": statistics,
                   **scores(config, recorded_devices(workdir), dataset, state, statistics)})
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+", help="workdirs of finished runs")
  args = parser.parse_args()
  try:
    rows = measure(args.workdirs)
  except ValueError as e:
    parser.error(str(e))
  print(table(rows))


if __name__ == "__main__":
  main()
