"""The Fashion-MNIST classifier (domain features): the MNIST recipe on garments.

Run:
  gen-jax train --config experiments/classifier/fashion_mnist.py --workdir /tmp/classifier_fmnist
Expected: about 90% test accuracy.
"""

from gen_jax import configs


def get_config(arg=None):
  config = configs.sibling_config(__file__, "mnist", arg)
  config.dataset = "fashion_mnist"
  return config
