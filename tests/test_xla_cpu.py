"""Tests for gen_jax.xla_cpu: safe XLA_FLAGS, and threefry bits unchanged."""

import os
import subprocess
import sys
import textwrap

import pytest

from gen_jax import xla_cpu

FLAG = xla_cpu.CONVOLUTIONS_ON_EIGEN


@pytest.mark.parametrize(
    "flags,version,want",
    [
        ("", (0, 10, 2), FLAG),
        ("--xla_force_host_platform_device_count=8", (0, 10),
         f"--xla_force_host_platform_device_count=8 {FLAG}"),
        # The user's own choice of YNNPACK fusion types is kept.
        ("--xla_cpu_experimental_ynn_fusion_type=+dot", (0, 10, 2),
         "--xla_cpu_experimental_ynn_fusion_type=+dot"),
        # Unchecked jaxlib versions may not know the flag (XLA aborts on those).
        ("", (0, 9, 0), ""),
        ("-x", (0, 11, 0), "-x"),
        ("", (), ""),
    ],
)
def test_flag_added_only_where_safe(flags, version, want):
  assert xla_cpu.xla_flags_with_cpu_settings(flags, version) == want


def _run(code: str, **env) -> str:
  """Runs ``code`` in a fresh CPU-only Python; returns its stdout."""
  full_env = {**os.environ, "JAX_PLATFORMS": "cpu", **env}
  result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


CONV_ON_EIGEN = """
    import os
    import jax, jax.numpy as jnp
    from gen_jax import xla_cpu
    xla_cpu.configure()
    f = lambda x, w: jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x, w = jnp.ones((2, 7, 7, 32)), jnp.ones((5, 5, 32, 32))
    hlo = jax.jit(f).lower(x, w).compile().as_text()
    print(os.environ["XLA_FLAGS"])
    print("ynn" in hlo)
"""


@pytest.mark.skipif(xla_cpu._version("jaxlib")[:2] not in xla_cpu.VERIFIED_JAXLIB_VERSIONS,
                    reason="the flag is only added for checked jaxlib versions")
def test_configure_moves_convolutions_off_ynnpack():
  flags, uses_ynn = _run(CONV_ON_EIGEN, XLA_FLAGS="--xla_cpu_enable_fast_math=false").split()[-2:]
  assert flags == FLAG and uses_ynn == "False"
  # The user's setting wins: here, YNNPACK's default fusion types.
  own = "--xla_cpu_experimental_ynn_fusion_type=+individual_convolution"
  flags, uses_ynn = _run(CONV_ON_EIGEN, XLA_FLAGS=own).split()[-2:]
  assert flags == own and uses_ynn == "True"


def test_configure_after_backend_start_leaves_flags_alone():
  out = _run("""
      import os
      import jax
      jax.numpy.zeros(1).block_until_ready()
      from gen_jax import xla_cpu
      xla_cpu.configure()
      print(repr(os.environ.get("XLA_FLAGS")))
  """, XLA_FLAGS="")
  assert out.split()[-1] == "''"


SAME_BITS = """
    import jax, jax.numpy as jnp, numpy as np
    from gen_jax import xla_cpu

    def draws(seed):
      key = jax.random.key(seed)
      k1, k2, k3 = jax.random.split(key, 3)
      return (jax.random.bits(k1, (5, 7, 3)),
              jax.random.bernoulli(k2, 0.7, (256, 14, 14, 4)),
              jax.random.normal(jax.random.fold_in(k3, 3), (64, 100)))

    seeds = jnp.arange(4)
    rolled = jax.jit(jax.vmap(draws))
    want = rolled(seeds)
    assert "while" in rolled.lower(seeds).compile().as_text()
    assert xla_cpu.unroll_threefry_on_cpu()
    unrolled = jax.jit(jax.vmap(draws))  # A new function: lowered anew.
    got = unrolled(seeds)
    assert "while" not in unrolled.lower(seeds).compile().as_text()
    for a, b in zip(got, want):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    print("same")
"""


@pytest.mark.skipif(xla_cpu._version("jax")[:2] not in xla_cpu.VERIFIED_JAX_VERSIONS,
                    reason="the lowering is only replaced for checked jax versions")
def test_unrolled_threefry_gives_the_same_bits():
  assert _run(SAME_BITS).split()[-1] == "same"
