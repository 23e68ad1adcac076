"""Plain reference implementations of greedy k-center (Small-GAN, Alg. 1).

Used by the tests and the speed benchmark (`coreset_speed.py`) to check and time
`smallgan_jax.coreset`, never by training: it lives beside the benchmarks, outside the package,
and both import it as `benchmarks.coreset_reference` from the repository root. Both selections
follow the same rules as `coreset.greedy_k_center`: the first pick is index 0, an already chosen
point is never chosen again and ties go to the lowest index.
"""
import numpy as np
from sklearn.metrics import pairwise_distances


def _check_k(n: int, k: int) -> None:
  if not 1 <= k <= n:
    raise ValueError(f"k={k} must be in [1, n={n}] (n = number of candidate points)")


def greedy_k_center_numpy(points: np.ndarray, k: int) -> np.ndarray:
  """Greedy k-center in float64 keeping an incremental min-distance vector; int32 indices (k,)."""
  points = np.asarray(points, np.float64)
  n = points.shape[0]
  _check_k(n, k)
  chosen = np.zeros(k, np.int32)
  min_dist = np.full(n, np.inf)
  idx = 0
  for i in range(k):
    chosen[i] = idx
    min_dist = np.minimum(min_dist, ((points - points[idx]) ** 2).sum(axis=1))
    min_dist[chosen[:i + 1]] = -1.0
    idx = int(np.argmax(min_dist))
  return chosen


def greedy_k_center_sklearn(points: np.ndarray, k: int) -> np.ndarray:
  """Greedy k-center with `sklearn.metrics.pairwise_distances`, as google/active-learning's
  kcenter_greedy computes distances; int32 indices (k,).

  Each step recomputes the distances from every point to every chosen centre and takes the
  minimum over the centres: O(n k^2 d) in all. (kcenter_greedy itself folds in only the newest
  centre per step, like `greedy_k_center_numpy`.) sklearn's Euclidean distance uses the
  |x|^2 - 2 x.y + |y|^2 form, so exact ties may come out unequal; compare on generic inputs.
  """
  points = np.asarray(points, np.float64)
  n = points.shape[0]
  _check_k(n, k)
  chosen = [0]
  while len(chosen) < k:
    min_dist = pairwise_distances(points, points[chosen]).min(axis=1)
    min_dist[chosen] = -1.0
    chosen.append(int(np.argmax(min_dist)))
  return np.asarray(chosen, np.int32)


def covering_radius(points: np.ndarray, centre_indices: np.ndarray) -> float:
  """Largest distance from any point to its nearest centre (float64)."""
  points = np.asarray(points, np.float64)
  dist = pairwise_distances(points, points[np.asarray(centre_indices)])
  return float(dist.min(axis=1).max())
