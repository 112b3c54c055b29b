"""What the checksums of checkpoints cost: save, hash and verify times of a config's state.

  python benchmarks/checkpoint_save.py --config experiments/dcgan/mnist.py [--saves 5]
      [--nochecksums]

Saves a train state of the config's shapes (random values) ``--saves`` times (as the trainer does: an
asynchronous Orbax save, then waiting for it) into a temporary directory and prints
the checkpoint's size, ``save_ms`` (save and commit, median), ``hash_ms`` (the sha256
of its files, which the commit includes unless ``--nochecksums``) and ``verify_ms``
(the check a restore adds). Training waits for a save only when the next one starts or
the run ends, so the hashing is hidden behind the steps in between.
"""

import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from etils import epath
from ml_collections import config_flags

from gen_jax import data, methods, xla_cpu
from gen_jax.train import checkpoint

config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_integer("saves", 5, "Timed saves.")
flags.DEFINE_bool("checksums", True, "Record checksums at save (--nochecksums: Orbax alone).")
FLAGS = flags.FLAGS


def median_ms(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times) * 1e3


def main(argv):
  del argv
  xla_cpu.configure()
  config = FLAGS.config
  channels = config.channels or (1 if "mnist" in config.dataset else 3)
  info = data.DatasetInfo(0, (config.image_size, config.image_size, channels), 10)
  state = jax.jit(methods.build(config, info).init)(jax.random.PRNGKey(0))
  # Random values, as incompressible as a trained state (the initial optimizer state is zeros).
  state = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(1), x.shape, x.dtype)
                       if jnp.issubdtype(x.dtype, jnp.floating) else x, state)
  if not FLAGS.checksums:
    checkpoint.Checkpoints._record_checksums = lambda self: None
  with tempfile.TemporaryDirectory() as workdir:
    checkpoints = checkpoint.Checkpoints(workdir, max_to_keep=2)
    step = iter(range(1, FLAGS.saves + 1))

    def save():
      checkpoints.save(next(step), state, config, {})
      checkpoints.wait_until_finished()

    save_ms = median_ms(save, FLAGS.saves - 1) if FLAGS.saves > 1 else 0.0
    save()
    step_dir = epath.Path(workdir) / "checkpoints" / str(FLAGS.saves)
    hashed_mib = sum(os.path.getsize(step_dir / name)
                     for name in checkpoint.checksums(step_dir)) / 2**20
    hash_ms = median_ms(lambda: checkpoint.checksums(step_dir), 3)
    verify_ms = median_ms(lambda: checkpoints.verify(FLAGS.saves), 3)
    checkpoints.close()
  size = sum(x.nbytes for x in jax.tree.leaves(state))
  print(f"config: {config.model.name}/{config.method.name}, train state {size / 2**20:.1f} MiB "
        f"(float32), checksums {'on' if FLAGS.checksums else 'off'}")
  print(f"checkpoint_mib={hashed_mib:.1f}")
  print(f"hash_ms={hash_ms:.1f}")
  print(f"verify_ms={verify_ms:.1f}")
  print(f"save_ms={save_ms:.1f}")


if __name__ == "__main__":
  app.run(main)
