"""Learning parity: gen_jax against a PyTorch eager twin of the same config.

Issue 21 ("learn at least as well as the PyTorch twin"). For each seed this
trains

* gen_jax, through the command line as a user would (``gen-jax train`` on one
  CPU device), and
* a PyTorch eager twin of the same config: the same networks, started from
  gen_jax's own initial parameters and batch-norm state (copied from
  ``method.init(PRNGKey(seed))``), the same optimizers, losses and step
  structure as ``gen_jax.methods.gan.GAN.train_step``, the same data batches
  in the same order (read through ``gen_jax.data.train_batches``), and the
  same debiased EMA of the generator.

Both are then scored at the final and at intermediate steps, from the raw
generator (batch norm on its running statistics) and from the EMA generator
(gen_jax: ``method.sampling_variables``; the twin: standing batch-norm
statistics recomputed over fresh latents), in the features of the project's
MNIST classifier (``experiments/classifier/mnist.py``):

* ``fid``: Fréchet distance to the test split (penultimate features);
* ``confident``: fraction of samples whose top class probability exceeds 0.9;
* ``min_class`` / ``max_class``: smallest and largest share of a digit among
  the confident samples (mode coverage: 0.1 each is uniform);
* ``class_acc`` (conditional models): predicted digit == requested digit.

It prints one row per (framework, network, seed, step), the medians over
seeds, and a verdict comparing gen_jax's default sampling path (EMA when the
config keeps one) and its raw generator with the twin's raw generator at the
final step. All rows are also written to ``WORKDIR/rows_<config>.jsonl``.

``--check`` trains nothing: it asserts that the twin computes gen_jax's
functions, on the config's real batches. The networks' outputs in eval and
train mode (flax's dropout masks injected) at the initial and at trained
weights, to 1e-4; the first step's losses and gradient norms, and its
gradients element by element (Adam's first moments) as close to a float64
twin as the float32 twin is; after two steps the parameters (all but a few
entries in 10^3 that Adam's first update, about ``lr * sign(g)``, moves apart
where g is at rounding level) and the batch-norm statistics.

Where the frameworks differ, and what the twin does about it:

* initialisation: torch's defaults draw weights and biases from
  U(+-1/sqrt(fan_in)), a third of the weight variance of flax's truncated
  LeCun normal (zero biases); the twin copies gen_jax's initial variables;
* 'SAME' convolutions: lax pads 28 -> 14 (k5 s2) by (1, 2), torch's
  ``padding=2`` by (2, 2), one pixel off; the twin pads explicitly;
* transposed convolutions: flax's ``ConvTranspose`` (as lax's) correlates
  the unflipped kernel, torch's is the adjoint of a convolution: the twin
  flips the kernel, pads k - 1 - lo and crops lo - hi (k5 s2: 1 row and column);
* layouts: flax flattens and reshapes NHWC, so the twin permutes around its
  Dense layers rather than permuting their weights;
* batch norm: same normalisation, but torch's running variance takes the
  unbiased batch variance (n / (n - 1)), flax's the biased one; the twin keeps
  torch's (the raw generator of batch 64 sees 1.6% more variance in its
  projection's statistics) and ``--check`` verifies exactly that difference;
* the twin's EMA generator is scored with standing statistics (recomputed
  over fresh latents), gen_jax's with what ``method.sampling_variables``
  gives.

PyTorch is not a dependency of gen_jax: only the twin and ``--check`` import
it (``pip install torch``, a CPU build is enough). On a loaded machine
``--torch_threads 1`` can be several times faster than 2.

Usage::

    # The twin computes gen_jax's functions: forward passes and two train steps.
    python benchmarks/learning_parity.py --check \
        --config experiments/dcgan/mnist.py:quick \
        --dataset npz:../shared/datasets/mnist.npz

    # The parity table (runs are kept in --workdir and resumed).
    python benchmarks/learning_parity.py \
        --config experiments/dcgan/mnist.py:quick --seeds 0,1,2 \
        --steps 2000 --eval_steps 500,1000 \
        --dataset npz:../shared/datasets/mnist.npz \
        --classifier /tmp/classifier_mnist --workdir /tmp/parity
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import functools
import json
import math
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

from flax import linen
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import configs, data, images, methods, sample
from gen_jax.evaluation import features, metrics
from gen_jax.models import layers
from gen_jax.train.checkpoint import Checkpoints

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The configs whose networks the twin builds (the MNIST DCGAN and cGAN); the
# families to come add theirs here with their twins.
SUPPORTED_CONFIGS = ("experiments/dcgan/mnist.py", "experiments/dcgan/mnist.py:quick",
                     "experiments/cgan/mnist.py:quick")
CLASSIFIER_CONFIG = "experiments/classifier/mnist.py"
CONFIDENCE = 0.9
SAMPLE_SEED = 0
# Standing statistics of the twin's EMA generator: batches of fresh latents.
STANDING_BATCHES = 8
STANDING_BATCH_SIZE = 256
# --check: largest absolute difference accepted between the frameworks.
CHECK_TOLERANCE = 1e-4
# Relative, for losses and gradient norms: exact at step 1 (~1e-6), but from step 2
# on they see the few parameters that Adam's first update moved apart (report_trained).
METRIC_TOLERANCE = 1e-3
# gen_jax's batch norms keep 0.9 of their running statistics per update (dcgan.py).
BN_MOMENTUM = 0.9


# ----------------------------------------------------------------------------- configs


def load_config(spec: str, seed: int, steps: int | None, dataset: str | None):
  """The experiment config as ``gen-jax train`` would see it with the overrides."""
  if spec.removeprefix("./") not in SUPPORTED_CONFIGS:
    raise SystemExit(f"--config {spec} has no PyTorch twin yet; supported: "
                     f"{', '.join(SUPPORTED_CONFIGS)}")
  config = configs.load(str(ROOT / spec))
  config.seed = seed
  if steps is not None:
    config.num_train_steps = steps
  if dataset:
    config.dataset = dataset
  for name, optimizer in config.optimizers.items():
    # The twin maps these onto torch.optim.Adam; anything else would need its own mapping.
    if (optimizer.name != "adam" or optimizer.get("schedule", "constant") != "constant"
        or optimizer.get("grad_clip_norm")):
      raise SystemExit(f"config.optimizers.{name}: the twin supports constant-rate Adam "
                       f"without clipping, got {optimizer}")
  return config


def build_method(config):
  """gen_jax's method (networks, optimizers, train step) for ``config``."""
  return methods.build(config, data.describe(configs.data_spec(config)))


