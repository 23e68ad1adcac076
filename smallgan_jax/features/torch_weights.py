"""Reads `torch.save` files into NumPy arrays without torch, and fetches them once, checked.

Our own reader, because torch (gigabytes) is not a dependency, and the libraries that read weights
without it (safetensors, orbax) do not read torch's pickles. Both of torch's formats:

- zip (`torch.save`'s default since torch 1.6): `<root>/data.pkl`, the object's pickle, and
  `<root>/data/<key>`, each storage's raw bytes (byte order in `<root>/byteorder`, else little);
- legacy (older files, and `_use_new_zipfile_serialization=False`), one stream: a pickled magic
  number, protocol version (1001) and system info (byte order), the object's pickle, the pickled
  list of storage keys, then each storage as an int64 element count and its bytes.

The object's pickle names storages by persistent id `('storage', <torch.XStorage>, key, location,
numel[, view])` and builds tensors with `torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)`. The unpickler here resolves those few globals (to stand-ins that hold offsets,
never data), `torch._utils._rebuild_parameter` and `collections.OrderedDict`, and refuses every
other global (`os.system`, `builtins.eval`, ...): loading runs no code the file names. Tensors come
back as C-contiguous NumPy copies of their (possibly strided, possibly shared) storage.

Files named as torch hub names them, `<name>-<sha256 prefix>.<ext>` (pytorch-fid's
`pt_inception-2015-12-05-6726825d.pth`), are checked against that prefix (`check_digest`);
`download` keeps a file only once it is complete and the check passes.
"""
import collections
import dataclasses
import hashlib
import http.client
import os
import pickle
import re
import tempfile
import time
from typing import Any, BinaryIO, Optional
import urllib.error
import urllib.request
import zipfile

from absl import logging
import ml_dtypes
import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch/serialization.py's MAGIC_NUMBER.
LEGACY_PROTOCOL = 1001
TIMEOUT_S = 10.0  # urllib's timeout: for the connection, and for each read once connected.
CHUNK_BYTES = 1 << 20
_DIGEST_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_}


class UnsafePickleError(pickle.UnpicklingError, ValueError):
  """The pickle names a global other than torch's tensor rebuilders; one line."""


class TorchFileError(ValueError):
  """Not a torch.save file this reader understands, or an inconsistent one; one line."""


class DigestMismatchError(ValueError):
  """A file's sha256 does not start with the digest prefix in its name; one line."""


class DownloadError(OSError):
  """A download that did not complete (no connection, HTTP error, truncated); one line."""

  def __init__(self, url: str, reason: str):
    super().__init__(f"could not download {url}: {reason}")
    self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class _StorageType:
  """Stands in for `torch.FloatStorage` etc.: only names a dtype (not callable)."""
  name: str
  dtype: np.dtype


@dataclasses.dataclass(eq=False, slots=True)
class _Storage:
  """A storage's dtype and size from its persistent id; `data` (1-D) once its bytes are read."""
  dtype: np.dtype
  numel: int
  data: Optional[np.ndarray] = None


@dataclasses.dataclass(frozen=True, slots=True)
class _TensorRef:
  """A tensor as the pickle describes it: a view (offset, shape, strides in elements) of a
  storage whose bytes may come after the pickle (legacy format). Slots: a pickle's BUILD cannot
  add attributes to it."""
  storage: _Storage
  offset: int
  shape: tuple[int, ...]
  strides: tuple[int, ...]

  def array(self) -> np.ndarray:
    """A C-contiguous copy of the view; refuses one that reaches outside its storage."""
    data = self.storage.data
    if self.shape and min(self.shape) == 0:
      return np.zeros(self.shape, data.dtype)
    last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.strides))
    if last >= self.storage.numel:
      raise TorchFileError(f"a tensor of shape {self.shape}, strides {self.strides} at offset "
                           f"{self.offset} reaches element {last} of a storage of "
                           f"{self.storage.numel}; expected a view inside its storage")
    strides = tuple(s * data.itemsize for s in self.strides)
    return np.lib.stride_tricks.as_strided(data[self.offset:], self.shape, strides).copy()


def _is_count(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_counts(value: Any) -> bool:
  return isinstance(value, tuple) and all(_is_count(v) for v in value)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused_grad_hooks_metadata):
  """`torch._utils._rebuild_tensor_v2`'s stand-in: checks the arguments, returns a _TensorRef."""
  if not (isinstance(storage, _Storage) and _is_count(storage_offset) and _is_counts(size)
          and _is_counts(stride) and len(size) == len(stride)):
    raise TorchFileError(f"_rebuild_tensor_v2 got ({type(storage).__name__}, {storage_offset!r}, "
                         f"{size!r}, {stride!r}); expected a storage, an offset >= 0 and size "
                         "and stride tuples of non-negative ints of one length")
  return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused_grad_hooks):
  """`torch._utils._rebuild_parameter`'s stand-in: an nn.Parameter is its tensor."""
  if not isinstance(data, _TensorRef):
    raise TorchFileError(f"_rebuild_parameter got {type(data).__name__}; expected a tensor")
  return data


