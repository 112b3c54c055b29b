"""WGAN-GP (Gulrajani et al., 2017) on MNIST: a critic with a gradient penalty.

Wasserstein loss plus 10 * E[(||grad D(x_hat)|| - 1)^2] on random
interpolates, Adam 1e-4 with betas (0, 0.9), 5 critic steps per generator
step (64 real images each: batch_size = 320), a critic without batch norm or
dropout (the penalty is per example).

Run:
  gen-jax train --config experiments/wgan_gp/mnist.py --workdir /tmp/wgan_gp_mnist
Offline: add --config.dataset=npz:../shared/datasets/mnist.npz
Arguments: quick (the learning test's recipe: the DCGAN quick networks at half
  width, 1000 generator steps, Adam 2e-4 for the critic and 1e-3 for the
  generator; with 2e-4 for both, 62% of samples were clearly digits, against
  71%), smoke.
Expected: wasserstein_estimate falls steadily; gradient_penalty stays small;
digits after ~2k generator steps.
"""

from gen_jax import configs


def recipe(config, args):
  """Makes a DCGAN config a WGAN-GP."""
  config.method.loss = "wasserstein"
  config.method.critic_steps = 5
  config.method.gradient_penalty = 10.0
  config.batch_size = (8 if "smoke" in args else 64) * config.method.critic_steps
  config.model.discriminator.update(batch_norm=False, dropout=0.0)
  learning_rate = 2e-4 if "quick" in args else 1e-4
  config.optimizers.generator = configs.adam(learning_rate, b1=0.0, b2=0.9)
  config.optimizers.discriminator = configs.adam(learning_rate, b1=0.0, b2=0.9)
  if "quick" in args:
    config.num_train_steps = 1000
    config.optimizers.generator.learning_rate = configs.QUICK_GENERATOR_LEARNING_RATE


def get_config(arg=None):
  args = configs.parse_args(arg, valid=("quick",))
  config = configs.gan_variant(__file__, "mnist", arg)
  recipe(config, args)
  return config
