"""Anomaly detection on Fashion-MNIST (paper Table 2's protocol): BiGAN, MEG and core-set MEG for
a list of held-out classes over several seeds, AUPRC mean +- std per class and method; with
`--methods`, also MEG with the prior or the target core-set only (the paper's Table 6 ablation).

  apt-get install -y dataset-fashion-mnist
  python benchmarks/anomaly_table.py --root=experiments/anomaly --classes 0 1 2 --seeds 0 1 2
  python benchmarks/anomaly_table.py --root=experiments/anomaly --summarize_only

Each run is `python -m smallgan_jax.main` on configs/fashion_mnist_meg.py (MEG with factors 1,
and core-set MEG) or configs/fashion_mnist_bigan.py, with `--config.anomaly_class` and
`--config.seed`, in `<root>/<method>-c<class>-s<seed>`; `--jobs` runs go at once, each pinned to
one CPU core. A finished run is skipped and an interrupted one resumes from its checkpoint, so the
command can be rerun until it is done; a finished run whose recorded config (its config.json) is
not the one the configs give now is refused in one line, so runs of an earlier protocol are never
mixed into the table (use another --root for them).

The score of a run is the mean of its evaluations in the last `TAIL_FRACTION` (20%) of its steps
(steps > 0.8 x its last step), as the Small-GAN paper averages MEG's score over the last 10 of its
55 epochs: with the configs' 2,000 steps and an evaluation every 100, the 4 at steps 1,700-2,000
(configs/mnist_meg.py: 11 of its 55). Two tables, one per measure of the area under the
precision-recall curve (smallgan_jax/metrics/anomaly.py), both read from TensorBoard:
`eval/auprc`, average precision, and `eval/auprc_trapz`, the trapezoidal area MEG's reference code
reports. The paper's MNIST row (digits 1, 4, 5, 7, 9) is printed beside them for orientation only:
another dataset, other networks, 55 epochs, the reference's split.
"""
import argparse
import os
import subprocess
import sys
import time

from absl import flags as absl_flags
import ml_collections
from ml_collections import config_flags
import numpy as np

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from benchmarks import fashion_mnist_comparison  # pylint: disable=g-import-not-at-top
from smallgan_jax import checkpointing, validation  # pylint: disable=g-import-not-at-top

ROOT = fashion_mnist_comparison.ROOT
NO_PRIOR, NO_TARGET = fashion_mnist_comparison.PLAIN  # Each core-set's factor 1: off.
MEG_CONFIG = "configs/fashion_mnist_meg.py"
METHODS = {"BiGAN": ("configs/fashion_mnist_bigan.py", []),
           "MEG": (MEG_CONFIG, [NO_PRIOR, NO_TARGET]),
           "core-set MEG": (MEG_CONFIG, []),
           # The paper's Table 6 ablation for MEG: one of the two core-sets only.
           "prior core-set MEG": (MEG_CONFIG, [NO_TARGET]),
           "target core-set MEG": (MEG_CONFIG, [NO_PRIOR]),
           # Beyond the paper: both core-sets weighted by their cells (docs/weighted_coresets.md).
           "cells-weighted core-set MEG": (MEG_CONFIG, ["--config.coreset.weighting=cells"])}
DEFAULT_METHODS = ["BiGAN", "MEG", "core-set MEG"]
# TensorBoard tags of the two AUPRC measures, and their names in the tables.
MEASURES = {"eval/auprc": "average precision", "eval/auprc_trapz": "trapezoidal area"}
TAIL_FRACTION = 0.2  # A run's score: the mean of its evaluations in this last part of its steps.
# Paper Table 2, MNIST AUPRC by held-out digit.
PAPER_MNIST = {"BiGAN": {1: .287, 4: .443, 5: .514, 7: .347, 9: .307},
               "MEG": {1: .281, 4: .401, 5: .402, 7: .290, 9: .342},
               "core-set MEG": {1: .351, 4: .501, 5: .518, 7: .387, 9: .390}}


def workdir(root: str, method: str, anomaly_class: int, seed: int) -> str:
  slug = method.lower().replace("core-set", "coreset").replace(" ", "_")  # "coreset_meg".
  return os.path.join(root, f"{slug}-c{anomaly_class}-s{seed}")


def run_flags(run: tuple[str, int, int]) -> list[str]:
  """`smallgan_jax.main`'s flags for `run` (method, class, seed), but for the workdir."""
  method, anomaly_class, seed = run
  config, flags = METHODS[method]
  return [f"--config={os.path.join(ROOT, config)}", f"--config.anomaly_class={anomaly_class}",
          f"--config.seed={seed}", *flags]


def run_config(run: tuple[str, int, int]) -> ml_collections.ConfigDict:
  """The config `run` trains with, parsed from its flags as `smallgan_jax.main` parses them."""
  argv = ["anomaly_table", *run_flags(run)]
  values = absl_flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True,
                                  sys_argv=argv)
  values(argv)
  return values.config


