"""InfoGAN (Chen et al., 2016) on MNIST: a 10-way categorical and 2 continuous codes.

The generator takes [z, one_hot(c1), c2, c3]; a Q head (Dense 128, BN, leaky
ReLU) on the discriminator's trunk predicts the codes, and both players
minimise the mutual-information term (weight 1). As in the paper, the
generator learns faster (Adam 1e-3) than the discriminator (2e-4).

Run:
  gen-jax train --config experiments/infogan/mnist.py --workdir /tmp/infogan_mnist
  gen-jax sample --workdir /tmp/infogan_mnist --vary_code categorical0 --num 10 \
      --out c.npz --grid c.png   # each row one z, each column one code value
Offline: add --config.dataset=npz:../shared/datasets/mnist.npz
Arguments: quick (the learning test's recipe: the DCGAN quick networks at half
  width, 2000 steps at batch 64, ~2 CPU minutes), smoke.
Expected: the categorical code picks the digit (>= 70% agreement with a
classifier after the best matching of code values to digits); continuous
codes vary slant and width.
"""

from gen_jax import configs


def recipe(config, args):
  """Makes a DCGAN config an InfoGAN."""
  config.model.latent_dim = 62
  config.model.codes = dict(categorical=(10,), continuous=2)
  config.model.discriminator.aux_hidden = 128
  config.method.info_weight = 1.0
  config.optimizers.generator.learning_rate = 1e-3


def get_config(arg=None):
  args = configs.parse_args(arg, valid=("quick",))
  config = configs.gan_variant(__file__, "mnist", arg)
  recipe(config, args)
  return config
