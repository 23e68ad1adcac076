"""Does core-set sampling help on real images? Small-GAN against the plain GAN on Fashion-MNIST
(CPU-sized DCGAN, batch 16), the plain GAN at 4x the batch, and the paper's Table 6 ablations,
scored on classifier features by FID, recall, coverage and KID (docs/image_gans.md).

  apt-get install -y dataset-fashion-mnist
  python benchmarks/fashion_mnist_comparison.py --root=experiments/fmnist --jobs=2
  python benchmarks/fashion_mnist_comparison.py --root=experiments/fmnist --study=ablations
  python benchmarks/fashion_mnist_comparison.py --root=experiments/fmnist --summarize_only
  python benchmarks/fashion_mnist_comparison.py --root=experiments/weighted --study=weighted \
      --jobs=2

Each run is `python -m smallgan_jax.main --config=configs/fashion_mnist_dcgan.py` with a
variant's overrides, in `<root>/<variant>-s<seed>`, keeping a checkpoint at every evaluation; a
finished run is skipped and an interrupted one resumes, so the command can be rerun until it is
done. `--steps` extends finished runs (the same workdirs, trained on). As soon as a run is
trained, its last `--last` evaluation checkpoints are scored by `python -m smallgan_jax.score`
(10,000 samples, standing batch-norm statistics, on each of the study's scoring networks; each
score appended to the run's `scores.json`, so a scored step is not scored again). Then the tables
are printed, one per scoring network: per run the mean over those checkpoints, and per seed the
share of the batch-16-to-64 FID gap that each core-set variant closes (against the mean of the
batch-64 seeds; negative: worse than the plain GAN at 16). `--jobs` runs go at once, each pinned
to one CPU core; `--export=FILE.json` writes every run's scores and means.

The studies: "comparison" and "ablations" are docs/image_gans.md's (picked and scored on the
`classifier` network, normal prior: what they were run with; the config has since moved on);
"weighted" is docs/weighted_coresets.md's (the config as it is: uniform prior, picked on
`classifier2`, scored on `classifier2` and `classifier`), "gpu" the same variants at a GPU's
budget (benchmarks/gpu_comparison.sh, with `--network`, `--steps` and `--set KEY=VALUE` for
every run).
"""
import dataclasses
import argparse
import concurrent.futures
import glob
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from typing import Callable, Sequence

import numpy as np
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.util import tensor_util

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/fashion_mnist_dcgan.py"
PLAIN = ["--config.coreset.factor_prior=1", "--config.coreset.factor_target=1"]
# The classifier network that picked and scored every run of the first studies (the config's
# default is now `classifier2`): extended runs and new seeds stay comparable with their table.
NETWORK = "classifier"
# variant -> (label, config file, overrides).
VARIANTS = {
    "smallgan": ("Small-GAN, batch 16", CONFIG, []),
    "plain": ("GAN, batch 16", CONFIG, PLAIN),
    "plain64": ("GAN, batch 64", CONFIG,
                PLAIN + ["--config.batch_size=64", "--config.g_batch_size=64"]),
    "prior_only": ("prior core-set only", CONFIG, ["--config.coreset.factor_target=1"]),
    "target_only": ("target core-set only", CONFIG, ["--config.coreset.factor_prior=1"]),
    "pixels": ("target core-set on pixels (projected to 32)", CONFIG,
               ["--config.coreset.embedding=pixels"]),
    "unprojected": ("target core-set on unprojected classifier features",
                    "configs/fashion_mnist_dcgan_unprojected.py", []),
    "target": ("Small-GAN, target-weighted", CONFIG, ["--config.coreset.weighting=target"]),
    "cells": ("Small-GAN, cells-weighted", CONFIG, ["--config.coreset.weighting=cells"]),
}
# Variants of the batch-16 baseline and of batch 64, against which the others are compared.
BASELINES = ("plain", "plain64")


@dataclasses.dataclass(frozen=True)
class Study:
  """Runs (variant, seed), in the order they start; the network that picks; the networks that
  score; config settings (`KEY=VALUE`) of every run."""
  runs: tuple[tuple[str, int], ...]
  network: str = NETWORK
  scored_on: tuple[str, ...] = (NETWORK,)
  settings: tuple[str, ...] = ("prior=normal",)


