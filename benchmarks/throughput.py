"""Train-step throughput of a config on synthetic batches (no dataset needed).

  python benchmarks/throughput.py --config experiments/dcgan/mnist.py [--steps 20]
      [--config.batch_size=128] [--noxla_cpu_defaults]

Prints the compile time, the FLOPs of one step from XLA's cost analysis, the
achieved GFLOP/s, and ends with ``img_per_s=<number>`` (train-step images per
second after compilation, on all local devices). The FLOPs are counted on the
step with XLA's convolutions: the cost analysis cannot see into the oneDNN
ones (``gen_jax.ops.onednn_conv``), which the timed step uses on one CPU device.
"""

import os
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from gen_jax import data, methods, xla_cpu
from gen_jax.ops import onednn_conv
from gen_jax.train import parallel, trainer

config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_integer("steps", 20, "Timed steps after compilation and one warm-up step.")
flags.DEFINE_integer("channels", None, "Image channels (default: from the dataset name).")
flags.DEFINE_bool("xla_cpu_defaults", True, "Apply gen_jax.xla_cpu.configure() first, as the "
                  "gen-jax command does (--noxla_cpu_defaults: JAX's own defaults).")
FLAGS = flags.FLAGS

GRAYSCALE = ("mnist", "fashion_mnist", "digits")


def main(argv):
  del argv
  if FLAGS.xla_cpu_defaults:
    xla_cpu.configure()
  config = FLAGS.config
  channels = FLAGS.channels or config.channels or (1 if config.dataset in GRAYSCALE else 3)
  shape = (config.image_size, config.image_size, channels)
  info = data.DatasetInfo(num_examples=0, image_shape=shape, num_classes=10)
  method = methods.build(config, info)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)

  rng = np.random.default_rng(0)
  local = config.batch_size // jax.process_count()
  batch = parallel.global_batch(
      {"image": rng.uniform(-1, 1, (local, *shape)).astype(np.float32),
       "label": rng.integers(0, 10, local).astype(np.int32)}, mesh)
  state = jax.jit(method.init, out_shardings=parallel.replicated(mesh))(jax.random.PRNGKey(0))
  sharding = jax.tree.map(lambda _: parallel.replicated(mesh), state)
  with onednn_conv.xla_convolutions():
    xla_step = trainer.jit_train_step(method, mesh, sharding)
    cost = xla_step.lower(state, batch).compile().cost_analysis()
  jax.clear_caches()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0)) if cost else 0.0

  step = trainer.jit_train_step(method, mesh, sharding)
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_seconds = time.perf_counter() - start

  state, metrics = compiled(state, batch)  # Warm-up.
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))
  seconds = (time.perf_counter() - start) / FLAGS.steps

  print(f"config: {config.model.name}/{config.method.name}, batch {config.batch_size}, "
        f"images {shape}, {jax.device_count()} {jax.devices()[0].platform} device(s)")
  print(f"onednn_convolutions={'yes' if 'gen_jax_onednn' in compiled.as_text() else 'no'}")
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}")
  print(f"compile_seconds={compile_seconds:.2f}")
  print(f"step_ms={seconds * 1e3:.1f}")
  print(f"flops_per_step={flops:.4g}")
  print(f"gflop_per_s={flops / seconds / 1e9:.2f}")
  print(f"img_per_s={config.batch_size / seconds:.1f}")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
