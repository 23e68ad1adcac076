"""Fused greedy k-center in Pallas: the whole selection loop of a core-set in one kernel launch.

The XLA kernel (`coreset.greedy_k_center`) runs one `fori_loop` iteration per pick, and on a GPU
every iteration launches a few kernels: about 9 us per pick whatever the size. Here one program
(a CUDA block, or a TPU core's grid step) owns a set and runs all k - 1 picks itself, holding the
set's minimum distances in registers. The picks are those of the XLA kernel: same layout and order
of the float32 sums (`pairwise_sum`), first pick 0, lowest index on ties, a chosen point's
distance set to -1.

Layout: a set arrives as the XLA kernel's slabs (s, q, n), feature j * q + r in slab j, row r,
padded to powers of two (Triton's block shapes) with zero features, which add exactly 0, and with
padding points whose distance is -inf from the start, so they are never picked. Each distance is a
balanced tree of squared differences of whole rows of points.

Variants:
* Triton (GPU), `block_n=None`: one program per set.
* Triton (GPU), `block_n` < n: a set is split over n / block_n programs that run concurrently and
  meet at a grid barrier after every pick (an atomic counter per set, spun on), exchanging their
  block's best (distance, index) through global memory. This is for sets too large for one SM. All
  programs of the call must be resident at once: sets * programs must not exceed the GPU's SMs.
* Mosaic (TPU): one program per set; the centre is read with a masked row sum instead of a load at
  a dynamic lane offset. Not measured on a TPU (see docs/coreset_kernel.md).
In interpret mode (CPU) every program runs in turn, so only one program per set can run there.
"""
import dataclasses
import functools
from typing import Iterable, Optional

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu
from jax.experimental.pallas import triton as plgpu

VARIANTS = ("triton", "mosaic")


@dataclasses.dataclass(frozen=True)
class KernelConfig:
  """How the kernel is laid out; `None` fields take defaults from the set's size.

  block_n: points per program, a power of two (Triton). None: the whole (padded) set.
  num_warps: Triton warps per program.
  resident: load the points once into registers before the loop (True) or in every pick (False).
  """
  block_n: Optional[int] = None
  num_warps: Optional[int] = None
  resident: Optional[bool] = None


def pairwise_sum(terms: Iterable[jax.Array]) -> jax.Array:
  """Sum as a balanced tree: short dependency chains (more parallel adds) and less rounding.

  Shared by the XLA and Pallas kernels: both must add in the same order to pick the same points.
  Zero terms appended at the end (padding) leave the result bit-identical.
  """
  terms = list(terms)
  while len(terms) > 1:
    pairs = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
    terms = pairs + terms[len(terms) - len(terms) % 2:]
  return terms[0]


def _next_pow2(x: int) -> int:
  return 1 << (x - 1).bit_length()


def _argmax_lowest(values: jax.Array, indices: jax.Array, filler: int) -> tuple:
  """(max of values, lowest of the indices attaining it): two plain reductions, no variadic one.

  The filler keeps the index in range for NaN input, as in the XLA kernel.
  """
  top = jnp.max(values)
  return top, jnp.min(jnp.where(values == top, indices, filler))


def _grid_barrier(count_ref, target) -> None:
  """Arrive at the set's counter and spin until `target` arrivals (acquire-release, GPU scope)."""
  plgpu.debug_barrier()  # every thread's stores of this pick precede the arrival
  seen = plgpu.atomic_add(count_ref, (0,), 1) + 1
  lax.while_loop(lambda c: c < target, lambda _: plgpu.atomic_add(count_ref, (0,), 0), seen)
  plgpu.debug_barrier()


