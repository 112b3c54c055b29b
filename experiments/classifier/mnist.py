"""The MNIST classifier whose penultimate layer is the domain feature space.

CNN: Conv 32 k3 -> Conv 32 k3 s2 -> Conv 64 k3 s2 -> Dense 128 (the features)
-> Dense 10, ReLU, Adam 2e-3 with cosine decay, batch 128, 3000 steps.

Run (then evaluate generators with --features classifier:/tmp/classifier_mnist):
  gen-jax train --config experiments/classifier/mnist.py --workdir /tmp/classifier_mnist
  gen-jax eval --workdir /tmp/classifier_mnist --metrics accuracy --reference mnist:test
Offline: add --config.dataset=npz:../shared/datasets/mnist.npz (and the same
--reference npz:../shared/datasets/mnist.npz:test).
Expected: about 99% test accuracy, in a few CPU minutes.
"""

from gen_jax import configs


def get_config(arg=None):
  args = configs.parse_args(arg)
  config = configs.base_config()
  config.dataset = "mnist"
  config.image_size = 28
  config.batch_size = 128
  config.num_train_steps = 3000
  config.checkpoint_every_steps = 1000

  config.model.name = "classifier"
  config.model.num_classes = 10
  config.model.features = (32, 64)
  config.model.embedding_dim = 128
  config.method.name = "classifier"
  config.optimizers.classifier = configs.adam(2e-3)
  config.optimizers.classifier.schedule = "cosine"

  if "smoke" in args:
    configs.shrink_for_smoke(config)
    config.model.features = (4, 8)
    config.model.embedding_dim = 8
  return config
