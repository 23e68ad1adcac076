"""The image sampler report's measures (benchmarks/image_sampler_bias.py) on inputs whose answers
are known by hand."""
import numpy as np
import pytest

from benchmarks import image_sampler_bias as bias


def test_effective_sample_size_is_k_for_equal_weights_and_one_for_a_single_weight():
  weights = np.array([[1.0, 1.0, 1.0, 1.0], [4.0, 0.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0]])
  np.testing.assert_allclose(bias.effective_sample_size(weights), [4.0, 1.0, 2.0])


def test_half_mass_share_counts_the_fewest_images_holding_half_the_picks():
  # 10 images; picks: image 3 four times, images 0, 1, 2, 4 once each: half of 8 is image 3 alone.
  picks = np.array([[3, 3, 3, 3], [0, 1, 2, 4]])
  assert bias.half_mass_share(picks, np.ones(picks.shape), 10) == pytest.approx(0.1)
  # Weighted: image 3's picks weigh 0.25 each, the others 1.5: two of those hold half of 7.
  mass = np.array([[0.25] * 4, [1.5] * 4])
  assert bias.half_mass_share(picks, mass, 10) == pytest.approx(0.3)


def test_sampler_report_shares_against_the_candidates():
  labels = np.array([0, 0, 1, 1])
  sparse = np.array([False, False, False, True])
  candidates = np.array([[0, 1, 2, 3]])
  report = bias.sampler_report(np.array([[0, 3]]), np.array([[1.0, 3.0]]), candidates, labels,
                               sparse)
  np.testing.assert_allclose(report["class_share_ratio"], [0.25 / 0.5, 0.75 / 0.5])
  assert report["top_decile_share"] == pytest.approx(0.75)
  assert report["distinct_images"] == 2


def test_knn_distance_is_the_kth_neighbours():
  rows = np.array([[0.0], [1.0], [3.0], [7.0]])
  np.testing.assert_allclose(bias.knn_distance(rows, neighbours=2), [3.0, 2.0, 3.0, 6.0])
