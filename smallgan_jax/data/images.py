"""Image datasets with random access, for the streaming candidate pipeline (`data/pipeline.py`).

An `ImageSource` hands out uint8 images of one fixed shape (H, W, C) by dataset index, in any
order: the pipeline draws a few thousand random indices per step, so every source needs random
access, not a sequential reader. `get_source(config.data)` builds the source an image config names:

- `TfdsSource` (`source="tfds"`): any TensorFlow Datasets image dataset by name and split
  (`cifar10`, `lsun/church_outdoor`, `celeb_a`, ...) from a prepared tfds data dir, local or
  `gs://`. One that tfds can fetch itself (`DOWNLOADABLE`: CIFAR-10, MNIST, Fashion-MNIST) and
  that is not prepared yet is downloaded and prepared as `array_record` on first use, unless
  `download` is False (see "Missing data" below). A dataset prepared as `array_record` (or `parquet`) is read through
  `builder.as_data_source(split)`: true random access, decoded per index, nothing held in memory,
  so it is the way for large datasets (`tfds build NAME --file_format=array_record`). A dataset
  prepared as `tfrecord` (tfds' default) can only be read in sequence, so its split is read once,
  resized and held in memory, as `tfds.load(..., download=False)` would (`builder.as_dataset`,
  never `download_and_prepare`); above `MAX_IN_MEMORY_BYTES` at the config's resolution the
  source refuses, naming the array_record command, instead of filling the host's memory.
- `FolderSource` (`source="folder"`): a local folder of .png/.jpg/.jpeg files, searched recursively
  (hidden files and folders skipped); index i is the i-th path in sorted order (paths relative to
  the folder). Each image is decoded with PIL when drawn, centre-cropped to a square and resized
  to the resolution (JPEGs are decoded at a reduced scale first where the resolution allows).
- `IdxSource` (`source="idx"`): the MNIST family's idx files (`train-images-idx3-ubyte[.gz]`,
  `train-labels-idx1-ubyte[.gz]`, `t10k-...` for the test split) in one folder, read into memory.
  Splits: `train`, `test`, and `all`, the two pooled, a derived split with its own indices:
  0 ... n_train - 1 are the train split's images and n_train ... n_train + n_test - 1 the test
  split's, each in file order (test image j is `all` image n_train + j). Its name is
  "<name>/all", so a cache keyed on the source's name keeps its indices apart.

Fashion-MNIST by name: `source="idx"`, `name="fashion_mnist"`, with `idx_dir` left empty, reads
Debian's package (`apt-get install -y dataset-fashion-mnist` puts its four idx `.gz` files in
`/usr/share/datasets/fashion-mnist`). The idx files are read where they lie rather than imported
into a tfds data dir: the whole dataset is 30 MB compressed and decodes into memory in 1-2 seconds,
so a one-time import step would only add a copy to keep in sync, and no tfds builder would have
to be run. Another folder of idx files (MNIST, KMNIST, ...) is `idx_dir=/path` with any name.

All sources share `fit_image`: centre crop to a square, resize (bicubic, antialiased) to
(resolution, resolution), convert to 1 (luma) or 3 channels; an image already of that shape is
returned as it is.

Missing data: a dataset in `DOWNLOADABLE` that is not prepared is fetched by tfds
(`download_and_prepare`, its own progress bars) after a check, with a `CONNECT_TIMEOUT` of 10 s,
that the hosts it downloads from answer; offline, that check fails within seconds, in one line.
Any other missing dataset, or any with `download=False` (machines without internet; a Cloud TPU
reading a `gs://` copy), raises `ValueError` with one line naming the dataset, where it was looked
for and how to prepare it, within seconds and before anything is downloaded. LSUN is not fetched:
tfds' LSUN download URLs no longer serve it.
"""
import contextlib
import gzip
import os
import socket
import struct
import threading
import urllib.parse
from typing import Any, Optional, Protocol, runtime_checkable

import ml_collections
import numpy as np
from absl import logging
from PIL import Image