WEIGHTED = ("plain", "smallgan", "target", "cells")
STUDIES = {
    "comparison": Study(tuple([(v, s) for v in ("smallgan", "plain") for s in (0, 1, 2)]
                              + [("plain64", s) for s in (0, 1)])),
    "ablations": Study(tuple([(v, s) for s in (0, 1, 2) for v in ("prior_only", "target_only")]
                             + [("pixels", 0), ("unprojected", 0)])),
    # One batch-64 run on one core while the other core trains the batch-16 runs, seed by seed;
    # the second batch-64 seed last (the first run to cut when time is short).
    "weighted": Study(tuple([("plain64", 0)] + [(v, s) for s in (0, 1, 2) for v in WEIGHTED]
                            + [("plain64", 1)]), "classifier2", ("classifier2", "classifier"), ()),
    # The larger budget of benchmarks/gpu_comparison.sh: every variant on 3 seeds.
    "gpu": Study(tuple((v, s) for v in ("plain64", *WEIGHTED) for s in (0, 1, 2)),
                 "classifier2", ("classifier2", "classifier"), ()),
}
NUM_SAMPLES = 10_000
CONFIG_STEPS = 5_000  # configs/fashion_mnist_dcgan.py's num_train_steps.
# The scores of a run, each on the network's features (`smallgan_jax.score` names them
# `<network>_<metric>`).
METRICS = ("fid", "precision", "recall", "density", "coverage", "kid")


def workdir(root: str, variant: str, seed: int) -> str:
  return os.path.join(root, f"{variant}-s{seed}")


def train_command(root: str, run: tuple[str, int], steps: int, network: str = NETWORK,
                  settings: Sequence[str] = ()) -> list[str]:
  """`smallgan_jax.main`'s command line for `run` (variant, seed): core-sets picked and FID
  scored on `network`'s features (unless the variant picks on others), with `settings` (config
  `KEY=VALUE`s, e.g. `dcgan.g_channels=64`) after the variant's own."""
  variant, seed = run
  _, config, flags = VARIANTS[variant]
  extend = [f"--config.num_train_steps={steps}"] if steps else []
  return [sys.executable, "-m", "smallgan_jax.main", f"--config={config}",
          f"--workdir={workdir(root, variant, seed)}", f"--config.seed={seed}",
          "--config.checkpoint_every_steps=500", "--config.checkpoint_max_to_keep=100",
          f"--config.coreset.embedding={network}", f"--config.fid.features=('{network}',)",
          *flags, *extend, *(f"--config.{setting}" for setting in settings)]


def run_logged(command: list[str], log_path: str, core: int) -> float:
  """Runs `command` from the repository root on CPU core `core`, its output appended to
  `log_path`; returns its wall time in s."""
  print(" ".join(command), flush=True)
  start = time.perf_counter()
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  with open(log_path, "a") as log:
    subprocess.run(["taskset", "-c", str(core), *command], cwd=ROOT, check=True, stdout=log,
                   stderr=subprocess.STDOUT)
  return time.perf_counter() - start


def on_cores(tasks: Sequence[Callable[[int], None]], jobs: int) -> None:
  """Calls every task with a CPU core of its own, `jobs` at a time."""
  cores = sorted(os.sched_getaffinity(0))[:jobs]
  with concurrent.futures.ThreadPoolExecutor(len(cores)) as pool:
    free, pending = list(cores), {}
    for task in tasks:
      if not free:
        done, _ = concurrent.futures.wait(pending, return_when="FIRST_COMPLETED")
        for future in done:
          free.append(pending.pop(future))
          future.result()
      core = free.pop()
      pending[pool.submit(task, core)] = core
    for future in pending:
      future.result()


def trained_steps(path: str) -> int:
  """The last step the run in `path` finished (0 if it did not; an empty marker, as earlier
  versions wrote: the config's steps)."""
  done = os.path.join(path, "done")
  return int(open(done).read() or CONFIG_STEPS) if os.path.exists(done) else 0


