"""BigGAN, unconditional, on CelebA faces at 64x64.

CelebA has no classes, so the generator's batch norms are conditioned on its
z chunks alone and the discriminator has no projection term. G: z (120) in
five chunks; Dense 4*4*512, up-blocks 512 -> 256 -> 128 -> 64 (4 -> 64);
D: blocks 32 -> 64 -> 128 -> 256 -> 512 (64 -> 4); self-attention at 32x32
in both; spectral norm, hinge loss, orthogonal regularisation 1e-4, Adam
1e-4 (G) / 4e-4 (D) with betas (0, 0.999), EMA 0.9999. About half of
BigGAN's 64x64 widths.

Samples come from the generator's EMA, decay 0.9999: debiased, so from the first
steps on it averages only trained weights (mostly the last 1/(1 - decay) steps),
with batch-norm statistics measured for it (config.ema_standing_batches).

Run (TFDS downloads celeb_a, about 1.4 GB):
  gen-jax train --config experiments/biggan/celeb_a.py --workdir /tmp/biggan_celeba
Arguments: ``smoke``.
Expected: faces after ~20k steps (an accelerator is advised).
"""

from gen_jax import configs


def get_config(arg=None):
  args = configs.parse_args(arg)
  config = configs.base_config()
  config.dataset = "celeb_a"
  config.image_size = 64
  config.crop = 140
  config.random_flip = True
  config.batch_size = 64
  config.num_train_steps = 100_000
  config.checkpoint_every_steps = 5000
  config.sample_every_steps = 2500
  config.ema_decay = 0.9999

  config.model.name = "biggan"
  config.model.conditioning = "none"
  config.model.latent_dim = 120
  config.model.generator = dict(base_size=4, channels=(512, 512, 256, 128, 64), attention_at=32)
  config.model.discriminator = dict(channels=(32, 64, 128, 256, 512),
                                    downsample=(True, True, True, True, False), attention_at=32)
  config.method.name = "gan"
  config.method.loss = "hinge"
  config.method.orthogonal_regularization = 1e-4
  config.method.truncation = 0.0
  config.optimizers.generator = configs.adam(1e-4, b1=0.0, b2=0.999)
  config.optimizers.discriminator = configs.adam(4e-4, b1=0.0, b2=0.999)

  if "smoke" in args:
    configs.shrink_for_smoke(config)
    config.model.generator.update(channels=(8, 8, 8, 4, 4))
    config.model.discriminator.update(channels=(4, 4, 8, 8, 8))
  return config
