"""FID: the Fréchet distance against closed forms and a float64 reference, statistics, the cache,
the weights converter and loader, and the FID Inception's pooling, resizing and output shapes."""
import logging
import types
import warnings

from flax import traverse_util
import jax
import numpy as np
import pytest
from scipy import linalg

from smallgan_jax import features
from smallgan_jax.features import convert_inception, inception
from smallgan_jax.metrics import fid
from smallgan_jax.models import classifier as classifier_model


def _random_covariance(rng, dim, samples=None):
  x = rng.normal(size=(samples or 2 * dim, dim))
  return x.T @ x / len(x) + 0.1 * np.eye(dim)


def _closed_form_commuting(mu1, a, mu2, b):
  """FID of N(mu1, Q diag(a) Q^T) and N(mu2, Q diag(b) Q^T): the covariances commute."""
  return float(np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b)))


def _reference_fid(mu1, s1, mu2, s2):
  """Plain float64 NumPy/SciPy: Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2), a symmetric PSD
  matrix whose root is the sum of the roots of its eigenvalues."""
  w, v = linalg.eigh(s1)
  root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  inner = np.clip(linalg.eigvalsh(root1 @ s2 @ root1), 0, None)
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(inner)))


def test_one_dimensional_gaussians_match_the_closed_form():
  assert fid.frechet_distance(1.0, 4.0, -2.0, 9.0) == pytest.approx(9.0 + (2.0 - 3.0) ** 2)


def test_diagonal_and_commuting_covariances_match_the_closed_form():
  rng = np.random.default_rng(0)
  dim = 64
  mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
  a, b = rng.uniform(0.1, 3.0, dim), rng.uniform(0.1, 3.0, dim)
  expected = _closed_form_commuting(mu1, a, mu2, b)
  assert fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected,
                                                                                  rel=1e-12)
  q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
  got = fid.frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
  assert got == pytest.approx(expected, rel=1e-10)
  assert fid.frechet_distance(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0.0, abs=1e-10)


def test_random_covariances_match_a_float64_reference():
  rng = np.random.default_rng(1)
  for dim in (8, 64):
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    s1, s2 = _random_covariance(rng, dim), _random_covariance(rng, dim)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        _reference_fid(mu1, s1, mu2, s2), rel=1e-9)


def test_a_singular_product_adds_eps_to_both_covariances(monkeypatch):
  """pytorch-fid's fallback: where sqrtm of the product is not finite, retry on S + eps * I."""
  real_sqrtm, calls = linalg.sqrtm, []

  def sqrtm_failing_once(matrix):
    calls.append(matrix)
    return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

  monkeypatch.setattr(fid.linalg, "sqrtm", sqrtm_failing_once)
  mu1, mu2 = np.zeros(3), np.ones(3)
  a, b, eps = np.array([1.0, 0.0, 2.0]), np.array([0.0, 4.0, 2.0]), 1e-2
  got = fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b), eps=eps)
  # The distance of the offset covariances, less the 2 * eps * dim the traces do not get.
  offset = _closed_form_commuting(mu1, a + eps, mu2, b + eps) - 2 * eps * 3
  assert len(calls) == 2 and got == pytest.approx(offset, rel=1e-12)
  assert got != pytest.approx(_closed_form_commuting(mu1, a, mu2, b), rel=1e-4)


def test_an_imaginary_root_is_dropped_if_small_and_refused_if_large(monkeypatch):
  real_sqrtm = linalg.sqrtm
  s = np.diag([1.0, 4.0])
  monkeypatch.setattr(fid.linalg, "sqrtm", lambda m: real_sqrtm(m) + 1e-6j * np.eye(2))
  assert fid.frechet_distance(np.zeros(2), s, np.zeros(2), s) == pytest.approx(0.0, abs=1e-9)
  monkeypatch.setattr(fid.linalg, "sqrtm", lambda m: real_sqrtm(m) + 0.5j * np.eye(2))
  with pytest.raises(ValueError, match="imaginary component"):
    fid.frechet_distance(np.zeros(2), s, np.zeros(2), s)


