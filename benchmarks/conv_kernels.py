"""XLA's and oneDNN's CPU convolutions on the MNIST DCGAN's layers.

  python benchmarks/conv_kernels.py [--batch 256] [--repeats 7]

For each convolution of the DCGAN step (the generator's in the sub-pixel form
that gen_jax.models.layers gives them), prints the median milliseconds of the forward pass and of both
gradients on XLA (``lax.conv_general_dilated``) and on oneDNN
(``gen_jax.ops.onednn_conv``), and their ratio. Needs the oneDNN kernels.
"""

import time

from absl import app, flags
import jax
import numpy as np

from gen_jax import xla_cpu
from gen_jax.ops import onednn_conv

flags.DEFINE_integer("batch", 256, "Batch size.")
flags.DEFINE_integer("repeats", 7, "Timed runs per measurement (the median is shown).")
FLAGS = flags.FLAGS

# name: (input NHWC without batch, kernel HWIO, strides, padding)
LAYERS = {
    "G 256->128 k5 on 7x7": ((7, 7, 256), (5, 5, 256, 128), (1, 1), ((2, 2), (2, 2))),
    "G 128->64x4 k3 on 7x7 (sub-pixel)": ((7, 7, 128), (3, 3, 128, 256), (1, 1), ((1, 1), (1, 1))),
    "G 64->1x4 k3 on 14x14 (sub-pixel)": ((14, 14, 64), (3, 3, 64, 4), (1, 1), ((1, 1), (1, 1))),
    "D 1->64 k5 s2 on 28x28": ((28, 28, 1), (5, 5, 1, 64), (2, 2), ((1, 2), (1, 2))),
    "D 64->128 k5 s2 on 14x14": ((14, 14, 64), (5, 5, 64, 128), (2, 2), ((1, 2), (1, 2))),
}


def _median_ms(fn, *args) -> float:
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times)) * 1e3


def _times(conv, x, w, g) -> tuple[float, float, float]:
  def input_grad(w, g):
    return jax.vjp(lambda x: conv(x, w), x)[1](g)[0]

  def kernel_grad(x, g):
    return jax.vjp(lambda w: conv(x, w), w)[1](g)[0]

  return _median_ms(conv, x, w), _median_ms(input_grad, w, g), _median_ms(kernel_grad, x, g)


def main(argv):
  del argv
  xla_cpu.configure()
  if not onednn_conv.available():
    raise SystemExit(f"oneDNN kernels not available: {onednn_conv.unavailable_reason()}")
  rng = np.random.default_rng(0)
  print("layer | forward | input grad | kernel grad   (ms: XLA / oneDNN = ratio)")
  totals = np.zeros((2, 3))
  for name, (x_shape, w_shape, strides, padding) in LAYERS.items():
    x = rng.standard_normal((FLAGS.batch, *x_shape), np.float32)
    w = rng.standard_normal(w_shape, np.float32)
    y_shape = jax.eval_shape(lambda x, w: onednn_conv.reference_conv2d(x, w, strides, padding),
                             x, w).shape
    g = rng.standard_normal(y_shape, np.float32)
    row = []
    for i, conv in enumerate((onednn_conv.reference_conv2d, onednn_conv.conv2d)):
      times = _times(lambda x, w, conv=conv: conv(x, w, strides, padding), x, w, g)
      totals[i] += times
      row.append(times)
    print(name + " | " + " | ".join(
        f"{a:.1f} / {b:.1f} = {a / b:.2f}x" for a, b in zip(*row)))
  print("all | " + " | ".join(f"{a:.1f} / {b:.1f} = {a / b:.2f}x" for a, b in zip(*totals)))


if __name__ == "__main__":
  app.run(main)
