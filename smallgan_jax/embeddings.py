"""The precomputed embedding array of a training split (Small-GAN, Alg. 2), built once and reused.

The target core-set picks real images by the distances between their embeddings. Computing an
embedding network on `factor * batch` candidates every step would cost more than the GAN step, so
one pass over the split computes every image's embedding, projects it to `embedding_dim` with the
seeded Gaussian matrix of `coreset.random_projection` (Johnson-Lindenstrauss), and stores one
float32 array (count, dim) whose row i belongs to dataset index i. Training looks rows up by the
streamed indices, on the host (`Embeddings.rows`), and runs the target core-set on them.

Files, in `config.coreset.cache_dir` (local, or gs://...; written atomically, aside then renamed):

    <source>.<model>.<d32|raw>.seed<S>.npy    the array (count, dim), float32
    <source>.<model>.<d32|raw>.seed<S>.json   its metadata; written last, it marks the array done

`<source>` is the image source's name with "/" as "." (`fashion_mnist.train`); a derived split
(train and test pooled) is its own source, with its own name and index scheme. `<model>` is
`pixels`, `inception` or `<classifier network>-<classes>` (`classifier2-all`). At load the
metadata is checked against the source and the config: dataset, image count and shape, embedding
model, its classes and weights' sha256, dimension, projection seed, and a sha256 of a fixed
sample of the images; any difference refuses to train with one line naming both values
(`EmbeddingCacheError`). It never rebuilds over
an array it refuses: delete the two files to rebuild. The cache directory, names and fingerprints
are `caching.py`'s; the embedding networks are those of `smallgan_jax.features`.

On several processes, process 0 builds a missing array and the others wait for it at a barrier
(`jax.experimental.multihost_utils.sync_global_devices`); the cache directory must then be one all
hosts see (gs://...). The array can also be built ahead of training, of the images the config
trains on (with `anomaly_class`, the normal training part of its anomaly split):

    python -m smallgan_jax.embeddings --config=configs/fashion_mnist_dcgan.py [--verify]

docs/embeddings.md describes the design, the fingerprints and the measured classifier.
"""
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import numbers
import os
import sys
import time
from typing import Any, Callable, Optional, Sequence

from absl import app, flags, logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from smallgan_jax import caching, checkpointing, coreset, features
from smallgan_jax.data import anomaly, images
from smallgan_jax.features import classifier, inception

MODELS = ("inception", *classifier.RECIPES, "pixels")
FORMAT = 1
# `config.coreset.<key>`: value taken where the key is absent.
DEFAULTS = {
    "embedding": "inception",         # One of MODELS.
    "embedding_dim": 32,              # Projected width; None keeps the raw embedding.
    "projection_seed": 0,             # Seeds the projection matrix (not config.seed: one array
                                      # serves every GAN seed).
    "embedding_classes": None,        # `classifier`: class ids it trains on; None: all.
    "cache_dir": caching.DEFAULT_CACHE_DIR,  # Local or gs://.
    "inception_weights": "",          # `inception`: the FID Inception's converted weights
                                      # ("": `features.inception.DEFAULT_WEIGHTS`).
}
BUILD_BATCH = features.DEFAULT_BATCH  # Images embedded per call: the FID passes' batch shape, so
                                     # an inception array is the same bit for bit whether built
                                     # alone or in the one pass of `reference_pass`.


class EmbeddingCacheError(caching.CacheError):
  """A stored array that does not belong to this dataset or config; one line, both values."""


@dataclasses.dataclass(frozen=True)
class Settings:
  """The `config.coreset` values that decide the array (see `DEFAULTS`)."""
  model: str = DEFAULTS["embedding"]
  dim: Optional[int] = DEFAULTS["embedding_dim"]
  seed: int = DEFAULTS["projection_seed"]
  classes: Optional[tuple[int, ...]] = None
  cache_dir: str = caching.DEFAULT_CACHE_DIR
  inception_weights: Optional[str] = None

  def __post_init__(self):
    if self.model not in MODELS:
      raise ValueError(f"config.coreset.embedding={self.model!r}: expected one of {MODELS}")
    if self.dim is not None and (isinstance(self.dim, bool) or not isinstance(self.dim, int)
                                 or self.dim < 1):
      raise ValueError(f"config.coreset.embedding_dim={self.dim!r}: expected a positive integer "
                       "or None")


