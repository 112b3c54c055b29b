"""The hinge-loss GAN (Lim & Ye, 2017) on MNIST, on the DCGAN networks.

D minimises E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))], G minimises
-E[D(G(z))]; Adam 2e-4, beta1 = 0.5.

Run:
  gen-jax train --config experiments/hinge_gan/mnist.py --workdir /tmp/hinge_mnist
Offline: add --config.dataset=npz:../shared/datasets/mnist.npz
Arguments: quick (the learning test's recipe: the DCGAN quick networks at half
  width, 2000 steps at batch 64, ~2 CPU minutes, the generator's Adam at 1e-3:
  at 2e-4 one digit made under 1% of the samples), smoke.
Expected: digits after ~2k steps of the quick config.
"""

from gen_jax import configs


def recipe(config, args):
  """Makes a DCGAN config a hinge-loss GAN."""
  config.method.loss = "hinge"
  if "quick" in args:
    config.optimizers.generator.learning_rate = configs.QUICK_GENERATOR_LEARNING_RATE


def get_config(arg=None):
  args = configs.parse_args(arg, valid=("quick",))
  config = configs.gan_variant(__file__, "mnist", arg)
  recipe(config, args)
  return config
