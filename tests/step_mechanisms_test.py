"""Each mechanism of the real `train.train_step`, checked on what its updates actually saw.

The step runs as in training, with instrumented inputs: a target whose candidates it draws from
the step's key and sends to the host, the prior sampler wrapped to send its candidates too, and
tiny networks (G(z) = scale * z + shift, the identity at init; a zero-initialised linear critic
that sends every batch it scores to the host). Both networks step by plain SGD, so a parameter's
change is -LR times its gradient. From these records each test recovers what an update trained on
and how, and compares it with what Small-GAN prescribes: core-sets of that update's candidates,
a critic update that separates real from fake, generator-loss weights on exactly the top-k, other
candidates on every replica, and gradients averaged over the replicas.
"""
import collections
import functools
import os
import pickle
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks.coreset_reference import greedy_k_center_numpy
from configs import default
from smallgan_jax import losses, sampling, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIM = 8  # Latent and sample dimension (the generator is elementwise).
EMB_DIM = 3  # Target embeddings: not the samples, so a core-set on the samples shows.
REAL_OFFSET = 3.0  # Real samples sit around 3 in every coordinate, fakes in [-1, 1].
LR = 0.1


def mech_config(overrides=None):
  """A small default config; `overrides` maps flattened keys ("topk.enabled") to values."""
  config = default.get_config()
  config.z_dim = DIM
  config.batch_size = config.g_batch_size = 8
  config.n_dis = 2
  config.coreset.factor_prior = config.coreset.factor_target = 4
  config.update_from_flattened_dict(overrides or {})
  return config


class Recorder:
  """Collects the arrays a jitted step sends to the host, by (tag, replica), in call order."""

  def __init__(self, axis_name=None):
    self.axis_name = axis_name
    self.records = collections.defaultdict(list)

  def send(self, tag, *arrays):
    """Traced into the step: each run of this point appends `arrays` to records[tag, replica]."""
    replica = 0 if self.axis_name is None else lax.axis_index(self.axis_name)
    jax.debug.callback(functools.partial(self._store, tag), replica, *arrays)

  def _store(self, tag, replica, *arrays):
    self.records[tag, int(replica)].append(tuple(np.asarray(a) for a in arrays))


class ScaleShiftGenerator(nn.Module):
  """G(z) = scale * z + shift, the identity at init: a step's fakes are its latents."""

  @nn.compact
  def __call__(self, z, train):
    del train
    scale = self.param("scale", nn.initializers.ones, z.shape[-1:])
    shift = self.param("shift", nn.initializers.zeros, z.shape[-1:])
    return z * scale + shift


class RecordingCritic(nn.Module):
  """D(x) = w.x + b, zero at init; sends each batch it scores: "critic_train" in the D updates
  (real then fake samples), "critic_eval" in the G update (fakes)."""
  recorder: Recorder

  @nn.compact
  def __call__(self, x, train):
    if not self.is_initializing():
      self.recorder.send("critic_train" if train else "critic_eval", x)
    return nn.Dense(1, kernel_init=nn.initializers.zeros)(x)[:, 0]


def critic_scores(d_params, x):
  """The linear critic's logits, in float64."""
  dense = d_params["Dense_0"]
  return np.asarray(x, np.float64) @ np.asarray(dense["kernel"][:, 0]) + float(dense["bias"][0])


def recording_target(recorder):
  """A `draw_candidates` that draws from its key and sends (samples, embeddings) as "target"."""

  def draw_candidates(rng, num_sets, n, batch=None):
    del batch
    x_rng, e_rng = jax.random.split(rng)
    x = REAL_OFFSET + 0.5 * jax.random.normal(x_rng, (num_sets, n, DIM))
    embeddings = jax.random.normal(e_rng, (num_sets, n, EMB_DIM))
    recorder.send("target", x, embeddings)
    return x, embeddings

  return draw_candidates


def recording_prior(recorder):
  """`sampling.sample_prior` that also sends what it draws as "prior"."""
  sample_prior = sampling.sample_prior

  def recorded(rng, shape, prior):
    z = sample_prior(rng, shape, prior)
    recorder.send("prior", z)
    return z

  return recorded


def with_sgd(model_state):
  """`model_state` stepping by plain SGD at LR: its change is -LR times its gradient."""
  tx = optax.sgd(LR)
  return model_state.replace(tx=tx, opt_state=tx.init(model_state.params))


