"""Image grids a person can look at: generated samples tiled into one picture, and a step's
candidates with the core-set's picks framed."""
import math
from typing import Optional

from etils import epath
import numpy as np
from PIL import Image

PICK_COLOR = (0, 200, 60)  # Frames the candidates a core-set picked.


def to_uint8(samples: np.ndarray) -> np.ndarray:
  """Images in [-1, 1] -> uint8 pixels (NaN -> 0)."""
  pixels = np.round((np.nan_to_num(np.asarray(samples, np.float32), nan=-1.0) + 1) * 127.5)
  return np.clip(pixels, 0, 255).astype(np.uint8)


def tile(samples: np.ndarray, frames: Optional[np.ndarray] = None, border: int = 1) -> np.ndarray:
  """(n, H, W, C) images in [-1, 1] -> one uint8 grid, near square, each image in a cell with a
  white margin of `border` pixels.

  With `frames` ((n,) bool), the grid is RGB and the margin of each framed image is `PICK_COLOR`.
  """
  n, h, w, c = samples.shape
  cols = math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  pixels = to_uint8(samples)
  if frames is not None and c == 1:
    pixels, c = np.repeat(pixels, 3, axis=-1), 3
  ch, cw = h + 2 * border, w + 2 * border
  grid = np.full((rows * ch, cols * cw, c), 255, np.uint8)
  for i, image in enumerate(pixels):
    top, left = divmod(i, cols)[0] * ch, divmod(i, cols)[1] * cw
    if frames is not None and frames[i]:
      grid[top:top + ch, left:left + cw] = PICK_COLOR
    grid[top + border:top + border + h, left + border:left + border + w] = image
  return grid


def save_png(path: str, pixels: np.ndarray) -> str:
  """Writes uint8 (H, W, C) pixels as a PNG at `path` (local or gs://); returns `path`."""
  image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
  with epath.Path(path).open("wb") as f:
    image.save(f, format="PNG")
  return path


def save_image_grid(path: str, samples: np.ndarray) -> np.ndarray:
  """Writes the grid of `samples` as a PNG at `path`; returns the grid."""
  grid = tile(samples)
  save_png(path, grid)
  return grid
