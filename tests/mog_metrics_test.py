"""Paper Table 1 metrics on sample sets with known answers, and the sample scatter plot."""
import jax
from matplotlib.figure import Figure
import numpy as np
import pytest
from scipy.spatial import cKDTree

from smallgan_jax.data import toy
from smallgan_jax.metrics import mog, plots

STD = 0.05
MEANS = toy.grid_means(25)  # Spacing 2, so 10 * STD = 0.5 is far from every mode.


def test_samples_on_every_mode_score_full_marks():
  metrics = mog.mode_metrics(np.repeat(MEANS, 4, axis=0), MEANS, STD)
  assert metrics == {"modes_recovered_pct": 100.0, "high_quality_pct": 100.0,
                     "modes_assigned_pct": 100.0, "num_modes_recovered": 25, "num_modes": 25}


def test_samples_on_five_modes_recover_twenty_percent():
  metrics = mog.mode_metrics(np.repeat(MEANS[:5], 7, axis=0), MEANS, STD)
  assert metrics["modes_recovered_pct"] == pytest.approx(20.0)
  assert metrics["num_modes_recovered"] == 5
  assert metrics["high_quality_pct"] == pytest.approx(100.0)


def test_modes_with_only_far_samples_are_not_recovered():
  near = MEANS[:10]
  far = MEANS[10:20] + np.array([10 * STD, 0.0], np.float32)  # 10 std from modes 10..19.
  samples = np.concatenate([near, far])
  index, dist = mog.nearest_modes(samples.astype(np.float64), MEANS.astype(np.float64))
  np.testing.assert_array_equal(index, np.arange(20))  # The looser protocol would recover 20.
  np.testing.assert_allclose(dist[10:], 10 * STD, rtol=1e-6)
  metrics = mog.mode_metrics(samples, MEANS, STD)
  assert metrics["high_quality_pct"] == pytest.approx(50.0)
  assert metrics["num_modes_recovered"] == 10
  assert metrics["modes_recovered_pct"] == pytest.approx(40.0)
  assert metrics["modes_assigned_pct"] == pytest.approx(80.0)  # The paper's looser count.


def test_samples_between_modes_are_low_quality():
  between = (MEANS[:4] + MEANS[5:9]) / 2  # Midpoints of modes one grid step apart: 20 std.
  samples = np.concatenate([MEANS[20:24], between])
  metrics = mog.mode_metrics(samples, MEANS, STD)
  assert metrics["high_quality_pct"] == pytest.approx(50.0)
  assert metrics["num_modes_recovered"] == 4


@pytest.mark.parametrize("radius_stds, high_quality", [(3.99, True), (4.01, False)])
def test_quality_radius_boundary(radius_stds, high_quality):
  direction = np.array([0.6, 0.8])  # A unit vector off the axes, so the l2 norm matters.
  sample = MEANS[7] + radius_stds * STD * direction
  metrics = mog.mode_metrics(sample[None], MEANS, STD)
  assert metrics["high_quality_pct"] == (100.0 if high_quality else 0.0)
  assert metrics["num_modes_recovered"] == int(high_quality)


def test_quality_uses_l2_distance():
  sample = MEANS[3] + np.array([3.0, 3.0]) * STD  # Within 4 std per axis, 4.24 std in l2.
  assert mog.mode_metrics(sample[None], MEANS, STD)["high_quality_pct"] == 0.0
  assert mog.mode_metrics(sample[None], MEANS, STD, quality_stds=4.25)["high_quality_pct"] == 100.0


def test_non_finite_samples_are_low_quality():
  samples = np.concatenate([MEANS[:2], [[np.nan, 0.0], [np.inf, -np.inf]]])
  metrics = mog.mode_metrics(samples, MEANS, STD)
  assert metrics["high_quality_pct"] == pytest.approx(50.0)
  assert metrics["num_modes_recovered"] == 2


def test_true_samples_at_paper_scale():
  """10,000 draws of the 100-mode target itself: every mode found, ~all within 4 std."""
  means = toy.grid_means(100)
  samples = np.asarray(toy.sample_mixture(jax.random.PRNGKey(0), means, STD, mog.NUM_EVAL_SAMPLES))
  index, _ = mog.nearest_modes(samples.astype(np.float64), means.astype(np.float64))
  np.testing.assert_array_equal(index, cKDTree(means).query(samples)[1])  # Spans two row chunks.
  metrics = mog.mode_metrics(samples, means, STD)
  assert metrics["num_modes_recovered"] == 100
  assert metrics["high_quality_pct"] > 99.8  # P(|noise| <= 4 std) = 1 - exp(-8) = 99.97%.


@pytest.mark.parametrize("samples, means, shape", [
    (np.zeros(10), MEANS, r"\(10,\)"),
    (np.zeros((0, 2)), MEANS, r"\(0, 2\)"),
    (np.zeros((5, 3)), MEANS, r"\(5, 3\)"),
    (np.zeros((5, 2)), np.zeros(25), r"\(25,\)"),
])
def test_shape_errors_name_the_shape(samples, means, shape):
  with pytest.raises(ValueError, match=shape):
    mog.mode_metrics(samples, means, STD)


def test_save_mog_scatter_writes_png_at_nested_path(tmp_path):
  samples = np.asarray(toy.sample_mixture(jax.random.PRNGKey(1), MEANS, STD, 500))
  path = str(tmp_path / "a" / "b" / "samples.png")
  pixels = plots.save_mog_scatter(path, samples, MEANS, title="step 0")
  assert pixels.ndim == 3 and pixels.shape[-1] == 3 and pixels.min() < 128 < pixels.max()
  with open(path, "rb") as f:
    content = f.read()
  assert content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) > 1000


def test_mog_scatter_figure_draws_on_given_axes():
  figure = Figure()
  left, right = figure.subplots(1, 2)
  assert plots.mog_scatter_figure(np.zeros((3, 2)), MEANS, "right", ax=right) is figure
  assert len(right.collections) == 2 and not left.collections
  assert right.get_title() == "right"
