"""The FID Inception network in Flax linen (NHWC, inference only).

This is the network of TensorFlow's FID, the Inception graph of 2015-12-05, as pytorch-fid ports it
(`pytorch_fid.inception.fid_inception_v3`), so that pytorch-fid's weight file, converted by
`convert_inception`, gives the same features. It differs from torchvision's Inception v3 in:

- 1008 classes and no auxiliary head;
- the average pools of Mixed_5b/5c/5d (InceptionA), 6b-6e (InceptionC) and 7b (InceptionE) do not
  count the zero padding (TensorFlow's `AvgPool`; pytorch-fid's `count_include_pad=False`);
- Mixed_7c's pool branch takes a 3x3 max pool, not an average.

Layers keep the torch names (`Mixed_5b/branch1x1/conv`, `.../bn`) so that the converter is a
rename and a transpose. Every convolution is bias-free and followed by batch norm with its running
statistics (eps 1e-3, as torchvision's `BasicConv2d`) and a ReLU. Inputs are NHWC images in [0, 1]
of any size and 1 or 3 channels; like pytorch-fid they are resized bilinearly to 299x299 (torch's
`align_corners=False`, no antialiasing) and mapped to [-1, 1]. Grey images are repeated on 3
channels. `FIDInceptionV3()(images)` returns {"pool3": (N, 2048), "logits": (N, 1008)}.
"""
import functools
import os
from typing import Any, Optional

from absl import logging
from flax import traverse_util
import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from smallgan_jax.features import torch_weights

WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")
WEIGHTS_PTH = "pt_inception-2015-12-05-6726825d.pth"
# The converter's output; `fetch_weights` makes it on first use from WEIGHTS_PTH beside it.
DEFAULT_WEIGHTS = "~/.cache/smallgan_jax/fid_inception_2015-12-05.npz"
INPUT_SIZE = 299
POOL3_DIM = 2048
NUM_CLASSES = 1008
BN_EPSILON = 1e-3  # torchvision's BasicConv2d: nn.BatchNorm2d(out_channels, eps=0.001).
# Blocks whose outputs `benchmarks/fid_crosscheck.py` compares (flax `capture_intermediates` keys).
BLOCK_NAMES = ("Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
               "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")


def _pair(v) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


