"""A small image classifier, used to judge samples (learning tests, domain features).

Its penultimate layer is the feature space of the "domain" metrics: not a
standard feature network, so figures computed with it are only comparable with
figures computed with the same trained weights.
"""

from typing import Any, Sequence

import ml_collections

import flax.linen as nn
import jax
import jax.numpy as jnp


class Classifier(nn.Module):
  """Conv -> ReLU -> (stride-2 conv -> ReLU) ... -> Dense features -> Dense logits.

  Attributes:
    num_classes: number of outputs.
    features: widths of the stride-2 convolutions (after a first stride-1 one).
    embedding_dim: width of the penultimate (feature) layer.
  """

  num_classes: int = 10
  features: Sequence[int] = (32, 64)
  embedding_dim: int = 128

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False,
               return_features: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Classifies images.

    Args:
      images: float [B, H, W, C] in [-1, 1].
      train: accepted for the ``Method`` interface; the network has no batch
        norm or dropout, so it behaves the same either way.
      return_features: also return the penultimate features.

    Returns:
      float32 logits [B, num_classes], or ``(logits, features [B, embedding_dim])``.
    """
    del train
    x = nn.relu(nn.Conv(self.features[0], (3, 3), dtype=self.dtype)(images))
    for width in self.features:
      x = nn.relu(nn.Conv(width, (3, 3), strides=2, dtype=self.dtype)(x))
    x = x.reshape(x.shape[0], -1)
    features = nn.relu(nn.Dense(self.embedding_dim, dtype=self.dtype)(x)).astype(jnp.float32)
    logits = nn.Dense(self.num_classes)(features)
    return (logits, features) if return_features else logits


def build(config: ml_collections.ConfigDict, info, dtype) -> dict[str, nn.Module]:
  """The ``classifier`` network from ``config.num_classes`` (default: the dataset's),
  ``features`` and ``embedding_dim``; it adapts to any input size."""
  kwargs = {k: config[k] for k in ("num_classes", "features", "embedding_dim") if k in config}
  if "num_classes" not in kwargs and info.num_classes:
    kwargs["num_classes"] = info.num_classes
  return {"classifier": Classifier(dtype=dtype, **kwargs)}

