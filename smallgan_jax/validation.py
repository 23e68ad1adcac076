"""Checks every config value, and the values that must agree, before a run builds anything.

Without it a bad value surfaces late and far from its cause: as a traceback from inside a jitted
step or a library, minutes in, after the workdir was created and perhaps a checkpoint written; or
never (a negative std trains on the same mixture, a seed of 2**32 silently repeats seed 0).
`validate_config` runs first, so a bad run fails in seconds, with one line naming the key, the value
and what was expected, and changes nothing on disk. `FIELDS` lists every key of
`configs/default.py`; a key it does not know is refused too (a typo in a config file would
otherwise be ignored). `DATA_FIELDS` lists the keys of the image input's `config.data` block
(`data/images.py`), which only image configs have: they are checked, all of them, where a config
has that block. `MODEL_FIELDS` likewise lists each image model's block (`config.dcgan`,
`config.sngan`, `config.sagan`), which only configs of that model have (and must have); `FID_FIELDS` the `config.fid` block of what
evaluations score. The argparse types below give the benchmarks'
flags the same checks.
"""
import argparse
import difflib
import math
import numbers
import re
from typing import Any, Callable, Iterator, NamedTuple, Optional

from flax import traverse_util
import ml_collections

from smallgan_jax import datasets, embeddings, losses, models, objectives, sampling, topk
from smallgan_jax import standing_stats
from smallgan_jax.data import anomaly, images
from smallgan_jax.metrics import image_scores

SCHEDULES = ("constant", "linear")  # Learning-rate schedules `train.create_optimizer` builds.


class Check(NamedTuple):
  """What a value must pass, and the words an error message gives for it."""
  ok: Callable[[Any], bool]
  expected: str


def _is_int(value: Any) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
  """A finite real number (an int is fine where a float is expected; a bool is not)."""
  return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def one_of(names: tuple[str, ...]) -> Check:
  return Check(lambda v: isinstance(v, str) and v in names, f"one of {names}")


POSITIVE_INT = Check(lambda v: _is_int(v) and v >= 1, "a positive integer")
# JAX keys are 32-bit (without x64): 2**32 gives seed 0's key and -1 that of 2**32 - 1.
SEED = Check(lambda v: _is_int(v) and 0 <= v < 2**32, "an integer in [0, 2**32)")
GRID_MODES = Check(lambda v: _is_int(v) and v >= 1 and math.isqrt(v) ** 2 == v,
                   "a perfect square (25, 36, ..., 100)")
POSITIVE = Check(lambda v: _is_finite(v) and v > 0, "a positive number")
NON_NEGATIVE = Check(lambda v: _is_finite(v) and v >= 0, "a number >= 0")
FRACTION = Check(lambda v: _is_finite(v) and 0 < v <= 1, "a number in (0, 1]")
ADAM_BETA = Check(lambda v: _is_finite(v) and 0 <= v < 1, "a number in [0, 1)")
BOOL = Check(lambda v: isinstance(v, bool), "True or False")

FIELDS = {
    "seed": SEED,
    "dataset": one_of(datasets.DATASETS),
    "num_modes": POSITIVE_INT,  # And a perfect square for the grid: see `_cross_field_error`.
    "mog_std": POSITIVE,
    "mog_spacing": POSITIVE,
    "ring_radius": POSITIVE,
    "objective": one_of(objectives.OBJECTIVES),
    "model": one_of(models.MODELS),
    "mlp.width": POSITIVE_INT,
    "mlp.hidden_layers": POSITIVE_INT,
    "loss": one_of(losses.LOSSES),
    "z_dim": POSITIVE_INT,
    "prior": one_of(sampling.PRIORS),
    "batch_size": POSITIVE_INT,
    "g_batch_size": POSITIVE_INT,
    "n_dis": POSITIVE_INT,
    "coreset.factor_prior": POSITIVE_INT,
    "coreset.factor_target": POSITIVE_INT,
    "coreset.prior_scope": one_of(sampling.PRIOR_SCOPES),
    "coreset.target_scope": one_of(sampling.TARGET_SCOPES),
    "coreset.weighting": one_of(sampling.WEIGHTINGS),
    "topk.enabled": BOOL,
    "topk.gamma": FRACTION,
    "topk.nu": FRACTION,
    "topk.decay_steps": POSITIVE_INT,
    "topk.decay_per_epoch": BOOL,
    "topk.scope": one_of(topk.SCOPES),
    "gradient_penalty.weight": NON_NEGATIVE,
    "gradient_penalty.on": one_of(losses.PENALTY_POINTS),
    "gradient_penalty.center": NON_NEGATIVE,
    "ema_decay": Check(lambda v: _is_finite(v) and 0 <= v < 1, "a number in [0, 1)"),
    "optim.g_lr": POSITIVE,
    "optim.d_lr": POSITIVE,
    "optim.b1": ADAM_BETA,
    "optim.b2": ADAM_BETA,
    "optim.schedule": one_of(SCHEDULES),
    "num_train_steps": POSITIVE_INT,
    "steps_in_flight": POSITIVE_INT,
    "log_every_steps": POSITIVE_INT,
    "eval_every_steps": POSITIVE_INT,
    "eval_num_samples": POSITIVE_INT,
    "eval_batch_stats": one_of(standing_stats.MODES),
    "eval_standing_samples": POSITIVE_INT,
    "checkpoint_every_steps": POSITIVE_INT,
    "checkpoint_max_to_keep": POSITIVE_INT,
    "watchdog_timeout_secs": NON_NEGATIVE,
}

