"""Tests for smallgan_jax.embeddings on tiny in-memory image sources: the array's build, reuse, host
lookup, metadata and fingerprints, each refusal at load (one line naming both values), the
multi-process protocol and the command line."""
import json
import os
import re

import jax
import ml_collections
import numpy as np
import pytest

from smallgan_jax import caching, coreset, embeddings, features


class ArraySource:
  """An in-memory image source (the `images.ImageSource` protocol) that counts the images it
  hands out."""

  def __init__(self, name, images, labels=None):
    self.name = name
    self._images = np.asarray(images, np.uint8)
    self._labels = (np.zeros(len(images), np.int64) if labels is None
                    else np.asarray(labels, np.int64))
    self.shape = self._images.shape[1:]
    self.served = 0

  def __len__(self):
    return len(self._images)

  def images(self, indices):
    indices = np.asarray(indices)
    self.served += len(indices)
    return self._images[indices]

  def labels(self, indices):
    return self._labels[np.asarray(indices)]


def mock_source(name="mock/train", n=40, shape=(6, 5, 1), seed=0):
  images = np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)
  return ArraySource(name, images)


def config_for(tmp_path, **coreset_values):
  values = {"embedding": "pixels", "embedding_dim": 8, "projection_seed": 3,
            "cache_dir": str(tmp_path / "cache"), **coreset_values}
  return ml_collections.ConfigDict({"coreset": values})


def assert_one_line_naming(error, *parts):
  message = str(error.value)
  assert "\n" not in message, message
  for part in parts:
    assert part in message, f"{part!r} not in {message!r}"


def test_build_projects_pixels_and_reuse_reads_only_the_sample(tmp_path):
  source = mock_source()
  config = config_for(tmp_path)
  built = embeddings.load_or_build(config, source)
  assert source.served >= len(source)

  assert built.array.dtype == np.float32 and built.array.shape == (40, 8)
  matrix = coreset.random_projection(jax.random.PRNGKey(3), 30, 8)
  want = np.asarray(coreset.project(source._images.reshape(40, -1) / 255.0, matrix))
  np.testing.assert_allclose(built.array, want, rtol=1e-5, atol=1e-6)
  path = embeddings.cache_path(embeddings.settings_from_config(config), source.name)
  assert built.path == path and path.name == "mock.train.pixels.d8.seed3.npy"
  assert sorted(os.listdir(path.parent)) == sorted([path.name, path.with_suffix(".json").name])

  meta = built.meta
  assert meta["dataset"] == "mock/train" and meta["count"] == 40 and meta["raw_dim"] == 30
  assert meta["image_shape"] == [6, 5, 1] and meta["model"] == "pixels"
  assert meta["embedding_dim"] == 8 and meta["projection_seed"] == 3
  assert meta["fingerprint"] == caching.full_fingerprint(source)
  assert meta["sample_fingerprint"] == caching.sample_fingerprint(source)

  source.served = 0
  mtime = os.stat(path).st_mtime_ns
  again = embeddings.load_or_build(config, source)
  assert source.served <= caching.SAMPLE_SIZE  # Reused: only the sample is re-hashed.
  assert os.stat(path).st_mtime_ns == mtime
  np.testing.assert_array_equal(again.array, built.array)
  indices = np.array([[3, 0], [39, 3]])
  np.testing.assert_array_equal(again.rows(indices), built.array[indices])
  with pytest.raises(IndexError, match="out of range"):
    again.rows(np.array([40]))


def test_raw_embedding_keeps_the_pixels(tmp_path):
  source = mock_source(shape=(4, 4, 3), n=9)
  built = embeddings.load_or_build(config_for(tmp_path, embedding_dim=None), source)
  assert built.path.name == "mock.train.pixels.raw.seed3.npy" and built.meta["raw_dim"] == 48
  np.testing.assert_allclose(built.array, source._images.reshape(9, -1) / 255.0, rtol=1e-6)


def test_build_does_not_depend_on_the_batch_size(tmp_path):
  source = mock_source(n=23)
  settings = embeddings.settings_from_config(config_for(tmp_path))
  first = embeddings.compute(source, embeddings.get_embedder(settings, source), settings, batch=5)
  second = embeddings.compute(source, embeddings.get_embedder(settings, source), settings,
                              batch=64)
  np.testing.assert_allclose(first[0], second[0], rtol=1e-6)
  assert first[1] == second[1] == caching.full_fingerprint(source)


