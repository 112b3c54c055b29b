"""Variational autoencoders trained on the evidence lower bound (ELBO)."""

import jax
import jax.numpy as jnp

from gen_jax import losses
from gen_jax.methods.base import Batch, Method, Metrics
from gen_jax.train.state import TrainState, apply_gradients


class VAE(Method):
  """Maximises the ELBO of a ``models.vae.VAE`` (Kingma & Welling, 2014).

  Per image, ``loss = nll(x | z) + beta * KL(q(z|x) || N(0, I))`` with one
  reparameterised sample of z. A Bernoulli decoder sees pixels in [0, 1], a
  Gaussian one in [-1, 1]. ``beta`` (``method.beta``, default 1) gives the
  beta-VAE; with beta = 1 the loss is the negative ELBO, reported in nats.
  """

  network_names = ("vae",)
  sampling_network = "vae"

  def __init__(self, config, info):
    super().__init__(config, info)
    self.beta = config.method.get("beta", 1.0)
    self.vae = self.networks["vae"]

  def init_variables(self, rng):
    params_rng, latent_rng = jax.random.split(rng)
    images = jnp.zeros((1, *self.info.image_shape))
    return {"vae": self.vae.init({"params": params_rng, "latent": latent_rng},
                                 images, train=False)}

  def _targets(self, images: jax.Array) -> jax.Array:
    return (images + 1.0) / 2.0 if self.vae.likelihood == "bernoulli" else images

  def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    keys = state.step_key("latent")
    targets = self._targets(batch["image"])

    def loss_fn(params):
      out, collections = self.apply("vae", params, state.collections["vae"], targets,
                                    rngs={"latent": keys["latent"]})
      if self.vae.likelihood == "bernoulli":
        nll = losses.bernoulli_nll(out["decoded"], targets)
      else:
        nll = losses.gaussian_nll(out["decoded"], out["log_scale"], targets)
      kl = losses.gaussian_kl(out["mean"], out["logvar"])
      return jnp.mean(nll + self.beta * kl), (collections, nll.mean(), kl.mean())

    (loss, (collections, nll, kl)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params["vae"])
    state = apply_gradients(state, "vae", grads, self.optimizers["vae"], self.ema_decay)
    state = state.replace(step=state.step + 1, collections={"vae": collections})
    return state, {"loss": loss, "nll": nll, "kl": kl, "negative_elbo": nll + kl}

  def generate(self, variables, rng, labels, mutable=False):
    z = jax.random.normal(rng, (labels.shape[0], self.vae.latent_dim))
    return self.vae.apply(variables, z, train=bool(mutable), mutable=mutable,
                          method=self.vae.sample_mean)
