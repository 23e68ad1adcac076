"""Times the coverage metrics (`smallgan_jax.metrics.coverage`) at an evaluation's sizes.

  python benchmarks/coverage_cost.py [--num=10000] [--dims 128 2048] [--prdc]

For each feature dimension: random ReLU-like features (a normal of mean 0.3, sd 0.5, clipped at 0,
as the Inception's pool3; the generated set's mean 0.32), `--num` real and as many generated. It
prints the seconds of `RealReference.build` (once per run: the real radii and KID terms), of the
first evaluation (compiling its two blocked passes) and of a second one (what every later
evaluation costs), with the default settings (k 3 and 5, KID 100 subsets of 1000). `--prdc` also
times the `prdc` package (precision, recall, density, coverage only) at k = 5 on the same sets.
Each time is wall-clock seconds and, in brackets, the CPU seconds of the process (all threads):
on a shared machine the wall time depends on the other load, the CPU time much less.
"""
import argparse
import contextlib
import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from smallgan_jax.metrics import coverage  # pylint: disable=g-import-not-at-top,wrong-import-position


def features(rng: np.random.Generator, num: int, dim: int, mean: float) -> np.ndarray:
  return np.maximum(rng.normal(mean, 0.5, (num, dim)), 0).astype(np.float32)


def seconds(fn, *args) -> tuple[str, object]:
  """('wall s (CPU s)', fn(*args))."""
  wall, cpu = time.perf_counter(), time.process_time()
  result = fn(*args)
  return f"{time.perf_counter() - wall:.1f} s ({time.process_time() - cpu:.1f})", result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num", type=int, default=10_000, help="real and generated samples each")
  parser.add_argument("--dims", type=int, nargs="+", default=[128, 2048])
  parser.add_argument("--prdc", action="store_true", help="also time the prdc package")
  args = parser.parse_args()
  print(f"{jax.devices()[0].device_kind}, {os.cpu_count()} CPUs; {args.num} real and "
        f"{args.num} generated samples", flush=True)
  for dim in args.dims:
    rng = np.random.default_rng(dim)
    real, fake = features(rng, args.num, dim, 0.3), features(rng, args.num, dim, 0.32)
    build, reference = seconds(coverage.RealReference.build, real)
    first, _ = seconds(reference, fake)
    again, scores = seconds(reference, fake)
    line = (f"dim {dim}: build {build}, first evaluation {first}, evaluation {again}; "
            + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
    if args.prdc:
      import prdc  # pylint: disable=g-import-not-at-top  # A test-only requirement.
      with contextlib.redirect_stdout(io.StringIO()):
        reference_seconds, _ = seconds(prdc.compute_prdc, real, fake, 5)
      line += f"; prdc {reference_seconds}"
    print(line, flush=True)


if __name__ == "__main__":
  main()
