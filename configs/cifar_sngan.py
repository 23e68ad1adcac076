"""Small-GAN SN-GAN on CIFAR-10, 32x32 (paper Table 3, batch 128).

  # CIFAR-10 (tfds) and the FID Inception weights are downloaded on first use; offline, see
  # docs/data.md and docs/fid.md (--config.data.tfds_data_dir=gs://... for a prepared copy).
  python -m smallgan_jax.main --config=configs/cifar_sngan.py --workdir=workdirs/cifar_sngan

Setting: Miyato et al.'s ResNet SN-GAN (G width 256, D width 128, z 128), hinge loss, n_dis 5, D
batch 64, G batch 128, Adam 2e-4 (0, 0.9) decaying linearly to 0 over 50k steps; core-sets on a
4x prior and an 8x target over-sample, the target's picked by Inception pool3 embeddings projected
to 32 dimensions; FID of 50,000 samples against the 50,000 training images. Both core-sets are
of the global batch and the generator's batch norm is synchronised over the devices, so the run
picks and trains on the same batches on 1, 2 or 8 devices (tests/global_coreset_test.py). The paper reports FID
16.73 (PyTorch FID), and 18.75 for the plain SN-GAN of the same batch:

  ... --config.coreset.factor_prior=1 --config.coreset.factor_target=1

Not yet run by this project: no machine it has reached holds CIFAR-10 or the Inception weights.
Without them this config fails in seconds with one line saying how to get them. Its step on
generated images of CIFAR-10's shape runs at 41.6 steps/s on an H100 (24.1 ms; 50k steps: about
20 minutes of steps, evaluations not counted), 2.7% slower than the plain GAN's
(benchmarks/step_cost.py, docs/image_gans.md; measured before the config chose global core-sets
and synchronised batch norm, which on one device pick from sets of the same sizes, and with the
normal prior it had before the paper's uniform one).
"""
from configs import default
from smallgan_jax.data import images
from smallgan_jax.models import sngan


def get_config():
  config = default.paper_image_config(images.data_config(
      source="tfds", name="cifar10", split="train", resolution=32, channels=3))
  config.model = "sngan"
  config.sngan = sngan.sngan_config(g_channels=256, d_channels=128, sync_batch_norm=True)
  config.n_dis = 5
  config.batch_size = 64
  config.g_batch_size = 128
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 2e-4
  config.optim.schedule = "linear"
  config.num_train_steps = 50_000
  return config
