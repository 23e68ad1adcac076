"""Coverage metrics: precision, recall, density and coverage against the `prdc` package, KID
against clean-fid's formula in float64 NumPy, the Inception Score against Salimans et al.'s code,
their edge cases, the cached real-subset features, and the scores a feature network returns."""
import contextlib
import io

import jax.numpy as jnp
import numpy as np
import prdc
import pytest

from configs import fashion_mnist_dcgan
from smallgan_jax import features, validation
from smallgan_jax.metrics import coverage, fid, image_scores
from tests.fid_test import _Source, classifier, weights_file  # pylint: disable=unused-import

SMALL_BLOCKS = 600  # Block elements: blocks of 1-3 rows against a few hundred points.


def _prdc(real, fake, k):
  with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes.
    return prdc.compute_prdc(real, fake, nearest_k=k)


def _sets(seed, num_real=300, num_fake=240, dim=8, shift=0.4, scale=1.3):
  rng = np.random.default_rng(seed)
  real = rng.normal(size=(num_real, dim)).astype(np.float32)
  fake = (rng.normal(size=(num_fake, dim)) * scale + shift).astype(np.float32)
  return real, fake


@pytest.mark.parametrize("seed, num_real, num_fake, dim", [
    (0, 300, 240, 8), (1, 200, 200, 32), (2, 150, 260, 3)])
def test_precision_recall_density_coverage_match_prdc(seed, num_real, num_fake, dim):
  """P and R at k = 3 against prdc(nearest_k=3), D and C at k = 5 against prdc(nearest_k=5)."""
  real, fake = _sets(seed, num_real, num_fake, dim)
  got = coverage.RealReference.build(real, coverage.Settings(kid_subset_size=100),
                                     block_elements=SMALL_BLOCKS)(fake)
  at3, at5 = _prdc(real, fake, 3), _prdc(real, fake, 5)
  assert got["precision"] == at3["precision"] and got["recall"] == at3["recall"]
  assert got["density"] == pytest.approx(at5["density"], rel=1e-12)
  assert got["coverage"] == at5["coverage"]
  assert 0.05 < got["precision"] < 0.95 and 0.05 < got["coverage"] < 0.95  # Not trivial.


def test_ties_and_duplicates_match_prdc():
  """Small integer features: many points repeat and many distances equal a radius exactly (float32
  computes them exactly), so "inside" must be strictly closer, and a duplicate is a neighbour at
  distance 0, as in prdc."""
  rng = np.random.default_rng(14)
  real = rng.integers(0, 4, (200, 3)).astype(np.float32)
  fake = rng.integers(1, 5, (180, 3)).astype(np.float32)
  got = coverage.RealReference.build(real, coverage.Settings(kid_subset_size=50),
                                     block_elements=SMALL_BLOCKS)(fake)
  at3, at5 = _prdc(real, fake, 3), _prdc(real, fake, 5)
  assert (got["precision"], got["recall"]) == (at3["precision"], at3["recall"])
  assert (got["density"], got["coverage"]) == (pytest.approx(at5["density"]), at5["coverage"])


def test_other_ks_match_prdc_too():
  real, fake = _sets(3)
  settings = coverage.Settings(pr_k=1, dc_k=7, kid_subset_size=50)
  got = coverage.RealReference.build(real, settings)(fake)
  at1, at7 = _prdc(real, fake, 1), _prdc(real, fake, 7)
  assert (got["precision"], got["recall"]) == (at1["precision"], at1["recall"])
  assert (got["density"], got["coverage"]) == (pytest.approx(at7["density"]), at7["coverage"])


def test_identical_sets_score_one_and_disjoint_sets_zero():
  real, _ = _sets(4)
  reference = coverage.RealReference.build(real, coverage.Settings(kid_subset_size=100))
  same = reference(real.copy())
  assert same["precision"] == same["recall"] == same["coverage"] == 1.0
  far = reference(real + 100.0)
  assert far["precision"] == far["recall"] == far["density"] == far["coverage"] == 0.0
  assert far["kid"] > 1e3 * abs(same["kid"])


def test_blocked_and_unblocked_passes_agree():
  real, fake = _sets(5, 210, 190)
  settings = coverage.Settings(kid_subsets=7, kid_subset_size=60)
  blocked = coverage.RealReference.build(real, settings, block_elements=4 * 210)(fake)
  whole = coverage.RealReference.build(real, settings, block_elements=10**9)(fake)
  assert coverage.block_rows(190, 210, 4 * 210) == 4  # 48 blocks, the last one padded.
  assert coverage.block_rows(190, 210, 10**9) == 190  # One block.
  kid_blocked, kid_whole = blocked.pop("kid"), whole.pop("kid")
  assert blocked == whole
  assert kid_blocked == pytest.approx(kid_whole, rel=1e-6)


