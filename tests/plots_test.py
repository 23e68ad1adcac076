"""The sample plot a run leaves: the grid, the samples, recovered and missed modes, the metrics."""
import jax
import matplotlib.image
from matplotlib.patches import Circle
import numpy as np
import pytest

from configs import toy_mog
from smallgan_jax import datasets
from smallgan_jax.data import toy
from smallgan_jax.metrics import mog, plots

STD = 0.05
MEANS = toy.grid_means(25)


def on_modes(means, n=2000, seed=0):
  return np.asarray(toy.sample_mixture(jax.random.PRNGKey(seed), means, STD, n))


def test_save_samples_writes_a_png_titled_with_the_run_and_its_metrics(tmp_path):
  dataset = datasets.get_dataset(toy_mog.get_config())
  samples = on_modes(dataset.means)
  metrics = dataset.evaluate(samples)
  path = str(tmp_path / "samples_00000007.png")
  pixels = dataset.save_samples(path, samples, "mog_grid, step 7", metrics)
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  height, width, _ = matplotlib.image.imread(path).shape
  assert height > 500 and width > 500
  assert pixels.shape == (height, width, 3) and pixels.dtype == np.uint8  # What TensorBoard gets.
  figure = plots.mog_scatter_figure(samples, dataset.means, "mog_grid, step 7", std=dataset.std,
                                    metrics=metrics)
  title = figure.axes[0].get_title()
  assert title.startswith("mog_grid, step 7\n")
  assert f"modes recovered 100% (25/25) · high quality {metrics['high_quality_pct']:.1f}%" in title


def test_missed_modes_are_circled_in_another_colour():
  samples = on_modes(MEANS[:20])
  metrics = mog.mode_metrics(samples, MEANS, STD)
  recovered = plots.recovered_modes(samples, MEANS, STD)
  np.testing.assert_array_equal(recovered, np.arange(25) < 20)
  assert recovered.sum() == metrics["num_modes_recovered"]
  ax = plots.mog_scatter_figure(samples, MEANS, std=STD, metrics=metrics).axes[0]
  circles = [p for p in ax.patches if isinstance(p, Circle)]
  assert len(circles) == 25 and all(c.get_radius() == 4 * STD for c in circles)
  colours = [c.get_edgecolor()[:3] for c in circles]
  assert len(set(colours[:20])) == 1 and len(set(colours[20:])) == 1 and colours[0] != colours[20]
  assert "modes recovered 80% (20/25)" in ax.get_title()


def test_view_is_square_and_keeps_the_grid_in_sight_of_stray_samples():
  samples = np.concatenate([on_modes(MEANS), [[1e6, -1e6], [np.nan, 0.0], [np.inf, 1.0]]])
  ax = plots.mog_scatter_figure(samples, MEANS, "run", std=STD).axes[0]
  (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
  assert x1 - x0 == pytest.approx(y1 - y0) and x1 - x0 < 12
  assert x0 < MEANS[:, 0].min() - 4 * STD and x1 > MEANS[:, 0].max() + 4 * STD
  assert y0 < MEANS[:, 1].min() - 4 * STD and y1 > MEANS[:, 1].max() + 4 * STD
  assert ax.get_title() == "run"  # No metrics, no second line.