SOURCES = ("tfds", "folder", "idx")
IDX_SPLITS = ("train", "test", "all")
FOLDER_SPLITS = ("train",)  # A folder is one split: all of its images.
CHANNELS = (1, 3)
# Where a source="idx" dataset named here is read from when `idx_dir` is empty (Debian's package).
IDX_DIRS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}
IDX_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# A tfrecord-prepared tfds split larger than this at the config's resolution is refused rather
# than loaded into memory: it should be prepared as array_record, which is read per index.
MAX_IN_MEMORY_BYTES = 8 * 2**30
# tfds datasets that tfds downloads and prepares itself, by name without config or version.
DOWNLOADABLE = ("cifar10", "mnist", "fashion_mnist")
CONNECT_TIMEOUT = 10.0  # Seconds, for the reachability check and each read of a download.


def data_config(**overrides: Any) -> ml_collections.ConfigDict:
  """The `config.data` block of an image config, with its defaults; `overrides` set fields.

  source:         "tfds", "folder" or "idx" (see the module docstring).
  name:           tfds: the dataset's tfds name, optionally with a config and version
                  ("cifar10", "lsun/church_outdoor", "celeb_a:2.1.0"); idx: the dataset's name
                  ("fashion_mnist" finds Debian's files by itself); folder: any name for it. With
                  the split it names the source ("cifar10/train"), e.g. in the embedding cache.
  split:          tfds: a tfds split ("train", "test", "train[:90%]"); idx: "train", "test" or
                  "all" (train then test); folder: "train" (the whole folder).
  tfds_data_dir:  where tfds datasets are prepared: a folder or a gs:// URL; "" for tfds' default
                  ($TFDS_DATA_DIR, else ~/tensorflow_datasets).
  download:       tfds: download and prepare a `DOWNLOADABLE` dataset there on first use; False
                  refuses in one line instead (no network is touched).
  folder:         the image folder, for source="folder".
  idx_dir:        the folder of idx files, for source="idx"; "" for the name's default (IDX_DIRS).
  resolution:     images are centre-cropped and resized to resolution x resolution.
  channels:       1 (grayscale) or 3 (RGB); sources are converted to it.
  num_threads:    host threads that decode, resize and gather candidates; 0 for one per CPU core
                  (at most 32). It does not change what is drawn.

  Unset paths are "" rather than None: ml_collections cannot override a None field from the
  command line (`--config.data.tfds_data_dir=gs://...`).
  """
  config = ml_collections.ConfigDict({
      "source": "tfds", "name": "cifar10", "split": "train", "tfds_data_dir": "",
      "download": True, "folder": "", "idx_dir": "", "resolution": 32, "channels": 3, "num_threads": 0})
  config.update(overrides)
  return config


@runtime_checkable
class ImageSource(Protocol):
  """A dataset of uint8 images of one shape, by index (0 ... len - 1), with random access."""

  name: str  # "<dataset>/<split>", e.g. "fashion_mnist/train".
  shape: tuple[int, int, int]  # (H, W, C) after resize and crop.

  def __len__(self) -> int:
    ...

  def images(self, indices: np.ndarray) -> np.ndarray:
    """uint8 (len(indices), H, W, C), in the order given (indices may repeat). Thread-safe."""
    ...

  def labels(self, indices: np.ndarray) -> np.ndarray:
    """int64 (len(indices),) class labels; raises ValueError if the source has none."""
    ...


def _mode(channels: int) -> str:
  if channels not in CHANNELS:
    raise ValueError(f"channels={channels!r}: expected one of {CHANNELS}")
  return "L" if channels == 1 else "RGB"


def fit_pil(image: Image.Image, resolution: int, channels: int) -> np.ndarray:
  """A PIL image, centre-cropped to a square and resized to (resolution, resolution, channels)."""
  image = image.convert(_mode(channels))
  w, h = image.size
  side = min(w, h)
  left, top = (w - side) // 2, (h - side) // 2
  if w != h:  # Cropped first: resizing a box of the image would blend in pixels beside it.
    image = image.crop((left, top, left + side, top + side))
  if side != resolution:
    image = image.resize((resolution, resolution), Image.Resampling.BICUBIC)
  return np.asarray(image, np.uint8).reshape(resolution, resolution, channels)


