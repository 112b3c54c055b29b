"""The adversarial family on the shared trainer: shapes, critic steps, conditioning,
spectral-norm state, InfoGAN codes, truncation, sharding and checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import EXPERIMENTS, gen_jax, write_npz
from gen_jax import configs, data, methods, sample
from gen_jax.data import DatasetInfo
from gen_jax.train import trainer
from gen_jax.train.checkpoint import Checkpoints, abstract_with_sharding
from test_train import leaves_equal, smoke_config

MODELS = ("wgan", "wgan_gp", "lsgan", "hinge_gan", "cgan", "cgan_projection", "acgan",
          "infogan", "sngan", "sagan", "biggan")
SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3),
          "celeb_a": (64, 64, 3)}
CONFIGS = sorted(f"{m}/{p.stem}" for m in MODELS for p in (EXPERIMENTS / m).glob("*.py"))


def test_every_model_has_its_configs():
  for model in MODELS:
    assert {f"{model}/{d}" for d in ("mnist", "fashion_mnist", "cifar10")} <= set(CONFIGS)
  assert {"sagan/celeb_a", "biggan/celeb_a"} <= set(CONFIGS)


def build(name: str, arg: str | None = None):
  """The method of ``experiments/NAME.py`` (full size unless ``arg``) and its abstract state."""
  config = configs.load(f"{EXPERIMENTS / name}.py" + (f":{arg}" if arg else ""))
  shape = SHAPES[config.dataset]
  info = DatasetInfo(num_examples=100, image_shape=shape,
                     num_classes=0 if config.dataset == "celeb_a" else 10)
  return config, methods.build(config, info)


@pytest.mark.parametrize("name", CONFIGS)
def test_shapes(name):
  """Full-size networks, abstractly: images of the data's shape, one logit (+ heads) each."""
  config, method = build(name)
  state = jax.eval_shape(method.init, jax.random.PRNGKey(0))
  labels = jnp.zeros((3,), jnp.int32)
  images = jax.eval_shape(method.generate, jax.eval_shape(method.sampling_variables, state),
                          jax.random.PRNGKey(0), labels)
  assert images.shape == (3, *SHAPES[config.dataset])
  d_variables = {"params": state.params["discriminator"], **state.collections["discriminator"]}
  outputs = jax.eval_shape(
      lambda v, x: method.networks["discriminator"].apply(v, x, labels, train=False),
      d_variables, images)
  assert outputs.shape == (3, 1 + method.num_aux_classes + sum(method.categorical_sizes)
                           + method.num_continuous)


def test_critic_steps_update_the_critic_k_times_per_step(npz_factory):
  config = smoke_config("wgan_gp/mnist.py", npz_factory)
  method = methods.build(config, data.describe(configs.data_spec(config)))
  state = method.init(jax.random.PRNGKey(0))
  batch = {"image": jnp.zeros((config.batch_size, 28, 28, 1)),
           "label": jnp.zeros((config.batch_size,), jnp.int32)}
  state, metrics = jax.jit(method.train_step)(state, batch)
  # optax's Adam counts its updates: 5 for the critic, 1 for the generator.
  assert int(state.opt_state["discriminator"][0].count) == 5
  assert int(state.opt_state["generator"][0].count) == 1
  for key in ("wasserstein_estimate", "d_grad_norm", "gradient_penalty", "g_loss"):
    assert np.isfinite(metrics[key]), key


def test_weight_clipping_bounds_the_critic(npz_factory, tmp_path):
  config = smoke_config("wgan/mnist.py", npz_factory)
  config.num_train_steps = 2
  state = trainer.train(config, tmp_path)
  critic = jax.tree.leaves(jax.device_get(state.params["discriminator"]))
  assert max(np.abs(p).max() for p in critic) <= 0.01 + 1e-7


def test_bad_critic_settings_fail_clearly(npz_factory):
  config = smoke_config("wgan_gp/mnist.py", npz_factory)
  info = data.describe(configs.data_spec(config))
  config.batch_size = 42
  with pytest.raises(ValueError, match="batch_size 42 must be a multiple of method.critic_steps 5"):
    methods.build(config, info)
  config = smoke_config("cgan/mnist.py", npz_factory)
  unlabelled = DatasetInfo(num_examples=10, image_shape=(28, 28, 1), num_classes=0)
  with pytest.raises(ValueError, match="needs a labelled dataset"):
    methods.build(config, unlabelled)


