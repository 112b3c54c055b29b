"""The InceptionV3 feature network of FID (and the Inception Score), in Flax.

Protocol facts (recorded with every result through ``PROTOCOL_NAME`` and
``PREPROCESSING``):

* Network: the TF graph ``inception-2015-12-05`` used by the original FID and
  IS code, in the PyTorch port of the ``pytorch-fid`` package. It is not
  torchvision's InceptionV3: the average pools of the 35x35, 17x17 and first
  8x8 blocks (Mixed_5b-d, Mixed_6b-e, Mixed_7b) ignore the zero padding,
  the pool branch of the last block (Mixed_7c) max-pools, BatchNorm's epsilon
  is 1e-3, there is no auxiliary head, and the classifier has 1008 classes.
* Outputs: ``pool``, the 2048-d global average of Mixed_7c ("pool3", the FID
  and KID features), and ``logits``, the 1008 outputs of the ``fc`` layer
  (the Inception Score's classifier).
* Weights: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (a torch
  state_dict), or the ``.npz`` with the same keys that ``convert`` writes.
  gen_jax cannot download them. :func:`weights_hash` identifies the file.
* Input: uint8 RGB images of any size (grayscale is repeated to three
  channels), scaled to [0, 1], resized to 299x299 as pytorch-fid does
  (``F.interpolate(mode='bilinear', align_corners=False)``: half-pixel
  centres, no antialiasing when downsampling), then mapped to [-1, 1]. The
  TF FID code resized differently, so figures on images that are not 299x299
  agree with pytorch-fid's, not necessarily with TF's.

Convert a ``.pth`` once, on a machine with torch, to the portable ``.npz``::

  python -m gen_jax.evaluation.inception convert pt_inception-2015-12-05-6726825d.pth inception.npz
"""

import argparse
import functools
import pathlib
from typing import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import npz

PROTOCOL_NAME = "inception-v3-fid (pytorch-fid 2015-12-05 port)"
PREPROCESSING = ("uint8 -> [0, 1], grayscale repeated to RGB, bilinear resize to 299x299 "
                 "(half-pixel centres, no antialiasing, as pytorch-fid's F.interpolate), "
                 "then 2x - 1")
INPUT_SIZE = 299
NUM_CLASSES = 1008
BN_EPSILON = 1e-3

# Flax leaf (collection, name) -> torch state_dict suffix.
_TORCH_LEAF_NAMES = {
    ("params", "kernel"): "weight",
    ("params", "scale"): "weight",
    ("params", "bias"): "bias",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}
# BatchNorm's step counter: in torch state_dicts, but no weight (torch's own
# loader does not require it either).
_IGNORED_TORCH_SUFFIX = ".num_batches_tracked"
_TORCH_SUFFIXES = (".pth", ".pt")