def labels_arg(method, labels):
  """The networks' label argument: the labels for conditional models, else None."""
  return labels if method.conditional else None


# ----------------------------------------------------------------------------- the PyTorch twin


def twin_classes(torch):
  """Torch modules that compute gen_jax's DCGAN networks, NCHW.

  Each layer loads its flax variables (``load``) and gives them back in flax
  layouts (``export``), so initial weights can be copied and trained ones
  compared.
  """
  nn = torch.nn
  functional = torch.nn.functional

  def tensor(values):
    return torch.from_numpy(np.array(values, np.float32))

  def array(t):
    return t.detach().cpu().numpy()

  class Dense(nn.Linear):
    """flax Dense: kernel (in, out) is the transposed torch weight (out, in)."""

    def load(self, params, stats):
      del stats
      self.weight.copy_(tensor(params["kernel"]).T)
      if self.bias is not None:
        self.bias.copy_(tensor(params["bias"]))

    def export(self):
      params = {"kernel": array(self.weight).T}
      if self.bias is not None:
        params["bias"] = array(self.bias)
      return params, {}

  class Conv(nn.Module):
    """``layers.Conv`` with 'SAME' padding: lax pads (lo, hi), lo = total // 2.

    For 28 -> 14 with k5 s2 that is (1, 2): torch's symmetric ``padding=2``
    would shift the sampling grid by one pixel, so the input is padded
    explicitly. Both frameworks correlate (no kernel flip).
    """

    def __init__(self, in_features, features, kernel_size, stride, in_size, use_bias):
      super().__init__()
      out_size = math.ceil(in_size / stride)
      total = max((out_size - 1) * stride + kernel_size - in_size, 0)
      self.pads = (total // 2, total - total // 2) * 2  # (left, right, top, bottom)
      self.conv = nn.Conv2d(in_features, features, kernel_size, stride, bias=use_bias)

    def forward(self, x):
      return self.conv(functional.pad(x, self.pads))

    def load(self, params, stats):
      del stats
      self.conv.weight.copy_(tensor(params["kernel"]).permute(3, 2, 0, 1))
      if self.conv.bias is not None:
        self.conv.bias.copy_(tensor(params["bias"]))

    def export(self):
      params = {"kernel": array(self.conv.weight.permute(2, 3, 1, 0))}
      if self.conv.bias is not None:
        params["bias"] = array(self.conv.bias)
      return params, {}

  class ConvTranspose(nn.Module):
    """``layers.ConvTranspose`` (flax's, i.e. ``lax.conv_transpose``) with 'SAME' padding.

    lax correlates the *unflipped* kernel with the stride-dilated input padded
    (lo, hi); torch's ConvTranspose2d is the adjoint of a convolution, which is
    that correlation with the spatially flipped kernel and padding k - 1 - p
    on both sides (plus ``output_padding`` at the end). So: flip the kernel,
    p = k - 1 - lo, then crop lo - hi from the end (k5 s2: lo 3, hi 2, p 1,
    crop 1) or add hi - lo of output padding.
    """

    def __init__(self, in_features, features, kernel_size, stride, use_bias):
      super().__init__()
      ((lo, hi),) = layers.conv_transpose_padding((kernel_size,), (stride,), "SAME")
      self.crop = max(lo - hi, 0)
      self.conv = nn.ConvTranspose2d(in_features, features, kernel_size, stride,
                                     padding=kernel_size - 1 - lo,
                                     output_padding=max(hi - lo, 0), bias=use_bias)

    def forward(self, x):
      y = self.conv(x)
      if self.crop:
        y = y[:, :, :-self.crop, :-self.crop]
      return y

    def load(self, params, stats):
      del stats
      # (kh, kw, in, out) flipped in space -> torch (in, out, kh, kw).
      self.conv.weight.copy_(tensor(params["kernel"]).flip(0, 1).permute(2, 3, 0, 1))
      if self.conv.bias is not None:
        self.conv.bias.copy_(tensor(params["bias"]))

    def export(self):
      params = {"kernel": array(self.conv.weight.permute(2, 3, 0, 1).flip(0, 1))}
      if self.conv.bias is not None:
        params["bias"] = array(self.conv.bias)
      return params, {}

  class BatchNorm(nn.Module):
    """flax BatchNorm(momentum=0.9, epsilon=1e-5) as torch's (momentum 0.1).

    torch's own semantics are kept on purpose: its running variance takes the
    unbiased batch variance (n / (n - 1)), flax's the biased one; ``--check``
    verifies exactly that difference.
    """

    def __init__(self, features, spatial):
      super().__init__()
      norm = nn.BatchNorm2d if spatial else nn.BatchNorm1d
      self.norm = norm(features, eps=1e-5, momentum=1 - BN_MOMENTUM)

    def forward(self, x):
      return self.norm(x)

    def load(self, params, stats):
      self.norm.weight.copy_(tensor(params["scale"]))
      self.norm.bias.copy_(tensor(params["bias"]))
      self.norm.running_mean.copy_(tensor(stats["mean"]))
      self.norm.running_var.copy_(tensor(stats["var"]))

    def export(self):
      return ({"scale": array(self.norm.weight), "bias": array(self.norm.bias)},
              {"mean": array(self.norm.running_mean), "var": array(self.norm.running_var)})

  class Dropout(nn.Module):
    """Dropout whose masks ``--check`` can set to flax's (``masks``, NCHW, in call order)."""

    def __init__(self, rate):
      super().__init__()
      self.rate = rate
      self.masks = []

    def forward(self, x):
      if not self.training or not self.rate:
        return x
      if self.masks:
        return x * self.masks.pop(0)
      return functional.dropout(x, self.rate, training=True)

  class Twin(nn.Module):
    """A network whose child modules carry the flax module names (``Dense_0``, ...)."""

    def load_flax(self, params, collections):
      stats = collections.get("batch_stats", {})
      with torch.no_grad():
        for name, child in self.named_children():
          if hasattr(child, "load"):
            child.load(params[name], stats.get(name, {}))

    def export_flax(self):
      params, stats = {}, {}
      for name, child in self.named_children():
        if hasattr(child, "export"):
          params[name], child_stats = child.export()
          if child_stats:
            stats[name] = child_stats
      return params, stats

  class Generator(Twin):
    """``DCGANGenerator``: [z, one_hot(y)] -> Dense, BN, act -> (ConvT, BN, act)* -> ConvT, tanh."""

    def __init__(self, g, latent_dim):
      super().__init__()
      self.g = g
      width = g.base_size**2 * g.features[0]
      self.Dense_0 = Dense(latent_dim + g.num_classes, width, bias=not g.batch_norm)
      norms = [BatchNorm(width, spatial=False)]
      widths = list(g.features) + [g.image_shape[-1]]
      for i, stride in enumerate(g.strides):
        setattr(self, f"ConvTranspose_{i}", ConvTranspose(
            widths[i], widths[i + 1], g.kernel_size, stride, use_bias=not g.batch_norm))
        if i < len(g.strides) - 1:
          norms.append(BatchNorm(widths[i + 1], spatial=True))
      for i, norm in enumerate(norms if g.batch_norm else []):
        setattr(self, f"BatchNorm_{i}", norm)

    def _normalise_and_activate(self, x, i):
      if self.g.batch_norm:
        x = getattr(self, f"BatchNorm_{i}")(x)
      return functional.leaky_relu(x, self.g.negative_slope)

    def forward(self, z, labels=None):
      g = self.g
      x = z
      if g.num_classes:
        x = torch.cat([z, functional.one_hot(labels, g.num_classes).to(z.dtype)], dim=1)
      x = self._normalise_and_activate(self.Dense_0(x), 0)
      # flax reshapes the projection to NHWC; torch continues in NCHW.
      x = x.view(-1, g.base_size, g.base_size, g.features[0]).permute(0, 3, 1, 2)
      for i in range(len(g.strides)):
        x = getattr(self, f"ConvTranspose_{i}")(x)
        if i < len(g.strides) - 1:
          x = self._normalise_and_activate(x, i + 1)
      return torch.tanh(x)

  class Discriminator(Twin):
    """``DCGANDiscriminator``: [x, label maps] -> (Conv s2 -> [BN] -> act -> dropout)* -> Dense."""

    def __init__(self, d, image_shape):
      super().__init__()
      self.d = d
      size, channels = image_shape[0], image_shape[-1]
      if d.conditioning == "concat":
        channels += d.num_classes
      for i, width in enumerate(d.features):
        with_norm = d.batch_norm and i > 0
        setattr(self, f"Conv_{i}", Conv(channels, width, d.kernel_size, 2, size,
                                        use_bias=not with_norm))
        if with_norm:
          setattr(self, f"BatchNorm_{i - 1}", BatchNorm(width, spatial=True))
        setattr(self, f"Dropout_{i}", Dropout(d.dropout))
        size, channels = math.ceil(size / 2), width
      self.Dense_0 = Dense(size * size * channels, 1)

    def forward(self, images, labels=None):
      d = self.d
      x = images
      if d.conditioning == "concat":
        maps = functional.one_hot(labels, d.num_classes).to(x.dtype)[:, :, None, None]
        x = torch.cat([x, maps.expand(-1, -1, *x.shape[2:])], dim=1)
      for i in range(len(d.features)):
        x = getattr(self, f"Conv_{i}")(x)
        if d.batch_norm and i > 0:
          x = getattr(self, f"BatchNorm_{i - 1}")(x)
        x = getattr(self, f"Dropout_{i}")(functional.leaky_relu(x, d.negative_slope))
      # flax flattens NHWC.
      return self.Dense_0(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1))

  return Generator, Discriminator


