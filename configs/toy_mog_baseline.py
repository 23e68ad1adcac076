"""Plain GAN baseline on the 2D grid mixture: factors 1, i.e. random batches, same code path.

The Table 1 setting (configs/toy_mog_table1.py) with both core-sets off.

  python -m smallgan_jax.main --config=configs/toy_mog_baseline.py --workdir=/tmp/toy_mog_gan

Measured (benchmarks/mog_table.py, H100, 100k steps, 3 seeds, 25 modes): 66.7% modes / 87.9% HQ.
"""
from configs import toy_mog_table1


def get_config():
  config = toy_mog_table1.get_config()
  config.coreset.factor_prior = 1
  config.coreset.factor_target = 1
  return config
