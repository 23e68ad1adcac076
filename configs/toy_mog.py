"""Small-GAN on a 2D mixture of 25 Gaussians (paper Sec. 4.2, Table 1), core-sets on.

  python -m smallgan_jax.main --config=configs/toy_mog.py --workdir=/tmp/toy_mog

Other mode counts: --config.num_modes=100. Small-GAN + top-k: --config.topk.enabled=True.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.topk.nu = 0.75  # The top-k paper's floor for the 2D toy.
  return config