NAME = Check(lambda v: isinstance(v, str) and bool(re.fullmatch(r"[\w.:/+-]+", v)),
             "a dataset name (letters, digits and _.:/+-)")
SPLIT = Check(lambda v: isinstance(v, str) and bool(v) and not any(c.isspace() for c in v),
              "a split name without spaces")
PATH = Check(lambda v: isinstance(v, str), "a folder or gs:// URL, or '' for the default")
# tfds names: "cifar10", "lsun/church_outdoor", "celeb_a:2.1.0", "imagenet_resized/64x64:0.1.0".
TFDS_NAME = re.compile(r"[a-z][a-z0-9_]*(/[\w.+-]+)?(:\d+\.\d+\.\d+)?")

# The image input's block, `config.data` (fields documented in `images.data_config`).
DATA_FIELDS = {
    "data.source": one_of(images.SOURCES),
    "data.name": NAME,
    "data.split": SPLIT,
    "data.tfds_data_dir": PATH,
    "data.download": BOOL,
    "data.folder": PATH,
    "data.idx_dir": PATH,
    "data.resolution": Check(lambda v: _is_int(v) and 1 <= v <= 4096,
                             "an integer in [1, 4096]"),
    "data.channels": Check(lambda v: _is_int(v) and v in images.CHANNELS,
                           f"one of {images.CHANNELS}"),
    "data.num_threads": Check(lambda v: _is_int(v) and 0 <= v <= 1024,
                              "an integer in [0, 1024] (0: one per CPU core)"),
}

# The convolutional pair's block, `config.dcgan` (fields documented in `dcgan.dcgan_config`).
DCGAN_FIELDS = {
    "dcgan.g_channels": POSITIVE_INT,
    "dcgan.d_channels": POSITIVE_INT,
    "dcgan.spectral_norm": BOOL,
    "dcgan.dtype": one_of(tuple(models.DTYPES)),
}
# SN-GAN's and SAGAN's blocks (`sngan.sngan_config`, `sagan.sagan_config`).
SNGAN_FIELDS = {
    "sngan.g_channels": POSITIVE_INT,
    "sngan.d_channels": POSITIVE_INT,
    "sngan.sync_batch_norm": BOOL,
    "sngan.dtype": one_of(tuple(models.DTYPES)),
}
SAGAN_FIELDS = {
    "sagan.g_channels": POSITIVE_INT,
    "sagan.d_channels": POSITIVE_INT,
    "sagan.attention_resolution": POSITIVE_INT,
    "sagan.sync_batch_norm": BOOL,
    "sagan.dtype": one_of(tuple(models.DTYPES)),
}
# Each image model's block, named as the model: a config of that model must have it.
MODEL_FIELDS = {"dcgan": DCGAN_FIELDS, "sngan": SNGAN_FIELDS, "sagan": SAGAN_FIELDS}


# How image configs embed their target candidates (`embeddings.DEFAULTS` for absent keys).
EMBEDDING_FIELDS = {
    "coreset.embedding": one_of(embeddings.MODELS),
    "coreset.embedding_dim": Check(lambda v: v is None or POSITIVE_INT.ok(v),
                                   "a positive integer, or None to keep the raw embedding"),
    "coreset.projection_seed": SEED,
    "coreset.embedding_classes": Check(
        lambda v: v is None or (isinstance(v, (tuple, list)) and len(set(v)) == len(v) >= 2 and
                                all(_is_int(c) and c >= 0 for c in v)),
        "a tuple of at least 2 distinct class ids >= 0, or None for all"),
    "coreset.cache_dir": PATH,
    "coreset.inception_weights": Check(lambda v: isinstance(v, str),
                                       "a path to the converted weights, or '' for the default"),
}


