"""The original GAN's networks: multilayer perceptrons (Goodfellow et al., 2014)."""

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen_jax.models import blocks, dcgan, layers


class MLPGenerator(nn.Module):
  """Maps latents to images through fully connected layers.

  Attributes:
    image_shape: (H, W, C) of the output.
    num_classes: > 0 makes the generator conditional: the one-hot label is
      concatenated to z (Mirza & Osindero, 2014).
    hidden: widths of the hidden layers.
    negative_slope: of the leaky ReLUs (0 gives ReLU).
    output_activation: a key of ``layers.OUTPUT_ACTIVATIONS``.
    dtype: computation dtype; parameters stay float32.
  """

  image_shape: tuple[int, int, int]
  num_classes: int = 0
  hidden: Sequence[int] = (256, 512, 1024)
  negative_slope: float = 0.2
  output_activation: str = "tanh"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    """z: [B, latent_dim], labels: int [B] if conditional -> images [B, H, W, C]."""
    del train  # No batch-dependent layers.
    x = blocks.with_one_hot(z, labels, self.num_classes)
    for width in self.hidden:
      x = nn.leaky_relu(nn.Dense(width, dtype=self.dtype)(x), self.negative_slope)
    x = nn.Dense(math.prod(self.image_shape), dtype=self.dtype)(x)
    x = layers.OUTPUT_ACTIVATIONS[self.output_activation](x)
    return x.reshape(z.shape[0], *self.image_shape)


class MLPDiscriminator(nn.Module):
  """Maps images to ``num_outputs`` values through fully connected layers.

  Attributes:
    hidden: widths of the hidden layers.
    num_outputs: 1 for a discriminator's logit; a VAE encoder asks for
      2 * latent_dim.
    dropout: rate after each hidden layer (training only).
    negative_slope: of the leaky ReLUs.
    spectral_norm: whether every layer is spectrally normalised.
    num_classes, conditioning, aux_outputs, aux_hidden: the label input and
      heads, as for ``dcgan.DCGANDiscriminator`` ('concat' appends the one-hot
      label to the flattened image).
    dtype: computation dtype; parameters stay float32.
  """

  hidden: Sequence[int] = (1024, 512, 256)
  num_outputs: int = 1
  dropout: float = 0.3
  negative_slope: float = 0.2
  spectral_norm: bool = False
  num_classes: int = 0
  conditioning: str = "none"
  aux_outputs: int = 0
  aux_hidden: int = 0
  dtype: Any = jnp.float32

  def __post_init__(self):
    dcgan.check_conditioning(self.conditioning, self.num_classes)
    super().__post_init__()

  @nn.compact
  def __call__(self, images: jax.Array, labels: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    """images: [B, H, W, C], labels: int [B] if conditioned -> [B, num_outputs + aux_outputs]."""

    def layer(module, x):
      return blocks.maybe_spectral_norm(module, self.spectral_norm)(x, train)

    x = images.reshape(images.shape[0], -1)
    if self.conditioning == "concat":
      x = blocks.with_one_hot(x, labels, self.num_classes)
    for width in self.hidden:
      x = nn.leaky_relu(layer(nn.Dense(width, dtype=self.dtype), x), self.negative_slope)
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return dcgan.discriminator_heads(self, x, labels, train, layer)


def build(config: ml_collections.ConfigDict, info, dtype) -> dict[str, nn.Module]:
  """The MLP GAN's networks from ``config.generator`` and ``config.discriminator``.

  ``config.conditioning`` and ``config.codes`` as for ``dcgan.build``.
  """
  return dcgan.conditional_pair(MLPGenerator, MLPDiscriminator, config, info, dtype)