def init_state(config, recorder):
  """The step's state for the instrumented networks, both stepping by SGD."""
  state = train.create_train_state(config, ScaleShiftGenerator(), RecordingCritic(recorder),
                                   (DIM,), jax.random.PRNGKey(config.seed))
  return state.replace(g=with_sgd(state.g), d=with_sgd(state.d))


def run_step(config, state, recorder):
  """One jitted `train.train_step` on one device; returns once every record has arrived."""
  step = jax.jit(functools.partial(train.train_step, config=config,
                                   draw_candidates=recording_target(recorder), num_replicas=1,
                                   axis_name=None))
  new_state, _ = step(state)
  jax.effects_barrier()
  return new_state


def d_batches(records, replica=0):
  """[(real, fake)] of each D update of the step, in order."""
  return [tuple(np.split(both, 2)) for (both,) in records["critic_train", replica]]


def g_batch(records, replica=0):
  ((fake,),) = records["critic_eval", replica]
  return fake


def row_indices(batch, candidates):
  """Index in `candidates` (n, d) of each row of `batch` (k, d); -1 for a row that is none."""
  equal = (batch[:, None, :] == candidates[None, :, :]).all(-1)
  return np.where(equal.any(1), equal.argmax(1), -1)


def assert_coresets(batches, candidate_sets, embedding_sets, factor):
  """Each batch (k rows) is the greedy k-center core-set, on the embeddings, of its own set of
  `factor * k` candidates: not the first k, not a random k, not another update's set."""
  sources = []
  for b, batch in enumerate(batches):
    k = len(batch)
    owners = [s for s, c in enumerate(candidate_sets) if (row_indices(batch, c) >= 0).all()]
    assert len(owners) == 1, f"batch {b} is not drawn from one candidate set: {owners}"
    s = owners[0]
    assert len(candidate_sets[s]) == factor * k, (b, len(candidate_sets[s]), factor, k)
    picked = sorted(row_indices(batch, candidate_sets[s]).tolist())
    expected = sorted(greedy_k_center_numpy(embedding_sets[s], k).tolist())
    assert picked == expected, f"batch {b}: picks {picked}, greedy k-center {expected}"
    sources.append(s)
  assert len(set(sources)) == len(sources), f"batches share candidate sets: {sources}"


@pytest.fixture(scope="module", params=[
    {}, {"g_batch_size": 16}, {"coreset.prior_scope": "global"},
    {"coreset.target_scope": "global"}],
                ids=["equal_batches", "g_batch_16", "global_prior", "global_target"])
def recorded_step(request):
  """(config, records) of one step with n_dis=3: D and G batches of 8 (one prior draw for all
  updates), of 8 and 16 (two draws), or of 8 with the global prior or target core-set's code
  path."""
  config = mech_config({"n_dis": 3, **request.param})
  recorder = Recorder()
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(sampling, "sample_prior", recording_prior(recorder))
    run_step(config, init_state(config, recorder), recorder)
  return config, recorder.records


def test_each_critic_update_trains_on_the_core_set_of_its_target_candidates(recorded_step):
  """The real batch of each of the n_dis D updates is the greedy k-center core-set (on the
  embeddings) of that update's own factor_target * batch_size candidates."""
  config, records = recorded_step
  ((x, embeddings),) = records["target", 0]
  real = [r for r, _ in d_batches(records)]
  assert len(real) == len(x) == config.n_dis
  assert_coresets(real, list(x), list(embeddings), config.coreset.factor_target)


def test_every_update_uses_the_core_set_of_its_prior_candidates(recorded_step):
  """The latents of each D update and of the G update (G is the identity at init, so fakes are
  latents) are the greedy k-center core-set of their own factor_prior * k prior draws."""
  config, records = recorded_step
  candidates = [s for (z,) in records["prior", 0] for s in z]
  latents = [f for _, f in d_batches(records)] + [g_batch(records)]
  assert len(latents) == config.n_dis + 1
  assert_coresets(latents, candidates, candidates, config.coreset.factor_prior)


@pytest.mark.parametrize("loss", losses.LOSSES)
def test_critic_update_widens_real_minus_fake_on_its_batch(loss):
  """After one D update, mean D(real) - mean D(fake) on the batch it trained on has risen from 0
  (the critic starts at 0) by a clear margin: the real and fake logits enter the loss on the
  right sides. Swapping them lowers it by as much."""
  config = mech_config({"n_dis": 1, "loss": loss})
  recorder = Recorder()
  state = init_state(config, recorder)
  new_state = run_step(config, state, recorder)
  ((real, fake),) = d_batches(recorder.records)
  gap = lambda params: critic_scores(params, real).mean() - critic_scores(params, fake).mean()
  assert gap(state.d.params) == 0
  # One SGD step on a linear critic at 0 widens the gap by c * LR * |mean(real) - mean(fake)|^2,
  # c = 1/2 (non-saturating) or 1 (hinge): 3.4 and 6.8 here.
  assert gap(new_state.d.params) > 1.0, gap(new_state.d.params)


