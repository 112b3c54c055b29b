"""Convolution layers that are fast on XLA:CPU, forward and backward.

Why this module exists: XLA:CPU runs ordinary convolutions through a fast
library kernel (YNNPACK by default, oneDNN if enabled by flags), but falls
back to a slow generic kernel for convolutions with ``lhs_dilation`` (input
dilation, i.e. fractionally strided) and for a few other shapes (padding that
makes the output larger than the input, window reversal). Autodiff of
``flax.linen.ConvTranspose`` produces exactly those: for the DCGAN generator
layer 7x7x128 -> 14x14x64 (k5, s2) its backward pass was ~10x slower than
PyTorch's. The input gradient of a strided ``flax.linen.Conv`` is such a
convolution too (~2x slower than necessary).

The modules here compute *numerically the same function* as their flax
counterparts (same parameter names, shapes, layouts and initialisers, so
checkpoints are interchangeable; results agree up to float32 summation
order), but arrange the computation so that every convolution, forward and
backward, is one the fast kernels accept:

* :class:`ConvTranspose` (:func:`conv_transpose`): forward in *sub-pixel*
  form -- one stride-1 convolution whose kernel, assembled from the stored
  kernel by static zero-padding/reshaping, produces all ``prod(strides)``
  output phases as channels, followed by depth-to-space. Backward (custom
  VJP): the input gradient is the adjoint *strided* convolution of the output
  gradient, and the kernel gradient is that convolution's kernel gradient.
* :class:`Conv` (:func:`conv`): forward and kernel gradient are the direct
  strided convolution and its autodiff; the input gradient (custom VJP) goes
  through the *space-to-depth* form (space-to-depth of the input, then a
  stride-1 convolution with a rearranged kernel), whose transpose is a
  stride-1 convolution plus depth-to-space.

With stride 1 both are plain ``lax.conv_general_dilated`` calls. The
functional forms :func:`conv_transpose_subpixel` and :func:`conv_strided` are
also exported (plain JAX, no custom VJP, so they support forward-mode AD
except where the convolutions run on oneDNN: see below).

Every convolution here goes through :func:`_convolve`: on the CPU platform,
float32 2-D convolutions run on oneDNN when gen_jax's kernels are built and
there is one CPU device (:mod:`gen_jax.ops.onednn_conv`: same function; it
skips the taps on padding that XLA's kernels multiply by zero, and has
reverse-mode gradients of any order); otherwise on XLA's.

Derivation (per spatial dimension; everything is separable). Notation: input
length ``n``, kernel length ``k``, stride ``s``, padding ``(lo, hi)``.

Transposed convolution. ``lax.conv_transpose`` with ``transpose_kernel=False``
correlates the kernel with the stride-dilated input padded by ``(lo, hi)``
(for 'SAME'/'VALID' these follow from ``k`` and ``s`` as in ``lax``)::

    y[o] = sum_j w[j] * x[(o + j - lo) / s]   (only terms where it's integral)
    len(y) = (n - 1) * s + 1 + lo + hi - k + 1

Split the output into phases ``o = s*q + r``. A term needs ``o + j - lo =
s*i``, i.e. ``j = s*t + e - r`` with ``e = lo mod s``, and then ``i = q + t -
P`` with ``P = floor(lo / s)``. Hence for every phase ``r``::

    y[s*q + r] = sum_t W[t, r] * x[q + t - P],   W[t, r] = w[s*t + e - r]

(zero where the index leaves ``[0, k)``): one stride-1 correlation with
padding ``P`` in front, ``T = ceil((s - 1 - e + k) / s)`` taps and ``s *
features`` output channels. ``W`` is ``w`` zero-padded by ``s - 1 - e`` in
front and up to ``s*T`` at the back, reshaped to ``(T, s)`` with the phase
axis reversed. The phases are then interleaved (depth-to-space) and the
result cropped to ``len(y)``. Example, k=5, s=2, 'SAME' (lo=3): e=1, P=1,
T=3; ``y[2q] = w[1] x[q-1] + w[3] x[q]`` and ``y[2q+1] = w[0] x[q-1] + w[2]
x[q] + w[4] x[q+1]``.

Strided convolution. With ``j - lo = s*u + r`` (``0 <= r < s``)::

    y[o] = sum_j w[j] * x[s*o + j - lo]
         = sum_{u, r} w[s*u + r + lo] * X[o + u, r],   X[m, r] = x[s*m + r]

i.e. space-to-depth ``X`` of the input (zero-padded at the end to a multiple
of ``s``) correlated at stride 1 with the kernel ``W[u, r] = w[s*u + r +
lo]``, ``u`` from ``-ceil(lo / s)`` to ``floor((k - 1 - lo) / s)`` (the
negative ``u`` become front padding of ``X``).

Adjoint of the transposed convolution. ``<g, conv_transpose(x, w)> = <x,
conv(g, w')>`` where ``conv`` is the strided correlation with the spatially
flipped, in/out-swapped kernel ``w'`` and padding ``(k - 1 - lo, ...)``;
differentiating that bilinear form gives both gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
import functools
import math
from typing import Any

from flax import linen as nn
from flax.linen.dtypes import promote_dtype
import jax
from jax import lax
import jax.numpy as jnp

from gen_jax.ops import onednn_conv

Array = jax.Array
PaddingLike = str | int | Sequence[int | tuple[int, int]]
PrecisionLike = Any

__all__ = [
    "Conv",
    "ConvTranspose",
    "conv",
    "conv_padding",
    "conv_strided",
    "conv_transpose",
    "conv_transpose_padding",
    "conv_transpose_subpixel",
]

# ---------------------------------------------------------------------------
# Padding arithmetic (mirrors jax.lax exactly).
# ---------------------------------------------------------------------------


def _canonical_padding(padding: PaddingLike, rank: int) -> str | list[tuple[int, int]]:
  """Like ``flax.linen.linear.canonicalize_padding``."""
  if isinstance(padding, str):
    return padding.upper()
  if isinstance(padding, int):
    return [(padding, padding)] * rank
  if isinstance(padding, Sequence) and len(padding) == rank:
    pads = []
    for p in padding:
      if isinstance(p, int):
        pads.append((p, p))
      elif isinstance(p, Sequence) and len(p) == 2:
        pads.append((int(p[0]), int(p[1])))
      else:
        break
    if len(pads) == rank:
      return pads
  raise ValueError(
      f"Invalid padding {padding!r}: expected 'SAME', 'VALID', an int, or a "
      f"sequence of {rank} ints or (low, high) pairs."
  )


def conv_transpose_padding(
    kernel_size: Sequence[int],
    strides: Sequence[int],
    padding: PaddingLike,
) -> list[tuple[int, int]]:
  """Explicit ``(lo, hi)`` padding of the stride-dilated input.

  Same as ``jax.lax.conv_transpose`` (``use_consistent_padding=False``):
  'SAME'/'VALID' are interpreted as the padding of the corresponding forward
  convolution, explicit pairs are used as they are.

  Args:
    kernel_size: spatial kernel size, one int per spatial dim.
    strides: strides, one int per spatial dim.
    padding: 'SAME', 'VALID', an int, or a sequence of ints / (lo, hi) pairs.

  Returns:
    A list of ``(lo, hi)`` pairs, one per spatial dim.
  """
  pads = _canonical_padding(padding, len(kernel_size))
  if not isinstance(pads, str):
    return list(pads)
  out = []
  for k, s in zip(kernel_size, strides):
    if pads == "SAME":
      pad_len = k + s - 2
      pad_a = k - 1 if s > k - 1 else int(math.ceil(pad_len / 2))
    elif pads == "VALID":
      pad_len = k + s - 2 + max(k - s, 0)
      pad_a = k - 1
    else:
      raise ValueError(
          f"Unsupported padding {padding!r} for ConvTranspose: use 'SAME', "
          "'VALID' or explicit (low, high) pairs ('CIRCULAR' is not supported)."
      )
    out.append((pad_a, pad_len - pad_a))
  return out


def conv_padding(
    in_shape: Sequence[int],
    kernel_size: Sequence[int],
    strides: Sequence[int],
    padding: PaddingLike,
) -> list[tuple[int, int]]:
  """Explicit ``(lo, hi)`` padding of a forward convolution (``lax`` rules).

  Args:
    in_shape: spatial input shape.
    kernel_size: spatial kernel size.
    strides: strides.
    padding: 'SAME', 'VALID', an int, or a sequence of ints / (lo, hi) pairs.

  Returns:
    A list of ``(lo, hi)`` pairs, one per spatial dim.
  """
  pads = _canonical_padding(padding, len(kernel_size))
  if not isinstance(pads, str):
    return list(pads)
  if pads not in ("SAME", "VALID"):
    raise ValueError(
        f"Unsupported padding {padding!r} for Conv: use 'SAME', 'VALID' or "
        "explicit (low, high) pairs ('CIRCULAR', 'REFLECT', 'CAUSAL' are not "
        "supported)."
    )
  return [tuple(p) for p in lax.padtype_to_pads(in_shape, kernel_size, strides, pads)]


# ---------------------------------------------------------------------------
# Functional forms.
# ---------------------------------------------------------------------------


def _conv(x, w, pads, precision, preferred_element_type):
  """Stride-1 conv with (lo, hi) padding; negative amounts crop ``x`` first."""
  return _convolve(x, w, (1,) * (x.ndim - 2), pads, precision, preferred_element_type)


def _convolve(x, w, strides, pads, precision=None, preferred_element_type=None):
  """Every convolution of this module: ``lax.conv_general_dilated`` (channels
  last, no dilation) with (lo, hi) padding, negative amounts cropping ``x``.

  Padding is kept inside the convolution (not a separate ``pad`` op) so that
  the forward conv and both of its gradient convs keep output size <= input
  size, which XLA:CPU needs to dispatch them to its fast kernels. oneDNN
  takes the float32 2-D ones where it can (module docstring).
  """
  nd = x.ndim - 2
  if any(lo < 0 or hi < 0 for lo, hi in pads):
    idx = tuple(
        slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(pads, x.shape[1:-1])
    )
    x = x[(slice(None),) + idx]
  pads = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads)
  strides = tuple(strides)

  def on_xla(x, w):
    return lax.conv_general_dilated(
        x, w, strides, pads, dimension_numbers=_dimension_numbers(nd),
        precision=precision, preferred_element_type=preferred_element_type,
    )

  if preferred_element_type not in (None, jnp.float32) or not onednn_conv.supports(x, w):
    return on_xla(x, w)
  return lax.platform_dependent(
      x, w, cpu=lambda x, w: onednn_conv.conv2d(x, w, strides, pads), default=on_xla
  )


def _dimension_numbers(nd: int) -> lax.ConvDimensionNumbers:
  spatial = "HWDXYZ"[:nd] if nd <= 6 else None
  if spatial is None:
    raise ValueError(f"Too many spatial dims: {nd}")
  lhs = "N" + spatial + "C"
  rhs = spatial + "IO"
  return lax.conv_dimension_numbers(
      (1,) * (nd + 2), (1,) * (nd + 2), (lhs, rhs, lhs)
  )


def conv_transpose_subpixel(
    x: Array,
    kernel: Array,
    strides: Sequence[int],
    padding: PaddingLike = "SAME",
    precision: PrecisionLike = None,
    preferred_element_type: Any = None,
) -> Array:
  """``lax.conv_transpose`` (channels-last, no kernel transpose), sub-pixel form.

  Computes the same function as::

      lax.conv_transpose(x, kernel, strides, padding,
                         dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  (for any number of spatial dims) as one stride-1 convolution producing all
  ``prod(strides)`` output phases as channels, followed by depth-to-space. Its
  forward and backward passes contain no dilated convolutions.

  Args:
    x: input, shape ``(N, *spatial_in, C_in)``.
    kernel: kernel, shape ``(*kernel_size, C_in, C_out)``.
    strides: one stride per spatial dim (any positive ints).
    padding: 'SAME', 'VALID' (interpreted like ``lax.conv_transpose``) or
      explicit ``(lo, hi)`` pairs of the dilated input.
    precision: passed to ``lax.conv_general_dilated``.
    preferred_element_type: passed to ``lax.conv_general_dilated``.

  Returns:
    Output of shape ``(N, *spatial_out, C_out)`` with, per dim,
    ``out = (in - 1) * s + 1 + lo + hi - k + 1`` (``in * s`` for 'SAME').
  """
  nd = x.ndim - 2
  ksize = tuple(kernel.shape[:nd])
  strides = tuple(int(s) for s in strides)
  if len(strides) != nd or kernel.ndim != nd + 2:
    raise ValueError(
        f"Rank mismatch: x {x.shape}, kernel {kernel.shape}, strides {strides}"
    )
  if kernel.shape[nd] != x.shape[-1]:
    raise ValueError(
        f"Kernel expects {kernel.shape[nd]} input features, got {x.shape[-1]}"
    )
  pads = conv_transpose_padding(ksize, strides, padding)
  c_out = kernel.shape[-1]

  in_pads, out_len, taps, w = [], [], [], kernel
  for d, (n, k, s, (lo, hi)) in enumerate(zip(x.shape[1:-1], ksize, strides, pads)):
    o = (n - 1) * s + 1 + lo + hi - k + 1
    if o <= 0:
      raise ValueError(f"Empty output along spatial dim {d}: {o}")
    e = lo % s
    p_lo = lo // s  # floor, also for negative lo
    front = s - 1 - e
    t = -(-(front + k) // s)  # ceil
    q = -(-o // s)
    in_pads.append((p_lo, q + t - 1 - n - p_lo))
    out_len.append(o)
    taps.append(t)
    if s > 1:
      # W[t', r] = w[s*t' + e - r]: pad, split into (T, s), reverse phases.
      cfg = [(0, 0, 0)] * w.ndim
      cfg[2 * d] = (front, s * t - front - k, 0)
      w = lax.pad(w, jnp.zeros((), w.dtype), cfg)
      w = w.reshape(w.shape[: 2 * d] + (t, s) + w.shape[2 * d + 1 :])
      w = lax.rev(w, (2 * d + 1,))
    else:
      w = w.reshape(w.shape[: 2 * d] + (t, 1) + w.shape[2 * d + 1 :])
  # w: (T0, s0, T1, s1, ..., C_in, C_out) -> (T0, T1, ..., C_in, s0, s1, ..., C_out)
  perm = (
      tuple(range(0, 2 * nd, 2))
      + (2 * nd,)
      + tuple(range(1, 2 * nd, 2))
      + (2 * nd + 1,)
  )
  w = jnp.transpose(w, perm).reshape(
      tuple(taps) + (kernel.shape[nd], math.prod(strides) * c_out)
  )

  y = _conv(x, w, in_pads, precision, preferred_element_type)
  if any(s > 1 for s in strides):
    # Depth-to-space: (N, Q0, Q1, ..., s0, s1, ..., C) -> (N, Q0, s0, Q1, s1, ..., C)
    qs = y.shape[1:-1]
    y = y.reshape((y.shape[0],) + qs + strides + (c_out,))
    perm = (0,) + tuple(i for d in range(nd) for i in (1 + d, 1 + nd + d)) + (2 * nd + 1,)
    y = jnp.transpose(y, perm).reshape(
        (y.shape[0],) + tuple(q * s for q, s in zip(qs, strides)) + (c_out,)
    )
  if tuple(y.shape[1:-1]) != tuple(out_len):
    y = y[(slice(None),) + tuple(slice(0, o) for o in out_len)]
  return y


def conv_strided(
    x: Array,
    kernel: Array,
    strides: Sequence[int],
    padding: PaddingLike = "SAME",
    precision: PrecisionLike = None,
    preferred_element_type: Any = None,
) -> Array:
  """Strided convolution (channels-last) in space-to-depth form.

  Computes the same function as::

      lax.conv_general_dilated(x, kernel, strides, padding,
                               dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  (for any number of spatial dims) as space-to-depth of the input (zero-padded
  at the end to a multiple of the strides) followed by a stride-1 convolution
  with a rearranged kernel and the padding folded in, so that neither the
  forward nor the backward pass contains a dilated convolution.

  Args:
    x: input, shape ``(N, *spatial_in, C_in)``.
    kernel: kernel, shape ``(*kernel_size, C_in, C_out)``.
    strides: one stride per spatial dim.
    padding: 'SAME', 'VALID' or explicit ``(lo, hi)`` pairs (``lax`` rules).
    precision: passed to ``lax.conv_general_dilated``.
    preferred_element_type: passed to ``lax.conv_general_dilated``.

  Returns:
    Output of shape ``(N, *spatial_out, C_out)`` with, per dim,
    ``out = floor((in + lo + hi - k) / s) + 1`` (``ceil(in / s)`` for 'SAME').
  """
  nd = x.ndim - 2
  ksize = tuple(kernel.shape[:nd])
  strides = tuple(int(s) for s in strides)
  if len(strides) != nd or kernel.ndim != nd + 2:
    raise ValueError(
        f"Rank mismatch: x {x.shape}, kernel {kernel.shape}, strides {strides}"
    )
  if kernel.shape[nd] != x.shape[-1]:
    raise ValueError(
        f"Kernel expects {kernel.shape[nd]} input features, got {x.shape[-1]}"
    )
  pads = conv_padding(x.shape[1:-1], ksize, strides, padding)
  if all(s == 1 for s in strides):
    return _conv(x, kernel, pads, precision, preferred_element_type)
  c_in = x.shape[-1]
  end_pads, blocks, conv_pads, taps, w = [], [], [], [], kernel
  for d, (n, k, s, (lo, hi)) in enumerate(zip(x.shape[1:-1], ksize, strides, pads)):
    o = (n + lo + hi - k) // s + 1
    if o <= 0:
      raise ValueError(f"Empty output along spatial dim {d}: {o}")
    # Input offset j - lo = s*u + r with u in [u_min, u_max], r in [0, s).
    u_min = (-lo) // s  # floor(-lo / s)
    u_max = (k - 1 - lo) // s
    t = u_max - u_min + 1
    front = -(s * u_min + lo)  # in [0, s)
    m = -(-n // s)  # space-to-depth blocks of the unpadded input
    end_pads.append(s * m - n)
    blocks.append(m)
    conv_pads.append((-u_min, o - 1 + u_max - (m - 1)))
    taps.append(t)
    # W[u - u_min, r] = w[s*u + r + lo]
    cfg = [(0, 0, 0)] * w.ndim
    cfg[2 * d] = (front, s * t - front - k, 0)
    w = lax.pad(w, jnp.zeros((), w.dtype), cfg)
    w = w.reshape(w.shape[: 2 * d] + (t, s) + w.shape[2 * d + 1 :])
  # w: (T0, s0, T1, s1, ..., C_in, C_out) -> (T0, T1, ..., s0, s1, ..., C_in, C_out)
  perm = tuple(range(0, 2 * nd, 2)) + tuple(range(1, 2 * nd, 2)) + (2 * nd, 2 * nd + 1)
  w = jnp.transpose(w, perm).reshape(
      tuple(taps) + (math.prod(strides) * c_in, kernel.shape[-1])
  )
  # Space-to-depth: (N, M0, s0, M1, s1, ..., C) -> (N, M0, M1, ..., s0, s1, ..., C)
  if any(end_pads):
    x = jnp.pad(x, [(0, 0)] + [(0, e) for e in end_pads] + [(0, 0)])
  xs = x.reshape(
      (x.shape[0],) + tuple(v for m, s in zip(blocks, strides) for v in (m, s)) + (c_in,)
  )
  perm = (
      (0,)
      + tuple(range(1, 2 * nd + 1, 2))
      + tuple(range(2, 2 * nd + 1, 2))
      + (2 * nd + 1,)
  )
  xs = jnp.transpose(xs, perm).reshape(
      (x.shape[0],) + tuple(blocks) + (math.prod(strides) * c_in,)
  )
  return _conv(xs, w, conv_pads, precision, preferred_element_type)


# ---------------------------------------------------------------------------
# Fastest combination: custom VJPs.
# ---------------------------------------------------------------------------


def _flip_swap(w: Array) -> Array:
  """(*k, I, O) -> spatially flipped (*k, O, I)."""
  nd = w.ndim - 2
  return jnp.swapaxes(lax.rev(w, tuple(range(nd))), -1, -2)


def _conv_transpose_adjoint_pads(in_shape, ksize, strides, pads):
  """Padding of the strided conv that is the adjoint of the transposed conv."""
  out = []
  for n, k, s, (lo, hi) in zip(in_shape, ksize, strides, pads):
    o = (n - 1) * s + 1 + lo + hi - k + 1
    a = k - 1 - lo
    out.append((a, s * (n - 1) + k - a - o))
  return tuple(out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv_transpose_fast(x, kernel, strides, pads, precision, preferred_element_type):
  return conv_transpose_subpixel(
      x, kernel, strides, pads, precision, preferred_element_type
  )


def _conv_transpose_fast_fwd(x, kernel, strides, pads, precision, pet):
  y = conv_transpose_subpixel(x, kernel, strides, pads, precision, pet)
  return y, (x, kernel)


def _conv_transpose_fast_bwd(strides, pads, precision, pet, res, g):
  del pet
  x, kernel = res
  nd = x.ndim - 2
  adj_pads = _conv_transpose_adjoint_pads(
      x.shape[1:-1], kernel.shape[:nd], strides, pads
  )
  g = g.astype(x.dtype)

  def adjoint(w):
    # <g, conv_transpose(x, w)> == <x, adjoint(w)>: a plain strided conv of g,
    # whose gradients w.r.t. g and w are fast on XLA:CPU as well.
    return _convolve(g, _flip_swap(w), strides, adj_pads, precision)

  dx, adjoint_vjp = jax.vjp(adjoint, kernel)
  (dw,) = adjoint_vjp(x)
  return dx, dw


_conv_transpose_fast.defvjp(_conv_transpose_fast_fwd, _conv_transpose_fast_bwd)


def conv_transpose(
    x: Array,
    kernel: Array,
    strides: Sequence[int],
    padding: PaddingLike = "SAME",
    precision: PrecisionLike = None,
    preferred_element_type: Any = None,
) -> Array:
  """Drop-in for channels-last ``lax.conv_transpose``, fast on XLA:CPU.

  Same function (and gradient) as ``lax.conv_transpose(x, kernel, strides,
  padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))``. Forward: sub-pixel
  form (:func:`conv_transpose_subpixel`). Backward (custom VJP): the input
  gradient is the adjoint strided convolution of the output gradient and the
  kernel gradient is that convolution's kernel gradient, which XLA:CPU runs
  fast (unlike the ``lhs_dilation`` convolutions that autodiff of
  ``lax.conv_transpose`` produces). Stride 1 is a plain convolution.
  Reverse-mode AD of any order works; forward-mode (``jax.jvp``) does not,
  because of the custom VJP (use :func:`conv_transpose_subpixel` for that,
  on XLA's convolutions: ``GEN_JAX_ONEDNN=0`` or several devices).

  Args:
    x: input, shape ``(N, *spatial_in, C_in)``.
    kernel: kernel, shape ``(*kernel_size, C_in, C_out)``.
    strides: one stride per spatial dim.
    padding: 'SAME', 'VALID' or explicit ``(lo, hi)`` pairs (as in
      ``lax.conv_transpose``).
    precision: passed to the convolutions.
    preferred_element_type: passed to the forward convolution.

  Returns:
    Output of shape ``(N, *spatial_out, C_out)``.
  """
  nd = x.ndim - 2
  strides = tuple(int(s) for s in strides)
  pads = tuple(
      tuple(p) for p in conv_transpose_padding(kernel.shape[:nd], strides, padding)
  )
  if all(s == 1 for s in strides):
    return conv_transpose_subpixel(
        x, kernel, strides, pads, precision, preferred_element_type
    )
  return _conv_transpose_fast(
      x, kernel, strides, pads, precision, preferred_element_type
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv_fast(x, kernel, strides, pads, precision, preferred_element_type):
  return _convolve(x, kernel, strides, pads, precision, preferred_element_type)


def _conv_fast_fwd(x, kernel, strides, pads, precision, pet):
  return _conv_fast(x, kernel, strides, pads, precision, pet), (x, kernel)


def _conv_fast_bwd(strides, pads, precision, pet, res, g):
  del pet
  x, kernel = res
  g = g.astype(x.dtype)
  # Input gradient through the space-to-depth form (stride-1 convs only).
  _, s2d_vjp = jax.vjp(
      lambda xx: conv_strided(xx, kernel, strides, pads, precision), x
  )
  (dx,) = s2d_vjp(g)
  # Kernel gradient of the direct strided conv (an rhs-dilated conv; fast).
  _, direct_vjp = jax.vjp(
      lambda ww: _convolve(x, ww, strides, pads, precision),
      kernel,
  )
  (dw,) = direct_vjp(g)
  return dx, dw


_conv_fast.defvjp(_conv_fast_fwd, _conv_fast_bwd)


def conv(
    x: Array,
    kernel: Array,
    strides: Sequence[int],
    padding: PaddingLike = "SAME",
    precision: PrecisionLike = None,
    preferred_element_type: Any = None,
) -> Array:
  """Drop-in for channels-last ``lax.conv_general_dilated``, fast on XLA:CPU.

  Same function (and gradient) as ``lax.conv_general_dilated(x, kernel,
  strides, padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))``. Forward and
  kernel gradient: the direct strided convolution and its autodiff. Input
  gradient (custom VJP): through the space-to-depth form
  (:func:`conv_strided`), avoiding the slow ``lhs_dilation`` convolution.
  Reverse-mode AD of any order works; forward-mode (``jax.jvp``) does not
  for strides > 1 (use :func:`conv_strided` for that, on XLA's convolutions)
  nor on oneDNN's.

  Args:
    x: input, shape ``(N, *spatial_in, C_in)``.
    kernel: kernel, shape ``(*kernel_size, C_in, C_out)``.
    strides: one stride per spatial dim.
    padding: 'SAME', 'VALID' or explicit ``(lo, hi)`` pairs.
    precision: passed to the convolutions.
    preferred_element_type: passed to the forward convolution.

  Returns:
    Output of shape ``(N, *spatial_out, C_out)``.
  """
  nd = x.ndim - 2
  strides = tuple(int(s) for s in strides)
  pads = tuple(
      tuple(p)
      for p in conv_padding(x.shape[1:-1], kernel.shape[:nd], strides, padding)
  )
  if all(s == 1 for s in strides):
    return _conv(x, kernel, pads, precision, preferred_element_type)
  return _conv_fast(x, kernel, strides, pads, precision, preferred_element_type)


# ---------------------------------------------------------------------------
# Flax Linen modules.
# ---------------------------------------------------------------------------


def _tuple(x: int | Sequence[int] | None, n: int, name: str) -> tuple[int, ...]:
  if x is None:
    x = 1
  if isinstance(x, int):
    return (x,) * n
  x = tuple(int(v) for v in x)
  if len(x) != n:
    raise ValueError(f"{name} has {len(x)} entries, expected {n}")
  return x


def _kernel_size(kernel_size: int | Sequence[int]) -> tuple[int, ...]:
  # An int means a square 2-D kernel (flax would read it as a 1-D kernel,
  # which on NHWC inputs silently convolves along W only).
  if isinstance(kernel_size, int):
    return (kernel_size, kernel_size)
  return tuple(int(k) for k in kernel_size)


class _ConvBase(nn.Module):
  """Shared attributes and parameter handling of :class:`Conv`/:class:`ConvTranspose`."""

  features: int
  kernel_size: int | Sequence[int]
  strides: int | Sequence[int] | None = None
  padding: PaddingLike = "SAME"
  use_bias: bool = True
  mask: Array | None = None
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: PrecisionLike = None
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()
  preferred_element_type: Any = None

  def _apply(self, fn, inputs: Array, kernel_shape_fn) -> Array:
    kernel_size = _kernel_size(self.kernel_size)
    nd = len(kernel_size)
    strides = _tuple(self.strides, nd, "strides")
    # Flatten / add batch dims exactly like flax.
    num_batch = inputs.ndim - (nd + 1)
    if num_batch < 0:
      raise ValueError(
          f"Input of rank {inputs.ndim} is too small for a {nd}-D kernel"
      )
    batch_shape = inputs.shape[:num_batch]
    if num_batch != 1:
      inputs = jnp.reshape(inputs, (-1,) + inputs.shape[num_batch:])
    kernel_shape = kernel_size + kernel_shape_fn(inputs.shape[-1])
    if self.mask is not None and self.mask.shape != kernel_shape:
      raise ValueError(
          "Mask needs to have the same shape as weights. "
          f"Shapes are: {self.mask.shape}, {kernel_shape}"
      )
    kernel = self.param("kernel", self.kernel_init, kernel_shape, self.param_dtype)
    if self.mask is not None:
      kernel *= self.mask
    bias = (
        self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        if self.use_bias
        else None
    )
    inputs, kernel, bias = promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    y = fn(inputs, kernel, strides)
    if bias is not None:
      y += jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))
    if num_batch != 1:
      y = jnp.reshape(y, batch_shape + y.shape[1:])
    return y


class ConvTranspose(_ConvBase):
  """Transposed convolution: ``flax.linen.ConvTranspose``, fast on XLA:CPU.

  Computes the same function as ``flax.linen.ConvTranspose`` with
  ``transpose_kernel=False`` (i.e. ``lax.conv_transpose`` with channels-last
  dimension numbers) and has the same parameters (``kernel`` of shape
  ``(*kernel_size, in_features, features)``, ``bias`` of shape
  ``(features,)``), so parameters, checkpoints and initialisers are
  interchangeable. The forward pass is the sub-pixel form (one stride-1
  convolution producing all ``prod(strides)`` output phases, then
  depth-to-space); the backward pass is the adjoint strided convolution (see
  :func:`conv_transpose`). Flax's version runs ``lhs_dilation`` convolutions
  forward and backward, which XLA:CPU executes up to ~10x slower.

  Attributes:
    features: number of output features.
    kernel_size: spatial kernel shape; an int means a square 2-D kernel
      ``(k, k)`` (unlike flax, where it means a 1-D kernel).
    strides: int or one int per spatial dim (default 1).
    padding: 'SAME', 'VALID', an int, or per-dim ints / ``(lo, hi)`` pairs,
      with ``lax.conv_transpose`` semantics. 'CIRCULAR' is not supported.
    use_bias: whether to add a bias.
    mask: optional mask multiplied into the kernel.
    dtype: computation dtype (default: inferred from inputs and params).
    param_dtype: parameter dtype.
    precision: convolution precision.
    kernel_init: kernel initializer (flax default: LeCun normal).
    bias_init: bias initializer.
    preferred_element_type: accumulation/output dtype of the forward conv.

  Not supported (unlike flax): ``kernel_dilation``, ``transpose_kernel=True``,
  'CIRCULAR' padding.

  Shapes:
    inputs ``(*batch, *spatial_in, in_features)`` (any number of leading
    batch dims, as in flax) -> ``(*batch, *spatial_out, features)``, with
    ``spatial_out = spatial_in * strides`` for 'SAME' and
    ``(spatial_in - 1) * strides + max(kernel_size, strides)`` for 'VALID'.
  """

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    """Applies the transposed convolution.

    Args:
      inputs: ``(*batch, *spatial_in, in_features)``.

    Returns:
      ``(*batch, *spatial_out, features)``.
    """
    return self._apply(
        lambda x, w, s: conv_transpose(
            x, w, s, self.padding, self.precision, self.preferred_element_type
        ),
        inputs,
        lambda c_in: (c_in, self.features),
    )


class Conv(_ConvBase):
  """Convolution: ``flax.linen.Conv``, with a fast strided backward on XLA:CPU.

  Computes the same function as ``flax.linen.Conv`` (no dilation, no feature
  groups) with the same parameters (``kernel`` of shape ``(*kernel_size,
  in_features, features)``, ``bias`` ``(features,)``). For strides > 1 the
  input gradient -- which autodiff makes an ``lhs_dilation`` convolution, slow
  on XLA:CPU -- goes through the space-to-depth form instead (see
  :func:`conv`). With stride 1 this is exactly ``lax.conv_general_dilated``.

  Attributes:
    features: number of output features.
    kernel_size: spatial kernel shape; an int means a square 2-D kernel
      ``(k, k)`` (unlike flax, where it means a 1-D kernel).
    strides: int or one int per spatial dim (default 1).
    padding: 'SAME', 'VALID', an int, or per-dim ints / ``(lo, hi)`` pairs
      (``lax`` semantics). 'CIRCULAR', 'REFLECT', 'CAUSAL' are not supported.
    use_bias: whether to add a bias.
    mask: optional mask multiplied into the kernel.
    dtype: computation dtype (default: inferred from inputs and params).
    param_dtype: parameter dtype.
    precision: convolution precision.
    kernel_init: kernel initializer (flax default: LeCun normal).
    bias_init: bias initializer.
    preferred_element_type: accumulation/output dtype of the forward conv.

  Not supported (unlike flax): ``input_dilation``, ``kernel_dilation``,
  ``feature_group_count``, unshared weights, 'CIRCULAR'/'REFLECT'/'CAUSAL'
  padding.

  Shapes:
    inputs ``(*batch, *spatial_in, in_features)`` ->
    ``(*batch, *spatial_out, features)`` with ``spatial_out =
    ceil(spatial_in / strides)`` for 'SAME'.
  """

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    """Applies the convolution.

    Args:
      inputs: ``(*batch, *spatial_in, in_features)``.

    Returns:
      ``(*batch, *spatial_out, features)``.
    """
    return self._apply(
        lambda x, w, s: conv(
            x, w, s, self.padding, self.precision, self.preferred_element_type
        ),
        inputs,
        lambda c_in: (c_in, self.features),
    )


# Final activations of generators and decoders, by config name.
OUTPUT_ACTIVATIONS = {
    "tanh": jnp.tanh,
    "none": lambda x: x,
}
