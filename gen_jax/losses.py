"""Losses as pure functions.

Logits are the discriminator's raw outputs (before any sigmoid). Every loss
returns a float32 scalar averaged over the batch.
"""

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

PyTree = Any


def _mean_sigmoid_ce(logits: jax.Array, label: float) -> jax.Array:
  logits = logits.astype(jnp.float32)
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()


def gan_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """The original GAN discriminator loss, -log D(x) - log(1 - D(G(z))).

  Args:
    real_logits: [B] or [B, 1] logits on real images.
    fake_logits: [B'] or [B', 1] logits on generated images.

  Returns:
    Scalar, the binary cross-entropy with targets 1 (real) and 0 (fake),
    each averaged over its own batch and summed.
  """
  return _mean_sigmoid_ce(real_logits, 1.0) + _mean_sigmoid_ce(fake_logits, 0.0)


def minimax_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """The generator side of the minimax game, log(1 - D(G(z))) (to minimise).

  It saturates when the discriminator wins, which is why it is rarely used.

  Args:
    fake_logits: [B] or [B, 1] logits on generated images.
  """
  return -_mean_sigmoid_ce(fake_logits, 0.0)


def non_saturating_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """The non-saturating generator loss, -log D(G(z)) (Goodfellow et al., 2014).

  Args:
    fake_logits: [B] or [B, 1] logits on generated images.
  """
  return _mean_sigmoid_ce(fake_logits, 1.0)


def _mean(logits: jax.Array) -> jax.Array:
  return jnp.mean(logits.astype(jnp.float32))


def wasserstein_critic_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """WGAN's critic loss, E[D(G(z))] - E[D(x)] (Arjovsky et al., 2017).

  Its negation is the critic's estimate of the Wasserstein-1 distance (up to
  the Lipschitz constant the clipping or penalty enforces).

  Args:
    real_logits: [B] or [B, 1] critic outputs on real images.
    fake_logits: [B'] or [B', 1] critic outputs on generated images.
  """
  return _mean(fake_logits) - _mean(real_logits)


def wasserstein_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """WGAN's generator loss, -E[D(G(z))]; hinge GANs use the same one.

  Args:
    fake_logits: [B] or [B, 1] critic outputs on generated images.
  """
  return -_mean(fake_logits)


def least_squares_discriminator_loss(real_logits: jax.Array,
                                     fake_logits: jax.Array) -> jax.Array:
  """LSGAN's discriminator loss, (E[(D(x) - 1)^2] + E[D(G(z))^2]) / 2 (Mao et al., 2017).

  Targets b = 1 (real) and a = 0 (fake), the paper's 0-1 coding.

  Args:
    real_logits: [B] or [B, 1] outputs on real images (no sigmoid).
    fake_logits: [B'] or [B', 1] outputs on generated images.
  """
  real = real_logits.astype(jnp.float32)
  fake = fake_logits.astype(jnp.float32)
  return 0.5 * (jnp.mean(jnp.square(real - 1.0)) + jnp.mean(jnp.square(fake)))


def least_squares_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """LSGAN's generator loss, E[(D(G(z)) - 1)^2] / 2 (target c = 1).

  Args:
    fake_logits: [B] or [B, 1] outputs on generated images.
  """
  return 0.5 * jnp.mean(jnp.square(fake_logits.astype(jnp.float32) - 1.0))


def hinge_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """The hinge loss, E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye, 2017).

  Used by SNGAN's best results, SAGAN and BigGAN; the generator side is
  ``wasserstein_generator_loss``.

  Args:
    real_logits: [B] or [B, 1] outputs on real images.
    fake_logits: [B'] or [B', 1] outputs on generated images.
  """
  return (jnp.mean(jax.nn.relu(1.0 - real_logits.astype(jnp.float32)))
          + jnp.mean(jax.nn.relu(1.0 + fake_logits.astype(jnp.float32))))


class AdversarialLoss(NamedTuple):
  """A pair of losses for the two players."""
  discriminator: Callable[[jax.Array, jax.Array], jax.Array]
  generator: Callable[[jax.Array], jax.Array]


ADVERSARIAL_LOSSES = {
    "minimax": AdversarialLoss(gan_discriminator_loss, minimax_generator_loss),
    "non_saturating": AdversarialLoss(gan_discriminator_loss,
                                      non_saturating_generator_loss),
    "wasserstein": AdversarialLoss(wasserstein_critic_loss, wasserstein_generator_loss),
    "least_squares": AdversarialLoss(least_squares_discriminator_loss,
                                     least_squares_generator_loss),
    "hinge": AdversarialLoss(hinge_discriminator_loss, wasserstein_generator_loss),
}


def clip_weights(params: PyTree, limit: float) -> PyTree:
  """Clips every parameter to [-limit, limit]: WGAN's crude Lipschitz constraint.

  Args:
    params: any pytree of arrays.
    limit: c > 0 (the WGAN paper uses 0.01).
  """
  return jax.tree.map(lambda p: jnp.clip(p, -limit, limit), params)


