"""Image sources (data/images.py) and the config.data checks, on tiny data made by the tests."""
import gzip
import os
import socket
import struct
import time

import numpy as np
from PIL import Image
import pytest

from smallgan_jax import validation
from smallgan_jax.data import images
from tests.validation_test import config_with


def write_idx(path, array):
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)
  with (gzip.open if path.endswith(".gz") else open)(path, "wb") as f:
    f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def idx_images(n, offset):
  """n 6x6 images whose pixels all hold their number, offset + i."""
  return np.broadcast_to((offset + np.arange(n, dtype=np.uint8))[:, None, None], (n, 6, 6))


@pytest.fixture
def idx_dir(tmp_path):
  """A train split of 5 images (gzipped, as Debian ships them) and a test split of 3 (plain)."""
  write_idx(str(tmp_path / "train-images-idx3-ubyte.gz"), idx_images(5, 0))
  write_idx(str(tmp_path / "train-labels-idx1-ubyte.gz"), np.arange(5, dtype=np.uint8) % 3)
  write_idx(str(tmp_path / "t10k-images-idx3-ubyte"), idx_images(3, 100))
  write_idx(str(tmp_path / "t10k-labels-idx1-ubyte"), np.array([7, 8, 9], np.uint8))
  return str(tmp_path)


def test_idx_splits_and_their_indices(idx_dir):
  train = images.IdxSource("tiny", "train", idx_dir, 6, 1)
  test = images.IdxSource("tiny", "test", idx_dir, 6, 1)
  pooled = images.IdxSource("tiny", "all", idx_dir, 6, 1)
  assert isinstance(pooled, images.ImageSource)
  assert (train.name, len(train), train.shape) == ("tiny/train", 5, (6, 6, 1))
  assert (test.name, len(test), pooled.name, len(pooled)) == ("tiny/test", 3, "tiny/all", 8)
  x = pooled.images(np.array([7, 0, 5, 4, 0]))  # In the order given, repeats included.
  assert x.dtype == np.uint8 and x.shape == (5, 6, 6, 1)
  np.testing.assert_array_equal(x[:, 0, 0, 0], [102, 0, 100, 4, 0])
  np.testing.assert_array_equal(pooled.labels(np.array([4, 5, 7])), [1, 7, 9])
  assert pooled.labels(np.array([0])).dtype == np.int64
  np.testing.assert_array_equal(test.images(np.array([1])), pooled.images(np.array([6])))


def test_idx_resized_to_rgb(idx_dir):
  data = images.data_config(source="idx", name="tiny", split="train", idx_dir=idx_dir,
                            resolution=8, channels=3)
  source = images.get_source(data, split="test")  # The config's other split.
  assert source.name == "tiny/test"
  x = source.images(np.arange(3))
  assert source.shape == (8, 8, 3) and x.shape == (3, 8, 8, 3) and x.dtype == np.uint8
  np.testing.assert_array_equal(x[:, 4, 4], [[100] * 3, [101] * 3, [102] * 3])


def test_idx_without_labels_raises_on_labels_only(idx_dir):
  os.remove(os.path.join(idx_dir, "train-labels-idx1-ubyte.gz"))
  source = images.IdxSource("tiny", "train", idx_dir, 6, 1)
  assert source.images(np.array([2])).shape == (1, 6, 6, 1)
  with pytest.raises(ValueError, match="tiny/train has no label files in"):
    source.labels(np.array([0]))


def test_missing_idx_dataset_is_one_line(tmp_path):
  with pytest.raises(ValueError) as e:
    images.IdxSource("fashion_mnist", "train", str(tmp_path / "none"), 28, 1)
  assert str(e.value) == (
      f"idx dataset 'fashion_mnist' not found: looked for train-images-idx3-ubyte[.gz] in "
      f"{tmp_path / 'none'}; install them with `apt-get install -y dataset-fashion-mnist` or set "
      "--config.data.idx_dir to a folder holding its train-/t10k-images-idx3-ubyte[.gz] and "
      "-labels-idx1-ubyte[.gz] files")


@pytest.mark.parametrize("contents,problem", [
    (b"\x00\x00\x0d\x03", "is not an idx file of unsigned bytes (its first bytes are 00000d03)"),
    (struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 6, 6) + bytes(40), "is truncated or corrupt")])
