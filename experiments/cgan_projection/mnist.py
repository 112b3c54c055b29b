"""Conditional GAN with a projection discriminator (Miyato & Koyama, 2018) on MNIST.

The discriminator's logit is psi(phi(x)) + <embed(y), phi(x)>; the generator
takes [z, one_hot(y)] and its batch norms are class-conditional. Spectral norm
in the discriminator and the hinge loss, as in the paper; DCGAN networks
otherwise.

Run:
  gen-jax train --config experiments/cgan_projection/mnist.py --workdir /tmp/cgan_proj
Offline: add --config.dataset=npz:../shared/datasets/mnist.npz
Arguments: quick (the learning test's recipe: the DCGAN quick networks at half
  width, 3000 steps at batch 64, ~3 CPU minutes), smoke.
Expected: samples of the requested class (>= 90% by a classifier) after the quick config.
"""

from gen_jax import configs


def recipe(config, args):
  """Makes a DCGAN config a projection-discriminator cGAN."""
  config.model.conditioning = "projection"
  config.model.generator.conditional_batch_norm = True
  config.model.discriminator.update(spectral_norm=True, batch_norm=False, dropout=0.0)
  config.method.loss = "hinge"
  if "quick" in args:
    # Class fidelity comes later than digit shapes: 86% at 2000 steps, 94% at 3000.
    config.num_train_steps = 3000


def get_config(arg=None):
  args = configs.parse_args(arg, valid=("quick",))
  config = configs.gan_variant(__file__, "mnist", arg)
  recipe(config, args)
  return config