# MEG's block, `config.meg`, and the held-out class of an anomaly-detection config with its split
# (`data/anomaly.py`): a config with either key needs both.
MEG_FIELDS = {"meg.entropy_weight": NON_NEGATIVE}
ANOMALY_FIELDS = {"anomaly_class": Check(lambda v: _is_int(v) and v >= 0, "a class id >= 0"),
                  "anomaly_split": one_of(anomaly.SPLITS)}


# What an image config's evaluations score, `config.fid` (`image_scores.fid_config`).
FID_FIELDS = {
    "fid.features": Check(
        lambda v: isinstance(v, (tuple, list)) and len(set(v)) == len(v) and
        all(f in image_scores.FEATURES for f in v),
        f"a tuple of distinct names from {image_scores.FEATURES} (possibly empty)"),
    "fid.classifier_seed": SEED,
    "fid.download": BOOL,
    "fid.coverage": BOOL,
    "fid.pr_k": POSITIVE_INT,
    "fid.dc_k": POSITIVE_INT,
    "fid.kid_subsets": POSITIVE_INT,
    "fid.kid_subset_size": Check(lambda v: _is_int(v) and v >= 2, "an integer >= 2"),
    "fid.real_subset": Check(lambda v: _is_int(v) and v >= 0,
                             "an integer >= 0 (0: eval_num_samples)"),
}


def _field_error(key: str, flat: dict, fields: dict = FIELDS) -> Optional[str]:
  check = fields[key]
  if key not in flat:
    return f"config.{key} is missing: expected {check.expected}"
  if not check.ok(flat[key]):
    return f"config.{key}={flat[key]!r}: expected {check.expected}"
  return None


def _unknown_key_error(flat: dict) -> Optional[str]:
  known = (FIELDS.keys() | DATA_FIELDS.keys() | EMBEDDING_FIELDS.keys() | FID_FIELDS.keys()
           | MEG_FIELDS.keys() | ANOMALY_FIELDS.keys())
  known = known.union(*(fields.keys() for fields in MODEL_FIELDS.values()))
  unknown = sorted(flat.keys() - known)
  if not unknown:
    return None
  close = difflib.get_close_matches(unknown[0], known, n=1)
  hint = f" (config.{close[0]}?)" if close else ""
  return f"config.{unknown[0]}={flat[unknown[0]]!r}: not a known key{hint}"


def _cross_field_error(config: ml_collections.ConfigDict, num_devices: int) -> Optional[str]:
  """Values that are fine alone but not together (each field has passed its own check)."""
  if config.dataset == "mog_grid" and not GRID_MODES.ok(config.num_modes):
    return (f"config.num_modes={config.num_modes!r}: expected {GRID_MODES.expected} for "
            "config.dataset='mog_grid'")
  if config.dataset == "images" and "data" not in config:
    return "config.dataset='images': expected a config.data block (images.data_config())"
  if config.model in MODEL_FIELDS:
    error = _image_model_error(config)
    if error:
      return error
  if config.objective != "gan":
    error = _objective_error(config)
    if error:
      return error
  if "anomaly_class" in config and config.dataset != "images":
    return (f"config.anomaly_class={config.anomaly_class!r}: expected config.dataset='images' "
            f"(anomaly detection holds out a class of an image dataset)")
  if config.topk.decay_per_epoch and config.dataset != "images":
    return (f"config.topk.decay_per_epoch=True: expected False for "
            f"config.dataset={config.dataset!r} (only image datasets have epochs)")
  for key in ("batch_size", "g_batch_size"):
    if config[key] % num_devices:
      return f"config.{key}={config[key]} must be divisible by the {num_devices} devices"
  return None


