"""Speed of the greedy k-center kernels (XLA and fused Pallas) against the NumPy and sklearn-style
references.

Run from the repository root:

  python benchmarks/coreset_speed.py

Settings (sets x n candidates, d dims, k picks):
  prior         1 x 512, 128, 128   the paper's prior core-set; also the SN-GAN step's G update
  target        1 x 1024, 32, 128   the paper's target core-set
  large         1 x 8192, 128, 1024 4 MiB of points: more than one GPU SM holds
  target-x8     8 x 1024, 32, 128   eight target sets in one call
  sngan-prior   5 x 256, 128, 64    SN-GAN step (D batch 64, factor 4, n_dis 5): prior, D updates
  sngan-target  5 x 512, 32, 64     SN-GAN step (factor 8): target, D updates
  paper-target  5 x 1024, 32, 128   paper-scale target sets of one step
  torch-fps     16 x 1024, 32, 128  torch-fps's published setting (fused CUDA FPS)

Each setting draws Gaussian sets (or small integers, --inputs). The XLA kernel's indices are
checked against the NumPy reference on every set (exit status 1 on a mismatch); the Pallas
kernel's are compared with XLA's and the result printed ("same picks"): on a GPU the two compilers
may round a near-tie differently (benchmarks/gpu_coreset.sh checks exact agreement on small
integers, which have no near-ties). Times are medians of whole calls (all sets), after compiling
and warming up, synchronised with block_until_ready. The references run on one set of each size,
on the host CPU; 0 repeats skips them. The sklearn-style reference recomputes all distances every
step (O(n k^2 d)), so at the large setting it runs --sklearn-large-repeats times only (about half a
minute on 2 CPU cores).

On a CPU the Pallas kernel runs in interpret mode, a correctness aid whose times say nothing about
a device, so --backends defaults to xla there, and to xla and pallas on a GPU. --num-warps,
--block-n and --resident time one Pallas row per combination instead of the measured default
layout (coreset_pallas.default_config).
"""
import argparse
import itertools
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from threadpoolctl import threadpool_limits

# Make `smallgan_jax` importable when run as a script from anywhere.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from smallgan_jax import coreset  # noqa: E402
from smallgan_jax import coreset_pallas  # noqa: E402
from benchmarks.coreset_reference import (greedy_k_center_numpy,  # noqa: E402
                                            greedy_k_center_sklearn)

# name: (sets, n, d, k)
SETTINGS = {
    "prior": (1, 512, 128, 128),
    "target": (1, 1024, 32, 128),
    "large": (1, 8192, 128, 1024),
    "target-x8": (8, 1024, 32, 128),
    "sngan-prior": (5, 256, 128, 64),
    "sngan-target": (5, 512, 32, 64),
    "paper-target": (5, 1024, 32, 128),
    "torch-fps": (16, 1024, 32, 128),
}
BACKENDS = ("xla", "pallas")
INPUTS = ("gaussian", "small-int")
RESIDENT = {"auto": None, "yes": True, "no": False}


def median_ms(fn, repeats: int) -> float:
  """Median wall time of `repeats` calls of fn, in ms."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times)) * 1e3


def first_difference(got: np.ndarray, want: np.ndarray) -> str:
  """'' if equal, else where (set, pick) the first difference is."""
  if np.array_equal(got, want):
    return ""
  b, i = np.argwhere(got != want)[0]
  return f"set {b} pick {i}: {got[b, i]} vs {want[b, i]}"


def check(name: str, got: np.ndarray, sets: np.ndarray, k: int) -> None:
  """Exit with status 1 unless every row of `got` equals the NumPy reference's indices."""
  want = np.stack([greedy_k_center_numpy(points, k) for points in sets])
  where = first_difference(got, want)
  if where:
    sys.exit(f"{name}: XLA indices differ from the NumPy reference at {where} (xla vs numpy)")


