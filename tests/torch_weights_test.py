"""Reading torch.save files without torch, checked downloads, and the FID weights' first use.

The fixtures in tests/data were written once by real torch (tests/data/make_torch_fixtures.py):
each .pt must load to the arrays torch's `.numpy()` gave (tensors.npz). Downloads are served by a
local HTTP server; every test here fails if anything connects outside loopback.
"""
import functools
import hashlib
import os
import pathlib
import pickle
import shutil
import socket
import struct
import sys
import time
import zipfile

import ml_collections
import ml_dtypes
import numpy as np
import pytest

from configs import cifar_sngan
from smallgan_jax import validation
from smallgan_jax.features import convert_inception, inception, torch_weights
from smallgan_jax.metrics import image_scores
from tests.local_http import closed_port, loopback_only, server  # pylint: disable=unused-import

DATA = pathlib.Path(__file__).parent / "data"
LEGACY, = DATA.glob("tensors_legacy-*.pt")
ZIP, = DATA.glob("tensors_zip-*.pt")
TINY_INCEPTION, = DATA.glob("tiny_inception-*.pth")


@functools.lru_cache(maxsize=None)
def expected(name: str) -> dict[str, np.ndarray]:
  with np.load(DATA / name) as npz:
    return {key: npz[key] for key in npz.files}


def assert_tensors(loaded: dict) -> None:
  """`loaded` holds exactly torch's arrays: same names, dtypes, shapes and values."""
  want = expected("tensors.npz")
  assert list(loaded) == list(want)
  for key, value in want.items():
    dtype = ml_dtypes.bfloat16 if key == "bfloat16" else value.dtype  # npz holds its float32s.
    assert loaded[key].dtype == dtype and loaded[key].shape == value.shape, key
    np.testing.assert_array_equal(loaded[key].astype(value.dtype), value, err_msg=key)
    assert loaded[key].flags.c_contiguous, key


def assert_one_line(error: pytest.ExceptionInfo, *parts: str) -> None:
  message = str(error.value)
  assert "\n" not in message and all(part in message for part in parts), message


def files_in(directory: pathlib.Path) -> list[str]:
  return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("path", [LEGACY, ZIP], ids=["legacy", "zip"])
def test_both_formats_load_to_the_arrays_torch_saved(path):
  assert_tensors(torch_weights.load(str(path)))
  assert zipfile.is_zipfile(path) == (path == ZIP)


def _legacy_file(path: pathlib.Path, payload: bytes) -> None:
  """A legacy torch.save stream whose object pickle is `payload`."""
  header = [torch_weights.LEGACY_MAGIC, torch_weights.LEGACY_PROTOCOL, {"little_endian": True}]
  path.write_bytes(b"".join(pickle.dumps(obj, protocol=2) for obj in header) + payload +
                   pickle.dumps([], protocol=2))


def _zip_file(path: pathlib.Path, payload: bytes, storages: dict[str, bytes]) -> None:
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", payload)
    for key, raw in storages.items():
      archive.writestr(f"archive/data/{key}", raw)


class _RunsCommand:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["legacy", "zip"])
def test_a_pickle_naming_any_other_global_is_refused_without_running_it(tmp_path, writer):
  marker = tmp_path / "ran"
  payload = pickle.dumps({"w": _RunsCommand(marker)}, protocol=2)
  path = tmp_path / "evil.pt"
  if writer == "legacy":
    _legacy_file(path, payload)
  else:
    _zip_file(path, payload, {})
  with pytest.raises(torch_weights.UnsafePickleError) as error:
    torch_weights.load(str(path))
  assert_one_line(error, f"{os.system.__module__}.system")
  assert not marker.exists()


