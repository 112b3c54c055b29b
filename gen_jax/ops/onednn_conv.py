"""oneDNN convolutions for XLA:CPU, with gradients of any order.

XLA's CPU convolutions (Eigen) multiply through the zero padding of small
feature maps; oneDNN skips those taps. For the DCGAN generator's 5x5 layer on
7x7 maps that is a third of the work: forward and both gradients run ~1.5x
faster (``benchmarks/conv_kernels.py``). :mod:`gen_jax.models.layers` routes
its float32 2-D convolutions here when the extension is built, and only for
the CPU platform: on GPU and TPU the same code lowers to XLA's convolution.

The kernels are a small C++ extension (``onednn_conv.cc``) built at install
time against the ``onednn-cpu-gomp`` wheel (Linux x86-64 only; elsewhere, or
if the build failed, :func:`available` is False and XLA's convolutions are
used). Set ``GEN_JAX_ONEDNN=0`` to turn it off.

The three operations (forward, input gradient, kernel gradient) are bilinear
and each one's VJP is made of the other two, so reverse-mode AD of any order
works (WGAN-GP's and R1's penalties differentiate through gradients).
Forward-mode AD does not. The custom call is not SPMD-partitioned, so it is
used only when there is one CPU device (a CPU machine in one process); with
several (simulated devices, multi-process CPU runs) the layers use XLA's.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.metadata
import os
import pathlib

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

# FFI target names -> symbols in the extension.
_TARGETS = {
    "gen_jax_onednn_conv_forward": "GenJaxOnednnConvForward",
    "gen_jax_onednn_conv_backward_data": "GenJaxOnednnConvBackwardData",
    "gen_jax_onednn_conv_backward_weights": "GenJaxOnednnConvBackwardWeights",
}
ONEDNN_DISTRIBUTION = "onednn-cpu-gomp"

Padding = tuple[tuple[int, int], tuple[int, int]]


def _libdnnl_path() -> str | None:
  """libdnnl.so from the oneDNN wheel (installed under the environment's lib/)."""
  try:
    files = importlib.metadata.distribution(ONEDNN_DISTRIBUTION).files or []
  except importlib.metadata.PackageNotFoundError:
    return None
  for file in files:
    if file.name.startswith("libdnnl.so."):
      return str(file.locate())
  return None


@functools.cache
def _load() -> str | None:
  """Loads the extension and registers its FFI targets; returns why not, or None."""
  if os.environ.get("GEN_JAX_ONEDNN", "1") == "0":
    return "turned off by GEN_JAX_ONEDNN=0"
  extensions = sorted(pathlib.Path(__file__).parent.glob("_onednn_conv*.so"))
  if not extensions:
    return "the extension gen_jax/ops/_onednn_conv*.so was not built at install"
  libdnnl = _libdnnl_path()
  if libdnnl is None:
    return f"libdnnl.so not found: pip install {ONEDNN_DISTRIBUTION}"
  try:
    # Loaded globally first so that the extension's libdnnl.so.3 resolves to it.
    ctypes.CDLL(libdnnl, mode=ctypes.RTLD_GLOBAL)
    library = ctypes.CDLL(str(extensions[0]))
  except OSError as e:
    return f"loading failed: {e}"
  for target, symbol in _TARGETS.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                platform="cpu")
  return None


def available() -> bool:
  """Whether the oneDNN kernels are built and loaded."""
  return _load() is None


def unavailable_reason() -> str | None:
  """Why :func:`available` is False (None when it is True)."""
  return _load()


def supports(x: jax.Array, kernel: jax.Array) -> bool:
  """Whether :mod:`gen_jax.models.layers` should run this convolution here.

  float32 NHWC/HWIO operands, the kernels loaded, and a single CPU device:
  the custom call is not SPMD-partitioned, so on a mesh of several devices XLA
  would gather every operand onto each of them, and XLA's own convolutions
  are used instead.
  """
  return (x.ndim == 4 and kernel.ndim == 4 and x.dtype == jnp.float32
          and kernel.dtype == jnp.float32 and not _xla_only and available()
          and len(jax.devices("cpu")) == 1)


_xla_only = False