def test_generator_loss_weights_keep_exactly_the_top_k():
  """With top-k on (k = 3 of 8 at this step), the G update's per-sample loss weights are
  8/3 on the 3 fakes the updated critic scores highest and 0 on the others.

  The weights are recovered from the generator's gradient: with G(z) = scale * z + shift, a
  linear critic D(x) = v.x + b and the hinge loss -mean(w_i D(G(z_i))), the gradient of `scale`
  is -v * sum_i(w_i z_i) / n, and the n = DIM latents are linearly independent.
  """
  config = mech_config({"n_dis": 1, "loss": "hinge", "topk.enabled": True, "topk.gamma": 0.375,
                        "topk.nu": 0.1, "topk.decay_steps": 1})
  recorder = Recorder()
  # At step 1 top-k keeps max(0.375^1, 0.1) = 3/8 of the batch.
  state = init_state(config, recorder).replace(step=jnp.ones((), jnp.int32))
  new_state = run_step(config, state, recorder)
  z = g_batch(recorder.records).astype(np.float64)
  n, k = len(z), 3
  grad_scale = (1.0 - np.asarray(new_state.g.params["scale"], np.float64)) / LR
  v = np.asarray(new_state.d.params["Dense_0"]["kernel"][:, 0], np.float64)
  weights = np.linalg.solve(z.T, -n * grad_scale / v)
  top = np.argsort(-critic_scores(new_state.d.params, z))[:k]
  expected = np.zeros(n)
  expected[top] = n / k
  np.testing.assert_allclose(weights, expected, atol=0.02)


# Per-device core-sets (with "global" every replica draws the same candidates), and global ones.
FOUR_REPLICA_OVERRIDES = {"batch_size": 16, "g_batch_size": 16, "coreset.prior_scope": "device",
                          "coreset.target_scope": "device"}
GLOBAL_OVERRIDES = {**FOUR_REPLICA_OVERRIDES, "coreset.prior_scope": "global",
                    "coreset.target_scope": "global"}
FOUR_REPLICAS = textwrap.dedent("""
    import pickle, sys, types
    import jax, numpy as np
    from smallgan_jax import distributed, sampling, train
    from tests import step_mechanisms_test as t
    assert jax.device_count() == 4
    config = t.mech_config(getattr(t, sys.argv[2]))
    recorder = t.Recorder(distributed.AXIS)
    sampling.sample_prior = t.recording_prior(recorder)
    mesh = distributed.device_mesh()
    target = types.SimpleNamespace(draw_candidates=t.recording_target(recorder))
    state = jax.device_put(t.init_state(config, recorder), distributed.replicated(mesh))
    state, _ = train.make_train_step(config, target, mesh)(state)
    jax.effects_barrier()
    copies = lambda leaf: [np.asarray(shard.data) for shard in leaf.addressable_shards]
    out = {"records": dict(recorder.records),
           "params": jax.tree.map(copies, (state.g.params, state.d.params)),
           "leaves": [copies(leaf) for leaf in jax.tree.leaves(state)]}
    with open(sys.argv[1], "wb") as f:
      pickle.dump(out, f)
""")


