"""How well generated samples cover the data, on the features FID uses; and the Inception Score.

FID compares two Gaussians fitted to the features, so it cannot say whether a generator misses part
of the data or makes samples off it; the paper's claim is exactly coverage (a small core-set batch
covers the data like a large one). These metrics look at the samples themselves:

- improved precision and recall (Kynkäänniemi et al. 2019, k = 3): each point's ball reaches its
  k-th nearest neighbour of its own set; precision is the fraction of generated samples inside some
  real ball, recall the fraction of real samples inside some generated ball;
- density and coverage (Naeem et al. 2020, k = 5): density counts, per generated sample, the real
  balls it lies in (divided by k, averaged; about 1 when the two sets match, above 1 on dense
  modes); coverage is the fraction of real balls that hold at least one generated sample;
- KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic kernel (x.y / d + 1)^3, averaged
  over random subsets of equal size from both sets (clean-fid's and torch-fidelity's
  `kernel_distance`: 100 subsets of min(1000, n));
- the Inception Score (Salimans et al. 2016) of class logits, over 10 consecutive splits.

The k-NN definitions are those of the `prdc` package (clovaai/generative-evaluation-prdc): a
ball's radius is the distance to the k-th nearest *other* point (the k + 1-th smallest, self
included), and "inside" is strictly closer than the radius.

Why not `prdc` itself (it is the tests' reference): it builds three full distance matrices in host
memory through sklearn (three 10k x 10k float64 matrices are 2.4 GB; 50k x 50k would not fit),
and KID would be another pass. Here two blocked passes over the generated samples compute, per
block of rows, the float32 Gram matrices (matmuls at full float32 precision, on the device)
against every generated sample (their radii, KID's generated-generated sums), then against every
real one (every count, KID's cross sums). KID costs no pass of its own: its subsets are 0/1
membership rows, so a subset's kernel sum is the membership matrix times the kernel block. The
real side (its radii, the real-real KID sums) is computed once, when a run builds its scores
(`RealReference.build`).
"""
import dataclasses
import functools
from typing import NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
from scipy import special

BLOCK_ELEMENTS = 2**22  # Entries of one block's distance matrix (16 MiB of float32).
KID_SEED = 0            # Seeds the KID subsets: every evaluation of a run uses the same ones.
IS_SPLITS = 10


class Settings(NamedTuple):
  """pr_k: the k of precision and recall; dc_k: of density and coverage; kid_subsets subsets of
  kid_subset_size samples each (fewer where a set is smaller)."""
  pr_k: int = 3
  dc_k: int = 5
  kid_subsets: int = 100
  kid_subset_size: int = 1000


