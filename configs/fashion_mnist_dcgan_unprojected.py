"""configs/fashion_mnist_dcgan.py with the target core-set on the classifier's raw 128-d features
(no random projection): the paper's Table 6 "Inception embeddings without projection" ablation."""
from configs import fashion_mnist_dcgan


def get_config():
  config = fashion_mnist_dcgan.get_config()
  config.coreset.embedding_dim = None
  return config
