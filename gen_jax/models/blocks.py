"""Building blocks the adversarial family shares: spectral normalisation, self-attention,
class-conditional batch norm and the ways a network takes a class label.

Spectral-norm state (the power-iteration vector ``u`` and the last ``sigma``)
lives in the ``batch_stats`` collection, so the train state carries it and
checkpoints save it like batch-norm statistics.
"""

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

# Ways a discriminator takes the class label.
DISCRIMINATOR_CONDITIONING = ("none", "concat", "projection")


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> Callable[..., jax.Array]:
  """``f(x, train)`` applying ``module``, spectrally normalised when ``enabled``.

  Create it inside the parent's ``nn.compact`` method. With spectral norm the
  weights are divided by their largest singular value, estimated by one step
  of power iteration per training call (Miyato et al., 2018); ``u`` is updated
  only when ``train`` is true, so evaluation is deterministic.
  """
  if not enabled:
    return lambda x, train: module(x)
  normalised = nn.SpectralNorm(module)
  return lambda x, train: normalised(x, update_stats=train)


class SelfAttention(nn.Module):
  """The self-attention block of SAGAN (Zhang et al., 2019), as used in BigGAN.

  ``x + gamma * W_o(softmax(q k^T) v)`` with 1x1 convolutions ``q, k`` of
  ``C/8`` channels, ``v`` of ``C/2``, keys and values max-pooled 2x2 when the
  map's sides are even (BigGAN's memory saving), and ``gamma`` starting at 0
  so the block begins as the identity.

  Attributes:
    spectral_norm: whether the 1x1 convolutions are spectrally normalised.
    dtype: computation dtype.
  """

  spectral_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> [B, H, W, C]."""
    b, h, w, c = x.shape

    def project(features: int, name: str) -> jax.Array:
      conv = nn.Conv(features, (1, 1), use_bias=False, dtype=self.dtype, name=name)
      return maybe_spectral_norm(conv, self.spectral_norm)(x, train)

    def pool(y: jax.Array) -> jax.Array:
      if h % 2 or w % 2:
        return y
      return nn.max_pool(y, (2, 2), strides=(2, 2))

    qk_features, v_features = max(c // 8, 1), max(c // 2, 1)
    query = project(qk_features, "query").reshape(b, h * w, qk_features)
    key = pool(project(qk_features, "key")).reshape(b, -1, qk_features)
    value = pool(project(v_features, "value")).reshape(b, -1, v_features)
    attention = jax.nn.softmax(
        jnp.einsum("bqc,bkc->bqk", query, key).astype(jnp.float32), axis=-1)
    attended = jnp.einsum("bqk,bkc->bqc", attention.astype(value.dtype), value)
    attended = attended.reshape(b, h, w, v_features)
    out = nn.Conv(c, (1, 1), use_bias=False, dtype=self.dtype, name="output")
    out = maybe_spectral_norm(out, self.spectral_norm)(attended, train)
    gamma = self.param("gamma", nn.initializers.zeros, ())
    return x + gamma * out


class ConditionalBatchNorm(nn.Module):
  """Batch norm whose gain and bias are linear functions of a condition vector.

  ``BN(x) * (1 + gain(c)) + bias(c)``: BigGAN's class-conditional batch norm,
  where ``c`` is the shared class embedding concatenated with a chunk of z.

  Attributes:
    spectral_norm: whether the gain and bias projections are spectrally normalised.
    momentum: of the running statistics.
    epsilon: added to the variance.
    dtype: computation dtype.
  """

  spectral_norm: bool = False
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, condition: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, ..., C], condition: [B, D] -> [B, ..., C]."""
    x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                     epsilon=self.epsilon, use_scale=False, use_bias=False,
                     dtype=self.dtype)(x)
    channels = x.shape[-1]

    def linear(name: str) -> jax.Array:
      dense = nn.Dense(channels, use_bias=False, dtype=self.dtype, name=name)
      return maybe_spectral_norm(dense, self.spectral_norm)(condition, train)

    # [B, C] -> [B, 1, ..., 1, C], to broadcast over the spatial axes of any rank.
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (channels,)
    gain, bias = linear("gain").reshape(shape), linear("bias").reshape(shape)
    return x * (1.0 + gain) + bias


def label_maps(images: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
  """Concatenates one-hot label maps to the channels (conditioning by concatenation).

  Args:
    images: [B, H, W, C].
    labels: int [B].
    num_classes: K.

  Returns:
    [B, H, W, C + K].
  """
  one_hot = jax.nn.one_hot(labels, num_classes, dtype=images.dtype)
  maps = jnp.broadcast_to(one_hot[:, None, None, :], (*images.shape[:3], num_classes))
  return jnp.concatenate([images, maps], axis=-1)


def with_one_hot(z: jax.Array, labels: jax.Array | None, num_classes: int) -> jax.Array:
  """``[z, one_hot(labels)]`` (Mirza & Osindero's generator input); z alone if unconditional."""
  if not num_classes:
    return z
  return jnp.concatenate([z, jax.nn.one_hot(labels, num_classes, dtype=z.dtype)], axis=-1)


class Projection(nn.Module):
  """The projection discriminator's class term ``<embed(y), h>`` (Miyato & Koyama, 2018).

  Attributes:
    num_classes: K.
    spectral_norm: whether the embedding is spectrally normalised.
  """

  num_classes: int
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, features: jax.Array, labels: jax.Array, train: bool = False) -> jax.Array:
    """features: [B, D] (the trunk's output), labels: int [B] -> [B, 1]."""
    # A bias-free Dense on one-hot labels is an embedding that spectral norm can wrap.
    embed = nn.Dense(features.shape[-1], use_bias=False, name="embedding")
    one_hot = jax.nn.one_hot(labels, self.num_classes, dtype=features.dtype)
    embedded = maybe_spectral_norm(embed, self.spectral_norm)(one_hot, train)
    return jnp.sum(embedded * features, axis=-1, keepdims=True)
