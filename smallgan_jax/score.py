"""Scores a run's checkpoint on as many samples as a paper does, apart from training.

  python -m smallgan_jax.score --workdir=workdirs/fmnist [--step=5000] [--num=50000]
  python -m smallgan_jax.score --workdir=W --features=inception --reference_out=cifar10_train.npz

The scores are the run's evaluation scores (`config.fid`: FID on each feature network with
precision, recall, density, coverage and KID; AUPRC for anomaly runs; the Table 1 metrics for the
toys), computed by the evaluation's own code on `--num` samples of the evaluation's latents
(the first `eval_num_samples` of them are the ones training evaluated) against the training
split, with the coverage metrics on as many real images. They are printed and appended to
`<workdir>/scores.json` (a list of {step, num, batch_stats, features, metrics, seconds}), so the
paper's 50k-sample FID of a run's end costs training nothing. `--reference_out` also writes the
training split's statistics as a mu/sigma `.npz`, which pytorch-fid and clean-fid read.
"""
import json
import time
from typing import Any, Optional

from absl import app, flags, logging
import numpy as np

from smallgan_jax import checkpointing, datasets, evaluation, runs

FLAGS = flags.FLAGS
SCORES_FILE = "scores.json"


def scoring_config(workdir: str, num: int, features: Optional[list[str]]) -> Any:
  """The run's config, set to score `num` samples (and as many real ones) on `features`."""
  config = runs.read_config(workdir)
  if num < 1:
    raise ValueError(f"--num={num}: expected a positive number of samples")
  config.eval_num_samples = num
  if features:
    if "fid" not in config:
      raise ValueError(f"--features={','.join(features)}: the run's dataset "
                       f"({config.dataset}) is not scored on feature networks")
    config.fid.features = tuple(features)
  return config


def write_reference(dataset: Any, path: str) -> None:
  """The training split's statistics of the one feature network scored, as pytorch-fid's .npz."""
  reference = dataset.scores[0].reference
  checkpointing.write_atomically(checkpointing.workdir_path(path),
                                 lambda f: np.savez(f, mu=reference.mu, sigma=reference.sigma))
  logging.info("Wrote the training split's statistics (mu, sigma) to %s", path)


def append_scores(workdir: str, entry: dict) -> None:
  """Appends `entry` to the run's scores.json (rewritten whole, atomically)."""
  path = checkpointing.workdir_path(workdir) / SCORES_FILE
  entries = json.loads(path.read_text()) if path.exists() else []
  checkpointing.write_json_atomically(path, [*entries, entry])


def score_run(workdir: str, step: Optional[int], num: int,
              features: Optional[list[str]] = None, reference_out: str = "") -> dict:
  """Scores the checkpoint of `step` (default: the newest) of the run in `workdir` on `num`
  samples; returns the scores.json entry it appended."""
  config = scoring_config(workdir, num, features)
  scored = len(config.fid.features) if "fid" in config else 0
  if reference_out and scored != 1:  # Before the dataset, which may train a network first.
    raise ValueError(f"--reference_out={reference_out!r} needs exactly one feature network; the "
                     f"run scores {scored}: choose one with --features")
  dataset = datasets.get_dataset(config)
  if reference_out:
    write_reference(dataset, reference_out)
  state, step = runs.restore_state(workdir, config, step)
  start = time.perf_counter()
  evaluator = evaluation.Evaluator(config, dataset, checkpointing.workdir_path(workdir), None,
                                   state.g.apply_fn)
  metrics = evaluator.measure(state)[1]
  entry = {"step": step, "num": num, "batch_stats": config.eval_batch_stats,
           "features": list(config.fid.features) if "fid" in config else [],
           "metrics": metrics, "seconds": round(time.perf_counter() - start, 1)}
  append_scores(workdir, entry)
  return entry


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    entry = score_run(FLAGS.workdir, FLAGS.step, FLAGS.num, FLAGS.features, FLAGS.reference_out)
  except ValueError as e:  # Bad input: one line.
    raise SystemExit(f"FATAL {e}") from None
  print(f"step {entry['step']}, {entry['num']} samples ({entry['batch_stats']} statistics): "
        + ", ".join(f"{k}={v:.5g}" for k, v in entry["metrics"].items()))


def define_flags() -> None:
  runs.define_checkpoint_flags("Samples to score (the paper's FID: 50,000).")
  flags.DEFINE_list("features", None, "Feature networks to score on (inception, classifier); "
                    "default: the run's config.fid.features.")
  flags.DEFINE_string("reference_out", "", "Also write the training split's feature statistics "
                      "(mu, sigma) to this .npz; needs exactly one feature network.")


if __name__ == "__main__":
  define_flags()
  app.run(main)
