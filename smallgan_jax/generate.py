"""Writes samples of a run's checkpoint for other tools.

  python -m smallgan_jax.generate --workdir=workdirs/fmnist --num=50000 --out=samples/
  python -m smallgan_jax.generate --workdir=W --step=5000 --num=50000 --out=samples.npz

`--out` a folder: one PNG per sample (000000.png, ...), what pytorch-fid, clean-fid and
torch-fidelity read; `--out` ending in `.npz`: one uint8 NHWC array `arr_0`, what OpenAI's ADM
evaluator reads. Beside it, `<out>_grid.png` shows the first 64. The samples come from
`runs.load_generator`, i.e. as evaluation generates them (EMA weights, standing batch-norm
statistics), on every local device, from `--seed`'s prior latents, written as they are made so
that memory stays bounded (but for the .npz, which holds them all).

A toy run (a 2D mixture) writes its points: `--out` must end in `.npz`, which holds one float32
(num, 2) array under the same key, `arr_0`; beside it, `<out>_plot.png` is the scatter plot over
the mixture's modes that evaluation draws (`datasets.ToyMixture.save_samples`), with its metrics.
"""
import concurrent.futures
import os

from absl import app, flags, logging
import jax
import numpy as np

from smallgan_jax import checkpointing, datasets, features, runs, sampling
from smallgan_jax.metrics import grids

FLAGS = flags.FLAGS
CHUNK = 2_000  # Samples generated and written at a time.
GRID = 64


def latent_chunks(config, num: int, seed: int):
  """`num` prior latents of `seed` in chunks of `CHUNK` (the same whatever the chunking)."""
  rng = jax.random.PRNGKey(seed)
  for i, start in enumerate(range(0, num, CHUNK)):
    shape = (min(CHUNK, num - start), config.z_dim)
    yield np.asarray(sampling.sample_prior(jax.random.fold_in(rng, i), shape, config.prior))


def write_pngs(folder: str, start: int, pixels: np.ndarray,
               pool: concurrent.futures.Executor) -> None:
  """Writes `pixels` as `<folder>/<index>.png`, numbered from `start`, on `pool`'s threads."""
  paths = [os.path.join(folder, f"{start + i:06d}.png") for i in range(len(pixels))]
  list(pool.map(grids.save_png, paths, pixels))


def grid_path(out: str) -> str:
  return out.rstrip("/").removesuffix(".npz") + "_grid.png"


def plot_path(out: str) -> str:
  return out.removesuffix(".npz") + "_plot.png"


def write_npz(out: str, array: np.ndarray) -> None:
  """Writes `array` as `arr_0` of the .npz at `out` (ADM's key), atomically."""
  checkpointing.write_atomically(checkpointing.workdir_path(out),
                                 lambda f: np.savez(f, arr_0=array))


def checkpoint_step(workdir: str, config, step) -> int:
  """`step`, or the run's newest checkpoint step, after checking that the run holds it."""
  manager = checkpointing.create_manager(checkpointing.workdir_path(workdir), config)
  try:
    return runs.checkpoint_step(manager, workdir, step)
  finally:
    manager.close()


def generate_points(workdir: str, config, step, num: int, out: str, seed: int) -> str:
  """Writes `num` points of a toy run's checkpoint to the .npz `out` and evaluation's scatter plot
  of them (with its metrics) beside it; returns the plot's path."""
  if not out.endswith(".npz"):
    raise ValueError(f"--out={out!r}: a run on {config.dataset!r} writes its points as one .npz "
                     "(arr_0, (num, 2)), not a folder of PNGs; give a path ending in .npz")
  step = checkpoint_step(workdir, config, step)
  sample = runs.load_generator(workdir, step)
  points = np.concatenate([sample(z) for z in latent_chunks(config, num, seed)])
  write_npz(out, points)
  dataset = datasets.get_dataset(config)
  dataset.save_samples(plot_path(out), points, f"{config.dataset}, step {step}",
                       dataset.evaluate(points))
  return plot_path(out)


def generate(workdir: str, step, num: int, out: str, seed: int = 0) -> str:
  """Writes `num` samples of the run's checkpoint to `out`; returns the path of their picture
  (the grid of the first images, or a toy's scatter plot)."""
  config = runs.read_config(workdir)
  if num < 1:
    raise ValueError(f"--num={num}: expected a positive number of samples")
  if config.dataset != "images":
    return generate_points(workdir, config, step, num, out, seed)
  sample = runs.load_generator(workdir, step)
  as_npz = out.endswith(".npz")
  if not as_npz:
    os.makedirs(out, exist_ok=True)
  parts, written = [], 0
  with concurrent.futures.ThreadPoolExecutor() as pool:
    for z in latent_chunks(config, num, seed):
      images = sample(z)
      pixels = features.to_pixels(images)
      if written == 0:
        grids.save_image_grid(grid_path(out), images[:GRID])
      if as_npz:
        parts.append(pixels)
      else:
        write_pngs(out, written, pixels, pool)
      written += len(pixels)
      logging.info("Generated %d / %d samples", written, num)
  if as_npz:
    write_npz(out, np.concatenate(parts))
  return grid_path(out)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    picture = generate(FLAGS.workdir, FLAGS.step, FLAGS.num, FLAGS.out, FLAGS.seed)
  except ValueError as e:  # Bad input (incl. runs.RunError): one line.
    raise SystemExit(f"FATAL {e}") from None
  shown = f"the first {GRID}" if picture == grid_path(FLAGS.out) else "their scatter plot"
  print(f"Wrote {FLAGS.num} samples to {FLAGS.out}; {shown} in {picture}")


def define_flags() -> None:
  runs.define_checkpoint_flags("Samples to write.")
  flags.DEFINE_string("out", None, "A folder for PNGs, or a file ending in .npz (a toy "
                      "run's points: .npz only).")
  flags.DEFINE_integer("seed", 0, "Seed of the latents.")
  flags.mark_flags_as_required(["out"])


if __name__ == "__main__":
  define_flags()
  app.run(main)