def _copy_cache(settings_from, settings_to, name_from, name_to):
  """Puts the array of (settings_from, name_from) where (settings_to, name_to) looks for it."""
  source_path = embeddings.cache_path(settings_from, name_from)
  target = embeddings.cache_path(settings_to, name_to)
  target.write_bytes(source_path.read_bytes())
  caching.meta_path(target).write_text(caching.meta_path(source_path).read_text())


@pytest.mark.parametrize("change,parts", [
    ({"name": "other/train"}, ["was built for dataset 'mock/train'", "'other/train'"]),
    ({"embedding_dim": 16}, ["holds 8-d embeddings", "config.coreset.embedding_dim=16"]),
    ({"embedding_dim": None}, ["holds 8-d embeddings", "config.coreset.embedding_dim=None"]),
    ({"embedding": "inception"}, ["embedding model 'pixels'", "embedding='inception'"]),
    ({"projection_seed": 4}, ["projected with seed 3", "config.coreset.projection_seed=4"]),
])
def test_a_cache_of_another_config_or_dataset_is_refused(tmp_path, change, parts):
  source = mock_source()
  config = config_for(tmp_path)
  embeddings.load_or_build(config, source)
  name = change.pop("name", source.name)
  other = config_for(tmp_path, **change)
  _copy_cache(embeddings.settings_from_config(config), embeddings.settings_from_config(other),
              source.name, name)
  with pytest.raises(embeddings.EmbeddingCacheError) as error:
    embeddings.load_or_build(other, ArraySource(name, source._images))
  assert_one_line_naming(error, *parts, "delete it and its .json")


def test_a_dataset_of_another_count_or_shape_is_refused(tmp_path):
  source = mock_source()
  embeddings.load_or_build(config_for(tmp_path), source)
  grown = ArraySource(source.name, np.concatenate([source._images, source._images[:1]]))
  with pytest.raises(embeddings.EmbeddingCacheError) as error:
    embeddings.load_or_build(config_for(tmp_path), grown)
  assert_one_line_naming(error, "holds 40 embeddings", "'mock/train' has 41 images")
  reshaped = ArraySource(source.name, source._images.reshape(40, 5, 6, 1))
  with pytest.raises(embeddings.EmbeddingCacheError) as error:
    embeddings.load_or_build(config_for(tmp_path), reshaped)
  assert_one_line_naming(error, "was built for image shape (6, 5, 1); this run has (5, 6, 1)")


def test_other_images_are_refused_by_the_sample_and_the_full_check(tmp_path):
  source = mock_source(n=100)  # More than SAMPLE_SIZE: the sample misses some images.
  config = config_for(tmp_path)
  embeddings.load_or_build(config, source)
  settings = embeddings.settings_from_config(config)
  sampled = source._images.copy()
  sampled[0] ^= 1  # Index 0 is in every sample.
  with pytest.raises(embeddings.EmbeddingCacheError) as error:
    embeddings.load_or_build(config, ArraySource(source.name, sampled))
  assert_one_line_naming(error, "was built from other images of 'mock/train'", "sample sha256")

  unsampled = source._images.copy()
  missed = sorted(set(range(100)) - set(caching.sample_indices(100).tolist()))[0]
  unsampled[missed] ^= 1
  embeddings.load(settings, ArraySource(source.name, unsampled))  # The sample misses it...
  with pytest.raises(embeddings.EmbeddingCacheError) as error:  # ...the full check does not.
    embeddings.load(settings, ArraySource(source.name, unsampled), verify_full=True)
  assert_one_line_naming(error, "was built from other images", "the dataset's now")
  embeddings.load(settings, source, verify_full=True)


def test_tampered_files_are_refused(tmp_path):
  source = mock_source()
  config = config_for(tmp_path)
  built = embeddings.load_or_build(config, source)
  narrow = np.array(built.array[:, :4])
  os.remove(built.path)  # Not overwritten in place: `built.array` maps that file.
  np.save(os.fspath(built.path), narrow)
  with pytest.raises(embeddings.EmbeddingCacheError) as error:
    embeddings.load_or_build(config, source)
  assert_one_line_naming(error, "holds 8-d embeddings of shape (40, 4)")
  meta = dict(built.meta)
  del meta["dataset"]
  caching.meta_path(built.path).write_text(json.dumps(meta))
  with pytest.raises(embeddings.EmbeddingCacheError) as error:
    embeddings.load_or_build(config, source)
  assert_one_line_naming(error, "has incomplete metadata (KeyError: 'dataset')")
  caching.meta_path(built.path).write_text("{not json")
  with pytest.raises(embeddings.EmbeddingCacheError) as error:
    embeddings.load_or_build(config, source)
  assert_one_line_naming(error, "has unreadable metadata")