def settings_from_config(config: ml_collections.ConfigDict) -> Settings:
  """Reads `config.coreset.*` (`DEFAULTS` where a key or the whole section is absent); the
  networks' files as the scores read them (`features.network_files`)."""
  section = config.get("coreset") or {}
  value = {key: section.get(key, default) for key, default in DEFAULTS.items()}
  classes = value["embedding_classes"]
  if classes is not None and (isinstance(classes, (str, bytes)) or not all(
      isinstance(c, numbers.Integral) and not isinstance(c, bool) and c >= 0 for c in classes)):
    # `--config.coreset.embedding_classes=None` on the command line gives (None,).
    raise ValueError(f"config.coreset.embedding_classes={classes!r}: expected a tuple of class "
                     "ids (integers >= 0), or None for all classes")
  files = features.network_files(config)
  return Settings(model=value["embedding"], dim=value["embedding_dim"],
                  seed=int(value["projection_seed"]),
                  classes=None if classes is None else tuple(int(c) for c in classes),
                  cache_dir=files.cache_dir, inception_weights=files.inception_weights)


# ---------------------------------------------------------------------------------------------
# The array's path.


def model_tag(settings: Settings) -> str:
  """The embedding model as a file-name part: `pixels`, `inception` or, for a classifier network,
  `<network>-<classes>`."""
  if settings.model in classifier.RECIPES:
    return f"{settings.model}-{classifier.classes_tag(settings.classes)}"
  return settings.model


def cache_path(settings: Settings, source_name: str) -> epath.Path:
  """The array's path (`.npy`); its metadata is the same path with `.json`."""
  dim = "raw" if settings.dim is None else f"d{settings.dim}"
  stem = f"{caching.file_stem(source_name)}.{model_tag(settings)}.{dim}.seed{settings.seed}"
  return caching.cache_dir_path(settings.cache_dir) / f"{stem}.npy"


# ---------------------------------------------------------------------------------------------
# Embedding models: images (uint8, (b, H, W, C)) -> float32 (b, raw_dim).


@dataclasses.dataclass(frozen=True)
class Embedder:
  """An embedding model: uint8 images (b, H, W, C) -> float32 (b, raw_dim), and what identifies
  it in the array's metadata."""
  embed: Callable[[np.ndarray], Any]
  weights: Optional[str] = None          # Path of the weights file, if any.
  weights_sha256: Optional[str] = None
  info: dict = dataclasses.field(default_factory=dict)  # Recorded in the metadata.


@jax.jit
def _pixels(pixels: jax.Array) -> jax.Array:
  return pixels.reshape(pixels.shape[0], -1).astype(jnp.float32) / 255.0


def _inception_weights(settings: Settings) -> epath.Path:
  """The FID Inception's converted weights: `inception_weights`, or the converter's default
  output path when it is empty."""
  return epath.Path(inception.resolve_weights_path(settings.inception_weights))


def _inception_embedder(settings: Settings) -> Embedder:
  """The FID Inception's 2048-d pool3 features (`features.pool3_features`)."""
  weights = _inception_weights(settings)
  if not weights.exists():
    raise ValueError(f"config.coreset.embedding='inception': "
                     f"{inception.missing_weights_message(str(weights))}")
  return Embedder(embed=functools.partial(features.pool3_features, weights_path=str(weights)),
                  weights=str(weights), weights_sha256=caching.file_sha256(weights))


def _classifier_embedder(settings: Settings, source: images.ImageSource,
                         test_source: Optional[images.ImageSource]) -> Embedder:
  """The seed-0 classifier's penultimate features, trained on `source` if not saved."""
  trained = classifier.load_or_train(settings.cache_dir, source, settings.classes,
                                     test_source=test_source,
                                     settings=classifier.recipe(settings.model),
                                     network=settings.model)
  return Embedder(embed=trained.features, weights=str(trained.path),
                  weights_sha256=trained.meta["sha256"],
                  info={"classes": trained.meta["classes"],
                        "test_accuracy": trained.meta.get("test_accuracy")})


