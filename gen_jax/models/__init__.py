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
  try:
    return make(config, info, jnp.dtype(config.get("compute_dtype", "float32")))
  except TypeError as e:
    # A network given a key it does not take: the section of another model (say,
    # --config.model.name=gan on a DCGAN config, whose generator has a base_size).
    raise ValueError(f"config.model does not fit model {config.name!r}: {e}. Its keys are "
                     f"those of another model: set config.model.name back, or start from a "
                     f"config of {config.name!r} (experiments/{config.name}/)") from e
