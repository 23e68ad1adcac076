"""From a trained run to samples and scores: `runs.load_generator`, `generate` and `score` sample
as evaluation does, write what other tools read, and refuse a wrong workdir or step in one line."""
import glob
import json
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
from PIL import Image
import pytest

from smallgan_jax import datasets, evaluation, features, runs, sampling, score
from smallgan_jax.data import images
from smallgan_jax.metrics import image_scores
from tests.image_train_test import tiny_image_flags
from tests.main_test import ROOT, main_env, run_main

IMAGE_CONFIG = "configs/fashion_mnist_dcgan.py"


def cli(module, *flags):
  return subprocess.run([sys.executable, "-m", f"smallgan_jax.{module}", *flags], cwd=ROOT,
                        env=main_env(2), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("toy"))
  out = run_main(workdir, "--config.num_train_steps=20")
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
  """A tiny DCGAN (batch norm in the generator) trained 10 steps on 2 devices, checkpoints at 5
  and 10."""
  root = tmp_path_factory.mktemp("image")
  workdir = str(root / "run")
  out = run_main(workdir, *tiny_image_flags(root), "--config.num_train_steps=10",
                 "--config.checkpoint_every_steps=5", config=IMAGE_CONFIG, devices=2)
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


def logged_scalars(workdir):
  """tag -> value of the run's last evaluation, from its TensorBoard files."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  found = {}
  for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag.startswith("eval/"):
          found[value.tag[5:]] = float(tf.make_ndarray(value.tensor))
  return found


def test_score_reproduces_the_runs_last_evaluation_and_appends_it(toy_run):
  config = runs.read_config(toy_run)
  entry = score.score_run(toy_run, None, config.eval_num_samples)
  assert entry["step"] == 20 and entry["num"] == config.eval_num_samples
  logged = logged_scalars(toy_run)
  assert set(entry["metrics"]) == set(logged)
  for name, value in entry["metrics"].items():
    assert value == pytest.approx(logged[name], rel=1e-6), name
  score.score_run(toy_run, 10, 200)
  written = json.load(open(os.path.join(toy_run, score.SCORES_FILE)))
  assert [(e["step"], e["num"]) for e in written] == [(20, config.eval_num_samples), (10, 200)]


def test_more_samples_extend_the_evaluations_latents():
  """`score --num` larger than the evaluation's count scores a superset of its samples."""
  config = ml_collections.ConfigDict(
      {"seed": 3, "eval_num_samples": 50, "z_dim": 4, "prior": "normal"})
  few = evaluation.eval_latents(config)
  config.eval_num_samples = 400
  np.testing.assert_array_equal(evaluation.eval_latents(config)[:50], few)


def test_load_generator_samples_as_evaluation_does(image_run):
  config = runs.read_config(image_run)
  assert config.eval_batch_stats == "standing"
  state, step = runs.restore_state(image_run, config)
  assert step == 10
  z = np.asarray(sampling.sample_prior(jax.random.PRNGKey(5), (40, config.z_dim), config.prior))
  expected = evaluation.Sampler(config, state.g.apply_fn)(
      evaluation.generator_variables(config, state), z)
  np.testing.assert_array_equal(runs.load_generator(image_run)(z), expected)
  earlier = runs.load_generator(image_run, step=5)(z)
  assert not np.array_equal(earlier, expected)


