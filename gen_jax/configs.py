"""The config keys every experiment shares, their checks, and the smoke shrink.

Experiment files (``experiments/<model>/<dataset>.py``) start from
``base_config()``, set what is theirs, and end with ``finalize(config, arg)``.
"""

import importlib.util
import json
import pathlib

import ml_collections
from etils import epath
from ml_collections import config_dict

from gen_jax.data import DataSpec

def base_config() -> ml_collections.ConfigDict:
  """Defaults for the keys every config has."""
  config = ml_collections.ConfigDict()
  # Data.
  config.dataset = ""           # a gen_jax.data name: 'mnist', 'npz:PATH', 'folder:PATH', ...
  config.image_size = 28
  config.crop = config_dict.placeholder(int)   # central square side before resizing
  config.random_flip = False
  config.channels = config_dict.placeholder(int)  # None keeps the dataset's channels
  # Run.
  config.seed = 0
  config.batch_size = 64        # global, over all devices and processes
  config.num_train_steps = 1000
  config.checkpoint_every_steps = 500
  config.keep_checkpoints = 3
  config.log_every_steps = 50
  config.sample_every_steps = 500
  config.num_grid_images = 64
  # > 0 keeps a debiased EMA of the sampling network, used for samples; its batch-norm
  # statistics are measured for it on this many batches of 64 samples before it samples.
  config.ema_decay = 0.0
  config.ema_standing_batches = 64
  # On a NaN or Inf in the metrics or the state: 'stop' (raise; the checkpoints are kept) or
  # 'rollback' (to the newest checkpoint, skipping the data batches read since), at most
  # max_nan_rollbacks times in a run.
  config.on_nan = "stop"
  config.max_nan_rollbacks = 3
  # Periodic evaluation (off while every_steps is 0), and the best checkpoints by a metric.
  config.eval = ml_collections.ConfigDict({
      "every_steps": 0,
      "metrics": "fid,kid",       # any of fid, kid, is, pr (see gen_jax.evaluation)
      "features": "",             # 'classifier:WORKDIR', 'vgg16', 'alexnet', 'inception:WEIGHTS'
      "num_samples": 5000,
      "reference": "",            # DATASET:SPLIT; default: the config's dataset, test split
      "batch_size": 250,
      "best_metric": "fid",       # lower is better; '' keeps no best checkpoints
      "keep_best": 1,
  })
  # Model, method and one optimizer per network: set by each experiment.
  config.model = ml_collections.ConfigDict({"name": "", "compute_dtype": "float32"})
  config.method = ml_collections.ConfigDict({"name": ""})
  config.optimizers = ml_collections.ConfigDict()
  return config


def adam(learning_rate: float, b1: float = 0.9, b2: float = 0.999) -> ml_collections.ConfigDict:
  """An optimizer section: Adam with a constant learning rate."""
  return ml_collections.ConfigDict(
      {"name": "adam", "learning_rate": learning_rate, "b1": b1, "b2": b2,
       "schedule": "constant", "warmup_steps": 0})


def rmsprop(learning_rate: float, decay: float = 0.9) -> ml_collections.ConfigDict:
  """An optimizer section: RMSProp with a constant learning rate (WGAN's choice)."""
  return ml_collections.ConfigDict(
      {"name": "rmsprop", "learning_rate": learning_rate, "decay": decay,
       "schedule": "constant", "warmup_steps": 0})


def parse_args(arg: str | None, valid: tuple[str, ...] = ()) -> set[str]:
  """``get_config``'s argument, e.g. ``'conv,smoke'``, -> the set of words.

  Args:
    arg: what followed the colon in ``--config FILE.py:ARG`` (or None).
    valid: the words this config file knows besides ``'smoke'``.
  """
  words = set(filter(None, (arg or "").split(",")))
  unknown = words - {"smoke", *valid}
  if unknown:
    raise ValueError(f"unknown config argument(s) {sorted(unknown)}; valid: "
                     f"{', '.join(sorted({'smoke', *valid}))}, comma-separated "
                     f"(as in --config experiments/dcgan/mnist.py:smoke)")
  return words