def check_twinnable(method) -> None:
  """Raises unless the method's networks are the DCGAN options the twin builds."""
  g, d = method.networks["generator"], method.networks["discriminator"]
  unsupported = {
      "generator": dict(dense_hidden=g.dense_hidden, spectral_norm=g.spectral_norm,
                        attention_at=g.attention_at,
                        conditional_batch_norm=g.conditional_batch_norm and bool(g.num_classes),
                        output_activation=g.output_activation != "tanh"),
      "discriminator": dict(dense_hidden=d.dense_hidden, spectral_norm=d.spectral_norm,
                            attention_at=d.attention_at, aux_outputs=d.aux_outputs,
                            projection=d.conditioning == "projection"),
  }
  for network, options in unsupported.items():
    used = [name for name, value in options.items() if value]
    if used:
      raise SystemExit(f"the twin does not build the {network}'s {', '.join(used)}")
  if method.loss_name != "non_saturating" or method.critic_steps != 1 or method.has_codes:
    raise SystemExit("the twin trains the non-saturating GAN with one critic step")


class TorchTwin:
  """The PyTorch eager twin of a gen_jax GAN run: networks, optimizers, EMA, step.

  Attributes:
    generator, discriminator: the torch networks (train mode).
    ema: the EMA generator, or None when the config keeps none.
    step: train steps taken.
  """

  def __init__(self, torch, method, state, dtype=None):
    """Builds the networks and copies gen_jax's variables of ``state`` into them.

    ``dtype`` (default float32) float64 gives ``--check`` its rounding-free reference.
    """
    check_twinnable(method)
    self.torch = torch
    self.method = method
    generator_cls, discriminator_cls = twin_classes(torch)
    self.generator = generator_cls(method.networks["generator"], method.latent_dim)
    self.discriminator = discriminator_cls(method.networks["discriminator"],
                                           method.info.image_shape)
    for name, network in self.networks().items():
      network.load_flax(state.params[name], state.collections[name])
      network.to(dtype or torch.float32)
    self.ema = copy.deepcopy(self.generator) if method.ema_decay > 0 else None
    if self.ema is not None:
      self.ema.load_flax(state.ema_params["generator"], state.collections["generator"])
    self.optimizers = {}
    for name, network in self.networks().items():
      opt = method.config.optimizers[name]
      self.optimizers[name] = torch.optim.Adam(network.parameters(), lr=opt.learning_rate,
                                               betas=(opt.b1, opt.b2), eps=opt.get("eps", 1e-8))
    self.step = int(state.step)

  def networks(self):
    return {"generator": self.generator, "discriminator": self.discriminator}

  def state_dict(self) -> dict:
    out = {"step": self.step, **{name: n.state_dict() for name, n in self.networks().items()},
           **{f"opt_{name}": o.state_dict() for name, o in self.optimizers.items()}}
    if self.ema is not None:
      out["ema"] = self.ema.state_dict()
    return out

  def load_state_dict(self, saved: dict) -> None:
    self.step = saved["step"]
    for name, network in self.networks().items():
      network.load_state_dict(saved[name])
      self.optimizers[name].load_state_dict(saved[f"opt_{name}"])
    if self.ema is not None:
      self.ema.load_state_dict(saved["ema"])

  def first_moments(self, name: str):
    """Adam's first moments of network ``name``, in flax's layout."""
    network = self.networks()[name]
    moments = copy.deepcopy(network)
    with self.torch.no_grad():
      for target, param in zip(moments.parameters(), network.parameters()):
        target.copy_(self.optimizers[name].state[param]["exp_avg"])
    return moments.export_flax()[0]

  @contextlib.contextmanager
  def _frozen_running_stats(self, network):
    """Train mode without updating batch-norm statistics (gen_jax's generator pass)."""
    buffers = {name: b.clone() for name, b in network.named_buffers()}
    try:
      yield
    finally:
      with self.torch.no_grad():
        for name, b in network.named_buffers():
          b.copy_(buffers[name])

  def train_step(self, real, labels, z) -> dict[str, float]:
    """One step as ``GAN.train_step``: D on real + detached fake, then G through the new D.

    Args:
      real: float [B, C, H, W] in [-1, 1].
      labels: int64 [B], the real batch's classes (the generator's too).
      z: [B, latent_dim].

    Returns:
      The step's losses and gradient norms.
    """
    torch = self.torch
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    g, d = self.generator, self.discriminator
    labels = labels_arg(self.method, labels)
    # One generator forward serves both updates, as in gen_jax.
    fake = g(z, labels)

    self.optimizers["discriminator"].zero_grad(set_to_none=True)
    real_logits = d(real, labels)
    fake_logits = d(fake.detach(), labels)
    d_loss = (bce(real_logits, torch.ones_like(real_logits))
              + bce(fake_logits, torch.zeros_like(fake_logits)))
    d_loss.backward()
    d_grad_norm = grad_norm(d)
    self.optimizers["discriminator"].step()

    self.optimizers["generator"].zero_grad(set_to_none=True)
    # Restored only after the backward pass, which checks the buffers are unchanged.
    with self._frozen_running_stats(d):
      logits = d(fake, labels)
      g_loss = bce(logits, torch.ones_like(logits))
      g_loss.backward()
    self.optimizers["generator"].step()

    self.step += 1
    if self.ema is not None:
      # Debiased EMA: at the t-th update the step size is (1 - d) / (1 - d**t),
      # so the average does not lean towards the initial weights early on.
      decay = self.method.ema_decay
      step_size = (1 - decay) / (1 - decay**self.step)
      with torch.no_grad():
        for average, param in zip(self.ema.parameters(), g.parameters()):
          average.lerp_(param, step_size)
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "d_grad_norm": d_grad_norm,
            "g_grad_norm": grad_norm(g)}

  def ema_with_standing_stats(self, seed: int):
    """The EMA generator with batch-norm statistics recomputed on fresh latents.

    The running statistics belong to the raw weights; the EMA weights get
    their own: the cumulative average (momentum None) over ``STANDING_BATCHES``
    batches of the EMA generator in train mode.
    """
    torch = self.torch
    network = copy.deepcopy(self.ema)
    for module in network.modules():
      if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
        module.reset_running_stats()
        module.momentum = None
    rng = torch.Generator().manual_seed(seed)
    network.train()
    with torch.no_grad():
      for _ in range(STANDING_BATCHES):
        z = torch.randn(STANDING_BATCH_SIZE, self.method.latent_dim, generator=rng)
        labels = torch.randint(0, max(self.method.info.num_classes, 1), (STANDING_BATCH_SIZE,),
                               generator=rng)
        network(z, labels_arg(self.method, labels))
    return network.eval()

  def sample(self, network, num: int, seed: int) -> dict[str, np.ndarray]:
    """``num`` uint8 NHWC images from ``network`` in eval mode, classes in turn.

    The labels are those of ``gen_jax.sample.generate_images``.
    """
    torch = self.torch
    rng = torch.Generator().manual_seed(seed)
    labels = torch.arange(num) % max(self.method.info.num_classes, 1)
    was_training = network.training
    network.eval()
    chunks = []
    with torch.no_grad():
      for start in range(0, num, STANDING_BATCH_SIZE):
        chunk = labels[start:start + STANDING_BATCH_SIZE]
        z = torch.randn(len(chunk), self.method.latent_dim, generator=rng)
        chunks.append(network(z, labels_arg(self.method, chunk)).permute(0, 2, 3, 1).numpy())
    network.train(was_training)
    out = {"images": images.to_uint8(np.concatenate(chunks))}
    if self.method.conditional:
      out["labels"] = labels.numpy()
    return out