class ConvBN(nn.Module):
  """Convolution without bias, BatchNorm (running statistics), ReLU.

  The reference calls it ``BasicConv2d``; its submodules are named ``conv``
  and ``bn`` as there, so parameter paths map one to one to torch keys.

  Attributes:
    features: output channels.
    kernel_size: (height, width).
    strides: the same in both dimensions.
    padding: (height, width) zeros on each side.
  """

  features: int
  kernel_size: tuple[int, int] = (1, 1)
  strides: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, H, W, C] -> [B, H', W', features]."""
    x = nn.Conv(self.features, self.kernel_size, self.strides,
                padding=[(p, p) for p in self.padding], use_bias=False, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name="bn")(x)
    return nn.relu(x)


def _average_pool_3x3(x: jax.Array) -> jax.Array:
  # TF's average pool divides by the number of pixels inside the image.
  return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_stride_2(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), (2, 2))


class InceptionA(nn.Module):
  """The 35x35 block (Mixed_5b-d): 64 + 64 + 96 + ``pool_features`` channels."""

  pool_features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, 35, 35, C] -> [B, 35, 35, 224 + pool_features]."""
    branch1x1 = ConvBN(64, name="branch1x1")(x)
    branch5x5 = ConvBN(48, name="branch5x5_1")(x)
    branch5x5 = ConvBN(64, (5, 5), padding=(2, 2), name="branch5x5_2")(branch5x5)
    branch3x3dbl = ConvBN(64, name="branch3x3dbl_1")(x)
    branch3x3dbl = ConvBN(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = ConvBN(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(branch3x3dbl)
    branch_pool = ConvBN(self.pool_features, name="branch_pool")(_average_pool_3x3(x))
    return jnp.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nn.Module):
  """The 35x35 -> 17x17 reduction (Mixed_6a): 384 + 96 + C channels."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, 35, 35, C] -> [B, 17, 17, 480 + C]."""
    branch3x3 = ConvBN(384, (3, 3), strides=2, name="branch3x3")(x)
    branch3x3dbl = ConvBN(64, name="branch3x3dbl_1")(x)
    branch3x3dbl = ConvBN(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = ConvBN(96, (3, 3), strides=2, name="branch3x3dbl_3")(branch3x3dbl)
    return jnp.concatenate([branch3x3, branch3x3dbl, _max_pool_3x3_stride_2(x)], axis=-1)


class InceptionC(nn.Module):
  """The 17x17 block (Mixed_6b-e) with factorised 7x7 convolutions: 4 x 192 channels."""

  channels_7x7: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, 17, 17, C] -> [B, 17, 17, 768]."""
    c7 = self.channels_7x7
    branch1x1 = ConvBN(192, name="branch1x1")(x)
    branch7x7 = ConvBN(c7, name="branch7x7_1")(x)
    branch7x7 = ConvBN(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(branch7x7)
    branch7x7 = ConvBN(192, (7, 1), padding=(3, 0), name="branch7x7_3")(branch7x7)
    branch7x7dbl = ConvBN(c7, name="branch7x7dbl_1")(x)
    branch7x7dbl = ConvBN(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(branch7x7dbl)
    branch7x7dbl = ConvBN(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(branch7x7dbl)
    branch7x7dbl = ConvBN(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(branch7x7dbl)
    branch7x7dbl = ConvBN(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(branch7x7dbl)
    branch_pool = ConvBN(192, name="branch_pool")(_average_pool_3x3(x))
    return jnp.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=-1)


class InceptionD(nn.Module):
  """The 17x17 -> 8x8 reduction (Mixed_7a): 320 + 192 + C channels."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, 17, 17, C] -> [B, 8, 8, 512 + C]."""
    branch3x3 = ConvBN(192, name="branch3x3_1")(x)
    branch3x3 = ConvBN(320, (3, 3), strides=2, name="branch3x3_2")(branch3x3)
    branch7x7x3 = ConvBN(192, name="branch7x7x3_1")(x)
    branch7x7x3 = ConvBN(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7x3)
    branch7x7x3 = ConvBN(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7x3)
    branch7x7x3 = ConvBN(192, (3, 3), strides=2, name="branch7x7x3_4")(branch7x7x3)
    return jnp.concatenate([branch3x3, branch7x7x3, _max_pool_3x3_stride_2(x)], axis=-1)


class InceptionE(nn.Module):
  """The 8x8 block (Mixed_7b, Mixed_7c) with split 3x3 convolutions: 2048 channels.

  Attributes:
    max_pool: the pool branch max-pools (Mixed_7c in the FID graph) instead
      of average-pooling.
  """

  max_pool: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, 8, 8, C] -> [B, 8, 8, 2048]."""
    branch1x1 = ConvBN(320, name="branch1x1")(x)
    branch3x3 = ConvBN(384, name="branch3x3_1")(x)
    branch3x3 = jnp.concatenate([
        ConvBN(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(branch3x3),
        ConvBN(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(branch3x3),
    ], axis=-1)
    branch3x3dbl = ConvBN(448, name="branch3x3dbl_1")(x)
    branch3x3dbl = ConvBN(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = jnp.concatenate([
        ConvBN(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(branch3x3dbl),
        ConvBN(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(branch3x3dbl),
    ], axis=-1)
    if self.max_pool:  # a quirk of the FID graph; padding counts as -inf
      pooled = nn.max_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)))
    else:
      pooled = _average_pool_3x3(x)
    branch_pool = ConvBN(192, name="branch_pool")(pooled)
    return jnp.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=-1)


class InceptionV3(nn.Module):
  """The FID InceptionV3, inference only (BatchNorm uses its running statistics).

  Module names are those of the reference, so ``Mixed_5b/branch1x1/conv/kernel``
  holds the torch key ``Mixed_5b.branch1x1.conv.weight``.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    """Features and logits of preprocessed images.

    Args:
      x: float32 [B, 299, 299, 3] in [-1, 1] (see :func:`preprocess`).

    Returns:
      ``{'pool': [B, 2048], 'logits': [B, 1008]}``.
    """
    x = ConvBN(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x)  # 149x149
    x = ConvBN(32, (3, 3), name="Conv2d_2a_3x3")(x)  # 147x147
    x = ConvBN(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3_stride_2(x)  # 73x73
    x = ConvBN(80, name="Conv2d_3b_1x1")(x)
    x = ConvBN(192, (3, 3), name="Conv2d_4a_3x3")(x)  # 71x71
    x = _max_pool_3x3_stride_2(x)  # 35x35
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)  # 17x17
    x = InceptionC(128, name="Mixed_6b")(x)
    x = InceptionC(160, name="Mixed_6c")(x)
    x = InceptionC(160, name="Mixed_6d")(x)
    x = InceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)  # 8x8
    x = InceptionE(name="Mixed_7b")(x)
    x = InceptionE(max_pool=True, name="Mixed_7c")(x)
    pool = x.mean(axis=(1, 2))
    logits = nn.Dense(NUM_CLASSES, name="fc")(pool)
    return {"pool": pool, "logits": logits}


