"""Core-set batches in your own JAX GAN training loop, without this project's trainer.

A small MLP GAN on a ring of 8 Gaussians, written with plain flax and optax, whose jitted step
draws its batches with `smallgan_jax.sampling` (Small-GAN, Sinha et al. 2020): of 4x the batch of
prior latents, and of 8x the batch of real samples, it trains on the batch that greedy k-center
picks (on the latents; on the real samples' embeddings, here a frozen random feature map reduced
by a Johnson-Lindenstrauss projection, standing in for a pretrained network's features).

Run it after `pip install .` (docs/library.md), or without installing from the repository root as
`python -m examples.coreset_in_your_loop`:

    python examples/coreset_in_your_loop.py --steps=2000
"""
import argparse
import functools
from typing import NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from smallgan_jax import coreset, sampling
from smallgan_jax.data import toy
from smallgan_jax.metrics import mog

BATCH, Z_DIM, FEATURES, EMBED_DIM = 64, 2, 64, 16
FACTOR_PRIOR, FACTOR_TARGET = 4, 8  # the paper's over-sampling of the prior and of the data
MEANS, STD = toy.ring_means(8, radius=2.0), 0.05
OPTIMIZER = optax.adam(1e-3, b1=0.5)


class MLP(nn.Module):
  """Three hidden ReLU layers: the generator (out_dim 2) and the discriminator (out_dim 1)."""
  out_dim: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for _ in range(3):
      x = nn.relu(nn.Dense(128)(x))
    return nn.Dense(self.out_dim)(x)


GENERATOR, DISCRIMINATOR = MLP(2), MLP(1)


class State(NamedTuple):
  g_params: dict
  d_params: dict
  g_opt: optax.OptState
  d_opt: optax.OptState


def init_state(rng: jax.Array) -> State:
  g_rng, d_rng = jax.random.split(rng)
  g_params = GENERATOR.init(g_rng, jnp.zeros((1, Z_DIM)))
  d_params = DISCRIMINATOR.init(d_rng, jnp.zeros((1, 2)))
  return State(g_params, d_params, OPTIMIZER.init(g_params), OPTIMIZER.init(d_params))


def make_embedder(rng: jax.Array) -> dict:
  """The frozen embedding's weights: random features of a sample, and their projection."""
  feature_rng, projection_rng = jax.random.split(rng)
  return {"features": jax.random.normal(feature_rng, (2, FEATURES)),
          "projection": coreset.random_projection(projection_rng, FEATURES, EMBED_DIM)}


def draw_candidates(rng: jax.Array, num_sets: int, n: int, embedder: dict):
  """Real samples (num_sets, n, 2) and their embeddings (num_sets, n, EMBED_DIM), the pair
  `sampling.coreset_target` asks its `draw_candidates` for."""
  mode_rng, noise_rng = jax.random.split(rng)
  modes = jax.random.randint(mode_rng, (num_sets, n), 0, len(MEANS))
  x = jnp.asarray(MEANS)[modes] + STD * jax.random.normal(noise_rng, (num_sets, n, 2))
  return x, coreset.project(jnp.tanh(x @ embedder["features"]), embedder["projection"])


def sample_batches(rng: jax.Array, embedder: dict) -> tuple[jax.Array, jax.Array, jax.Array]:
  """A step's core-set batches: latents for the D and for the G update, (BATCH, Z_DIM) each, from
  one vmapped kernel call, and real samples, (BATCH, 2)."""
  prior_rng, target_rng = jax.random.split(rng)
  z = sampling.coreset_prior(prior_rng, num_sets=2, k=BATCH, factor=FACTOR_PRIOR, z_dim=Z_DIM,
                             prior="normal")
  draw = functools.partial(draw_candidates, embedder=embedder)
  real = sampling.coreset_target(target_rng, draw, num_sets=1, k=BATCH, factor=FACTOR_TARGET)
  return z[0], z[1], real[0]


def bce(logits: jax.Array, label: float) -> jax.Array:
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()


def d_loss(d_params: dict, g_params: dict, z: jax.Array, real: jax.Array) -> jax.Array:
  real_logits = DISCRIMINATOR.apply(d_params, real)
  fake_logits = DISCRIMINATOR.apply(d_params, GENERATOR.apply(g_params, z))
  return bce(real_logits, 1.0) + bce(fake_logits, 0.0)


def g_loss(g_params: dict, d_params: dict, z: jax.Array) -> jax.Array:
  """The non-saturating generator loss."""
  return bce(DISCRIMINATOR.apply(d_params, GENERATOR.apply(g_params, z)), 1.0)


@jax.jit
def update(state: State, z_d: jax.Array, z_g: jax.Array, real: jax.Array) -> tuple[State, dict]:
  """One discriminator update, then one generator update, on the given batches."""
  d_value, d_grads = jax.value_and_grad(d_loss)(state.d_params, state.g_params, z_d, real)
  d_updates, d_opt = OPTIMIZER.update(d_grads, state.d_opt)
  d_params = optax.apply_updates(state.d_params, d_updates)
  g_value, g_grads = jax.value_and_grad(g_loss)(state.g_params, d_params, z_g)
  g_updates, g_opt = OPTIMIZER.update(g_grads, state.g_opt)
  g_params = optax.apply_updates(state.g_params, g_updates)
  return State(g_params, d_params, g_opt, d_opt), {"d_loss": d_value, "g_loss": g_value}


@jax.jit
def train_step(state: State, rng: jax.Array, embedder: dict) -> tuple[State, dict]:
  """Your step: core-set sampling and both updates, compiled into one program."""
  return update(state, *sample_batches(rng, embedder))


def train(steps: int, seed: int = 0) -> tuple[State, dict]:
  """`steps` (>= 1) steps from scratch: the final state and the last step's losses."""
  init_rng, embed_rng, rng = jax.random.split(jax.random.PRNGKey(seed), 3)
  state, embedder = init_state(init_rng), make_embedder(embed_rng)
  for step_rng in jax.random.split(rng, steps):
    state, metrics = train_step(state, step_rng, embedder)
  return state, metrics


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  state, metrics = train(args.steps, args.seed)
  z = jax.random.normal(jax.random.PRNGKey(args.seed + 1), (10_000, Z_DIM))
  scores = mog.mode_metrics(GENERATOR.apply(state.g_params, z), MEANS, STD)
  print(f"{args.steps} steps: d_loss {metrics['d_loss']:.3f}, g_loss {metrics['g_loss']:.3f}, "
        f"modes recovered {scores['num_modes_recovered']}/{scores['num_modes']}, "
        f"high-quality samples {scores['high_quality_pct']:.1f}%")


if __name__ == "__main__":
  main()
