"""Registry of training methods."""

import ml_collections

from gen_jax.data import DatasetInfo
from gen_jax.methods.base import Method
from gen_jax.methods.classifier import Classifier
from gen_jax.methods.gan import GAN
from gen_jax.methods.vae import VAE
from gen_jax.registry import lookup

METHODS: dict[str, type[Method]] = {
    "classifier": Classifier,
    "gan": GAN,
    "vae": VAE,
}


def build(config: ml_collections.ConfigDict, info: DatasetInfo) -> Method:
  """The method ``config.method.name`` with the networks of ``config.model``."""
  return lookup(METHODS, config.method.name, "method")(config, info)