def _objective_error(config: ml_collections.ConfigDict) -> Optional[str]:
  """An objective with a third network on a setting it cannot train (`objectives.py`)."""
  objective = f"for config.objective={config.objective!r}"
  if config.model != "dcgan":
    return f"config.model={config.model!r}: expected 'dcgan' {objective}"
  if config.objective == "meg" and "meg" not in config:
    return f"config.meg is missing: expected a block like {{'entropy_weight': 1.0}} {objective}"
  if config.objective == "bigan":
    if config.g_batch_size != config.batch_size:
      return (f"config.g_batch_size={config.g_batch_size}: expected config.batch_size="
              f"{config.batch_size} {objective} (the encoder trains on the last critic batch)")
    if config.gradient_penalty.weight:
      return (f"config.gradient_penalty.weight={config.gradient_penalty.weight!r}: expected 0 "
              f"{objective} (its critic takes (x, z) pairs)")
  return None


def _image_model_error(config: ml_collections.ConfigDict) -> Optional[str]:
  """An image model on data it cannot make (each field has passed its own check)."""
  model = f"for config.model={config.model!r}"
  if "data" not in config:
    return f"config.model={config.model!r}: expected an image config (with a config.data block)"
  resolution = config.data.resolution
  if resolution not in models.RESOLUTIONS[config.model]:
    return (f"config.data.resolution={resolution!r}: expected one of "
            f"{models.RESOLUTIONS[config.model]} {model}")
  if config.model == "sagan":
    allowed = models.sagan.attention_resolutions(resolution)
    if config.sagan.attention_resolution not in allowed:
      return (f"config.sagan.attention_resolution={config.sagan.attention_resolution!r}: "
              f"expected one of {allowed} for config.data.resolution={resolution}")
  return None


def _data_error(data: ml_collections.ConfigDict) -> Optional[str]:
  """The `config.data` values that do not go together (each has passed its own check)."""
  source = f"for config.data.source={data.source!r}"
  if data.source == "tfds" and not TFDS_NAME.fullmatch(data.name):
    return (f"config.data.name={data.name!r}: expected a tfds dataset name, e.g. 'cifar10' or "
            f"'lsun/church_outdoor', {source}")
  if data.source == "idx":
    if data.split not in images.IDX_SPLITS:
      return f"config.data.split={data.split!r}: expected one of {images.IDX_SPLITS} {source}"
    if not data.idx_dir and data.name not in images.IDX_DIRS:
      return (f"config.data.idx_dir='': expected the folder of the idx files of "
              f"config.data.name={data.name!r} (only {sorted(images.IDX_DIRS)} have a default)")
  if data.source == "folder":
    if data.split not in images.FOLDER_SPLITS:
      return (f"config.data.split={data.split!r}: expected {images.FOLDER_SPLITS[0]!r} (the whole "
              f"folder) {source}")
    if not data.folder:
      return f"config.data.folder='': expected the folder of the images {source}"
  return None


def _errors(config: ml_collections.ConfigDict, num_devices: int) -> Iterator[Optional[str]]:
  """Every check's error or None, lazily and in order: later checks rely on earlier ones."""
  flat = traverse_util.flatten_dict(config.to_dict(), sep=".")
  yield from (_field_error(key, flat) for key in FIELDS)
  yield from (_field_error(key, flat, EMBEDDING_FIELDS) for key in EMBEDDING_FIELDS if key in flat)
  if "data" in config:  # An image config.
    yield from (_field_error(key, flat, DATA_FIELDS) for key in DATA_FIELDS)
  if "fid" in config:
    yield from (_field_error(key, flat, FID_FIELDS) for key in FID_FIELDS)
  if "meg" in config:
    yield from (_field_error(key, flat, MEG_FIELDS) for key in MEG_FIELDS)
  if "anomaly_class" in config or "anomaly_split" in config:
    yield from (_field_error(key, flat, ANOMALY_FIELDS) for key in ANOMALY_FIELDS)
  for name, fields in MODEL_FIELDS.items():
    if name in config:
      yield from (_field_error(key, flat, fields) for key in fields)
    elif config.model == name:
      yield (f"config.{name} is missing: expected a block like models.{name}.{name}_config() "
             f"for config.model={name!r}")
  yield _unknown_key_error(flat)
  yield _cross_field_error(config, num_devices)
  if "data" in config:
    yield _data_error(config.data)


def validate_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ValueError, in one line naming the key, its value and what was expected, on the first
  setting that cannot run on `num_devices` devices."""
  error = next(filter(None, _errors(config, num_devices)), None)
  if error:
    raise ValueError(error)


def flag_type(check: Check) -> Callable[[str], int]:
  """An argparse `type` for an integer flag: a value failing `check` is a one-line usage error."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      value = None  # Fails every check.
    if not check.ok(value):
      raise argparse.ArgumentTypeError(f"{text!r}: expected {check.expected}")
    return value
  return parse
