"""Losses, jitted, against numpy references."""

import jax
import numpy as np
import pytest

from gen_jax import losses


def np_sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture
def logits():
  rng = np.random.default_rng(0)
  return rng.normal(size=(16, 1)).astype(np.float32) * 3, rng.normal(size=(16, 1)).astype(
      np.float32) * 3


def test_gan_discriminator_loss(logits):
  real, fake = logits
  expected = -np.mean(np.log(np_sigmoid(real))) - np.mean(np.log(1 - np_sigmoid(fake)))
  np.testing.assert_allclose(jax.jit(losses.gan_discriminator_loss)(real, fake), expected,
                             rtol=1e-5)


def test_generator_losses(logits):
  _, fake = logits
  np.testing.assert_allclose(jax.jit(losses.non_saturating_generator_loss)(fake),
                             -np.mean(np.log(np_sigmoid(fake))), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(losses.minimax_generator_loss)(fake),
                             np.mean(np.log(1 - np_sigmoid(fake))), rtol=1e-5)


def test_losses_are_stable_for_large_logits():
  big = np.array([[80.0], [-80.0]], np.float32)
  for value in (losses.gan_discriminator_loss(big, big), losses.non_saturating_generator_loss(big),
                losses.minimax_generator_loss(big)):
    assert np.isfinite(value)


def test_gaussian_kl():
  rng = np.random.default_rng(1)
  mean, logvar = rng.normal(size=(2, 4, 3))
  var = np.exp(logvar)
  expected = 0.5 * np.sum(var + mean**2 - 1 - logvar, axis=-1)
  np.testing.assert_allclose(jax.jit(losses.gaussian_kl)(mean, logvar), expected, rtol=1e-5)
  np.testing.assert_allclose(losses.gaussian_kl(np.zeros((2, 3)), np.zeros((2, 3))), 0.0)


def test_bernoulli_nll():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(3, 4, 4, 1)).astype(np.float32)
  targets = rng.uniform(size=(3, 4, 4, 1)).astype(np.float32)
  p = np_sigmoid(logits)
  expected = -(targets * np.log(p) + (1 - targets) * np.log(1 - p)).reshape(3, -1).sum(-1)
  np.testing.assert_allclose(jax.jit(losses.bernoulli_nll)(logits, targets), expected,
                             rtol=1e-5)


def test_gaussian_nll():
  rng = np.random.default_rng(3)
  mean = rng.normal(size=(2, 3, 3, 3)).astype(np.float32)
  targets = rng.normal(size=(2, 3, 3, 3)).astype(np.float32)
  log_scale = np.float32(-0.7)
  sigma = np.exp(log_scale)
  density = np.exp(-0.5 * ((targets - mean) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
  expected = -np.log(density).reshape(2, -1).sum(-1)
  np.testing.assert_allclose(jax.jit(losses.gaussian_nll)(mean, log_scale, targets), expected,
                             rtol=1e-4)


def test_wasserstein_least_squares_and_hinge_losses(logits):
  real, fake = logits
  cases = {
      "wasserstein": (np.mean(fake) - np.mean(real), -np.mean(fake)),
      "least_squares": (0.5 * (np.mean((real - 1) ** 2) + np.mean(fake ** 2)),
                        0.5 * np.mean((fake - 1) ** 2)),
      "hinge": (np.mean(np.maximum(0, 1 - real)) + np.mean(np.maximum(0, 1 + fake)),
                -np.mean(fake)),
  }
  for name, (d_expected, g_expected) in cases.items():
    loss = losses.ADVERSARIAL_LOSSES[name]
    np.testing.assert_allclose(jax.jit(loss.discriminator)(real, fake), d_expected, rtol=1e-5,
                               err_msg=name)
    np.testing.assert_allclose(jax.jit(loss.generator)(fake), g_expected, rtol=1e-5,
                               err_msg=name)


def test_clip_weights():
  params = {"a": np.array([-0.5, 0.005, 0.2]), "b": {"c": np.array([[0.01, -0.02]])}}
  clipped = jax.jit(losses.clip_weights, static_argnums=1)(params, 0.01)
  np.testing.assert_allclose(clipped["a"], [-0.01, 0.005, 0.01])
  np.testing.assert_allclose(clipped["b"]["c"], [[0.01, -0.01]])


def linear_critic(w):
  """f(x) = <w, x> per example: its input gradient is w everywhere."""
  return lambda x: (x.reshape(x.shape[0], -1) * w.reshape(1, -1)).sum(-1)


def test_gradient_penalty_and_r1_of_a_linear_critic():
  rng = np.random.default_rng(1)
  w = rng.normal(size=(4, 4, 1)).astype(np.float32)
  real = rng.normal(size=(8, 4, 4, 1)).astype(np.float32)
  fake = rng.normal(size=(8, 4, 4, 1)).astype(np.float32)
  norm = np.linalg.norm(w)
  # Hand-derived: the gradient is w at every interpolate, so the penalty is (|w| - 1)^2.
  gp = jax.jit(lambda r, f, k: losses.gradient_penalty(linear_critic(w), r, f, k))(
      real, fake, jax.random.PRNGKey(0))
  np.testing.assert_allclose(gp, (norm - 1.0) ** 2, rtol=1e-4)
  np.testing.assert_allclose(jax.jit(lambda r: losses.r1_penalty(linear_critic(w), r))(real),
                             norm ** 2, rtol=1e-4)


def test_gradient_penalty_uses_interpolates():
  """For f(x) = |x|^2 / 2 the gradient is x itself, so the penalty depends on where it is taken."""
  critic = lambda x: 0.5 * (x.reshape(x.shape[0], -1) ** 2).sum(-1)
  real = np.full((256, 2, 2, 1), 1.0, np.float32)
  fake = np.zeros((256, 2, 2, 1), np.float32)
  # x_hat = eps * 1 on 4 pixels: |grad| = 2 eps, so E[(2 eps - 1)^2] = 1/3 for eps ~ U[0, 1].
  gp = losses.gradient_penalty(critic, real, fake, jax.random.PRNGKey(0))
  np.testing.assert_allclose(gp, 1.0 / 3.0, atol=0.05)


def test_orthogonal_regularization_against_numpy():
  rng = np.random.default_rng(2)
  kernels = [rng.normal(size=(3, 3, 4, 5)).astype(np.float32),
             rng.normal(size=(6, 7)).astype(np.float32)]
  expected = 0.0
  for k in kernels:
    w = k.reshape(-1, k.shape[-1])
    gram = w.T @ w
    expected += np.sum((gram * (1 - np.eye(len(gram)))) ** 2)
  np.testing.assert_allclose(jax.jit(losses.orthogonal_regularization)(kernels), expected,
                             rtol=1e-4)
  q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
  assert float(losses.orthogonal_regularization([q.astype(np.float32)])) < 1e-8


def test_classification_and_infogan_code_losses():
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(6, 10)).astype(np.float32)
  labels = rng.integers(0, 10, 6)
  log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  ce = -np.mean(log_softmax[np.arange(6), labels])
  np.testing.assert_allclose(jax.jit(losses.classification_loss)(logits, labels), ce, rtol=1e-5)

  means = rng.normal(size=(6, 2)).astype(np.float32)
  continuous = rng.uniform(-1, 1, size=(6, 2)).astype(np.float32)
  q = np.concatenate([logits, means], -1)
  expected = ce + 0.5 * 0.5 * np.mean(np.sum((continuous - means) ** 2, -1))
  loss = jax.jit(lambda q, c, x: losses.infogan_code_loss(q, (10,), [c], x, 0.5))(
      q, labels, continuous)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
