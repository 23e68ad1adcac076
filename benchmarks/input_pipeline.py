"""Images per second that the host's candidate stream (`data/pipeline.py`) delivers.

Two sources, at a few thread counts, with the train step's draw (n_dis sets of n candidates per
step and device, `steps_in_flight` steps ahead), consumed as fast as they come:

- idx: Fashion-MNIST from its idx files (28x28x1, in memory: a gather per step), the real files
  of Debian's `dataset-fashion-mnist` package by default (`--idx_dir`);
- folder: a folder of JPEGs that this script writes into a temporary folder (`--folder_images`
  smooth random images of `--jpeg_size` px, the size of many photo datasets' files), decoded,
  centre-cropped and resized to `--resolution` (128, SAGAN's size) when drawn.

  python benchmarks/input_pipeline.py
  python benchmarks/input_pipeline.py --threads 1 2 4 --steps=20 --n=512

Then, side by side in the same run, the train step of `configs/fashion_mnist_dcgan.py` on the
idx source (`--step_steps` steps; 0 skips it): its rate fed by the pipeline (the trainer's own
`ImageDataset.batches`) against the same step fed one ready-made device batch over and over, the
images/s it consumes, and the ratio of the two rates (goal >= 0.95).
"""
import argparse
import os
import sys
import tempfile
import time

import jax
import numpy as np
from PIL import Image

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from configs import fashion_mnist_dcgan  # pylint: disable=g-import-not-at-top
from smallgan_jax import datasets, distributed, train, validation  # pylint: disable=g-import-not-at-top
from smallgan_jax.data import images, pipeline  # pylint: disable=g-import-not-at-top

SOURCES = ("idx", "folder")