def run_four_replicas(path, overrides_name):
  """One step of `train.make_train_step` on 4 simulated devices (global batches of 16, n_dis 2)
  of the config with the overrides named: its records, and each device's copy of the networks'
  parameters and of every state leaf."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", FOUR_REPLICAS, str(path), overrides_name], env=env,
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  with open(path, "rb") as f:
    return pickle.load(f)


@pytest.fixture(scope="module")
def four_replicas(tmp_path_factory):
  """`run_four_replicas` with per-device core-sets."""
  return run_four_replicas(tmp_path_factory.mktemp("four_replicas") / "run.pkl",
                           "FOUR_REPLICA_OVERRIDES")


@pytest.fixture(scope="module")
def four_global_replicas(tmp_path_factory):
  """`run_four_replicas` with global prior and target core-sets."""
  return run_four_replicas(tmp_path_factory.mktemp("four_global_replicas") / "run.pkl",
                           "GLOBAL_OVERRIDES")


def assert_all_different(arrays, what):
  for i in range(len(arrays)):
    for j in range(i):
      assert not np.array_equal(arrays[i], arrays[j]), f"replicas {j} and {i} share {what}"


def test_replicas_draw_different_candidates_and_stay_identical(four_replicas):
  """Each replica draws its own target and prior candidates and so trains on its own batches
  (a replica repeating another's batch would shrink the global batch), while every copy of the
  state stays the same."""
  records = four_replicas["records"]
  assert_all_different([records["target", r][0][0] for r in range(4)], "target candidates")
  assert_all_different([records["prior", r][0][0] for r in range(4)], "prior candidates")
  batches = [d_batches(records, r) for r in range(4)]
  for u in range(mech_config(FOUR_REPLICA_OVERRIDES).n_dis):
    assert_all_different([b[u][0] for b in batches], f"update {u}'s reals")
    assert_all_different([b[u][1] for b in batches], f"update {u}'s fakes")
  assert_all_different([g_batch(records, r) for r in range(4)], "the G update's fakes")
  for copies in four_replicas["leaves"]:
    for copy in copies[1:]:
      np.testing.assert_array_equal(copy, copies[0])


def test_global_core_sets_are_spread_over_the_replicas_in_pick_order(four_global_replicas):
  """With global core-sets every replica draws the same candidates (from the step's global key),
  and replica r's batches are picks 4r ... 4r + 3 of each set's greedy k-center core-set of all
  16 * factor candidates: the replicas' batches in replica order are one device's core-set."""
  config = mech_config(GLOBAL_OVERRIDES)
  records = four_global_replicas["records"]
  for tag in ("target", "prior"):
    for r in range(1, 4):
      for got, want in zip(records[tag, r][0], records[tag, 0][0]):
        np.testing.assert_array_equal(got, want, err_msg=f"replica {r}'s {tag} candidates")
  ((x, embeddings),) = records["target", 0]
  ((z,),) = records["prior", 0]  # One draw: the n_dis D updates' latent sets, then G's.
  assert len(x) == config.n_dis and len(z) == config.n_dis + 1
  for u in range(config.n_dis):
    real, fake = (np.concatenate(b) for b in zip(*[d_batches(records, r)[u] for r in range(4)]))
    np.testing.assert_array_equal(real, x[u][greedy_k_center_numpy(embeddings[u], 16)])
    np.testing.assert_array_equal(fake, z[u][greedy_k_center_numpy(z[u], 16)])  # G = identity.
  fake = np.concatenate([g_batch(records, r) for r in range(4)])
  np.testing.assert_array_equal(fake, z[-1][greedy_k_center_numpy(z[-1], 16)])


@pytest.mark.parametrize("replicas", ["four_replicas", "four_global_replicas"])
def test_four_replicas_step_as_one_device_on_the_union_of_their_batches(replicas, request):
  """The 4-replica step's networks equal, on every replica, the one-device D and G updates on the
  union of the replicas' batches: the gradients are averaged (not summed, not one replica's)."""
  config = mech_config(FOUR_REPLICA_OVERRIDES)
  state = init_state(config, Recorder())
  replicas = request.getfixturevalue(replicas)
  records = replicas["records"]
  union = lambda arrays: jnp.asarray(np.concatenate(arrays))
  d_loss_fn, g_loss_fn = losses.get_losses(config.loss)
  d_state = state.d
  for u in range(config.n_dis):
    real = union([d_batches(records, r)[u][0] for r in range(4)])
    fake = union([d_batches(records, r)[u][1] for r in range(4)])  # G = identity: fakes = latents.
    d_state, _ = train.d_update(d_state, (fake, real, jax.random.PRNGKey(0), None, None),
                                state.g, None, config, d_loss_fn, None)
  z_g = union([g_batch(records, r) for r in range(4)])
  g_state, _, _ = train.g_update(state, d_state, z_g, real, jax.random.PRNGKey(0), config,
                                 g_loss_fn, None)
  expected = jax.tree.leaves((g_state.params, d_state.params))
  got = jax.tree.leaves(replicas["params"], is_leaf=lambda x: isinstance(x, list))
  assert len(got) == len(expected)
  for want, copies in zip(expected, got):
    for copy in copies:
      np.testing.assert_allclose(copy, np.asarray(want), rtol=0, atol=1e-5)