@pytest.mark.parametrize("classify_generated", [True, False])
def test_acgan_classifier_learns_from_generated_images_only_if_asked(classify_generated):
  config, _ = build("acgan/mnist", "smoke")
  config.method.classify_generated = classify_generated
  method = methods.build(config, DatasetInfo(num_examples=100, image_shape=(28, 28, 1),
                                             num_classes=10))
  state = method.init(jax.random.PRNGKey(0))
  real = jax.random.uniform(jax.random.PRNGKey(1), (8, 28, 28, 1), minval=-1)
  latents = method.sample_latents(jax.random.PRNGKey(2), jnp.arange(8) % 10)
  update = jax.jit(method._discriminator_update)
  aux_losses = [update(state, real, latents, fake, jax.random.PRNGKey(3))[1]["d_aux_loss"]
                for fake in (jnp.zeros_like(real), real[::-1])]
  # The class loss sees the generated batch only when the classifier learns from it.
  assert np.isclose(*aux_losses, rtol=1e-6) != classify_generated


@pytest.mark.parametrize("name", ["cgan", "cgan_projection", "acgan", "biggan"])
def test_conditional_generators_use_the_labels(name):
  _, method = build(f"{name}/mnist", "smoke")
  assert method.conditional
  variables = method.sampling_variables(method.init(jax.random.PRNGKey(0)))
  rng = jax.random.PRNGKey(1)
  zeros, ones = jnp.zeros((4,), jnp.int32), jnp.ones((4,), jnp.int32)
  assert not np.allclose(method.generate(variables, rng, zeros),
                         method.generate(variables, rng, ones))
  paths = " ".join(jax.tree_util.keystr(path) for path, _ in
                   jax.tree_util.tree_leaves_with_path(variables["params"]))
  # Class-conditional batch norm: BigGAN's and the projection cGAN's generators.
  assert ("ConditionalBatchNorm" in paths or "norm_0" in paths) == (
      name in ("cgan_projection", "biggan"))


def test_spectral_norm_state_is_trained_and_checkpointed(npz_factory, tmp_path):
  config = smoke_config("sngan/mnist.py", npz_factory)
  config.num_train_steps = 2
  state = trainer.train(config, tmp_path / "run")
  method = methods.build(config, data.describe(configs.data_spec(config)))
  u_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(
      state.collections["discriminator"]) if jax.tree_util.keystr(p).endswith("/u']")]
  assert len(u_paths) == 3  # Two convolutions and the dense head.
  assert not leaves_equal(state.collections["discriminator"],
                          jax.jit(method.init)(jax.random.PRNGKey(config.seed)).collections[
                              "discriminator"])
  abstract = jax.eval_shape(method.init, jax.random.PRNGKey(0))
  restored = Checkpoints(tmp_path / "run", read_only=True).restore(
      2, abstract_with_sharding(abstract, jax.sharding.SingleDeviceSharding(jax.devices()[0])))
  assert leaves_equal(restored.collections, state.collections)


@pytest.mark.parametrize("name", ["wgan_gp/mnist.py", "biggan/mnist.py"])
def test_resume_is_exact(name, npz_factory, tmp_path):
  """Critic steps, spectral norm and conditional batch norm resume bitwise, on 8 devices."""
  config = smoke_config(name, npz_factory)
  config.num_train_steps = 4
  uninterrupted = trainer.train(config, tmp_path / "a")
  config.num_train_steps = 2
  trainer.train(config, tmp_path / "b")
  config.num_train_steps = 4
  resumed = trainer.train(config, tmp_path / "b")
  assert leaves_equal(uninterrupted, resumed)


def test_truncation_bounds_the_latents():
  _, method = build("biggan/mnist", "smoke")
  latents = method.sample_latents(jax.random.PRNGKey(0), jnp.zeros((512,), jnp.int32), 0.5)
  assert float(jnp.abs(latents.z).max()) <= 0.5
  assert float(jnp.abs(method.sample_latents(
      jax.random.PRNGKey(0), jnp.zeros((512,), jnp.int32)).z).max()) > 2.0


