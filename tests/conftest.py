"""Shared fixtures. Every test process simulates 8 CPU devices, so the sharded
path (a mesh over 8 devices) is what the tests exercise."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import fcntl  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"
EXPERIMENTS = ROOT / "experiments"
SMOKE_CONFIG = "experiments/dcgan/mnist.py:smoke"
# Trained as configured, so that the learning tests' domain figures are in the
# README's feature space. Fewer steps make it less confident on generated digits
# (DCGAN quick: 71% of samples above 0.9 after 3000 steps, 58% after 1000).
CLASSIFIER_CONFIG = "experiments/classifier/mnist.py"
MIN_CLASSIFIER_ACCURACY = 0.985


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


@pytest.fixture(scope="session")
def mnist_classifier(shared_datasets, tmp_path_factory) -> pathlib.Path:
  """The workdir of an MNIST classifier trained through the CLI, as a user would.

  It judges the samples of the learning tests and is their domain feature
  space (``--features classifier:WORKDIR``); its test accuracy is checked.
  Trained once per test run: the pytest-xdist workers share it through a lock
  in their common temporary directory (the first to arrive trains it).
  """
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent  # shared by all workers of this run
  workdir = root / "classifier_mnist"
  with open(root / "classifier_mnist.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    accuracy_file = workdir / "test_accuracy.txt"
    if not accuracy_file.is_file():
      shutil.rmtree(workdir, ignore_errors=True)  # what a failed attempt left
      dataset = f"npz:{shared_datasets / 'mnist.npz'}"
      start = time.perf_counter()
      gen_jax("train", f"--config={CLASSIFIER_CONFIG}", f"--workdir={workdir}",
              f"--config.dataset={dataset}", one_device=True, timeout=3600)
      seconds = time.perf_counter() - start
      result = gen_jax("eval", f"--workdir={workdir}", "--metrics=accuracy",
                       f"--reference={dataset}:test", one_device=True)
      accuracy = float(re.search(r"^accuracy=(\S+)$", result.stdout, re.MULTILINE).group(1))
      print(f"MNIST classifier: trained in {seconds:.0f} s, test accuracy {accuracy:.4f}")
      accuracy_file.write_text(str(accuracy))
  accuracy = float(accuracy_file.read_text())
  assert accuracy > MIN_CLASSIFIER_ACCURACY, accuracy
  return workdir


@pytest.fixture(scope="session")
def mnist_probabilities(mnist_classifier):
  """``probabilities(uint8 [N, 28, 28, 1]) -> float32 [N, 10]`` of the ``mnist_classifier``."""
  # Deferred: only the learning tests need JAX and the run loader here.
  import jax
  from gen_jax import sample
  from gen_jax.evaluation.features import to_model_range

  method, state, _ = sample.load_run(mnist_classifier)
  variables = method.sampling_variables(state)
  probabilities = jax.jit(
      lambda images: jax.nn.softmax(method.classify(variables, to_model_range(images))[0]))
  return lambda images: np.asarray(probabilities(images))