def grad_norm(network) -> float:
  """Global norm of a network's gradients (gen_jax's ``*_grad_norm`` metrics)."""
  return math.sqrt(sum(float((p.grad.double()**2).sum()) for p in network.parameters()))


def torch_batch(torch, batch):
  """A gen_jax batch (NHWC float in [-1, 1], int labels) -> (NCHW tensor, int64 labels)."""
  real = torch.from_numpy(np.array(np.transpose(batch["image"], (0, 3, 1, 2)), np.float32))
  return real, torch.from_numpy(np.asarray(batch["label"], np.int64))


def import_torch(threads: int = 2):
  try:
    import torch  # Optional: only the twin needs it.
  except ImportError:
    raise SystemExit("torch is not installed: the twin needs PyTorch (`pip install torch`, "
                     "a CPU build is enough); gen_jax itself does not depend on it") from None
  torch.set_num_threads(threads)
  return torch


# ----------------------------------------------------------------------------- --check


def flax_dropout_masks(method, params, collections, images, labels, rng):
  """The dropout masks (NHWC, scaled by 1 / keep) of one training-mode discriminator call.

  Masks depend only on the dropout key and the shapes, so the call is made
  again with every Dropout fed ones: its output is then the mask itself.
  """
  masks = {}

  def capture(next_fun, args, kwargs, context):
    if isinstance(context.module, linen.Dropout) and context.method_name == "__call__":
      mask = next_fun(jnp.ones_like(args[0]), *args[1:], **kwargs)
      masks.setdefault(context.module.name, []).append(np.asarray(mask))
      return args[0] * mask
    return next_fun(*args, **kwargs)

  with linen.intercept_methods(capture):
    method.apply("discriminator", params, collections, images,
                 labels_arg(method, labels), rngs={"dropout": rng})
  return masks