def train(root: str, run: tuple[str, int], steps: int, network: str, settings: Sequence[str],
          core: int) -> None:
  """Trains (or resumes, or extends to `steps`) one run on `core`, then marks it done."""
  path = workdir(root, *run)
  wanted = steps or CONFIG_STEPS
  if trained_steps(path) >= wanted:
    return
  run_logged(train_command(root, run, steps, network, settings), os.path.join(path, "log.txt"),
             core)
  with open(os.path.join(path, "done"), "w") as f:
    f.write(str(wanted))


def scored(path: str, network: str) -> dict[int, dict]:
  """step -> the metrics (`METRICS` on `network`'s features) `smallgan_jax.score` appended to
  the run's scores.json for `NUM_SAMPLES` samples with standing statistics (the newest entry of a
  step)."""
  found = {}
  file = os.path.join(path, "scores.json")
  for entry in (json.load(open(file)) if os.path.exists(file) else []):
    scores = entry["metrics"]
    if (entry["num"] == NUM_SAMPLES and entry["batch_stats"] == "standing"
        and all(f"{network}_{m}" in scores for m in METRICS)):
      found[entry["step"]] = {m: scores[f"{network}_{m}"] for m in METRICS}
  return found


def score_steps(path: str, last: int) -> list[int]:
  """The run's last `last` checkpointed steps on its checkpoint interval: a run stopped by SIGTERM
  (or preempted) and resumed also holds the checkpoint of the step it stopped at, which is not
  one of the evaluation steps the study averages. A run not started yet has none."""
  record = os.path.join(path, "config.json")
  if not os.path.exists(record):
    return []
  with open(record) as f:
    every = json.load(f)["checkpoint_every_steps"]
  steps = sorted(int(os.path.basename(p)) for p in glob.glob(os.path.join(path, "checkpoints",
                                                                          "[0-9]*")))
  return [s for s in steps if s % every == 0][-last:]


def score(root: str, run: tuple[str, int], last: int, networks: Sequence[str], core: int) -> None:
  """Scores the run's last `last` checkpoints on `networks` where scores.json lacks one."""
  path = workdir(root, *run)
  for step in score_steps(path, last):
    if any(step not in scored(path, network) for network in networks):
      run_logged([sys.executable, "-m", "smallgan_jax.score", f"--workdir={path}",
                  f"--step={step}", f"--num={NUM_SAMPLES}", f"--features={','.join(networks)}"],
                 os.path.join(path, "log.txt"), core)


def tensorboard_scalars(path: str, tags: Sequence[str]) -> dict[str, dict[int, float]]:
  """tag -> step -> value of `tags` in the run's TensorBoard event files, read once, with
  TensorBoard's own reader (no TensorFlow: the GPU images have none)."""
  found = {tag: {} for tag in tags}
  for name in sorted(glob.glob(os.path.join(path, "events.out.tfevents.*"))):
    for event in event_file_loader.EventFileLoader(name).Load():
      for value in event.summary.value:
        if value.tag in found:
          found[value.tag][event.step] = float(tensor_util.make_ndarray(value.tensor))
  return found


def run_means(root: str, run: tuple[str, int], last: int, network: str) -> dict:
  """The run's metrics averaged over its last `last` scored checkpoints, the classifier FID its
  training logged at the same steps ("train_fid": whatever statistics that run's evaluation
  used), and the scores of those checkpoints ("scored": step -> metrics)."""
  path = workdir(root, *run)
  steps = score_steps(path, last)
  found = scored(path, network)
  tag = f"eval/{network}_fid"
  logged = tensorboard_scalars(path, [tag])[tag]
  means = {m: float(np.mean([found[s][m] for s in steps if s in found] or np.nan))
           for m in METRICS}
  means["train_fid"] = float(np.mean([logged[s] for s in steps if s in logged] or np.nan))
  means["steps"] = f"{steps[0]}-{steps[-1]}" if steps else "-"
  means["scored"] = {str(s): found[s] for s in steps if s in found}
  return means


