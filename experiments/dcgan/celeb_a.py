"""DCGAN on CelebA faces at 64x64, the DCGAN paper's networks.

Images: the central 140x140 square of the aligned 178x218 faces, resized to
64x64. G: Dense 4*4*512, BN, ReLU -> ConvT 256 -> 128 -> 64 -> 3, all k5 s2,
BN + ReLU between, tanh. D: Conv 64 -> 128 -> 256 -> 512, k5 s2, BN after the
first, LeakyReLU 0.2 -> Dense 1. Batch 128, Adam 2e-4, beta1 = 0.5.

Samples come from the generator's EMA, decay 0.999: debiased, so from the first
steps on it averages only trained weights (mostly the last 1/(1 - decay) steps),
with batch-norm statistics measured for it (config.ema_standing_batches).

Run (TFDS downloads celeb_a, about 1.4 GB):
  gen-jax train --config experiments/dcgan/celeb_a.py --workdir /tmp/dcgan_celeba
Expected: faces after ~5k steps, sharper by ~30k (an accelerator is advised).
"""

from gen_jax import configs


def get_config(arg=None):
  args = configs.parse_args(arg)
  config = configs.base_config()
  config.dataset = "celeb_a"
  config.image_size = 64
  config.crop = 140
  config.random_flip = True
  config.batch_size = 128
  config.num_train_steps = 30_000
  config.checkpoint_every_steps = 2500
  config.sample_every_steps = 1000
  config.ema_decay = 0.999

  config.model.name = "dcgan"
  config.model.latent_dim = 100
  config.model.generator = dict(base_size=4, features=(512, 256, 128, 64),
                                strides=(2, 2, 2, 2), kernel_size=5, negative_slope=0.0)
  config.model.discriminator = dict(features=(64, 128, 256, 512), kernel_size=5,
                                    batch_norm=True, dropout=0.0, negative_slope=0.2)
  config.method.name = "gan"
  config.method.loss = "non_saturating"
  config.optimizers.generator = configs.adam(2e-4, b1=0.5)
  config.optimizers.discriminator = configs.adam(2e-4, b1=0.5)

  if "smoke" in args:
    configs.shrink_for_smoke(config)
    config.model.generator.features = (16, 8, 8, 4)
    config.model.discriminator.features = (4, 8, 8, 16)
  return config