def test_corrupt_idx_file_is_one_line(tmp_path, contents, problem):
  (tmp_path / "train-images-idx3-ubyte").write_bytes(contents)
  with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")) as e:
    images.IdxSource("tiny", "train", str(tmp_path), 6, 1)
  assert "\n" not in str(e.value)


@pytest.mark.skipif(not os.path.isdir(images.IDX_DIRS["fashion_mnist"]),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_by_name():
  """Only where the package is installed: the real files, by name alone."""
  source = images.get_source(images.data_config(source="idx", name="fashion_mnist", split="test",
                                                resolution=28, channels=1))
  assert (source.name, len(source), source.shape) == ("fashion_mnist/test", 10000, (28, 28, 1))
  np.testing.assert_array_equal(source.labels(np.array([0, 1, 2])), [9, 2, 1])


def save(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path)


def test_fit_image_crops_the_centre_and_resizes():
  """A landscape image whose centre square is grey and whose sides are white: the crop keeps
  the grey square only."""
  x = np.full((8, 16, 3), 255, np.uint8)
  x[:, 4:12] = 50
  np.testing.assert_array_equal(images.fit_image(x, 4, 3), np.full((4, 4, 3), 50))
  assert images.fit_image(x, 8, 1).shape == (8, 8, 1)
  np.testing.assert_array_equal(images.fit_image(np.full((4, 4), 7, np.uint8), 4, 3),
                                np.full((4, 4, 3), 7))


def test_folder_source_recursive_sorted_and_fitted(tmp_path):
  save(tmp_path / "b" / "img.png", np.full((12, 10, 3), 20, np.uint8))
  save(tmp_path / "a.JPG", np.full((16, 16, 3), 200, np.uint8))
  save(tmp_path / "b" / "c" / "gray.png", np.full((8, 8), 90, np.uint8))
  save(tmp_path / ".hidden" / "x.png", np.zeros((8, 8, 3), np.uint8))
  save(tmp_path / "._a.png", np.zeros((8, 8, 3), np.uint8))
  (tmp_path / "notes.txt").write_text("not an image")
  source = images.get_source(images.data_config(source="folder", name="mine",
                                                folder=str(tmp_path), resolution=8, channels=3))
  assert source.paths == ["a.JPG", "b/c/gray.png", "b/img.png"]
  assert (source.name, len(source), source.shape) == ("mine/train", 3, (8, 8, 3))
  x = source.images(np.array([2, 0, 1, 2]))
  assert x.dtype == np.uint8 and x.shape == (4, 8, 8, 3)
  assert np.abs(x[:, 4, 4].astype(int) - [[20] * 3, [200] * 3, [90] * 3, [20] * 3]).max() <= 3
  with pytest.raises(ValueError, match="mine/train has no labels"):
    source.labels(np.array([0]))


def test_unreadable_image_names_its_path(tmp_path):
  (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
  source = images.FolderSource("mine", str(tmp_path), 8, 3)
  with pytest.raises(ValueError, match=f"cannot read image 0 of mine/train, {tmp_path}/broken.png"):
    source.images(np.array([0]))


def test_missing_or_empty_folder_is_one_line(tmp_path):
  with pytest.raises(ValueError) as e:
    images.FolderSource("ffhq", str(tmp_path / "none"), 8, 3)
  assert str(e.value) == (
      f"image folder for dataset 'ffhq' not found: {tmp_path / 'none'} is not a folder; put its "
      "images (.png/.jpg/.jpeg, any subfolders) in a local folder and set --config.data.folder "
      "to it")
  (tmp_path / "notes.txt").write_text("not an image")
  with pytest.raises(ValueError, match=f"holds no .png/.jpg/.jpeg files: searched {tmp_path} "):
    images.FolderSource("ffhq", str(tmp_path), 8, 3)


# --- tfds -----------------------------------------------------------------------------------------

tfds = pytest.importorskip("tensorflow_datasets")


class SmallganTinyImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """12 train and 5 test images of varying height; pixels hold the example's number."""
  VERSION = tfds.core.Version("1.0.0")
  # Not "tests.images_test": for a class in a package, tfds 4.9.10 looks up its code path with
  # `importlib_resources`, a package it does not install.
  __module__ = "smallgan_tiny_images"

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3)),
        "label": tfds.features.ClassLabel(num_classes=3)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(12), "test": self._generate_examples(5)}

  def _generate_examples(self, n):
    for i in range(n):
      yield i, {"image": np.full((8 + i % 4, 8, 3), 10 * i, np.uint8), "label": i % 3}


