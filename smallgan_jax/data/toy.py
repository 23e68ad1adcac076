"""2D mixtures of Gaussians, the toy targets of paper Sec. 4.2.

The means are built once in NumPy (they are fixed by the config); samples are drawn with JAX so
the train step can draw fresh target candidates on the device inside its jitted program.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np

KINDS = ("grid", "ring")


def grid_means(num_modes: int, spacing: float = 2.0) -> np.ndarray:
  """Modes on a sqrt(M) x sqrt(M) square grid, `spacing` apart and centred on 0.

  The paper's grids have 25, 49, 64, 81 or 100 modes, spaced 2 apart; e.g. 25 modes lie at
  {-4, -2, 0, 2, 4}^2 and 36 at {-5, -3, -1, 1, 3, 5}^2. Returns (num_modes, 2) float32, row-major.
  """
  if num_modes < 1 or math.isqrt(num_modes) ** 2 != num_modes:
    raise ValueError(
        f"num_modes={num_modes} must be a perfect square (25, 36, ..., 100) for the grid mixture")
  side = math.isqrt(num_modes)
  axis = (np.arange(side) - (side - 1) / 2) * spacing
  xs, ys = np.meshgrid(axis, axis, indexing="ij")
  return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def ring_means(num_modes: int, radius: float = 2.0) -> np.ndarray:
  """`num_modes` means equally spaced on a circle of `radius`, the first at angle 0."""
  if num_modes < 1:
    raise ValueError(f"num_modes={num_modes} must be at least 1 for the ring mixture")
  angles = 2 * np.pi * np.arange(num_modes) / num_modes
  return (radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype(np.float32)


def mixture_means(kind: str, num_modes: int, spacing: float, radius: float) -> np.ndarray:
  """The means of the mixture `kind` ("grid" uses `spacing`, "ring" uses `radius`)."""
  if kind == "grid":
    return grid_means(num_modes, spacing)
  if kind == "ring":
    return ring_means(num_modes, radius)
  raise ValueError(f"mixture kind={kind!r} is not known; expected one of {list(KINDS)}")


def sample_mixture(rng: jax.Array, means: jax.Array, std: float, n: int) -> jax.Array:
  """n i.i.d. draws from the equal-weight mixture of isotropic Gaussians N(means[i], std^2 I).

  Jittable with `n` static; `means` and `std` may be traced (e.g. vmapped over several grids).
  Returns (n, D) float32, D = means.shape[1] (2 for the paper's mixtures).
  """
  means = jnp.asarray(means, jnp.float32)
  mode_rng, noise_rng = jax.random.split(rng)
  modes = jax.random.randint(mode_rng, (n,), 0, means.shape[0])
  noise = jax.random.normal(noise_rng, (n, means.shape[1]), jnp.float32)
  return means[modes] + jnp.asarray(std, jnp.float32) * noise