def test_generate_writes_pngs_npz_and_grid_alike(image_run, tmp_path):
  folder, archive = tmp_path / "pngs", tmp_path / "samples.npz"
  for out in (folder, archive):
    result = cli("generate", f"--workdir={image_run}", "--num=30", f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
  arrays = np.load(archive)["arr_0"]
  assert arrays.shape == (30, 28, 28, 1) and arrays.dtype == np.uint8
  pngs = sorted(folder.glob("*.png"))
  assert len(pngs) == 30
  np.testing.assert_array_equal(np.asarray(Image.open(pngs[7]))[..., None], arrays[7])
  assert (tmp_path / "pngs_grid.png").exists() and (tmp_path / "samples_grid.png").exists()
  assert arrays.std() > 0


@pytest.mark.parametrize("args, expected", [
    (["--step=7"], "holds no checkpoint of step 7; it holds steps 5, 10"),
    (["--num=0"], "--num=0: expected a positive number"),
])
def test_generate_refuses_in_one_line(image_run, tmp_path, args, expected):
  result = cli("generate", f"--workdir={image_run}", f"--out={tmp_path / 'x'}", *args)
  assert result.returncode != 0
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("FATAL") and expected in last, last


def test_workdir_without_a_run_is_refused_in_one_line(tmp_path):
  for module, flags in (("generate", [f"--out={tmp_path / 'x'}"]), ("score", [])):
    result = cli(module, f"--workdir={tmp_path}", *flags)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0 and last.startswith("FATAL") and "holds no run" in last, last


def test_generate_writes_a_toy_runs_points_and_evaluations_plot_of_them(toy_run, tmp_path):
  """The .npz holds the generator's points of `--seed`'s prior latents (drawn here as
  `latent_chunks` draws its first chunk), under the image .npz's key; beside it, the plot
  evaluation draws of those points."""
  out = tmp_path / "points.npz"
  result = cli("generate", f"--workdir={toy_run}", "--num=300", "--seed=4", f"--out={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  with np.load(out) as written:
    assert sorted(written) == ["arr_0"]
    points = written["arr_0"]
  assert points.shape == (300, 2) and points.dtype == np.float32
  config = runs.read_config(toy_run)
  z = sampling.sample_prior(jax.random.fold_in(jax.random.PRNGKey(4), 0), (300, config.z_dim),
                            config.prior)
  np.testing.assert_allclose(points, runs.load_generator(toy_run)(z), rtol=1e-6, atol=1e-6)
  dataset = datasets.get_dataset(config)
  dataset.save_samples(str(tmp_path / "want.png"), points, "mog_grid, step 20",
                       dataset.evaluate(points))
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "points_plot.png")),
                                np.asarray(Image.open(tmp_path / "want.png")))
  assert "their scatter plot in" in result.stdout


def test_generate_refuses_png_folders_for_a_toy_run_in_one_line(toy_run, tmp_path):
  result = cli("generate", f"--workdir={toy_run}", "--num=5", f"--out={tmp_path / 'pngs'}")
  last = result.stderr.strip().splitlines()[-1]
  assert result.returncode != 0 and last.startswith("FATAL") and last.endswith(
      "a run on 'mog_grid' writes its points as one .npz (arr_0, (num, 2)), not a folder of "
      "PNGs; give a path ending in .npz"), last
  assert not (tmp_path / "pngs").exists()


def test_reference_out_writes_the_splits_statistics_as_pytorch_fid_reads_them(image_run, tmp_path):
  """mu and sigma of the training split under the scored network, computed here independently
  (float64 NumPy over every image's features); with two networks it is refused, writing nothing."""
  out = tmp_path / "reference.npz"
  score.score_run(image_run, None, 16, ["classifier2"], str(out))
  config = score.scoring_config(image_run, 16, ["classifier2"])
  source = images.get_source(config.data, config.data.split)
  network = image_scores.feature_network(config, "classifier2", source)
  pixels = source.images(np.arange(len(source)))
  rows = np.concatenate(list(features.iter_features(network, pixels)))
  with np.load(out) as written:
    assert sorted(written) == ["mu", "sigma"]
    np.testing.assert_allclose(written["mu"], rows.astype(np.float64).mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(written["sigma"], np.cov(rows.astype(np.float64), rowvar=False),
                               rtol=1e-9, atol=1e-9)
  two = tmp_path / "two.npz"
  with pytest.raises(ValueError, match=r"^--reference_out='.*two.npz' needs exactly one feature "
                     r"network; the run scores 2: choose one with --features$"):
    score.score_run(image_run, None, 16, ["classifier2", "classifier"], str(two))
  assert not two.exists()
