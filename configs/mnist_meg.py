"""Core-set MEG anomaly detection on MNIST (paper Table 2), set as MEG's reference script sets it
(`scripts/train/anomaly_mnist.py` of ritheshkumar95/energy_based_generative_models, Kumar et al.
2019), save for the differences listed below.

  python -m smallgan_jax.main --config=configs/mnist_meg.py --config.anomaly_class=1 \
      --workdir=workdirs/mnist_meg_1

MNIST by name through tfds (downloaded on first use; offline, `tfds build mnist` on a machine
with internet, or --config.data.tfds_data_dir=gs://...); train and test pooled (70,000 images). The held-out digit
(`anomaly_class`) is the anomaly: 80% of the other digits (shuffled with seed 42) train, 20% of
them and every held-out digit test (`anomaly_split`, below). Each evaluation writes to TensorBoard
the energy E(x)'s AUPRC, anomalies positive, as average precision (`eval/auprc`) and as the
reference's trapezoidal area (`eval/auprc_trapz`), and its ROC AUC (`eval/roc_auc`).

As the reference: one energy update per generator update (its `--energy_model_iters` 1), Adam 1e-4
(0.5, 0.9) for E, G and the statistics network T, z 128 from a normal prior (the reference's,
kept for the baselines' sake; the image GANs sample the paper's uniform one), batch 64, energy
penalty 100 * ||grad E(real)||^2, T updated with G, entropy term weight 1 (smallgan_jax/
objectives.py), 55 epochs with an evaluation after each: an epoch is 788 steps of 64 images
(50,432, one pass over the 50,400 training images of an average digit, 80% of its about 63,000
normal images; the count depends on the held-out digit), 55 of them 43,340 steps.
Core-sets (the paper's addition): prior factor 4, target factor 8 on the raw pixels projected to
32 dimensions (a random projection; the target embedding must not know the held-out class).
Plain MEG: --config.coreset.factor_prior=1 --config.coreset.factor_target=1.

Differences from the reference script, and why:
- Networks: `models/dcgan.py`'s two 4x4 stride-2 stages, not its four 5x5 ones, so `dim` 512 (the
  widest layer there: E 64-128-256-512 channels, G 512-256-128-64) is matched by width 256 (E
  256-512, G 512-256). At these sizes G has 5.3M parameters (reference 4.6M), E 2.1M (4.3M) and T
  29.0M (4.7M: ours has the BiGAN joint discriminator's dense layers of 4 * width over the image
  features and an embedding of z, the reference a 128-d image embedding concatenated with z and a
  dense layer of 512).
- Data order: each step draws its candidates uniformly (`data/pipeline.py`), not the training
  array in a fixed order: the core-set needs candidates to pick from, and a uniform stream makes
  resumed and multi-device runs draw what one uninterrupted run does. An epoch is counted in
  images the energy trains on.
- Split: "clean" by default, no test image trained on; the reference's test normals are a fresh
  draw that overlaps its training set (about 80%), `--config.anomaly_split=reference` replays
  that (data/anomaly.py), on tfds's order of the images, not the reference's `mnist.npz`.
- Evaluations: after each of the 55 epochs (the reference: before each, so its first is of the
  untrained E and the fully trained one is never scored). benchmarks/anomaly_table.py averages a
  run over the evaluations in its last 20% of steps (11 here; the Small-GAN paper averages the
  last 10 of 55 epochs).

Expected: not measured here (no MNIST on this machine). The paper's Table 2 (digits 1/4/5/7/9)
reports AUPRC 0.351/0.501/0.518/0.387/0.390 for core-set MEG and 0.281/0.401/0.402/0.290/0.342
for MEG, under the reference's split and trapezoidal area: compare those with `eval/auprc_trapz`
of runs with --config.anomaly_split=reference.
"""
from configs import default
from smallgan_jax.data import images
from smallgan_jax.models import dcgan

STEPS_PER_EPOCH = 788  # 64-image batches in one pass over about 50,400 training images.
EPOCHS = 55


def get_config():
  config = default.get_config()
  config.dataset = "images"
  config.data = images.data_config(source="tfds", name="mnist", split="train+test", resolution=28,
                                   channels=1)
  config.anomaly_class = 1
  config.anomaly_split = "clean"
  config.objective = "meg"
  config.meg = {"entropy_weight": 1.0}
  config.model = "dcgan"
  config.dcgan = dcgan.dcgan_config(g_channels=256, d_channels=256, spectral_norm=False)
  config.loss = "wasserstein"
  config.gradient_penalty.update({"weight": 100.0, "on": "real", "center": 0.0})
  config.z_dim = 128
  # MEG's reference prior, kept so that the baselines (MEG, BiGAN) are the reference's; the image
  # GANs sample the Small-GAN paper's uniform prior.
  config.prior = "normal"
  config.batch_size = 64
  config.g_batch_size = 64
  config.n_dis = 1
  config.coreset.embedding = "pixels"
  config.coreset.embedding_dim = 32
  config.coreset.projection_seed = 0
  config.coreset.cache_dir = "~/.cache/smallgan_jax"
  config.optim.update({"g_lr": 1e-4, "d_lr": 1e-4, "b1": 0.5, "b2": 0.9})
  config.num_train_steps = EPOCHS * STEPS_PER_EPOCH
  config.log_every_steps = 100
  config.eval_every_steps = STEPS_PER_EPOCH
  config.eval_num_samples = 1_000  # Samples for the grid; the score is the test images'.
  config.checkpoint_every_steps = 5 * STEPS_PER_EPOCH
  return config