def fit_image(image: np.ndarray, resolution: int, channels: int) -> np.ndarray:
  """A uint8 (h, w), (h, w, 1), (h, w, 3) or (h, w, 4) array as (resolution, resolution,
  channels): centre crop to a square, bicubic resize, grayscale <-> RGB (alpha dropped)."""
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.shape == (resolution, resolution, channels) and image.dtype == np.uint8:
    return image
  if image.shape[-1] == 1 and channels == 3 and image.shape[:2] == (resolution, resolution):
    return np.repeat(image, 3, axis=-1)
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  return fit_pil(pil, resolution, channels)


def _fit_all(images: np.ndarray, resolution: int, channels: int) -> np.ndarray:
  """`fit_image` over a stack of equal-shaped images (no copy when they fit already)."""
  shape = (resolution, resolution, channels)
  if images.ndim == 3:
    images = images[..., None]
  if images.shape[1:] == shape:
    return images
  out = np.empty((len(images), *shape), np.uint8)
  for i, image in enumerate(images):
    out[i] = fit_image(image, resolution, channels)
  return out


class ArraySource:
  """A source held in memory: images already fitted, (N, H, W, C) uint8, and optional labels."""

  def __init__(self, name: str, images: np.ndarray, labels: Optional[np.ndarray],
               missing_labels: str = "has no labels"):
    self.name = name
    self.shape = tuple(images.shape[1:])
    self._images = images
    self._labels = labels
    self._missing_labels = missing_labels

  def __len__(self) -> int:
    return len(self._images)

  def images(self, indices: np.ndarray) -> np.ndarray:
    return self._images[np.asarray(indices)]

  def labels(self, indices: np.ndarray) -> np.ndarray:
    if self._labels is None:
      raise ValueError(f"{self.name} {self._missing_labels}")
    return self._labels[np.asarray(indices)]


# --- idx files (MNIST family) ---------------------------------------------------------------------

_IDX_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: str) -> np.ndarray:
  """The uint8 array in an idx file (gzipped if its name ends in .gz), shaped as its header says."""
  try:
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError.
    raise ValueError(f"cannot read idx file {path}: {e}") from None
  if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
    raise ValueError(f"{path} is not an idx file of unsigned bytes "
                     f"(its first bytes are {data[:4].hex() or 'missing'})")
  ndim = data[3]
  header = 4 + 4 * ndim
  dims = struct.unpack(f">{ndim}I", data[4:header]) if len(data) >= header else None
  body = np.frombuffer(data, np.uint8, offset=min(header, len(data)))
  if dims is None or body.size != int(np.prod(dims)):
    raise ValueError(f"{path} is truncated or corrupt: its header says {dims}, it holds "
                     f"{body.size} bytes of data")
  return body.reshape(dims)


def _find_idx(idx_dir: str, split: str, kind: str) -> Optional[str]:
  """The path of a split's images (kind "images", idx3) or labels ("labels", idx1), if present."""
  stem = f"{_IDX_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
  for name in (stem, stem + ".gz"):
    if os.path.isfile(os.path.join(idx_dir, name)):
      return os.path.join(idx_dir, name)
  return None


def _idx_missing(name: str, idx_dir: str, split: str) -> str:
  stem = f"{_IDX_PREFIX[split]}-images-idx3-ubyte[.gz]"
  package = IDX_PACKAGES.get(name)
  prepare = (f"install them with `apt-get install -y {package}` or set " if package else "set ")
  return (f"idx dataset {name!r} not found: looked for {stem} in {idx_dir}; {prepare}"
          "--config.data.idx_dir to a folder holding its train-/t10k-images-idx3-ubyte[.gz] and "
          "-labels-idx1-ubyte[.gz] files")


