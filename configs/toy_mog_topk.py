"""Top-k GAN on the 2D grid mixture, without core-sets (Small-GAN + top-k: toy_mog_table1.py
with --config.topk.enabled=True).

  python -m smallgan_jax.main --config=configs/toy_mog_topk.py --workdir=/tmp/toy_mog_topk

Measured (benchmarks/mog_table.py, H100, 100k steps, 3 seeds, 25 modes): 70.7% modes / 73.2% HQ.
"""
from configs import toy_mog_baseline


def get_config():
  config = toy_mog_baseline.get_config()
  config.topk.enabled = True
  return config