def set_masks(torch, discriminator, masks) -> None:
  """Queues flax's masks (per Dropout name, NHWC) on the twin's Dropout layers."""
  for name, queue in masks.items():
    getattr(discriminator, name).masks.extend(
        torch.from_numpy(np.ascontiguousarray(np.transpose(m, (0, 3, 1, 2)))) for m in queue)


def max_difference(a, b) -> float:
  """Largest absolute difference between two pytrees of the same structure."""
  diffs = jax.tree.map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b)
  return max(jax.tree.leaves(diffs), default=0.0)


def report(name: str, difference: float, failures: list[str], tolerance: float = CHECK_TOLERANCE,
           what: str = "max |diff|") -> None:
  ok = difference <= tolerance
  print(f"  {name}: {what}{' ' if what else ''}{difference:.2e} {'ok' if ok else 'FAILED'}")
  if not ok:
    failures.append(name)


def report_trained(name: str, flax_tree, torch_tree, failures: list[str] | None) -> None:
  """Compares trained parameters, allowing for Adam's amplified rounding.

  Adam's first updates are about ``lr * g / (|g| + eps)``: where a gradient is
  at the level of float32 rounding, the two frameworks' summation orders give
  it different signs and the parameter moves by up to ``lr`` either way. So a
  few entries in 10^3 may differ by more than the tolerance (the gradients
  themselves are compared through Adam's first moments); more, or a median
  difference above 1e-6, means a bug. ``failures`` None makes the comparison
  informative only.
  """
  diffs = [np.abs(np.asarray(a) - np.asarray(b)).ravel()
           for a, b in zip(jax.tree.leaves(flax_tree), jax.tree.leaves(torch_tree))]
  diffs = np.concatenate(diffs)
  beyond = int((diffs > CHECK_TOLERANCE).sum())
  ok = beyond <= 1e-3 * diffs.size and np.median(diffs) <= 1e-6
  outcome = ("ok" if ok else "FAILED") if failures is not None else (
      "matches" if ok else "differs")
  print(f"  {name}: max |diff| {diffs.max():.2e}, {beyond} of {diffs.size} entries beyond "
        f"{CHECK_TOLERANCE:g}, median {np.median(diffs):.1e} {outcome}")
  if not ok and failures is not None:
    failures.append(name)


def check_forward(torch, method, state, z, real, labels, dropout_rng, failures, when: str):
  """The twin's outputs equal the flax networks' in eval and train mode."""
  twin = TorchTwin(torch, method, state)
  label_input = labels_arg(method, labels)
  z_t = torch.from_numpy(np.array(z))
  real_t, labels_t = torch_batch(torch, {"image": real, "label": labels})
  label_t = labels_arg(method, labels_t)
  for name, flax_input, torch_input in (("generator", z, z_t), ("discriminator", real, real_t)):
    network = twin.networks()[name]
    variables = {"params": state.params[name], **state.collections[name]}
    if name == "discriminator":  # Used in training mode only.
      set_masks(torch, network, flax_dropout_masks(
          method, state.params[name], state.collections[name], real, labels, dropout_rng))
    for train in (False, True):
      if train:
        flax_out, _ = method.apply(name, state.params[name], state.collections[name],
                                   flax_input, label_input, rngs={"dropout": dropout_rng})
      else:
        flax_out = method.networks[name].apply(variables, flax_input, label_input, train=False)
      network.train(train)
      with torch.no_grad():
        torch_out = network(torch_input, label_t)
      if name == "generator":
        torch_out = torch_out.permute(0, 2, 3, 1)
      report(f"{when}: {name} train={train}", max_difference(flax_out, torch_out.numpy()),
             failures)


def check_running_var(flax_old, flax_new, torch_new, count: int, updates: int) -> float:
  """Difference between torch's running variance and flax's after torch's unbiasing.

  With momentum m, k updates take the old variance to m**k * old + (1 - m) *
  sum(...) of batch variances; torch scales each batch variance by n / (n - 1).
  """
  kept = BN_MOMENTUM**updates * flax_old
  expected = kept + (flax_new - kept) * count / (count - 1)
  return float(np.max(np.abs(expected - torch_new)))