class IdxSource(ArraySource):
  """An MNIST-family dataset from its idx files, in memory (see the module docstring)."""

  def __init__(self, name: str, split: str, idx_dir: str, resolution: int, channels: int):
    if split not in IDX_SPLITS:
      raise ValueError(f"idx dataset {name!r} has no split {split!r}: expected one of "
                       f"{IDX_SPLITS}")
    idx_dir = idx_dir or IDX_DIRS.get(name, "")
    if not idx_dir:
      raise ValueError(f"idx dataset {name!r} has no default folder (known: {sorted(IDX_DIRS)}): "
                       "set --config.data.idx_dir to the folder of its idx files")
    images, labels = [], []
    for part in (("train", "test") if split == "all" else (split,)):
      path = _find_idx(idx_dir, part, "images")
      if path is None:
        raise ValueError(_idx_missing(name, idx_dir, part))
      x = read_idx(path)
      if x.ndim != 3:
        raise ValueError(f"{path} holds a {x.shape} array: expected (images, height, width)")
      images.append(_fit_all(x, resolution, channels))
      label_path = _find_idx(idx_dir, part, "labels")
      if label_path is not None:
        y = read_idx(label_path)
        if y.shape != (len(x),):
          raise ValueError(f"{label_path} holds {y.shape} labels for the {len(x)} images of "
                           f"{path}")
        labels.append(y.astype(np.int64))
    all_labels = np.concatenate(labels) if len(labels) == len(images) else None
    super().__init__(f"{name}/{split}", np.concatenate(images) if len(images) > 1 else images[0],
                     all_labels, f"has no label files in {idx_dir}")


# --- folders of image files -----------------------------------------------------------------------


