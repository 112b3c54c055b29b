"""The method abstraction: networks, their optimizers, one pure train step, sampling.

A *model* (``gen_jax.models``) says what the networks are; a *method* says how
they are trained: which losses, in which order, with which regularisers.
``docs/design.md`` explains how the families to come fit this shape.
"""

import abc
import functools
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
  def generate(self, variables: dict[str, Any], rng: jax.Array, labels: jax.Array,
               mutable: bool | list[str] = False):
    """Samples images from the sampling network.

    Args:
      variables: Flax variables of ``sampling_network`` (see
        ``sampling_variables``).
      rng: PRNG key.
      labels: int32 [N] classes to generate; only their number matters for
        unconditional methods.
      mutable: as in Flax's ``apply``: False samples in inference mode; a
        list of collections runs the network in training mode, updating those
        collections (``standing_statistics`` measures batch norm so).

    Returns:
      float32 [N, H, W, C] images in [-1, 1]; with ``mutable``, also the
      updated collections.
    """

  def sample_labels(self, num: int) -> jax.Array:
    """Labels for ``num`` samples: every class in turn, or zeros if unconditional."""
    if self.conditional:
      return jnp.arange(num, dtype=jnp.int32) % self.info.num_classes
    return jnp.zeros((num,), jnp.int32)

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

  def sampling_variables(self, state: TrainState, ema: bool = True) -> dict[str, Any]:
    """Variables of the sampling network, as every sample of a run is drawn.

    Args:
      state: the train state.
      ema: use the EMA parameters when the run keeps them, with non-parameter
        collections measured for them (``standing_statistics``); False gives
        the trained parameters with their own running statistics.
    """
    name = self.sampling_network
    variables = {"params": state.params[name], **state.collections[name]}
    if not (ema and name in state.ema_params):
      return variables
    variables["params"] = state.ema_params[name]
    if not state.collections[name] or not self.generative:
      return variables
    return self.standing_statistics(variables)

  def sampling_description(self, state: TrainState, ema: bool = True) -> str:
    """Which network ``sampling_variables(state, ema)`` gives, for evaluation protocols."""
    name = self.sampling_network
    if not (ema and name in state.ema_params):
      return name
    if state.collections[name] and self.generative:
      return (f"EMA {name}, decay {self.ema_decay} (debiased), its statistics measured on "
              f"{self.config.ema_standing_batches} batches of 64")
    return f"EMA {name}, decay {self.ema_decay} (debiased)"

  def standing_statistics(self, variables: dict[str, Any]) -> dict[str, Any]:
    """``variables`` with collections that belong to their parameters.

    Running statistics follow the parameters that produced them, and EMA
    parameters never ran in training: paired with the trained network's
    batch-norm statistics they normalise with the wrong means and variances.
    Like StudioGAN's "standing statistics", the network runs in training
    mode on ``config.ema_standing_batches`` batches of 64 fresh samples, each
    updating its collections by the layers' own rule: a batch norm of
    momentum 0.9 keeps 0.9**64 (0.1%) of the trained network's statistics
    after 64 batches, and spectral norm's power iteration settles on the
    EMA weights' own singular vectors. The samples are drawn from a fixed
    key, so the result is a function of ``variables``.
    """
    params = variables["params"]
    collections = {k: v for k, v in variables.items() if k != "params"}
    labels = self.sample_labels(64)
    for rng in jax.random.split(jax.random.PRNGKey(0), self.config.ema_standing_batches):
      collections = self._standing_update(params, collections, rng, labels)
    return {"params": params, **collections}

  @functools.partial(jax.jit, static_argnums=0)
  def _standing_update(self, params, collections, rng, labels):
    _, collections = self.generate({"params": params, **collections}, rng, labels,
                                   mutable=list(collections))
    return collections

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