def _pytorch_fid(mu1, sigma1, mu2, sigma2, eps=1e-6):
  """pytorch-fid's `calculate_frechet_distance` (0.3.0) as written, run with this scipy (whose
  sqrtm deprecates `disp` and warns of a singular matrix: both ignored here)."""
  diff = mu1 - mu2
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
      offset = np.eye(sigma1.shape[0]) * eps
      covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
    covmean = covmean.real
  return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def test_a_dead_feature_dimension_warns_nobody_logs_one_line_and_matches_pytorch_fid(caplog):
  """A feature that never varies (a ReLU that never fires) makes the covariance product singular:
  scipy's sqrtm warns and returns a finite root, which pytorch-fid keeps, so no eps offset."""
  rng = np.random.default_rng(8)
  real, fake = rng.normal(size=(400, 12)), 0.5 + 1.3 * rng.normal(size=(400, 12))
  real[:, 4] = fake[:, 4] = 0.0
  real_stats, fake_stats = fid.feature_statistics(real), fid.feature_statistics(fake)
  with warnings.catch_warnings(record=True) as caught:  # The premise: scipy warns, stays finite.
    warnings.simplefilter("always")
    root = linalg.sqrtm(real_stats.sigma @ fake_stats.sigma)
  assert [w.category for w in caught] == [linalg.LinAlgWarning] and np.isfinite(root).all()
  with warnings.catch_warnings(), caplog.at_level(logging.INFO):
    warnings.simplefilter("error")  # Any warning reaching the user fails the test.
    got = fid.fid(real_stats, fake_stats)
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("FID")]
  assert len(lines) == 1, lines
  assert "'Matrix is singular'" in lines[0] and "kept without an eps offset" in lines[0]
  assert got == pytest.approx(_pytorch_fid(*real_stats[:2], *fake_stats[:2]), rel=1e-12)
  offset = np.eye(12) * 1e-6  # The offset rule applied regardless would differ beyond rounding.
  with_offset = _pytorch_fid(real_stats.mu, real_stats.sigma + offset, fake_stats.mu,
                             fake_stats.sigma + offset) - 2 * 12 * 1e-6
  assert got != pytest.approx(with_offset, rel=1e-9)


