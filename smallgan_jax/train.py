"""Training and evaluation for every GAN of smallgan-jax.

One step function does a whole GAN iteration on each device: it draws the over-sampled prior and
target candidates, computes all of the step's core-sets in one vmapped kernel call, updates the
discriminator `n_dis` times and the generator once (with top-k if enabled), and averages gradients
across devices. It is mapped over every device of every process with `jax.jit` of
`jax.shard_map` rather than `jax.pmap`: the state is then one global, replicated `jax.Array`, which
orbax checkpoints from several processes at once, and a run on 2 processes x 2 devices computes
what 1 process x 4 devices does. Models, losses and data come from the config, so a new GAN is a
new config and modules, not a new loop.
"""
import collections
import functools
from typing import Any, Callable, Optional

import flax
import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import PartitionSpec
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from smallgan_jax import caching, checkpointing, datasets, distributed, evaluation, losses, models
from smallgan_jax import objectives, preemption, reporting, sampling, topk, validation, watchdog
from smallgan_jax.model_state import ModelState, apply_model
from smallgan_jax.data import pipeline

AXIS = distributed.AXIS


class GANState(flax.struct.PyTreeNode):
  """Everything a run needs to continue bit-for-bit: the networks, the exponential moving average
  of the generator's weights (None when `config.ema_decay` is 0: no copy of the weights is kept or
  saved, and evaluation uses the weights themselves), the step and the RNG key. `aux` is the
  objective's third network (MEG's statistics network, BiGAN's encoder; `objectives.py`), None
  for a plain GAN."""
  step: jax.Array
  g: ModelState
  d: ModelState
  g_ema: Any
  rng: jax.Array
  aux: Optional[ModelState] = None


def create_optimizer(config: ml_collections.ConfigDict, lr: float,
                     updates_per_step: int = 1) -> optax.GradientTransformation:
  """Adam with a constant learning rate or one decaying linearly to 0 over the run (SN-GAN's).

  optax schedules count optimizer updates: the critic, updated `n_dis` times a step, passes
  `updates_per_step=n_dis` so that its rate, like the generator's, reaches 0 at the last step.
  """
  if config.optim.schedule == "linear":
    lr = optax.linear_schedule(lr, 0.0, config.num_train_steps * updates_per_step)
  elif config.optim.schedule != "constant":
    raise ValueError(f"config.optim.schedule={config.optim.schedule!r}: "
                     "expected 'constant' or 'linear'")
  return optax.adam(lr, b1=config.optim.b1, b2=config.optim.b2)


def create_model_state(model: flax.linen.Module, rng: jax.Array, example: jax.Array,
                       tx: optax.GradientTransformation) -> ModelState:
  variables = dict(model.init(rng, example, train=False))
  params = variables.pop("params")
  return ModelState.create(apply_fn=model.apply, params=params, tx=tx, collections=variables)


def create_train_state(config: ml_collections.ConfigDict, generator: flax.linen.Module,
                       discriminator: flax.linen.Module, data_shape: tuple[int, ...],
                       rng: jax.Array, aux: Optional[flax.linen.Module] = None) -> GANState:
  """Initialises the networks and their optimizers from `rng` (the aux network, updated with the
  generator, at the generator's learning rate)."""
  aux_rng = jax.random.fold_in(rng, 3)  # Folded: GANs without one initialise as they always did.
  g_rng, d_rng, rng = jax.random.split(rng, 3)
  g = create_model_state(generator, g_rng, jnp.zeros((1, config.z_dim)),
                         create_optimizer(config, config.optim.g_lr))
  d = create_model_state(discriminator, d_rng, objectives.critic_example(config, data_shape),
                         create_optimizer(config, config.optim.d_lr, config.n_dis))
  if aux is not None:
    aux = create_model_state(aux, aux_rng, objectives.aux_example(config, data_shape),
                             create_optimizer(config, config.optim.g_lr))
  g_ema = g.params if config.ema_decay else None
  return GANState(step=jnp.zeros((), jnp.int32), g=g, d=d, g_ema=g_ema, rng=rng, aux=aux)


def update_ema(config: ml_collections.ConfigDict, ema: Any, params: Any) -> Any:
  """The generator's weight average after an update: decay * ema + (1 - decay) * params; None
  (none kept) when the decay is 0."""
  decay = config.ema_decay
  if decay == 0:
    return None
  return jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema, params)


def _pmean(tree: Any, axis_name: Optional[str]) -> Any:
  return tree if axis_name is None else lax.pmean(tree, axis_name)