def time_jax(fn, args, repeats: int) -> tuple:
  """Compile and warm up fn(*args), then return (result as NumPy, median ms)."""
  result = np.asarray(jax.block_until_ready(fn(*args)))
  return result, median_ms(lambda: jax.block_until_ready(fn(*args)), repeats)


def positive_int(text: str) -> int:
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f"{value} is not positive")
  return value


def non_negative_int(text: str) -> int:
  value = int(text)
  if value < 0:
    raise argparse.ArgumentTypeError(f"{value} is negative")
  return value


def power_of_two(text: str) -> int:
  value = int(text)
  if value < 1 or value & (value - 1):
    raise argparse.ArgumentTypeError(f"{value} is not a power of two")
  return value


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=positive_int, default=21, help="timed calls of each kernel")
  parser.add_argument("--ref-repeats", type=non_negative_int, default=5,
                      help="timed runs of each reference, except at the large setting (0 skips)")
  parser.add_argument("--large-ref-repeats", type=non_negative_int, default=3,
                      help="timed runs of the NumPy reference at the large setting (0 skips)")
  parser.add_argument("--sklearn-large-repeats", type=non_negative_int, default=1,
                      help="timed runs of the sklearn-style reference at the large setting "
                           "(0 skips it)")
  parser.add_argument("--blas-threads", type=non_negative_int, default=0,
                      help="BLAS threads for the references (0: library default). 1 is steadier "
                           "when other processes share the CPUs: multi-threaded OpenBLAS then "
                           "slows down many times over")
  parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS),
                      metavar="NAME", help=f"settings to run, of {', '.join(SETTINGS)}")
  parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=None,
                      help="kernels to time (default: xla and pallas on a GPU, else xla)")
  parser.add_argument("--num-warps", nargs="+", type=positive_int, default=[None],
                      help="Pallas rows with these Triton warps per program")
  parser.add_argument("--block-n", nargs="+", type=power_of_two, default=[None],
                      help="Pallas rows with these points per program (< n: several programs "
                           "per set, GPU only)")
  parser.add_argument("--resident", nargs="+", choices=RESIDENT, default=["auto"],
                      help="Pallas rows holding the points in registers (yes), reloading them "
                           "every pick (no) or by the kernel's rule (auto)")
  parser.add_argument("--inputs", choices=INPUTS, default="gaussian",
                      help="set coordinates: standard normal, or integers in {0, 1, 2}, whose "
                           "squared distances are exact in float32 (no near-ties: the Pallas "
                           "and XLA picks must then agree on any device)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  if args.backends is None:
    args.backends = list(BACKENDS) if jax.default_backend() == "gpu" else ["xla"]
  return args


def main() -> None:
  args = parse_args()
  with threadpool_limits(limits=args.blas_threads or None, user_api="blas"):
    run(args)


def kernels(args: argparse.Namespace, sets: int, k: int) -> list:
  """(label, fn of points) for every kernel row of a setting."""
  rows = []
  if "xla" in args.backends:
    if sets == 1:
      rows.append(("xla", lambda p: coreset.greedy_k_center(p[0], k, backend="xla")[None]))
    else:
      rows.append(("xla", lambda p: coreset.greedy_k_center_sets(p, k, backend="xla")))
  if "pallas" in args.backends:
    for warps, block_n, resident in itertools.product(args.num_warps, args.block_n,
                                                      args.resident):
      config = coreset_pallas.KernelConfig(block_n, warps, RESIDENT[resident])
      label = ("pallas" + (f" w{warps}" if warps else "") + (f" b{block_n}" if block_n else "")
               + ("" if resident == "auto" else f" resident={resident}"))
      rows.append((label, lambda p, c=config: coreset.greedy_k_center_sets(p, k, "pallas", c)))
  return rows


def time_references(args: argparse.Namespace, name: str, points: np.ndarray, k: int) -> tuple:
  """(numpy ms, sklearn ms) for one set; NaN where skipped."""
  large = name == "large"
  numpy_repeats = args.large_ref_repeats if large else args.ref_repeats
  sklearn_repeats = args.sklearn_large_repeats if large else args.ref_repeats
  numpy_ms = (median_ms(lambda: greedy_k_center_numpy(points, k), numpy_repeats)
              if numpy_repeats else float("nan"))
  sklearn_ms = (median_ms(lambda: greedy_k_center_sklearn(points, k), sklearn_repeats)
                if sklearn_repeats else float("nan"))
  return numpy_ms, sklearn_ms


def run(args: argparse.Namespace) -> None:
  """Check and time every setting, then print the tables."""
  rng = np.random.default_rng(args.seed)
  rows, ref_rows, ref_times = [], [], {}
  for name in args.settings:
    sets, n, d, k = SETTINGS[name]
    if args.inputs == "gaussian":
      points = rng.standard_normal((sets, n, d)).astype(np.float32)
    else:
      points = rng.integers(0, 3, size=(sets, n, d)).astype(np.float32)
    title = f"{name} {sets}x n={n} d={d} k={k}"
    xla_ms, xla_picks = None, None
    for label, fn in kernels(args, sets, k):
      try:
        got, ms = time_jax(jax.jit(fn), (jnp.asarray(points),), args.repeats)
      except Exception as error:  # pylint: disable=broad-except
        # A layout the device refuses (e.g. more programs than SMs) is a row, not the end.
        message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        rows.append((title, label, float("nan"), float("nan"), message[:200]))
        continue
      if label == "xla":
        check(name, got, points, k)
        xla_ms, xla_picks = ms, got
        same = "= numpy"
      else:
        same = ("n/a" if xla_picks is None
                else first_difference(got, xla_picks) or "yes")
      rows.append((title, label, ms, (xla_ms or float("nan")) / ms, same))
    if (n, d, k) not in ref_times:
      ref_times[n, d, k] = time_references(args, name, points[0], k)
    if xla_ms is not None and not np.isnan(ref_times[n, d, k]).all():
      ref_rows.append((title, xla_ms / sets, *ref_times[n, d, k]))
  report(args, rows, ref_rows)


def report(args: argparse.Namespace, rows: list, ref_rows: list) -> None:
  """Print the environment, the kernel table, the reference table and notes."""
  device = jax.devices()[0]
  print(f"jax {jax.__version__} | device: {device.platform} {device.device_kind} | "
        f"{os.cpu_count()} CPUs | {platform.processor() or platform.machine()} | "
        f"inputs: {args.inputs}")
  print(f"{'setting':<36}{'kernel':<28}{'ms/call':>10}{'xla/this':>10}  same picks as xla")
  for title, label, ms, ratio, same in rows:
    print(f"{title:<36}{label:<28}{ms:>10.3f}{ratio:>10.2f}  {same}")
  if ref_rows:
    print(f"{'references, one set':<36}{'xla ms/set':>12}{'numpy ms':>12}{'sklearn ms':>12}"
          f"{'numpy/xla':>12}{'sklearn/xla':>12}")
    for title, xla_ms, numpy_ms, sklearn_ms in ref_rows:
      print(f"{title:<36}{xla_ms:>12.3f}{numpy_ms:>12.2f}{sklearn_ms:>12.1f}"
            f"{numpy_ms / xla_ms:>12.1f}{sklearn_ms / xla_ms:>12.1f}")
  print("note: xla/this = XLA's ms per call / this kernel's; xla ms/set = XLA's call / sets")
  print(f"note: references timed {args.ref_repeats}x (large: NumPy {args.large_ref_repeats}x, "
        f"sklearn-style {args.sklearn_large_repeats}x; 0 = skipped, nan); BLAS threads: "
        + (str(args.blas_threads) if args.blas_threads else "library default"))


if __name__ == "__main__":
  main()