def _input_gradient_norms(critic: Callable[[jax.Array], jax.Array],
                          images: jax.Array) -> jax.Array:
  """||d critic(x_i) / d x_i||_2 for each example i: [B]."""
  # Examples do not interact in a critic without batch norm, so the gradient
  # of the summed outputs holds each example's own input gradient.
  grads = jax.grad(lambda x: jnp.sum(critic(x).astype(jnp.float32)))(images)
  return jnp.sqrt(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=-1) + 1e-12)


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array,
                     fake: jax.Array, rng: jax.Array) -> jax.Array:
  """WGAN-GP's penalty E[(||grad D(x_hat)||_2 - 1)^2] (Gulrajani et al., 2017).

  ``x_hat = eps * x + (1 - eps) * G(z)`` with one eps ~ U[0, 1] per example.
  Multiply by lambda (10 in the paper). The critic must not use batch norm.

  Args:
    critic: images [B, H, W, C] -> [B] or [B, 1] outputs.
    real: [B, H, W, C] real images.
    fake: [B, H, W, C] generated images (no gradient to the generator is taken).
    rng: PRNG key for eps.

  Returns:
    Scalar penalty.
  """
  eps = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  interpolates = eps * real + (1.0 - eps) * jax.lax.stop_gradient(fake)
  return jnp.mean(jnp.square(_input_gradient_norms(critic, interpolates) - 1.0))


def r1_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array) -> jax.Array:
  """The R1 penalty E[||grad D(x)||_2^2] on real data (Mescheder et al., 2018).

  Multiply by gamma / 2.

  Args:
    critic: images [B, H, W, C] -> [B] or [B, 1] outputs.
    real: [B, H, W, C] real images.

  Returns:
    Scalar penalty.
  """
  return jnp.mean(jnp.square(_input_gradient_norms(critic, real)))


def orthogonal_regularization(kernels: list[jax.Array]) -> jax.Array:
  """BigGAN's orthogonal regulariser sum_W ||W^T W * (1 - I)||_F^2 (Brock et al., 2019).

  It pushes the filters of each layer towards orthogonality without
  constraining their norms. Multiply by beta (1e-4 in BigGAN).

  Args:
    kernels: weight arrays; each is flattened to [fan_in, fan_out] (the last
      axis is the output) and its ``fan_out`` columns are the filters.

  Returns:
    Scalar, summed over the kernels.
  """
  total = jnp.zeros((), jnp.float32)
  for kernel in kernels:
    w = kernel.reshape(-1, kernel.shape[-1]).astype(jnp.float32)
    gram = w.T @ w
    total += jnp.sum(jnp.square(gram * (1.0 - jnp.eye(gram.shape[0]))))
  return total


def classification_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax cross-entropy averaged over the batch (ACGAN's auxiliary classifier).

  Args:
    logits: [B, K].
    labels: int [B].
  """
  return optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), labels).mean()


def infogan_code_loss(q_outputs: jax.Array, categorical_sizes: Sequence[int],
                      categorical: Sequence[jax.Array], continuous: jax.Array | None,
                      continuous_weight: float = 1.0) -> jax.Array:
  """InfoGAN's negated mutual-information lower bound, up to the codes' entropy.

  ``L_I = -E[log Q(c | G(z, c))]``: softmax cross-entropy for each categorical
  code, and for the continuous codes a unit-variance Gaussian NLL without its
  constant, i.e. half the squared error summed over codes (the paper's
  fixed-variance factorised Gaussian).

  Args:
    q_outputs: [B, sum(categorical_sizes) + M] the Q head: each categorical
      code's logits in turn, then the M continuous means.
    categorical_sizes: K_i, the number of values of each categorical code.
    categorical: one int [B] array per categorical code.
    continuous: [B, M] continuous codes, or None when M = 0.
    continuous_weight: weight of the continuous term (lambda_cont).

  Returns:
    Scalar loss.
  """
  q_outputs = q_outputs.astype(jnp.float32)
  loss = jnp.zeros((), jnp.float32)
  start = 0
  for size, code in zip(categorical_sizes, categorical, strict=True):
    loss += classification_loss(q_outputs[:, start:start + size], code)
    start += size
  if continuous is not None:
    means = q_outputs[:, start:start + continuous.shape[-1]]
    loss += continuous_weight * 0.5 * jnp.mean(jnp.sum(jnp.square(continuous - means), -1))
  return loss


def gaussian_kl(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mean, exp(logvar)) || N(0, I)), summed over latent dimensions.

  Args:
    mean: [B, D] posterior means.
    logvar: [B, D] posterior log-variances.

  Returns:
    [B] the KL divergence of each example, in nats.
  """
  return 0.5 * jnp.sum(jnp.exp(logvar) + jnp.square(mean) - 1.0 - logvar, axis=-1)


def bernoulli_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Negative log-likelihood of targets under Bernoulli(sigmoid(logits)).

  Targets may be grey levels in [0, 1] rather than binary, as is usual for
  MNIST VAEs; the value is then the cross-entropy summed over pixels, which is
  not a normalised likelihood of grey-level images.

  Args:
    logits: [B, H, W, C] decoder logits.
    targets: [B, H, W, C] pixel intensities in [0, 1].

  Returns:
    [B] the negative log-likelihood of each image, in nats.
  """
  nll = optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32), targets)
  return nll.reshape(nll.shape[0], -1).sum(axis=-1)


def gaussian_nll(mean: jax.Array, log_scale: jax.Array, targets: jax.Array) -> jax.Array:
  """Negative log-likelihood of targets under N(mean, exp(log_scale)^2).

  Args:
    mean: [B, H, W, C] decoder means.
    log_scale: log standard deviation, broadcastable to ``mean`` (a learned
      scalar or per-pixel map).
    targets: [B, H, W, C] pixel values.

  Returns:
    [B] the negative log-likelihood of each image, in nats.
  """
  mean = mean.astype(jnp.float32)
  nll = (0.5 * jnp.square((targets - mean) * jnp.exp(-log_scale)) + log_scale
         + 0.5 * jnp.log(2.0 * jnp.pi))
  nll = jnp.broadcast_to(nll, mean.shape)
  return nll.reshape(nll.shape[0], -1).sum(axis=-1)
