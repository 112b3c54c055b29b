"""The infogan MNIST config on Fashion-MNIST (same 28x28x1 shape, same recipe).

Run:
  gen-jax train --config experiments/infogan/fashion_mnist.py --workdir /tmp/infogan_fmnist
Arguments: ``quick`` and ``smoke`` as for experiments/infogan/mnist.py.
"""

from gen_jax import configs


def get_config(arg=None):
  config = configs.sibling_config(__file__, "mnist", arg)
  config.dataset = "fashion_mnist"
  return config