def list_images(folder: str) -> list[str]:
  """The .png/.jpg/.jpeg files under `folder` (recursively; hidden ones skipped), relative to it,
  sorted: the index order of a FolderSource."""
  paths = []
  for root, dirs, files in os.walk(folder, followlinks=True):
    dirs[:] = [d for d in dirs if not d.startswith(".")]
    paths.extend(os.path.relpath(os.path.join(root, f), folder) for f in files
                 if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
  return sorted(p.replace(os.sep, "/") for p in paths)


class FolderSource:
  """A local folder of images, decoded when drawn (see the module docstring)."""

  def __init__(self, name: str, folder: str, resolution: int, channels: int, split: str = "train"):
    where = (f"image folder for dataset {name!r} not found: {folder or '(none given)'}")
    how = ("put its images (.png/.jpg/.jpeg, any subfolders) in a local folder and set "
           "--config.data.folder to it")
    if split not in FOLDER_SPLITS:
      raise ValueError(f"folder dataset {name!r} has no split {split!r}: a folder is one split, "
                       f"{FOLDER_SPLITS[0]!r}")
    if not folder or not os.path.isdir(folder):
      raise ValueError(f"{where} is not a folder; {how}")
    self.paths = list_images(folder)
    if not self.paths:
      raise ValueError(f"image folder for dataset {name!r} holds no .png/.jpg/.jpeg files: "
                       f"searched {folder} recursively; {how}")
    self.folder = folder
    self.name = f"{name}/{split}"
    self.shape = (resolution, resolution, channels)
    self._mode = _mode(channels)

  def __len__(self) -> int:
    return len(self.paths)

  def load(self, index: int) -> np.ndarray:
    """Image `index`, decoded and fitted to `shape`."""
    path = os.path.join(self.folder, self.paths[index])
    resolution = self.shape[0]
    try:
      with Image.open(path) as image:
        image.draft(self._mode, (resolution, resolution))  # JPEG: decode at a reduced scale.
        return fit_pil(image, resolution, self.shape[2])
    except (OSError, ValueError, Image.DecompressionBombError) as e:
      raise ValueError(f"cannot read image {index} of {self.name}, {path}: {e}") from None

  def images(self, indices: np.ndarray) -> np.ndarray:
    out = np.empty((len(indices), *self.shape), np.uint8)
    for i, index in enumerate(np.asarray(indices)):
      out[i] = self.load(int(index))
    return out

  def labels(self, indices: np.ndarray) -> np.ndarray:
    raise ValueError(f"{self.name} has no labels (a folder source is unlabelled)")


# --- TensorFlow Datasets --------------------------------------------------------------------------


def _one_line(error: Exception) -> str:
  return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _tfds_how(name: str, data_dir: str) -> str:
  return (f"prepare it on a machine with internet with `tfds build {name} --data_dir={data_dir} "
          "--file_format=array_record` and copy it there, or set --config.data.tfds_data_dir to a "
          "prepared copy (e.g. gs://BUCKET/tensorflow_datasets)")


def downloadable(name: str) -> bool:
  """Whether tfds fetches the dataset `name` ("cifar10", "mnist:3.0.1", ...) by itself."""
  return name.split(":")[0].split("/")[0] in DOWNLOADABLE


def _unreachable(urls: Any) -> Optional[str]:
  """The first of `urls`' hosts that does not accept a connection within `CONNECT_TIMEOUT`, with
  the reason; None if all do."""
  parsed = [urllib.parse.urlparse(url) for url in urls]
  for host, port in sorted({(p.hostname, p.port or (443 if p.scheme == "https" else 80))
                            for p in parsed}):
    try:
      socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
      return f"{host}:{port} did not answer ({_one_line(e)})"
  return None


@contextlib.contextmanager
def _socket_timeout(seconds: float):
  """Sockets opened meanwhile without a timeout of their own (tfds' downloader's) get `seconds`,
  so that a stalled connection fails instead of hanging the run."""
  before = socket.getdefaulttimeout()
  socket.setdefaulttimeout(seconds)
  try:
    yield
  finally:
    socket.setdefaulttimeout(before)


def download_and_prepare(builder: Any, name: str) -> None:
  """Has tfds download `name` and prepare it as array_record in `builder`'s data dir, once.
  Raises ValueError in one line when its hosts cannot be reached or the download fails."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  how = _tfds_how(name, builder.data_dir_root)
  blocked = _unreachable(builder.url_infos or {})
  if blocked is not None:
    raise ValueError(f"tfds dataset {name!r} is not prepared in {builder.data_dir} and cannot be "
                     f"downloaded: {blocked}; {how}; --config.data.download=False skips this "
                     "check")
  logging.info("tfds dataset %r is not prepared in %s: downloading and preparing it, once "
               "(--config.data.download=False turns this off)", name, builder.data_dir)
  try:
    with _socket_timeout(CONNECT_TIMEOUT):
      builder.download_and_prepare(file_format="array_record",
                                   download_config=tfds.download.DownloadConfig())
  except Exception as e:  # pylint: disable=broad-except  # requests', tfds' and OS errors alike.
    raise ValueError(f"tfds could not download and prepare {name!r} in {builder.data_dir} "
                     f"({type(e).__name__}: {_one_line(e)}); {how}") from None


class TfdsSource:
  """A tfds dataset's split, by random access or from memory (see the module docstring)."""

  def __init__(self, name: str, split: str, data_dir: str, resolution: int, channels: int,
               max_in_memory_bytes: int = MAX_IN_MEMORY_BYTES, download: bool = False):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    from tensorflow_datasets.core import file_adapters  # pylint: disable=g-import-not-at-top
    self.name = f"{name}/{split}"
    self.shape = (resolution, resolution, channels)
    # tfds' default: $TFDS_DATA_DIR as it was when tfds was imported, else ~/tensorflow_datasets.
    where = data_dir or tfds.core.constants.DATA_DIR
    try:
      # Construction reads metadata only: from the builder's code, or from the prepared files.
      builder = tfds.builder(name, data_dir=data_dir or None)
    except ValueError as e:  # DatasetNotFoundError, an unknown config or version, ...
      raise ValueError(f"tfds dataset {name!r} not found in tensorflow-datasets "
                       f"{tfds.__version__} nor prepared in {where} ({_one_line(e)}); "
                       f"{_tfds_how(name, where)}") from None
    if not builder.is_prepared():
      if not (download and downloadable(name)):
        off = " (downloads are off: --config.data.download=False)" if downloadable(name) else ""
        raise ValueError(f"tfds dataset {name!r} is not prepared: looked for {builder.data_dir}"
                         f"{off}; {_tfds_how(name, builder.data_dir_root)}")
      download_and_prepare(builder, name)
    features = builder.info.features
    if "image" not in features:
      raise ValueError(f"tfds dataset {name!r} has no 'image' feature (it has "
                       f"{sorted(features)}): expected an image dataset")
    try:
      self._size = int(builder.info.splits[split].num_examples)
    except (KeyError, ValueError) as e:
      raise ValueError(f"tfds dataset {name!r} has no split {split!r} (splits: "
                       f"{sorted(builder.info.splits)}): {_one_line(e)}") from None
    self._has_labels = "label" in features
    self.data_dir = builder.data_dir
    random_access = (set(builder.info.available_file_formats())
                     & set(file_adapters.FileFormat.with_random_access()))
    self.random_access = bool(random_access)
    self._memory = None
    if self.random_access:
      self._builder, self._split = builder, split
      self._local = threading.local()  # One data source (open files) per thread.
    else:
      needed = self._size * int(np.prod(self.shape))
      if needed > max_in_memory_bytes:
        raise ValueError(
            f"tfds dataset {name!r} is prepared as {builder.info.file_format.value} in "
            f"{builder.data_dir}, which has no random access, and its split {split!r} would take "
            f"{needed / 2**30:.1f} GiB in memory at {self.shape} (limit "
            f"{max_in_memory_bytes / 2**30:.1f} GiB): prepare it for random access with `tfds "
            f"build {name} --data_dir={builder.data_dir_root} --file_format=array_record`")
      self._memory = self._load(tfds, builder, split)

  def _load(self, tfds: Any, builder: Any, split: str) -> ArraySource:
    """The split read once in file order, fitted, into memory (tfrecord has no random access)."""
    ds = builder.as_dataset(split=split, shuffle_files=False)
    images = np.empty((self._size, *self.shape), np.uint8)
    labels = np.empty(self._size, np.int64) if self._has_labels else None
    count = 0
    for count, example in enumerate(tfds.as_numpy(ds), start=1):
      if count > self._size:
        raise ValueError(f"{self.name} holds more examples than its metadata's {self._size}")
      images[count - 1] = fit_image(example["image"], self.shape[0], self.shape[2])
      if labels is not None:
        labels[count - 1] = example["label"]
    if count != self._size:
      raise ValueError(f"{self.name} holds {count} examples, its metadata {self._size}")
    return ArraySource(self.name, images, labels, "has no 'label' feature")

  def _source(self, kind: str) -> Any:
    """This thread's random-access data source; kind "labels" skips decoding the images."""
    source = getattr(self._local, kind, None)
    if source is None:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
      decoders = {"image": tfds.decode.SkipDecoding()} if kind == "labels" else None
      source = self._builder.as_data_source(self._split, decoders=decoders)
      setattr(self._local, kind, source)
    return source

  def __len__(self) -> int:
    return self._size

  def images(self, indices: np.ndarray) -> np.ndarray:
    if self._memory is not None:
      return self._memory.images(indices)
    examples = self._source("images").__getitems__([int(i) for i in np.asarray(indices)])
    out = np.empty((len(examples), *self.shape), np.uint8)
    for i, example in enumerate(examples):
      out[i] = fit_image(example["image"], self.shape[0], self.shape[2])
    return out

  def labels(self, indices: np.ndarray) -> np.ndarray:
    if self._memory is not None:
      return self._memory.labels(indices)
    if not self._has_labels:
      raise ValueError(f"{self.name} has no 'label' feature")
    examples = self._source("labels").__getitems__([int(i) for i in np.asarray(indices)])
    return np.asarray([example["label"] for example in examples], np.int64)


def get_source(data: ml_collections.ConfigDict, split: Optional[str] = None) -> ImageSource:
  """The source `config.data` names (fields: `data_config`), or its split `split` if given (e.g.
  "test", for a classifier's test accuracy). Raises ValueError, in one line, for a dataset or
  split that is missing, naming where it was looked for and how to prepare it."""
  split = data.split if split is None else split
  if data.source == "tfds":
    return TfdsSource(data.name, split, data.tfds_data_dir, data.resolution, data.channels,
                      download=data.get("download", True))
  if data.source == "folder":
    return FolderSource(data.name, data.folder, data.resolution, data.channels, split)
  if data.source == "idx":
    return IdxSource(data.name, split, data.idx_dir, data.resolution, data.channels)
  raise ValueError(f"config.data.source={data.source!r}: expected one of {SOURCES}")
