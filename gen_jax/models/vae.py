"""The variational autoencoder: a Gaussian encoder and a Bernoulli or Gaussian decoder.

The encoder and decoder are the GAN networks of ``gan.py`` (MLP) or
``dcgan.py`` (convolutional) with other heads: the encoder outputs
2 * latent_dim values (mean and log-variance), the decoder outputs logits
(Bernoulli) or means (Gaussian).
"""


import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gen_jax.models.gan import MLPDiscriminator, MLPGenerator

LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(nn.Module):
  """q(z|x) = N(mean(x), exp(logvar(x))), p(z) = N(0, I), p(x|z) from the decoder.

  Attributes:
    encoder: images [B, H, W, C] -> [B, 2 * latent_dim].
    decoder: latents [B, latent_dim] -> [B, H, W, C] logits or means.
    latent_dim: size of z.
    likelihood: ``'bernoulli'`` (targets in [0, 1]) or ``'gaussian'`` (targets
      in [-1, 1], one learned scale shared by all pixels).
  """

  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int
  likelihood: str = "bernoulli"

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    """Encodes, draws z with the ``'latent'`` RNG, decodes.

    Returns:
      ``mean`` and ``logvar`` [B, latent_dim], ``decoded`` [B, H, W, C] and,
      for the Gaussian likelihood, the scalar ``log_scale``.
    """
    stats = self.encoder(images, train=train).astype(jnp.float32)
    mean, logvar = jnp.split(stats, 2, axis=-1)
    eps = jax.random.normal(self.make_rng("latent"), mean.shape)
    z = mean + jnp.exp(0.5 * logvar) * eps
    out = {"mean": mean, "logvar": logvar,
           "decoded": self.decoder(z, train=train).astype(jnp.float32)}
    if self.likelihood == "gaussian":
      out["log_scale"] = self.param("log_scale", nn.initializers.zeros, ())
    return out

  def sample_mean(self, z: jax.Array, train: bool = False) -> jax.Array:
    """z: [N, latent_dim] -> the decoder's mean image [N, H, W, C] in [-1, 1]."""
    decoded = self.decoder(z, train=train).astype(jnp.float32)
    if self.likelihood == "bernoulli":
      return 2.0 * jax.nn.sigmoid(decoded) - 1.0
    return jnp.clip(decoded, -1.0, 1.0)


def build(config: ml_collections.ConfigDict, info, dtype) -> dict[str, nn.Module]:
  """A VAE with ``config.architecture`` ``'mlp'`` or ``'conv'``.

  ``config.encoder`` and ``config.decoder`` are passed to the networks (see
  ``MLPDiscriminator``/``MLPGenerator`` or ``DCGANDiscriminator``/
  ``DCGANGenerator`` for the keys).
  """
  networks = {"mlp": (MLPDiscriminator, MLPGenerator), "conv": (DCGANDiscriminator, DCGANGenerator)}
  if config.architecture not in networks:
    raise ValueError(f"unknown VAE architecture {config.architecture!r}; valid: mlp, conv")
  likelihood = config.get("likelihood", "bernoulli")
  if likelihood not in LIKELIHOODS:
    raise ValueError(f"unknown VAE likelihood {likelihood!r}; valid: {', '.join(LIKELIHOODS)}")
  encoder_cls, decoder_cls = networks[config.architecture]
  encoder = encoder_cls(num_outputs=2 * config.latent_dim, dropout=0.0, dtype=dtype,
                        **config.get("encoder", {}))
  decoder = decoder_cls(tuple(info.image_shape), output_activation="none", dtype=dtype,
                        **config.get("decoder", {}))
  return {"vae": VAE(encoder, decoder, config.latent_dim, likelihood)}
