"""Registry of models: each entry builds a dict of named Flax networks."""

import jax.numpy as jnp
import ml_collections

from gen_jax.models import biggan, classifier, dcgan, gan, vae
from gen_jax.registry import lookup

MODELS = {
    "classifier": classifier.build,
    "gan": gan.build,
    "dcgan": dcgan.build,
    "vae": vae.build,
    "biggan": biggan.build,
}


def build(config: ml_collections.ConfigDict, info) -> dict:
  """The networks of model ``config.name`` for data described by ``info``.

  Args:
    config: the config's ``model`` section; ``name`` picks the builder, the
      rest is the builder's.
    info: a ``gen_jax.data.DatasetInfo``: its ``image_shape`` sizes the networks
      and its ``num_classes`` sizes conditional ones.
  """
  make = lookup(MODELS, config.name, "model")
  return make(config, info, jnp.dtype(config.get("compute_dtype", "float32")))
