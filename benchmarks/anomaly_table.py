"""Anomaly detection on Fashion-MNIST (paper Table 2's protocol): BiGAN, MEG and core-set MEG for
a list of held-out classes over several seeds, AUPRC mean +- std per class and method.

  apt-get install -y dataset-fashion-mnist
  python benchmarks/anomaly_table.py --root=experiments/anomaly --classes 0 1 2 --seeds 0 1 2
  python benchmarks/anomaly_table.py --root=experiments/anomaly --summarize_only

Each run is `python -m smallgan_jax.main` on configs/fashion_mnist_meg.py (MEG with factors 1,
and core-set MEG) or configs/fashion_mnist_bigan.py, with `--config.anomaly_class` and
`--config.seed`, in `<root>/<method>-c<class>-s<seed>`; `--jobs` runs go at once, each pinned to
one CPU core. A finished run is skipped and an interrupted one resumes from its checkpoint, so the
command can be rerun until it is done. The score of a run is the AUPRC (average precision,
anomalies positive) of its final evaluation, read from TensorBoard. The paper's MNIST row (digits
1, 4, 5, 7, 9) is printed beside it for orientation only: another dataset, other networks and
55 epochs.
"""
import argparse
import concurrent.futures
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from benchmarks import fashion_mnist_comparison  # pylint: disable=g-import-not-at-top
from smallgan_jax import validation  # pylint: disable=g-import-not-at-top

ROOT = fashion_mnist_comparison.ROOT
PLAIN = ["--config.coreset.factor_prior=1", "--config.coreset.factor_target=1"]
METHODS = {"BiGAN": ("configs/fashion_mnist_bigan.py", []),
           "MEG": ("configs/fashion_mnist_meg.py", PLAIN),
           "core-set MEG": ("configs/fashion_mnist_meg.py", [])}
SLUGS = {"BiGAN": "bigan", "MEG": "meg", "core-set MEG": "coreset_meg"}
# Paper Table 2, MNIST AUPRC by held-out digit.
PAPER_MNIST = {"BiGAN": {1: .287, 4: .443, 5: .514, 7: .347, 9: .307},
               "MEG": {1: .281, 4: .401, 5: .402, 7: .290, 9: .342},
               "core-set MEG": {1: .351, 4: .501, 5: .518, 7: .387, 9: .390}}


def workdir(root: str, method: str, anomaly_class: int, seed: int) -> str:
  return os.path.join(root, f"{SLUGS[method]}-c{anomaly_class}-s{seed}")


def train(root: str, run: tuple[str, int, int], core: int) -> float:
  """Runs (or resumes) one run to the end on CPU core `core`; returns its wall time in s (0 for
  a run already finished)."""
  method, anomaly_class, seed = run
  path = workdir(root, method, anomaly_class, seed)
  if os.path.exists(os.path.join(path, "done")):
    return 0.0
  config, flags = METHODS[method]
  command = ["taskset", "-c", str(core), sys.executable, "-m", "smallgan_jax.main",
             f"--config={config}", f"--workdir={path}", f"--config.anomaly_class={anomaly_class}",
             f"--config.seed={seed}", *flags]
  print(" ".join(command), flush=True)
  start = time.perf_counter()
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "log.txt"), "a") as log:
    subprocess.run(command, cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT)
  open(os.path.join(path, "done"), "w").close()
  return time.perf_counter() - start


def train_all(root: str, runs: list[tuple[str, int, int]], jobs: int) -> None:
  """Trains `runs` with `jobs` at a time, job i of each round on core i."""
  cores = sorted(os.sched_getaffinity(0))[:jobs]
  with concurrent.futures.ThreadPoolExecutor(len(cores)) as pool:
    free = list(cores)
    pending = {}
    for run in runs:
      if not free:
        done, _ = concurrent.futures.wait(pending, return_when="FIRST_COMPLETED")
        for future in done:
          free.append(pending.pop(future))
          future.result()
      core = free.pop()
      pending[pool.submit(train, root, run, core)] = core
    for future in pending:
      future.result()


def final_auprc(path: str) -> float:
  found = fashion_mnist_comparison.scores(path, "eval/auprc")
  return found[max(found)] if found else np.nan


def summarize(root: str, classes: list[int], seeds: list[int]) -> None:
  print(f"AUPRC of the final evaluation, mean +- sample std over seeds {seeds} (Fashion-MNIST); "
        "paper: MNIST, same method, for orientation")
  print("| held-out class | " + " | ".join(METHODS) + " | " +
        " | ".join(f"paper MNIST {m}" for m in METHODS) + " |")
  print("| --- |" + " --- |" * (2 * len(METHODS)))
  auprc = {(m, c, s): final_auprc(workdir(root, m, c, s))
           for m in METHODS for c in classes for s in seeds}  # Each run's TensorBoard read once.
  for c in classes:
    cells = []
    for method in METHODS:
      values = [auprc[method, c, s] for s in seeds]
      cells.append(f"{np.mean(values):.3f} +- {np.std(values, ddof=1):.3f}")
    paper = [f"{PAPER_MNIST[m][c]:.3f}" if c in PAPER_MNIST[m] else "" for m in METHODS]
    print(f"| {c} | " + " | ".join(cells + paper) + " |")
  for c in classes:
    diffs = [auprc["core-set MEG", c, s] - auprc["MEG", c, s] for s in seeds]
    print(f"class {c}: core-set MEG - MEG, paired by seed: " +
          ", ".join(f"{d:+.3f}" for d in diffs) + f" (mean {np.mean(diffs):+.3f})")


def main() -> None:
  class_id = validation.flag_type(validation.Check(lambda v: v is not None and 0 <= v <= 9,
                                                   "a Fashion-MNIST class in [0, 9]"))
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True, help="folder of the runs' workdirs")
  parser.add_argument("--classes", type=class_id, nargs="+", default=[0, 1, 2])
  parser.add_argument("--seeds", type=validation.flag_type(validation.SEED), nargs="+",
                      default=[0, 1, 2])
  parser.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=list(METHODS))
  parser.add_argument("--jobs", type=validation.flag_type(validation.POSITIVE_INT), default=1,
                      help="runs at once, one CPU core each")
  parser.add_argument("--summarize_only", action="store_true")
  args = parser.parse_args()
  if not args.summarize_only:
    runs = [(m, c, s) for s in args.seeds for c in args.classes for m in args.methods]
    train_all(args.root, runs, args.jobs)
  summarize(args.root, args.classes, args.seeds)


if __name__ == "__main__":
  main()
