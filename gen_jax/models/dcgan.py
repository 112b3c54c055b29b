"""DCGAN's convolutional networks (Radford et al., 2016).

The same two classes give the TensorFlow DCGAN tutorial's MNIST networks, the
paper's 64x64 networks, and (with other heads) the convolutional VAE's decoder
and encoder.
"""

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen_jax.models import blocks, layers


class DCGANGenerator(nn.Module):
  """Projects a latent to a small feature map, then upsamples by transposed convolutions.

  Layers: optionally a hidden Dense of ``dense_hidden`` units, BN, activation
  (the InfoGAN paper's MNIST generator); Dense to ``base_size**2 *
  features[0]`` (no bias), BN, activation;
  then for each later width a stride-``s`` transposed convolution (no bias),
  BN, activation; then a transposed convolution to the image channels and
  ``output_activation``. The output side is ``base_size * prod(strides)``.

  Attributes:
    image_shape: (H, W, C) of the output; H == W == base_size * prod(strides).
    num_classes: > 0 makes the generator conditional: the one-hot label is
      concatenated to z (Mirza & Osindero, 2014).
    conditional_batch_norm: with ``num_classes``, the batch norms' gains and
      biases are also functions of the label (Miyato & Koyama's generator).
    base_size: side of the first feature map.
    features: widths of the projected map and of the hidden layers.
    strides: one per transposed convolution, ``len(features)`` of them.
    kernel_size: of the transposed convolutions.
    batch_norm: whether hidden layers are batch-normalised.
    spectral_norm: whether every layer is spectrally normalised (SAGAN's generator).
    attention_at: side of the hidden feature map after which a self-attention
      block is inserted (SAGAN); 0 for none.
    negative_slope: of the leaky ReLUs (0 gives the paper's ReLU).
    output_activation: a key of ``layers.OUTPUT_ACTIVATIONS``.
    dense_hidden: width of a hidden fully connected layer before the
      projection, 0 for none. InfoGAN's MNIST generator has 1024: its codes
      then pass a nonlinearity before they shape the first feature map.
    dtype: computation dtype; parameters stay float32.
  """

  image_shape: tuple[int, int, int]
  num_classes: int = 0
  conditional_batch_norm: bool = False
  base_size: int = 4
  features: Sequence[int] = (256, 128, 64)
  strides: Sequence[int] = (2, 2, 2)
  kernel_size: int = 5
  batch_norm: bool = True
  spectral_norm: bool = False
  attention_at: int = 0
  negative_slope: float = 0.2
  output_activation: str = "tanh"
  dense_hidden: int = 0
  dtype: Any = jnp.float32

  def __post_init__(self):
    check_output_size(self.image_shape, self.base_size, self.strides, len(self.features))
    sides = [self.base_size * math.prod(self.strides[:i]) for i in range(len(self.features))]
    check_attention_side(self.attention_at, sides, "generator")
    super().__post_init__()

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    """z: [B, latent_dim], labels: int [B] if conditional -> images [B, H, W, C]."""

    def normalise_and_activate(x):
      if self.batch_norm and self.conditional_batch_norm and self.num_classes:
        condition = jax.nn.one_hot(labels, self.num_classes, dtype=x.dtype)
        x = blocks.ConditionalBatchNorm(self.spectral_norm, dtype=self.dtype)(x, condition, train)
      elif self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         dtype=self.dtype)(x)
      return nn.leaky_relu(x, self.negative_slope)

    def attend(x):
      if x.shape[1] == self.attention_at:
        x = blocks.SelfAttention(self.spectral_norm, self.dtype)(x, train)
      return x

    def layer(module, x):
      return blocks.maybe_spectral_norm(module, self.spectral_norm)(x, train)

    x = blocks.with_one_hot(z, labels, self.num_classes)
    if self.dense_hidden:
      x = normalise_and_activate(layer(nn.Dense(self.dense_hidden, use_bias=not self.batch_norm,
                                                dtype=self.dtype), x))
    x = layer(nn.Dense(self.base_size**2 * self.features[0], use_bias=not self.batch_norm,
                       dtype=self.dtype), x)
    # As in the TensorFlow tutorial, the projection is normalised before the reshape.
    x = normalise_and_activate(x)
    x = attend(x.reshape(z.shape[0], self.base_size, self.base_size, self.features[0]))
    for width, stride in zip(self.features[1:], self.strides[:-1]):
      x = layer(layers.ConvTranspose(width, self.kernel_size, stride,
                                     use_bias=not self.batch_norm, dtype=self.dtype), x)
      x = attend(normalise_and_activate(x))
    x = layer(layers.ConvTranspose(self.image_shape[-1], self.kernel_size, self.strides[-1],
                                   use_bias=not self.batch_norm, dtype=self.dtype), x)
    return layers.OUTPUT_ACTIVATIONS[self.output_activation](x)


