"""The sagan MNIST config on Fashion-MNIST (same 28x28x1 shape, same recipe).

Run:
  gen-jax train --config experiments/sagan/fashion_mnist.py --workdir /tmp/sagan_fmnist
Arguments: ``quick`` and ``smoke`` as for experiments/sagan/mnist.py.
"""

from gen_jax import configs


def get_config(arg=None):
  config = configs.sibling_config(__file__, "mnist", arg)
  config.dataset = "fashion_mnist"
  return config
