"""Small-GAN with a CPU-sized DCGAN on Fashion-MNIST (28x28 grey), the image setting this 2-core
CPU can train.

  apt-get install -y dataset-fashion-mnist   # once: Debian's idx files, read where they lie
  python -m smallgan_jax.main --config=configs/fashion_mnist_dcgan.py --workdir=workdirs/fmnist

Plain GAN at the same batch: --config.coreset.factor_prior=1 --config.coreset.factor_target=1.
The target core-set picks real images by their `classifier2` embeddings (a small CNN the project
trains once on the training labels; built on first use into config.coreset.cache_dir), projected
to 32 dimensions. Evaluations score classifier FID (`classifier2_fid`) with a classifier of seed
1, so the network that scores is not the one that picks. From an empty cache the first step comes
127.9 s after the launch on an idle 2-core CPU, the two classifiers (91.1% and 91.0% test
accuracy) trained and the statistics and embeddings computed (benchmarks/first_step_time.py).

Result (5,000 steps, 10-13 minutes on one CPU core; docs/image_gans.md), measured with the
normal prior the config had before issue 32 (--config.prior=normal) and the network `classifier`
that scored and picked before issue 24 (benchmarks/fashion_mnist_comparison.py --study=comparison
pins both: --config.coreset.embedding=classifier "--config.fid.features=('classifier',)"): with
standing batch-norm statistics, 10,000 samples, mean of the checkpoints at 4,000-5,000 steps,
classifier FID 107.8 / 109.2 / 108.4 and recall 0.204 / 0.171 / 0.208 for seeds 0 / 1 / 2; the plain GAN at
this batch 110.8 / 113.0 / 107.6 and 0.105 / 0.137 / 0.152, at batch 64 77.9 and 0.250 (seed 0).
"""
from configs import default
from smallgan_jax.data import images
from smallgan_jax.metrics import image_scores
from smallgan_jax.models import dcgan


def get_config():
  config = default.get_config()
  config.dataset = "images"
  config.data = images.data_config(source="idx", name="fashion_mnist", split="train",
                                   resolution=28, channels=1)
  config.model = "dcgan"
  config.dcgan = dcgan.dcgan_config(g_channels=32, d_channels=32, spectral_norm=True)
  config.z_dim = 64
  config.prior = "uniform"  # The paper's (Sec. 3.1); --config.prior=normal for a Gaussian.
  config.loss = "hinge"
  config.n_dis = 1
  config.batch_size = 16
  config.g_batch_size = 16
  config.coreset.embedding = "classifier2"
  config.coreset.embedding_dim = 32
  config.coreset.projection_seed = 0
  config.coreset.cache_dir = "~/.cache/smallgan_jax"
  config.fid = image_scores.fid_config(features=("classifier2",), classifier_seed=1)
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 2e-4
  config.optim.b1 = 0.0
  config.optim.b2 = 0.9
  config.num_train_steps = 5_000
  config.log_every_steps = 100
  config.eval_every_steps = 500
  config.eval_num_samples = 10_000
  config.checkpoint_every_steps = 1_000
  return config
