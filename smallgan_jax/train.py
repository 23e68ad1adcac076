"""Training and evaluation for every GAN of smallgan-jax.

One pmapped step does a whole GAN iteration on each device: it draws the over-sampled prior and
target candidates, computes all of the step's core-sets in one vmapped kernel call, updates the
discriminator `n_dis` times and the generator once (with top-k if enabled), and averages gradients
across devices. Models, losses and data come from the config, so a new GAN is a new config and
modules, not a new loop.
"""
import functools
import json
import os
from typing import Any, Callable, Optional

from absl import logging
import flax
from flax.training import train_state
import jax
from jax import lax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from smallgan_jax import data, losses, models, sampling, topk

AXIS = "batch"
PENALTY_POINTS = ("real", "interpolates")
# Config fields a resumed run may change: they set how long it runs and how often it reports, not
# what it trains (`num_train_steps` is how a run is extended; under `optim.schedule="linear"` it
# also stretches the decay, which is the point of extending such a run).
RESUMABLE_KEYS = ("num_train_steps", "log_every_steps", "eval_every_steps", "eval_num_samples",
                  "checkpoint_every_steps", "checkpoint_max_to_keep")


class ModelState(train_state.TrainState):
  """A network's TrainState plus its non-parameter variable collections (e.g. batch statistics or
  spectral-norm vectors), which `apply_model` threads through."""
  collections: Any = flax.struct.field(default_factory=dict)


class GANState(flax.struct.PyTreeNode):
  """Everything a run needs to continue bit-for-bit: both networks, the step and the RNG key."""
  step: jax.Array
  g: ModelState
  d: ModelState
  rng: jax.Array


def validate_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ValueError, naming the key and value, on settings that cannot run."""
  positive = ("num_train_steps", "batch_size", "g_batch_size", "n_dis", "z_dim",
              "coreset.factor_prior", "coreset.factor_target", "log_every_steps",
              "eval_every_steps", "checkpoint_every_steps", "eval_num_samples")
  for key in positive:
    value = functools.reduce(getattr, key.split("."), config)
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"config.{key}={value!r}: expected a positive integer")
  for key in ("batch_size", "g_batch_size"):
    if config[key] % num_devices:
      raise ValueError(f"config.{key}={config[key]} must be divisible by the {num_devices} devices")
  if config.topk.scope not in topk.SCOPES:
    raise ValueError(f"config.topk.scope={config.topk.scope!r}: expected one of {topk.SCOPES}")
  if not 0 < config.topk.nu <= 1 or not 0 < config.topk.gamma <= 1:
    raise ValueError(f"config.topk gamma={config.topk.gamma}, nu={config.topk.nu}: "
                     "expected both in (0, 1]")
  gp = config.gradient_penalty
  if gp.on not in PENALTY_POINTS or not gp.weight >= 0:
    raise ValueError(f"config.gradient_penalty weight={gp.weight!r}, on={gp.on!r}: expected a "
                     f"weight >= 0 and `on` one of {PENALTY_POINTS}")
  if not isinstance(config.topk.decay_steps, int) or config.topk.decay_steps < 1:
    raise ValueError(f"config.topk.decay_steps={config.topk.decay_steps!r}: "
                     "expected a positive integer")


def create_optimizer(config: ml_collections.ConfigDict, lr: float) -> optax.GradientTransformation:
  """Adam with a constant learning rate or one decaying linearly to 0 (SN-GAN's schedule)."""
  if config.optim.schedule == "linear":
    lr = optax.linear_schedule(lr, 0.0, config.num_train_steps)
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
                       rng: jax.Array) -> GANState:
  """Initialises both networks and their optimizers from `rng`."""
  g_rng, d_rng, rng = jax.random.split(rng, 3)
  g = create_model_state(generator, g_rng, jnp.zeros((1, config.z_dim)),
                         create_optimizer(config, config.optim.g_lr))
  d = create_model_state(discriminator, d_rng, jnp.zeros((1, *data_shape)),
                         create_optimizer(config, config.optim.d_lr))
  return GANState(step=jnp.zeros((), jnp.int32), g=g, d=d, rng=rng)


