"""Core-set MEG anomaly detection on Fashion-MNIST at a size this 2-core CPU trains: the MNIST
setting of configs/mnist_meg.py (MEG's reference script's protocol, one energy update per
generator update), narrower and shorter.

  apt-get install -y dataset-fashion-mnist   # once: Debian's idx files, read where they lie
  python -m smallgan_jax.main --config=configs/fashion_mnist_meg.py --config.anomaly_class=0 \
      --workdir=workdirs/fmnist_meg_0

Train and test pooled (70,000 images); the held-out class is the anomaly (the protocol and the
`anomaly_split` option of configs/mnist_meg.py). Plain MEG: --config.coreset.factor_prior=1
--config.coreset.factor_target=1; the BiGAN baseline: configs/fashion_mnist_bigan.py.
benchmarks/anomaly_table.py runs all three over classes and seeds.

Differences from configs/mnist_meg.py, for the CPU: networks of width 16, not 256 (G 16-32
channels, E 16-32, against the reference's dim 512), and 2,000 steps, 2.5 epochs of the 50,400
normal training images, not 55; an evaluation every 100 steps (an eighth of an epoch, not one
epoch: at 2.5 epochs a per-epoch schedule would leave 2 evaluations), so the last 20% of steps
hold 4 (benchmarks/anomaly_table.py averages them).

Expected (docs/anomaly.md, this 2-core CPU, 7.5-9 minutes a run on one core): AUPRC (average
precision, mean of the last 4 evaluations) for classes 1 / 5 / 7 / 9 over seeds 0-2, core-set MEG
0.384 / 0.488 / 0.371 / 0.441, plain MEG 0.595 / 0.479 / 0.400 / 0.458 (seed std up to 0.10);
`python benchmarks/anomaly_table.py --classes 1 5 7 9 --methods MEG "core-set MEG" --root=...`.
The earlier setting (5 energy updates per generator update over 400 steps, final evaluation) is
--config.n_dis=5 --config.num_train_steps=400.
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
  config.num_train_steps = 2_000  # 2.5 epochs of the 50,400 normal training images.
  config.eval_every_steps = 100
  config.checkpoint_every_steps = 500
  config.log_every_steps = 50
  return config