def load_module(path: str | pathlib.Path):
  """Imports an experiment file (``get_config`` and any recipe functions it defines)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"no config file {path}")
  module_spec = importlib.util.spec_from_file_location(f"gen_jax_config_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def load(spec: str) -> ml_collections.ConfigDict:
  """Loads ``'experiments/<model>/<dataset>.py[:ARG]'`` as ``gen-jax --config`` does."""
  path, _, arg = spec.partition(":")
  return load_module(path).get_config(arg or None)


def sibling_config(config_file: str, name: str, arg: str | None) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of the experiment ``name``.py beside ``config_file``.

  Lets e.g. Fashion-MNIST reuse the MNIST recipe instead of copying it.
  """
  path = pathlib.Path(config_file).with_name(f"{name}.py")
  return load(f"{path}:{arg}" if arg else str(path))


def experiment_config(config_file: str, experiment: str,
                      arg: str | None) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of ``experiments/<experiment>.py`` (e.g. ``'dcgan/cifar10'``).

  Lets a GAN variant start from the DCGAN networks of the same dataset and
  change only its method.
  """
  path = pathlib.Path(config_file).parents[1] / f"{experiment}.py"
  return load(f"{path}:{arg}" if arg else str(path))


# The quick recipes' generator learns five times faster than the discriminator
# (1e-3 against 2e-4, the InfoGAN paper's pair): on the half-width networks it took
# the cGAN from 79% to 92% of samples in the requested class after 2000 steps, the
# hinge GAN, LSGAN and SNGAN from one digit at under 1% of the samples to every
# digit at 6% or more, WGAN from 54% to 61% of samples clearly digits (after 1000
# generator steps) and WGAN-GP from 62% to 71% (tests/test_learning.py; the README's
# GAN table).
QUICK_GENERATOR_LEARNING_RATE = 1e-3


def gan_variant(config_file: str, dataset: str, arg: str | None) -> ml_collections.ConfigDict:
  """The DCGAN config of ``dataset`` that a GAN variant starts from.

  Under ``quick`` (the MNIST learning tests' recipe) the DCGAN quick networks
  are halved in width: four times cheaper per step, so that each variant's
  learning test fits a couple of CPU minutes.
  """
  config = experiment_config(config_file, f"dcgan/{dataset}", arg)
  if parse_args(arg, ("quick",)) & {"quick", "smoke"} == {"quick"}:
    for network in ("generator", "discriminator"):
      section = config.model[network]
      section.features = tuple(width // 2 for width in section.features)
  return config


def sibling_recipe(config_file: str, name: str = "mnist"):
  """The ``recipe(config, args)`` function of ``name``.py beside ``config_file``.

  A model's MNIST file holds what makes the model (its method, losses and
  network options); its CIFAR-10 file applies the same recipe to the CIFAR-10
  networks.
  """
  return load_module(pathlib.Path(config_file).with_name(f"{name}.py")).recipe


def shrink_for_smoke(config: ml_collections.ConfigDict) -> None:
  """Seconds of CPU: a few tiny steps that still save, log and sample."""
  config.batch_size = 8
  config.num_train_steps = 4
  config.checkpoint_every_steps = 2
  config.log_every_steps = 2
  config.sample_every_steps = 4
  config.num_grid_images = 16


def with_defaults(saved: dict) -> ml_collections.ConfigDict:
  """A config saved in a checkpoint, with the keys added to ``base_config`` since at
  their defaults, so that runs of earlier versions still load."""

  def merge(defaults: dict, values: dict) -> dict:
    return {**defaults, **{k: merge(defaults[k], v) if isinstance(v, dict) and
                           isinstance(defaults.get(k), dict) else v
                           for k, v in values.items()}}

  return ml_collections.ConfigDict(merge(base_config().to_dict(), saved))


def data_spec(config: ml_collections.ConfigDict, split: str = "train") -> DataSpec:
  return DataSpec(dataset=config.dataset, image_size=config.image_size, split=split,
                  crop=config.crop, random_flip=config.random_flip, channels=config.channels)


def to_json_dict(config: ml_collections.ConfigDict) -> dict:
  """The config as plain JSON types (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


def write_json(config: ml_collections.ConfigDict, workdir: epath.PathLike) -> None:
  """Writes ``WORKDIR/config.json``, the config of this start of the run.

  The config of an earlier start, if it differs, is kept as ``config.<n>.json``
  (``n`` = 1, 2, ...: oldest first), so a workdir records every config it was
  trained with.
  """
  path = epath.Path(workdir) / "config.json"
  text = config.to_json_best_effort(indent=2)
  if path.exists() and path.read_text() != text:
    n = 1
    while path.with_name(f"config.{n}.json").exists():
      n += 1
    path.rename(path.with_name(f"config.{n}.json"))
  path.write_text(text)


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises before anything is built when a config value cannot work.

  Each message names the key, its value and what would be valid. Unknown keys
  and values of the wrong type do not get this far: configs are locked and typed,
  so ``--config.KEY=VALUE`` refuses them while the command line is parsed.

  Raises:
    ValueError: the first bad value.
  """
  # Deferred: these import JAX, which config files do not otherwise need.
  from gen_jax.evaluation.evaluate import parse_metrics
  from gen_jax.registry import lookup
  from gen_jax.train.optim import OPTIMIZERS, SCHEDULES

  # Keys of config.model (at any depth) whose integers are layer sizes.
  model_size_keys = {"latent_dim", "embedding_dim", "num_classes", "base_size", "kernel_size",
                     "features", "hidden", "strides"}

  def require(ok: bool, key: str, value: object, valid: str) -> None:
    if not ok:
      raise ValueError(f"config.{key} must be {valid}, got {value!r}")

  def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

  def positive_int(key: str, value: object) -> None:
    require(is_int(value) and value > 0, key, value, "a positive integer")

  def named(key: str, check, *args) -> None:
    """``check(*args)``, its ValueError prefixed with the key."""
    try:
      check(*args)
    except ValueError as e:
      raise ValueError(f"config.{key}: {e}") from None

  def model_sizes(section: ml_collections.ConfigDict, prefix: str) -> None:
    for key, value in section.items():
      if isinstance(value, ml_collections.ConfigDict):
        model_sizes(value, f"{prefix}.{key}")
      elif key in model_size_keys:
        values = value if isinstance(value, (tuple, list)) else (value,)
        require(all(is_int(v) and v > 0 for v in values), f"{prefix}.{key}", value,
                "positive integers" if isinstance(value, (tuple, list)) else "a positive integer")

  require(isinstance(config.dataset, str) and config.dataset, "dataset", config.dataset,
          "a dataset name such as mnist, npz:PATH or folder:PATH (--config.dataset=mnist)")
  for key in ("image_size", "batch_size", "num_train_steps", "checkpoint_every_steps",
              "keep_checkpoints", "log_every_steps", "sample_every_steps", "num_grid_images"):
    positive_int(key, config[key])
  require(config.crop is None or is_int(config.crop) and config.crop > 0, "crop", config.crop,
          "a positive integer, or None for the whole image")
  require(config.channels in (None, 1, 3), "channels", config.channels,
          "1, 3, or None for the dataset's")
  require(is_int(config.seed) and 0 <= config.seed < 2**63, "seed", config.seed,
          "an integer in [0, 2**63)")
  require(0.0 <= config.ema_decay < 1.0, "ema_decay", config.ema_decay, "in [0, 1) (0: no EMA)")
  positive_int("ema_standing_batches", config.ema_standing_batches)
  require(config.on_nan in ("stop", "rollback"), "on_nan", config.on_nan,
          "'stop' or 'rollback'")
  positive_int("max_nan_rollbacks", config.max_nan_rollbacks)
  require(config.model.compute_dtype in ("float32", "bfloat16", "float16"),
          "model.compute_dtype", config.model.compute_dtype, "float32, bfloat16 or float16")
  model_sizes(config.model, "model")
  for network, optimizer in config.optimizers.items():
    key = f"optimizers.{network}"
    named(f"{key}.name", lookup, OPTIMIZERS, optimizer.name, "optimizer")
    named(f"{key}.schedule", lookup, SCHEDULES, optimizer.get("schedule", "constant"), "schedule")
    require(optimizer.learning_rate > 0, f"{key}.learning_rate", optimizer.learning_rate,
            "positive")
    warmup_steps = optimizer.get("warmup_steps", 0)
    require(is_int(warmup_steps) and warmup_steps >= 0, f"{key}.warmup_steps", warmup_steps,
            "a non-negative integer")
  require(is_int(config.eval.every_steps) and config.eval.every_steps >= 0, "eval.every_steps",
          config.eval.every_steps, "a non-negative integer (0: no evaluation)")
  for key in ("num_samples", "batch_size", "keep_best"):
    positive_int(f"eval.{key}", config.eval[key])
  named("eval.metrics", parse_metrics, config.eval.metrics)