class DCGANDiscriminator(nn.Module):
  """Strided convolutions down to a small map, then a dense head.

  Layers: for each width a stride-2 convolution, BN (not on the first layer,
  as in the paper) when ``batch_norm``, leaky ReLU, dropout; then flatten,
  optionally a hidden Dense of ``dense_hidden`` units, and Dense to
  ``num_outputs``.

  Attributes:
    features: widths of the convolutions.
    kernel_size: of the convolutions.
    batch_norm: whether layers after the first are batch-normalised.
    spectral_norm: whether every layer is spectrally normalised (SNGAN, SAGAN).
    attention_at: side of the feature map after which a self-attention block
      is inserted (SAGAN); 0 for none.
    dropout: rate after each convolution (training only).
    negative_slope: of the leaky ReLUs.
    num_outputs: 1 for a discriminator's logit; a VAE encoder asks for
      2 * latent_dim.
    num_classes: classes of the label input when ``conditioning`` is not 'none'.
    conditioning: a key of ``blocks.DISCRIMINATOR_CONDITIONING``: 'concat'
      appends one-hot label maps to the image channels, 'projection' adds the
      projection term ``<embed(y), h>`` to the logit.
    aux_outputs: width of an auxiliary head on the shared trunk (ACGAN's class
      logits, InfoGAN's Q network), appended after the ``num_outputs`` logits.
    aux_hidden: width of the auxiliary head's hidden layer (BN + leaky ReLU),
      0 for a linear head.
    dense_hidden: width of a fully connected layer (BN when ``batch_norm``,
      leaky ReLU) between the flattened trunk and the heads, 0 for none
      (InfoGAN's MNIST discriminator has 1024).
    dtype: computation dtype; parameters stay float32.
  """

  features: Sequence[int] = (64, 128)
  kernel_size: int = 5
  batch_norm: bool = False
  spectral_norm: bool = False
  attention_at: int = 0
  dropout: float = 0.3
  negative_slope: float = 0.2
  num_outputs: int = 1
  num_classes: int = 0
  conditioning: str = "none"
  aux_outputs: int = 0
  aux_hidden: int = 0
  dense_hidden: int = 0
  dtype: Any = jnp.float32

  def __post_init__(self):
    check_conditioning(self.conditioning, self.num_classes)
    super().__post_init__()

  @nn.compact
  def __call__(self, images: jax.Array, labels: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    """images: [B, H, W, C], labels: int [B] if conditioned -> [B, num_outputs + aux_outputs]."""

    def layer(module, x):
      return blocks.maybe_spectral_norm(module, self.spectral_norm)(x, train)

    x = images
    if self.conditioning == "concat":
      x = blocks.label_maps(x, labels, self.num_classes)
    sides = []
    for i, width in enumerate(self.features):
      x = layer(layers.Conv(width, self.kernel_size, 2, use_bias=not (self.batch_norm and i > 0),
                            dtype=self.dtype), x)
      if self.batch_norm and i > 0:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         dtype=self.dtype)(x)
      x = nn.leaky_relu(x, self.negative_slope)
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
      sides.append(x.shape[1])
      if x.shape[1] == self.attention_at:
        x = blocks.SelfAttention(self.spectral_norm, self.dtype)(x, train)
    check_attention_side(self.attention_at, sides, "discriminator")
    x = x.reshape(x.shape[0], -1)
    if self.dense_hidden:
      x = layer(nn.Dense(self.dense_hidden, use_bias=not self.batch_norm, dtype=self.dtype), x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         dtype=self.dtype)(x)
      x = nn.leaky_relu(x, self.negative_slope)
    return discriminator_heads(self, x, labels, train, layer)


def discriminator_heads(d: nn.Module, features: jax.Array, labels: jax.Array | None,
                        train: bool, layer) -> jax.Array:
  """The dense heads every GAN discriminator trunk ends with.

  Args:
    d: the discriminator (its ``num_outputs``, ``conditioning``,
      ``num_classes``, ``aux_outputs``, ``aux_hidden``, ``spectral_norm``,
      ``negative_slope`` and ``dtype`` are used); call from its compact method.
    features: [B, D] flattened trunk output.
    labels: int [B] or None.
    train: training mode.
    layer: ``layer(module, x)`` applying a module (spectrally normalised if asked).

  Returns:
    [B, num_outputs + aux_outputs]: the logits, then the auxiliary head.
  """
  outputs = layer(nn.Dense(d.num_outputs, dtype=d.dtype), features)
  if d.conditioning == "projection":
    outputs = outputs + blocks.Projection(d.num_classes, d.spectral_norm)(
        features, labels, train)
  if d.aux_outputs:
    aux = features
    if d.aux_hidden:
      aux = layer(nn.Dense(d.aux_hidden, use_bias=False, dtype=d.dtype), aux)
      aux = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         dtype=d.dtype)(aux)
      aux = nn.leaky_relu(aux, d.negative_slope)
    aux = layer(nn.Dense(d.aux_outputs, dtype=d.dtype), aux)
    outputs = jnp.concatenate([outputs, aux], axis=-1)
  return outputs


