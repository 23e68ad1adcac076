"""tfds datasets fetched on first use (`config.data.download`), against a local HTTP server: a
registered builder whose one download URL is served on 127.0.0.1 stands in for CIFAR-10."""
import hashlib
import io
import time

import numpy as np
import pytest

from smallgan_jax.data import images
from tests.local_http import closed_port, loopback_only, server  # pylint: disable=unused-import

tfds = pytest.importorskip("tensorflow_datasets")

NAME = "smallgan_served_images"
IMAGES = (40 * np.arange(6, dtype=np.uint8)[:, None, None, None]
          + np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3) % 40)  # Image i: 40 i + ...
LABELS = np.array([0, 1, 2, 0, 1, 2])


def served_file() -> bytes:
  out = io.BytesIO()
  np.savez(out, images=IMAGES, labels=LABELS)
  return out.getvalue()


class SmallganServedImages(tfds.core.GeneratorBasedBuilder):
  """6 images downloaded from `URL` (set by each test), with their size and sha256 known."""
  VERSION = tfds.core.Version("1.0.0")
  URL = ""
  __module__ = NAME  # As images_test's builder: tfds looks up a package's code path otherwise.

  @property
  def url_infos(self):
    body = served_file()
    return {self.URL: tfds.core.download.checksums.UrlInfo(
        size=len(body), checksum=hashlib.sha256(body).hexdigest(), filename="served.npz")}

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(8, 8, 3)),
        "label": tfds.features.ClassLabel(num_classes=3)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(dl_manager.download(self.URL))}

  def _generate_examples(self, path):
    with np.load(path) as npz:
      for i, (image, label) in enumerate(zip(npz["images"], npz["labels"])):
        yield i, {"image": image, "label": int(label)}


@pytest.fixture
def served(server, monkeypatch):
  """The builder's file on the local server; the builder counted as downloadable."""
  url, handler = server
  handler.files["/served.npz"] = served_file()
  monkeypatch.setattr(SmallganServedImages, "URL", f"{url}/served.npz")
  monkeypatch.setattr(images, "DOWNLOADABLE", (*images.DOWNLOADABLE, NAME))
  return handler


def source(data_dir, **overrides):
  return images.get_source(images.data_config(source="tfds", name=NAME, tfds_data_dir=str(data_dir),
                                              resolution=8, channels=3, **overrides))


def served_order(read):
  """The served index of each image `read` (tfds stores examples in an order of its own)."""
  return read[:, 0, 0, 0] // 40


def test_a_missing_dataset_is_downloaded_once_and_read_by_index(served, tmp_path):
  first = source(tmp_path)
  assert first.random_access  # Prepared as array_record.
  read = first.images(np.arange(6))
  order = served_order(read)
  assert sorted(order) == list(range(6))
  np.testing.assert_array_equal(read, IMAGES[order])
  np.testing.assert_array_equal(first.labels(np.arange(6)), LABELS[order])
  assert served.requests == ["/served.npz"]
  np.testing.assert_array_equal(source(tmp_path).images(np.arange(6)), read)
  assert served.requests == ["/served.npz"]  # The second start reads what the first prepared.


def test_download_false_refuses_in_one_line_and_touches_nothing(served, tmp_path):
  with pytest.raises(ValueError) as e:
    source(tmp_path, download=False)
  assert str(e.value) == (
      f"tfds dataset '{NAME}' is not prepared: looked for {tmp_path}/{NAME}/1.0.0 (downloads are "
      f"off: --config.data.download=False); prepare it on a machine with internet with `tfds build "
      f"{NAME} --data_dir={tmp_path} --file_format=array_record` and copy it there, or set "
      "--config.data.tfds_data_dir to a prepared copy (e.g. gs://BUCKET/tensorflow_datasets)")
  assert served.requests == [] and not list(tmp_path.iterdir())


def test_offline_fails_in_one_line_within_seconds(served, monkeypatch, tmp_path):
  port = closed_port()
  monkeypatch.setattr(SmallganServedImages, "URL", f"http://127.0.0.1:{port}/served.npz")
  start = time.monotonic()
  with pytest.raises(ValueError) as e:
    source(tmp_path)
  assert time.monotonic() - start < 10
  message = str(e.value)
  assert message.startswith(f"tfds dataset '{NAME}' is not prepared in {tmp_path}/{NAME}/1.0.0 and "
                            f"cannot be downloaded: 127.0.0.1:{port} did not answer (")
  assert message.endswith("--config.data.download=False skips this check") and "\n" not in message
  assert not tfds.builder(NAME, data_dir=str(tmp_path)).is_prepared()


def test_a_corrupted_download_is_refused_and_nothing_is_prepared(served, tmp_path):
  served.files["/served.npz"] = served_file()[:-1] + b"x"  # Same size, another sha256.
  with pytest.raises(ValueError) as e:
    source(tmp_path)
  assert str(e.value).startswith(f"tfds could not download and prepare '{NAME}' in {tmp_path}/")
  assert "\n" not in str(e.value)
  assert not tfds.builder(NAME, data_dir=str(tmp_path)).is_prepared()


def test_a_dataset_tfds_cannot_fetch_keeps_the_instructions_and_touches_no_network(tmp_path):
  with pytest.raises(ValueError) as e:
    images.get_source(images.data_config(source="tfds", name="lsun/church_outdoor",
                                         tfds_data_dir=str(tmp_path)))
  assert str(e.value).startswith("tfds dataset 'lsun/church_outdoor' is not prepared: looked for "
                                 f"{tmp_path}/lsun/church_outdoor/3.1.0; prepare it on a machine")
  assert not list(tmp_path.iterdir())