def preprocess(images: jax.Array) -> jax.Array:
  """Images as pytorch-fid feeds them to the network.

  Scales to [0, 1], resizes bilinearly with half-pixel centres and *no*
  antialiasing (pytorch-fid's ``F.interpolate(x, (299, 299), mode='bilinear',
  align_corners=False)``; a large image is therefore sampled, not averaged,
  when shrunk), then maps to [-1, 1].

  Args:
    images: uint8 [B, H, W, C] in [0, 255], C = 1 (repeated to RGB) or 3.

  Returns:
    float32 [B, 299, 299, 3] in [-1, 1].
  """
  if images.dtype != jnp.uint8:
    raise TypeError(f"preprocess expects uint8 images in [0, 255], got dtype {images.dtype}; "
                    f"convert with np.clip(np.round(x), 0, 255).astype(np.uint8)")
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"preprocess expects images [B, H, W, C] with C = 1 or 3, "
                     f"got shape {tuple(images.shape)}")
  x = jnp.asarray(images).astype(jnp.float32) / 255.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  x = jax.image.resize(x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, 3), "bilinear", antialias=False)
  return 2.0 * x - 1.0


def feature_fn(variables: Mapping) -> Callable[[jax.Array], dict[str, jax.Array]]:
  """A jitted uint8 images [B, H, W, C] -> ``{'pool': [B, 2048], 'logits': [B, 1008]}``.

  It runs :func:`preprocess` and :class:`InceptionV3`, compiling once per input shape.

  Args:
    variables: ``{'params': ..., 'batch_stats': ...}`` from :func:`load_weights`.
  """
  model = InceptionV3()

  @jax.jit
  def features(variables, images):
    return model.apply(variables, preprocess(images))

  # Variables are an argument, not closed over, so they are not baked into the program.
  return functools.partial(features, variables)


@functools.cache
def _variable_shapes() -> dict:
  """The variables' shapes and dtypes, by abstract evaluation (no computation)."""
  return jax.eval_shape(InceptionV3().init, jax.random.key(0),
                        jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))


def _torch_key(path: tuple) -> str:
  """A variable's tree path -> its torch state_dict key."""
  collection, *modules, leaf = (entry.key for entry in path)
  return ".".join([*modules, _TORCH_LEAF_NAMES[collection, leaf]])


def _torch_axes(ndim: int) -> tuple[int, ...]:
  """Flax -> torch axis order: conv kernels HWIO -> OIHW, dense [in, out] -> [out, in]."""
  return {4: (3, 2, 0, 1), 2: (1, 0), 1: (0,)}[ndim]


def _torch_shape(flax_shape: tuple[int, ...]) -> tuple[int, ...]:
  return tuple(flax_shape[axis] for axis in _torch_axes(len(flax_shape)))


def variables_to_state_dict(variables: Mapping) -> dict[str, np.ndarray]:
  """Flax variables -> the reference's state_dict (torch key names and layouts).

  Args:
    variables: ``{'params': ..., 'batch_stats': ...}`` of :class:`InceptionV3`.

  Returns:
    float32 numpy arrays keyed like ``Mixed_5b.branch1x1.conv.weight``, without
    BatchNorm's ``num_batches_tracked`` counters.
  """
  leaves = jax.tree_util.tree_flatten_with_path(dict(variables))[0]
  return {_torch_key(path): np.asarray(value, np.float32).transpose(_torch_axes(value.ndim))
          for path, value in leaves}


