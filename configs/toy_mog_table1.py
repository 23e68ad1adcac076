"""The 2D grid setting of the README's Table 1 (`benchmarks/mog_table.py`), core-sets on.

The defaults of configs/default.py (MLP 3x512, z_dim 2 uniform, Adam 1e-4, batch 64, factors 4/8,
no critic penalty) with top-k's floor nu 0.75. It was the README's first run until that moved to
configs/toy_mog.py; Table 1, toy_mog_100.py, toy_mog_baseline.py, toy_mog_topk.py and toy_ring.py
derive from it, so their measured results keep meaning what they measured.

  python -m smallgan_jax.main --config=configs/toy_mog_table1.py --workdir=workdirs/toy_mog_table1

Measured: 20k steps on the 2-core CPU (~3 min): 60% modes recovered / 41.55% high quality;
100k steps (benchmarks/mog_table.py, H100, 3 seeds): 72.0% / 88.4% at 25 modes, 47.0% / 45.9% at
100 modes (the paper reports 100 / 98.9 and 97.33 / 49.87). Other mode counts:
--config.num_modes=100. Small-GAN + top-k: --config.topk.enabled=True.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.topk.nu = 0.75  # The top-k paper's floor for the 2D toy.
  return config
