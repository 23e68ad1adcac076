"""Small-GAN on a ring of 8 Gaussians (radius 2, std 0.05), core-sets on.

  python -m smallgan_jax.main --config=configs/toy_ring.py --workdir=/tmp/toy_ring

Not yet benchmarked: no measured result to quote.
"""
from configs import toy_mog_table1


def get_config():
  config = toy_mog_table1.get_config()
  config.dataset = "mog_ring"
  config.num_modes = 8
  return config
