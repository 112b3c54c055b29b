"""Feature-extraction throughput of an evaluation feature space (images/s on this host).

  python benchmarks/feature_throughput.py --features vgg16 [--image_size 32 --channels 3]
  python benchmarks/feature_throughput.py --features inception      # random weights
  python benchmarks/feature_throughput.py --features inception:WEIGHTS.npz
  python benchmarks/feature_throughput.py --features classifier:WORKDIR --image_size 28 --channels 1

Speed does not depend on weight values, so ``inception`` without a file runs the
architecture with random weights. Prints the compile time and ends with
``img_per_s=<number>`` (after compilation).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gen_jax.evaluation import features, inception

flags.DEFINE_string("features", "vgg16", "A --features value of gen-jax eval.")
flags.DEFINE_integer("image_size", 32, "Side of the uint8 input images.")
flags.DEFINE_integer("channels", 3, "Channels of the input images (1 or 3).")
flags.DEFINE_integer("batch_size", 50, "Images per call.")
flags.DEFINE_integer("batches", 4, "Timed calls after the compiling one.")
FLAGS = flags.FLAGS


def extractor():
  if FLAGS.features == "inception":
    shape = jax.ShapeDtypeStruct((1, inception.INPUT_SIZE, inception.INPUT_SIZE, 3), jnp.float32)
    variables = jax.jit(inception.InceptionV3().init)(jax.random.key(0), shape)
    return features.batched(inception.feature_fn(variables), FLAGS.batch_size)
  return features.load(FLAGS.features, FLAGS.batch_size).extract


def main(argv):
  del argv
  extract = extractor()
  images = np.random.default_rng(0).integers(
      0, 256, (FLAGS.batch_size, FLAGS.image_size, FLAGS.image_size, FLAGS.channels), np.uint8)
  start = time.perf_counter()
  extract(images)
  compile_seconds = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(FLAGS.batches):
    extract(images)
  seconds = time.perf_counter() - start
  print(f"features: {FLAGS.features}, input {FLAGS.batch_size}x{FLAGS.image_size}x"
        f"{FLAGS.image_size}x{FLAGS.channels} uint8, {jax.devices()[0].platform}")
  print(f"compile_seconds={compile_seconds:.2f}")
  print(f"img_per_s={FLAGS.batches * FLAGS.batch_size / seconds:.1f}")


if __name__ == "__main__":
  app.run(main)
