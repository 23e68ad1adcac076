"""Small-GAN against the plain GAN on Fashion-MNIST (CPU-sized DCGAN, batch 16), 3 seeds each,
and the plain GAN at 4x the batch for one seed, scored by classifier FID of 10,000 samples.

  apt-get install -y dataset-fashion-mnist
  python benchmarks/fashion_mnist_comparison.py --root=experiments/fmnist   # runs, then the table
  python benchmarks/fashion_mnist_comparison.py --root=experiments/fmnist --summarize_only

Each run is `python -m smallgan_jax.main --config=configs/fashion_mnist_dcgan.py` with the
overrides below, in `<root>/<variant>-s<seed>`; a finished run is skipped and an interrupted one
resumes from its checkpoint, so the command can be rerun until it is done. The table reads each
run's TensorBoard `eval/classifier_fid`, and pairs Small-GAN with the plain GAN by seed over the
last `--last` evaluations.
"""
import argparse
import glob
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAIN = ["--config.coreset.factor_prior=1", "--config.coreset.factor_target=1"]
RUNS = [("smallgan", 0, []), ("plain", 0, PLAIN),
        ("plain64", 0, PLAIN + ["--config.batch_size=64", "--config.g_batch_size=64"]),
        ("smallgan", 1, []), ("plain", 1, PLAIN), ("smallgan", 2, []), ("plain", 2, PLAIN)]
NAMES = {"smallgan": "Small-GAN, batch 16", "plain": "GAN, batch 16", "plain64": "GAN, batch 64"}
TAG = "eval/classifier_fid"


def train(root: str, variant: str, seed: int, flags: list[str]) -> None:
  """Runs (or resumes) one run to the end; a run with a final score is left alone."""
  workdir = os.path.join(root, f"{variant}-s{seed}")
  if os.path.exists(os.path.join(workdir, "done")):
    return
  command = [sys.executable, "-m", "smallgan_jax.main",
             "--config=configs/fashion_mnist_dcgan.py", f"--workdir={workdir}",
             f"--config.seed={seed}", *flags]
  print(" ".join(command), flush=True)
  subprocess.run(command, cwd=ROOT, check=True)
  open(os.path.join(workdir, "done"), "w").close()


def scores(workdir: str, tag: str = TAG) -> dict[int, float]:
  """step -> the scalar `tag` (classifier FID), from the run's TensorBoard event files."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # clu's writer needs it anyway.
  found = {}
  for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          found[event.step] = float(tf.make_ndarray(value.tensor))
  return found


def summarize(root: str, last: int) -> None:
  runs = {(v, s): scores(os.path.join(root, f"{v}-s{s}")) for v, s, _ in RUNS}
  steps = sorted(set().union(*(r.keys() for r in runs.values())))
  print("| run | " + " | ".join(str(s) for s in steps) + f" | mean of last {last} |")
  print("| --- |" + " --- |" * (len(steps) + 1))
  tails = {}
  for (variant, seed), found in runs.items():
    tail = [found[s] for s in steps[-last:] if s in found]
    tails[variant, seed] = np.mean(tail) if len(tail) == last else np.nan
    cells = " | ".join(f"{found[s]:.1f}" if s in found else "" for s in steps)
    print(f"| {NAMES[variant]}, seed {seed} | {cells} | {tails[variant, seed]:.1f} |")
  seeds = sorted({s for v, s, _ in RUNS if v == "smallgan"})
  diffs = [tails["smallgan", s] - tails["plain", s] for s in seeds]
  print(f"Small-GAN - GAN at batch 16, paired by seed (mean of the last {last} evaluations): "
        + ", ".join(f"seed {s}: {d:+.1f}" for s, d in zip(seeds, diffs))
        + f"; mean {np.mean(diffs):+.1f}")
  gap = tails["plain64", 0] - tails["plain", 0]
  closed = (tails["smallgan", 0] - tails["plain", 0]) / gap if gap else np.nan
  print(f"seed 0: batch 64 - batch 16 = {gap:+.1f}; Small-GAN closes {100 * closed:.0f}% of it")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True, help="folder of the runs' workdirs")
  parser.add_argument("--last", type=int, default=3, help="evaluations averaged at the end")
  parser.add_argument("--summarize_only", action="store_true")
  args = parser.parse_args()
  if not args.summarize_only:
    for variant, seed, flags in RUNS:
      train(args.root, variant, seed, flags)
  summarize(args.root, args.last)


if __name__ == "__main__":
  main()
