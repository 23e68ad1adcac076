"""Core-set MEG anomaly detection on Fashion-MNIST at a size this 2-core CPU trains (the MNIST
setting of configs/mnist_meg.py, narrower and shorter).

  apt-get install -y dataset-fashion-mnist   # once: Debian's idx files, read where they lie
  python -m smallgan_jax.main --config=configs/fashion_mnist_meg.py --config.anomaly_class=0 \
      --workdir=workdirs/fmnist_meg_0

Train and test pooled (70,000 images); the held-out class is the anomaly (the protocol of
configs/mnist_meg.py). Plain MEG: --config.coreset.factor_prior=1 --config.coreset.factor_target=1;
the BiGAN baseline: configs/fashion_mnist_bigan.py. benchmarks/anomaly_table.py runs all three
over classes and seeds.

Expected (benchmarks/anomaly_table.py, seeds 0-2, 2-core CPU, 4.5-5 minutes a run on one core):
final AUPRC for classes 0 / 1 / 2 of 0.454 / 0.255 / 0.565 (core-set MEG) and 0.440 / 0.278 /
0.548 (plain MEG), seed std 0.01-0.04; docs/anomaly.md.
"""
from configs import mnist_meg
from smallgan_jax.data import images


def get_config():
  config = mnist_meg.get_config()
  config.data = images.data_config(source="idx", name="fashion_mnist", split="all", resolution=28,
                                   channels=1)
  config.anomaly_class = 0
  config.dcgan.g_channels = 16
  config.dcgan.d_channels = 16
  config.num_train_steps = 400  # 2.5 epochs of the 50,400 normal training images.
  config.eval_every_steps = 200
  config.checkpoint_every_steps = 200
  config.log_every_steps = 50
  return config