def get_embedder(settings: Settings, source: images.ImageSource,
                 test_source: Optional[images.ImageSource] = None) -> Embedder:
  """The embedding model `settings.model`; a classifier is trained on `source` if not saved."""
  if settings.model == "pixels":
    return Embedder(embed=_pixels)
  if settings.model == "inception":
    return _inception_embedder(settings)
  return _classifier_embedder(settings, source, test_source)


def _stored_weights_sha256(settings: Settings, source_name: str) -> Optional[str]:
  """The checksum of the weights the config names now, computed without training anything; None
  where there is nothing to compare (pixels, or a classifier no longer saved)."""
  if settings.model == "inception":
    weights = _inception_weights(settings)
    return caching.file_sha256(weights) if weights.exists() else None
  if settings.model in classifier.RECIPES:
    return classifier.stored_sha256(settings.cache_dir, source_name, settings.classes,
                                    settings.model)
  return None


# ---------------------------------------------------------------------------------------------
# Build.


def _projector(raw_dim: int, settings: Settings) -> Callable[[Any], np.ndarray]:
  if settings.dim is None:
    return lambda x: np.asarray(x, np.float32)
  matrix = coreset.random_projection(jax.random.PRNGKey(settings.seed), raw_dim, settings.dim)
  project = jax.jit(coreset.project)
  return lambda x: np.asarray(project(jnp.asarray(x, jnp.float32), matrix))


def _read_chunk(source: images.ImageSource, indices: np.ndarray) -> np.ndarray:
  pixels = np.ascontiguousarray(source.images(indices), np.uint8)
  if pixels.shape != (len(indices), *source.shape):
    raise ValueError(f"{source.name}.images gave shape {pixels.shape} for {len(indices)} "
                     f"indices; expected {(len(indices), *source.shape)}")
  return pixels


class ArrayBuilder:
  """The array of `source` under `settings`, filled in index order from raw embeddings, batch by
  batch, with the full fingerprint of the images: what `compute` and the one pass of
  `reference_pass` share, so that both write the same array and metadata."""

  def __init__(self, source: images.ImageSource, settings: Settings, batch: int):
    self.source, self.settings, self.batch = source, settings, batch
    self.digest = hashlib.sha256()
    caching.hash_header(self.digest, len(source), source.shape)
    self.array, self.project, self.raw_dim, self.done = None, None, None, 0

  def hash_pixels(self, pixels: np.ndarray) -> None:
    """Adds the next images (uint8, in index order) to the fingerprint."""
    self.digest.update(np.ascontiguousarray(pixels, np.uint8).tobytes())

  def add(self, raw: Any, count: int) -> None:
    """Projects and stores the next `count` rows: the first `count` of `raw` (count or `batch`
    rows, raw_dim). Projected `batch` rows at a time (padded with zeros), so the projection
    compiles once and every builder projects at one shape."""
    if self.project is None:
      self.raw_dim = int(raw.shape[-1])
      self.project = _projector(self.raw_dim, self.settings)
      dim = self.raw_dim if self.settings.dim is None else self.settings.dim
      self.array = np.empty((len(self.source), dim), np.float32)
    if len(raw) < self.batch:
      raw = np.concatenate([np.asarray(raw, np.float32),
                            np.zeros((self.batch - len(raw), self.raw_dim), np.float32)])
    rows = self.project(raw)[:count]
    if not np.isfinite(rows).all():
      raise ValueError(f"the {self.settings.model} embedding of {self.source.name} images "
                       f"{self.done}..{self.done + count - 1} is not finite")
    self.array[self.done:self.done + count] = rows
    self.done += count

  def result(self) -> tuple[np.ndarray, str, int]:
    """(array (count, dim) float32, full fingerprint, raw dim), once every row is stored."""
    if self.done != len(self.source):
      raise ValueError(f"embedded {self.done} of the {len(self.source)} images of "
                       f"{self.source.name}")
    return self.array, self.digest.hexdigest(), self.raw_dim