def state_dict_to_variables(state_dict: Mapping[str, np.ndarray]) -> dict:
  """The reference's state_dict -> Flax variables, checking every key and shape.

  Args:
    state_dict: arrays keyed like pytorch-fid's weight file (torch layouts).
      ``*.num_batches_tracked`` entries are allowed and ignored.

  Returns:
    ``{'params': ..., 'batch_stats': ...}`` of float32 arrays.

  Raises:
    ValueError: naming every missing key, unexpected key and shape mismatch.
  """
  shapes = _variable_shapes()
  missing, mismatched, used = [], [], set()

  def load_leaf(path, shape_dtype):
    key = _torch_key(path)
    expected = _torch_shape(shape_dtype.shape)
    if key not in state_dict:
      missing.append(f"{key} {expected}")
      return None
    used.add(key)
    value = np.asarray(state_dict[key], np.float32)
    if value.shape != expected:
      mismatched.append(f"{key}: expected {expected}, got {value.shape}")
      return None
    # On the device once, rather than at every call of the feature function.
    return jnp.asarray(value.transpose(np.argsort(_torch_axes(value.ndim))))

  variables = jax.tree_util.tree_map_with_path(load_leaf, shapes)
  unexpected = sorted(k for k in state_dict
                      if k not in used and not k.endswith(_IGNORED_TORCH_SUFFIX))
  problems = []
  for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                       ("shape mismatches (torch layout)", mismatched)):
    if items:
      problems.append(f"{len(items)} {title}:\n  " + "\n  ".join(items))
  if problems:
    raise ValueError("the weights are not those of pytorch-fid's FID InceptionV3 "
                     "(pt_inception-2015-12-05-6726825d.pth layout):\n" + "\n".join(problems))
  return variables


def read_state_dict(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """The arrays of a weight file: ``.npz``, or ``.pth``/``.pt`` (needs torch).

  Args:
    path: the file.

  Returns:
    numpy arrays by state_dict key, as stored (no checks).
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"inception weights {path}: no such file. Give the path of "
                            f"pytorch-fid's pt_inception-2015-12-05-6726825d.pth or of its "
                            f".npz conversion (gen_jax cannot download them)")
  suffix = path.suffix.lower()
  if suffix == ".npz":
    return npz.load(path, "inception weights")
  if suffix in _TORCH_SUFFIXES:
    try:
      import torch  # pylint: disable=import-outside-toplevel
    except ImportError as error:
      raise ImportError(
          f"reading {path} needs torch, which is not installed; convert it once to the "
          f"portable .npz on a machine with torch: python -m gen_jax.evaluation.inception "
          f"convert {path} {path.with_suffix('.npz')}") from error
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    return {key: value.numpy() for key, value in state_dict.items()}
  raise ValueError(f"unknown weight file extension {path.suffix!r} of {path}: expected .npz "
                   f"(portable) or .pth/.pt (a torch state_dict, needs torch)")


def load_weights(path: str | pathlib.Path) -> dict:
  """Flax variables from a weight file in pytorch-fid's layout.

  Args:
    path: ``.npz`` with the state_dict's keys (torch layouts), or the ``.pth``
      itself (``pt_inception-2015-12-05-6726825d.pth``) when torch is installed.

  Returns:
    ``{'params': ..., 'batch_stats': ...}`` for :class:`InceptionV3`.
  """
  return state_dict_to_variables(read_state_dict(path))


def convert(in_path: str | pathlib.Path, out_path: str | pathlib.Path) -> None:
  """Writes a ``.pth`` (or ``.npz``) weight file as ``.npz`` with the same keys.

  The weights are checked (as by :func:`load_weights`) before anything is written.

  Args:
    in_path: the weight file to read.
    out_path: the ``.npz`` to write.
  """
  if pathlib.Path(out_path).suffix.lower() != ".npz":
    raise ValueError(f"the converted weights must go to a .npz file (load_weights reads them "
                     f"by extension), got {out_path}")
  state_dict = read_state_dict(in_path)
  state_dict_to_variables(state_dict)
  with open(out_path, "wb") as f:  # an open file keeps numpy from appending '.npz'
    np.savez(f, **state_dict)


def weights_hash(path: str | pathlib.Path, length: int = 8) -> str:
  """The first ``length`` hex digits of the file's sha256.

  With the default length this is the suffix torch hub puts in file names:
  ``6726825d`` for pytorch-fid's ``.pth`` (its ``.npz`` conversion has another).
  """
  from gen_jax.evaluation.features import file_hash  # features imports this module lazily
  return file_hash(path, length)


def main(argv: list[str] | None = None) -> None:
  """The command line: ``convert IN OUT``."""
  parser = argparse.ArgumentParser(prog="python -m gen_jax.evaluation.inception",
                                   description=__doc__.split("\n", 1)[0])
  commands = parser.add_subparsers(dest="command", required=True)
  convert_parser = commands.add_parser(
      "convert", help="write pytorch-fid's .pth weights as a portable .npz (needs torch)")
  convert_parser.add_argument("in_path", help="pt_inception-2015-12-05-6726825d.pth")
  convert_parser.add_argument("out_path", help="the .npz to write")
  args = parser.parse_args(argv)
  convert(args.in_path, args.out_path)
  print(f"wrote {args.out_path} (sha256 prefix {weights_hash(args.out_path)}) from "
        f"{args.in_path} (sha256 prefix {weights_hash(args.in_path)})")


if __name__ == "__main__":
  main()
