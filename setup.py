"""Builds gen_jax's optional oneDNN convolution kernels; the rest is in setup.cfg.

The extension (``gen_jax/ops/onednn_conv.cc``, see ``gen_jax/ops/onednn_conv.py``)
is for Linux x86-64, compiled against the oneDNN and jaxlib wheels that
``pyproject.toml`` lists as build requirements. It is optional: where it cannot
be built, gen_jax installs without it and runs on XLA's own convolutions.
"""

import importlib.metadata
import importlib.util
import pathlib
import platform

import setuptools


def _wheel_dir(distribution: str, file_name: str) -> str:
  """The directory of ``file_name`` among an installed wheel's files."""
  for file in importlib.metadata.distribution(distribution).files or []:
    if file.name == file_name:
      return str(file.locate().parent)
  raise FileNotFoundError(f"{file_name} is not in {distribution}")


def _onednn_extensions() -> list[setuptools.Extension]:
  if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
    return []
  try:
    jaxlib = pathlib.Path(importlib.util.find_spec("jaxlib").submodule_search_locations[0])
    include_dirs = [str(jaxlib / "include"), _wheel_dir("onednn-devel-cpu-gomp", "dnnl.hpp")]
    library_dirs = [_wheel_dir("onednn-cpu-gomp", "libdnnl.so")]
  except (AttributeError, FileNotFoundError, importlib.metadata.PackageNotFoundError) as e:
    print(f"gen_jax: building without the oneDNN convolutions ({e})")
    return []
  return [setuptools.Extension(
      "gen_jax.ops._onednn_conv", ["gen_jax/ops/onednn_conv.cc"],
      include_dirs=include_dirs, library_dirs=library_dirs, libraries=["dnnl"],
      extra_compile_args=["-std=c++17", "-O2"], language="c++", optional=True)]


setuptools.setup(ext_modules=_onednn_extensions())