def apply_model(state: ModelState, params: Any, x: jax.Array, train: bool) -> tuple[jax.Array, Any]:
  """Runs a network; returns its output and its (updated, when training) collections."""
  variables = {"params": params, **state.collections}
  if not train or not state.collections:
    return state.apply_fn(variables, x, train=train), state.collections
  return state.apply_fn(variables, x, train=True, mutable=list(state.collections))


def _pmean(tree: Any, axis_name: Optional[str]) -> Any:
  return tree if axis_name is None else lax.pmean(tree, axis_name)


def d_penalty(config: ml_collections.ConfigDict, d_state: ModelState, params: Any,
              real: jax.Array, fake: jax.Array, rng: jax.Array) -> jax.Array:
  """The config's weighted gradient penalty on the critic; 0 when its weight is 0.

  The critic is applied in inference mode here, so the penalty does not advance batch or
  spectral-norm statistics a second time in one update.
  """
  gp = config.gradient_penalty
  if gp.weight == 0:
    return jnp.zeros(())
  points = real
  if gp.on == "interpolates":
    alpha = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1))
    points = alpha * real + (1 - alpha) * fake
  critic = lambda x: apply_model(d_state, params, x, train=False)[0]
  return gp.weight * losses.gradient_penalty(critic, points, gp.center)


def d_update(d_state: ModelState, batch: tuple[jax.Array, jax.Array, jax.Array],
             g_state: ModelState, config: ml_collections.ConfigDict, d_loss_fn: Callable,
             axis_name: Optional[str]) -> tuple[ModelState, dict]:
  """One discriminator update on a (latents, real samples, penalty key) triple."""
  z, real, rng = batch
  fake, _ = apply_model(g_state, g_state.params, z, train=True)
  fake = lax.stop_gradient(fake)
  both = jnp.concatenate([real, fake])

  def loss_fn(params):
    logits, collections = apply_model(d_state, params, both, train=True)
    real_logits, fake_logits = jnp.split(logits, 2)
    penalty = d_penalty(config, d_state, params, real, fake, rng)
    loss = d_loss_fn(real_logits, fake_logits) + penalty
    return loss, (collections, real_logits, fake_logits, penalty)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (loss, (collections, real_logits, fake_logits, penalty)), grads = grad_fn(d_state.params)
  grads, collections = _pmean((grads, collections), axis_name)
  d_state = d_state.apply_gradients(grads=grads, collections=collections)
  return d_state, {"d_loss": loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean(),
                   "d_penalty": penalty}


def generator_weights(config: ml_collections.ConfigDict, step: jax.Array, logits: jax.Array,
                      axis_name: Optional[str]) -> jax.Array:
  """Per-sample generator-loss weights: top-k's, or ones when top-k is off."""
  if not config.topk.enabled:
    return jnp.ones_like(logits)
  scope_axis = axis_name if config.topk.scope == "global" else None
  ranked = config.g_batch_size if scope_axis else logits.shape[0]
  k = topk.num_kept(step, ranked, config.topk.gamma, config.topk.nu, config.topk.decay_steps)
  return topk.top_k_weights(logits, k, scope_axis)


def g_update(g_state: ModelState, d_state: ModelState, z: jax.Array, step: jax.Array,
             config: ml_collections.ConfigDict, g_loss_fn: Callable,
             axis_name: Optional[str]) -> tuple[ModelState, dict]:
  """One generator update; the critic is applied in inference mode and not updated."""
  def loss_fn(params):
    fake, collections = apply_model(g_state, params, z, train=True)
    logits, _ = apply_model(d_state, d_state.params, fake, train=False)
    weights = generator_weights(config, step, logits, axis_name)
    return g_loss_fn(logits, weights), (collections, weights)

  (loss, (collections, weights)), grads = jax.value_and_grad(loss_fn, has_aux=True)(g_state.params)
  grads, collections = _pmean((grads, collections), axis_name)
  g_state = g_state.apply_gradients(grads=grads, collections=collections)
  return g_state, {"g_loss": loss, "g_kept_fraction": jnp.mean(weights > 0)}


