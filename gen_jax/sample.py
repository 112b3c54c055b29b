"""Sampling from a trained run: ``gen-jax sample``."""

import functools

import jax
import numpy as np
from absl import logging

from gen_jax import configs, data, images, methods
from gen_jax.train.checkpoint import Checkpoints, abstract_with_sharding


def load_run(workdir: str, step: int | None = None):
  """Restores a run's method and state from its checkpoints, without its dataset.

  Without ``step``, the newest checkpoint that restores: one that cannot be
  read (say, a save cut short) is passed over with a warning naming it, and
  left where it is (this is read-only; ``gen-jax train`` moves such
  checkpoints aside when it resumes).

  Args:
    workdir: the run's directory.
    step: a checkpoint step; default the newest that restores.

  Returns:
    ``(method, state, step)``.

  Raises:
    FileNotFoundError: no checkpoints.
    ValueError: no checkpoint of ``step``.
    RuntimeError: none of the tried checkpoints restores; names each error.
  """
  checkpoints = Checkpoints(workdir, read_only=True)
  steps = checkpoints.all_steps()
  if not steps:
    raise FileNotFoundError(f"no checkpoints in {checkpoints.directory}; train first with "
                            f"gen-jax train --workdir {workdir}")
  if step is not None and step not in steps:
    raise ValueError(f"no checkpoint for step {step} in {checkpoints.directory}; "
                     f"available steps: {sorted(steps)}")
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

  def abstract_state(meta):
    abstract = jax.eval_shape(method_of(meta).init, jax.random.PRNGKey(0))
    return abstract_with_sharding(abstract, sharding)

  try:
    step, state, meta = checkpoints.restore_newest(
        abstract_state, steps=None if step is None else [step])
  finally:
    checkpoints.close()
  return method_of(meta), state, step


def method_of(meta: dict) -> methods.Method:
  """The method that a checkpoint's ``meta`` (its config and data shape) describes."""
  info = data.DatasetInfo(**{**meta["data_info"],
                             "image_shape": tuple(meta["data_info"]["image_shape"])})
  return methods.build(configs.with_defaults(meta["config"]), info)


def generate_images(method, variables, num: int, seed: int = 0, batch_size: int = 256,
                    generate=None) -> dict[str, np.ndarray]:
  """Draws ``num`` images in chunks of ``batch_size``.

  Args:
    method: the run's method.
    variables: its sampling variables (``method.sampling_variables(state)``).
    num: number of images.
    seed: chunk ``i`` uses ``fold_in(PRNGKey(seed), i)``.
    batch_size: images per call.
    generate: ``method.generate`` already jitted (the trainer passes its own
      so that periodic evaluation compiles once); default jits it here.

  Returns:
    ``images`` uint8 [num, H, W, C] in [0, 255], and ``labels`` int32 [num]
    when the model is conditional (classes in turn).
  """
  if num <= 0:
    raise ValueError(f"the number of samples must be positive, got {num}")
  generate = generate or jax.jit(method.generate)
  labels = method.sample_labels(num)
  rng = jax.random.PRNGKey(seed)
  chunks = [generate(variables, jax.random.fold_in(rng, i), labels[start:start + batch_size])
            for i, start in enumerate(range(0, num, batch_size))]
  out = {"images": images.to_uint8(np.concatenate(jax.device_get(chunks)))}
  if method.conditional:
    out["labels"] = np.asarray(labels)
  return out


def sample(workdir: str, num: int, seed: int = 0, step: int | None = None,
           batch_size: int = 256, truncation: float | None = None,
           ema: bool = True) -> dict[str, np.ndarray]:
  """Draws ``num`` images from the run in ``workdir``.

  Args:
    workdir, num, seed, step, batch_size: as the command line's.
    truncation: for GANs, draw z from the normal truncated to [-t, t] (the
      truncation trick; 0 turns it off); default the config's ``method.truncation``.
    ema: sample the EMA network if the run keeps one (see
      ``Method.sampling_variables``), else the trained one.

  Returns:
    As ``generate_images``.
  """
  if num <= 0:
    raise ValueError(f"--num must be positive, got {num}")
  method, state, step = load_run(workdir, step)
  generate = None
  if truncation is not None:
    if not hasattr(method, "truncation"):
      raise ValueError(f"--truncation applies to GANs; {workdir} trained a "
                       f"{method.config.method.name!r} model")
    if truncation < 0:
      raise ValueError(f"--truncation must be >= 0 (0: off), got {truncation}")
    generate = jax.jit(functools.partial(method.generate, truncation=truncation))
  logging.info("sampling %d images from step %d of %s", num, step, workdir)
  return generate_images(method, method.sampling_variables(state, ema), num, seed, batch_size,
                         generate)


def vary_code(workdir: str, code: str, num_rows: int, num_values: int = 10, seed: int = 0,
              step: int | None = None, ema: bool = True) -> dict[str, np.ndarray]:
  """InfoGAN's traversal of one latent code (see ``methods.gan.GAN.vary_code``).

  Returns:
    ``images`` uint8 [num_rows * num_values, H, W, C], row-major (each row
    holds the other latents, each column one value of ``code``), and
    ``num_values``, the row length.
  """
  method, state, step = load_run(workdir, step)
  if not hasattr(method, "vary_code"):
    raise ValueError(f"--vary_code needs an InfoGAN run; {workdir} trained a "
                     f"{method.config.method.name!r} model")
  out = method.vary_code(method.sampling_variables(state, ema), jax.random.PRNGKey(seed), code,
                         num_rows, num_values)
  row_length = out.shape[0] // num_rows
  return {"images": images.to_uint8(np.asarray(out)), "num_values": np.asarray(row_length)}