def _kernel(x_ref, *refs, n: int, k: int, block_n: int, resident: bool, variant: str):
  """All k picks of one set (or, with several programs per set, of its block `block_n`)."""
  s, q, _ = x_ref.shape
  programs = x_ref.shape[2] // block_n
  if programs > 1:
    # The zeroed counter arrives as an input aliased to an output: the same buffer.
    _, count_ref, vals_ref, idxs_ref, out_ref = refs
  else:
    (out_ref,) = refs
  start = pl.program_id(1) * block_n
  iota = lax.broadcasted_iota(jnp.int32, (1, block_n), 1) + start
  iota_k = lax.broadcasted_iota(jnp.int32, (1, out_ref.shape[-1]), 1)

  def row(j, r, lanes):
    return x_ref[j, pl.ds(r, 1), lanes]

  def load_rows():
    return [[row(j, r, pl.ds(start, block_n)) for r in range(q)] for j in range(s)]

  held = load_rows() if resident else None

  def centre(j, r, rows, last):
    if variant == "triton":
      return row(j, r, pl.ds(last, 1))
    # Mosaic: no load at a dynamic lane offset; a sum of one value and zeros is exact.
    return jnp.sum(jnp.where(iota == last, rows[j][r], 0.0), axis=1, keepdims=True)

  def distances(last):
    rows = held if resident else load_rows()
    squares = [[(rows[j][r] - centre(j, r, rows, last)) ** 2 for r in range(q)] for j in range(s)]
    return pairwise_sum(pairwise_sum(squares[j][r] for j in range(s)) for r in range(q))

  def pick(i, state):
    min_dist, last, chosen = state
    min_dist = jnp.minimum(min_dist, distances(last))
    min_dist = jnp.where(iota == last, -1.0, min_dist)
    top, nxt = _argmax_lowest(min_dist, iota, n - 1)
    if programs > 1:
      parity = lax.rem(i, 2)
      vals_ref[parity, pl.program_id(1)] = top
      idxs_ref[parity, pl.program_id(1)] = nxt
      _grid_barrier(count_ref, i * programs)
      vals = plgpu.load(vals_ref.at[pl.ds(parity, 1), :], volatile=True)
      idxs = plgpu.load(idxs_ref.at[pl.ds(parity, 1), :], volatile=True)
      _, nxt = _argmax_lowest(vals, idxs, n - 1)
    return min_dist, nxt, jnp.where(iota_k == i, nxt, chosen)

  min_dist = jnp.where(iota < n, jnp.inf, -jnp.inf).astype(jnp.float32)
  init = (min_dist, jnp.int32(0), jnp.zeros((1, out_ref.shape[-1]), jnp.int32))
  chosen = lax.fori_loop(1, k, pick, init)[2]

  @pl.when(pl.program_id(1) == 0)
  def _():
    out_ref[...] = chosen


def _sm_count() -> Optional[int]:
  """Streaming multiprocessors of the default GPU (None elsewhere)."""
  return getattr(jax.devices()[0], "core_count", None)


