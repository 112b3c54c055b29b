"""BigGAN on Fashion-MNIST: the MNIST config's networks and recipe (same 28x28x1 shape).

Run:
  gen-jax train --config experiments/biggan/fashion_mnist.py --workdir /tmp/biggan_fmnist
Arguments: ``quick`` and ``smoke`` as for experiments/biggan/mnist.py.
"""

from gen_jax import configs


def get_config(arg=None):
  config = configs.sibling_config(__file__, "mnist", arg)
  config.dataset = "fashion_mnist"
  return config
