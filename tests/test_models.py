"""Shapes of every model's networks, and the errors for sizes they cannot make."""

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from conftest import EXPERIMENTS
from gen_jax import configs, models
from gen_jax.data import DatasetInfo
from test_train import CHANNELS, FOUNDATION_MODELS, SMOKE_CONFIGS


def info(shape):
  return DatasetInfo(num_examples=10, image_shape=shape, num_classes=10)


@pytest.mark.parametrize("name", [c for c in SMOKE_CONFIGS
                                  if c.split("/")[0] in FOUNDATION_MODELS])
def test_full_size_networks_shapes(name):
  """The full (not smoke) networks of every config, with shapes only (eval_shape).

  The GAN family's are in tests/test_adversarial.py (they need their method's latents).
  """
  config = configs.load(str(EXPERIMENTS / name))
  shape = (config.image_size, config.image_size, CHANNELS[config.dataset])
  networks = models.build(config.model, info(shape))
  rng = jax.random.PRNGKey(0)
  images = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
  if config.model.name == "classifier":
    classifier = networks["classifier"]
    variables = jax.eval_shape(classifier.init, rng, images)
    logits, features = jax.eval_shape(
        lambda v, x: classifier.apply(v, x, return_features=True), variables, images)
    assert logits.shape == (2, config.model.num_classes)
    assert features.shape == (2, config.model.embedding_dim)
  elif config.model.name == "vae":
    vae = networks["vae"]
    variables = jax.eval_shape(lambda: vae.init({"params": rng, "latent": rng}, jnp.zeros(
        (2, *shape))))
    out = jax.eval_shape(lambda v, x: vae.apply(v, x, rngs={"latent": rng}), variables, images)
    assert out["decoded"].shape == (2, *shape)
    assert out["mean"].shape == (2, config.model.latent_dim)
    z = jax.ShapeDtypeStruct((5, config.model.latent_dim), jnp.float32)
    assert jax.eval_shape(lambda v, z: vae.apply(v, z, method=vae.sample_mean), variables,
                          z).shape == (5, *shape)
  else:
    g, d = networks["generator"], networks["discriminator"]
    z = jax.ShapeDtypeStruct((2, config.model.latent_dim), jnp.float32)
    g_vars = jax.eval_shape(lambda z: g.init(rng, z), z)
    assert jax.eval_shape(lambda v, z: g.apply(v, z), g_vars, z).shape == (2, *shape)
    d_vars = jax.eval_shape(lambda x: d.init(rng, x), images)
    assert jax.eval_shape(lambda v, x: d.apply(v, x), d_vars, images).shape == (2, 1)


def test_dcgan_tutorial_architecture():
  """experiments/dcgan/mnist.py is the TensorFlow tutorial's network, layer by layer."""
  config = configs.load(str(EXPERIMENTS / "dcgan/mnist.py"))
  networks = models.build(config.model, info((28, 28, 1)))
  g_params = jax.eval_shape(networks["generator"].init, jax.random.PRNGKey(0),
                            jnp.zeros((1, 100)))["params"]
  shapes = sorted(tuple(x.shape) for x in jax.tree.leaves(g_params))
  assert shapes == sorted([(100, 7 * 7 * 256), (5, 5, 256, 128), (5, 5, 128, 64), (5, 5, 64, 1),
                           *[(n,) for n in (7 * 7 * 256, 128, 64) for _ in ("bias", "scale")]])
  d_params = jax.eval_shape(networks["discriminator"].init, jax.random.PRNGKey(0),
                            jnp.zeros((1, 28, 28, 1)))["params"]
  shapes = sorted(tuple(x.shape) for x in jax.tree.leaves(d_params))
  assert shapes == sorted([(5, 5, 1, 64), (64,), (5, 5, 64, 128), (128,), (7 * 7 * 128, 1), (1,)])


def test_generator_size_error_names_fix():
  config = configs.load(str(EXPERIMENTS / "dcgan/cifar10.py"))
  with pytest.raises(ValueError, match="makes 32x32 images .* data is 64x64: set image_size"):
    models.build(config.model, info((64, 64, 3)))


def test_unknown_names_list_valid_ones():
  with pytest.raises(ValueError,
                     match="unknown model 'stylegan9'; valid models: biggan, classifier, dcgan, gan, vae"):
    models.build(ml_collections.ConfigDict({"name": "stylegan9"}), info((28, 28, 1)))
  config = ml_collections.ConfigDict({"name": "vae", "architecture": "rnn", "latent_dim": 2})
  with pytest.raises(ValueError, match="unknown VAE architecture 'rnn'; valid: mlp, conv"):
    models.build(config, info((28, 28, 1)))