def summarize(root: str, runs: Sequence[tuple[str, int]], last: int, network: str) -> dict:
  """Prints the table of `network`'s scores and the gaps closed; returns the runs' means."""
  means = {run: run_means(root, run, last, network) for run in runs}
  print(f"\n{network}: mean over each run's last {last} checkpoints, {NUM_SAMPLES} samples, "
        "standing statistics; FID logged in training at the same steps (on the network that "
        "training scored):")
  print("| run | seed | steps | FID | precision | recall | density | coverage | KID | "
        "FID logged in training |")
  print("| --- |" + " --- |" * 9)
  for (variant, seed), m in means.items():
    print(f"| {VARIANTS[variant][0]} | {seed} | {m['steps']} | {m['fid']:.1f} | "
          f"{m['precision']:.3f} | {m['recall']:.3f} | {m['density']:.3f} | "
          f"{m['coverage']:.3f} | {m['kid']:.2f} | {m['train_fid']:.1f} |")
  scored_fid = lambda run: run in means and not np.isnan(means[run]["fid"])
  big = [m["fid"] for (v, s), m in means.items() if v == "plain64" and scored_fid((v, s))]
  for (variant, seed), small in means.items():
    if variant in BASELINES or not (big and scored_fid((variant, seed))
                                    and scored_fid(("plain", seed))):
      continue
    plain = means["plain", seed]
    gap = plain["fid"] - np.mean(big)
    closed = (plain["fid"] - small["fid"]) / gap
    print(f"seed {seed}, {VARIANTS[variant][0]}: closes {100 * closed:.0f}% of the batch-16 - "
          f"batch-64 gap ({gap:.1f} FID, batch 64: mean of {len(big)} seed(s)); recall "
          f"{small['recall']:.3f} vs {plain['recall']:.3f}, coverage {small['coverage']:.3f} vs "
          f"{plain['coverage']:.3f} (vs the GAN at batch 16)")
  return means


def export(root: str, runs: Sequence[tuple[str, int]], last: int, networks: Sequence[str],
           means: dict, path: str) -> None:
  """Writes every finished run's scored checkpoints and means on each network to `path` (JSON),
  with the jax version and the time."""
  rows = []
  for variant, seed in runs:
    trained = trained_steps(workdir(root, variant, seed))
    if not trained:
      continue
    per_network = {n: dict(means[n][variant, seed]) for n in networks}
    rows.append({"variant": variant, "label": VARIANTS[variant][0], "seed": seed,
                 "trained_steps": trained,
                 "scores": {n: m.pop("scored") for n, m in per_network.items()},
                 "means": {n: {k: None if v != v else v for k, v in m.items()}
                           for n, m in per_network.items()}})  # NaN (v != v), not logged: null.
  with open(path, "w") as f:
    json.dump({"jax": importlib.metadata.version("jax"), "written": time.strftime("%Y-%m-%d %H:%M"),
               "num_samples": NUM_SAMPLES, "last": last, "runs": rows}, f, indent=1)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True, help="folder of the runs' workdirs")
  parser.add_argument("--study", choices=[*STUDIES, "all"], default="comparison",
                      help="all: the comparison and the ablations")
  parser.add_argument("--jobs", type=int, default=1, help="runs at once, one CPU core each")
  parser.add_argument("--steps", type=int, default=0,
                      help="train (or extend) every run to this many steps; 0: the config's")
  parser.add_argument("--last", type=int, default=3, help="checkpoints scored and averaged")
  parser.add_argument("--network", default=None,
                      help="the classifier network whose features pick (default: the study's)")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a config setting for every run (--set dcgan.g_channels=64), after the "
                      "study's own; the workdirs under --root must all have been trained with "
                      "the same ones")
  parser.add_argument("--export", default="", help="also write the runs' scores to this JSON")
  parser.add_argument("--summarize_only", action="store_true")
  args = parser.parse_args()
  studies = [STUDIES[n] for n in (["comparison", "ablations"] if args.study == "all"
                                  else [args.study])]
  runs = list(dict.fromkeys(run for study in studies for run in study.runs))
  network = args.network or studies[0].network
  settings = [*studies[0].settings, *args.set]
  networks = studies[0].scored_on if args.network is None else (args.network,)
  if not args.summarize_only:
    on_cores([lambda core, run=run: (train(args.root, run, args.steps, network, settings, core),
                                     score(args.root, run, args.last, networks, core))
              for run in runs], args.jobs)
  means = {n: summarize(args.root, runs, args.last, n) for n in networks}
  if args.export:
    export(args.root, runs, args.last, networks, means, args.export)


if __name__ == "__main__":
  main()
