"""The train state: one explicit pytree that holds everything a run needs to resume."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, as one pytree.

  Networks are named (``'generator'``, ``'discriminator'``, ``'vae'``, ... ; a
  CycleGAN has four), and every dict below is keyed by those names, so one
  state type serves every method.

  Attributes:
    step: int32 scalar, the number of train steps taken. It is also the
      input pipeline's position: the data order is a pure function of
      ``(seed, step)``, so nothing else is needed to resume it exactly.
    rng: the run's base PRNG key (``uint32[2]``). It never changes; every step
      uses ``jax.random.fold_in(rng, step)``, so resumed runs draw the same
      numbers as uninterrupted ones.
    params: network name -> parameters.
    collections: network name -> non-parameter variables (``batch_stats``,
      spectral-norm vectors, ...), possibly empty dicts.
    opt_state: network name -> optax state of that network's optimizer.
    ema_params: network name -> exponential moving average of its parameters,
      for the networks the method samples with; empty when EMA is off. The
      average is debiased (see `ema_update`): it weighs the parameters after
      each update, never the random initialisation.
  """

  step: jax.Array
  rng: jax.Array
  params: dict[str, PyTree]
  collections: dict[str, PyTree]
  opt_state: dict[str, PyTree]
  ema_params: dict[str, PyTree]

  def step_key(self, *names: str) -> dict[str, jax.Array]:
    """Independent keys for this step, one per name (``fold_in(rng, step)``)."""
    key = jax.random.fold_in(self.rng, self.step)
    return dict(zip(names, jax.random.split(key, len(names))))


def ema_update(average: PyTree, params: PyTree, decay: float, count: jax.Array) -> PyTree:
  """The debiased exponential moving average after its ``count``-th update.

  A plain EMA started at the initial parameters still holds ``decay**t`` of
  them after ``t`` updates (13.5% after 2,000 steps at 0.999). Started at zero
  and divided by ``1 - decay**t`` (Adam's bias correction, optax's
  ``ema(debias=True)``) it is the weighted mean of the updated parameters
  alone, ``sum_i (1 - d) d**(t - i) p_i / (1 - d**t)``. Kept in that divided
  form it is updated with the step size ``(1 - d) / (1 - d**t)``: 1 at the
  first update (a copy), ``1 - d`` once ``d**t`` is negligible. So the stored
  average can be sampled as it is, at any step.

  Args:
    average: the average after ``count - 1`` updates (anything when ``count`` is 1).
    params: the parameters after this update.
    decay: ``d`` in [0, 1).
    count: int scalar ``t`` >= 1, the number of updates including this one.
  """
  decay = jnp.float32(decay)  # Both sides in one precision: exactly 1 at the first update.
  step_size = (1 - decay) / (1 - decay**count)
  return optax.incremental_update(params, average, step_size)


def apply_gradients(state: TrainState, name: str, grads: PyTree,
                    tx: optax.GradientTransformation,
                    ema_decay: float) -> TrainState:
  """Applies one optimizer update to network ``name`` (and its EMA if kept).

  Only sampling networks keep an EMA, and they are updated once per train step
  (the extra critic updates are the discriminator's), so the EMA's update
  count is ``state.step + 1``.
  """
  updates, opt_state = tx.update(grads, state.opt_state[name], state.params[name])
  params = optax.apply_updates(state.params[name], updates)
  ema_params = state.ema_params
  if name in ema_params:
    ema_params = {**ema_params,
                  name: ema_update(ema_params[name], params, ema_decay, state.step + 1)}
  return state.replace(params={**state.params, name: params},
                       opt_state={**state.opt_state, name: opt_state},
                       ema_params=ema_params)
