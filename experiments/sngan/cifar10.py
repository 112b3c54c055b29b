"""The sngan recipe of experiments/sngan/mnist.py on CIFAR-10, on the DCGAN CIFAR-10 networks.

Run:
  gen-jax train --config experiments/sngan/cifar10.py --workdir /tmp/sngan_cifar10
Offline, with the local JPEG copy (lossy: metrics are not comparable with
published CIFAR-10 numbers):
  ... --config.dataset=folder:../shared/datasets/cifar10_jpeg.tar.gz
Arguments: ``smoke``.
"""

from gen_jax import configs


def get_config(arg=None):
  args = configs.parse_args(arg)
  config = configs.gan_variant(__file__, "cifar10", arg)
  configs.sibling_recipe(__file__)(config, args)
  return config
