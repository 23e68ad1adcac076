"""Speed of the jitted greedy k-center against the NumPy and sklearn-style references.

Run from the repository root:

  python benchmarks/coreset_speed.py

Settings: the paper's prior (n=512 candidates, d=128, k=128) and target (n=1024, d=32, k=128)
core-sets, a large one (n=8192, d=128, k=1024) and a vmapped batch of 8 target sets (time per
set). Before timing, the JAX indices are checked against the NumPy reference at every setting;
the script exits with status 1 on a mismatch. Times are medians; JAX is compiled and warmed up
first and synchronised with block_until_ready. The sklearn-style reference recomputes the
distances to all chosen centres every step (O(n k^2 d)), so at the large setting it is run
--sklearn-large-repeats times only (default 1, about half a minute on 2 CPU cores).
"""
import argparse
import functools
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

from smallgan_jax.coreset import greedy_k_center  # noqa: E402
from smallgan_jax.coreset_reference import (greedy_k_center_numpy,  # noqa: E402
                                            greedy_k_center_sklearn)

SETTINGS = (("prior", 512, 128, 128), ("target", 1024, 32, 128), ("large", 8192, 128, 1024))
BATCH = 8


def median_ms(fn, repeats: int) -> float:
  """Median wall time of `repeats` calls of fn, in ms."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times)) * 1e3


def check(name: str, got: np.ndarray, points: np.ndarray, k: int) -> None:
  """Exit with status 1 unless `got` equals the NumPy reference's indices."""
  want = greedy_k_center_numpy(points, k)
  if not np.array_equal(got, want):
    first = int(np.argmax(got != want))
    sys.exit(f"{name}: JAX indices differ from the NumPy reference from pick {first} on "
             f"(jax {got[first]}, numpy {want[first]})")


def time_jax(fn, args, repeats: int) -> tuple:
  """Compile and warm up fn(*args), then return (result as NumPy, median ms)."""
  result = np.asarray(jax.block_until_ready(fn(*args)))
  return result, median_ms(lambda: jax.block_until_ready(fn(*args)), repeats)


def parse_args() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=21, help="timed runs of the JAX kernel")
  parser.add_argument("--ref-repeats", type=int, default=5,
                      help="timed runs of each reference at the prior and target settings")
  parser.add_argument("--large-ref-repeats", type=int, default=3,
                      help="timed runs of the NumPy reference at the large setting")
  parser.add_argument("--sklearn-large-repeats", type=int, default=1,
                      help="timed runs of the sklearn-style reference at the large setting "
                           "(0 skips it)")
  parser.add_argument("--blas-threads", type=int, default=0,
                      help="BLAS threads for the references (0: library default). 1 is steadier "
                           "when other processes share the CPUs: multi-threaded OpenBLAS then "
                           "slows down many times over")
  parser.add_argument("--seed", type=int, default=0)
  return parser.parse_args()


def main() -> None:
  args = parse_args()
  with threadpool_limits(limits=args.blas_threads or None, user_api="blas"):
    run(args)


def run(args: argparse.Namespace) -> None:
  """Check and time every setting, then print the table."""
  rng = np.random.default_rng(args.seed)
  rows, notes = [], []
  ref_times = {}
  for name, n, d, k in SETTINGS:
    points = rng.standard_normal((n, d)).astype(np.float32)
    fn = functools.partial(greedy_k_center, k=k)
    got, jax_ms = time_jax(fn, (jnp.asarray(points),), args.repeats)
    check(name, got, points, k)
    large = name == "large"
    numpy_ms = median_ms(lambda: greedy_k_center_numpy(points, k),
                         args.large_ref_repeats if large else args.ref_repeats)
    sklearn_repeats = args.sklearn_large_repeats if large else args.ref_repeats
    sklearn_ms = (median_ms(lambda: greedy_k_center_sklearn(points, k), sklearn_repeats)
                  if sklearn_repeats > 0 else float("nan"))
    if large:
      notes.append(f"large: NumPy reference timed {args.large_ref_repeats}x, sklearn-style "
                   + (f"{sklearn_repeats}x (slow, O(n k^2 d))" if sklearn_repeats else "skipped"))
    ref_times[name] = numpy_ms, sklearn_ms
    rows.append((f"{name} n={n} d={d} k={k}", jax_ms, numpy_ms, sklearn_ms))

  _, n, d, k = SETTINGS[1]
  sets = rng.standard_normal((BATCH, n, d)).astype(np.float32)
  batched = jax.jit(jax.vmap(functools.partial(greedy_k_center, k=k)))
  got, jax_ms = time_jax(batched, (jnp.asarray(sets),), args.repeats)
  for b in range(BATCH):
    check(f"vmap set {b}", got[b], sets[b], k)
  rows.append((f"target vmap x{BATCH}, per set", jax_ms / BATCH, *ref_times["target"]))
  notes.append(f"vmap row: JAX time of the batch / {BATCH}; reference times are the target row's")

  notes.append("BLAS threads for the references: " + (str(args.blas_threads) if args.blas_threads
                                                      else "library default"))
  report(rows, notes)


def report(rows: list, notes: list) -> None:
  """Print the environment, the table and the notes."""
  device = jax.devices()[0]
  print(f"jax {jax.__version__} | device: {device.platform} {device.device_kind} | "
        f"{os.cpu_count()} CPUs | {platform.processor() or platform.machine()}")
  print("indices identical to the NumPy reference at every setting")
  header = ("setting", "jax ms", "numpy ms", "sklearn ms", "numpy/jax", "sklearn/jax")
  print(f"{header[0]:<32}" + "".join(f"{h:>12}" for h in header[1:]))
  for name, jax_ms, numpy_ms, sklearn_ms in rows:
    print(f"{name:<32}{jax_ms:>12.3f}{numpy_ms:>12.2f}{sklearn_ms:>12.1f}"
          f"{numpy_ms / jax_ms:>12.1f}{sklearn_ms / jax_ms:>12.1f}")
  for note in notes:
    print(f"note: {note}")


if __name__ == "__main__":
  main()
