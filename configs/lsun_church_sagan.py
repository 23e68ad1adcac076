"""Small-GAN SAGAN on LSUN church_outdoor, 128x128, unconditional (paper Table 4, batch 64).

  tfds build lsun/church_outdoor   # once, on a machine with internet (or a gs:// data dir)
  python -m smallgan_jax.main --config=configs/lsun_church_sagan.py --workdir=workdirs/church

Setting: Zhang et al.'s SAGAN (spectral norm in G and D, self-attention after the 32x32 block in
both, base width 64, z 128), hinge loss, TTUR (D 4e-4, G 1e-4), Adam (0, 0.9), batch 64, one D
update a step; core-sets on 4x prior and 8x target over-samples, the target's picked by Inception
embeddings projected to 32 dimensions; both core-sets of the global batch, and the generator's
batch norm synchronised over the devices, so any device count trains on the same batches. The
paper reports FID 13.08 for Small-GAN at batch 64, and 14.82 for the plain SAGAN at batch 64
(13.02 at 128, 12.63 at 256):

  ... --config.coreset.factor_prior=1 --config.coreset.factor_target=1

The step count is not in the paper; 100k is SAGAN's order. Not yet run by this project: no machine
it has reached holds LSUN or the Inception weights.
"""
from configs import default
from smallgan_jax.data import images
from smallgan_jax.models import sagan


def get_config():
  config = default.paper_image_config(images.data_config(
      source="tfds", name="lsun/church_outdoor", split="train", resolution=128, channels=3))
  config.model = "sagan"
  config.sagan = sagan.sagan_config(g_channels=64, d_channels=64, attention_resolution=32,
                                    sync_batch_norm=True)
  config.n_dis = 1
  config.batch_size = 64
  config.g_batch_size = 64
  config.optim.g_lr = 1e-4
  config.optim.d_lr = 4e-4
  config.num_train_steps = 100_000
  return config
