"""Bad input to the command line and to the benchmarks: one line that names it, nothing changed."""
import os
import sys

import pytest

from benchmarks import anomaly_table, mog_table, sampler_bias, step_cost
from smallgan_jax import main
from tests.main_test import run_main, snapshot

CONFIG_FILE = "expected a Python file whose get_config() returns an ml_collections.ConfigDict"

# (file name, contents or None for no file, the problem named). One row per bad --config file.
BAD_CONFIG_FILES = [
    ("missing.py", None, "does not exist"),
    ("syntax.py", "def get_config(:\n", "raises SyntaxError: invalid syntax (syntax.py, line 1)"),
    ("imports.py", "import no_such_module\n",
     "raises ModuleNotFoundError: No module named 'no_such_module'"),
    ("no_get_config.py", "x = 1\n", "defines no get_config()"),
    ("raises.py", "def get_config():\n  raise ValueError('no such setting')\n",
     "raises ValueError: no such setting"),
    ("returns_dict.py", "def get_config():\n  return {'seed': 0}\n",
     "has a get_config() returning dict"),
    ("config.yaml", "dataset: mog_grid\n", "raises NameError: name 'mog_grid' is not defined"),
    ("config.json", '{"seed": 0}\n', "defines no get_config()"),
    ("no_arg.py:64", "def get_config():\n  return None\n",
     "raises TypeError: get_config() takes 0 positional arguments but 1 was given"),
]


@pytest.mark.parametrize("name,contents,problem", BAD_CONFIG_FILES,
                         ids=[row[0] for row in BAD_CONFIG_FILES])
def test_bad_config_file_is_named(tmp_path, name, contents, problem):
  path = tmp_path / name.split(":")[0]
  if contents is not None:
    path.write_text(contents)
  assert main.config_file_problem(str(tmp_path / name)) == problem


def test_directory_as_config_is_named(tmp_path):
  assert main.config_file_problem(str(tmp_path)) == "is a directory"


@pytest.mark.parametrize("argv,expected", [
    (["main", "--workdir=w", "--config", "a.py", "--config.num_modes=4"], "a.py"),
    (["main", "--config=a.py:64"], "a.py:64"),
    (["main", "--workdir=w"], None),
    (["main", "--config"], None)],  # absl's own parsing names the missing value.
    ids=["separate value", "with get_config argument", "absent", "no value"])
def test_config_argument_is_read_as_absl_reads_it(argv, expected):
  assert main.config_argument(argv) == expected


def test_unexpected_argument_is_named():
  with pytest.raises(SystemExit) as e:
    main.main(["main", "extra"])
  assert e.value.code == "FATAL Unexpected arguments: ['extra']"


def test_missing_config_file_is_one_line_and_creates_nothing(tmp_path):
  out = run_main(str(tmp_path / "run"), config="configs/nope.py")
  assert out.returncode == 1
  assert out.stderr.strip() == ("FATAL Flags parsing error: --config='configs/nope.py' does not "
                                f"exist; {CONFIG_FILE}")
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag,error", [
    ("--num_processes=0", "flag --num_processes=0: expected a positive integer"),
    ("--config.mlp.width=32.5",
     "flag --config.mlp.width=32.5: invalid literal for int() with base 10: '32.5'")],
    ids=["--num_processes=0", "--config.mlp.width=32.5"])
def test_bad_flag_value_is_one_line(tmp_path, flag, error):
  """absl's own parsing (with this validator for --num_processes), before a config is used."""
  out = run_main(str(tmp_path / "run"), flag)
  assert out.returncode == 1
  assert out.stderr.splitlines()[0] == f"FATAL Flags parsing error: {error}"
  assert not (tmp_path / "run").exists()


def test_refused_run_changes_nothing_on_disk(tmp_path):
  """Validation runs before the workdir is touched: a bad value leaves a run's files as it found
  them."""
  workdir = tmp_path / "run"
  (workdir / "checkpoints" / "10").mkdir(parents=True)
  (workdir / "checkpoints" / "10" / "state").write_bytes(b"\x00\x01 checkpoint bytes")
  (workdir / "config.json").write_text('{"mog_std": 0.05}')
  (workdir / "samples_00000010.png").write_bytes(b"\x89PNG\r\n\x1a\n")
  before, paths = snapshot(workdir), sorted(workdir.rglob("*"))
  out = run_main(str(workdir), "--config.mog_std=-0.1", "--config.num_train_steps=2")
  assert out.returncode == 1
  assert out.stderr.strip().splitlines()[-1] == ("FATAL config.mog_std=-0.1: expected a positive "
                                                 "number")
  assert snapshot(workdir) == before and sorted(workdir.rglob("*")) == paths


