"""gen_jax.ops.onednn_conv: the oneDNN convolutions equal XLA's, to any order of
reverse-mode AD, and the layers use them exactly where they should."""

import json
import os
import platform
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.ops import onednn_conv

from conftest import ROOT

ON_LINUX_X86 = (platform.system(), platform.machine()) == ("Linux", "x86_64")
needs_kernels = pytest.mark.skipif(
    not onednn_conv.available(),
    reason=f"oneDNN kernels not loaded: {onednn_conv.unavailable_reason()}")

# (x shape NHWC, kernel shape HWIO, strides, padding)
CASES = [
    ((4, 7, 7, 16), (5, 5, 16, 8), (1, 1), ((2, 2), (2, 2))),  # DCGAN's 7x7 layer
    ((3, 14, 14, 8), (5, 5, 8, 4), (2, 2), ((1, 2), (1, 2))),  # strided, 'SAME'
    ((2, 9, 6, 3), (3, 2, 3, 5), (2, 1), ((0, 1), (1, 0))),  # uneven everything
    ((2, 5, 5, 4), (3, 3, 4, 6), (1, 1), ((0, 0), (0, 0))),  # 'VALID'
]


def _random(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _assert_close(got, want, rtol=1e-5):
  got, want = np.asarray(got), np.asarray(want)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=rtol * float(np.max(np.abs(want))))


@pytest.mark.skipif(not ON_LINUX_X86, reason="the kernels are built on Linux x86-64 only")
def test_kernels_are_built_and_load_on_linux_x86_64():
  assert onednn_conv.available(), onednn_conv.unavailable_reason()


@needs_kernels
@pytest.mark.parametrize("x_shape,w_shape,strides,padding", CASES)
def test_value_and_both_gradients_equal_xla(x_shape, w_shape, strides, padding):
  x, w = _random(x_shape, 0), _random(w_shape, 1)
  g = _random(onednn_conv.reference_conv2d(x, w, strides, padding).shape, 2)

  @jax.jit
  def value_and_grads(x, w, g):
    outs = []
    for conv in (onednn_conv.conv2d, onednn_conv.reference_conv2d):
      y, vjp = jax.vjp(lambda x, w: conv(x, w, strides, padding), x, w)
      outs.append((y, *vjp(g)))
    return outs

  got, want = value_and_grads(x, w, g)
  for a, b in zip(got, want):
    _assert_close(a, b)


@needs_kernels
@pytest.mark.parametrize("x_shape,w_shape,strides,padding", CASES[:2])
def test_gradient_of_a_gradient_penalty_equals_xla(x_shape, w_shape, strides, padding):
  """WGAN-GP and R1 differentiate the critic's input gradient again."""
  x, w = _random(x_shape, 3), _random(w_shape, 4) * 0.2

  def penalty(conv):
    def critic(x, w):
      return jnp.sum(jnp.tanh(conv(x, w, strides, padding)))
    return lambda x, w: jnp.sum(jax.grad(critic)(x, w) ** 2)

  got = jax.jit(jax.grad(penalty(onednn_conv.conv2d), argnums=(0, 1)))(x, w)
  want = jax.jit(jax.grad(penalty(onednn_conv.reference_conv2d), argnums=(0, 1)))(x, w)
  for a, b in zip(got, want):
    _assert_close(a, b, rtol=1e-4)


@needs_kernels
def test_vmap_over_a_leading_axis():
  x_shape, w_shape, strides, padding = CASES[1]
  xs, w = _random((3, *x_shape), 5), _random(w_shape, 6)
  got = jax.vmap(lambda x: onednn_conv.conv2d(x, w, strides, padding))(xs)
  _assert_close(got, jax.vmap(lambda x: onednn_conv.reference_conv2d(x, w, strides, padding))(xs))


@needs_kernels
def test_negative_padding_is_an_error_that_says_what_to_do():
  x, w = _random((1, 6, 6, 2), 0), _random((3, 3, 2, 2), 1)
  with pytest.raises(ValueError, match="padding must be >= 0"):
    onednn_conv.conv2d(x, w, (1, 1), ((-1, 0), (0, 0)))


def _run_on_one_device(script: str, *args: str, **env) -> dict:
  """Runs ``script args`` in a process with one CPU device; returns its JSON output."""
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
         "JAX_PLATFORMS": "cpu", **env}
  result = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


LOWERINGS = """
import json, jax, jax.numpy as jnp
from gen_jax.models import layers
x, w = jnp.ones((2, 7, 7, 8)), jnp.ones((5, 5, 8, 4))

def loss(x, w):
  return jnp.sum(layers.conv_transpose(x, w, (2, 2)) ** 2) + jnp.sum(layers.conv(x, w[..., :8, :], (2, 2)))

grads = jax.jit(jax.grad(loss, argnums=(0, 1)))
hlo = {p: grads.trace(x, w).lower(lowering_platforms=(p,)).as_text() for p in ("cpu", "tpu")}
print(json.dumps({p: sorted(set(t for t in ("gen_jax_onednn_conv_forward",
    "gen_jax_onednn_conv_backward_data", "gen_jax_onednn_conv_backward_weights",
    "stablehlo.convolution") if t in text)) for p, text in hlo.items()}))
"""


