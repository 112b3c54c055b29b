"""The training system: every smoke config, sharding, checkpoints and exact resume."""

import jax
import ml_collections
import numpy as np
import pytest

from conftest import EXPERIMENTS
from gen_jax import configs, data, methods
from gen_jax.train import parallel, trainer
from gen_jax.train.checkpoint import Checkpoints, abstract_with_sharding

CHANNELS = {"mnist": 1, "fashion_mnist": 1, "digits": 1, "cifar10": 3, "celeb_a": 3}
FOUNDATION_MODELS = ("gan", "dcgan", "vae", "classifier")


def repeats_a_tested_recipe(path) -> bool:
  """A GAN variant's Fashion-MNIST or CIFAR-10 config: its MNIST recipe on data of the
  same shape, or on the DCGAN CIFAR-10 networks, both of which train here.
  tests/test_adversarial.py builds every one of them at full size."""
  text = path.read_text()
  return path.parent.name not in FOUNDATION_MODELS and (
      "sibling_config(__file__" in text or 'gan_variant(__file__, "cifar10"' in text)


SMOKE_CONFIGS = sorted(str(p.relative_to(EXPERIMENTS)) for p in EXPERIMENTS.glob("*/*.py")
                       if not repeats_a_tested_recipe(p))

def smoke_config(name: str, npz_factory, arg: str = "smoke"):
  """The smoke config of ``experiments/NAME`` on random data of its shape."""
  config = configs.load(f"{EXPERIMENTS / name}:{arg}")
  shape = (config.image_size, config.image_size, CHANNELS[config.dataset])
  config.dataset = npz_factory(shape)
  config.crop = None
  return config


def leaves_equal(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in
             zip(jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))))


def test_smoke_configs_found():
  assert {"dcgan/mnist.py", "gan/mnist.py", "vae/mnist.py", "dcgan/celeb_a.py",
          "classifier/mnist.py", "classifier/cifar10.py"} <= set(SMOKE_CONFIGS)


@pytest.mark.parametrize("name", SMOKE_CONFIGS)
def test_smoke_config_trains(name, npz_factory, tmp_path):
  config = smoke_config(name, npz_factory)
  config.num_train_steps = 2
  state = trainer.train(config, tmp_path)
  assert int(state.step) == 2
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.params)))
  assert Checkpoints(tmp_path, read_only=True).all_steps() == [2]
  generative = methods.METHODS[config.method.name].generative
  assert (tmp_path / "samples_00000002.png").is_file() == generative
  assert (tmp_path / "config.json").is_file()
  # Checkpoint round trip: everything in the state, including batch-norm and
  # spectral-norm statistics, comes back bitwise.
  method = methods.build(config, data.describe(configs.data_spec(config)))
  abstract = jax.eval_shape(method.init, jax.random.PRNGKey(0))
  restored = Checkpoints(tmp_path, read_only=True).restore(
      2, abstract_with_sharding(abstract, jax.sharding.SingleDeviceSharding(jax.devices()[0])))
  assert leaves_equal(restored, state)


@pytest.mark.parametrize("name", ["dcgan/mnist.py", "vae/mnist.py:conv,smoke",
                                  "wgan_gp/mnist.py", "biggan/mnist.py"])
def test_eight_devices_match_one(name, npz_factory):
  """The same global batch on a mesh of 8 devices and of 1 gives the same step."""
  path, _, arg = name.partition(":")
  config = smoke_config(path, npz_factory, arg or "smoke")
  # Adam scales float noise up to full-size updates (a gradient that is zero up to
  # rounding, e.g. a bias before batch norm, moves by +-lr either way), so the
  # sharded computation is compared under SGD.
  for network in config.optimizers:
    config.optimizers[network] = ml_collections.ConfigDict(
        {"name": "sgd", "learning_rate": 0.01})
  info = data.describe(configs.data_spec(config))
  method = methods.build(config, info)
  batch = next(data.train_batches(configs.data_spec(config), global_batch_size=config.batch_size,
                                  seed=0,
                                  start_step=0, process_index=0, process_count=1))
  assert len(jax.devices()) == 8
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.make_mesh(devices)
    state = jax.jit(method.init, out_shardings=parallel.replicated(mesh))(
        jax.random.PRNGKey(0))
    sharding = jax.tree.map(lambda _: parallel.replicated(mesh), state)
    step = trainer.jit_train_step(method, mesh, sharding)
    for _ in range(2):
      state, metrics = step(state, parallel.global_batch(batch, mesh))
    results.append(jax.device_get((state.params, state.collections, metrics)))
  for one, eight in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])):
    np.testing.assert_allclose(one, eight, rtol=1e-4, atol=1e-5)


