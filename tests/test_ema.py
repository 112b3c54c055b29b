"""The EMA of the sampling network: debiased, and sampled with statistics of its own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import configs, data, methods
from gen_jax.train.state import ema_update
from test_train import smoke_config


def numpy_debiased_ema(iterates: np.ndarray, decay: float) -> np.ndarray:
  """sum_i (1 - d) d**(t - i) p_i / (1 - d**t) over the t iterates p_1 ... p_t."""
  t = len(iterates)
  weights = (1 - decay) * decay ** np.arange(t - 1, -1, -1, dtype=np.float64)
  return np.tensordot(weights, iterates, axes=1) / (1 - decay**t)


@pytest.mark.parametrize("decay", [0.9, 0.999])
def test_ema_update_is_the_debiased_average_of_the_iterates(decay):
  iterates = np.random.default_rng(0).normal(size=(50, 3, 4)).astype(np.float32)
  update = jax.jit(ema_update)
  # Whatever the average starts at (the initial parameters, say), it is not in the result.
  for start in (np.zeros((3, 4), np.float32), np.full((3, 4), 1e3, np.float32)):
    average = jnp.asarray(start)
    for count, params in enumerate(iterates, start=1):
      average = update(average, params, decay, jnp.int32(count))
      np.testing.assert_allclose(average, numpy_debiased_ema(iterates[:count], decay),
                                 rtol=2e-4, atol=2e-5)


def smoke_method(npz_factory, ema_decay: float = 0.99):
  config = smoke_config("dcgan/mnist.py", npz_factory)
  config.ema_decay = ema_decay
  return config, methods.build(config, data.describe(configs.data_spec(config)))


def test_the_first_step_copies_the_trained_generator_into_its_ema(npz_factory):
  config, method = smoke_method(npz_factory)
  state = method.init(jax.random.PRNGKey(0))
  batch = {"image": jnp.zeros((config.batch_size, 28, 28, 1)),
           "label": jnp.zeros((config.batch_size,), jnp.int32)}
  initial = state.params["generator"]
  state, _ = jax.jit(method.train_step)(state, batch)
  for ema, trained, init in zip(*(jax.tree.leaves(t) for t in (
      state.ema_params["generator"], state.params["generator"], initial))):
    np.testing.assert_array_equal(ema, trained)
    assert not np.array_equal(trained, init)


def first_batch_norm(collections):
  """``(mean, var)`` of the generator's first batch norm (after its projection)."""
  stats = collections["batch_stats"]["BatchNorm_0"]
  return np.asarray(stats["mean"]), np.asarray(stats["var"])


def test_ema_weights_are_sampled_with_statistics_measured_for_them(npz_factory):
  """The generator's projection is z @ W (no bias) with z ~ N(0, I), so the first batch
  norm's variances are the column sums of W**2. An EMA whose W is three times the trained
  one must be normalised with variances nine times the trained network's."""
  _, method = smoke_method(npz_factory)
  state = method.init(jax.random.PRNGKey(0))
  params = state.params["generator"]
  ema = {**params, "Dense_0": {"kernel": 3 * params["Dense_0"]["kernel"]}}
  state = state.replace(ema_params={"generator": ema})

  mean, var = first_batch_norm(method.sampling_variables(state))
  expected_var = np.sum(np.asarray(ema["Dense_0"]["kernel"]) ** 2, axis=0)
  # 64 batches of 64 latents, the newest weighing most: a few per cent of sampling noise.
  np.testing.assert_allclose(np.mean(var / expected_var), 1.0, atol=0.05)
  assert np.abs(mean).mean() < 0.1 * np.sqrt(expected_var).mean()
  # The trained network's statistics (here the initial ones, var 1) stay its own.
  raw_mean, raw_var = first_batch_norm(method.sampling_variables(state, ema=False))
  np.testing.assert_array_equal(raw_var, first_batch_norm(state.collections["generator"])[1])
  assert np.mean(raw_var / expected_var) < 0.5


def test_without_an_ema_the_trained_network_is_sampled_as_it_is(npz_factory):
  _, method = smoke_method(npz_factory, ema_decay=0.0)
  state = method.init(jax.random.PRNGKey(0))
  variables = method.sampling_variables(state)
  assert variables["params"] is state.params["generator"]
  assert variables["batch_stats"] is state.collections["generator"]["batch_stats"]