def compute(source: images.ImageSource, embedder: Embedder, settings: Settings,
            batch: int = BUILD_BATCH) -> tuple[np.ndarray, str, int]:
  """One pass over `source`: (array (count, dim) float32, full fingerprint, raw dim).

  A thread reads the next chunk of images while the model embeds this one. Chunks are padded to
  `batch` images (rounded up to a multiple of the local devices, as `features.iter_features`
  does) so that the jitted model compiles once, at the shape of the FID passes.
  """
  count, batch = len(source), features.device_batch(batch)
  builder = ArrayBuilder(source, settings, batch)
  progress = caching.Progress(count, f"Embedding {source.name} ({model_tag(settings)}, "
                      f"{'raw' if settings.dim is None else settings.dim}-d)")
  chunk = lambda start: np.arange(start, min(start + batch, count))
  with concurrent.futures.ThreadPoolExecutor(1) as reader:
    pending = reader.submit(_read_chunk, source, chunk(0))
    for start in range(0, count, batch):
      pixels = pending.result()
      if start + batch < count:
        pending = reader.submit(_read_chunk, source, chunk(start + batch))
      builder.hash_pixels(pixels)
      padded = np.zeros((batch, *source.shape), np.uint8)
      padded[:len(pixels)] = pixels
      builder.add(embedder.embed(padded), len(pixels))
      progress.update(start + len(pixels))
  return builder.result()


def save(settings: Settings, source: images.ImageSource, embedder: Embedder, array: np.ndarray,
         fingerprint: str, raw_dim: int, started: float) -> epath.Path:
  """Writes `array` (`compute`'s, of `source` by `embedder`) and its metadata, overwriting any
  there; returns its path. `started`: when the computation began (`time.time()`)."""
  path = cache_path(settings, source.name)
  meta = {
      "format": FORMAT,
      "dataset": source.name,
      "count": len(source),
      "image_shape": list(source.shape),
      "fingerprint": fingerprint,
      "sample_fingerprint": caching.sample_fingerprint(source),
      "sample_size": caching.SAMPLE_SIZE,
      "model": settings.model,
      "model_info": embedder.info,
      "weights": embedder.weights,
      "weights_sha256": embedder.weights_sha256,
      "raw_dim": raw_dim,
      "embedding_dim": settings.dim,
      "projection_seed": settings.seed,
      "dtype": "float32",
      "array_sha256": hashlib.sha256(array.tobytes()).hexdigest(),
      "build_seconds": round(time.time() - started, 1),
  }
  checkpointing.write_atomically(path, lambda f: np.save(f, array, allow_pickle=False))
  # Last: a .json marks a complete array.
  checkpointing.write_json_atomically(caching.meta_path(path), meta)
  logging.info("Saved the %s embeddings of %s (%d x %d) to %s in %.0f s", model_tag(settings),
               source.name, *array.shape, path, meta["build_seconds"])
  return path


def build(settings: Settings, source: images.ImageSource,
          test_source: Optional[images.ImageSource] = None,
          batch: int = BUILD_BATCH) -> epath.Path:
  """Computes and saves the array and its metadata (overwriting any there); returns its path."""
  if len(source) < 1:
    raise ValueError(f"{source.name} has no images to embed")
  started = time.time()
  embedder = get_embedder(settings, source, test_source)
  return save(settings, source, embedder, *compute(source, embedder, settings, batch), started)


def needed(config: ml_collections.ConfigDict) -> bool:
  """Whether a run of `config` reads the array: its target core-set picks (factor_target > 1)."""
  return config.coreset.factor_target != 1


# ---------------------------------------------------------------------------------------------
# Load and check.


@dataclasses.dataclass(frozen=True)
class Embeddings:
  """The array (count, dim) float32 (row i: dataset index i) and its metadata."""
  array: np.ndarray
  meta: dict
  path: epath.Path

  @property
  def dim(self) -> int:
    return self.array.shape[1]

  def rows(self, indices: np.ndarray) -> np.ndarray:
    """The embeddings of dataset `indices` (any shape; float32 (*indices.shape, dim)), on the
    host, where the input pipeline draws the indices."""
    indices = np.asarray(indices)
    if indices.size and (indices.min() < 0 or indices.max() >= len(self.array)):
      raise IndexError(f"indices {indices.min()}..{indices.max()} out of range for the "
                       f"{len(self.array)} embeddings of {self.meta['dataset']}")
    return np.asarray(self.array[indices.reshape(-1)]).reshape(*indices.shape, self.dim)


