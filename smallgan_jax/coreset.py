"""Greedy k-center core-sets (Small-GAN, Sinha et al. 2020, Alg. 1).

A core-set of k points out of n candidates is chosen so that every candidate is close to some
chosen point: starting from the empty set, repeatedly add the candidate that is farthest (l2) from
its nearest chosen point. This is the classic 2-approximation of the k-center problem. Small-GAN
applies it to (randomly projected) embeddings of a large batch of prior samples or real images to
pick a small, well-spread training batch; `random_projection` and `project` provide the
Johnson-Lindenstrauss projection that makes the distances cheap.
"""
import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
from jax import lax

from smallgan_jax import coreset_pallas

# The d feature rows are summed as _SLABS slabs of rows, see `_to_slabs`.
_SLABS = 8

BACKENDS = ("auto", "xla", "pallas")

# backend="auto" runs the fused Pallas kernel only at the set sizes (n, d, k) where it was measured
# faster than the XLA kernel, on that platform and device kind. Everything else, every TPU and CPU
# included, runs the XLA kernel. H100: benchmarks/gpu_coreset.sh, jax 0.11.2, 2026-11-26, with
# 1-16 sets per call; Pallas 1.7-4.3x faster at every size (docs/coreset_kernel.md).
_PALLAS_MEASURED_FASTER = {
    ("gpu", "NVIDIA H100 80GB HBM3"): frozenset({
        (512, 128, 128),    # prior; SN-GAN G update: 0.72 ms vs 1.23
        (1024, 32, 128),    # target, 1-16 sets: 0.32-0.40 ms vs 1.18-1.37
        (8192, 128, 1024),  # large, 64 programs per set: 3.25 ms vs 13.40
        (256, 128, 64),     # SN-GAN prior, 5 sets: 0.32 ms (8 warps) vs 0.71
        (512, 32, 64),      # SN-GAN target, 5 sets: 0.23 ms vs 0.65
    }),
}


def _check_args(shape: tuple, k: int) -> None:
  if len(shape) != 2:
    raise ValueError(f"greedy_k_center: points must be 2-D (n, d), got shape {shape}")
  n = shape[0]
  if not 1 <= k <= n:
    raise ValueError(f"greedy_k_center: k={k} must be in [1, n={n}] (n = number of candidate "
                     "points)")


