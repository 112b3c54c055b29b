"""SAGAN (Zhang et al., 2019) on MNIST: self-attention, spectral norm in both networks.

A self-attention block after the generator's 14x14 layer and after the
discriminator's 14x14 layer; spectral norm on every layer of both networks;
hinge loss; two time-scale learning rates (Adam G 1e-4, D 4e-4, betas
(0, 0.9)); DCGAN networks otherwise.

Run:
  gen-jax train --config experiments/sagan/mnist.py --workdir /tmp/sagan_mnist
Offline: add --config.dataset=npz:../shared/datasets/mnist.npz
Arguments: quick (the learning test's recipe: the DCGAN quick networks at half
  width, 2000 steps at batch 64, ~2 CPU minutes), smoke.
Expected: digits after ~2k steps of the quick config.
"""

from gen_jax import configs


def recipe(config, args):
  """Makes a DCGAN config a SAGAN (attention at side ``config.image_size // 2``)."""
  side = config.image_size // 2
  config.model.generator.update(spectral_norm=True, attention_at=side)
  config.model.discriminator.update(spectral_norm=True, attention_at=side, batch_norm=False,
                                    dropout=0.0)
  config.method.loss = "hinge"
  config.optimizers.generator = configs.adam(1e-4, b1=0.0, b2=0.9)
  config.optimizers.discriminator = configs.adam(4e-4, b1=0.0, b2=0.9)


def get_config(arg=None):
  args = configs.parse_args(arg, valid=("quick",))
  config = configs.gan_variant(__file__, "mnist", arg)
  recipe(config, args)
  return config
