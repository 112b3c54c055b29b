"""BigGAN, class-conditional, on CIFAR-10 at 32x32 (half of BigGAN's CIFAR widths).

G: z (128) in four chunks; Dense 4*4*128, three residual up-blocks of 128
(4 -> 32) with class-conditional batch norm (shared embedding 128); D: four
residual blocks of 128 (32 -> 16 -> 8 -> 8 -> 8), projection. Self-attention
at 16x16 in both; spectral norm everywhere; hinge loss; 4 critic steps per
generator step (BigGAN's CIFAR setting); orthogonal regularisation 1e-4;
Adam 2e-4 / 2e-4, betas (0, 0.999); EMA 0.9999. For BigGAN's full widths set
channels to 256.

Samples come from the generator's EMA, decay 0.9999: debiased, so from the first
steps on it averages only trained weights (mostly the last 1/(1 - decay) steps),
with batch-norm statistics measured for it (config.ema_standing_batches).

Run:
  gen-jax train --config experiments/biggan/cifar10.py --workdir /tmp/biggan_cifar10
Offline, with the local JPEG copy (lossy: metrics are not comparable with
published CIFAR-10 numbers):
  ... --config.dataset=folder:../shared/datasets/cifar10_jpeg.tar.gz
Arguments: ``smoke``.
Expected: recognisable classes after ~50k generator steps (an accelerator is advised).
"""

from gen_jax import configs


def get_config(arg=None):
  args = configs.parse_args(arg)
  config = configs.base_config()
  config.dataset = "cifar10"
  config.image_size = 32
  config.random_flip = True
  config.num_train_steps = 100_000
  config.checkpoint_every_steps = 5000
  config.sample_every_steps = 2500
  config.ema_decay = 0.9999

  config.model.name = "biggan"
  config.model.conditioning = "projection"
  config.model.latent_dim = 128
  config.model.generator = dict(base_size=4, channels=(128, 128, 128, 128), embedding_dim=128,
                                attention_at=16)
  config.model.discriminator = dict(channels=(128, 128, 128, 128),
                                    downsample=(True, True, False, False), attention_at=16)
  config.method.name = "gan"
  config.method.loss = "hinge"
  config.method.critic_steps = 4
  config.method.orthogonal_regularization = 1e-4
  config.method.truncation = 0.0
  config.batch_size = 64 * config.method.critic_steps
  config.optimizers.generator = configs.adam(2e-4, b1=0.0, b2=0.999)
  config.optimizers.discriminator = configs.adam(2e-4, b1=0.0, b2=0.999)

  if "smoke" in args:
    configs.shrink_for_smoke(config)
    config.batch_size = 8 * config.method.critic_steps
    config.model.generator.update(channels=(8, 8, 8, 4), embedding_dim=4)
    config.model.discriminator.update(channels=(4, 4, 8, 8))
  return config