def d_penalty(config: ml_collections.ConfigDict, d_state: ModelState, params: Any,
              real: jax.Array, fake: jax.Array, rng: jax.Array,
              real_weights: Optional[jax.Array] = None) -> jax.Array:
  """The config's gradient penalty on the critic, times its weight; 0 when that weight is 0.

  On real samples (R1) each sample's term takes its core-set weight `real_weights`; on
  interpolates (WGAN-GP) the terms stay unweighted: an interpolate lies between a real sample and
  a generated one, neither of which it stands for alone.
  The critic is applied in inference mode here, so the penalty does not advance batch or
  spectral-norm statistics a second time in one update.
  """
  gp = config.gradient_penalty
  if gp.weight == 0:
    return jnp.zeros(())
  points, weights = real, real_weights
  if gp.on == "interpolates":
    alpha = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1))
    points, weights = alpha * real + (1 - alpha) * fake, None
  critic = lambda x: apply_model(d_state, params, x, train=False)[0]
  return gp.weight * losses.gradient_penalty(critic, points, gp.center, weights)


def d_update(d_state: ModelState, batch: tuple, g_state: ModelState, aux: Optional[ModelState],
             config: ml_collections.ConfigDict, d_loss_fn: Callable,
             axis_name: Optional[str]) -> tuple[ModelState, dict]:
  """One discriminator update on (latents, real samples, penalty key, the latents' and the real
  samples' core-set weights (None: unweighted)). The logged `d_real` and `d_fake` stay the raw
  means of the critic's outputs."""
  z, real, rng, z_weights, real_weights = batch
  fake, _ = apply_model(g_state, g_state.params, z, train=True)
  fake = lax.stop_gradient(fake)
  both = jax.tree.map(lambda r, f: jnp.concatenate([r, f]),
                      objectives.real_input(config, aux, real), objectives.fake_input(config, fake, z))

  def loss_fn(params):
    logits, collections = apply_model(d_state, params, both, train=True)
    real_logits, fake_logits = jnp.split(logits, 2)
    penalty = d_penalty(config, d_state, params, real, fake, rng, real_weights)
    loss = d_loss_fn(real_logits, fake_logits, real_weights, z_weights) + penalty
    return loss, (collections, real_logits, fake_logits, penalty)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (loss, (collections, real_logits, fake_logits, penalty)), grads = grad_fn(d_state.params)
  grads, collections = _pmean((grads, collections), axis_name)
  d_state = d_state.apply_gradients(grads=grads, collections=collections)
  return d_state, {"d_loss": loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean(),
                   "d_penalty": penalty}


def generator_weights(config: ml_collections.ConfigDict, step: jax.Array, logits: jax.Array,
                      axis_name: Optional[str],
                      z_weights: Optional[jax.Array] = None) -> jax.Array:
  """Per-sample generator-loss weights: top-k's, or ones when top-k is off, times the latents'
  core-set weights `z_weights` (None: unweighted), renormalised over the kept samples."""
  if z_weights is not None:
    z_weights = z_weights.reshape(logits.shape)
  if not config.topk.enabled:
    return jnp.ones_like(logits) if z_weights is None else z_weights
  scope_axis = axis_name if config.topk.scope == "global" else None
  ranked = config.g_batch_size if scope_axis else logits.shape[0]
  k = topk.num_kept(step, ranked, config.topk.gamma, config.topk.nu, config.topk.decay_steps)
  kept = topk.top_k_weights(logits, k, scope_axis)
  return kept if z_weights is None else topk.with_sample_weights(kept, z_weights, scope_axis)