@contextlib.contextmanager
def xla_convolutions():
  """Functions traced inside use XLA's convolutions only.

  For counting FLOPs: XLA's cost analysis does not see into custom calls.
  ``jit`` caches traces, so trace a fresh function inside, and call
  ``jax.clear_caches()`` before tracing it again outside.
  """
  global _xla_only
  saved, _xla_only = _xla_only, True
  try:
    yield
  finally:
    _xla_only = saved


def _attributes(strides: tuple[int, int], padding: Padding) -> dict[str, np.int64]:
  (top, bottom), (left, right) = padding
  values = dict(stride_h=strides[0], stride_w=strides[1], pad_top=top, pad_bottom=bottom,
                pad_left=left, pad_right=right)
  return {name: np.int64(value) for name, value in values.items()}


def _call(target: str, shape: tuple[int, ...], a: jax.Array, b: jax.Array,
          strides: tuple[int, int], padding: Padding) -> jax.Array:
  return jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(shape, jnp.float32),
                          vmap_method="sequential")(a, b, **_attributes(strides, padding))


# forward(x, w) = conv(x, w); data(g, w) = d<g, conv(x, w)>/dx;
# weights(x, g) = d<g, conv(x, w)>/dw. Each is linear in both operands, so
# each VJP is a pair of the others, computed from the two operands.


def _saving_operands(op):
  """The custom-VJP forward rule of a bilinear ``op(a, b, *static)``."""
  def forward_rule(a, b, *static):
    return op(a, b, *static), (a, b)
  return forward_rule


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _forward(x, kernel, strides, padding):
  shape = lax.conv_general_shape_tuple(x.shape, kernel.shape, strides, padding,
                                       ("NHWC", "HWIO", "NHWC"))
  return _call("gen_jax_onednn_conv_forward", tuple(map(int, shape)), x, kernel, strides,
               padding)


def _forward_bwd(strides, padding, residuals, g):
  x, kernel = residuals
  return (_data(g, kernel, x.shape, strides, padding),
          _weights(x, g, kernel.shape, strides, padding))


_forward.defvjp(_saving_operands(_forward), _forward_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _data(g, kernel, x_shape, strides, padding):
  return _call("gen_jax_onednn_conv_backward_data", x_shape, g, kernel, strides, padding)


def _data_bwd(x_shape, strides, padding, residuals, dx):
  g, kernel = residuals
  return (_forward(dx, kernel, strides, padding),
          _weights(dx, g, kernel.shape, strides, padding))


_data.defvjp(_saving_operands(_data), _data_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _weights(x, g, kernel_shape, strides, padding):
  return _call("gen_jax_onednn_conv_backward_weights", kernel_shape, x, g, strides, padding)


def _weights_bwd(kernel_shape, strides, padding, residuals, dw):
  x, g = residuals
  return (_data(g, dw, x.shape, strides, padding), _forward(x, dw, strides, padding))


_weights.defvjp(_saving_operands(_weights), _weights_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
           padding: Padding) -> jax.Array:
  """2-D convolution on oneDNN: ``lax.conv_general_dilated`` for NHWC/HWIO.

  Args:
    x: float32 [N, H, W, C].
    kernel: float32 [KH, KW, C, O].
    strides: (sh, sw).
    padding: ((top, bottom), (left, right)), each >= 0.

  Returns:
    float32 [N, OH, OW, O] with ``OH = (H + top + bottom - KH) // sh + 1``
    (likewise OW). Call it only on the CPU platform (see
    :mod:`gen_jax.models.layers`); raises if the kernels are not loaded.
  """
  reason = unavailable_reason()
  if reason is not None:
    raise RuntimeError(f"gen_jax's oneDNN convolution is not available: {reason}")
  strides = tuple(int(s) for s in strides)
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  if any(p < 0 for pair in padding for p in pair):
    raise ValueError(f"padding must be >= 0 (crop the input instead), got {padding}")
  return _forward(x, kernel, strides, padding)


def reference_conv2d(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                     padding: Padding) -> jax.Array:
  """The same convolution on XLA (what :func:`conv2d` is tested against)."""
  return lax.conv_general_dilated(x, kernel, strides, padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
