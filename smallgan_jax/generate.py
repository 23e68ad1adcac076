"""Writes samples of a run's checkpoint for other tools.

  python -m smallgan_jax.generate --workdir=workdirs/fmnist --num=50000 --out=samples/
  python -m smallgan_jax.generate --workdir=W --step=5000 --num=50000 --out=samples.npz

`--out` a folder: one PNG per sample (000000.png, ...), what pytorch-fid, clean-fid and
torch-fidelity read; `--out` ending in `.npz`: one uint8 NHWC array `arr_0`, what OpenAI's ADM
evaluator reads. Beside it, `<out>_grid.png` shows the first 64. The samples come from
`runs.load_generator`, i.e. as evaluation generates them (EMA weights, standing batch-norm
statistics), on every local device, from `--seed`'s prior latents, written as they are made so
that memory stays bounded (but for the .npz, which holds them all).
"""
import concurrent.futures
import os

from absl import app, flags, logging
import jax
import numpy as np

from smallgan_jax import checkpointing, features, runs, sampling
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


def generate(workdir: str, step, num: int, out: str, seed: int = 0) -> str:
  """Writes `num` samples of the run's checkpoint to `out`; returns the grid's path."""
  config = runs.read_config(workdir)
  if config.dataset != "images":
    raise ValueError(f"--workdir={workdir!r} holds a run on {config.dataset!r}: generate writes "
                     "images (use runs.load_generator for other samples)")
  if num < 1:
    raise ValueError(f"--num={num}: expected a positive number of samples")
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
    checkpointing.write_atomically(checkpointing.workdir_path(out),
                                   lambda f: np.savez(f, arr_0=np.concatenate(parts)))
  return grid_path(out)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    grid = generate(FLAGS.workdir, FLAGS.step, FLAGS.num, FLAGS.out, FLAGS.seed)
  except ValueError as e:  # Bad input (incl. runs.RunError): one line.
    raise SystemExit(f"FATAL {e}") from None
  print(f"Wrote {FLAGS.num} samples to {FLAGS.out}; the first {GRID} in {grid}")


def define_flags() -> None:
  runs.define_checkpoint_flags("Samples to write.")
  flags.DEFINE_string("out", None, "A folder for PNGs, or a file ending in .npz.")
  flags.DEFINE_integer("seed", 0, "Seed of the latents.")
  flags.mark_flags_as_required(["out"])


if __name__ == "__main__":
  define_flags()
  app.run(main)
