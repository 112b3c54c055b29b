"""BigGAN's residual networks (Brock et al., 2019), sized for 28x28 to 64x64 images.

The generator takes a hierarchical latent: z is split into one chunk for the
input projection and one per up-block, and each block's class-conditional
batch norms see its chunk concatenated with a class embedding shared by all
blocks. The discriminator is a stack of residual down-blocks with a
projection head (Miyato & Koyama, 2018). Every convolution and dense layer is
spectrally normalised by default, in both networks, and the convolutions and
dense layers defined here are orthogonally initialised, as in the paper.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen_jax.models.blocks import (ConditionalBatchNorm, Projection, SelfAttention,
                                   maybe_spectral_norm)

_ORTHOGONAL = nn.initializers.orthogonal()


def _layer(module: nn.Module, spectral_norm: bool, x: jax.Array, train: bool) -> jax.Array:
  """``module(x)``, spectrally normalised when ``spectral_norm``."""
  return maybe_spectral_norm(module, spectral_norm)(x, train)


def _conv(features: int, kernel_size: int, dtype: Any, name: str) -> nn.Conv:
  return nn.Conv(features, (kernel_size, kernel_size), kernel_init=_ORTHOGONAL, dtype=dtype,
                 name=name)


def upsample_2x(x: jax.Array) -> jax.Array:
  """Nearest-neighbour 2x upsampling: [B, H, W, C] -> [B, 2H, 2W, C]."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def avg_pool_2x(x: jax.Array) -> jax.Array:
  """2x2 average pooling of even-sided maps: [B, H, W, C] -> [B, H/2, W/2, C]."""
  # A reshape and mean, whose gradient is a broadcast rather than a windowed op.
  b, h, w, c = x.shape
  return jnp.mean(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


class GeneratorBlock(nn.Module):
  """BigGAN's up-block: two conditional-BN/ReLU/conv3x3 layers and a 2x upsampling.

  Main path: CBN, ReLU, nearest 2x upsample, conv3x3, CBN, ReLU, conv3x3.
  Shortcut: nearest 2x upsample and conv1x1, computed as conv1x1 then upsample
  (the same function, as both act on each pixel alone, on 4x fewer pixels).

  Attributes:
    features: output channels.
    spectral_norm: whether the convolutions and the CBN projections are
      spectrally normalised.
    dtype: computation dtype.
  """

  features: int
  spectral_norm: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, condition: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C_in], condition: [B, D] -> [B, 2H, 2W, features]."""

    def norm(y: jax.Array, name: str) -> jax.Array:
      cbn = ConditionalBatchNorm(self.spectral_norm, dtype=self.dtype, name=name)
      return nn.relu(cbn(y, condition, train))

    def conv(y: jax.Array, kernel_size: int, name: str) -> jax.Array:
      return _layer(_conv(self.features, kernel_size, self.dtype, name), self.spectral_norm,
                    y, train)

    h = conv(upsample_2x(norm(x, "norm_0")), 3, "conv_0")
    h = conv(norm(h, "norm_1"), 3, "conv_1")
    return h + upsample_2x(conv(x, 1, "shortcut"))


class BigGANGenerator(nn.Module):
  """Projects a chunk of z to a small map, then doubles its side with residual up-blocks.

  Layers: spectrally normalised Dense from the first z chunk to
  ``base_size**2 * channels[0]``; one :class:`GeneratorBlock` per later
  width of ``channels`` (so ``len(channels) - 1`` up-blocks, and the output
  side is ``base_size * 2**(len(channels) - 1)``), with a
  :class:`~gen_jax.models.blocks.SelfAttention` after the block whose output
  side is ``attention_at``; then BN, ReLU, conv3x3 to the image channels and
  tanh.

  The latent is split into ``len(channels)`` chunks along its last axis, as
  ``jnp.array_split`` does: when ``latent_dim`` is not a multiple of
  ``len(channels)`` the first ``latent_dim % len(channels)`` chunks get one
  extra entry. Chunk 0 feeds the projection; chunk ``i`` (concatenated with the
  shared class embedding when conditional) conditions up-block ``i - 1``'s
  batch norms.

  Attributes:
    image_shape: (H, W, C) of the output; H == W == base_size * 2**(len(channels) - 1).
    num_classes: K for a class-conditional generator; 0 for an unconditional one.
    base_size: side of the projected map (4 for 32x32 and 64x64, 7 for 28x28).
    channels: width of the projected map, then the output width of each up-block.
    embedding_dim: of the shared class embedding (module ``shared_embedding``).
    attention_at: output side of the up-block followed by self-attention; 0 for none.
    spectral_norm: whether every convolution and dense layer is spectrally normalised.
    dtype: computation dtype; parameters stay float32.
  """

  image_shape: tuple[int, int, int]
  num_classes: int = 0
  base_size: int = 4
  channels: Sequence[int] = (256, 256, 256, 256)
  embedding_dim: int = 128
  attention_at: int = 0
  spectral_norm: bool = True
  dtype: Any = jnp.float32

  def __post_init__(self):
    check_generator_size(self.image_shape, self.base_size, self.channels)
    sides = [self.base_size * 2**i for i in range(1, len(self.channels))]
    check_attention(self.attention_at, sides, "generator", "up-blocks")
    super().__post_init__()

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    """z: [B, latent_dim], labels: int [B] (None if unconditional) -> images [B, H, W, C]."""
    num_chunks = len(self.channels)
    if z.shape[-1] < num_chunks:
      raise ValueError(
          f"latent_dim {z.shape[-1]} is too small to split into {num_chunks} chunks (one for "
          f"the projection and one per up-block): set model.latent_dim to at least {num_chunks}")
    chunks = jnp.array_split(z, num_chunks, axis=-1)
    conditions = chunks[1:]
    if self.num_classes:
      if labels is None:
        raise ValueError(f"this generator is class-conditional (num_classes "
                         f"{self.num_classes}): pass labels")
      embedded = nn.Embed(self.num_classes, self.embedding_dim, dtype=self.dtype,
                          name="shared_embedding")(labels)
      conditions = [jnp.concatenate([chunk, embedded], axis=-1) for chunk in conditions]

    dense = nn.Dense(self.base_size**2 * self.channels[0], kernel_init=_ORTHOGONAL,
                     dtype=self.dtype, name="projection")
    x = _layer(dense, self.spectral_norm, chunks[0], train)
    x = x.reshape(z.shape[0], self.base_size, self.base_size, self.channels[0])
    for i, (width, condition) in enumerate(zip(self.channels[1:], conditions)):
      x = GeneratorBlock(width, self.spectral_norm, self.dtype, name=f"block_{i}")(
          x, condition, train)
      if x.shape[1] == self.attention_at:
        x = SelfAttention(self.spectral_norm, self.dtype, name="attention")(x, train)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                     dtype=self.dtype, name="output_norm")(x)
    x = _layer(_conv(self.image_shape[-1], 3, self.dtype, "output"), self.spectral_norm,
               nn.relu(x), train)
    return jnp.tanh(x)


class DiscriminatorBlock(nn.Module):
  """BigGAN's down-block: two ReLU/conv3x3 layers, then 2x2 average pooling.

  Main path: ReLU (not in the first block, which sees the image), conv3x3,
  ReLU, conv3x3, average pool. Shortcut: conv1x1 then pool in pre-activated
  blocks, pool then conv1x1 in the first (as BigGAN and SNGAN do); the
  identity when the block neither pools nor changes the width.

  Attributes:
    features: output channels.
    downsample: whether the block halves the map's side.
    preactivation: whether the main path starts with a ReLU.
    spectral_norm: whether the convolutions are spectrally normalised.
    dtype: computation dtype.
  """

  features: int
  downsample: bool = True
  preactivation: bool = True
  spectral_norm: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C_in] -> [B, H', W', features], H' = H/2 if downsample else H."""

    def conv(y: jax.Array, kernel_size: int, name: str) -> jax.Array:
      return _layer(_conv(self.features, kernel_size, self.dtype, name), self.spectral_norm,
                    y, train)

    def pool(y: jax.Array) -> jax.Array:
      return avg_pool_2x(y) if self.downsample else y

    h = nn.relu(x) if self.preactivation else x
    h = pool(conv(nn.relu(conv(h, 3, "conv_0")), 3, "conv_1"))
    if not self.downsample and x.shape[-1] == self.features:
      return h + x
    if self.preactivation:
      return h + pool(conv(x, 1, "shortcut"))
    return h + conv(pool(x), 1, "shortcut")