def _kid_float64(real, fake, fake_subsets, real_subsets):
  """clean-fid's `kernel_distance` in float64, on the given subsets."""
  dim, size = real.shape[1], fake_subsets.shape[1]
  total = 0.0
  for fake_rows, real_rows in zip(fake_subsets, real_subsets):
    x, y = fake[fake_rows].astype(np.float64), real[real_rows].astype(np.float64)
    a = (x @ x.T / dim + 1) ** 3 + (y @ y.T / dim + 1) ** 3
    b = (x @ y.T / dim + 1) ** 3
    total += (a.sum() - np.diag(a).sum()) / (size - 1) - b.sum() * 2 / size
  return total / len(fake_subsets) / size


@pytest.mark.parametrize("num_real, num_fake, size", [(400, 300, 100), (400, 50, 100)])
def test_kid_matches_a_float64_formula_on_the_same_subsets(num_real, num_fake, size):
  """ReLU-like features as the Inception's; with fewer generated samples than a subset holds,
  both sides' subsets shrink to that count."""
  rng = np.random.default_rng(6)
  real = np.maximum(rng.normal(0.3, 0.5, (num_real, 64)), 0).astype(np.float32)
  fake = np.maximum(rng.normal(0.35, 0.5, (num_fake, 64)), 0).astype(np.float32)
  settings = coverage.Settings(kid_subsets=10, kid_subset_size=size)
  got = coverage.RealReference.build(real, settings, block_elements=SMALL_BLOCKS * 20)(fake)
  used = min(size, num_fake)
  fake_subsets = coverage.kid_subsets(10, used, num_fake, side=0)
  real_subsets = coverage.kid_subsets(10, used, num_real, side=1)
  assert all(len(set(rows)) == used for rows in fake_subsets)  # Without replacement.
  want = _kid_float64(real, fake, fake_subsets, real_subsets)
  assert got["kid"] == pytest.approx(want, rel=1e-4) and want > 1e-3


def test_kid_is_near_zero_for_one_distribution_and_needs_two_samples():
  rng = np.random.default_rng(7)
  real, fake = rng.uniform(size=(2, 500, 16)).astype(np.float32)
  reference = coverage.RealReference.build(real, coverage.Settings(kid_subset_size=200))
  assert abs(reference(fake)["kid"]) < 0.1 * reference(fake + 0.3)["kid"]
  with pytest.raises(ValueError, match="at least 2 samples") as error:
    coverage.kid_subset_size(coverage.Settings(), 1, 500)
  assert "\n" not in str(error.value)


def test_bad_features_fail_in_one_line():
  real, fake = _sets(8)
  reference = coverage.RealReference.build(real, coverage.Settings(kid_subset_size=50))
  with pytest.raises(ValueError, match="dimension 3; the real ones 8"):
    reference(fake[:, :3])
  with pytest.raises(ValueError, match=r"N >= 6; got \(5, 8\)"):
    coverage.RealReference.build(real[:5])
  with pytest.raises(ValueError, match="1 generated feature values are not finite"):
    reference(np.where(np.arange(fake.size).reshape(fake.shape) == 3, np.nan, fake))


