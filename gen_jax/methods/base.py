"""The method abstraction: networks, their optimizers, one pure train step, sampling.

A *model* (``gen_jax.models``) says what the networks are; a *method* says how
they are trained: which losses, in which order, with which regularisers.
``docs/design.md`` explains how the families to come fit this shape.
"""

import abc
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import models
from gen_jax.data import DatasetInfo
from gen_jax.train.optim import make_optimizer
from gen_jax.train.state import TrainState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


class Method(abc.ABC):
  """Base class of training methods.

  Subclasses name their networks, build their variables, and write the pure
  ``train_step``; the base class owns the bookkeeping every method shares.

  Attributes:
    network_names: the networks the model must provide, one optimizer each.
    sampling_network: the network ``generate`` runs; its EMA is kept when the
      config's ``ema_decay`` is positive.
    conditional: whether ``generate`` uses the labels it is given.
    generative: whether the method makes images (a classifier does not).
  """

  network_names: tuple[str, ...]
  sampling_network: str
  conditional: bool = False
  generative: bool = True

  def __init__(self, config: ml_collections.ConfigDict, info: DatasetInfo):
    self.config = config
    self.info = info
    self.networks = models.build(config.model, info)
    if set(self.networks) != set(self.network_names):
      raise ValueError(
          f"method {config.method.name!r} trains networks {sorted(self.network_names)}, "
          f"but model {config.model.name!r} provides {sorted(self.networks)}")
    missing = set(self.network_names) - set(config.optimizers)
    if missing:
      raise ValueError(f"config.optimizers has no entry for {sorted(missing)}; "
                       f"method {config.method.name!r} needs one per network "
                       f"{sorted(self.network_names)}")
    self.optimizers = {name: make_optimizer(config.optimizers[name], config.num_train_steps)
                       for name in self.network_names}
    self.ema_decay = config.ema_decay

  @abc.abstractmethod
  def init_variables(self, rng: jax.Array) -> dict[str, dict[str, Any]]:
    """Returns network name -> Flax variables (``params`` and any collections)."""

  @abc.abstractmethod
  def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    """One pure training step.

    Args:
      state: the train state; donated by the caller.
      batch: ``image`` float32 [B, H, W, C] in [-1, 1] and ``label`` int32 [B].

    Returns:
      The new state (with ``step`` incremented) and scalar metrics.
    """

  @abc.abstractmethod
  def generate(self, variables: dict[str, Any], rng: jax.Array,
               labels: jax.Array) -> jax.Array:
    """Samples images from the sampling network.

    Args:
      variables: Flax variables of ``sampling_network`` (see
        ``sampling_variables``).
      rng: PRNG key.
      labels: int32 [N] classes to generate; only their number matters for
        unconditional methods.

    Returns:
      float32 [N, H, W, C] images in [-1, 1].
    """

  def init(self, rng: jax.Array) -> TrainState:
    """The initial train state (pure: ``jit`` it with output shardings)."""
    init_rng, run_rng = jax.random.split(rng)
    variables = self.init_variables(init_rng)
    params = {name: v["params"] for name, v in variables.items()}
    ema_params = ({self.sampling_network: params[self.sampling_network]}
                  if self.ema_decay > 0 else {})
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        rng=run_rng,
        params=params,
        collections={name: {k: c for k, c in v.items() if k != "params"}
                     for name, v in variables.items()},
        opt_state={name: self.optimizers[name].init(params[name]) for name in params},
        ema_params=ema_params)

  def sampling_variables(self, state: TrainState) -> dict[str, Any]:
    """Variables of the sampling network, with its EMA parameters if kept."""
    name = self.sampling_network
    params = state.ema_params.get(name, state.params[name])
    return {"params": params, **state.collections[name]}

  def apply(self, name: str, params: Any, collections: dict[str, Any], *args,
            rngs: dict[str, jax.Array] | None = None, **kwargs) -> tuple[Any, dict[str, Any]]:
    """Applies network ``name`` in training mode.

    Returns:
      The output and the updated collections (e.g. new ``batch_stats``).
    """
    variables = {"params": params, **collections}
    if not collections:
      return self.networks[name].apply(variables, *args, rngs=rngs, train=True, **kwargs), {}
    return self.networks[name].apply(variables, *args, rngs=rngs, train=True,
                                     mutable=list(collections), **kwargs)
