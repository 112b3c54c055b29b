"""The original GAN (Goodfellow et al., 2014): multilayer perceptrons on MNIST.

G: 100 -> 256 -> 512 -> 1024 -> 784, LeakyReLU 0.2, tanh. D: 784 -> 1024 ->
512 -> 256 -> 1, LeakyReLU 0.2 and Dropout 0.3. Non-saturating loss, batch
64, Adam 2e-4 with beta1 = 0.5.

Samples come from the generator's EMA, decay 0.999: debiased, so from the first
steps on it averages only trained weights (mostly the last 1/(1 - decay) steps).

Run:
  gen-jax train --config experiments/gan/mnist.py --workdir /tmp/gan_mnist
Offline: add --config.dataset=npz:../shared/datasets/mnist.npz
Expected: noisy but recognisable digits after ~10k steps (a few CPU minutes
per thousand steps).
"""

from gen_jax import configs


def get_config(arg=None):
  args = configs.parse_args(arg)
  config = configs.base_config()
  config.dataset = "mnist"
  config.image_size = 28
  config.batch_size = 64
  config.num_train_steps = 20_000
  config.checkpoint_every_steps = 2000
  config.sample_every_steps = 1000
  config.ema_decay = 0.999

  config.model.name = "gan"
  config.model.latent_dim = 100
  config.model.generator = dict(hidden=(256, 512, 1024))
  config.model.discriminator = dict(hidden=(1024, 512, 256), dropout=0.3)
  config.method.name = "gan"
  config.method.loss = "non_saturating"
  config.optimizers.generator = configs.adam(2e-4, b1=0.5)
  config.optimizers.discriminator = configs.adam(2e-4, b1=0.5)

  if "smoke" in args:
    configs.shrink_for_smoke(config)
    config.model.generator.hidden = (16, 16)
    config.model.discriminator.hidden = (16, 16)
  return config
