"""Sample grids: generated images tiled into one PNG a person can look at."""
import math

from etils import epath
import numpy as np
from PIL import Image


def tile(samples: np.ndarray) -> np.ndarray:
  """(n, H, W, C) images in [-1, 1] -> one uint8 (rows*(H+1)+1, cols*(W+1)+1, C) grid, near
  square, with one-pixel borders."""
  n, h, w, c = samples.shape
  cols = math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  grid = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1, c), 255, np.uint8)
  pixels = np.clip(np.round((np.asarray(samples, np.float32) + 1) * 127.5), 0, 255)
  for i, image in enumerate(pixels.astype(np.uint8)):
    r, q = divmod(i, cols)
    grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = image
  return grid


def save_image_grid(path: str, samples: np.ndarray) -> str:
  """Writes the grid of `samples` as a PNG at `path` (local or gs://); returns `path`."""
  grid = tile(samples)
  image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  with epath.Path(path).open("wb") as f:
    image.save(f, format="PNG")
  return path
