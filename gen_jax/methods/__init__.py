"""Registry of training methods."""

import ml_collections
import numpy as np

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
  """The method ``config.method.name`` with the networks of ``config.model``.

  Raises:
    ValueError: the method learns from labels, and some label values in
      ``[0, info.num_classes)`` have no example (an 'ignore' label such as 255).
  """
  method = lookup(METHODS, config.method.name, "method")(config, info)
  if info.unused_classes and (method.conditional or not method.generative):
    unused = info.unused_classes
    raise ValueError(
        f"the labels of {config.dataset} go up to {info.num_classes - 1}, but {len(unused)} of "
        f"the {info.num_classes} class ids have no image ({_ranges(unused)}): this "
        f"{config.model.name} would learn {info.num_classes} classes. If a label marks "
        f"unlabelled images (say 255), drop those images or relabel them, so that the "
        f"classes are 0..K-1 without gaps")
  return method


def _ranges(values: tuple[int, ...]) -> str:
  """Sorted integers as ``'ids 3, 10-254'``."""
  runs = np.split(np.asarray(values), np.flatnonzero(np.diff(values) != 1) + 1)
  return "ids " + ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