def _inception_score_reference(logits, splits):
  """Salimans et al.'s `get_inception_score` on softmax predictions, in float64."""
  logits = np.asarray(logits, np.float64)
  preds = np.exp(logits - logits.max(1, keepdims=True))
  preds /= preds.sum(1, keepdims=True)
  scores = []
  for i in range(splits):
    part = preds[(i * preds.shape[0] // splits):((i + 1) * preds.shape[0] // splits), :]
    kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
    scores.append(np.exp(np.mean(np.sum(kl, 1))))
  return np.mean(scores), np.std(scores)


def test_inception_score_matches_the_original_formula():
  logits = np.random.default_rng(9).normal(0, 3, (1003, 1008))
  mean, std = coverage.inception_score(logits)
  want_mean, want_std = _inception_score_reference(logits, 10)
  assert mean == pytest.approx(want_mean, rel=1e-10) and std == pytest.approx(want_std, rel=1e-8)
  assert coverage.inception_score(np.zeros((50, 10)))[0] == pytest.approx(1.0)  # Uniform: 1.
  confident = np.tile(np.eye(5) * 50, (20, 1))  # Every split: 10 samples, each class twice.
  assert coverage.inception_score(confident)[0] == pytest.approx(5.0, rel=1e-6)
  with pytest.raises(ValueError, match="N >= 10 splits"):
    coverage.inception_score(logits[:9])


def test_inception_logits_are_pool3_times_the_torch_fc_weight_without_bias(weights_file):
  """torch-fidelity's `logits_unbiased`: x.mm(fc.weight.T), from the weights as pytorch-fid
  stores them (fc.weight (1008, 2048))."""
  path, flat = weights_file
  network = features.load_inception(str(path))
  torch_fc_weight = flat["params/fc/kernel"].T
  pool3 = np.random.default_rng(10).uniform(0, 1, (4, 2048)).astype(np.float32)
  np.testing.assert_allclose(network.logits(pool3),
                             pool3.astype(np.float64) @ torch_fc_weight.T, rtol=1e-5,
                             atol=1e-5)
  assert np.abs(flat["params/fc/bias"]).max() > 0  # The bias would have shown.


# ---------------------------------------------------------------------------------------------
# The cached features of the real subset.


def test_reference_features_are_the_seeded_subsets_cached_once_and_refused_if_stale(
    classifier, tmp_path):
  rng = np.random.default_rng(11)
  images = rng.integers(0, 256, (250, 28, 28, 1), dtype=np.uint8)
  source = _Source(images)
  first = fid.reference_features(source, classifier, 100, str(tmp_path), batch_size=64)
  indices = fid.subset_indices(250, 100)
  assert len(set(indices)) == 100 and np.all(np.diff(indices) > 0)
  assert not np.array_equal(indices, np.arange(100))  # A draw, not the first images.
  want = np.concatenate(list(features.iter_features(classifier, images[indices], batch_size=64)))
  np.testing.assert_array_equal(first, want)
  served = source.served
  second = fid.reference_features(source, classifier, 100, str(tmp_path), batch_size=64)
  assert source.served - served < 100  # Only the sample fingerprint's images, not a pass.
  np.testing.assert_array_equal(first, second)
  path = fid.features_path(str(tmp_path), source.name, classifier, 100)
  assert path.name == f"toy.train.fid-classifier-all.{'ab' * 6}.features-100.npz"
  assert len(fid.reference_features(source, classifier, 1000, str(tmp_path))) == 250  # All.
  stored = path.read_bytes()
  other = _Source(images[::-1].copy())
  with pytest.raises(fid.StatisticsCacheError, match="FID features cache .* other images") as err:
    fid.reference_features(other, classifier, 100, str(tmp_path), batch_size=64)
  assert "\n" not in str(err.value) and path.read_bytes() == stored  # Refused, not rewritten.


def test_features_of_another_subset_are_refused(classifier, tmp_path, monkeypatch):
  source = _Source(np.random.default_rng(12).integers(0, 256, (80, 28, 28, 1), dtype=np.uint8))
  fid.reference_features(source, classifier, 40, str(tmp_path), batch_size=64)
  monkeypatch.setattr(fid, "subset_indices", lambda n, count: np.arange(min(n, count)))
  with pytest.raises(fid.StatisticsCacheError, match="seed-0 subset of 40"):
    fid.reference_features(source, classifier, 40, str(tmp_path), batch_size=64)


# ---------------------------------------------------------------------------------------------
# What a feature network's score returns, and the config.


def _pixel_network(name="mean-pixel", logits=None) -> features.FeatureNetwork:
  """Features: each image's mean pixel and its first pixel, over 255."""
  apply = lambda variables, pixels: jnp.stack(
      [pixels.reshape(len(pixels), -1).mean(1), pixels.reshape(len(pixels), -1)[:, 0]], 1) / 255
  return features.FeatureNetwork(name, apply, {}, "0" * 64, logits)


def test_a_networks_score_is_a_dict_named_with_its_fids_prefix():
  rng = np.random.default_rng(13)
  real, fake = rng.integers(0, 256, (2, 200, 4, 4, 1), dtype=np.uint8)
  weights = rng.normal(size=(2, 6))
  network = _pixel_network(logits=lambda features: features @ weights)
  real_features = np.concatenate(list(features.iter_features(network, real)))
  fake_features = np.concatenate(list(features.iter_features(network, fake)))
  settings = coverage.Settings(kid_subset_size=50)
  reference = coverage.RealReference.build(real_features, settings)
  stats = fid.feature_statistics(real_features)
  got = image_scores.FIDScore("classifier_fid", network, stats, reference)(fake)
  want = {"classifier_" + k: v for k, v in reference(fake_features).items()}
  want["classifier_fid"] = fid.fid(fid.feature_statistics(fake_features), stats)
  mean, std = coverage.inception_score(fake_features @ weights)
  want.update(classifier_inception_score=mean, classifier_inception_score_std=std)
  assert got.keys() == want.keys()
  assert all(got[k] == pytest.approx(want[k], rel=1e-9) for k in want), (got, want)
  plain = image_scores.FIDScore("fid", _pixel_network(), stats)(fake)
  assert plain == {"fid": pytest.approx(want["classifier_fid"], rel=1e-9)}


def test_fid_config_defaults_and_bad_values():
  config = fashion_mnist_dcgan.get_config()
  assert (config.fid.coverage, config.fid.pr_k, config.fid.dc_k, config.fid.kid_subsets,
          config.fid.kid_subset_size, config.fid.real_subset) == (True, 3, 5, 100, 1000, 0)
  assert image_scores.real_subset_size(config) == config.eval_num_samples == 10_000
  validation.validate_config(config, 1)
  config.fid.dc_k = 0
  with pytest.raises(ValueError, match=r"config.fid.dc_k=0: expected a positive integer"):
    validation.validate_config(config, 1)
