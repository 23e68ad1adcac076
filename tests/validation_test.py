"""validate_config: every bad config value or combination is refused in one line that names it."""
import argparse
import importlib
import math
import re

from flax import traverse_util
import ml_collections
import pytest

from configs import default
from smallgan_jax import validation
from tests.train_test import CONFIGS, small_config


def config_with(overrides, base=None):
  """`base` (the small config by default) with `overrides` set as a config file could set them:
  in a new ConfigDict, past the type checks of an existing one, so a wrong type reaches
  validate_config too."""
  flat = traverse_util.flatten_dict((base or small_config()).to_dict(), sep=".")
  return ml_collections.ConfigDict(traverse_util.unflatten_dict({**flat, **overrides}, sep="."))


@pytest.mark.parametrize("key,value,message", [
    ("batch_size", 0, "config.batch_size=0"),
    ("coreset.factor_prior", -1, "config.coreset.factor_prior=-1"),
    ("topk.decay_steps", 0, "config.topk.decay_steps=0"),
    ("topk.scope", "everywhere", "config.topk.scope='everywhere'"),
    ("gradient_penalty.weight", -1.0, "weight=-1.0"),
    ("gradient_penalty.on", "fake", "on='fake'")])
def test_bad_config_values_are_named(key, value, message):
  config = small_config({key: value})
  with pytest.raises(ValueError, match=message.replace(".", r"\.")):
    validation.validate_config(config, num_devices=1)


def test_batch_must_split_over_devices():
  with pytest.raises(ValueError, match="batch_size=16 must be divisible by the 3 devices"):
    validation.validate_config(small_config(), num_devices=3)


# (overrides, the whole message). One row per bad input of docs/bad_inputs.md's config table.
BAD = [
    ({"seed": -1}, "config.seed=-1: expected an integer in [0, 2**32)"),
    ({"seed": 2**32}, "config.seed=4294967296: expected an integer in [0, 2**32)"),
    ({"dataset": "mnist"},
     "config.dataset='mnist': expected one of ('mog_grid', 'mog_ring', 'images')"),
    ({"num_modes": 30}, "config.num_modes=30: expected a perfect square (25, 36, ..., 100) for "
                        "config.dataset='mog_grid'"),
    ({"dataset": "mog_ring", "num_modes": 0}, "config.num_modes=0: expected a positive integer"),
    ({"mog_std": -0.1}, "config.mog_std=-0.1: expected a positive number"),
    ({"mog_std": 0.0}, "config.mog_std=0.0: expected a positive number"),
    ({"mog_std": math.nan}, "config.mog_std=nan: expected a positive number"),
    ({"mog_std": "0.05"}, "config.mog_std='0.05': expected a positive number"),
    ({"mog_spacing": 0.0}, "config.mog_spacing=0.0: expected a positive number"),
    ({"ring_radius": -2.0}, "config.ring_radius=-2.0: expected a positive number"),
    ({"model": "resnet"},
     "config.model='resnet': expected one of ('mlp', 'dcgan', 'sngan', 'sagan')"),
    ({"ema_decay": 1.0}, "config.ema_decay=1.0: expected a number in [0, 1)"),
    ({"topk.decay_per_epoch": True}, "config.topk.decay_per_epoch=True: expected False for "
                                     "config.dataset='mog_grid' (only image datasets have epochs)"),
    ({"mlp.width": 0}, "config.mlp.width=0: expected a positive integer"),
    ({"mlp.width": 32.0}, "config.mlp.width=32.0: expected a positive integer"),
    ({"mlp.hidden_layers": 0}, "config.mlp.hidden_layers=0: expected a positive integer"),
    ({"loss": "wgan"}, "config.loss='wgan': expected one of ('non_saturating', 'hinge', "
     "'wasserstein')"),
    ({"z_dim": 0}, "config.z_dim=0: expected a positive integer"),
    ({"prior": "cauchy"}, "config.prior='cauchy': expected one of ('uniform', 'normal')"),
    ({"batch_size": 0}, "config.batch_size=0: expected a positive integer"),
    ({"g_batch_size": -64}, "config.g_batch_size=-64: expected a positive integer"),
    ({"n_dis": 0}, "config.n_dis=0: expected a positive integer"),
    ({"coreset.factor_prior": True},
     "config.coreset.factor_prior=True: expected a positive integer"),
    ({"coreset.factor_target": 0}, "config.coreset.factor_target=0: expected a positive integer"),
    ({"coreset.prior_scope": "host"},
     "config.coreset.prior_scope='host': expected one of ('device', 'global')"),
    ({"coreset.target_scope": "host"},
     "config.coreset.target_scope='host': expected one of ('device', 'global')"),
    ({"coreset.target_scope": None},
     "config.coreset.target_scope=None: expected one of ('device', 'global')"),
    ({"coreset.weighting": "voronoi"},
     "config.coreset.weighting='voronoi': expected one of ('none', 'target', 'cells')"),
    ({"topk.enabled": 1}, "config.topk.enabled=1: expected True or False"),
    ({"topk.gamma": 0.0}, "config.topk.gamma=0.0: expected a number in (0, 1]"),
    ({"topk.nu": 1.5}, "config.topk.nu=1.5: expected a number in (0, 1]"),
    ({"topk.decay_steps": 0}, "config.topk.decay_steps=0: expected a positive integer"),
    ({"topk.scope": "everywhere"},
     "config.topk.scope='everywhere': expected one of ('global', 'local')"),
    ({"gradient_penalty.weight": -1.0},
     "config.gradient_penalty.weight=-1.0: expected a number >= 0"),
    ({"gradient_penalty.weight": math.inf},
     "config.gradient_penalty.weight=inf: expected a number >= 0"),
    ({"gradient_penalty.on": "fake"},
     "config.gradient_penalty.on='fake': expected one of ('real', 'interpolates')"),
    ({"gradient_penalty.center": -1.0},
     "config.gradient_penalty.center=-1.0: expected a number >= 0"),
    ({"optim.g_lr": -1e-4}, "config.optim.g_lr=-0.0001: expected a positive number"),
    ({"optim.d_lr": 0.0}, "config.optim.d_lr=0.0: expected a positive number"),
    ({"optim.b1": 1.0}, "config.optim.b1=1.0: expected a number in [0, 1)"),
    ({"optim.b2": -0.1}, "config.optim.b2=-0.1: expected a number in [0, 1)"),
    ({"optim.schedule": "cosine"},
     "config.optim.schedule='cosine': expected one of ('constant', 'linear')"),
    ({"num_train_steps": 0}, "config.num_train_steps=0: expected a positive integer"),
    ({"num_train_steps": 1e4}, "config.num_train_steps=10000.0: expected a positive integer"),
    ({"steps_in_flight": 0}, "config.steps_in_flight=0: expected a positive integer"),
    ({"log_every_steps": 0}, "config.log_every_steps=0: expected a positive integer"),
    ({"eval_every_steps": -1}, "config.eval_every_steps=-1: expected a positive integer"),
    ({"eval_num_samples": 0}, "config.eval_num_samples=0: expected a positive integer"),
    ({"checkpoint_every_steps": 0},
     "config.checkpoint_every_steps=0: expected a positive integer"),
    ({"checkpoint_max_to_keep": 0},
     "config.checkpoint_max_to_keep=0: expected a positive integer"),
    ({"num_mode": 64}, "config.num_mode=64: not a known key (config.num_modes?)"),
]