def run_check(args) -> int:
  """``--check``: the twin computes gen_jax's functions (forward and two train steps)."""
  torch = import_torch(args.torch_threads)
  seed = args.seeds[0]
  config = load_config(args.config, seed, args.steps, args.dataset)
  method = build_method(config)
  state = method.init(jax.random.PRNGKey(seed))
  batches = data.train_batches(configs.data_spec(config), global_batch_size=config.batch_size,
                               seed=seed, start_step=0, process_index=0, process_count=1)
  batches = [next(batches) for _ in range(2)]
  print(f"check {args.config} (seed {seed}, batch {config.batch_size}), tolerance "
        f"{CHECK_TOLERANCE:g}:")
  failures = []
  probe_z = method.sample_latents(jax.random.PRNGKey(1), jnp_labels(batches[0])).z
  check_forward(torch, method, state, probe_z, batches[0]["image"], batches[0]["label"],
                jax.random.PRNGKey(2), failures, "initial")

  twin = TorchTwin(torch, method, state)
  # Float32 rounding is the yardstick for gradients: a float64 twin takes the first step too.
  reference = TorchTwin(torch, method, state, torch.float64)
  initial = state
  train_step = jax.jit(method.train_step)
  for i, batch in enumerate(batches):
    keys = state.step_key("critic", "latent", "discriminator", "generator_dropout")
    latents = method.sample_latents(keys["latent"], jnp_labels(batch))
    real_rng, fake_rng = jax.random.split(keys["discriminator"], 4)[:2]
    # The masks of the discriminator's three calls in the step (real, fake, generator
    # pass), in order. They depend on the keys and shapes only, not on the inputs.
    masks = [flax_dropout_masks(method, state.params["discriminator"],
                                state.collections["discriminator"], batch["image"],
                                batch["label"], rng)
             for rng in (real_rng, fake_rng, keys["generator_dropout"])]
    state, flax_metrics = train_step(state, batch)
    real, labels = torch_batch(torch, batch)
    z = torch.from_numpy(np.array(latents.z))
    for network in ([twin, reference] if i == 0 else [twin]):
      for m in masks:
        set_masks(torch, network.discriminator, m)
      dtype = next(network.generator.parameters()).dtype
      step_metrics = network.train_step(real.to(dtype), labels, z.to(dtype))
      if network is twin:
        torch_metrics = step_metrics
    for key in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm"):
      relative = abs(torch_metrics[key] / float(flax_metrics[key]) - 1)
      report(f"step {i + 1}: {key} {float(flax_metrics[key]):.5f}", relative, failures,
             METRIC_TOLERANCE, "relative diff")
    if i == 0:
      # Adam's first moments hold the first step's gradients, element by element
      # (from the same parameters: later steps start from Adam-amplified rounding).
      for name in twin.networks():
        exact = reference.first_moments(name)
        scale = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(exact))
        flax_moments = jax.tree.leaves(state.opt_state[name],
                                       is_leaf=lambda x: hasattr(x, "mu"))[0].mu
        ours = max_difference(flax_moments, exact) / scale
        theirs = max_difference(twin.first_moments(name), exact) / scale
        report(f"step 1: {name} gradients, max |diff| to the float64 twin / largest: "
               f"float32 twin {theirs:.2e}, gen_jax", ours, failures,
               max(CHECK_TOLERANCE, 2 * theirs), "")

  for name, network in twin.networks().items():
    params, stats = network.export_flax()
    report_trained(f"after 2 steps: {name} params", state.params[name], params, failures)
    flax_stats = state.collections[name].get("batch_stats", {})
    if flax_stats:
      means = max_difference({k: v["mean"] for k, v in flax_stats.items()},
                             {k: v["mean"] for k, v in stats.items()})
      report(f"after 2 steps: {name} running means", means, failures)
      old = initial.collections[name]["batch_stats"]
      # The discriminator updates its statistics on the real and the fake batch.
      updates = len(batches) * (1 if name == "generator" else 2)
      worst = max(check_running_var(np.asarray(old[layer]["var"]), np.asarray(new["var"]),
                                    stats[layer]["var"],
                                    batch_count(method, name, layer, config.batch_size), updates)
                  for layer, new in flax_stats.items())
      report(f"after 2 steps: {name} running variances (torch's n/(n-1) applied)", worst,
             failures)
  if twin.ema is not None:
    ema_params, _ = twin.ema.export_flax()
    # Reported, not required: it holds once gen_jax's EMA is the debiased one.
    report_trained("after 2 steps: generator EMA, debiased rule (informative)",
                   state.ema_params["generator"], ema_params, None)
  check_forward(torch, method, state, probe_z, batches[1]["image"], batches[1]["label"],
                jax.random.PRNGKey(3), failures, "after 2 steps")
  print("check: " + ("all ok" if not failures else f"FAILED: {', '.join(failures)}"))
  return 1 if failures else 0


def jnp_labels(batch):
  return jnp.asarray(batch["label"], jnp.int32)


def batch_count(method, network: str, layer: str, batch_size: int) -> int:
  """Values per channel that a batch-norm layer averages over (n of torch's n / (n - 1))."""
  if network == "generator" and layer == "BatchNorm_0":
    return batch_size  # the projection, normalised per unit before the reshape
  index = int(layer.split("_")[1])
  if network == "generator":  # BatchNorm_i follows ConvTranspose_{i-1}
    g = method.networks["generator"]
    side = g.base_size * math.prod(g.strides[:index])
  else:  # BatchNorm_i follows Conv_{i+1}, the (i+2)-th halving
    side = math.ceil(method.info.image_shape[0] / 2**(index + 2))
  return batch_size * side * side


# ----------------------------------------------------------------------------- training


def checkpoint_plan(steps: int, eval_steps: list[int]) -> tuple[int, int]:
  """``(checkpoint_every_steps, keep_checkpoints)`` that keep every step to score."""
  every = functools.reduce(math.gcd, eval_steps, steps)
  return every, steps // every


def gen_jax_command(*args: str, log: pathlib.Path) -> None:
  """Runs ``gen-jax`` on one CPU device with this checkout's gen_jax; output to ``log``."""
  command = shutil.which("gen-jax")
  command = [command] if command else [sys.executable, "-m", "gen_jax"]
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)  # one real device, as users train on this machine
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
  log.parent.mkdir(parents=True, exist_ok=True)
  with open(log, "w") as out:
    result = subprocess.run([*command, *args], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT, check=False)
  if result.returncode:
    tail = log.read_text()[-3000:]
    raise SystemExit(f"gen-jax {' '.join(args)} failed (log {log}):\n{tail}")


def saved_steps(workdir: pathlib.Path) -> set[int]:
  """The checkpoint steps of a gen_jax run (none if it has not started)."""
  if not (workdir / "checkpoints").is_dir():
    return set()
  checkpoints = Checkpoints(str(workdir), read_only=True)
  try:
    return set(checkpoints.all_steps())
  finally:
    checkpoints.close()