def _to_slabs(points: jax.Array) -> jax.Array:
  """(n, d) points -> (s, q, n) float32 slabs: slab j holds features j*q .. j*q + q - 1.

  Features are on the major axes so that every distance term is a contiguous, vectorisable row
  over the n points. d is zero-padded to s * q; padded features add (0 - 0)^2 = 0.
  """
  n, d = points.shape
  s = min(_SLABS, d)
  q = -(-d // s)
  features = jnp.pad(points.astype(jnp.float32).T, ((0, s * q - d), (0, 0)))
  return features.reshape(s, q, n)


def _squared_distances(slabs: jax.Array, idx: jax.Array) -> jax.Array:
  """Squared l2 distance from every point to point `idx`, shape (n,), in the direct form.

  sum((x - c)^2) rather than |x|^2 - 2 x.c + |c|^2: no cancellation, so duplicated or grid
  points give exactly equal distances (exact ties), and nothing depends on matmul precision (bf16
  passes by default on TPU). The sum over features is written as explicit adds of whole rows
  instead of `jnp.sum`: first the s slabs elementwise, giving (q, n), then the q rows. XLA:CPU
  compiles this to two vectorised loops; a reduce op instead becomes a threaded YNNPACK call or a
  scalar loop, 2-4x slower over the whole selection at the paper's sizes.
  """
  centre = lax.dynamic_slice_in_dim(slabs, idx, 1, axis=2)
  partial = coreset_pallas.pairwise_sum((slabs[j] - centre[j]) ** 2 for j in range(slabs.shape[0]))
  return coreset_pallas.pairwise_sum(partial[r] for r in range(partial.shape[0]))


@functools.partial(jax.jit, static_argnames=("k", "backend"))
def greedy_k_center(points: jax.Array, k: int, backend: str = "auto") -> jax.Array:
  """Indices of a greedy k-center core-set of `points` (n, d), int32 of shape (k,), in pick order.

  Semantics:
  * The first pick is index 0. Alg. 1 starts from the empty set, where every candidate is at
    distance +inf from it; ties go to the lowest index. Candidates are i.i.d. draws, so index 0
    is a uniformly random point.
  * Each further pick is the candidate whose l2 distance to its nearest chosen point is largest,
    ties broken by the lowest index.
  * A chosen point is never chosen again (its distance is set to -1), so duplicated points are
    handled and k = n returns a permutation of range(n). k = 1 returns [0].
  Distances are squared (same argmax) and computed in float32: candidates whose distances differ
  by less than float32 resolution (~1e-7 relative) count as tied. `points` must be finite.

  k is static; k outside [1, n] or non-2-D points raise ValueError at trace time. Works under
  `jax.vmap` (independent candidate sets) and inside `jax.pmap`.

  backend: "xla" (a `fori_loop`, one iteration per pick), "pallas" (the fused kernel of
  `coreset_pallas`, all picks in one launch; interpreted on CPU, for tests), or "auto" (the one
  measured faster on this device for this size, see `choose_backend`). All return the same
  indices up to float32 rounding differences of the device's compiler (none on the CPU).
  """
  _check_args(points.shape, k)
  if choose_backend(backend, *points.shape, k) == "pallas":
    return _pallas_sets(k, None)(points[None])[0]
  return _greedy_k_center_xla(points, k)


def _greedy_k_center_xla(points: jax.Array, k: int) -> jax.Array:
  """The XLA kernel of `greedy_k_center`: a fori_loop over the picks."""
  n = points.shape[0]
  slabs = _to_slabs(points)
  iota = lax.iota(jnp.int32, n)

  def pick(i, state):
    chosen, min_dist = state
    last = chosen[i - 1]
    min_dist = jnp.minimum(min_dist, _squared_distances(slabs, last))
    min_dist = jnp.where(iota == last, -1.0, min_dist)
    # Lowest index attaining the max. Two plain reductions: jnp.argmax is a variadic reduce,
    # which XLA:CPU compiles poorly (1.3-1.5x slower overall). The n - 1 filler keeps the index in
    # range for NaN input.
    top = jnp.max(min_dist)
    nxt = jnp.min(jnp.where(min_dist == top, iota, n - 1))
    return chosen.at[i].set(nxt), min_dist

  init = (jnp.zeros((k,), jnp.int32), jnp.full((n,), jnp.inf, jnp.float32))
  return lax.fori_loop(1, k, pick, init)[0]


@jax.jit
def cell_weights(points: jax.Array, picks: jax.Array) -> jax.Array:
  """(k,) float32: each pick's weight, k times the share of the n `points` (n, d) nearest to it.

  The weighted core-set of coreset theory (beyond the paper): greedy k-center keeps the candidates
  farthest from those already kept, so a core-set over-samples the edges of the candidates. Each
  pick stands for its Voronoi cell, the candidates closer to it than to any other pick, and the
  weighted mean of a function over the k picks equals its mean over all n candidates wherever the
  function is constant on each cell. The weights sum to k (a candidate nearest to several picks
  counts for the earliest in `picks`); every pick is in its own cell, so each weight is at least
  k / n (0 for a pick that duplicates an earlier one). One (n, k) pass of squared distances in
  the direct form (exact ties, as in the kernel), after the kernel: the picks do not change.
  """
  x = points.astype(jnp.float32)
  k = picks.shape[0]
  distances = jnp.sum((x[:, None, :] - x[picks][None, :, :]) ** 2, axis=-1)
  nearest = jnp.argmin(distances, axis=1)  # The first minimum: ties to the earliest pick.
  return jnp.bincount(nearest, length=k).astype(jnp.float32) * (k / x.shape[0])


def choose_backend(backend: str, n: int, d: int, k: int) -> str:
  """The kernel ("xla" or "pallas") that `backend` means for a set of n points of dim d, on the
  default device: "auto" is "pallas" only where `_PALLAS_MEASURED_FASTER` lists the size."""
  if backend not in BACKENDS:
    raise ValueError(f"backend={backend!r} is not one of {BACKENDS}")
  if backend != "auto":
    return backend
  device = jax.devices()[0]
  faster = _PALLAS_MEASURED_FASTER.get((device.platform, device.device_kind), ())
  return "pallas" if (n, d, k) in faster else "xla"


@functools.partial(jax.jit, static_argnames=("k", "backend", "config"))
def greedy_k_center_sets(points: jax.Array, k: int, backend: str = "auto",
                         config: Optional[coreset_pallas.KernelConfig] = None) -> jax.Array:
  """`greedy_k_center` of each set of `points` (sets, n, d): int32 (sets, k).

  The same as `jax.vmap(greedy_k_center)`; `config` lays out the Pallas kernel (None: its
  measured defaults, `coreset_pallas.default_config`).
  """
  if points.ndim != 3:
    raise ValueError(f"greedy_k_center_sets: points must be 3-D (sets, n, d), got {points.shape}")
  _check_args(points.shape[1:], k)
  if choose_backend(backend, *points.shape[1:], k) == "pallas":
    return _pallas_sets(k, config)(points)
  return jax.vmap(_greedy_k_center_xla, in_axes=(0, None))(points, k)


@functools.lru_cache(maxsize=None)
def _pallas_sets(k: int, config: Optional[coreset_pallas.KernelConfig]):
  """(sets, n, d) -> (sets, k) with the fused kernel; under vmap, the vmapped axes are folded into
  the sets of one kernel call (one program per set) instead of pallas_call's own batching."""

  @jax.custom_batching.custom_vmap
  def pallas_sets(points):
    platform = jax.devices()[0].platform
    return coreset_pallas.fused_greedy_k_center(
        jax.vmap(_to_slabs)(points), points.shape[1], k, config,
        coreset_pallas.variant_for(platform), interpret=platform == "cpu")

  @pallas_sets.def_vmap
  def _(axis_size, in_batched, points):
    del in_batched  # the only argument, so batched
    folded = pallas_sets(points.reshape(axis_size * points.shape[1], *points.shape[2:]))
    return folded.reshape(axis_size, points.shape[1], k), True

  return pallas_sets


def random_projection(key: jax.Array, in_dim: int, out_dim: int,
                      dtype=jnp.float32) -> jax.Array:
  """Seeded Gaussian Johnson-Lindenstrauss matrix (in_dim, out_dim) with entries N(0, 1/out_dim).

  With this scale E|x P|^2 = |x|^2, so projected distances estimate the original ones.
  """
  for name, value in (("in_dim", in_dim), ("out_dim", out_dim)):
    if value < 1:
      raise ValueError(f"random_projection: {name}={value} must be a positive integer")
  scale = 1.0 / math.sqrt(out_dim)
  return (jax.random.normal(key, (in_dim, out_dim), jnp.float32) * scale).astype(dtype)


def project(embeddings: jax.Array, matrix: jax.Array) -> jax.Array:
  """embeddings (..., in_dim) @ matrix (in_dim, out_dim) at full float32 precision."""
  return jnp.matmul(embeddings, matrix, precision=lax.Precision.HIGHEST)