@needs_kernels
def test_layers_use_onednn_on_one_cpu_device_and_xla_on_tpu_or_several_devices():
  used = _run_on_one_device(LOWERINGS)
  assert used["cpu"] == ["gen_jax_onednn_conv_backward_data",
                         "gen_jax_onednn_conv_backward_weights",
                         "gen_jax_onednn_conv_forward"]
  assert used["tpu"] == ["stablehlo.convolution"]
  assert _run_on_one_device(LOWERINGS, GEN_JAX_ONEDNN="0")["cpu"] == ["stablehlo.convolution"]
  # This test process has 8 simulated devices: the layers keep XLA's convolutions.
  x, w = jnp.ones((2, 7, 7, 8)), jnp.ones((5, 5, 8, 4))
  assert not onednn_conv.supports(x, w)


LAYERS_EQUAL_LAX = """
import json, jax, jax.numpy as jnp, numpy as np
from jax import lax
from gen_jax.models import layers
DN = ("NHWC", "HWIO", "NHWC")
rng = np.random.default_rng(0)
errors, used = {}, set()
for name, x_shape, w_shape, strides in [("transpose_s1", (3, 7, 7, 16), (5, 5, 16, 8), (1, 1)),
                                        ("transpose_s2", (3, 7, 7, 16), (5, 5, 16, 8), (2, 2)),
                                        ("conv_s2", (3, 14, 14, 8), (5, 5, 8, 16), (2, 2))]:
  x, w = rng.standard_normal(x_shape, np.float32), rng.standard_normal(w_shape, np.float32)
  if name.startswith("transpose"):
    ours = lambda x, w: layers.conv_transpose(x, w, strides, "SAME")
    reference = lambda x, w: lax.conv_transpose(x, w, strides, "SAME", dimension_numbers=DN)
  else:
    ours = lambda x, w: layers.conv(x, w, strides, "SAME")
    reference = lambda x, w: lax.conv_general_dilated(x, w, strides, "SAME", dimension_numbers=DN)
  g = rng.standard_normal(reference(x, w).shape, np.float32)
  run = lambda fn: jax.jit(lambda x, w, g: (lambda y, vjp: (y, *vjp(g)))(*jax.vjp(fn, x, w)))
  used.update(t for t in ("gen_jax_onednn", "stablehlo.convolution")
              if t in run(ours).lower(x, w, g).as_text())
  errors[name] = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                     for a, b in zip(run(ours)(x, w, g), run(reference)(x, w, g)))
print(json.dumps({"errors": errors, "used": sorted(used)}))
"""


@needs_kernels
def test_layers_on_onednn_equal_lax_value_and_gradients():
  """What issue 2 asks of every reformulation, on the oneDNN path."""
  result = _run_on_one_device(LAYERS_EQUAL_LAX)
  assert result["used"] == ["gen_jax_onednn"]
  for name, error in result["errors"].items():
    assert error < 1e-5, (name, error)


TRAIN_STEPS = """
import json, sys, jax, numpy as np
from gen_jax import configs, data, methods
from gen_jax.train import parallel, trainer
config = configs.load(sys.argv[1])
info = data.DatasetInfo(num_examples=0, image_shape=(28, 28, 1), num_classes=10)
method = methods.build(config, info)
mesh = parallel.make_mesh()
rng = np.random.default_rng(0)
state = jax.jit(method.init, out_shardings=parallel.replicated(mesh))(jax.random.PRNGKey(0))
step = trainer.jit_train_step(method, mesh, jax.tree.map(lambda _: parallel.replicated(mesh), state))
for _ in range(3):
  batch = parallel.global_batch({"image": rng.uniform(-1, 1, (config.batch_size, 28, 28, 1)).astype(np.float32),
                                 "label": rng.integers(0, 10, config.batch_size).astype(np.int32)}, mesh)
  state, metrics = step(state, batch)
print(json.dumps({"params": [np.asarray(p).ravel().tolist() for p in jax.tree.leaves(state.params)],
                  "hlo_has_onednn": "gen_jax_onednn" in step.lower(state, batch).as_text()}))
"""


@needs_kernels
@pytest.mark.parametrize("config", ["dcgan/mnist.py:smoke", "wgan_gp/mnist.py:smoke"])
def test_train_steps_on_onednn_equal_xla(config):
  """WGAN-GP: critic steps (concurrent custom calls) and a gradient penalty."""
  onednn = _run_on_one_device(TRAIN_STEPS, f"experiments/{config}")
  xla = _run_on_one_device(TRAIN_STEPS, f"experiments/{config}", GEN_JAX_ONEDNN="0")
  assert onednn["hlo_has_onednn"] and not xla["hlo_has_onednn"]
  for got, want in zip(onednn["params"], xla["params"]):
    _assert_close(got, want, rtol=1e-4)
