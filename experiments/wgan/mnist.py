"""WGAN (Arjovsky et al., 2017) on MNIST: the DCGAN networks trained as a critic game.

Wasserstein loss, weight clipping to [-0.01, 0.01], RMSProp 5e-5, 5 critic
steps per generator step (each on its own 64 real images, so a step reads
batch_size = 5 * 64), no dropout in the critic (the paper's DCGAN critic).

Run:
  gen-jax train --config experiments/wgan/mnist.py --workdir /tmp/wgan_mnist
Offline: add --config.dataset=npz:../shared/datasets/mnist.npz
Arguments: quick (the learning test's recipe: the DCGAN quick networks at half
  width, 1500 generator steps, RMSProp 2e-4 for the critic and 1e-3 for the
  generator; the paper's 5e-5 needs several times more steps; with 2e-4 for
  both, 54% of samples were clearly digits after 1000 steps, and with these
  rates one digit made only 1.8% of them after 1000 steps), smoke.
Expected: the logged wasserstein_estimate falls as samples improve; digits
after a few thousand generator steps.
"""

from gen_jax import configs


def recipe(config, args):
  """Makes a DCGAN config a WGAN with weight clipping."""
  config.method.loss = "wasserstein"
  config.method.critic_steps = 5
  config.method.weight_clip = 0.01
  config.batch_size = (8 if "smoke" in args else 64) * config.method.critic_steps
  config.model.discriminator.dropout = 0.0
  learning_rate = 2e-4 if "quick" in args else 5e-5
  config.optimizers.generator = configs.rmsprop(learning_rate)
  config.optimizers.discriminator = configs.rmsprop(learning_rate)
  if "quick" in args:
    config.num_train_steps = 1500
    config.optimizers.generator.learning_rate = configs.QUICK_GENERATOR_LEARNING_RATE


def get_config(arg=None):
  args = configs.parse_args(arg, valid=("quick",))
  config = configs.gan_variant(__file__, "mnist", arg)
  recipe(config, args)
  return config