def write_jpegs(folder: str, count: int, size: int, seed: int = 0) -> None:
  """`count` smooth random RGB JPEGs of size x (size * 5 // 4) (a landscape, so they are cropped),
  in subfolders of 500."""
  rng = np.random.default_rng(seed)
  for i in range(count):
    low = rng.integers(0, 256, (8, 10, 3), np.uint8)
    image = Image.fromarray(low).resize((size * 5 // 4, size), Image.Resampling.BICUBIC)
    noise = rng.integers(-12, 13, (size, size * 5 // 4, 3))
    pixels = np.clip(np.asarray(image, np.int16) + noise, 0, 255).astype(np.uint8)
    sub = os.path.join(folder, f"{i // 500:03d}")
    os.makedirs(sub, exist_ok=True)
    Image.fromarray(pixels).save(os.path.join(sub, f"{i:06d}.jpg"), quality=90)


def images_per_second(source: images.ImageSource, threads: int, args: argparse.Namespace) -> float:
  """Images/s of one device's stream over at least `args.steps` steps and `args.min_seconds`, after
  `steps_in_flight` steps of warm-up."""
  with pipeline.CandidateStream(source, seed=0, device_indices=[0], n_dis=args.n_dis, n=args.n,
                                start_step=1, steps_in_flight=args.steps_in_flight,
                                num_threads=threads) as stream:
    for _ in range(args.steps_in_flight):
      stream.next()
    start, steps = time.perf_counter(), 0
    while steps < args.steps or time.perf_counter() - start < args.min_seconds:
      stream.next()
      steps += 1
    elapsed = time.perf_counter() - start
  return steps * args.n_dis * args.n / elapsed


def steps_per_second(step, state, inputs, steps: int) -> tuple[float, object]:
  """Steps/s of `step` over `steps` steps after 2 warm-up steps, each fed `next(inputs)`, with
  the trainer's bound on the steps in flight (it waits for step t - 2 before step t)."""
  pending = []
  for i in range(steps + 2):
    if i == 2:
      jax.block_until_ready(state)
      start = time.perf_counter()
    state, metrics = step(state, *next(inputs))
    pending.append(metrics)
    if len(pending) > 2:
      jax.block_until_ready(pending.pop(0))
  jax.block_until_ready(state)
  return steps / (time.perf_counter() - start), state


def train_step_rates(idx_dir: str, steps: int) -> tuple[float, float, int]:
  """(steps/s fed by the pipeline, steps/s fed a ready-made batch, images per step) of the
  Fashion-MNIST config's train step on this machine's devices."""
  config = fashion_mnist_dcgan.get_config()
  config.data.idx_dir = idx_dir
  dataset = datasets.get_dataset(config)
  mesh = distributed.device_mesh()
  step = train.make_train_step(config, dataset, mesh, streamed=True)
  state = train.replicated_state(config, dataset, mesh)
  fed = dataset.batches(config, mesh, 1)
  ready = next(fed)
  forever = iter(lambda: ready, None)
  ready_rate, state = steps_per_second(step, state, forever, steps)
  fed_rate, _ = steps_per_second(step, state, fed, steps)
  fed.close()
  images_per_step = config.n_dis * pipeline.num_candidates(config, mesh.size) * mesh.size
  return fed_rate, ready_rate, images_per_step


def non_negative(text: str) -> float:
  """An argparse `type`: a finite number >= 0, else a one-line usage error."""
  try:
    value = float(text)
  except ValueError:
    value = None
  if not validation.NON_NEGATIVE.ok(value):
    raise argparse.ArgumentTypeError(f"{text!r}: expected {validation.NON_NEGATIVE.expected}")
  return value


def parse_args(argv=None) -> argparse.Namespace:
  positive_int = validation.flag_type(validation.POSITIVE_INT)
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
  parser.add_argument("--threads", type=positive_int, nargs="+", default=[1, 2, 4],
                      help="thread counts to measure")
  parser.add_argument("--steps", type=positive_int, default=20,
                      help="steps timed per setting, at least")
  parser.add_argument("--min_seconds", type=non_negative, default=1.0,
                      help="seconds timed per setting, at least")
  parser.add_argument("--n", type=positive_int, default=512,
                      help="candidates per set (factor_target * per-device batch)")
  parser.add_argument("--n_dis", type=positive_int, default=1, help="sets per step")
  parser.add_argument("--steps_in_flight", type=positive_int, default=2)
  parser.add_argument("--idx_dir", default=images.IDX_DIRS["fashion_mnist"],
                      help="folder of Fashion-MNIST's idx files")
  parser.add_argument("--folder_images", type=positive_int, default=2000,
                      help="JPEGs written for the folder source")
  parser.add_argument("--jpeg_size", type=positive_int, default=256,
                      help="height of the written JPEGs (width: 5/4 of it)")
  parser.add_argument("--resolution", type=positive_int, default=128,
                      help="the folder source's resolution")
  parser.add_argument("--step_steps", type=validation.flag_type(validation.NON_NEGATIVE),
                      default=100,
                      help="train steps timed per feeding (0: skip the train-step side)")
  args = parser.parse_args(argv)
  if "folder" in args.sources and args.n > args.folder_images:
    parser.error(f"--n={args.n}: expected at most --folder_images={args.folder_images} (a set "
                 "holds distinct images)")
  if "idx" in args.sources:
    try:
      args.idx = images.IdxSource("fashion_mnist", "train", args.idx_dir, 28, 1)
    except ValueError as e:
      parser.error(f"--idx_dir={args.idx_dir!r}: {e}")
  return args


def main() -> None:
  args = parse_args()
  print(f"{os.cpu_count()} CPU cores; per step: {args.n_dis} x {args.n} candidates, "
        f"{args.steps_in_flight} steps in flight; {args.steps} steps timed per row")
  print("source | threads | images/s")
  if "idx" in args.sources:
    for threads in args.threads:
      rate = images_per_second(args.idx, threads, args)
      print(f"idx {args.idx.name} {args.idx.shape} | {threads} | {rate:,.0f}", flush=True)
  if "folder" in args.sources:
    with tempfile.TemporaryDirectory() as folder:
      start = time.perf_counter()
      write_jpegs(folder, args.folder_images, args.jpeg_size)
      size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(folder)
                 for f in files)
      print(f"(wrote {args.folder_images} JPEGs of {args.jpeg_size}x{args.jpeg_size * 5 // 4}, "
            f"{size / 2**20:.1f} MiB, in {time.perf_counter() - start:.1f} s)", flush=True)
      source = images.FolderSource("jpegs", folder, args.resolution, 3)
      for threads in args.threads:
        rate = images_per_second(source, threads, args)
        print(f"folder {source.shape} | {threads} | {rate:,.0f}", flush=True)
  if args.step_steps and "idx" in args.sources:
    fed, ready, per_step = train_step_rates(args.idx_dir, args.step_steps)
    print(f"train step of configs/fashion_mnist_dcgan.py on {jax.device_count()} "
          f"{jax.devices()[0].platform} device(s), {per_step} candidate images a step:")
    print(f"  fed by the pipeline: {fed:.2f} steps/s ({fed * per_step:,.0f} images/s consumed); "
          f"ready-made device batch: {ready:.2f} steps/s; ratio {fed / ready:.3f}")


if __name__ == "__main__":
  main()
