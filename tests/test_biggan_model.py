"""BigGAN's networks: shapes, spectral-norm state, conditioning and size errors.

Shapes are checked with ``jax.eval_shape`` (no compilation); the tests that
run the networks share one tiny, compiled-once pair.
"""

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gen_jax.data import DatasetInfo
from gen_jax.models import biggan

RNG = jax.random.PRNGKey(0)
LATENT_DIM = 10

# (image_shape, generator kwargs, discriminator kwargs), with small widths.
SIZES = {
    "mnist": ((28, 28, 1),
              {"base_size": 7, "channels": (16, 16, 8), "attention_at": 14},
              {"channels": (8, 16, 16), "downsample": (True, True, False), "attention_at": 7}),
    "cifar10": ((32, 32, 3),
                {"base_size": 4, "channels": (16, 16, 16, 16), "attention_at": 16},
                {"channels": (16, 16, 16, 16), "downsample": (True, True, False, False)}),
    "celeb_a": ((64, 64, 3),
                {"base_size": 4, "channels": (32, 32, 16, 8, 8), "attention_at": 32},
                {"channels": (8, 8, 16, 32, 32), "downsample": (True, True, True, True, False),
                 "attention_at": 32}),
}


def build(shape, num_classes, generator, discriminator):
  config = ml_collections.ConfigDict(
      {"name": "biggan", "conditioning": "projection" if num_classes else "none",
       "generator": generator, "discriminator": discriminator})
  info = DatasetInfo(num_examples=10, image_shape=shape, num_classes=num_classes)
  networks = biggan.build(config, info, jnp.float32)
  return networks["generator"], networks["discriminator"]


def labels_or_none(num_classes, batch):
  return jnp.arange(batch) % num_classes if num_classes else None


@pytest.mark.parametrize("num_classes", [10, 0])
@pytest.mark.parametrize("size", list(SIZES))
def test_shapes(size, num_classes):
  shape, g_kwargs, d_kwargs = SIZES[size]
  g, d = build(shape, num_classes, g_kwargs, d_kwargs)
  z = jax.ShapeDtypeStruct((2, LATENT_DIM), jnp.float32)
  images = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
  labels = labels_or_none(num_classes, 2)
  g_vars = jax.eval_shape(lambda z: g.init(RNG, z, labels), z)
  assert ("shared_embedding" in g_vars["params"]) == bool(num_classes)
  assert "attention" in g_vars["params"]
  out = jax.eval_shape(lambda v, z: g.apply(v, z, labels, train=True, mutable=["batch_stats"]),
                       g_vars, z)
  assert out[0].shape == (2, *shape)
  d_vars = jax.eval_shape(lambda x: d.init(RNG, x, labels), images)
  assert ("projection" in d_vars["params"]) == bool(num_classes)
  assert ("attention" in d_vars["params"]) == ("attention_at" in d_kwargs)
  assert jax.eval_shape(lambda v, x: d.apply(v, x, labels), d_vars, images).shape == (2, 1)


@pytest.fixture(scope="module")
def tiny():
  """A conditional 8x8 generator (base 4, one up-block) and discriminator, initialised."""
  g, d = build((8, 8, 1), 10, {"base_size": 4, "channels": (8, 8), "embedding_dim": 4},
               {"channels": (8, 8), "downsample": (True, False)})
  z = jax.random.normal(jax.random.PRNGKey(1), (4, LATENT_DIM))
  labels = jnp.array([0, 1, 2, 3])
  g_vars = jax.jit(g.init)(RNG, z, labels)
  images = jax.random.uniform(jax.random.PRNGKey(2), (4, 8, 8, 1), minval=-1, maxval=1)
  d_vars = jax.jit(d.init)(RNG, images, labels)
  generate = jax.jit(lambda v, z, y: g.apply(v, z, y))
  discriminate = jax.jit(lambda v, x, y: d.apply(v, x, y))
  return dict(g=g, g_vars=g_vars, d_vars=d_vars, z=z, labels=labels, images=images,
              generate=generate, discriminate=discriminate)


def test_output_range_and_deterministic_eval(tiny):
  first = tiny["generate"](tiny["g_vars"], tiny["z"], tiny["labels"])
  second = tiny["generate"](tiny["g_vars"], tiny["z"], tiny["labels"])
  assert first.shape == (4, 8, 8, 1)
  assert jnp.all(jnp.abs(first) <= 1)
  np.testing.assert_array_equal(first, second)
  logits = tiny["discriminate"](tiny["d_vars"], tiny["images"], tiny["labels"])
  assert logits.shape == (4, 1)
  np.testing.assert_array_equal(
      logits, tiny["discriminate"](tiny["d_vars"], tiny["images"], tiny["labels"]))