def row_id(row):
  return ",".join(f"{k}={v!r}" for k, v in row[0].items())


@pytest.mark.parametrize("overrides,message", BAD, ids=[row_id(row) for row in BAD])
def test_bad_value_is_refused_in_one_line_naming_it(overrides, message):
  with pytest.raises(ValueError) as e:
    validation.validate_config(config_with(overrides), num_devices=1)
  assert str(e.value) == message


def test_missing_key_is_named():
  flat = traverse_util.flatten_dict(small_config().to_dict(), sep=".")
  del flat["steps_in_flight"]
  config = ml_collections.ConfigDict(traverse_util.unflatten_dict(flat, sep="."))
  with pytest.raises(ValueError) as e:
    validation.validate_config(config, num_devices=1)
  assert str(e.value) == "config.steps_in_flight is missing: expected a positive integer"


def test_g_batch_must_split_over_devices():
  with pytest.raises(ValueError) as e:
    validation.validate_config(config_with({"g_batch_size": 20}), num_devices=8)
  assert str(e.value) == "config.g_batch_size=20 must be divisible by the 8 devices"


def test_global_target_batch_must_split_over_devices():
  """A global target core-set hands each device an equal slice of the picks."""
  config = config_with({"coreset.target_scope": "global", "batch_size": 64, "g_batch_size": 64})
  validation.validate_config(config, num_devices=8)
  with pytest.raises(ValueError) as e:
    validation.validate_config(config, num_devices=6)
  assert str(e.value) == "config.batch_size=64 must be divisible by the 6 devices"


def test_every_default_key_has_a_check():
  """A new config field needs a row in FIELDS, or every run would refuse it as unknown."""
  flat = traverse_util.flatten_dict(default.get_config().to_dict(), sep=".")
  assert set(validation.FIELDS) == set(flat)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_validates(name):
  config = importlib.import_module(f"configs.{name}").get_config()
  validation.validate_config(config, num_devices=8)


def test_int_where_a_float_is_expected_is_accepted():
  validation.validate_config(config_with({"mog_std": 1, "optim.b1": 0}), num_devices=1)