def test_statistics_in_batches_equal_numpy_in_float64():
  rng = np.random.default_rng(2)
  features = (1e3 + rng.normal(size=(1000, 16))).astype(np.float32)
  accumulator = fid.StatisticsAccumulator()
  for chunk in np.split(features, [7, 300, 301, 640]):
    accumulator.update(chunk)
  got, want = accumulator.result(), fid.feature_statistics(features)
  assert got.count == want.count == 1000
  np.testing.assert_allclose(got.mu, np.mean(features.astype(np.float64), axis=0), rtol=1e-14)
  np.testing.assert_allclose(got.sigma, np.cov(features.astype(np.float64), rowvar=False),
                             rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(want.sigma, got.sigma, rtol=1e-9, atol=1e-12)


def test_to_pixels_rounds_and_clips():
  np.testing.assert_array_equal(features.to_pixels(np.array([-2.0, -1.0, 0.0, 1.0, 3.0, np.nan])),
                                [0, 0, 128, 255, 255, 0])


# ---------------------------------------------------------------------------------------------
# The FID Inception: pooling, resizing, weights, shapes.


def test_average_pool_excludes_the_padding():
  x = np.random.default_rng(3).normal(size=(1, 4, 5, 2)).astype(np.float32)
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  inside = np.pad(np.ones((4, 5)), 1)
  want = np.empty_like(x)
  for i in range(4):
    for j in range(5):
      window = padded[0, i:i + 3, j:j + 3]
      want[0, i, j] = window.sum(axis=(0, 1)) / inside[i:i + 3, j:j + 3].sum()
  np.testing.assert_allclose(inception.avg_pool_3x3(x), want, rtol=1e-6)
  ones = np.ones((1, 3, 3, 1), np.float32)
  np.testing.assert_allclose(inception.avg_pool_3x3(ones), ones)
  assert float(inception.avg_pool_3x3(ones, count_include_pad=True)[0, 0, 0, 0]) == pytest.approx(
      4 / 9)


def test_mixed_7c_max_pool_ignores_the_padding():
  x = -1.0 - np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
  np.testing.assert_array_equal(inception.max_pool_3x3(x)[0, :, :, 0],
                                [[-1, -1, -2], [-1, -1, -2], [-4, -4, -5]])


def _torch_bilinear_reference(image, size):
  """Per output pixel, torch's `interpolate(mode="bilinear", align_corners=False)` on (H, W)."""
  def taps(in_size, o):
    s = max((o + 0.5) * in_size / size - 0.5, 0.0)
    lo = min(int(np.floor(s)), in_size - 1)
    return lo, min(lo + 1, in_size - 1), s - lo
  out = np.empty((size, size))
  for oy in range(size):
    y0, y1, fy = taps(image.shape[0], oy)
    for ox in range(size):
      x0, x1, fx = taps(image.shape[1], ox)
      out[oy, ox] = ((1 - fy) * ((1 - fx) * image[y0, x0] + fx * image[y0, x1])
                     + fy * ((1 - fx) * image[y1, x0] + fx * image[y1, x1]))
  return out


@pytest.mark.parametrize("in_size,out_size", [(7, 13), (13, 5), (28, 37), (5, 5), (28, 299)])
def test_resize_matches_torch_bilinear_without_antialiasing(in_size, out_size):
  image = np.random.default_rng(in_size).uniform(size=(in_size, in_size)).astype(np.float32)
  got = inception.resize_bilinear(image[None, :, :, None], out_size)[0, :, :, 0]
  np.testing.assert_allclose(got, _torch_bilinear_reference(image, out_size), atol=2e-6)


def _random_variables(seed=0) -> dict:
  """The FID Inception's variables with random values (no jit init: that compiles for ~30 s)."""
  rng = np.random.default_rng(seed)
  flat = {}
  for key, shape in inception._expected_shapes().items():  # pylint: disable=protected-access
    leaf = key.rsplit("/", 1)[-1]
    if leaf == "kernel":
      flat[key] = rng.normal(0, np.sqrt(2 / np.prod(shape[:-1])), shape)
    elif leaf in ("scale", "var"):
      flat[key] = rng.uniform(0.5, 1.5, shape)
    else:
      flat[key] = rng.normal(0, 0.1, shape)
  return {k: v.astype(np.float32) for k, v in flat.items()}


def _as_torch_state_dict(flat: dict) -> dict:
  """The inverse of the converter, written out: flax paths -> pytorch-fid's keys and layouts."""
  leaves = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
  state = {}
  for key, value in flat.items():
    _, *module, leaf = key.split("/")
    if module == ["fc"]:
      state["fc.weight" if leaf == "kernel" else "fc.bias"] = value.T if leaf == "kernel" else value
    elif leaf == "kernel":
      state[".".join(module) + ".weight"] = value.transpose(3, 2, 0, 1)
    else:
      state[".".join(module) + "." + leaves[leaf]] = value
      state[".".join(module) + ".num_batches_tracked"] = np.array(0)
  return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
  flat = _random_variables()
  path = tmp_path_factory.mktemp("inception") / "weights.npz"
  converted = convert_inception.convert_state_dict(_as_torch_state_dict(flat))
  assert converted.keys() == flat.keys()
  for key, value in flat.items():
    np.testing.assert_array_equal(converted[key], value, err_msg=key)
  convert_inception.save_npz(converted, str(path), source="random", source_sha256="0")
  return path, flat


def test_missing_weights_fail_in_one_line_saying_how_to_get_them(tmp_path):
  path = tmp_path / "absent.npz"
  with pytest.raises(inception.MissingWeightsError) as error:
    features.load_inception(str(path), download=False)
  message = str(error.value)
  assert "\n" not in message and str(path) in message
  assert inception.WEIGHTS_URL in message and "convert_inception" in message


def test_converter_refuses_unknown_keys_and_loader_refuses_other_arrays(weights_file, tmp_path):
  path, flat = weights_file
  with pytest.raises(ValueError, match="AuxLogits.fc.weight"):
    convert_inception.convert_state_dict({"AuxLogits.fc.weight": np.zeros((3, 2))})
  loaded = traverse_util.flatten_dict(inception.load_variables(str(path)), sep="/")
  assert all(np.array_equal(loaded[k], flat[k]) for k in flat)
  partial = dict(flat)
  del partial["params/Mixed_7c/branch_pool/conv/kernel"]
  convert_inception.save_npz(partial, str(tmp_path / "partial.npz"))
  with pytest.raises(ValueError, match="1 arrays missing") as error:
    inception.load_variables(str(tmp_path / "partial.npz"))
  assert "\n" not in str(error.value)


def test_inception_outputs_pool3_and_logits_and_features_do_not_depend_on_the_batch(weights_file):
  shapes = jax.eval_shape(inception.FIDInceptionV3().apply, inception.variable_shapes(),
                          jax.ShapeDtypeStruct((2, 28, 28, 1), np.float32))
  assert {k: v.shape for k, v in shapes.items()} == {"pool3": (2, 2048), "logits": (2, 1008)}
  network = features.load_inception(str(weights_file[0]))
  images = np.random.default_rng(4).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
  rows = np.concatenate(list(features.iter_features(network, images, batch_size=2)))
  alone = np.concatenate(list(features.iter_features(network, [images[2:]], batch_size=2)))
  assert rows.shape == (3, 2048) and np.isfinite(rows).all() and rows.std() > 0
  np.testing.assert_allclose(alone[0], rows[2], rtol=1e-6, atol=1e-6)
  assert features.load_inception(str(weights_file[0])) is network  # Loaded and compiled once.
  # The embeddings' entry point: the same network and compiled program, on a batch of 2.
  np.testing.assert_allclose(features.pool3_features(images[:2], str(weights_file[0])),
                             rows[:2], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Classifier FID and the reference-statistics cache.


class _Source:
  """A minimal `images.ImageSource` that counts the images it hands out."""

  def __init__(self, images, name="toy/train"):
    self.name, self.shape, self._images, self.served = name, images.shape[1:], images, 0

  def __len__(self):
    return len(self._images)

  def images(self, indices):
    self.served += len(indices)
    return self._images[indices]


@pytest.fixture(scope="module")
def classifier():
  model = classifier_model.CNNClassifier(num_classes=10, channels=(4, 8), feature_dim=16)
  shapes = jax.eval_shape(model.init, jax.random.key(0), np.zeros((1, 28, 28, 1), np.uint8))
  rng = np.random.default_rng(7)
  params = jax.tree.map(lambda s: rng.normal(0, 0.3, s.shape).astype(np.float32), shapes)
  trained = types.SimpleNamespace(model=model, params=params, network="classifier",
                                  meta={"sha256": "ab" * 32, "classes": None})
  return features.classifier_network(trained)


def test_classifier_fid_is_zero_for_one_set_and_positive_for_another(classifier):
  rng = np.random.default_rng(5)
  real = rng.integers(0, 256, (300, 28, 28, 1), dtype=np.uint8)
  dark = (real // 4).astype(np.uint8)
  stats_real = fid.image_statistics(classifier, real, batch_size=128)
  rows = np.concatenate(list(features.iter_features(classifier, real, batch_size=128)))
  want = fid.feature_statistics(rows)
  np.testing.assert_allclose(stats_real.sigma, want.sigma, rtol=1e-8, atol=1e-10)
  assert classifier.name == "classifier-all" and rows.shape == (300, 16)
  assert fid.fid(stats_real, stats_real) == pytest.approx(0.0, abs=1e-6)
  assert fid.fid(stats_real, fid.image_statistics(classifier, dark, batch_size=128)) > 1.0


def test_reference_statistics_are_computed_once_and_refused_for_other_data(classifier, tmp_path):
  rng = np.random.default_rng(6)
  source = _Source(rng.integers(0, 256, (250, 28, 28, 1), dtype=np.uint8))
  first = fid.reference_statistics(source, classifier, str(tmp_path), batch_size=128)
  served = source.served
  second = fid.reference_statistics(source, classifier, str(tmp_path), batch_size=128)
  assert source.served - served < 250  # Only the sample fingerprint's few images, not a pass.
  np.testing.assert_array_equal(first.sigma, second.sigma)
  assert first.count == 250 and first.mu.dtype == np.float64
  path = fid.statistics_path(str(tmp_path), source.name, classifier)
  assert path.name == f"toy.train.fid-classifier-all.{'ab' * 6}.npz"
  other = _Source(source._images[::-1].copy())  # pylint: disable=protected-access
  with pytest.raises(fid.StatisticsCacheError, match="other images") as error:
    fid.reference_statistics(other, classifier, str(tmp_path), batch_size=128)
  assert "\n" not in str(error.value)
  with pytest.raises(fid.StatisticsCacheError, match="num_images 250"):
    fid.reference_statistics(source, classifier, str(tmp_path), num_images=100)