def test_an_array_without_metadata_is_rebuilt(tmp_path):
  # A build killed between the two renames leaves the array without its .json: not complete.
  source = mock_source()
  config = config_for(tmp_path)
  built = embeddings.load_or_build(config, source)
  want = np.array(built.array)
  caching.meta_path(built.path).unlink()
  os.remove(built.path)  # Not overwritten in place: `built.array` maps that file.
  np.save(os.fspath(built.path), np.zeros((2, 2), np.float32))
  np.testing.assert_array_equal(embeddings.load_or_build(config, source).array, want)


def test_other_processes_wait_for_process_0(tmp_path, monkeypatch):
  source = mock_source()
  config = config_for(tmp_path)
  path = embeddings.cache_path(embeddings.settings_from_config(config), source.name)
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  barriers = []

  def process_0_builds(name):  # What the barrier waits for: process 0's build.
    assert not embeddings.exists(path), "process 1 built the array"
    barriers.append(name)
    embeddings.build(embeddings.settings_from_config(config), source)

  monkeypatch.setattr(embeddings.multihost_utils, "sync_global_devices", process_0_builds)
  assert embeddings.load_or_build(config, source).array.shape == (40, 8)
  assert barriers == [f"smallgan_embeddings:{path}"]

  monkeypatch.setattr(embeddings.multihost_utils, "sync_global_devices", lambda name: None)
  with pytest.raises(embeddings.EmbeddingCacheError) as error:
    embeddings.load_or_build(config_for(tmp_path / "elsewhere"), source)
  assert_one_line_naming(error, "process 1 does not see the embedding cache",
                         "a directory all hosts share")


def test_settings_defaults_and_bad_values(tmp_path):
  settings = embeddings.settings_from_config(ml_collections.ConfigDict({"seed": 1}))
  assert settings == embeddings.Settings(model="inception", dim=32, seed=0, classes=None,
                                         cache_dir="~/.cache/smallgan_jax")
  assert str(embeddings.cache_path(settings, "a/b")) == os.path.expanduser(
      "~/.cache/smallgan_jax/a.b.inception.d32.seed0.npy")
  url = embeddings.settings_from_config(config_for(tmp_path, cache_dir="gs://bucket/cache"))
  assert str(embeddings.cache_path(url, "a/b")) == "gs://bucket/cache/a.b.pixels.d8.seed3.npy"
  classes = embeddings.Settings(model="classifier", classes=(0, 1, 2, 9))
  assert embeddings.cache_path(classes, "a/b").name == "a.b.classifier-0-1-2-9.d32.seed0.npy"
  with pytest.raises(ValueError, match=re.escape("config.coreset.embedding='clip': expected")):
    embeddings.settings_from_config(config_for(tmp_path, embedding="clip"))
  with pytest.raises(ValueError, match="embedding_dim=0: expected a positive integer or None"):
    embeddings.settings_from_config(config_for(tmp_path, embedding_dim=0))
  with pytest.raises(ValueError, match=re.escape("embedding_classes=(None,): expected a tuple")):
    embeddings.settings_from_config(config_for(tmp_path, embedding_classes=(None,)))