def draw_latents(config: ml_collections.ConfigDict, rng: jax.Array, k_d: int,
                 k_g: int) -> tuple[jax.Array, jax.Array]:
  """Core-set latents for the n_dis D updates, (n_dis, k_d, z), and the G update, (k_g, z).

  When the D and G batches have the same size, all n_dis + 1 core-sets come from one vmapped
  kernel call: the kernel's loop is latency-bound, so one call for many sets costs about as much
  as one call for one set.
  """
  sample = functools.partial(sampling.coreset_prior, factor=config.coreset.factor_prior,
                             z_dim=config.z_dim, prior=config.prior)
  if k_d == k_g:
    z = sample(rng, config.n_dis + 1, k_d)
    return z[:-1], z[-1]
  d_rng, g_rng = jax.random.split(rng)
  return sample(d_rng, config.n_dis, k_d), sample(g_rng, 1, k_g)[0]


def train_step(state: GANState, *, config: ml_collections.ConfigDict,
               draw_candidates: Callable, num_replicas: int,
               axis_name: Optional[str] = AXIS) -> tuple[GANState, dict]:
  """A full GAN iteration on one device: core-set sampling, n_dis D updates, one G update.

  `state` is the same on every replica; each replica folds its index into the sampling keys so
  the replicas draw different batches. `num_replicas` splits the global batch sizes.
  """
  d_loss_fn, g_loss_fn = losses.get_losses(config.loss)
  k_d, k_g = config.batch_size // num_replicas, config.g_batch_size // num_replicas
  rng, step_rng = jax.random.split(state.rng)
  if axis_name is not None:
    step_rng = jax.random.fold_in(step_rng, lax.axis_index(axis_name))
  prior_rng, target_rng = jax.random.split(step_rng)
  z_d, z_g = draw_latents(config, prior_rng, k_d, k_g)
  real = sampling.coreset_target(target_rng, draw_candidates, config.n_dis, k_d,
                                 config.coreset.factor_target)

  # Folded, not split off, so runs without an interpolation penalty draw what they always drew.
  penalty_rngs = jax.random.split(jax.random.fold_in(step_rng, 2), config.n_dis)

  d_step = functools.partial(d_update, g_state=state.g, config=config, d_loss_fn=d_loss_fn,
                             axis_name=axis_name)
  d_state, d_metrics = lax.scan(d_step, state.d, (z_d, real, penalty_rngs))
  g_state, g_metrics = g_update(state.g, d_state, z_g, state.step, config, g_loss_fn, axis_name)
  metrics = _pmean({**jax.tree.map(jnp.mean, d_metrics), **g_metrics}, axis_name)
  return state.replace(step=state.step + 1, g=g_state, d=d_state, rng=rng), metrics


@functools.partial(jax.jit, static_argnames=("train",))
def generate(g_state: ModelState, z: jax.Array, train: bool = False) -> jax.Array:
  """Generator samples for latents `z` (inference mode)."""
  return apply_model(g_state, g_state.params, z, train)[0]


def evaluate(config: ml_collections.ConfigDict, g_state: ModelState,
             dataset: Any) -> tuple[np.ndarray, dict]:
  """Generates `eval_num_samples` from a fixed latent draw and scores them with the dataset."""
  rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
  z = sampling.sample_prior(rng, (config.eval_num_samples, config.z_dim), config.prior)
  samples = np.asarray(generate(g_state, z))
  return samples, dataset.evaluate(samples)


def prepare_workdir(workdir: str) -> str:
  """Creates `workdir` and checks it is writable, before anything is trained."""
  workdir = os.path.abspath(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ValueError(f"--workdir={workdir!r} cannot be created: {e.strerror}") from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise ValueError(f"--workdir={workdir!r} is not writable")
  return workdir


def config_path(workdir: str) -> str:
  return os.path.join(workdir, "config.json")


def config_as_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


def check_same_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Refuses a workdir whose run was trained with another config (but for `RESUMABLE_KEYS`):
  resuming its checkpoint under other hyper-parameters would silently mix two experiments."""
  if not os.path.exists(config_path(workdir)):
    return
  with open(config_path(workdir)) as f:
    before = flax.traverse_util.flatten_dict(json.load(f), sep=".")
  now = flax.traverse_util.flatten_dict(config_as_json(config), sep=".")
  changed = sorted(k for k in before.keys() | now.keys()
                   if before.get(k) != now.get(k) and k not in RESUMABLE_KEYS)
  if changed:
    diffs = ", ".join(f"config.{k}={before.get(k)!r} there, {now.get(k)!r} now" for k in changed)
    raise ValueError(f"--workdir={workdir!r} holds a run of another config ({diffs}); "
                     "use another --workdir")


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Records the config the run goes on with, next to its checkpoints."""
  if jax.process_index() == 0:
    with open(config_path(workdir), "w") as f:
      json.dump(config_as_json(config), f, indent=2, sort_keys=True)
  logging.info("Config (also in %s):\n%s", config_path(workdir), config)


def create_checkpoint_manager(workdir: str,
                              config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=config.checkpoint_max_to_keep)
  return ocp.CheckpointManager(os.path.join(workdir, "checkpoints"), options=options)


def restore_checkpoint(manager: ocp.CheckpointManager, state: GANState) -> GANState:
  """Resumes from the latest checkpoint in the workdir, if there is one."""
  step = manager.latest_step()
  if step is None:
    return state
  logging.info("Resuming from the checkpoint of step %d in %s", step, manager.directory)
  try:
    return manager.restore(step, args=ocp.args.StandardRestore(state))
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"the checkpoint of step {step} in {manager.directory} does not fit this "
                     f"config ({type(e).__name__}); use another --workdir") from e


