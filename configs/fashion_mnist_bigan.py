"""The BiGAN anomaly-detection baseline (Zenati et al. 2018) on Fashion-MNIST, beside
configs/fashion_mnist_meg.py: same data, split, networks' widths, batch, steps and evaluations,
and so as many real images through the critic (one critic update a step, as MEG's).

  python -m smallgan_jax.main --config=configs/fashion_mnist_bigan.py --config.anomaly_class=0 \
      --workdir=workdirs/fmnist_bigan_0

Encoder, generator and a joint discriminator on (x, z), the non-saturating loss, one critic update
per generator update, no core-sets (factors 1: the baseline is the paper's plain BiGAN), Adam 1e-4
(0.5, 0.999), and MEG's normal prior (the reference scripts', not the image GANs' uniform one).
The anomaly score is Zenati et al.'s 0.9 * ||x - G(E(x))||_1 + 0.1 * ||f(x, E(x)) -
f(G(E(x)), E(x))||_1, f the critic's last hidden layer.

Expected (benchmarks/anomaly_table.py, seeds 0-2, 2-core CPU, about 4 minutes a run on one core):
the final evaluation's AUPRC (average precision) for classes 0 / 1 / 2 was 0.477 / 0.379 / 0.387,
seed std 0.07-0.17 (docs/anomaly.md), from runs of this training (2,000 steps) that evaluated every
1,000 steps; the mean over the last 20% of steps and the trapezoidal AUPRC are not measured here.
"""
from configs import fashion_mnist_meg


def get_config():
  config = fashion_mnist_meg.get_config()
  config.objective = "bigan"
  del config.meg
  config.loss = "non_saturating"
  config.gradient_penalty.weight = 0.0
  config.n_dis = 1
  config.coreset.factor_prior = 1
  config.coreset.factor_target = 1
  config.optim.b2 = 0.999
  return config