def test_inception_embeds_pool3_features_and_records_its_weights(tmp_path, monkeypatch):
  source = mock_source()
  missing = tmp_path / "missing.npz"
  with pytest.raises(ValueError) as error:
    embeddings.load_or_build(config_for(tmp_path, embedding="inception",
                                       inception_weights=str(missing)), source)
  assert_one_line_naming(error, "config.coreset.embedding='inception': FID Inception weights "
                         f"not found at {missing}")
  weights = tmp_path / "inception.npz"
  weights.write_bytes(b"stands in for the weights")
  calls = []

  def pool3_features(images, weights_path):  # A stand-in: the real one needs the weights.
    calls.append(weights_path)
    return np.tile(images.reshape(len(images), -1)[:, :1].astype(np.float32), (1, 2048))

  monkeypatch.setattr(features, "pool3_features", pool3_features)
  config = config_for(tmp_path, embedding="inception", inception_weights=str(weights))
  built = embeddings.load_or_build(config, source)
  assert set(calls) == {str(weights)} and built.array.shape == (40, 8)
  assert built.meta["raw_dim"] == 2048 and built.meta["weights"] == str(weights)
  assert built.meta["weights_sha256"] == caching.file_sha256(weights)
  weights.write_bytes(b"other weights")
  with pytest.raises(embeddings.EmbeddingCacheError) as error:
    embeddings.load_or_build(config, source)
  assert_one_line_naming(error, "was built with inception weights of sha256",
                         f"{weights} now has sha256")


def test_command_builds_then_verifies(tmp_path, monkeypatch, capsys):
  source = mock_source()
  monkeypatch.setattr(embeddings, "open_sources", lambda config: (source, None))
  for verify, done in ((False, "checked\n"), (True, "checked in full\n")):
    loaded = embeddings.run(config_for(tmp_path), verify)
    out = capsys.readouterr().out
    assert out.startswith(str(tmp_path / "cache" / "mock.train.pixels.d8.seed3.npy"))
    assert "40 x 8 float32 embeddings of mock/train" in out and out.endswith(done)
    assert loaded.array.shape == (40, 8)


def _write_idx(path, array):
  header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
  path.write_bytes(header + np.ascontiguousarray(array, np.uint8).tobytes())


def test_command_reads_the_config_data_block(tmp_path, capsys):
  from smallgan_jax.data import images  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for prefix, n in (("train", 12), ("t10k", 5)):
    _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
    _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 3, (n,)))
  config = config_for(tmp_path)
  config.data = images.data_config(source="idx", name="tiny", idx_dir=str(tmp_path),
                                   resolution=28, channels=1)
  train_source, test_source = embeddings.open_sources(config)
  assert (train_source.name, len(train_source)) == ("tiny/train", 12)
  assert (test_source.name, len(test_source)) == ("tiny/test", 5)
  assert embeddings.run(config).array.shape == (12, 8)
  assert "tiny.train.pixels.d8.seed3.npy: 12 x 8" in capsys.readouterr().out
  config.data.split = "all"  # Train and test pooled: its own array, no test split.
  train_source, test_source = embeddings.open_sources(config)
  assert (train_source.name, len(train_source), test_source) == ("tiny/all", 17, None)
  assert embeddings.run(config).path.name == "tiny.all.pixels.d8.seed3.npy"
  with pytest.raises(ValueError, match="no config.data block"):
    embeddings.open_sources(config_for(tmp_path))


def test_command_builds_the_array_an_anomaly_config_trains_on(tmp_path, capsys):
  """With `anomaly_class` a run trains on the normal part of the pooled split: the command builds
  that part's array (the one `datasets.get_dataset` loads), not the pooled split's."""
  from smallgan_jax.data import anomaly, images  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(1)
  for prefix, n in (("train", 30), ("t10k", 10)):
    _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
    _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 3)
  config = config_for(tmp_path)
  config.data = images.data_config(source="idx", name="tiny", split="all", idx_dir=str(tmp_path),
                                   resolution=28, channels=1)
  config.anomaly_class, config.anomaly_split = 1, "clean"
  pooled = images.get_source(config.data)
  train_part, _, _ = anomaly.anomaly_sources(pooled, 1, kind="clean")
  source, test_source = embeddings.open_sources(config)
  assert (source.name, test_source) == ("tiny/all-anomaly1-seed42-train", None)
  np.testing.assert_array_equal(source.indices, train_part.indices)
  assert not np.isin(source.indices, np.flatnonzero(pooled.labels(np.arange(40)) == 1)).any()
  loaded = embeddings.run(config)
  assert loaded.path.name == "tiny.all-anomaly1-seed42-train.pixels.d8.seed3.npy"
  assert loaded.array.shape == (len(train_part), 8)
  assert loaded.path == embeddings.cache_path(embeddings.settings_from_config(config),
                                              anomaly.training_sources(config).train.name)
  assert "all-anomaly1-seed42-train" in capsys.readouterr().out