_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, np.dtype(dtype))
       for name, dtype in _STORAGE_DTYPES.items()},
}


class _Unpickler(pickle.Unpickler):
  """Resolves only `_GLOBALS`; storages by persistent id into `storages` (key -> _Storage)."""

  def __init__(self, file: BinaryIO, storages: dict[str, _Storage]):
    super().__init__(file)
    self.storages = storages

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in _GLOBALS:
      raise UnsafePickleError(f"refusing global {module}.{name} in a torch file: expected only "
                              "tensors, storages and OrderedDicts")
    return _GLOBALS[(module, name)]

  def persistent_load(self, pid: Any) -> _Storage:
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] in ("storage", b"storage")):
      raise UnsafePickleError(f"refusing persistent id {str(pid)[:80]!r}: expected "
                              "('storage', type, key, location, numel[, view])")
    _, storage_type, key, _, numel, *view = pid
    key = key.decode("ascii") if isinstance(key, bytes) else key
    if not (isinstance(storage_type, _StorageType) and isinstance(key, str)
            and _is_count(numel) and view in ([], [None])):
      raise TorchFileError(f"storage id {str(pid)[:80]!r}: expected a torch storage type, a key, "
                           "an element count >= 0 and no view (views are from torch < 1.0)")
    storage = self.storages.setdefault(key, _Storage(storage_type.dtype, numel))
    if (storage.dtype, storage.numel) != (storage_type.dtype, numel):
      raise TorchFileError(f"storage {key} is read as {storage_type.name} of {numel} elements "
                           f"and as {storage.dtype} of {storage.numel}; expected one type")
    return storage


def _unpickle(file: BinaryIO, storages: dict[str, _Storage]) -> Any:
  try:
    return _Unpickler(file, storages).load()
  except (UnsafePickleError, TorchFileError):
    raise
  except Exception as e:  # pylint: disable=broad-except  # A malformed pickle raises anything.
    raise TorchFileError(f"unreadable pickle in a torch file ({type(e).__name__}: {e})") from e


def _storage_array(raw: bytes, storage: _Storage, key: str, little_endian: bool) -> np.ndarray:
  dtype = storage.dtype.newbyteorder("<" if little_endian else ">")
  if len(raw) != storage.numel * dtype.itemsize:
    raise TorchFileError(f"storage {key} has {len(raw)} bytes; expected {storage.numel} "
                         f"elements of {dtype.itemsize} bytes")
  return np.frombuffer(raw, dtype).astype(storage.dtype)


def _resolve(obj: Any) -> Any:
  """The unpickled object with every _TensorRef replaced by its array."""
  if isinstance(obj, _TensorRef):
    return obj.array()
  if isinstance(obj, dict):
    resolved = type(obj)()
    for key, value in obj.items():
      resolved[key] = _resolve(value)
    return resolved
  if isinstance(obj, (list, tuple)):
    return type(obj)(_resolve(value) for value in obj)
  return obj


def _load_zip(path: str) -> Any:
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [n for n in names if re.fullmatch(r"[^/]+/data\.pkl", n)]
    if len(pickles) != 1:
      raise TorchFileError(f"{path} holds {len(pickles)} <root>/data.pkl records; expected one "
                           "(is it a torch.save file?)")
    root = pickles[0][:-len("data.pkl")]
    little = (archive.read(root + "byteorder").decode() != "big"
              if root + "byteorder" in names else True)
    storages = {}
    with archive.open(pickles[0]) as f:
      obj = _unpickle(f, storages)
    for key, storage in storages.items():
      if f"{root}data/{key}" not in names:
        raise TorchFileError(f"{path} lacks storage {root}data/{key}; expected one per tensor")
      storage.data = _storage_array(archive.read(f"{root}data/{key}"), storage, key, little)
  return obj


def _load_legacy(path: str) -> Any:
  storages = {}
  with open(path, "rb") as f:
    magic = _unpickle(f, storages)
    if magic != LEGACY_MAGIC:
      raise TorchFileError(f"{path} is neither a zip nor a legacy torch.save file (its first "
                           f"pickle is {str(magic)[:40]!r}, expected torch's magic number)")
    protocol, info = _unpickle(f, storages), _unpickle(f, storages)
    if protocol != LEGACY_PROTOCOL or not isinstance(info, dict):
      raise TorchFileError(f"{path}: legacy protocol {protocol!r}; expected {LEGACY_PROTOCOL}")
    little = info.get("little_endian", True)
    obj = _unpickle(f, storages)
    keys = _unpickle(f, storages)
    if not isinstance(keys, list) or sorted(keys) != sorted(storages):
      raise TorchFileError(f"{path} lists storages {str(keys)[:80]}; expected the "
                           f"{len(storages)} its tensors use")
    for key in keys:
      count = int.from_bytes(f.read(8), "little" if little else "big")
      storage = storages[key]
      if count != storage.numel:
        raise TorchFileError(f"{path}: storage {key} holds {count} elements; its tensors say "
                             f"{storage.numel}")
      storage.data = _storage_array(f.read(count * storage.dtype.itemsize), storage, key, little)
  return obj