NAME = "smallgan_tiny_images"


@pytest.fixture(scope="module")
def tfds_dirs(tmp_path_factory):
  """The tiny dataset prepared offline, as tfrecord and as array_record, in two data dirs."""
  dirs = {}
  for file_format in ("tfrecord", "array_record"):
    dirs[file_format] = str(tmp_path_factory.mktemp(file_format))
    SmallganTinyImages(data_dir=dirs[file_format], file_format=file_format).download_and_prepare()
  return dirs


def test_tfds_both_formats_give_the_same_images(tfds_dirs):
  """array_record: read per index; tfrecord: read once into memory, in the same (file) order."""
  sources = {f: images.get_source(images.data_config(source="tfds", name=NAME, split="train",
                                                     tfds_data_dir=d, resolution=8, channels=3))
             for f, d in tfds_dirs.items()}
  assert sources["array_record"].random_access and not sources["tfrecord"].random_access
  indices = np.array([11, 0, 3, 3])
  for source in sources.values():
    assert (source.name, len(source), source.shape) == (f"{NAME}/train", 12, (8, 8, 3))
    x = source.images(indices)
    assert x.dtype == np.uint8 and x.shape == (4, 8, 8, 3)
    assert source.labels(indices).dtype == np.int64
  x = sources["array_record"].images(indices)
  np.testing.assert_array_equal(x, sources["tfrecord"].images(indices))
  numbers = x[:, 0, 0, 0] // 10
  assert len(set(numbers[:3])) == 3  # Three different examples.
  np.testing.assert_array_equal(sources["array_record"].labels(indices), numbers % 3)
  assert sorted(sources["tfrecord"].images(np.arange(12))[:, 0, 0, 0] // 10) == list(range(12))


def test_tfds_split_slices_and_grayscale(tfds_dirs):
  source = images.TfdsSource(NAME, "test[:3]", tfds_dirs["array_record"], 4, 1)
  assert len(source) == 3 and source.images(np.arange(3)).shape == (3, 4, 4, 1)


def test_tfds_too_large_for_memory_names_array_record(tfds_dirs):
  with pytest.raises(ValueError, match=f"tfds build {NAME} --data_dir=.* "
                     "--file_format=array_record") as e:
    images.TfdsSource(NAME, "train", tfds_dirs["tfrecord"], 64, 3, max_in_memory_bytes=1000)
  assert "would take 0.0 GiB in memory at (64, 64, 3)" in str(e.value)


def test_tfds_unknown_split_is_one_line(tfds_dirs):
  with pytest.raises(ValueError) as e:
    images.TfdsSource(NAME, "validation", tfds_dirs["array_record"], 8, 3)
  assert str(e.value).startswith(f"tfds dataset '{NAME}' has no split 'validation' (splits: "
                                 "['test', 'train'])")
  assert "\n" not in str(e.value)


@pytest.fixture
def no_downloads(monkeypatch):
  """Any download or network connection fails the test at once."""
  def refuse(*args, **kwargs):
    raise AssertionError("a download or connection was attempted")
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", refuse)
  monkeypatch.setattr(tfds.download.DownloadManager, "download", refuse)
  monkeypatch.setattr(socket.socket, "connect", refuse)
  monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("data_dir", ["explicit", "TFDS_DATA_DIR"])
def test_missing_tfds_dataset_fails_in_seconds_without_download(tmp_path, monkeypatch,
                                                                no_downloads, data_dir):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(tmp_path))  # Read at tfds' import.
  start = time.monotonic()
  with pytest.raises(ValueError) as e:
    images.get_source(images.data_config(
        source="tfds", name="cifar10", download=False,
        tfds_data_dir=str(tmp_path) if data_dir == "explicit" else ""))
  assert time.monotonic() - start < 10
  assert str(e.value) == (
      f"tfds dataset 'cifar10' is not prepared: looked for {tmp_path}/cifar10/3.0.2 (downloads "
      "are off: --config.data.download=False); prepare it "
      f"on a machine with internet with `tfds build cifar10 --data_dir={tmp_path} "
      "--file_format=array_record` and copy it there, or set --config.data.tfds_data_dir to a "
      "prepared copy (e.g. gs://BUCKET/tensorflow_datasets)")
  assert not os.listdir(tmp_path)  # Nothing written either.