def train_gen_jax(args, seed: int, run_dir: pathlib.Path, steps: int,
                  eval_steps: list[int]) -> None:
  """Trains (or resumes) gen_jax through its command line, keeping every step to score."""
  if set(eval_steps) <= saved_steps(run_dir):
    return
  every, keep = checkpoint_plan(steps, eval_steps)
  overrides = [f"--config.seed={seed}", f"--config.num_train_steps={steps}",
               f"--config.checkpoint_every_steps={every}", f"--config.keep_checkpoints={keep}"]
  if args.dataset:
    overrides.append(f"--config.dataset={args.dataset}")
  start = time.perf_counter()
  gen_jax_command("train", f"--config={args.config}", f"--workdir={run_dir}", *overrides,
                  log=run_dir / "train.log")
  print(f"gen_jax seed {seed}: trained to step {steps} in {time.perf_counter() - start:.0f} s",
        flush=True)


def train_torch(torch, config, seed: int, run_dir: pathlib.Path,
                eval_steps: list[int]) -> None:
  """Trains (or resumes) the twin, saving it at every step to score (``step_N.pt``)."""
  if all((run_dir / f"step_{s}.pt").is_file() for s in eval_steps):
    return
  method = build_method(config)
  twin = TorchTwin(torch, method, method.init(jax.random.PRNGKey(seed)))
  latent_rng = torch.Generator().manual_seed(seed)
  done = [s for s in eval_steps if (run_dir / f"step_{s}.pt").is_file()]
  if done:
    saved = torch.load(run_dir / f"step_{max(done)}.pt")
    twin.load_state_dict(saved)
    latent_rng.set_state(saved["latent_rng"])
  batches = data.train_batches(configs.data_spec(config), global_batch_size=config.batch_size,
                               seed=seed, start_step=twin.step, process_index=0,
                               process_count=1)
  run_dir.mkdir(parents=True, exist_ok=True)
  start, first = time.perf_counter(), twin.step
  while twin.step < max(eval_steps):
    real, labels = torch_batch(torch, next(batches))
    z = torch.randn(config.batch_size, method.latent_dim, generator=latent_rng)
    losses = twin.train_step(real, labels, z)
    if not all(math.isfinite(v) for v in losses.values()):
      raise SystemExit(f"torch twin seed {seed}: non-finite loss at step {twin.step}: {losses}")
    if twin.step in eval_steps:
      torch.save({**twin.state_dict(), "latent_rng": latent_rng.get_state()},
                 run_dir / f"step_{twin.step}.pt")
  print(f"torch twin seed {seed}: trained steps {first}-{twin.step} in "
        f"{time.perf_counter() - start:.0f} s", flush=True)


def ensure_classifier(args) -> str:
  """``--classifier``, or a classifier trained once into ``WORKDIR/classifier``."""
  if args.classifier:
    return args.classifier
  workdir = pathlib.Path(args.workdir) / "classifier"
  steps = configs.load(str(ROOT / CLASSIFIER_CONFIG)).num_train_steps
  if steps not in saved_steps(workdir):
    overrides = [f"--config.dataset={args.dataset}"] if args.dataset else []
    gen_jax_command("train", f"--config={CLASSIFIER_CONFIG}", f"--workdir={workdir}",
                    *overrides, log=workdir / "train.log")
  return str(workdir)


# ----------------------------------------------------------------------------- scoring


class Scorer:
  """The MNIST classifier's judgement of samples, against the test split."""

  def __init__(self, classifier: str, config):
    self.space = features.classifier_space(classifier, batch_size=250)
    spec = configs.data_spec(config, split="test")
    reference = [images.to_uint8(b["image"])[b["mask"]]
                 for b in data.eval_batches(spec, batch_size=500)]
    pool = self.space.extract(np.concatenate(reference))["pool"]
    self.reference = metrics.gaussian_statistics(pool)

  def __call__(self, drawn: dict[str, np.ndarray]) -> dict[str, float]:
    """FID, confident fraction, class spread (and class accuracy) of ``drawn`` images."""
    extracted = self.space.extract(drawn["images"])
    logits = extracted["logits"].astype(np.float64)
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    predicted = probabilities.argmax(-1)
    confident = probabilities.max(-1) > CONFIDENCE
    shares = np.bincount(predicted[confident], minlength=probabilities.shape[-1])
    shares = shares / max(confident.sum(), 1)
    scores = {
        "fid": metrics.frechet_distance(
            *self.reference, *metrics.gaussian_statistics(extracted["pool"])),
        "confident": float(confident.mean()),
        "min_class": float(shares.min()),
        "max_class": float(shares.max()),
    }
    if "labels" in drawn:
      scores["class_acc"] = float(np.mean(predicted == drawn["labels"]))
    return scores


def score_gen_jax(scorer, run_dir: pathlib.Path, seed: int, eval_steps: list[int],
                  num: int) -> list[dict]:
  rows = []
  for step in eval_steps:
    method, state, _ = sample.load_run(str(run_dir), step)
    variables = {"raw": method.sampling_variables(state, ema=False)}
    if method.ema_decay > 0:
      variables["ema"] = method.sampling_variables(state)
    for network, v in variables.items():
      drawn = sample.generate_images(method, v, num, SAMPLE_SEED)
      rows.append({"framework": "gen_jax", "network": network, "seed": seed, "step": step,
                   **scorer(drawn)})
  return rows


def score_torch(torch, scorer, config, run_dir: pathlib.Path, seed: int,
                eval_steps: list[int], num: int) -> list[dict]:
  method = build_method(config)
  twin = TorchTwin(torch, method, method.init(jax.random.PRNGKey(seed)))
  rows = []
  for step in eval_steps:
    twin.load_state_dict(torch.load(run_dir / f"step_{step}.pt"))
    networks = {"raw": twin.generator}
    if twin.ema is not None:
      networks["ema"] = twin.ema_with_standing_stats(seed)
    for network, module in networks.items():
      rows.append({"framework": "torch", "network": network, "seed": seed, "step": step,
                   **scorer(twin.sample(module, num, SAMPLE_SEED))})
  return rows


