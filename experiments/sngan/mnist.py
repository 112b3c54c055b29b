"""SNGAN (Miyato et al., 2018) on MNIST: a spectrally normalised discriminator.

Every discriminator layer is divided by its largest singular value, estimated
by one power-iteration step per training call; the iteration's vectors are
in the train state (collection ``batch_stats``) and the checkpoints. Hinge
loss, no batch norm or dropout in the discriminator, Adam 2e-4 with betas
(0.5, 0.999); DCGAN generator.

Run:
  gen-jax train --config experiments/sngan/mnist.py --workdir /tmp/sngan_mnist
Offline: add --config.dataset=npz:../shared/datasets/mnist.npz
Arguments: quick (the learning test's recipe: the DCGAN quick networks at half
  width, 2000 steps at batch 64, ~2 CPU minutes, the generator's Adam at 1e-3:
  at 2e-4 one digit made under 1% of the samples), smoke.
Expected: digits after ~2k steps of the quick config.
"""

from gen_jax import configs


def recipe(config, args):
  """Makes a DCGAN config an SNGAN."""
  config.model.discriminator.update(spectral_norm=True, batch_norm=False, dropout=0.0)
  config.method.loss = "hinge"
  if "quick" in args:
    config.optimizers.generator.learning_rate = configs.QUICK_GENERATOR_LEARNING_RATE


def get_config(arg=None):
  args = configs.parse_args(arg, valid=("quick",))
  config = configs.gan_variant(__file__, "mnist", arg)
  recipe(config, args)
  return config