def test_unknown_tfds_dataset_is_one_line(tmp_path, no_downloads):
  with pytest.raises(ValueError) as e:
    images.TfdsSource("no_such_dataset", "train", str(tmp_path), 8, 3)
  assert str(e.value).startswith(
      f"tfds dataset 'no_such_dataset' not found in tensorflow-datasets {tfds.__version__} nor "
      f"prepared in {tmp_path} (Dataset no_such_dataset not found.); prepare it")
  assert "\n" not in str(e.value)


# --- config.data checks (validation.DATA_FIELDS) ----------------------------------------------


def image_config(**data):
  """The small toy config with a `data` block (as an image config will have)."""
  flat = {f"data.{k}": v for k, v in {**images.data_config().to_dict(), **data}.items()}
  return config_with(flat)


@pytest.mark.parametrize("data", [
    {}, {"source": "tfds", "name": "lsun/church_outdoor", "tfds_data_dir": "gs://b/tfds"},
    {"source": "tfds", "name": "celeb_a:2.1.0", "split": "train[:90%]", "resolution": 64},
    {"source": "idx", "name": "fashion_mnist", "split": "all", "channels": 1, "resolution": 28},
    {"source": "idx", "name": "mnist", "idx_dir": "/data/mnist", "split": "test"},
    {"source": "folder", "name": "ffhq", "folder": "/data/ffhq", "num_threads": 8}])
def test_good_data_blocks_validate(data):
  validation.validate_config(image_config(**data), num_devices=1)


@pytest.mark.parametrize("data,message", [
    ({"source": "hub"}, "config.data.source='hub': expected one of ('tfds', 'folder', 'idx')"),
    ({"name": ""}, "config.data.name='': expected a dataset name (letters, digits and _.:/+-)"),
    ({"split": "train test"}, "config.data.split='train test': expected a split name without "
     "spaces"),
    ({"tfds_data_dir": None}, "config.data.tfds_data_dir=None: expected a folder or gs:// URL, or "
     "'' for the default"),
    ({"resolution": 0}, "config.data.resolution=0: expected an integer in [1, 4096]"),
    ({"resolution": 32.0}, "config.data.resolution=32.0: expected an integer in [1, 4096]"),
    ({"channels": 4}, "config.data.channels=4: expected one of (1, 3)"),
    ({"num_threads": -1}, "config.data.num_threads=-1: expected an integer in [0, 1024] (0: one "
     "per CPU core)"),
    ({"name": "CIFAR-10"}, "config.data.name='CIFAR-10': expected a tfds dataset name, e.g. "
     "'cifar10' or 'lsun/church_outdoor', for config.data.source='tfds'"),
    ({"source": "idx", "name": "fashion_mnist", "split": "validation"},
     "config.data.split='validation': expected one of ('train', 'test', 'all') for "
     "config.data.source='idx'"),
    ({"source": "idx", "name": "mnist"}, "config.data.idx_dir='': expected the folder of the idx "
     "files of config.data.name='mnist' (only ['fashion_mnist'] have a default)"),
    ({"source": "folder", "name": "ffhq"}, "config.data.folder='': expected the folder of the "
     "images for config.data.source='folder'"),
    ({"source": "folder", "name": "ffhq", "folder": "/x", "split": "test"},
     "config.data.split='test': expected 'train' (the whole folder) for "
     "config.data.source='folder'"),
])
def test_bad_data_values_are_one_line(data, message):
  with pytest.raises(ValueError) as e:
    validation.validate_config(image_config(**data), num_devices=1)
  assert str(e.value) == message


def test_unknown_and_missing_data_keys_are_named():
  config = image_config()
  config.data.resolutoin = 32
  with pytest.raises(ValueError) as e:
    validation.validate_config(config, num_devices=1)
  assert str(e.value) == "config.data.resolutoin=32: not a known key (config.data.resolution?)"
  del config.data["resolutoin"]
  del config.data["channels"]
  with pytest.raises(ValueError) as e:
    validation.validate_config(config, num_devices=1)
  assert str(e.value) == "config.data.channels is missing: expected one of (1, 3)"