def _tensor_pickle(offset: int, size: tuple, stride: tuple, numel: int) -> bytes:
  """Protocol-2 opcodes of `_rebuild_tensor_v2(FloatStorage '0' of numel, offset, size, stride)`,
  written by hand (pickling torch's globals needs torch)."""
  text = lambda s: b"X" + struct.pack("<I", len(s)) + s.encode()
  ints = lambda values: b"(" + b"".join(b"K" + bytes([v]) for v in values) + b"t"
  storage = (b"(" + text("storage") + b"ctorch\nFloatStorage\n" + text("0") + text("cpu") +
             b"K" + bytes([numel]) + b"tQ")
  return (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(" + storage + b"K" + bytes([offset]) +
          ints(size) + ints(stride) + b"\x89tR.")


def test_a_tensor_is_a_strided_view_and_one_reaching_past_its_storage_is_refused(tmp_path):
  raw = {"0": np.arange(6, dtype="<f4").tobytes()}
  _zip_file(tmp_path / "view.pt", _tensor_pickle(1, (2, 2), (1, 3), numel=6), raw)
  np.testing.assert_array_equal(torch_weights.load(str(tmp_path / "view.pt")),
                                [[1, 4], [2, 5]])  # [i, j] = storage[1 + i + 3 j].
  _zip_file(tmp_path / "past.pt", _tensor_pickle(2, (2, 2), (1, 3), numel=6), raw)
  with pytest.raises(torch_weights.TorchFileError) as error:
    torch_weights.load(str(tmp_path / "past.pt"))
  assert_one_line(error, "reaches element 6 of a storage of 6")


def test_download_then_load_gives_the_arrays_and_logs_progress(server, tmp_path, caplog):
  url, handler = server
  handler.files["/" + LEGACY.name] = LEGACY.read_bytes()
  caplog.set_level("INFO")
  target = tmp_path / "cache" / LEGACY.name
  digest = torch_weights.download(f"{url}/{LEGACY.name}", str(target))
  assert digest == hashlib.sha256(LEGACY.read_bytes()).hexdigest()
  assert files_in(target.parent) == [LEGACY.name]
  assert_tensors(torch_weights.load(str(target)))
  assert "100% (0.0 of 0.0 MB" in caplog.text


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "missing"])
def test_a_bad_download_is_refused_in_one_line_and_not_kept(server, tmp_path, damage):
  url, handler = server
  body = bytearray(LEGACY.read_bytes())
  if damage == "corrupted":
    body[len(body) // 2] ^= 1
  if damage != "missing":
    handler.files["/" + LEGACY.name] = bytes(body)
  if damage == "truncated":
    handler.short.add("/" + LEGACY.name)
  error_type, part = {"truncated": (torch_weights.DownloadError, f"of {len(body)} bytes"),
                      "corrupted": (torch_weights.DigestMismatchError, "does not start with"),
                      "missing": (torch_weights.DownloadError, "HTTP 404")}[damage]
  (tmp_path / "cache").mkdir()
  with pytest.raises(error_type) as error:
    torch_weights.download(f"{url}/{LEGACY.name}", str(tmp_path / "cache" / LEGACY.name))
  assert_one_line(error, part)
  assert files_in(tmp_path / "cache") == []


def test_a_file_whose_name_has_another_digest_is_refused(tmp_path):
  renamed = tmp_path / "tiny_inception-00000000.pth"
  shutil.copy(TINY_INCEPTION, renamed)
  with pytest.raises(torch_weights.DigestMismatchError) as error:
    torch_weights.check_digest(str(renamed))
  assert_one_line(error, "tiny_inception-00000000.pth", "does not start with 00000000")
  with pytest.raises(SystemExit) as exit_error:
    convert_inception.main(["--pth", str(renamed), "--out", str(tmp_path / "w.npz")])
  assert_one_line(exit_error, "FATAL ", "does not start with 00000000")
  assert not (tmp_path / "w.npz").exists()


def assert_converted(npz_path: pathlib.Path, source: pathlib.Path) -> None:
  """The .npz holds the Flax arrays torch laid out for `source`, and names it."""
  with np.load(npz_path) as npz:
    arrays = {k: npz[k] for k in npz.files}
  assert str(arrays.pop("__meta__/source")) == source.name
  digest = hashlib.sha256(source.read_bytes()).hexdigest()
  assert str(arrays.pop("__meta__/source_sha256")) == digest
  want = expected("tiny_inception.npz")
  assert arrays.keys() == want.keys()
  for key, value in want.items():
    np.testing.assert_array_equal(arrays[key], value, err_msg=key)


def test_converter_cli_reads_the_pth_without_torch(tmp_path):
  out = tmp_path / "w.npz"
  convert_inception.main(["--pth", str(TINY_INCEPTION), "--out", str(out)])
  assert_converted(out, TINY_INCEPTION)
  assert "torch" not in sys.modules


@pytest.fixture
def release(server, monkeypatch):
  """pytorch-fid's release, served locally: the tiny Inception stands in for the real file."""
  url, handler = server
  handler.files["/" + TINY_INCEPTION.name] = TINY_INCEPTION.read_bytes()
  monkeypatch.setattr(inception, "WEIGHTS_URL", f"{url}/{TINY_INCEPTION.name}")
  monkeypatch.setattr(inception, "WEIGHTS_PTH", TINY_INCEPTION.name)
  return handler


def test_first_use_downloads_and_converts_once(release, tmp_path):
  npz = tmp_path / "cache" / "fid_inception.npz"
  assert inception.fetch_weights(str(npz)) == str(npz)
  assert_converted(npz, TINY_INCEPTION)
  assert files_in(npz.parent) == sorted([npz.name, TINY_INCEPTION.name])
  assert inception.fetch_weights(str(npz)) == str(npz)
  npz.unlink()  # The .pth stays in the cache: converted again, not fetched again.
  inception.fetch_weights(str(npz), download=False)
  assert_converted(npz, TINY_INCEPTION)
  assert release.requests == ["/" + TINY_INCEPTION.name]


def test_downloads_off_fail_in_one_line_saying_what_to_fetch_and_where(release, tmp_path):
  npz = tmp_path / "fid_inception.npz"
  with pytest.raises(inception.MissingWeightsError) as error:
    inception.fetch_weights(str(npz), download=False)
  assert_one_line(error, str(npz), "downloads are off", inception.WEIGHTS_URL,
                  str(tmp_path / TINY_INCEPTION.name), "convert_inception")
  assert release.requests == [] and files_in(tmp_path) == []


def test_config_fid_download_reaches_the_fetch_and_is_a_bool(tmp_path):
  config = cifar_sngan.get_config()
  assert config.fid.download is True
  config.coreset.inception_weights = str(tmp_path / "fid_inception.npz")
  config.fid.download = False
  with pytest.raises(inception.MissingWeightsError, match="downloads are off"):
    image_scores.feature_network(config, "inception", source=None)
  as_file_sets_it = ml_collections.ConfigDict(  # A new ConfigDict: past the type checks.
      {**config.to_dict(), "fid": {**config.fid.to_dict(), "download": "no"}})
  with pytest.raises(ValueError, match=r"config.fid.download='no': expected True or False"):
    validation.validate_config(as_file_sets_it, num_devices=1)


def test_offline_first_use_fails_fast_in_one_line(monkeypatch, tmp_path):
  url = f"http://127.0.0.1:{closed_port()}/{inception.WEIGHTS_PTH}"
  monkeypatch.setattr(inception, "WEIGHTS_URL", url)
  npz = tmp_path / "fid_inception.npz"
  start = time.monotonic()
  with pytest.raises(inception.MissingWeightsError) as error:
    inception.fetch_weights(str(npz))
  assert time.monotonic() - start < 10
  assert_one_line(error, str(npz), "download failed: ", "Connection refused", url,
                  str(tmp_path / inception.WEIGHTS_PTH))
  assert files_in(tmp_path) == []


def test_the_guard_fails_a_test_that_connects_outside_loopback():
  with pytest.raises(AssertionError, match="expected loopback only"):
    socket.create_connection(("192.0.2.1", 80), timeout=0.1)  # TEST-NET-1: never routed.
