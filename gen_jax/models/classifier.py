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
import numpy as np
import optax


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


def build(config: ml_collections.ConfigDict, image_shape, dtype) -> dict[str, nn.Module]:
  """The ``classifier`` network from ``config.num_classes``, ``features``, ``embedding_dim``."""
  del image_shape  # The network adapts to any input size.
  kwargs = {k: config[k] for k in ("num_classes", "features", "embedding_dim") if k in config}
  return {"classifier": Classifier(dtype=dtype, **kwargs)}


def train_classifier(images: np.ndarray, labels: np.ndarray, num_classes: int = 10,
                     steps: int = 1000, batch_size: int = 128, seed: int = 0):
  """Trains a ``Classifier`` with Adam on in-memory data.

  Args:
    images: float32 [N, H, W, C] in [-1, 1].
    labels: int [N].
    num_classes: number of classes.
    steps: Adam steps on random batches.
    batch_size: examples per step.
    seed: for initialisation and batch order.

  Returns:
    ``(model, params)``.
  """
  model = Classifier(num_classes)
  rng = np.random.default_rng(seed)
  params = model.init(jax.random.PRNGKey(seed), images[:1])["params"]
  tx = optax.adam(optax.cosine_decay_schedule(2e-3, steps))
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits = model.apply({"params": p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  for _ in range(steps):
    idx = rng.integers(0, len(images), batch_size)
    params, opt_state = step(params, opt_state, images[idx], labels[idx].astype(np.int32))
  return model, params


def predict_proba(model: Classifier, params, images: np.ndarray,
                  batch_size: int = 500) -> np.ndarray:
  """Class probabilities [N, num_classes] of float images [N, H, W, C] in [-1, 1]."""
  apply = jax.jit(lambda x: jax.nn.softmax(model.apply({"params": params}, x)))
  return np.concatenate([np.asarray(apply(images[i:i + batch_size]))
                         for i in range(0, len(images), batch_size)])
