"""Sampling from a trained run: ``gen-jax sample``."""

import jax
import ml_collections
import numpy as np
from absl import logging

from gen_jax import data, images, methods
from gen_jax.train.checkpoint import Checkpoints, abstract_with_sharding
from gen_jax.train.trainer import grid_labels


def load_run(workdir: str, step: int | None = None):
  """Restores a run's method and state from its checkpoints, without its dataset.

  Args:
    workdir: the run's directory.
    step: a checkpoint step; default the newest.

  Returns:
    ``(method, state, step)``.
  """
  checkpoints = Checkpoints(workdir, read_only=True)
  steps = checkpoints.all_steps()
  if not steps:
    raise FileNotFoundError(f"no checkpoints in {checkpoints.directory}; train first with "
                            f"gen-jax train --workdir {workdir}")
  step = max(steps) if step is None else step
  if step not in steps:
    raise ValueError(f"no checkpoint for step {step} in {checkpoints.directory}; "
                     f"available steps: {sorted(steps)}")
  meta = checkpoints.meta(step)
  config = ml_collections.ConfigDict(meta["config"])
  info = data.DatasetInfo(**{**meta["data_info"],
                             "image_shape": tuple(meta["data_info"]["image_shape"])})
  method = methods.build(config, info)
  abstract = jax.eval_shape(method.init, jax.random.PRNGKey(0))
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  state = checkpoints.restore(step, abstract_with_sharding(abstract, sharding))
  checkpoints.close()
  return method, state, step


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
  labels = grid_labels(method, num)
  rng = jax.random.PRNGKey(seed)
  chunks = [generate(variables, jax.random.fold_in(rng, i), labels[start:start + batch_size])
            for i, start in enumerate(range(0, num, batch_size))]
  out = {"images": images.to_uint8(np.concatenate(jax.device_get(chunks)))}
  if method.conditional:
    out["labels"] = np.asarray(labels)
  return out


def sample(workdir: str, num: int, seed: int = 0, step: int | None = None,
           batch_size: int = 256) -> dict[str, np.ndarray]:
  """Draws ``num`` images from the run in ``workdir`` (its EMA network if kept).

  Returns:
    As ``generate_images``.
  """
  if num <= 0:
    raise ValueError(f"--num must be positive, got {num}")
  method, state, step = load_run(workdir, step)
  logging.info("sampling %d images from step %d of %s", num, step, workdir)
  return generate_images(method, method.sampling_variables(state), num, seed, batch_size)