def test_uniform_latent_prior_and_its_truncation():
  config, method = build("infogan/mnist", "smoke")
  assert config.method.latent_prior == "uniform"
  labels = jnp.zeros((512,), jnp.int32)
  z = method.sample_latents(jax.random.PRNGKey(0), labels).z[:, :method.latent_dim]
  assert 0.95 < float(jnp.abs(z).max()) <= 1.0
  assert abs(float(z.mean())) < 0.05
  z = method.sample_latents(jax.random.PRNGKey(0), labels, 0.5).z[:, :method.latent_dim]
  assert 0.45 < float(jnp.abs(z).max()) <= 0.5
  config.method.latent_prior = "laplace"
  with pytest.raises(ValueError, match="unknown latent prior 'laplace'; valid latent "
                                       "priors: normal, uniform"):
    methods.build(config, DatasetInfo(num_examples=100, image_shape=(28, 28, 1),
                                      num_classes=10))


def test_infogan_has_the_papers_fully_connected_layers():
  """1024 units between the codes and the first feature map, and between the
  discriminator's trunk and its heads (Chen et al., 2016, MNIST)."""
  _, method = build("infogan/mnist")
  params = jax.eval_shape(method.init, jax.random.PRNGKey(0)).params
  g_kernels = [p.shape for p in jax.tree.leaves(params["generator"]) if p.ndim == 2]
  d_kernels = [p.shape for p in jax.tree.leaves(params["discriminator"]) if p.ndim == 2]
  assert (62 + 10 + 2, 1024) in g_kernels
  assert (7 * 7 * 128, 1024) in d_kernels and (1024, 1) in d_kernels


def test_infogan_vary_code_holds_the_other_latents():
  _, method = build("infogan/mnist", "smoke")
  variables = method.sampling_variables(method.init(jax.random.PRNGKey(0)))
  assert method.code_names() == ["categorical0", "continuous0", "continuous1"]
  grid = method.vary_code(variables, jax.random.PRNGKey(0), "categorical0", num_rows=3)
  assert grid.shape == (30, 28, 28, 1)
  rows = np.asarray(grid).reshape(3, 10, -1)
  assert not np.allclose(rows[:, 0], rows[:, 1])  # The code changes the image ...
  assert not np.allclose(rows[0], rows[1])        # ... and each row has its own z.
  assert method.vary_code(variables, jax.random.PRNGKey(0), "continuous1", 2, 5).shape[0] == 10
  with pytest.raises(ValueError, match="unknown code 'categorical3'; this model's codes: "
                                       "categorical0, continuous0, continuous1"):
    method.vary_code(variables, jax.random.PRNGKey(0), "categorical3", 2)


def test_sample_command_truncation_and_vary_code(tmp_path):
  dataset = write_npz(tmp_path / "d.npz", (28, 28, 1))
  for model in ("infogan", "biggan"):
    gen_jax("train", f"--config=experiments/{model}/mnist.py:smoke",
            f"--workdir={tmp_path / model}", f"--config.dataset={dataset}")
  gen_jax("sample", f"--workdir={tmp_path / 'infogan'}", "--vary_code=continuous0", "--num=4",
          f"--out={tmp_path / 'v.npz'}", f"--grid={tmp_path / 'v.png'}")
  with np.load(tmp_path / "v.npz") as f:
    assert f["images"].shape == (40, 28, 28, 1) and int(f["num_values"]) == 10
  assert (tmp_path / "v.png").is_file()
  gen_jax("sample", f"--workdir={tmp_path / 'biggan'}", "--truncation=0.5", "--num=20",
          f"--out={tmp_path / 't.npz'}")
  with np.load(tmp_path / "t.npz") as f:
    assert f["images"].shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(f["labels"], np.arange(20) % 10)
  bad = gen_jax("sample", f"--workdir={tmp_path / 'biggan'}", "--vary_code=categorical0",
                f"--out={tmp_path / 'x.npz'}", check=False)
  assert bad.returncode and "unknown code 'categorical0'" in bad.stderr
  truncated = sample.sample(tmp_path / "biggan", 8, truncation=0.0)
  assert truncated["images"].dtype == np.uint8