def _refuse(path: epath.Path, what: str) -> EmbeddingCacheError:
  return EmbeddingCacheError(
      f"embedding cache {path} {what}; delete it and its .json to rebuild, or set "
      "config.coreset.cache_dir elsewhere")


def _dim_words(dim: Optional[int], raw_dim: Optional[int] = None) -> str:
  if dim is None:
    return f"raw ({raw_dim}-d)" if raw_dim else "raw"
  return f"{dim}-d"


def check(path: epath.Path, meta: dict, array_shape: tuple[int, ...], settings: Settings,
          source: images.ImageSource, weights_sha256: Optional[str]) -> None:
  """Raises EmbeddingCacheError, one line naming both values, where the stored array does not
  belong to `source` and `settings`."""
  def differs(what, stored, now):
    raise _refuse(path, f"was built for {what} {stored!r}; this run has {now!r}")

  if meta.get("format") != FORMAT:
    differs("metadata format", meta.get("format"), FORMAT)
  if meta["dataset"] != source.name:
    differs("dataset", meta["dataset"], source.name)
  if meta["count"] != len(source):
    raise _refuse(path, f"holds {meta['count']} embeddings; dataset {source.name!r} has "
                  f"{len(source)} images")
  if tuple(meta["image_shape"]) != tuple(source.shape):
    differs("image shape", tuple(meta["image_shape"]), tuple(source.shape))
  if meta["model"] != settings.model:
    raise _refuse(path, f"was built with embedding model {meta['model']!r}; "
                  f"config.coreset.embedding={settings.model!r}")
  if settings.model in classifier.RECIPES:
    stored = meta["model_info"].get("classes")
    now = None if settings.classes is None else list(settings.classes)
    if stored != now:
      raise _refuse(path, f"was built with a classifier of classes {stored}; "
                    f"config.coreset.embedding_classes={now}")
  if meta["embedding_dim"] != settings.dim or array_shape[1:] != (
      meta["raw_dim"] if settings.dim is None else settings.dim,):
    raise _refuse(path, f"holds {_dim_words(meta['embedding_dim'], meta['raw_dim'])} embeddings "
                  f"of shape {tuple(array_shape)}; config.coreset.embedding_dim={settings.dim!r}")
  if array_shape[0] != meta["count"]:
    raise _refuse(path, f"holds {array_shape[0]} rows; its metadata says {meta['count']}")
  if meta["projection_seed"] != settings.seed and settings.dim is not None:
    raise _refuse(path, f"was projected with seed {meta['projection_seed']}; "
                  f"config.coreset.projection_seed={settings.seed}")
  if weights_sha256 is not None and meta["weights_sha256"] != weights_sha256:
    raise _refuse(path, f"was built with {meta['model']} weights of sha256 "
                  f"{meta['weights_sha256']}; {meta['weights'] or 'the weights'} now has sha256 "
                  f"{weights_sha256}")
  fingerprint = caching.sample_fingerprint(source, meta["sample_size"])
  if meta["sample_fingerprint"] != fingerprint:
    raise _refuse(path, f"was built from other images of {source.name!r} (sample sha256 "
                  f"{meta['sample_fingerprint'][:16]}..., the dataset's now {fingerprint[:16]}...)")


def exists(path: epath.Path) -> bool:
  """Whether a complete array is there (its metadata, written last, is)."""
  return caching.meta_path(path).exists()