def load(path: str) -> Any:
  """The object `torch.save` wrote to `path` (zip or legacy format), tensors as NumPy arrays.

  Raises UnsafePickleError if the pickle names any global but the tensor rebuilders, storage
  types and OrderedDict; TorchFileError if the file is not a consistent torch.save file.
  """
  obj = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
  return _resolve(obj)


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """A saved state dict ({name: tensor}) as {name: NumPy array}."""
  state_dict = load(path)
  if not (isinstance(state_dict, dict) and
          all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state_dict.items())):
    raise TorchFileError(f"{path} holds a {type(state_dict).__name__}, not a state dict; "
                         "expected {name: tensor}")
  return dict(state_dict)


# ---------------------------------------------------------------------------------------------
# The digest in the name, and the download.


def digest_prefix(name: str) -> Optional[str]:
  """The sha256 prefix in a torch-hub-style file name (`...-6726825d.pth`), or None."""
  match = _DIGEST_IN_NAME.search(os.path.basename(name))
  return match.group(1) if match else None


def sha256_of_file(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def check_digest(path: str, name: Optional[str] = None) -> str:
  """The sha256 of `path`; refuses (DigestMismatchError) if it does not start with the digest
  prefix of `name` (default: the path's own name). A name without one is not checked."""
  name = os.path.basename(name or path)
  digest, expected = sha256_of_file(path), digest_prefix(name)
  if expected is not None and not digest.startswith(expected):
    raise DigestMismatchError(f"{name}: sha256 {digest[:16]}... does not start with {expected}, "
                              "the digest in its name (a corrupted or different file)")
  return digest


class _Progress:
  """Logs a download's progress at every tenth: percent, megabytes, rate and ETA."""

  def __init__(self, name: str, total: Optional[int]):
    self.name, self.total, self.start, self.logged = name, total, time.monotonic(), 0

  def update(self, done: int) -> None:
    if not self.total or done * 10 // self.total <= self.logged:
      return
    self.logged = done * 10 // self.total
    rate = done / max(time.monotonic() - self.start, 1e-6)
    logging.info("%s: %3d%% (%.1f of %.1f MB, %.1f MB/s, ETA %.0f s)", self.name,
                 100 * done // self.total, done / 1e6, self.total / 1e6, rate / 1e6,
                 (self.total - done) / rate)


def _copy_response(url: str, out: BinaryIO, timeout_s: float, name: str) -> None:
  """Streams `url` into `out`; DownloadError (one line) on any failure or a short body."""
  done, total = 0, None
  try:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
      total = int(response.headers.get("Content-Length") or 0) or None
      logging.info("downloading %s (%s bytes)", url, total or "unknown")
      progress = _Progress(name, total)
      while chunk := response.read(CHUNK_BYTES):
        out.write(chunk)
        done += len(chunk)
        progress.update(done)
  except urllib.error.HTTPError as e:
    raise DownloadError(url, f"HTTP {e.code} {e.reason}") from None
  except urllib.error.URLError as e:
    raise DownloadError(url, str(e.reason)) from None
  except (OSError, http.client.HTTPException) as e:
    raise DownloadError(url, f"{type(e).__name__} {e}") from None
  if total is not None and done != total:
    raise DownloadError(url, f"got {done} of {total} bytes")


def download(url: str, path: str, timeout_s: float = TIMEOUT_S) -> str:
  """Fetches `url` to `path`, whose name must carry the file's sha256 prefix; returns the sha256.

  Writes a temporary file beside `path` and renames it to `path` only once the download is
  complete and its digest matches, so `path` never holds a partial or wrong file; on any failure
  the temporary file is removed and DownloadError or DigestMismatchError (one line) raised.
  """
  name = os.path.basename(path)
  if digest_prefix(name) is None:
    raise ValueError(f"download target {name!r} has no sha256 prefix to check; expected a name "
                     "like pt_inception-2015-12-05-6726825d.pth")
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
  try:
    with os.fdopen(fd, "wb") as out:
      _copy_response(url, out, timeout_s, name)
    digest = check_digest(tmp, name)
    os.replace(tmp, path)
  except BaseException:
    os.remove(tmp)
    raise
  logging.info("downloaded %s to %s (sha256 %s)", url, path, digest)
  return digest