class BigGANDiscriminator(nn.Module):
  """Residual down-blocks, ReLU, global sum pooling, and a linear plus projection head.

  The logit is ``Dense(h) + <embed(y), h>`` for the pooled features ``h``
  (the projection term only when ``num_classes``).

  Attributes:
    num_classes: K for the projection head; 0 for an unconditional discriminator.
    channels: output width of each down-block.
    downsample: one per block: whether it halves the map's side. Maps with an
      odd side cannot be halved, e.g. for 28x28 images (True, True, False)
      gives 28 -> 14 -> 7 -> 7.
    attention_at: self-attention follows the first block whose output side this
      is; 0 for none.
    spectral_norm: whether every convolution and dense layer is spectrally normalised.
    dtype: computation dtype; parameters stay float32.
  """

  num_classes: int = 0
  channels: Sequence[int] = (256, 256, 256, 256)
  downsample: Sequence[bool] = (True, True, False, False)
  attention_at: int = 0
  spectral_norm: bool = True
  dtype: Any = jnp.float32

  def __post_init__(self):
    if len(self.downsample) != len(self.channels):
      raise ValueError(
          f"the discriminator has {len(self.channels)} blocks (one per entry of channels) but "
          f"downsample has {len(self.downsample)} entries {tuple(self.downsample)}: give "
          f"model.discriminator.downsample one bool per block")
    super().__post_init__()

  @nn.compact
  def __call__(self, images: jax.Array, labels: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    """images: [B, H, W, C], labels: int [B] (None if unconditional) -> logits [B, 1]."""
    if self.num_classes and labels is None:
      raise ValueError(f"this discriminator is class-conditional (num_classes "
                       f"{self.num_classes}): pass labels")
    sides, side = [], images.shape[1]
    for i, halve in enumerate(self.downsample):
      if halve and side % 2:
        raise ValueError(
            f"discriminator block {i} cannot halve a {side}x{side} map: set "
            f"model.discriminator.downsample[{i}] to False")
      side = side // 2 if halve else side
      sides.append(side)
    check_attention(self.attention_at, sides, "discriminator", "blocks")
    # Blocks that do not pool share a side: attend after the first of them only.
    attend_after = sides.index(self.attention_at) if self.attention_at else -1

    x = images
    for i, (width, halve) in enumerate(zip(self.channels, self.downsample)):
      x = DiscriminatorBlock(width, halve, preactivation=i > 0, spectral_norm=self.spectral_norm,
                             dtype=self.dtype, name=f"block_{i}")(x, train)
      if i == attend_after:
        x = SelfAttention(self.spectral_norm, self.dtype, name="attention")(x, train)
    features = jnp.sum(nn.relu(x), axis=(1, 2))
    dense = nn.Dense(1, kernel_init=_ORTHOGONAL, dtype=self.dtype, name="output")
    logits = _layer(dense, self.spectral_norm, features, train)
    if self.num_classes:
      logits += Projection(self.num_classes, self.spectral_norm, name="projection")(
          features, labels, train)
    return logits


def check_generator_size(image_shape: Sequence[int], base_size: int,
                         channels: Sequence[int]) -> None:
  """Raises a clear error when the generator cannot make ``image_shape``."""
  if len(channels) < 2:
    raise ValueError(f"model.generator.channels {tuple(channels)} needs at least two widths: "
                     f"the projected map's, then one per up-block")
  side = base_size * 2**(len(channels) - 1)
  if tuple(image_shape[:2]) != (side, side):
    raise ValueError(
        f"this generator makes {side}x{side} images (base_size {base_size} doubled by "
        f"{len(channels) - 1} up-blocks, one per entry of channels after the first), but the "
        f"data is {image_shape[0]}x{image_shape[1]}: set image_size to {side}, or change "
        f"model.generator.base_size/channels")


def check_attention(attention_at: int, sides: Sequence[int], network: str,
                    blocks: str) -> None:
  """Raises a clear error when no block of ``network`` outputs a map of side ``attention_at``."""
  if attention_at and attention_at not in sides:
    raise ValueError(
        f"attention_at={attention_at} is not the output side of any of the {network}'s "
        f"{blocks} {tuple(sides)}: set model.{network}.attention_at to one of them, or 0 for "
        f"no attention")


def build(config: ml_collections.ConfigDict, info, dtype) -> dict[str, nn.Module]:
  """BigGAN's networks from ``config.generator`` and ``config.discriminator``.

  ``config.conditioning`` is 'projection' (BigGAN proper: class-conditional
  batch norm in the generator, a projection discriminator) or 'none'
  (unconditional: the batch norms are conditioned on the z chunks alone).
  """
  conditioning = config.get("conditioning", "none")
  if conditioning not in ("none", "projection"):
    raise ValueError(f"BigGAN takes model.conditioning 'projection' or 'none', got "
                     f"{conditioning!r}")
  if conditioning == "projection" and not info.num_classes:
    raise ValueError("model.conditioning='projection' needs a labelled dataset, but this one "
                     "has no class labels; use conditioning='none'")
  num_classes = info.num_classes if conditioning == "projection" else 0
  return {
      "generator": BigGANGenerator(tuple(info.image_shape), num_classes=num_classes,
                                   dtype=dtype, **config.get("generator", {})),
      "discriminator": BigGANDiscriminator(num_classes=num_classes, dtype=dtype,
                                           **config.get("discriminator", {})),
  }