def test_batch_stats_hold_spectral_norm_and_batch_norm_state(tiny):
  flat = flax.traverse_util.flatten_dict(tiny["g_vars"]["batch_stats"], sep="/")
  assert any(k.endswith("projection/kernel/u") for k in flat)
  assert any(k.endswith("conv_0/kernel/sigma") for k in flat)
  assert "output_norm/mean" in flat and "block_0/norm_0/BatchNorm_0/var" in flat
  _, updates = jax.jit(lambda v: tiny["g"].apply(v, tiny["z"], tiny["labels"], train=True,
                                                 mutable=["batch_stats"]))(tiny["g_vars"])
  new = flax.traverse_util.flatten_dict(updates["batch_stats"], sep="/")
  u_keys = [k for k in flat if k.endswith("/u")]
  assert u_keys and all(not jnp.allclose(flat[k], new[k]) for k in u_keys)
  assert not jnp.allclose(flat["output_norm/mean"], new["output_norm/mean"])


def test_labels_change_both_networks(tiny):
  other = (tiny["labels"] + 1) % 10
  assert not jnp.allclose(tiny["generate"](tiny["g_vars"], tiny["z"], tiny["labels"]),
                          tiny["generate"](tiny["g_vars"], tiny["z"], other))
  assert not jnp.allclose(tiny["discriminate"](tiny["d_vars"], tiny["images"], tiny["labels"]),
                          tiny["discriminate"](tiny["d_vars"], tiny["images"], other))


def test_last_latent_chunk_conditions_the_last_block(tiny):
  # Two chunks of 5: the projection's, then the up-block's.
  z = tiny["z"].at[:, 5:].set(jax.random.normal(jax.random.PRNGKey(3), (4, 5)))
  assert not jnp.allclose(tiny["generate"](tiny["g_vars"], tiny["z"], tiny["labels"]),
                          tiny["generate"](tiny["g_vars"], z, tiny["labels"]))


def test_uneven_latent_split():
  g = biggan.BigGANGenerator((16, 16, 1), base_size=4, channels=(8, 8, 8))
  # 7 entries in 3 chunks: 3, 2, 2 (the projection's chunk takes the extra one).
  variables = jax.eval_shape(lambda: g.init(RNG, jnp.zeros((1, 7))))
  assert variables["params"]["projection"]["kernel"].shape == (3, 4 * 4 * 8)
  assert variables["params"]["block_1"]["norm_1"]["gain"]["kernel"].shape == (2, 8)
  with pytest.raises(ValueError, match="latent_dim 2 is too small to split into 3 chunks"):
    g.init(RNG, jnp.zeros((1, 2)))


def test_conditional_networks_require_labels():
  g, d = build((8, 8, 1), 10, {"channels": (8, 8)}, {"channels": (8,), "downsample": (True,)})
  with pytest.raises(ValueError, match="class-conditional .*: pass labels"):
    jax.eval_shape(lambda: g.init(RNG, jnp.zeros((1, 4))))
  with pytest.raises(ValueError, match="class-conditional .*: pass labels"):
    jax.eval_shape(lambda: d.init(RNG, jnp.zeros((1, 8, 8, 1))))


def test_generator_size_errors_name_fix():
  with pytest.raises(ValueError, match=r"makes 16x16 images \(base_size 4 doubled by 2 up-blocks"
                     r".* data is 28x28: set image_size to 16"):
    build((28, 28, 1), 10, {"base_size": 4, "channels": (8, 8, 8)}, {})
  with pytest.raises(ValueError, match="at least two widths"):
    build((4, 4, 1), 10, {"base_size": 4, "channels": (8,)}, {})
  with pytest.raises(ValueError, match=r"attention_at=7 is not the output side of any of the "
                     r"generator's up-blocks \(14, 28\): set model.generator.attention_at"):
    build((28, 28, 1), 10, {"base_size": 7, "channels": (8, 8, 8), "attention_at": 7}, {})


def test_discriminator_size_errors_name_fix():
  with pytest.raises(ValueError, match="downsample has 2 entries .* one bool per block"):
    build((8, 8, 1), 0, {"channels": (8, 8)}, {"channels": (8, 8, 8), "downsample": (True, True)})
  images = jnp.zeros((1, 28, 28, 1))
  _, d = build((28, 28, 1), 0, {"base_size": 7, "channels": (8, 8, 8)},
               {"channels": (8, 8, 8), "downsample": (True, True, True)})
  with pytest.raises(ValueError, match=r"block 2 cannot halve a 7x7 map: set "
                     r"model.discriminator.downsample\[2\] to False"):
    jax.eval_shape(lambda: d.init(RNG, images))
  _, d = build((28, 28, 1), 0, {"base_size": 7, "channels": (8, 8, 8)},
               {"channels": (8, 8, 8), "downsample": (True, True, False), "attention_at": 28})
  with pytest.raises(ValueError, match=r"attention_at=28 is not the output side of any of the "
                     r"discriminator's blocks \(14, 7, 7\): set model.discriminator.attention_at"):
    jax.eval_shape(lambda: d.init(RNG, images))
