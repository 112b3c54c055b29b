"""DCGAN on MNIST with the TensorFlow DCGAN tutorial's networks.

G: Dense 7*7*256 (no bias), BN, LeakyReLU -> ConvT 128 k5 s1 -> ConvT 64 k5 s2
-> ConvT 1 k5 s2, tanh (BN + LeakyReLU between). D: Conv 64 k5 s2 -> Conv 128
k5 s2, each LeakyReLU + Dropout 0.3 -> Dense 1. Batch 256, Adam 2e-4 with
beta1 = 0.5 (the DCGAN paper's setting; the tutorial's Adam 1e-4 is slower).

Samples come from the generator's EMA, decay 0.999 (0.99 under quick): debiased, so from the first
steps on it averages only trained weights (mostly the last 1/(1 - decay) steps),
with batch-norm statistics measured for it (config.ema_standing_batches).

Run (downloads MNIST through TFDS):
  gen-jax train --config experiments/dcgan/mnist.py --workdir /tmp/dcgan_mnist
Offline, with the local copy:
  gen-jax train --config experiments/dcgan/mnist.py --workdir /tmp/dcgan_mnist \
      --config.dataset=npz:../shared/datasets/mnist.npz

Arguments (``--config experiments/dcgan/mnist.py:ARG``):
  quick: a recipe that learns fast (2000 steps at batch 64, ~3 CPU minutes):
    the DCGAN paper's choices on the same 28x28 layout, i.e. G Dense 7*7*128
    -> ConvT 64 k5 s2 -> ConvT 1 k5 s2 with ReLU, D Conv 64 -> Conv 128 (k5
    s2) with batch norm after the second and no dropout, EMA 0.99. The tutorial
    networks with dropout learn several times slower per step. The learning
    test trains it.
  smoke: a few tiny steps, for tests.

Expected: clear digits after ~2k steps of the full config (~1 s/step on
2 CPU cores). The quick config: ~68% of its samples are labelled with
confidence > 0.9 by a 99.1%-accurate MNIST classifier, all ten digits present
(97-98% of real test digits are; tests/test_learning.py).
"""

from gen_jax import configs


def get_config(arg=None):
  args = configs.parse_args(arg, valid=("quick",))
  config = configs.base_config()
  config.dataset = "mnist"
  config.image_size = 28
  config.batch_size = 256
  config.num_train_steps = 10_000
  config.checkpoint_every_steps = 1000
  config.sample_every_steps = 500
  config.ema_decay = 0.999

  config.model.name = "dcgan"
  config.model.latent_dim = 100
  config.model.generator = dict(base_size=7, features=(256, 128, 64), strides=(1, 2, 2),
                                kernel_size=5, negative_slope=0.3)
  config.model.discriminator = dict(features=(64, 128), kernel_size=5, dropout=0.3,
                                    negative_slope=0.3)
  config.method.name = "gan"
  config.method.loss = "non_saturating"
  config.optimizers.generator = configs.adam(2e-4, b1=0.5)
  config.optimizers.discriminator = configs.adam(2e-4, b1=0.5)

  if "quick" in args:
    config.batch_size = 64
    config.num_train_steps = 2000
    config.checkpoint_every_steps = 500
    config.ema_decay = 0.99
    config.model.generator.update(features=(128, 64), strides=(2, 2), negative_slope=0.0)
    config.model.discriminator.update(features=(64, 128), batch_norm=True, dropout=0.0,
                                      negative_slope=0.2)
  if "smoke" in args:
    configs.shrink_for_smoke(config)
    config.model.generator.features = (16, 8, 4)
    config.model.discriminator.features = (4, 8)
  return config
