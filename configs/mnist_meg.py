"""Core-set MEG anomaly detection on MNIST, the paper's Table 2 setting (Kumar et al. 2019's MEG).

  python -m smallgan_jax.main --config=configs/mnist_meg.py --config.anomaly_class=1 \
      --workdir=workdirs/mnist_meg_1

MNIST by name from a prepared tfds data dir (`tfds build mnist` on a machine with internet, or
--config.data.tfds_data_dir=gs://...); train and test pooled (70,000 images). The held-out digit
(`anomaly_class`) is the anomaly: 80% of the other digits (shuffled with seed 42) train, the other
20% and every held-out digit test; each evaluation writes the AUPRC (anomalies positive; average
precision) and ROC AUC of the energy E(x) to TensorBoard. MEG: 5 energy updates per generator
update, Adam 1e-4 (0.5, 0.9), z 128, batch 64, energy penalty 100 * ||grad E(real)||^2; the
statistics network T is updated with the generator, entropy term weight 1 (smallgan_jax/
objectives.py). 8,663 steps are the paper's ~55 epochs, counted in real images the energy trains
on (55 x 50,400 / (64 x 5): 80% of the about 63,000 normal images train). Core-sets: prior
factor 4, target factor 8 on the raw pixels projected to 32 dimensions (the target embedding
must not know the held-out class).
Plain MEG: --config.coreset.factor_prior=1 --config.coreset.factor_target=1.

Expected (paper Table 2, digits 1/4/5/7/9): AUPRC 0.351/0.501/0.518/0.387/0.390 for core-set MEG,
0.281/0.401/0.402/0.290/0.342 for MEG. Not run here (no MNIST on this machine).
"""
from configs import default
from smallgan_jax.data import images
from smallgan_jax.models import dcgan


def get_config():
  config = default.get_config()
  config.dataset = "images"
  config.data = images.data_config(source="tfds", name="mnist", split="train+test", resolution=28,
                                   channels=1)
  config.anomaly_class = 1
  config.objective = "meg"
  config.meg = {"entropy_weight": 1.0}
  config.model = "dcgan"
  config.dcgan = dcgan.dcgan_config(g_channels=64, d_channels=64, spectral_norm=False)
  config.loss = "wasserstein"
  config.gradient_penalty.update({"weight": 100.0, "on": "real", "center": 0.0})
  config.z_dim = 128
  config.prior = "normal"
  config.batch_size = 64
  config.g_batch_size = 64
  config.n_dis = 5
  config.coreset.embedding = "pixels"
  config.coreset.embedding_dim = 32
  config.coreset.projection_seed = 0
  config.coreset.cache_dir = "~/.cache/smallgan_jax"
  config.optim.update({"g_lr": 1e-4, "d_lr": 1e-4, "b1": 0.5, "b2": 0.9})
  config.num_train_steps = 8_663
  config.log_every_steps = 100
  config.eval_every_steps = 1_000
  config.eval_num_samples = 1_000  # Samples for the grid; the score is the test images'.
  config.checkpoint_every_steps = 1_000
  return config
