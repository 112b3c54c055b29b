"""Shared fixtures. Every test process simulates 8 CPU devices, so the sharded
path (a mesh over 8 devices) is what the tests exercise."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"
EXPERIMENTS = ROOT / "experiments"
SMOKE_CONFIG = "experiments/dcgan/mnist.py:smoke"


@pytest.fixture(scope="session")
def shared_datasets() -> pathlib.Path:
  """``../shared/datasets`` beside the project root (present in CI)."""
  if not SHARED_DATASETS.is_dir():
    pytest.skip(f"local dataset copies not found at {SHARED_DATASETS}: this test needs "
                f"the shared/ folder beside the project root, as in CI")
  return SHARED_DATASETS


def write_npz(path: pathlib.Path, shape: tuple[int, int, int], num: int = 64,
              num_classes: int = 10, seed: int = 0) -> str:
  """A small random dataset in the ``npz:`` layout; returns its dataset name."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, n in (("train", num), ("test", num // 4)):
    x = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    arrays[f"x_{split}"] = x[..., 0] if shape[-1] == 1 else x
    arrays[f"y_{split}"] = rng.integers(0, num_classes, n).astype(np.uint8)
  np.savez(path, **arrays)
  return f"npz:{path}"


@pytest.fixture(scope="session")
def npz_factory(tmp_path_factory):
  """``make(shape) -> 'npz:PATH'``, cached per shape."""
  cache = {}

  def make(shape):
    if shape not in cache:
      name = "x".join(map(str, shape))
      cache[shape] = write_npz(tmp_path_factory.mktemp("data") / f"{name}.npz", shape)
    return cache[shape]

  return make


def gen_jax(*args: str, check: bool = True, one_device: bool = False,
            timeout: float = 900) -> subprocess.CompletedProcess:
  """Runs the ``gen-jax`` command (or ``python -m gen_jax`` if not installed).

  Args:
    *args: its arguments.
    check: raise with the command's stderr if it fails.
    one_device: run on the one real CPU device instead of 8 simulated ones.
    timeout: seconds.
  """
  command = shutil.which("gen-jax")
  command = [command] if command else [sys.executable, "-m", "gen_jax"]
  env = dict(os.environ)
  if one_device:
    env.pop("XLA_FLAGS", None)
  result = subprocess.run([*command, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
  if check and result.returncode:
    raise AssertionError(f"gen-jax {' '.join(args)} failed:\n{result.stderr[-3000:]}")
  return result


def smoke_run(workdir: pathlib.Path, dataset: str) -> pathlib.Path:
  """Trains ``SMOKE_CONFIG`` on ``dataset`` through the CLI: checkpoints 2 and 4."""
  gen_jax("train", f"--config={SMOKE_CONFIG}", f"--workdir={workdir}",
          f"--config.dataset={dataset}")
  return workdir
