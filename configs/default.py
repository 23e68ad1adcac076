"""Defaults shared by every config; variants override a few fields.

The values are those of the 2D mixture-of-Gaussians GAN (paper Sec. 4.2), the embedded default.
`paper_image_config` holds what the paper's image configs share.
"""
import ml_collections

from smallgan_jax.metrics import image_scores


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  # Target distribution.
  config.dataset = "mog_grid"     # "mog_grid" or "mog_ring".
  config.num_modes = 25           # grid: a perfect square, 25 ... 100.
  config.mog_std = 0.05
  config.mog_spacing = 2.0        # grid means are this far apart, centred on 0.
  config.ring_radius = 2.0

  # Networks and objective. objective: "gan", or a GAN with a third network, "meg" or "bigan"
  # (smallgan_jax/objectives.py; image configs with model="dcgan").
  config.objective = "gan"
  config.model = "mlp"
  config.mlp = ml_collections.ConfigDict({"width": 512, "hidden_layers": 3})
  config.loss = "non_saturating"  # or "hinge", or "wasserstein" (MEG's energy).
  config.z_dim = 2
  config.prior = "uniform"        # uniform on [-1, 1]^z_dim (the paper's), or "normal".

  # Batches: global sizes, split over all devices. n_dis D updates per G update.
  config.batch_size = 64
  config.g_batch_size = 64
  config.n_dis = 1

  # Core-set over-sampling (paper Sec. 4.1): candidates = factor * batch. 1 = random sampling.
  # prior_scope "device": each device picks its share of the latents from its own candidates (so
  # picks depend on the device count); "global": every device draws the same global candidates and
  # takes its slice of one global core-set (the same picks on any device count). target_scope:
  # the same for the real samples; "global" draws the global candidates from (seed, step) alone,
  # every device computes the one core-set on all their embeddings and the devices exchange the
  # picked images (README: when per-device is the better choice). weighting (beyond the paper;
  # docs/weighted_coresets.md): "none" trains on the picks as they are (the paper); "target"
  # weights each real pick in the critic's loss (and R1, and BiGAN's encoder term) by the share of
  # its set's candidates nearest to it in the embedding, its Voronoi cell; "cells" also weights the
  # latents by their cells in latent space (the critic's fake term, the generator's loss, MEG's
  # statistics network). Greedy k-center over-samples the candidates' edges; the weighted batch
  # stands for all candidates.
  config.coreset = ml_collections.ConfigDict({
      "factor_prior": 4, "factor_target": 8, "prior_scope": "device", "target_scope": "device",
      "weighting": "none"})

  # Top-k generator updates: keep max(gamma^(step // decay_steps), nu) of each G batch. Image
  # configs may set decay_per_epoch=True: decay_steps is then one epoch, the steps in which the
  # critic trains on as many real images as the training split holds
  # (`data.pipeline.steps_per_epoch`), whatever the core-set factor (candidates drawn are not
  # images trained on).
  config.topk = ml_collections.ConfigDict({
      "enabled": False, "gamma": 0.99, "nu": 0.5, "decay_steps": 2000, "decay_per_epoch": False,
      "scope": "global"})

  # Gradient penalty on the critic, added to its loss: weight * mean((||grad_x D|| - center)^2) at
  # real samples ("real", center 0: R1) or at real/fake interpolates ("interpolates", center 1:
  # WGAN-GP). Weight 0 turns it off.
  config.gradient_penalty = ml_collections.ConfigDict({"weight": 0.0, "on": "real", "center": 0.0})

  # Evaluate with an exponential moving average of the generator's weights (0: the weights).
  config.ema_decay = 0.0

  config.optim = ml_collections.ConfigDict({
      "g_lr": 1e-4, "d_lr": 1e-4, "b1": 0.5, "b2": 0.999, "schedule": "constant"})

  config.num_train_steps = 20_000
  # Train steps the host may dispatch ahead of the device (and input batches prepared ahead).
  config.steps_in_flight = 2
  config.log_every_steps = 500
  config.eval_every_steps = 5_000
  config.eval_num_samples = 10_000
  # The generator's batch-norm statistics in evaluation (smallgan_jax/evaluation.py): "standing"
  # recomputes them before each evaluation on eval_standing_samples prior latents, drawn from the
  # seed apart from the evaluated ones (standing_stats.py; BiGAN's encoder: on as many training
  # images); "running" keeps the averages training kept, of its (core-set) batches; "batch"
  # normalises each generated batch of evaluation.GENERATE_BATCH by its own statistics.
  config.eval_batch_stats = "standing"
  config.eval_standing_samples = 4_096
  config.checkpoint_every_steps = 5_000
  config.checkpoint_max_to_keep = 3
  # A process in which no training step finishes for this long (it hangs, or waits on another
  # process that does) ends the run in one line (smallgan_jax/watchdog.py). Counted from the end
  # of the first step (its compilation may take minutes), it must exceed an evaluation and a
  # checkpoint save. 0 turns the watchdog off.
  config.watchdog_timeout_secs = 1800
  return config


def paper_image_config(data: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The defaults with what the paper's image GANs share (configs/cifar_sngan.py,
  configs/lsun_church_sagan.py): images from `data`, z 128 from the paper's uniform prior on
  [-1, 1]^128 (Sec. 3.1: k-center ignores density, so the prior's form is free), hinge loss, Adam
  (0, 0.9), prior and target core-sets of the global batch (the paper's single-GPU algorithm on
  any device count), the target's on Inception pool3 projected to 32 dimensions, and FID of
  50,000 samples every 5,000 steps."""
  config = get_config()
  config.dataset = "images"
  config.data = data
  config.z_dim = 128
  config.prior = "uniform"
  config.loss = "hinge"
  config.coreset.prior_scope = "global"
  config.coreset.target_scope = "global"
  config.coreset.embedding = "inception"
  config.coreset.embedding_dim = 32
  config.coreset.projection_seed = 0
  config.coreset.cache_dir = "~/.cache/smallgan_jax"
  config.coreset.inception_weights = ""
  config.fid = image_scores.fid_config(features=("inception",))
  config.optim.b1 = 0.0
  config.optim.b2 = 0.9
  config.log_every_steps = 100
  config.eval_every_steps = 5_000
  config.eval_num_samples = 50_000
  config.checkpoint_every_steps = 2_500
  return config