def block_rows(rows: int, columns: int, block_elements: int = BLOCK_ELEMENTS) -> int:
  """Rows of a block of a matrix (rows, columns), at most `rows`, so that the block holds about
  `block_elements` entries."""
  return max(1, min(rows, block_elements // max(columns, 1)))


def _row_blocks(points: np.ndarray, rows: int):
  """(start, block of exactly `rows` rows zero-padded, how many are real), so one compile serves
  every block."""
  for start in range(0, len(points), rows):
    block = points[start:start + rows]
    count = len(block)
    if count < rows:
      block = np.concatenate([block, np.zeros((rows - count, points.shape[1]), points.dtype)])
    yield start, block, count


# ---------------------------------------------------------------------------------------------
# Kernels on one block of rows (jitted).


def _matmul(x: jax.Array, y: jax.Array) -> jax.Array:
  """x @ y at full float32 precision (GPUs and TPUs would otherwise round to TF32/bfloat16)."""
  return jnp.matmul(x, y, precision=lax.Precision.HIGHEST)


def _gram(x: jax.Array, y: jax.Array) -> jax.Array:
  return _matmul(x, y.T)


def _squared_distances(x: jax.Array, y: jax.Array, gram: jax.Array) -> jax.Array:
  """|x - y|^2 from the Gram matrix, clamped at 0 (rounding can make it slightly negative)."""
  sq = lambda a: jnp.sum(a * a, axis=1)
  return jnp.maximum(sq(x)[:, None] + sq(y)[None, :] - 2 * gram, 0.0)


def _kernel_minus_one(gram: jax.Array, dim: int) -> jax.Array:
  """(g / d + 1)^3 - 1 = u (3 + 3u + u^2), u = g / d: KID's cubic kernel less its constant 1,
  which cancels in the MMD (its weights sum to 0) and would only cost float32 digits."""
  u = gram / dim
  return u * (3.0 + u * (3.0 + u))


def _subset_sums(members_block: jax.Array, kernel: jax.Array, members: jax.Array) -> jax.Array:
  """For every subset s: the sum of `kernel`[i, j] over the block's rows i and the columns j that
  are both in s ((S, b) and (S, n) 0/1 memberships)."""
  return jnp.sum(_matmul(members_block, kernel) * members, axis=1)


@functools.partial(jax.jit, static_argnames=("count",))
def _self_block(block, members_block, points, members, count: int):
  """A block of rows of `points` against all of them: each row's `count` smallest squared
  distances, negated and in ascending order of distance (self, at 0, first), and each KID
  subset's kernel sum over its pairs i != j with i in the block.

  The nearest distances leave the function whole: XLA on the CPU turns a TopK whose values are
  sliced inside the program into a full sort of every row, many times slower."""
  dim = block.shape[1]
  gram = _gram(block, points)
  nearest = lax.top_k(-_squared_distances(block, points, gram), count)[0]
  diagonal = _kernel_minus_one(jnp.sum(block * block, axis=1), dim)
  return nearest, (_subset_sums(members_block, _kernel_minus_one(gram, dim), members)
                   - _matmul(members_block, diagonal))


class _CrossBlock(NamedTuple):
  in_real_balls_pr: jax.Array    # (b,) inside some real pr_k ball (precision)
  real_balls_dc: jax.Array       # (b,) how many real dc_k balls it lies in (density)
  recalled: jax.Array            # (n_real,) inside some generated ball of this block (recall)
  nearest: jax.Array             # (n_real,) squared distance to the block's nearest sample
  kid_xy: jax.Array              # (S,) generated-real kernel sums, i in the block


@jax.jit
def _cross_block(block, radii, members_block, real, real_members, real_radii_pr,
                 real_radii_dc) -> _CrossBlock:
  """What a block of generated rows (with their squared pr_k radii; -inf on padding rows)
  contributes against every real row."""
  gram = _gram(block, real)
  distances = _squared_distances(block, real, gram)
  return _CrossBlock(
      in_real_balls_pr=jnp.any(distances < real_radii_pr[None, :], axis=1),
      real_balls_dc=jnp.sum(distances < real_radii_dc[None, :], axis=1),
      recalled=jnp.any(distances < radii[:, None], axis=0),
      nearest=jnp.min(jnp.where(jnp.isfinite(radii)[:, None], distances, jnp.inf), axis=0),
      kid_xy=_subset_sums(members_block, _kernel_minus_one(gram, block.shape[1]), real_members))


# ---------------------------------------------------------------------------------------------
# KID subsets.


def kid_subset_size(settings: Settings, num_fake: int, num_real: int) -> int:
  """The size of every KID subset: kid_subset_size, or the smaller set's size if less."""
  size = min(settings.kid_subset_size, num_fake, num_real)
  if size < 2:
    raise ValueError(f"KID needs subsets of at least 2 samples; got {num_fake} generated and "
                     f"{num_real} real samples")
  return size


def kid_subsets(num_subsets: int, size: int, num_points: int, side: int,
                seed: int = KID_SEED) -> np.ndarray:
  """(num_subsets, size) indices into `num_points` points, each row drawn without replacement;
  `side` (0 generated, 1 real) keeps the two sides' draws apart, so the real subsets do not
  depend on how many samples were generated."""
  rng = np.random.default_rng([seed, side])
  return np.stack([rng.choice(num_points, size, replace=False) for _ in range(num_subsets)])


def membership(subsets: np.ndarray, num_points: int) -> np.ndarray:
  """(S, num_points) float32: 1 where the point is in subset s."""
  members = np.zeros((len(subsets), num_points), np.float32)
  np.put_along_axis(members, subsets, 1.0, axis=1)
  return members


def _mmd(xx: np.ndarray, yy: np.ndarray, xy: np.ndarray, size: int) -> float:
  """The mean over subsets of the unbiased MMD^2 from each subset's kernel sums."""
  pairs = size * (size - 1)
  return float(np.mean(xx / pairs + yy / pairs - 2 * xy / size**2))


# ---------------------------------------------------------------------------------------------
# Blocked passes.


def _pad_columns(members: np.ndarray, columns: int) -> np.ndarray:
  return np.pad(members, ((0, 0), (0, columns - members.shape[1])))


def _self_pass(points: np.ndarray, count: int, members: np.ndarray, block_elements: int
               ) -> tuple[np.ndarray, np.ndarray]:
  """(n, count) squared distances of each point to its `count` nearest (itself first) and the
  (S,) float64 kernel sums of each subset's pairs i != j, over blocks of rows."""
  rows = block_rows(len(points), len(points), block_elements)
  points_device, members_device = jnp.asarray(points), jnp.asarray(members)
  nearest, sums = [], np.zeros(len(members))
  for start, block, num in _row_blocks(points, rows):
    block_members = _pad_columns(members[:, start:start + num], rows)
    block_nearest, block_sums = _self_block(block, block_members, points_device, members_device,
                                            count=count)
    nearest.append(-np.asarray(block_nearest)[:num])
    sums += np.asarray(block_sums, np.float64)
  return np.concatenate(nearest), sums


# ---------------------------------------------------------------------------------------------
# The real side, once; then each evaluation's generated samples.


def _check_features(features, name: str, min_count: int) -> np.ndarray:
  features = np.asarray(features, np.float32)
  if features.ndim != 2 or len(features) < min_count:
    raise ValueError(f"{name} features must have shape (N, D) with N >= {min_count}; got "
                     f"{features.shape}")
  if not np.isfinite(features).all():
    raise ValueError(f"{np.sum(~np.isfinite(features))} {name} feature values are not finite")
  return features


@dataclasses.dataclass(frozen=True, eq=False)
class RealReference:
  """The real features with what every evaluation needs of them: each point's squared radius at
  pr_k and dc_k, and the real-real KID sums of the subsets of `kid_size` (the usual size; another
  size, where fewer samples are generated, recomputes them)."""
  features: np.ndarray     # (n, D) float32
  settings: Settings
  radii_pr: np.ndarray     # (n,) squared distance to the pr_k-th nearest other real point
  radii_dc: np.ndarray     # (n,) the same at dc_k
  kid_size: int
  kid_yy: np.ndarray       # (S,) float64
  block_elements: int = BLOCK_ELEMENTS

  @classmethod
  def build(cls, features, settings: Settings = Settings(),
            block_elements: int = BLOCK_ELEMENTS) -> "RealReference":
    """Radii and KID terms of real `features` (n, D), n > max(pr_k, dc_k), in one blocked pass."""
    features = _check_features(features, "real", max(settings.pr_k, settings.dc_k) + 1)
    size = min(settings.kid_subset_size, len(features))
    nearest, yy = _self_pass(features, max(settings.pr_k, settings.dc_k) + 1,
                             cls._real_members(features, settings, size), block_elements)
    return cls(features, settings, nearest[:, settings.pr_k], nearest[:, settings.dc_k], size,
               yy, block_elements)

  @staticmethod
  def _real_members(features: np.ndarray, settings: Settings, size: int) -> np.ndarray:
    return membership(kid_subsets(settings.kid_subsets, size, len(features), side=1),
                      len(features))

  def kid_members(self, size: int) -> np.ndarray:
    """The real side's KID subsets of `size` as (S, n) memberships."""
    return self._real_members(self.features, self.settings, size)

  def kid_real_sums(self, size: int) -> np.ndarray:
    """(S,) real-real kernel sums of the subsets of `size` (computed again unless `kid_size`)."""
    if size == self.kid_size:
      return self.kid_yy
    return _self_pass(self.features, 1, self.kid_members(size), self.block_elements)[1]

  def __call__(self, fake) -> dict[str, float]:
    """precision, recall (pr_k), density, coverage (dc_k) and kid of generated `fake` (m, D)."""
    return evaluate(self, fake)


def evaluate(reference: RealReference, fake) -> dict[str, float]:
  """The coverage metrics of generated features `fake` (m, D) against `reference`: a blocked pass
  over the generated rows against themselves (their radii, KID's generated-generated sums), then
  one against the real rows (everything else)."""
  settings, real = reference.settings, reference.features
  fake = _check_features(fake, "generated", settings.pr_k + 1)
  if fake.shape[1] != real.shape[1]:
    raise ValueError(f"generated features have dimension {fake.shape[1]}; the real ones "
                     f"{real.shape[1]}")
  size = kid_subset_size(settings, len(fake), len(real))
  members = membership(kid_subsets(settings.kid_subsets, size, len(fake), side=0), len(fake))
  nearest, xx = _self_pass(fake, settings.pr_k + 1, members, reference.block_elements)
  radii = nearest[:, settings.pr_k]
  rows = block_rows(len(fake), len(real), reference.block_elements)
  real_device = [jnp.asarray(a) for a in (real, reference.kid_members(size), reference.radii_pr,
                                          reference.radii_dc)]
  in_real_pr, real_balls_dc, xy = [], [], np.zeros(settings.kid_subsets)
  recalled = np.zeros(len(real), bool)
  nearest_fake = np.full(len(real), np.inf, np.float32)
  for start, block, count in _row_blocks(fake, rows):
    block_radii = np.full(rows, -np.inf, np.float32)
    block_radii[:count] = radii[start:start + count]
    out = _cross_block(block, block_radii, _pad_columns(members[:, start:start + count], rows),
                       *real_device)
    in_real_pr.append(np.asarray(out.in_real_balls_pr)[:count])
    real_balls_dc.append(np.asarray(out.real_balls_dc)[:count])
    recalled |= np.asarray(out.recalled)
    nearest_fake = np.minimum(nearest_fake, np.asarray(out.nearest))
    xy += np.asarray(out.kid_xy, np.float64)
  return {
      "precision": float(np.mean(np.concatenate(in_real_pr))),
      "recall": float(np.mean(recalled)),
      "density": float(np.mean(np.concatenate(real_balls_dc)) / settings.dc_k),
      "coverage": float(np.mean(nearest_fake < reference.radii_dc)),
      "kid": _mmd(xx, reference.kid_real_sums(size), xy, size),
  }


# ---------------------------------------------------------------------------------------------
# Inception Score.


def inception_score(logits, splits: int = IS_SPLITS) -> tuple[float, float]:
  """(mean, std) over `splits` consecutive parts of exp(E_x KL(p(y|x) || p(y))), p(y) the part's
  mean of the softmax of `logits` (N, classes), in float64 (Salimans et al.'s code)."""
  logits = np.asarray(logits, np.float64)
  if logits.ndim != 2 or len(logits) < splits:
    raise ValueError(f"logits must have shape (N, classes) with N >= {splits} splits; got "
                     f"{logits.shape}")
  log_p = special.log_softmax(logits, axis=1)
  scores = []
  for i in range(splits):
    part = log_p[i * len(logits) // splits:(i + 1) * len(logits) // splits]
    log_marginal = special.logsumexp(part, axis=0) - np.log(len(part))
    kl = np.sum(np.exp(part) * (part - log_marginal), axis=1)
    scores.append(np.exp(np.mean(kl)))
  return float(np.mean(scores)), float(np.std(scores))