def resize_bilinear(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """Resizes NHWC images to (size, size) as torch's bilinear `interpolate(align_corners=False)`:
  half-pixel centres, edges clamped, and no antialiasing when shrinking (as pytorch-fid), which
  `jax.image.resize` does only with `antialias=False`. Images already of that size are kept."""
  if images.shape[1:3] == (size, size):
    return images
  return jax.image.resize(images, (images.shape[0], size, size, images.shape[3]), "bilinear",
                          antialias=False, precision=lax.Precision.HIGHEST)


def avg_pool_3x3(x: jax.Array, count_include_pad: bool = False) -> jax.Array:
  """3x3 average pool, stride 1, padding 1; by default the padding is not counted (TF's AvgPool)."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=count_include_pad)


def max_pool_3x3(x: jax.Array, stride: int = 1) -> jax.Array:
  """3x3 max pool: stride 1 and padding 1 (Mixed_7c), or stride 2 without padding (reductions)."""
  if stride == 1:
    return nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
  return nn.max_pool(x, (3, 3), strides=(stride, stride), padding="VALID")


class BasicConv2d(nn.Module):
  """Bias-free convolution, batch norm on running statistics (eps 1e-3), ReLU."""
  features: int
  kernel_size: Any = 1  # int or (kh, kw)
  strides: Any = 1
  padding: Any = 0  # int or (ph, pw), symmetric, as torch's Conv2d
  precision: Any = lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    ph, pw = _pair(self.padding)
    x = nn.Conv(self.features, _pair(self.kernel_size), strides=_pair(self.strides),
                padding=((ph, ph), (pw, pw)), use_bias=False, precision=self.precision,
                name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name="bn")(x)
    return nn.relu(x)


class InceptionA(nn.Module):
  """Mixed_5b/5c/5d: 1x1, 5x5, double 3x3 and pool branches (pool excludes padding)."""
  pool_features: int
  count_include_pad: bool = False
  precision: Any = lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)
    branch1x1 = conv(64, 1, name="branch1x1")(x)
    branch5x5 = conv(48, 1, name="branch5x5_1")(x)
    branch5x5 = conv(64, 5, padding=2, name="branch5x5_2")(branch5x5)
    branch3x3dbl = conv(64, 1, name="branch3x3dbl_1")(x)
    branch3x3dbl = conv(96, 3, padding=1, name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = conv(96, 3, padding=1, name="branch3x3dbl_3")(branch3x3dbl)
    branch_pool = conv(self.pool_features, 1, name="branch_pool")(
        avg_pool_3x3(x, self.count_include_pad))
    return jnp.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: the 35x35 -> 17x17 reduction (stride-2 3x3 convs and max pool)."""
  precision: Any = lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)
    branch3x3 = conv(384, 3, strides=2, name="branch3x3")(x)
    branch3x3dbl = conv(64, 1, name="branch3x3dbl_1")(x)
    branch3x3dbl = conv(96, 3, padding=1, name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = conv(96, 3, strides=2, name="branch3x3dbl_3")(branch3x3dbl)
    return jnp.concatenate([branch3x3, branch3x3dbl, max_pool_3x3(x, stride=2)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b-6e: factorised 7x7 branches (1x7 and 7x1) and a pool branch excluding padding."""
  channels_7x7: int
  count_include_pad: bool = False
  precision: Any = lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)
    c7 = self.channels_7x7
    branch1x1 = conv(192, 1, name="branch1x1")(x)
    branch7x7 = conv(c7, 1, name="branch7x7_1")(x)
    branch7x7 = conv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(branch7x7)
    branch7x7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(branch7x7)
    branch7x7dbl = conv(c7, 1, name="branch7x7dbl_1")(x)
    branch7x7dbl = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(branch7x7dbl)
    branch7x7dbl = conv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(branch7x7dbl)
    branch7x7dbl = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(branch7x7dbl)
    branch7x7dbl = conv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(branch7x7dbl)
    branch_pool = conv(192, 1, name="branch_pool")(avg_pool_3x3(x, self.count_include_pad))
    return jnp.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: the 17x17 -> 8x8 reduction."""
  precision: Any = lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)
    branch3x3 = conv(192, 1, name="branch3x3_1")(x)
    branch3x3 = conv(320, 3, strides=2, name="branch3x3_2")(branch3x3)
    branch7x7x3 = conv(192, 1, name="branch7x7x3_1")(x)
    branch7x7x3 = conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7x3)
    branch7x7x3 = conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7x3)
    branch7x7x3 = conv(192, 3, strides=2, name="branch7x7x3_4")(branch7x7x3)
    return jnp.concatenate([branch3x3, branch7x7x3, max_pool_3x3(x, stride=2)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (average pool excluding padding) and Mixed_7c (max pool): split 1x3/3x1 branches."""
  pool: str = "avg"  # "avg" or "max"
  count_include_pad: bool = False
  precision: Any = lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)
    branch1x1 = conv(320, 1, name="branch1x1")(x)
    branch3x3 = conv(384, 1, name="branch3x3_1")(x)
    branch3x3 = jnp.concatenate([
        conv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(branch3x3),
        conv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(branch3x3)], axis=-1)
    branch3x3dbl = conv(448, 1, name="branch3x3dbl_1")(x)
    branch3x3dbl = conv(384, 3, padding=1, name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = jnp.concatenate([
        conv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(branch3x3dbl),
        conv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(branch3x3dbl)], axis=-1)
    if self.pool == "max":
      pooled = max_pool_3x3(x)
    elif self.pool == "avg":
      pooled = avg_pool_3x3(x, self.count_include_pad)
    else:
      raise ValueError(f"InceptionE pool must be 'avg' or 'max'; got {self.pool!r}")
    branch_pool = conv(192, 1, name="branch_pool")(pooled)
    return jnp.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=-1)


class FIDInceptionV3(nn.Module):
  """The FID Inception: NHWC images in [0, 1] -> {"pool3": (N, 2048), "logits": (N, 1008)}.

  Attributes:
    resize_input: resize to 299x299 first (pytorch-fid's default). Without it the network takes
      any size from 75x75 up; pool3 is a global average.
    precision: of every convolution and matmul. HIGHEST (default) keeps float32 on GPUs and TPUs,
      whose default would round the operands to TF32/bfloat16 (a ~1e-3 relative change).
    dtype: of the computation (the layers take it from their input). float64 (with
      `jax_enable_x64`) is for `benchmarks/fid_crosscheck.py`, which compares in both.
    mixed_7c_pool, count_include_pad: the FID graph has "max" and False. "avg" and True are
      torchvision's Inception; they exist so that `benchmarks/fid_crosscheck.py --break=...` can
      show that its check fails on a network with one wrong pooling.
  """
  resize_input: bool = True
  precision: Any = lax.Precision.HIGHEST
  dtype: Any = jnp.float32
  mixed_7c_pool: str = "max"
  count_include_pad: bool = False

  @nn.compact
  def __call__(self, images):
    x = jnp.asarray(images, self.dtype)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
      raise ValueError(f"images must be NHWC with 1 or 3 channels; got shape {x.shape}")
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, axis=-1)
    if self.resize_input:
      x = resize_bilinear(x, INPUT_SIZE)
    x = 2 * x - 1  # [0, 1] -> [-1, 1], after resizing as pytorch-fid.
    p = dict(precision=self.precision)
    pad = dict(count_include_pad=self.count_include_pad, **p)
    x = BasicConv2d(32, 3, strides=2, name="Conv2d_1a_3x3", **p)(x)
    x = BasicConv2d(32, 3, name="Conv2d_2a_3x3", **p)(x)
    x = BasicConv2d(64, 3, padding=1, name="Conv2d_2b_3x3", **p)(x)
    x = max_pool_3x3(x, stride=2)
    x = BasicConv2d(80, 1, name="Conv2d_3b_1x1", **p)(x)
    x = BasicConv2d(192, 3, name="Conv2d_4a_3x3", **p)(x)
    x = max_pool_3x3(x, stride=2)
    x = InceptionA(32, name="Mixed_5b", **pad)(x)
    x = InceptionA(64, name="Mixed_5c", **pad)(x)
    x = InceptionA(64, name="Mixed_5d", **pad)(x)
    x = InceptionB(name="Mixed_6a", **p)(x)
    x = InceptionC(128, name="Mixed_6b", **pad)(x)
    x = InceptionC(160, name="Mixed_6c", **pad)(x)
    x = InceptionC(160, name="Mixed_6d", **pad)(x)
    x = InceptionC(192, name="Mixed_6e", **pad)(x)
    x = InceptionD(name="Mixed_7a", **p)(x)
    x = InceptionE("avg", name="Mixed_7b", **pad)(x)
    x = InceptionE(self.mixed_7c_pool, name="Mixed_7c", **pad)(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(NUM_CLASSES, precision=self.precision, name="fc")(pool3)
    return {"pool3": pool3, "logits": logits}


def variable_shapes(model: FIDInceptionV3 | None = None) -> dict:
  """The model's {"params": ..., "batch_stats": ...} tree of ShapeDtypeStructs (no compute)."""
  model = model or FIDInceptionV3()
  images = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
  return jax.eval_shape(model.init, jax.random.key(0), images)


# ---------------------------------------------------------------------------------------------
# Weights: the converter's .npz (`convert_inception`), read with numpy only; made on first use
# from pytorch-fid's .pth, downloaded once (`fetch_weights`).


class MissingWeightsError(FileNotFoundError):
  """The converted weights file is not there; the message says, in one line, how to make it."""


def missing_weights_message(path: str, why: str = "") -> str:
  """One line: no converted weights at `path` (`why` they were not fetched), and how to get them."""
  pth = os.path.join(os.path.dirname(path), WEIGHTS_PTH)
  because = f" ({why})" if why else ""
  return (f"FID Inception weights not found at {path}{because}: fetch {WEIGHTS_URL} "
          f"(pytorch-fid's release) and put it at {pth}, converted there on first use, or run "
          f"`python -m smallgan_jax.features.convert_inception --pth={WEIGHTS_PTH} --out={path}` "
          "(docs/fid.md)")


def resolve_weights_path(path: Optional[str]) -> str:
  return os.path.abspath(os.path.expanduser(path or DEFAULT_WEIGHTS))


def fetch_weights(path: str, download: bool = True) -> str:
  """Returns `path`, the converted weights, converting them first from pytorch-fid's .pth
  (WEIGHTS_PTH) in the same directory, which is downloaded from WEIGHTS_URL if it is not there
  and `download` is on (`torch_weights.download`: checked against the digest in its name).

  Raises MissingWeightsError (one line: why, what to fetch, where to put it) when neither file is
  there and the .pth cannot be downloaded; DigestMismatchError (a ValueError) for a wrong .pth.
  """
  if os.path.isfile(path):
    return path
  pth = os.path.join(os.path.dirname(path), WEIGHTS_PTH)
  if not os.path.isfile(pth):
    if not download:
      raise MissingWeightsError(missing_weights_message(path, "downloads are off"))
    try:
      torch_weights.download(WEIGHTS_URL, pth)
    except torch_weights.DownloadError as e:
      why = f"download failed: {e.reason}"
      raise MissingWeightsError(missing_weights_message(path, why)) from None
  # Imported here, not at the top: the package imports this module, and a converter imported with
  # it would already be in sys.modules when `python -m smallgan_jax.features.convert_inception`
  # runs it as __main__ (runpy warns of that). pylint: disable=g-import-not-at-top
  from smallgan_jax.features import convert_inception
  logging.info("converting %s to %s", pth, path)
  return convert_inception.convert_file(pth, path)


@functools.lru_cache(maxsize=1)
def _expected_shapes() -> dict[str, tuple[int, ...]]:
  flat = traverse_util.flatten_dict(variable_shapes(), sep="/")
  return {key: tuple(value.shape) for key, value in flat.items()}


def load_variables(path: Optional[str] = None) -> dict:
  """{"params": ..., "batch_stats": ...} numpy arrays from the converted .npz at `path`
  (`DEFAULT_WEIGHTS` if None), checked against the network's names and shapes.

  Raises MissingWeightsError (one line: the path and how to get the file) if it is not there, and
  ValueError (one line) if it holds other arrays than the FID Inception's.
  """
  path = resolve_weights_path(path)
  if not os.path.isfile(path):
    raise MissingWeightsError(missing_weights_message(path))
  with np.load(path, allow_pickle=False) as npz:
    flat = {key: npz[key] for key in npz.files if not key.startswith("__meta__/")}
  expected = _expected_shapes()
  missing = sorted(set(expected) - set(flat))
  extra = sorted(set(flat) - set(expected))
  wrong = sorted(k for k in set(flat) & set(expected) if flat[k].shape != expected[k])
  if missing or extra or wrong:
    first = (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}" if extra else
             f"{wrong[0]} has shape {flat[wrong[0]].shape}, expected {expected[wrong[0]]}")
    raise ValueError(f"{path} is not the converted FID Inception: {len(missing)} arrays missing, "
                     f"{len(extra)} unexpected, {len(wrong)} of another shape ({first})")
  return traverse_util.unflatten_dict(
      {key: np.asarray(value, np.float32) for key, value in flat.items()}, sep="/")
