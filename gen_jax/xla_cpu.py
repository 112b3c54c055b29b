"""Faster XLA:CPU settings, applied at start-up before JAX opens its backend.

Two changes, each measured on the DCGAN-on-MNIST train step on a 2-core CPU
(``benchmarks/throughput.py`` against ``benchmarks/torch_dcgan_reference.py``):

* Convolutions run on XLA's Eigen kernels instead of YNNPACK
  (``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``; dots
  stay on YNNPACK). The DCGAN's convolutions, forward and both gradients in
  the forms :mod:`gen_jax.models.layers` emits, ran 1.2-1.4x faster there
  (only the tiny 64->1 output layer did not gain); the generator's 256->128
  5x5 layer on 7x7 maps, 60% of the step's FLOPs, went from ~1.6x to ~1.3x
  PyTorch's time. XLA reads ``XLA_FLAGS`` once, when the backend starts, and
  aborts on a flag or value it does not know, so the flag is only added for
  jaxlib versions where it was checked, on CPU-only runs, before the backend
  exists, and never when ``XLA_FLAGS`` already choose the YNNPACK fusion
  types (which is how to opt out, e.g.
  ``--xla_cpu_experimental_ynn_fusion_type=+individual_convolution`` keeps
  YNNPACK's defaults).
* Threefry random bits (dropout masks, latents) are lowered with the five
  rounds unrolled, as JAX does on GPU/TPU. On CPU JAX keeps them in a loop to
  compile faster, but every iteration copies the loop state, so the DCGAN's
  six dropout masks per step took ~200 ms instead of ~20 ms. The bits are
  identical.
"""

import importlib.metadata
import importlib.util
import os

from absl import logging

CONVOLUTIONS_ON_EIGEN = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
# jaxlib (major, minor) versions that know the flag and were measured with it.
VERIFIED_JAXLIB_VERSIONS = ((0, 10),)
# jax versions whose private threefry lowering this module re-registers.
VERIFIED_JAX_VERSIONS = ((0, 10),)


def configure() -> None:
  """Applies both settings where they are known to be safe; call it first.

  Must run before the first JAX computation (the ``gen-jax`` command and
  ``benchmarks/throughput.py`` call it at start-up). Called later, it leaves
  ``XLA_FLAGS`` alone; the threefry lowering then applies to functions
  compiled afterwards.
  """
  old_flags = os.environ.get("XLA_FLAGS", "")
  new_flags = xla_flags_with_cpu_settings(old_flags, _version("jaxlib"))
  if new_flags != old_flags and _cpu_only() and not _backend_started():
    os.environ["XLA_FLAGS"] = new_flags
    logging.info("XLA_FLAGS=%s", new_flags)
  unroll_threefry_on_cpu()


def xla_flags_with_cpu_settings(xla_flags: str, jaxlib_version: tuple[int, ...]) -> str:
  """``xla_flags`` plus :data:`CONVOLUTIONS_ON_EIGEN`, where that is safe.

  Args:
    xla_flags: the current ``XLA_FLAGS`` value.
    jaxlib_version: installed jaxlib version, e.g. ``(0, 10, 2)``.

  Returns:
    ``xla_flags`` unchanged if the jaxlib version was not checked or the
    flags already set the YNNPACK fusion types; else with the flag appended.
  """
  flag_name = CONVOLUTIONS_ON_EIGEN.split("=")[0]
  if tuple(jaxlib_version[:2]) not in VERIFIED_JAXLIB_VERSIONS or flag_name in xla_flags:
    return xla_flags
  return f"{xla_flags} {CONVOLUTIONS_ON_EIGEN}".strip()


def unroll_threefry_on_cpu() -> bool:
  """Lowers threefry on CPU like on other platforms (unrolled); same bits.

  Returns:
    Whether the lowering was registered (only for checked jax versions).
  """
  if _version("jax")[:2] not in VERIFIED_JAX_VERSIONS:
    return False
  try:
    from jax._src.interpreters import mlir  # pylint: disable=g-import-not-at-top
    from jax._src.random import threefry2x32  # pylint: disable=g-import-not-at-top
    mlir.register_lowering(threefry2x32.threefry2x32_p,
                           threefry2x32._threefry2x32_lowering_rule,  # pylint: disable=protected-access
                           platform="cpu", inline=False)
  except (ImportError, AttributeError):
    return False
  return True


def _version(package: str) -> tuple[int, ...]:
  try:
    parts = importlib.metadata.version(package).split(".")[:2]
    return tuple(int(p) for p in parts)
  except (importlib.metadata.PackageNotFoundError, ValueError):
    return ()


def _cpu_only() -> bool:
  """Whether JAX will run on the CPU alone (no GPU/TPU backend to find)."""
  import jax  # pylint: disable=g-import-not-at-top
  platforms = jax.config.jax_platforms
  if platforms:
    return all(p.strip() == "cpu" for p in platforms.split(","))
  has_plugins = bool(importlib.metadata.entry_points(group="jax_plugins"))
  return not (has_plugins or importlib.util.find_spec("jax_plugins")
              or importlib.util.find_spec("libtpu"))


def _backend_started() -> bool:
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    return xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):
    return True  # Cannot tell: leave XLA_FLAGS alone.