def create_reporting(workdir: str, config: ml_collections.ConfigDict) -> tuple[Any, Callable]:
  """clu's console + TensorBoard writer (console only on hosts other than the first) and its
  progress reporter (steps/s and ETA).

  clu's writers import TensorFlow, so clu is imported here rather than at the top: the train step
  stays importable where TensorFlow is not installed (e.g. GPU images running benchmarks).
  """
  from clu import metric_writers, periodic_actions  # pylint: disable=g-import-not-at-top
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  report_progress = periodic_actions.ReportProgress(
      num_train_steps=config.num_train_steps, writer=writer, every_secs=10)
  return writer, report_progress


def write_samples(config: ml_collections.ConfigDict, workdir: str, dataset: Any, writer: Any,
                  state: GANState, step: int) -> dict:
  """Evaluates the generator, writes its metrics and a sample plot; returns the metrics."""
  samples, metrics = evaluate(config, state.g, dataset)
  writer.write_scalars(step, {f"eval/{k}": v for k, v in metrics.items()})
  path = os.path.join(workdir, f"samples_{step:08d}.png")
  dataset.save_samples(path, samples, f"{config.dataset}, step {step}")
  logging.info("Step %d: %s; samples plotted in %s", step,
               ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()), path)
  return metrics


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming from `workdir` if it holds a checkpoint) and returns the final metrics."""
  validate_config(config, jax.device_count())
  dataset = data.get_dataset(config)
  generator, discriminator = models.get_models(config, dataset.data_shape)
  workdir = prepare_workdir(workdir)
  check_same_config(workdir, config)
  state = create_train_state(config, generator, discriminator, dataset.data_shape,
                             jax.random.PRNGKey(config.seed))
  manager = create_checkpoint_manager(workdir, config)
  state = restore_checkpoint(manager, state)
  save_config(workdir, config)
  first_step = int(state.step) + 1

  writer, report_progress = create_reporting(workdir, config)
  p_train_step = jax.pmap(
      functools.partial(train_step, config=config, draw_candidates=dataset.draw_candidates,
                        num_replicas=jax.device_count()),
      axis_name=AXIS, donate_argnums=(0,))
  state = flax.jax_utils.replicate(state)
  history = []
  for step in range(first_step, config.num_train_steps + 1):
    with jax.profiler.StepTraceAnnotation("train", step_num=step):
      state, metrics = p_train_step(state)
    history.append(metrics)
    report_progress(step)
    if step % config.log_every_steps == 0 or step == config.num_train_steps:
      means = jax.tree.map(lambda *xs: float(np.mean(xs)), *jax.device_get(history))
      writer.write_scalars(step, {f"train/{k}": v for k, v in means.items()})
      history = []
    if step % config.checkpoint_every_steps == 0 or step == config.num_train_steps:
      manager.save(step, args=ocp.args.StandardSave(flax.jax_utils.unreplicate(state)))
    if step % config.eval_every_steps == 0 and step != config.num_train_steps:
      write_samples(config, workdir, dataset, writer, flax.jax_utils.unreplicate(state), step)

  state = flax.jax_utils.unreplicate(state)
  final = write_samples(config, workdir, dataset, writer, state, int(state.step))
  manager.wait_until_finished()
  writer.flush()
  return final