def test_checkpoint_round_trip(npz_factory, tmp_path):
  config = smoke_config("dcgan/mnist.py", npz_factory)
  config.num_train_steps = 2
  state = trainer.train(config, tmp_path / "run")
  method = methods.build(config, data.describe(configs.data_spec(config)))
  checkpoints = Checkpoints(tmp_path / "copy")
  checkpoints.save(7, state, config, {"num_examples": 1})
  checkpoints.close()
  abstract = jax.eval_shape(method.init, jax.random.PRNGKey(0))
  restored = Checkpoints(tmp_path / "copy", read_only=True).restore(
      7, abstract_with_sharding(abstract, jax.sharding.SingleDeviceSharding(jax.devices()[0])))
  assert jax.tree.structure(restored) == jax.tree.structure(state)
  assert leaves_equal(restored, state)
  assert state.ema_params and state.opt_state["generator"]


@pytest.mark.parametrize("name", ["dcgan/mnist.py", "vae/mnist.py"])
def test_resume_is_exact(name, npz_factory, tmp_path):
  """2k steps in one go equal k steps, a stop, and k more after resuming."""
  config = smoke_config(name, npz_factory)
  config.num_train_steps = 6
  config.checkpoint_every_steps = 3
  uninterrupted = trainer.train(config, tmp_path / "a")
  config.num_train_steps = 3
  trainer.train(config, tmp_path / "b")
  config.num_train_steps = 6
  resumed = trainer.train(config, tmp_path / "b")
  assert int(resumed.step) == 6
  assert leaves_equal(uninterrupted, resumed)


def test_refuses_checkpoints_of_another_model(npz_factory, tmp_path):
  config = smoke_config("dcgan/mnist.py", npz_factory)
  trainer.train(config, tmp_path)
  other = smoke_config("dcgan/mnist.py", npz_factory)
  other.model.generator.features = (32, 8, 4)
  other.num_train_steps = 8
  with pytest.raises(ValueError, match="different model: config.model"):
    trainer.train(other, tmp_path)
  assert Checkpoints(tmp_path, read_only=True).all_steps() == [2, 4]


def test_errors_before_compiling(npz_factory, tmp_path):
  config = smoke_config("dcgan/mnist.py", npz_factory)
  config.batch_size = 12
  with pytest.raises(ValueError, match="multiple of the number of devices"):
    trainer.train(config, tmp_path)
  config = smoke_config("dcgan/mnist.py", npz_factory)
  config.model.name = "dcgan_typo"
  with pytest.raises(ValueError,
                     match="unknown model 'dcgan_typo'; valid models: biggan, classifier, dcgan, gan, vae"):
    trainer.train(config, tmp_path)
  config = smoke_config("dcgan/mnist.py", npz_factory)
  config.method.name = "nope"
  with pytest.raises(ValueError, match="unknown method 'nope'; valid methods: classifier, gan, vae"):
    trainer.train(config, tmp_path)
  config = smoke_config("dcgan/mnist.py", npz_factory)
  config.image_size = 32
  config.dataset = npz_factory((32, 32, 1))
  with pytest.raises(ValueError, match="makes 28x28 images .* but the data is 32x32"):
    trainer.train(config, tmp_path)
  config = smoke_config("dcgan/mnist.py", npz_factory)
  config.optimizers.generator.name = "adamm"
  with pytest.raises(ValueError, match="unknown optimizer 'adamm'; valid optimizers: adam,"):
    trainer.train(config, tmp_path)
  assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").iterdir())