def default_config(sets: int, n: int, d: int) -> KernelConfig:
  """Layout for `sets` sets of n points of dim d, from the H100 sweeps in docs/coreset_kernel.md.

  A set of up to 1 MiB (padded) gets one program of 8 warps (4 and 16 were slower or level at
  256-1024 points); a larger one is split into blocks of at least 128 points over as many programs
  as the GPU's SMs allow, all sets together, with 4 warps each (the large setting: 64 or 128
  programs level, 32 programs 2.8x slower).
  """
  big_n = _next_pow2(n)
  if d * big_n <= 1 << 18:
    return KernelConfig(block_n=None, num_warps=8)
  per_set = max(1, (_sm_count() or 1) // sets)
  programs = 1 << (per_set.bit_length() - 1)
  return KernelConfig(block_n=max(128, big_n // programs), num_warps=4)


def _resolve(config: Optional[KernelConfig], sets: int, n: int, d: int, variant: str,
             interpret: bool) -> KernelConfig:
  """config with its `None` fields filled from `default_config`, checked."""
  config = config or KernelConfig()
  default = default_config(sets, n, d)
  big_n = _next_pow2(n)
  block_n = config.block_n or default.block_n or big_n
  num_warps = config.num_warps or default.num_warps
  if block_n & (block_n - 1) or block_n > big_n:
    raise ValueError(f"block_n={block_n} must be a power of two <= {big_n} (n={n} padded)")
  programs = big_n // block_n
  if programs > 1:
    if variant != "triton" or interpret:
      raise ValueError(f"block_n={block_n} < {big_n} runs {programs} programs per set at once, "
                       "which needs the Triton variant on a GPU (not interpret mode)")
    sm_count = _sm_count()
    if sm_count is not None and sets * programs > sm_count:
      raise ValueError(f"{sets} sets x {programs} programs exceed the {sm_count} SMs: they could "
                       "not all be resident, and the grid barrier would deadlock")
  resident = config.resident
  if resident is None:
    # Points held in registers: at most 128 floats of them per thread.
    resident = d * block_n <= 128 * 32 * num_warps
  return KernelConfig(block_n, num_warps, resident)


def _compiler_params(variant: str, config: KernelConfig):
  if variant == "triton":
    # num_stages=1: no software pipelining, which could move loads of the exchanged partials
    # across the grid barrier.
    return plgpu.CompilerParams(num_warps=config.num_warps, num_stages=1)
  return pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary"))


@functools.partial(jax.jit, static_argnames=("n", "k", "config", "variant", "interpret"))
def fused_greedy_k_center(slabs: jax.Array, n: int, k: int,
                          config: Optional[KernelConfig] = None, variant: str = "triton",
                          interpret: bool = False) -> jax.Array:
  """Greedy k-center picks, int32 (sets, k), of sets given as float32 slabs (sets, s, q, n).

  `slabs[b]` is `coreset._to_slabs` of set b, and the result is what `coreset.greedy_k_center`
  returns for each set; k must be in [1, n] (the caller checks). config: None for
  `default_config`. variant: one of VARIANTS. interpret: run on the CPU (one program per set).
  """
  if variant not in VARIANTS:
    raise ValueError(f"variant={variant!r} is not one of {VARIANTS}")
  sets, s, q, _ = slabs.shape
  config = _resolve(config, sets, n, s * q, variant, interpret)
  big_s, big_q, big_n, big_k = map(_next_pow2, (s, q, n, k))
  x = jnp.pad(slabs, ((0, 0), (0, big_s - s), (0, big_q - q), (0, big_n - n)))
  programs = big_n // config.block_n
  x_spec = pl.BlockSpec((None, big_s, big_q, big_n), lambda b, p: (b, 0, 0, 0))
  out_spec = pl.BlockSpec((None, 1, big_k), lambda b, p: (b, 0, 0))
  out_shape = jax.ShapeDtypeStruct((sets, 1, big_k), jnp.int32)
  kernel = functools.partial(_kernel, n=n, k=k, block_n=config.block_n,
                             resident=config.resident, variant=variant)
  call = functools.partial(pl.pallas_call, kernel, grid=(sets, programs), interpret=interpret,
                           compiler_params=_compiler_params(variant, config),
                           name="greedy_k_center")
  if programs == 1:
    return call(out_shape=out_shape, in_specs=[x_spec], out_specs=out_spec)(x)[:, 0, :k]

  def sync_spec(*shape):
    return pl.BlockSpec((None, *shape), lambda b, p: (b,) + (0,) * len(shape))

  out = call(
      out_shape=(jax.ShapeDtypeStruct((sets, 1), jnp.int32),
                 jax.ShapeDtypeStruct((sets, 2, programs), jnp.float32),
                 jax.ShapeDtypeStruct((sets, 2, programs), jnp.int32), out_shape),
      in_specs=[x_spec, sync_spec(1)],
      out_specs=(sync_spec(1), sync_spec(2, programs), sync_spec(2, programs), out_spec),
      input_output_aliases={1: 0},
  )(x, jnp.zeros((sets, 1), jnp.int32))
  return out[-1][:, 0, :k]


def variant_for(platform: str) -> str:
  """The kernel variant a platform runs: Mosaic on TPU, else Triton (interpreted on CPU)."""
  return "mosaic" if platform == "tpu" else "triton"
