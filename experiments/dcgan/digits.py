"""The main job: a small DCGAN on scikit-learn's digits, offline, in a few CPU minutes.

The 1500 training digits (8x8, shipped with scikit-learn) are upsampled to
16x16. G: Dense 4*4*64, BN, LeakyReLU -> ConvT 32 k5 s2 -> ConvT 1 k5 s2,
tanh. D: Conv 32 -> 64, k5 s2, LeakyReLU, Dropout 0.3 -> Dense 1.

Samples come from the generator's EMA, decay 0.99: debiased, so from the first
steps on it averages only trained weights (mostly the last 1/(1 - decay) steps),
with batch-norm statistics measured for it (config.ema_standing_batches).

Run:
  gen-jax train --config experiments/dcgan/digits.py --workdir /tmp/gen_jax_digits
Writes checkpoints under WORKDIR/checkpoints, sample grids WORKDIR/samples_*.png
and TensorBoard logs. Expected: digit shapes in the grid after ~1000 steps.
"""

from gen_jax import configs


def get_config(arg=None):
  args = configs.parse_args(arg)
  config = configs.base_config()
  config.dataset = "digits"
  config.image_size = 16
  config.batch_size = 64
  config.num_train_steps = 2000
  config.checkpoint_every_steps = 500
  config.sample_every_steps = 500
  config.log_every_steps = 100
  config.ema_decay = 0.99

  config.model.name = "dcgan"
  config.model.latent_dim = 32
  config.model.generator = dict(base_size=4, features=(64, 32), strides=(2, 2), kernel_size=5)
  config.model.discriminator = dict(features=(32, 64), kernel_size=5, dropout=0.3)
  config.method.name = "gan"
  config.method.loss = "non_saturating"
  config.optimizers.generator = configs.adam(2e-4, b1=0.5)
  config.optimizers.discriminator = configs.adam(2e-4, b1=0.5)

  if "smoke" in args:
    configs.shrink_for_smoke(config)
    config.model.generator.features = (8, 4)
    config.model.discriminator.features = (4, 8)
  return config