def finished(root: str, run: tuple[str, int, int]) -> bool:
  """Whether `run` has finished in `root`; raises ValueError, in one line, if it finished under
  another config than `run_config(run)` (the configs changed since)."""
  path = workdir(root, *run)
  if not os.path.exists(os.path.join(path, "done")):
    return False
  try:
    checkpointing.check_same_run(checkpointing.workdir_path(path), run_config(run),
                                 checkpointing.device_layout())
  except ValueError as e:
    raise ValueError(str(e).replace("use another --workdir", "use another --root")) from None
  return True


def train(root: str, run: tuple[str, int, int], core: int) -> float:
  """Runs (or resumes) one run to the end on CPU core `core`; returns its wall time in s."""
  path = workdir(root, *run)
  command = ["taskset", "-c", str(core), sys.executable, "-m", "smallgan_jax.main",
             f"--workdir={path}", *run_flags(run)]
  print(" ".join(command), flush=True)
  start = time.perf_counter()
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "log.txt"), "a") as log:
    subprocess.run(command, cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT)
  open(os.path.join(path, "done"), "w").close()
  return time.perf_counter() - start


def tail(scores: dict[int, float]) -> list[float]:
  """The values at steps in the last `TAIL_FRACTION` of the steps up to the last one scored
  (steps > (1 - TAIL_FRACTION) x last step), in step order; [] for a run with none."""
  if not scores:
    return []
  start = (1 - TAIL_FRACTION) * max(scores)
  return [scores[step] for step in sorted(scores) if step > start]


def _table(measure: str, scores: dict, classes: list[int], seeds: list[int],
           methods: list[str]) -> None:
  """Prints one measure's table and each core-set MEG's paired difference from MEG."""
  tails = {run: tail(found[measure]) for run, found in scores.items()}
  counts = sorted({len(t) for t in tails.values()})
  mean = {run: np.mean(t) if t else np.nan for run, t in tails.items()}
  print(f"\nAUPRC as {MEASURES[measure]} ({measure}), each run's mean over its evaluations in "
        f"the last {TAIL_FRACTION:.0%} of its steps ({'-'.join(map(str, counts))} a run); mean "
        f"+- sample std over seeds {seeds} (Fashion-MNIST); paper: MNIST, for orientation")
  in_paper = [m for m in methods if m in PAPER_MNIST]  # The paper has no ablation row for MEG.
  print("| held-out class | " + " | ".join(methods + [f"paper MNIST {m}" for m in in_paper]) + " |")
  print("| --- |" + " --- |" * (len(methods) + len(in_paper)))
  for c in classes:
    cells = []
    for method in methods:
      values = [mean[method, c, s] for s in seeds]
      cells.append(f"{np.mean(values):.3f} +- {np.std(values, ddof=1):.3f}")
    paper = [f"{PAPER_MNIST[m][c]:.3f}" if c in PAPER_MNIST[m] else "" for m in in_paper]
    print(f"| {c} | " + " | ".join(cells + paper) + " |")
  variants = [m for m in methods if m.endswith("core-set MEG")] if "MEG" in methods else []
  for method in variants:
    for c in classes:
      diffs = [mean[method, c, s] - mean["MEG", c, s] for s in seeds]
      print(f"class {c}: {method} - MEG, paired by seed: " +
            ", ".join(f"{d:+.3f}" for d in diffs) + f" (mean {np.mean(diffs):+.3f})")


def summarize(root: str, classes: list[int], seeds: list[int], methods: list[str]) -> None:
  """Prints a table per AUPRC measure of `methods`; each run's TensorBoard is read once. A run
  still training (no `done` marker) counts as missing: its last 20% are not yet the run's."""
  runs = [(m, c, s) for m in methods for c in classes for s in seeds]
  unfinished = [run for run in runs if not finished(root, run)]
  if unfinished:
    print("not finished, left out: " + ", ".join(os.path.basename(workdir(root, *run))
                                                 for run in unfinished))
  scores = {run: ({measure: {} for measure in MEASURES} if run in unfinished else
                  fashion_mnist_comparison.tensorboard_scalars(workdir(root, *run), MEASURES))
            for run in runs}
  for measure in MEASURES:
    _table(measure, scores, classes, seeds, methods)


def main() -> None:
  class_id = validation.flag_type(validation.Check(lambda v: v is not None and 0 <= v <= 9,
                                                   "a Fashion-MNIST class in [0, 9]"))
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True, help="folder of the runs' workdirs")
  parser.add_argument("--classes", type=class_id, nargs="+", default=[0, 1, 2])
  parser.add_argument("--seeds", type=validation.flag_type(validation.SEED), nargs="+",
                      default=[0, 1, 2])
  parser.add_argument("--methods", nargs="+", choices=tuple(METHODS),
                      default=DEFAULT_METHODS)
  parser.add_argument("--jobs", type=validation.flag_type(validation.POSITIVE_INT), default=1,
                      help="runs at once, one CPU core each")
  parser.add_argument("--summarize_only", action="store_true")
  args = parser.parse_args()
  if not args.summarize_only:
    runs = [(m, c, s) for s in args.seeds for c in args.classes for m in args.methods]
    unfinished = [run for run in runs if not finished(args.root, run)]
    fashion_mnist_comparison.on_cores(
        [lambda core, run=run: train(args.root, run, core) for run in unfinished], args.jobs)
  summarize(args.root, args.classes, args.seeds, args.methods)


if __name__ == "__main__":
  main()
