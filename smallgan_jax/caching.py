"""What every cache of the project shares: where it lives, how its files are named, how a file is
checked against the images it was computed from, and how a long computation reports progress.

The caches (the embedding arrays, `embeddings.py`; the trained classifiers,
`features/classifier.py`; the FID reference statistics and features, `metrics/fid.py`) keep their
files in one directory (`config.coreset.cache_dir`, local or gs://), each file beside a `.json` of
metadata written last: a `.json` marks its file complete. A file is reused while its metadata
matches the source (count, image shape, `sample_fingerprint`) and the settings that made it; a
mismatch raises `CacheError` in one line naming both values, and nothing is recomputed over it.

File names are built from `file_stem`s of the source and model names, so a name written once is
found again by every later version: tests/caching_test.py pins the names of the existing caches.
"""
import hashlib
import math
import os
import re
import time
from typing import Any, Sequence

from absl import logging
from etils import epath
import numpy as np

from smallgan_jax.data import images

DEFAULT_CACHE_DIR = "~/.cache/smallgan_jax"
SAMPLE_SIZE = 64        # Images re-hashed at every load (evenly spaced over the indices).
PROGRESS_EVERY_S = 5.0  # Seconds between progress lines.


class CacheError(ValueError):
  """A cached file that does not belong to this source or these settings; one line, both values."""


def cache_dir_path(cache_dir: str) -> epath.Path:
  """A URL (gs://...) kept as it is; a local path with ~ expanded, made absolute."""
  if "://" in cache_dir:
    return epath.Path(cache_dir)
  return epath.Path(os.path.abspath(os.path.expanduser(cache_dir)))


def file_stem(name: str) -> str:
  """A source or model name as a file-name part: "/" becomes ".", anything unusual "_"."""
  return re.sub(r"[^A-Za-z0-9_.+=-]", "_", name.replace("/", "."))


def meta_path(path: epath.Path) -> epath.Path:
  """The metadata beside a cached file: the same path with `.json`."""
  return epath.Path(path).with_suffix(".json")


def file_sha256(path: epath.Path, chunk: int = 1 << 24) -> str:
  """The sha256 of a file, read in chunks (weights files are hundreds of MB)."""
  digest = hashlib.sha256()
  with epath.Path(path).open("rb") as f:
    while block := f.read(chunk):
      digest.update(block)
  return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Fingerprints of a source's images, in index order.


def hash_header(digest: Any, count: int, shape: Sequence[int]) -> None:
  """Starts a fingerprint with the image count and shape, so that a reshaped source differs."""
  digest.update(f"uint8 images {count}x{'x'.join(str(s) for s in shape)};".encode())


def sample_indices(count: int, size: int = SAMPLE_SIZE) -> np.ndarray:
  """`size` indices spread evenly over [0, count), the first and last included."""
  return np.unique(np.linspace(0, count - 1, min(size, count)).round().astype(np.int64))


def sample_fingerprint(source: images.ImageSource, size: int = SAMPLE_SIZE) -> str:
  """sha256 of the count, the image shape and the images at `sample_indices`: what every load
  re-hashes (a few images, instead of the whole split)."""
  digest = hashlib.sha256()
  hash_header(digest, len(source), source.shape)
  digest.update(np.ascontiguousarray(source.images(sample_indices(len(source), size)),
                                     np.uint8).tobytes())
  return digest.hexdigest()


def full_fingerprint(source: images.ImageSource, batch: int = 4096) -> str:
  """sha256 of the count, the image shape and every image in index order (a pass over the
  data)."""
  digest = hashlib.sha256()
  hash_header(digest, len(source), source.shape)
  for start in range(0, len(source), batch):
    indices = np.arange(start, min(start + batch, len(source)))
    digest.update(np.ascontiguousarray(source.images(indices), np.uint8).tobytes())
  return digest.hexdigest()


class Progress:
  """Logs `done/total` with the rate and the time left, at most every `every_s` seconds; the rate
  counts from `initial` done at construction (a resumed run's step)."""

  def __init__(self, total: int, what: str, unit: str = "images",
               every_s: float = PROGRESS_EVERY_S, initial: int = 0):
    self.total, self.what, self.unit, self.every_s = total, what, unit, every_s
    self.initial = initial
    self.start = self.last = time.monotonic()

  def update(self, done: int) -> None:
    now = time.monotonic()
    if now - self.last < self.every_s and done < self.total:
      return
    self.last = now
    elapsed = max(now - self.start, 1e-9)
    rate = (done - self.initial) / elapsed
    eta = (self.total - done) / rate if rate > 0 else math.inf
    logging.info("%s: %d/%d %s (%.1f%%), %.1f %s/s, %.0f s elapsed, ETA %s", self.what, done,
                 self.total, self.unit, 100.0 * done / max(self.total, 1), rate, self.unit,
                 elapsed, "unknown" if math.isinf(eta) else f"{eta:.0f} s")
