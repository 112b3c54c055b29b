"""The CIFAR-10 classifier whose penultimate layer is the domain feature space.

The MNIST recipe, wider (Conv 64 -> 64 s2 -> 128 s2 -> 256 s2, Dense 256), with
random horizontal flips, 20k steps.

Run:
  gen-jax train --config experiments/classifier/cifar10.py --workdir /tmp/classifier_cifar10
Offline: --config.dataset=folder:../shared/datasets/cifar10_jpeg.tar.gz (JPEG
quality 75: lossy, so features and FIDs on it are not comparable with figures
on the real CIFAR-10).
Expected: about 80% test accuracy.
"""

from gen_jax import configs


def get_config(arg=None):
  config = configs.sibling_config(__file__, "mnist", arg)
  config.dataset = "cifar10"
  config.image_size = 32
  config.random_flip = True
  if "smoke" not in configs.parse_args(arg):
    config.num_train_steps = 20_000
    config.checkpoint_every_steps = 5000
    config.model.features = (64, 128, 256)
    config.model.embedding_dim = 256
  return config