def load(settings: Settings, source: images.ImageSource, path: Optional[epath.Path] = None,
         verify_full: bool = False) -> Embeddings:
  """Loads the array of `settings` and `source` and checks it (`check`); `verify_full` also
  re-hashes every image and the array (a pass over the data). Local arrays are memory-mapped."""
  path = path or cache_path(settings, source.name)
  try:
    meta = json.loads(caching.meta_path(path).read_text())
  except (OSError, ValueError) as e:
    raise _refuse(path, f"has unreadable metadata ({type(e).__name__}: "
                  f"{' '.join(str(e).split())})") from None
  try:
    if "://" in str(path):
      with path.open("rb") as f:
        array = np.load(f, allow_pickle=False)
    else:
      array = np.load(os.fspath(path), mmap_mode="r", allow_pickle=False)
  except (OSError, ValueError) as e:
    raise _refuse(path, f"cannot be read ({type(e).__name__}: {' '.join(str(e).split())})"
                  ) from None
  if array.dtype != np.float32 or array.ndim != 2:
    raise _refuse(path, f"holds a {array.dtype} array of shape {array.shape}; expected float32 "
                  "(count, dim)")
  try:
    check(path, meta, array.shape, settings, source,
          _stored_weights_sha256(settings, source.name))
  except (KeyError, TypeError) as e:
    raise _refuse(path, f"has incomplete metadata ({type(e).__name__}: {e})") from None
  if verify_full:
    fingerprint = caching.full_fingerprint(source)
    if fingerprint != meta["fingerprint"]:
      raise _refuse(path, f"was built from other images of {source.name!r} (sha256 "
                    f"{meta['fingerprint']}, the dataset's now {fingerprint})")
    array_sha = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    if array_sha != meta["array_sha256"]:
      raise _refuse(path, f"has array sha256 {array_sha}; its metadata says "
                    f"{meta['array_sha256']}")
  logging.info("Loaded the %s embeddings of %s (%d x %d) from %s", meta["model"], source.name,
               *array.shape, path)
  return Embeddings(array=array, meta=meta, path=path)


def load_or_build(config: ml_collections.ConfigDict, source: images.ImageSource,
                  test_source: Optional[images.ImageSource] = None) -> Embeddings:
  """The checked embedding array of `source` for `config.coreset`, built first if missing.

  With several processes, process 0 builds and the others wait at a barrier, then load it.
  """
  settings = settings_from_config(config)
  path = cache_path(settings, source.name)
  if jax.process_index() == 0 and not exists(path):
    logging.info("No embeddings at %s: building them", path)
    build(settings, source, test_source)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"smallgan_embeddings:{path}")
    if not exists(path):
      raise EmbeddingCacheError(
          f"process {jax.process_index()} does not see the embedding cache {path} that process "
          "0 built: set config.coreset.cache_dir to a directory all hosts share (gs://...)")
  return load(settings, source, path)


# ---------------------------------------------------------------------------------------------
# Command line: python -m smallgan_jax.embeddings --config=...


def open_sources(config: ml_collections.ConfigDict
                 ) -> tuple[images.ImageSource, Optional[images.ImageSource]]:
  """The source a run of `config` trains on (`anomaly.training_sources`: with `anomaly_class`,
  the normal training part of the anomaly split) and, when `config.data` names a train split, the
  dataset's test split if it has one (for the classifier's test accuracy)."""
  if "data" not in config:
    raise ValueError(f"config.dataset={config.get('dataset')!r} has no images to embed (no "
                     "config.data block)")
  train_source = anomaly.training_sources(config).train
  test_source = None
  if config.data.split.split("[")[0] == "train":
    try:
      test_source = images.get_source(config.data, "test")
    except ValueError as e:
      logging.info("No test split for the classifier's test accuracy: %s", e)
  return train_source, test_source


def run(config: ml_collections.ConfigDict, verify: bool = False) -> Embeddings:
  """What the command does: builds the array of `config` if missing, loads and checks it (in full
  with `verify`), and prints one line saying where it is."""
  settings = settings_from_config(config)
  train_source, test_source = open_sources(config)
  path = cache_path(settings, train_source.name)
  if not exists(path):
    build(settings, train_source, test_source)
  loaded = load(settings, train_source, path, verify_full=verify)
  print(f"{loaded.path}: {loaded.array.shape[0]} x {loaded.dim} float32 embeddings of "
        f"{train_source.name} ({model_tag(settings)}), checked{' in full' if verify else ''}")
  return loaded


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {list(argv[1:])}")
  try:
    run(flags.FLAGS.config, flags.FLAGS.verify)
  except (ValueError, NotImplementedError) as e:  # Bad input or a refused cache: one line.
    sys.exit(f"FATAL {e}")


def define_flags() -> None:
  """The command's flags; defined only when it runs (main.py defines its own --config)."""
  config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
  flags.DEFINE_bool("verify", False, "Also re-hash every image and the array against the "
                    "stored fingerprints (a full pass over the data).")
  flags.mark_flags_as_required(["config"])


if __name__ == "__main__":
  define_flags()
  app.run(main)