# (module, flags, the error argparse prints after "<prog>: error: "). One row per bad flag value.
BAD_FLAGS = [
    (mog_table, ["--steps=0"], "argument --steps: '0': expected a positive integer"),
    (mog_table, ["--steps=1e3"], "argument --steps: '1e3': expected a positive integer"),
    (mog_table, ["--seeds=-1"], "argument --seeds: '-1': expected a positive integer"),
    (mog_table, ["--modes", "25", "30"],
     "argument --modes: '30': expected a perfect square (25, 36, ..., 100)"),
    (mog_table, ["--variants", "WGAN"], "argument --variants: invalid choice: 'WGAN' (choose from "
     "'GAN', 'Small-GAN', 'top-k', 'Small-GAN + top-k')"),
    (mog_table, ["--set", "lr"],
     "argument --set: --set 'lr': expected KEY=VALUE, e.g. optim.g_lr=3e-4"),
    (mog_table, ["--set", "optim.g_lr=-1"],
     "--set (GAN): config.optim.g_lr=-1.0: expected a positive number"),
    (mog_table, ["--set", "optim.g_lrr=1"],
     "--set (GAN): config.optim.g_lrr=1: not a known key (config.optim.g_lr?)"),
    (mog_table, ["--set", "optimm.g_lr=1"],
     "--set (GAN): Key \"optimm.g_lr\" cannot be set as \"optimm\" was not found."),
    (mog_table, ["--set", "optim.g_lr=abc"],
     "--set (GAN): Could not override field 'g_lr' (reference). abc is of original type "
     "<class 'str'> and cannot be casted to type <class 'float'>"),
    (mog_table, ["--set", "topk.nu=2", "--variants", "top-k"],
     "--set (top-k): config.topk.nu=2.0: expected a number in (0, 1]"),
    (mog_table, ["--save-samples", "/no/such/dir/x.npz"],
     "--save-samples='/no/such/dir/x.npz': expected a file in an existing, writable directory"),
    (mog_table, ["--save-samples", "."],
     "--save-samples='.': expected a file in an existing, writable directory"),
    (sampler_bias, ["--modes=30"],
     "argument --modes: '30': expected a perfect square (25, 36, ..., 100)"),
    (sampler_bias, ["--batches=0"], "argument --batches: '0': expected a positive integer"),
    (sampler_bias, ["--seed=-1"], "argument --seed: '-1': expected an integer in [0, 2**32)"),
    (sampler_bias, ["--seed=4294967296"],
     "argument --seed: '4294967296': expected an integer in [0, 2**32)"),
    (sampler_bias, ["--target_factors", "2", "0"],
     "argument --target_factors: '0': expected a positive integer"),
    (sampler_bias, ["--prior_factors", "x"],
     "argument --prior_factors: 'x': expected a positive integer"),
    (step_cost, ["--steps=0"], "argument --steps: '0': expected a positive integer"),
    (step_cost, ["--repeats=-2"], "argument --repeats: '-2': expected a positive integer"),
    (step_cost, ["--batch=0"], "argument --batch: '0': expected a positive integer"),
    (anomaly_table, ["--root=x", "--classes", "10"],
     "argument --classes: '10': expected a Fashion-MNIST class in [0, 9]"),
    (anomaly_table, ["--root=x", "--jobs=0"], "argument --jobs: '0': expected a positive integer"),
    (anomaly_table, ["--root=x", "--seeds", "-1"],
     "argument --seeds: '-1': expected an integer in [0, 2**32)"),
]


def flags_id(row):
  return f"{row[0].__name__.rsplit('.', 1)[-1]} {' '.join(row[1])}"


@pytest.mark.parametrize("module,argv,error", BAD_FLAGS, ids=[flags_id(row) for row in BAD_FLAGS])
def test_bad_benchmark_flag_is_one_line(module, argv, error, monkeypatch, capsys):
  prog = os.path.basename(module.__file__)
  monkeypatch.setattr(sys, "argv", [prog, *argv])
  with pytest.raises(SystemExit) as e:
    module.main()
  assert e.value.code == 2
  assert capsys.readouterr().err.strip().splitlines()[-1] == f"{prog}: error: {error}"