def g_update(state: GANState, d_state: ModelState, z: jax.Array, real: jax.Array,
             rng: jax.Array, config: ml_collections.ConfigDict, g_loss_fn: Callable,
             axis_name: Optional[str], z_weights: Optional[jax.Array] = None,
             real_weights: Optional[jax.Array] = None
             ) -> tuple[ModelState, Optional[ModelState], dict]:
  """One update of the generator and, on the same loss, of the objective's aux network (if any);
  the critic is applied in inference mode and not updated. `real`: the step's last real batch;
  `z_weights`, `real_weights`: their core-set weights (None: unweighted). The generator's
  train-mode batch norm normalises with the statistics of the unweighted batch."""
  g_state, aux = state.g, state.aux
  critic = lambda inputs: apply_model(d_state, d_state.params, inputs, train=False)[0]

  def loss_fn(params):
    g_params, aux_params = params
    fake, collections = apply_model(g_state, g_params, z, train=True)
    logits = critic(objectives.fake_input(config, fake, z))
    weights = generator_weights(config, step=state.step, logits=logits, axis_name=axis_name,
                                z_weights=z_weights)
    loss = g_loss_fn(logits, weights)
    if aux is None:
      return loss, (collections, None, weights, None)
    aux_term, aux_collections = objectives.aux_loss(config, aux, aux_params, critic, fake, z, real,
                                                    rng, z_weights, real_weights)
    return loss + aux_term, (collections, aux_collections, weights, aux_term)

  params = (g_state.params, None if aux is None else aux.params)
  (loss, (collections, aux_collections, weights, aux_term)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(params)
  (g_grads, aux_grads), collections, aux_collections = _pmean(
      (grads, collections, aux_collections), axis_name)
  g_state = g_state.apply_gradients(grads=g_grads, collections=collections)
  metrics = {"g_loss": loss, "g_kept_fraction": jnp.mean(weights > 0)}
  if aux is not None:
    aux = aux.apply_gradients(grads=aux_grads, collections=aux_collections)
    metrics["g_aux_loss"] = aux_term
  return g_state, aux, metrics


def weights_latents(config: ml_collections.ConfigDict) -> bool:
  """Whether `config.coreset.weighting` weights the latents by their cells ("cells")."""
  return config.coreset.weighting == "cells"


def weights_real(config: ml_collections.ConfigDict) -> bool:
  """Whether `config.coreset.weighting` weights the real samples by their cells."""
  return config.coreset.weighting in ("target", "cells")


def draw_latents(config: ml_collections.ConfigDict, rng: jax.Array, k_d: int,
                 k_g: int) -> tuple[sampling.Samples, sampling.Samples]:
  """Core-set latents for the n_dis D updates, (n_dis, k_d, z), and the G update, (k_g, z); each
  with its cell weights, (n_dis, k_d) and (k_g,), where the config weights the latents.

  When the D and G batches have the same size, all n_dis + 1 core-sets come from one vmapped
  kernel call: the kernel's loop is latency-bound, so one call for many sets costs about as much
  as one call for one set.
  """
  sample = functools.partial(sampling.coreset_prior, factor=config.coreset.factor_prior,
                             z_dim=config.z_dim, prior=config.prior,
                             with_weights=weights_latents(config))
  if k_d == k_g:
    z = sample(rng, config.n_dis + 1, k_d)
    return jax.tree.map(lambda x: x[:-1], z), jax.tree.map(lambda x: x[-1], z)
  d_rng, g_rng = jax.random.split(rng)
  return sample(d_rng, config.n_dis, k_d), jax.tree.map(lambda x: x[0], sample(g_rng, 1, k_g))


def global_latents(config: ml_collections.ConfigDict, rng: jax.Array, num_replicas: int,
                   axis_name: Optional[str]) -> tuple[sampling.Samples, sampling.Samples]:
  """This device's slice of one core-set of the global batch, drawn alike on every device (and
  the same slice of its cell weights, as `draw_latents`).

  Every device draws the same `factor * batch_size` candidates (the key is not folded with the
  device index) and computes the same global core-set; device i keeps picks i*k ... (i+1)*k - 1.
  The union over devices is the core-set a single device would train on, whatever the device
  count, at the price of every device running the kernel for the whole batch. The weights are
  not renormalised on a device (`sampling.global_coreset_target`).
  """
  z_d, z_g = draw_latents(config, rng, config.batch_size, config.g_batch_size)
  k_d, k_g = config.batch_size // num_replicas, config.g_batch_size // num_replicas
  index = 0 if axis_name is None else lax.axis_index(axis_name)
  return (jax.tree.map(lambda x: lax.dynamic_slice_in_dim(x, index * k_d, k_d, axis=1), z_d),
          jax.tree.map(lambda x: lax.dynamic_slice_in_dim(x, index * k_g, k_g, axis=0), z_g))


def real_batches(config: ml_collections.ConfigDict, draw: Callable, device_rng: jax.Array,
                 global_rng: jax.Array, num_replicas: int,
                 axis_name: Optional[str]) -> sampling.Samples:
  """This device's real batches of the n_dis critic updates, (n_dis, batch_size / devices, ...):
  core-sets of its own candidates (`target_scope` "device", keyed by `device_rng`), or its slice
  of one core-set of the global batch (`target_scope` "global", `sampling.global_coreset_target`;
  the toys draw its candidates from `global_rng`, alike on every device); with their cell
  weights (n_dis, batch_size / devices) where the config weights the real samples."""
  factor, with_weights = config.coreset.factor_target, weights_real(config)
  if config.coreset.target_scope == "global":
    return sampling.global_coreset_target(global_rng, draw, config.n_dis, config.batch_size,
                                          factor, num_replicas, axis_name, with_weights)
  return sampling.coreset_target(device_rng, draw, config.n_dis,
                                 config.batch_size // num_replicas, factor, with_weights)


def with_weights(samples: sampling.Samples) -> tuple[jax.Array, Optional[jax.Array]]:
  """(samples, cell weights) of a sampler's result; the weights None where it gave none."""
  return samples if isinstance(samples, tuple) else (samples, None)


def step_keys(rng: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(the next step's key, this step's key, the key of this step's global core-sets) from the
  state's key. Devices fold their index into this step's key: device i's is fold_in(step key, i).

  The global key is a sibling of the step key, not a child: with jax_threefry_partitionable (on
  by default since jax 0.5, so in jax 0.10.2), split(k, n)[j] and fold_in(k, j) are both
  threefry(k, (0, j)), so any split or fold_in of the step key is some device's key (the
  fold_in(step key, 3) used before was device 3's). split(rng, 3)[2] is threefry(rng, (0, 2)):
  threefry under one key is a bijection, so it differs from the next step's key and this one's
  (counts (0, 0) and (0, 1)) by construction; from the device keys, threefry under another key,
  it differs but for a 64-bit coincidence (tests/global_coreset_test.py checks 4096 devices).
  It is taken apart from `split(rng)`, which keeps the other two keys what they always were
  (with partitionable threefry split(rng, 3)[:2] equals them too; without, it would not).
  """
  next_rng, step_rng = jax.random.split(rng)
  return next_rng, step_rng, jax.random.split(rng, 3)[2]


def all_finite(*trees: Any) -> jax.Array:
  """Whether every leaf of `trees` is finite (a scalar bool)."""
  return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(trees)]))


def train_step(state: GANState, batch: Any = None, *, config: ml_collections.ConfigDict,
               draw_candidates: Callable, num_replicas: int,
               axis_name: Optional[str] = AXIS) -> tuple[GANState, dict]:
  """A full GAN iteration on one device: core-set sampling, n_dis D updates, one G update.

  `state` is the same on every replica; each replica folds its index into the sampling keys so
  the replicas draw different batches (but for global core-sets, `global_latents` and
  `real_batches`). `batch` is this device's share of what the host streams for the step (image
  candidates), or None where the dataset draws on the device. `num_replicas` splits the global
  batch sizes. The metrics hold `finite`: whether the losses and the new parameters are all
  finite.
  """
  d_loss_fn, g_loss_fn = losses.get_losses(config.loss)
  k_d, k_g = config.batch_size // num_replicas, config.g_batch_size // num_replicas
  rng, step_rng, global_rng = step_keys(state.rng)
  device_rng = step_rng if axis_name is None else jax.random.fold_in(step_rng,
                                                                     lax.axis_index(axis_name))
  prior_rng, target_rng = jax.random.split(device_rng)
  global_prior_rng, global_target_rng = jax.random.split(global_rng)
  if config.coreset.prior_scope == "global":
    z_d, z_g = global_latents(config, global_prior_rng, num_replicas, axis_name)
  else:
    z_d, z_g = draw_latents(config, prior_rng, k_d, k_g)
  (z_d, z_d_weights), (z_g, z_g_weights) = with_weights(z_d), with_weights(z_g)
  draw = functools.partial(draw_candidates, batch=batch)
  real, real_weights = with_weights(
      real_batches(config, draw, target_rng, global_target_rng, num_replicas, axis_name))

  # Folded, not split off, so runs without an interpolation penalty draw what they always drew.
  penalty_rngs = jax.random.split(jax.random.fold_in(device_rng, 2), config.n_dis)

  d_step = functools.partial(d_update, g_state=state.g, aux=state.aux, config=config,
                             d_loss_fn=d_loss_fn, axis_name=axis_name)
  d_state, d_metrics = lax.scan(d_step, state.d,
                                (z_d, real, penalty_rngs, z_d_weights, real_weights))
  g_state, aux, g_metrics = g_update(state, d_state, z_g, real[-1],
                                     jax.random.fold_in(device_rng, 4), config, g_loss_fn,
                                     axis_name, z_g_weights,
                                     None if real_weights is None else real_weights[-1])
  metrics = _pmean({**jax.tree.map(jnp.mean, d_metrics), **g_metrics}, axis_name)
  metrics["finite"] = all_finite(metrics, g_state.params, d_state.params,
                                 None if aux is None else aux.params)
  g_ema = update_ema(config, state.g_ema, g_state.params)
  return state.replace(step=state.step + 1, g=g_state, d=d_state, g_ema=g_ema, rng=rng,
                       aux=aux), metrics


def step_config(config: ml_collections.ConfigDict, dataset: Any) -> ml_collections.ConfigDict:
  """`config` with top-k's `decay_steps` set to one epoch of `dataset` if `decay_per_epoch`.

  An epoch counts the real images the critic trains on (`batch_size` per update, `n_dis`
  updates a step), not the candidates drawn: with core-sets 8x as many are drawn, and counting
  those would decay Small-GAN's top-k 8x faster than the plain GAN's.
  """
  if not config.topk.decay_per_epoch:
    return config
  config = ml_collections.ConfigDict(config.to_dict())
  config.topk.decay_steps = pipeline.steps_per_epoch(len(dataset.source), config.batch_size,
                                                     config.n_dis)
  return config


def make_train_step(config: ml_collections.ConfigDict, dataset: Any, mesh: jax.sharding.Mesh,
                    streamed: bool = False) -> Callable:
  """`train_step` on every device of `mesh`, as one jitted program on the replicated state;
  `streamed`: it also takes the step's host batch, split over the devices on its leading axis.

  `check_vma=False`: the step is written per device as for `pmap` (its outputs are replicated
  because every gradient and statistic is averaged with `pmean`; the tests check the replicas
  stay identical), without shard_map's varying-value annotations.
  """
  step = functools.partial(train_step, config=step_config(config, dataset),
                           draw_candidates=dataset.draw_candidates,
                           num_replicas=mesh.size)
  if streamed:
    per_device = lambda state, batch: step(state, jax.tree.map(lambda x: x[0], batch))
    in_specs = (PartitionSpec(), PartitionSpec(AXIS))
  else:
    per_device, in_specs = step, PartitionSpec()
  sharded = jax.shard_map(per_device, mesh=mesh, in_specs=in_specs, out_specs=PartitionSpec(),
                          check_vma=False)
  return jax.jit(sharded, donate_argnums=0)


class Diverged(RuntimeError):
  """A loss or parameter became non-finite; nothing after the last good checkpoint was saved."""


class StepMetrics:
  """The metrics of dispatched steps. Fetching a step's metrics waits for that step, so holding
  at most `steps_in_flight` unfetched bounds how far the host runs ahead of the devices (hundreds
  of queued steps deadlock XLA:CPU's cross-device all-reduce); each fetched step is checked for
  divergence before anything after it is saved."""

  def __init__(self, manager: ocp.CheckpointManager):
    self.manager = manager
    self.pending = collections.deque()
    self.fetched = []

  def add(self, step: int, metrics: dict) -> None:
    self.pending.append((step, metrics))

  def fetch(self, keep: int = 0) -> None:
    """Fetches (and checks) the oldest pending steps' metrics until `keep` are pending."""
    while len(self.pending) > keep:
      step, metrics = self.pending.popleft()
      local = jax.tree.map(lambda x: x.addressable_data(0), metrics)
      metrics = {k: float(v) for k, v in jax.device_get(local).items()}  # One transfer a step.
      if not metrics.pop("finite"):
        self.diverged(step, metrics)
      self.fetched.append(metrics)

  def diverged(self, step: int, metrics: dict) -> None:
    values = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    last = self.manager.latest_step()
    good = "none" if last is None else f"step {last} in {self.manager.directory}"
    raise Diverged(f"training diverged at step {step}: a loss or parameter is not finite "
                   f"({values}); the last good checkpoint is {good}")

  def means(self) -> dict:
    """Means of every step's metrics since the last call."""
    self.fetch()
    means = jax.tree.map(lambda *xs: float(np.mean(xs)), *self.fetched)
    self.fetched = []
    return means


def create_reporting(workdir: str, config: ml_collections.ConfigDict
                     ) -> tuple[reporting.Writer, Callable[[int], None]]:
  """The run's writer (the log, and TensorBoard on the first process: `reporting.py`) and its
  progress report (step/num_train_steps, steps/s and the time left, every 10 s). The rate counts
  from the end of the first step: its compilation is not the training's speed."""
  writer = reporting.create_writer(workdir, just_logging=jax.process_index() > 0)
  progress = []

  def report(step: int) -> None:
    if not progress:
      progress.append(caching.Progress(config.num_train_steps, "Training", unit="steps",
                                       every_s=10, initial=step))
    progress[0].update(step)

  return writer, report


def replicated_state(config: ml_collections.ConfigDict, dataset: Any,
                     mesh: jax.sharding.Mesh) -> GANState:
  """A fresh state, replicated on every device of `mesh` (of every process)."""
  generator, discriminator = models.get_models(config, dataset.data_shape)
  state = create_train_state(config, generator, discriminator, dataset.data_shape,
                             jax.random.PRNGKey(config.seed),
                             models.get_aux_model(config, dataset.data_shape))
  return jax.device_put(jax.tree.map(np.asarray, state), distributed.replicated(mesh))


def _holds_ema(manager: ocp.CheckpointManager, step: Optional[int]) -> bool:
  """Whether the checkpoint of `step` (None: the newest whose metadata reads) holds a `g_ema`."""
  steps = [step] if step is not None else sorted(manager.all_steps(), reverse=True)
  for candidate in steps:
    try:
      return manager.item_metadata(candidate).tree["g_ema"] is not None
    except Exception:  # pylint: disable=broad-except  # Broken: `restore_latest` sets it aside.
      continue
  return False


def restore(manager: ocp.CheckpointManager, state: GANState,
            restore_into: Callable[[GANState], GANState], step: Optional[int] = None) -> GANState:
  """`restore_into(template)`: a checkpoint of `manager` restored into a template laid out as
  `state`. Checkpoints written before a run with `ema_decay` 0 stopped keeping `g_ema` hold a copy
  of the generator's params there; for those (of `step`, None: the newest) the template has that
  copy too, so that they fit, and it is dropped after."""
  if state.g_ema is not None or not _holds_ema(manager, step):
    return restore_into(state)
  return restore_into(state.replace(g_ema=state.g.params)).replace(g_ema=None)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming from `workdir` if it holds a checkpoint) and returns the final metrics.

  Raises `Diverged` on a non-finite loss or parameter and `preemption.Stopped` after saving the
  step reached when SIGTERM or SIGINT arrives.
  """
  validation.validate_config(config, jax.device_count())
  dataset = datasets.get_dataset(config)
  workdir = checkpointing.prepare_workdir(workdir)
  layout = checkpointing.device_layout()
  checkpointing.check_same_run(workdir, config, layout)
  mesh = distributed.device_mesh()
  manager = checkpointing.create_manager(workdir, config)
  state = restore(manager, replicated_state(config, dataset, mesh),
                  functools.partial(checkpointing.restore_latest, manager))
  checkpointing.save_record(workdir, config, layout)
  first_step = int(distributed.host_value(state.step)) + 1

  writer, report_progress = create_reporting(str(workdir), config)
  evaluate = evaluation.Evaluator(config, dataset, workdir, writer, state.g.apply_fn)
  host_inputs = dataset.batches(config, mesh, first_step)
  p_train_step = make_train_step(config, dataset, mesh, streamed=dataset.streamed)
  metrics = StepMetrics(manager)
  with preemption.Watcher() as watcher, watchdog.Watchdog(
      config.watchdog_timeout_secs, str(manager.directory),
      first_step + config.steps_in_flight) as dog:
    for step in range(first_step, config.num_train_steps + 1):
      with jax.profiler.StepTraceAnnotation("train", step_num=step):
        state, step_metrics = p_train_step(state, *next(host_inputs))
      metrics.add(step, step_metrics)
      metrics.fetch(keep=config.steps_in_flight)
      report_progress(step)
      dog.step(step)
      stop = watcher.should_stop(step)
      if step % config.log_every_steps == 0 or step == config.num_train_steps or stop:
        writer.write_scalars(step, {f"train/{k}": v for k, v in metrics.means().items()})
      if step % config.checkpoint_every_steps == 0 or step == config.num_train_steps or stop:
        metrics.fetch()  # Every step up to this one checked: a diverged state is never saved.
        manager.save(step, args=ocp.args.StandardSave(state))
      if stop:
        manager.wait_until_finished()
        writer.flush()
        raise preemption.Stopped(watcher.signal, step, str(manager.directory))
      if step % config.eval_every_steps == 0 and step != config.num_train_steps:
        evaluate(state, step)

  final = evaluate(state, int(distributed.host_value(state.step)))
  manager.wait_until_finished()
  writer.flush()
  return final
