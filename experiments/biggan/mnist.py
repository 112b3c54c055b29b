"""BigGAN (Brock et al., 2019), class-conditional, on MNIST at 28x28.

G: z (96) split in three chunks: one to Dense 7*7*128, one per residual
up-block (7 -> 14 -> 28), each block's batch norms conditioned on [z chunk,
shared class embedding (128)]; self-attention at 14x14; BN, ReLU, conv3x3,
tanh. D: residual down-blocks 64 -> 64 -> 128 (28 -> 14 -> 7 -> 7),
self-attention at 14x14, ReLU, sum pooling, linear + projection term.
Spectral norm everywhere, hinge loss, orthogonal regularisation 1e-4 on G,
Adam 2e-4 / 2e-4 with betas (0, 0.999), EMA 0.999. Sampling can use the
truncation trick: gen-jax sample ... --truncation 0.5.

Samples come from the generator's EMA, decay 0.999 (0.99 under quick): debiased, so from the first
steps on it averages only trained weights (mostly the last 1/(1 - decay) steps),
with batch-norm statistics measured for it (config.ema_standing_batches).

Run:
  gen-jax train --config experiments/biggan/mnist.py --workdir /tmp/biggan_mnist
Offline: add --config.dataset=npz:../shared/datasets/mnist.npz
Arguments: quick (the learning test's recipe: narrower networks, 1500 steps
  at batch 64), smoke.
Expected: samples of the requested class (>= 90% by a classifier) after the
quick config; truncation trades variety for quality.
"""

from gen_jax import configs


def get_config(arg=None):
  args = configs.parse_args(arg, valid=("quick",))
  config = configs.base_config()
  config.dataset = "mnist"
  config.image_size = 28
  config.batch_size = 64
  config.num_train_steps = 20_000
  config.checkpoint_every_steps = 2000
  config.sample_every_steps = 1000
  config.ema_decay = 0.999

  config.model.name = "biggan"
  config.model.conditioning = "projection"
  config.model.latent_dim = 96
  config.model.generator = dict(base_size=7, channels=(128, 128, 64), embedding_dim=128,
                                attention_at=14)
  config.model.discriminator = dict(channels=(64, 64, 128), downsample=(True, True, False),
                                    attention_at=14)
  config.method.name = "gan"
  config.method.loss = "hinge"
  config.method.orthogonal_regularization = 1e-4
  config.method.truncation = 0.0
  config.optimizers.generator = configs.adam(2e-4, b1=0.0, b2=0.999)
  config.optimizers.discriminator = configs.adam(2e-4, b1=0.0, b2=0.999)

  if "quick" in args:
    config.num_train_steps = 1500
    config.checkpoint_every_steps = 500
    config.ema_decay = 0.99
    config.model.generator.update(channels=(64, 64, 32), embedding_dim=32)
    config.model.discriminator.update(channels=(32, 32, 64))
  if "smoke" in args:
    configs.shrink_for_smoke(config)
    config.model.generator.update(channels=(8, 8, 4), embedding_dim=4)
    config.model.discriminator.update(channels=(4, 4, 8))
  return config