def check_conditioning(conditioning: str, num_classes: int) -> None:
  """Raises a clear error for an unknown conditioning or one without classes."""
  if conditioning not in blocks.DISCRIMINATOR_CONDITIONING:
    raise ValueError(f"unknown discriminator conditioning {conditioning!r}; valid: "
                     f"{', '.join(blocks.DISCRIMINATOR_CONDITIONING)}")
  if conditioning != "none" and num_classes <= 0:
    raise ValueError(f"discriminator conditioning {conditioning!r} needs a labelled "
                     "dataset (num_classes > 0)")


def check_attention_side(attention_at: int, sides: Sequence[int], network: str) -> None:
  """Raises when ``attention_at`` is not the side of any of the network's feature maps."""
  if attention_at and attention_at not in sides:
    raise ValueError(f"attention_at={attention_at}, but the {network}'s feature maps have "
                     f"sides {list(sides)}: pick one of them, or 0 for no attention")


def check_output_size(image_shape: Sequence[int], base_size: int,
                      strides: Sequence[int], num_layers: int) -> None:
  """Raises a clear error when the generator cannot make ``image_shape``."""
  if len(strides) != num_layers:
    raise ValueError(f"the generator has {num_layers} upsampling layers (one per entry "
                     f"of features) but {len(strides)} strides {tuple(strides)}")
  side = base_size * math.prod(strides)
  if tuple(image_shape[:2]) != (side, side):
    raise ValueError(
        f"this generator makes {side}x{side} images (base_size {base_size} x strides "
        f"{tuple(strides)}), but the data is {image_shape[0]}x{image_shape[1]}: set "
        f"image_size to {side}, or change model.generator.base_size/strides")


def build(config: ml_collections.ConfigDict, info, dtype) -> dict[str, nn.Module]:
  """DCGAN's networks from ``config.generator`` and ``config.discriminator``.

  ``config.conditioning`` (default 'none') makes them class-conditional: the
  generator then takes the one-hot label with z, and the discriminator the
  label by 'concat' or 'projection', or (ACGAN's 'auxiliary') predicts it.
  """
  return conditional_pair(DCGANGenerator, DCGANDiscriminator, config, info, dtype)


# Model-level conditioning -> the discriminator's label input and auxiliary head.
CONDITIONING = ("none", "concat", "projection", "auxiliary")


def conditional_pair(generator_cls, discriminator_cls, config: ml_collections.ConfigDict,
                     info, dtype) -> dict[str, nn.Module]:
  """A generator and a discriminator, wired for ``config.conditioning`` and ``config.codes``.

  Shared by the MLP and DCGAN families: the conditioning and InfoGAN's codes
  change only the networks' inputs and heads.

  Args:
    generator_cls: takes ``image_shape``, ``num_classes``, ``dtype`` and ``config.generator``.
    discriminator_cls: takes ``num_classes``, ``conditioning``, ``aux_outputs``,
      ``dtype`` and ``config.discriminator``.
    config: the ``model`` section: ``conditioning`` (one of ``CONDITIONING``) and
      ``codes`` (InfoGAN's ``categorical`` sizes and ``continuous`` count).
    info: the dataset's ``DatasetInfo``.
    dtype: computation dtype.
  """
  conditioning = config.get("conditioning", "none")
  if conditioning not in CONDITIONING:
    raise ValueError(f"unknown model.conditioning {conditioning!r}; valid: "
                     f"{', '.join(CONDITIONING)}")
  if conditioning != "none" and not info.num_classes:
    raise ValueError(f"model.conditioning={conditioning!r} needs a labelled dataset, but this "
                     "one has no class labels; use conditioning='none'")
  num_classes = info.num_classes if conditioning != "none" else 0
  aux_outputs = num_classes if conditioning == "auxiliary" else 0
  aux_outputs += code_width(config.get("codes"))
  discriminator = {**config.get("discriminator", {}), "aux_outputs": aux_outputs}
  return {
      "generator": generator_cls(tuple(info.image_shape), num_classes=num_classes, dtype=dtype,
                                 **config.get("generator", {})),
      "discriminator": discriminator_cls(
          num_classes=num_classes,
          conditioning="none" if conditioning == "auxiliary" else conditioning,
          dtype=dtype, **discriminator),
  }


def code_width(codes) -> int:
  """Width of InfoGAN's latent codes: the one-hot categorical ones plus the continuous ones."""
  if not codes:
    return 0
  return sum(codes.get("categorical", ())) + codes.get("continuous", 0)