# ----------------------------------------------------------------------------- output

COLUMNS = ("fid", "confident", "min_class", "max_class", "class_acc")


def table(rows: list[dict], keys: tuple[str, ...]) -> str:
  """Rows as an aligned text table: ``keys`` then the score columns present."""
  columns = [c for c in COLUMNS if any(c in r for r in rows)]
  header = [*keys, *columns]
  lines = [[str(r[k]) for k in keys] + [f"{r[c]:.3f}" if c != "fid" else f"{r[c]:.2f}"
                                        for c in columns] for r in rows]
  widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
  fmt = "  ".join(f"{{:>{w}}}" for w in widths)
  return "\n".join([fmt.format(*header)] + [fmt.format(*line) for line in lines])


def medians(rows: list[dict]) -> list[dict]:
  """Median of each score over seeds, per (framework, network, step), by step."""
  groups = collections.defaultdict(list)
  for r in rows:
    groups[r["framework"], r["network"], r["step"]].append(r)
  out = []
  for (framework, network, step), group in sorted(groups.items(), key=lambda kv: kv[0][::-1]):
    summary = {"framework": framework, "network": network, "step": step, "seeds": len(group)}
    for c in COLUMNS:
      if c in group[0]:
        summary[c] = statistics.median(r[c] for r in group)
    out.append(summary)
  return out


def verdict(summary: list[dict], step: int, ema_kept: bool) -> str:
  """One line: gen_jax's default sampling path and its raw generator against the twin's raw."""
  fid = {(s["framework"], s["network"]): s["fid"] for s in summary if s["step"] == step}
  if ("torch", "raw") not in fid or ("gen_jax", "raw") not in fid:
    return "verdict: needs both frameworks (--frameworks jax,torch)"
  default = "ema" if ema_kept else "raw"

  def compare(network: str) -> str:
    ours, theirs = fid["gen_jax", network], fid["torch", "raw"]
    outcome = "at least as good" if ours <= theirs else "worse"
    return f"gen_jax {network.upper()} FID median {ours:.2f} vs torch RAW {theirs:.2f}: {outcome}"

  parts = [compare(default)] + ([compare("raw")] if default != "raw" else [])
  return f"verdict at {step} steps: " + "; ".join(parts)


# ----------------------------------------------------------------------------- main


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default="experiments/dcgan/mnist.py:quick",
                      help=f"one of {', '.join(SUPPORTED_CONFIGS)}")
  parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
  parser.add_argument("--steps", type=int, help="train steps; default the config's")
  parser.add_argument("--eval_steps", default="",
                      help="comma-separated earlier steps to score too (the EMA over time)")
  parser.add_argument("--dataset", help="a gen_jax dataset name; default the config's, e.g. "
                      "npz:../shared/datasets/mnist.npz offline")
  parser.add_argument("--classifier", help="workdir of an experiments/classifier/mnist.py run; "
                      "default: train one into WORKDIR/classifier")
  parser.add_argument("--workdir", default="/tmp/learning_parity",
                      help="runs, twin checkpoints and the rows (resumable)")
  parser.add_argument("--num_samples", type=int, default=10_000)
  parser.add_argument("--frameworks", default="jax,torch", help="jax, torch or both")
  parser.add_argument("--torch_threads", type=int, default=2,
                      help="PyTorch's threads; on a loaded machine 1 can be several times "
                      "faster (its OpenMP threads wait on each other)")
  parser.add_argument("--check", action="store_true",
                      help="only check that the twin computes gen_jax's networks and step")
  args = parser.parse_args(argv)
  args.seeds = [int(s) for s in args.seeds.split(",") if s]
  args.frameworks = [f for f in args.frameworks.split(",") if f]
  if not args.seeds or set(args.frameworks) - {"jax", "torch"} or not args.frameworks:
    parser.error("--seeds needs at least one seed; --frameworks takes jax, torch or both")
  if args.num_samples <= 0:
    parser.error("--num_samples must be positive")
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.check:
    return run_check(args)
  config = load_config(args.config, args.seeds[0], args.steps, args.dataset)
  steps = config.num_train_steps
  eval_steps = sorted({int(s) for s in args.eval_steps.split(",") if s} | {steps})
  if eval_steps[0] <= 0 or eval_steps[-1] > steps:
    raise SystemExit(f"--eval_steps must be in [1, {steps}], got {args.eval_steps}")
  torch = import_torch(args.torch_threads) if "torch" in args.frameworks else None
  root = pathlib.Path(args.workdir) / args.config.replace("/", "_").replace(":", "_")
  classifier = ensure_classifier(args)

  for seed in args.seeds:
    if "jax" in args.frameworks:
      train_gen_jax(args, seed, root / f"gen_jax_seed{seed}", steps, eval_steps)
    if torch is not None:
      train_torch(torch, load_config(args.config, seed, steps, args.dataset),
                  seed, root / f"torch_seed{seed}", eval_steps)

  scorer = Scorer(classifier, config)
  rows = []
  for seed in args.seeds:
    if "jax" in args.frameworks:
      rows += score_gen_jax(scorer, root / f"gen_jax_seed{seed}", seed, eval_steps,
                            args.num_samples)
    if torch is not None:
      rows += score_torch(torch, scorer, load_config(args.config, seed, steps, args.dataset),
                          root / f"torch_seed{seed}", seed, eval_steps, args.num_samples)
  with open(root.with_name(f"rows_{root.name}.jsonl"), "w") as f:
    for r in rows:
      f.write(json.dumps({"config": args.config, "num_samples": args.num_samples, **r}) + "\n")

  summary = medians(rows)
  print(f"\n{args.config}: {steps} steps, batch {config.batch_size}, {args.num_samples} samples "
        f"per row, classifier {classifier}")
  print(table(rows, ("framework", "network", "seed", "step")))
  print(f"\nmedians over seeds {','.join(map(str, args.seeds))}:")
  print(table(summary, ("framework", "network", "step", "seeds")))
  print(verdict(summary, steps, config.ema_decay > 0))
  return 0


if __name__ == "__main__":
  sys.exit(main())