@pytest.mark.parametrize("check,text,expected", [
    (validation.POSITIVE_INT, "3", 3),
    (validation.GRID_MODES, "49", 49),
    (validation.SEED, "0", 0)])
def test_flag_type_parses_good_values(check, text, expected):
  assert validation.flag_type(check)(text) == expected


@pytest.mark.parametrize("check,text,message", [
    (validation.POSITIVE_INT, "0", "'0': expected a positive integer"),
    (validation.POSITIVE_INT, "2.5", "'2.5': expected a positive integer"),
    (validation.GRID_MODES, "30", "'30': expected a perfect square (25, 36, ..., 100)"),
    (validation.SEED, "-1", "'-1': expected an integer in [0, 2**32)")])
def test_flag_type_refuses_bad_values(check, text, message):
  with pytest.raises(argparse.ArgumentTypeError) as e:
    validation.flag_type(check)(text)
  assert str(e.value) == message


@pytest.mark.parametrize("key,value,message", [
    ("coreset.embedding", "resnet", "config.coreset.embedding='resnet': expected one of"),
    ("coreset.embedding_dim", 0, "config.coreset.embedding_dim=0: expected a positive integer"),
    ("coreset.embedding_classes", (3,),
     "config.coreset.embedding_classes=(3,): expected a tuple of at least 2 distinct class ids"),
    ("coreset.embedding_classes", (1, 1),
     "config.coreset.embedding_classes=(1, 1): expected a tuple of at least 2 distinct"),
    ("coreset.projection_seed", -1, "config.coreset.projection_seed=-1: expected an integer"),
])
def test_embedding_settings_of_image_configs_are_checked(key, value, message):
  config = importlib.import_module("configs.fashion_mnist_dcgan").get_config()
  validation.validate_config(config, num_devices=1)
  with pytest.raises(ValueError, match=re.escape(message)):
    validation.validate_config(config_with({key: value}, config), num_devices=1)


@pytest.mark.parametrize("config,overrides,message", [
    ("fashion_mnist_dcgan", {"fid.features": ("inception", "fid")},
     "config.fid.features=('inception', 'fid'): expected a tuple of distinct names from "
     "('inception', 'classifier', 'classifier2') (possibly empty)"),
    ("fashion_mnist_dcgan", {"fid.classifier_seed": -1},
     "config.fid.classifier_seed=-1: expected an integer in [0, 2**32)"),
    ("cifar_sngan", {"data.resolution": 28},
     "config.data.resolution=28: expected one of (16, 32, 64, 128) for config.model='sngan'"),
    ("cifar_sngan", {"sngan.sync_batch_norm": 1},
     "config.sngan.sync_batch_norm=1: expected True or False"),
    ("lsun_church_sagan", {"data.resolution": 32},
     "config.sagan.attention_resolution=32: expected one of (8, 16) for "
     "config.data.resolution=32"),
    ("lsun_church_sagan", {"model": "sngan"},
     "config.sngan is missing: expected a block like models.sngan.sngan_config() for "
     "config.model='sngan'"),
    ("fashion_mnist_meg", {"objective": "wgan"},
     "config.objective='wgan': expected one of ('gan', 'meg', 'bigan')"),
    ("fashion_mnist_meg", {"anomaly_class": -1}, "config.anomaly_class=-1: expected a class id >= 0"),
    ("fashion_mnist_meg", {"meg.entropy_weight": -1.0},
     "config.meg.entropy_weight=-1.0: expected a number >= 0"),
    ("fashion_mnist_meg", {"meg.entropy": 1.0},
     "config.meg.entropy=1.0: not a known key (config.meg.entropy_weight?)"),
    ("fashion_mnist_dcgan", {"objective": "meg"},
     "config.meg is missing: expected a block like {'entropy_weight': 1.0} for "
     "config.objective='meg'"),
    ("cifar_sngan", {"objective": "bigan"},
     "config.model='sngan': expected 'dcgan' for config.objective='bigan'"),
    ("fashion_mnist_bigan", {"g_batch_size": 128},
     "config.g_batch_size=128: expected config.batch_size=64 for config.objective='bigan' (the "
     "encoder trains on the last critic batch)"),
    ("fashion_mnist_bigan", {"gradient_penalty.weight": 10.0},
     "config.gradient_penalty.weight=10.0: expected 0 for config.objective='bigan' (its critic "
     "takes (x, z) pairs)"),
])
def test_image_model_and_score_settings_are_checked(config, overrides, message):
  base = importlib.import_module(f"configs.{config}").get_config()
  with pytest.raises(ValueError) as e:
    validation.validate_config(config_with(overrides, base), num_devices=1)
  assert str(e.value) == message
