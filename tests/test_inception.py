"""The FID InceptionV3 against pytorch-fid's model, through committed fixtures.

The real weights cannot be downloaded here, so ``tests/fixtures`` holds
pytorch-fid's state_dict layout and its outputs with deterministic synthetic
weights (``tests/fixtures/make_inception_reference.py`` made both); the tests
regenerate those weights with numpy and need no torch.
"""

import hashlib
import importlib.util
import json
import pathlib
import sys

import jax
import numpy as np
import pytest

from gen_jax.evaluation import features as feature_spaces
from gen_jax.evaluation import inception

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


def _load_reference_maker():
  spec = importlib.util.spec_from_file_location(
      "make_inception_reference", FIXTURES / "make_inception_reference.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


reference = _load_reference_maker()


@pytest.fixture(scope="module")
def layout() -> dict:
  return json.loads(reference.LAYOUT_PATH.read_text())


@pytest.fixture(scope="module")
def state_dict(layout) -> dict[str, np.ndarray]:
  return reference.synthetic_state_dict(layout["state_dict"])


@pytest.fixture(scope="module")
def weights_file(state_dict, tmp_path_factory) -> pathlib.Path:
  path = tmp_path_factory.mktemp("inception") / "synthetic.npz"
  np.savez(path, **state_dict)
  return path


def test_parameter_tree_converts_to_reference_layout(layout):
  shapes = jax.eval_shape(inception.InceptionV3().init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, 299, 299, 3), np.float32))
  zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  converted = {key: list(value.shape)
               for key, value in inception.variables_to_state_dict(zeros).items()}
  expected = {key: shape for key, shape in layout["state_dict"].items()
              if not key.endswith(".num_batches_tracked")}
  assert len(layout["state_dict"]) - len(expected) == 94  # one counter per BatchNorm
  assert converted == expected
  num_params = sum(int(np.prod(shape)) for shape in converted.values())
  assert num_params == layout["num_params"] == 23_885_392


def test_load_weights_round_trip(weights_file, state_dict):
  variables = inception.load_weights(weights_file)
  assert set(variables) == {"params", "batch_stats"}
  kernel = variables["params"]["Mixed_5b"]["branch5x5_2"]["conv"]["kernel"]
  assert kernel.shape == (5, 5, 48, 64)  # HWIO
  round_trip = inception.variables_to_state_dict(variables)
  assert round_trip.keys() == state_dict.keys()
  for key, value in state_dict.items():
    np.testing.assert_array_equal(round_trip[key], value, err_msg=key)


def test_load_weights_accepts_batch_norm_counters(tmp_path, state_dict):
  path = tmp_path / "with_counters.npz"
  np.savez(path, **state_dict, **{"Conv2d_1a_3x3.bn.num_batches_tracked": np.array(0)})
  inception.load_weights(path)


def test_load_weights_errors_name_the_problem(tmp_path, state_dict):
  broken = dict(state_dict)
  del broken["Mixed_6b.branch7x7_2.conv.weight"]
  broken["Mixed_7c.branch_pool.conv.weight"] = np.zeros((192, 2048, 3, 3), np.float32)
  broken["AuxLogits.fc.weight"] = np.zeros((1000, 768), np.float32)
  path = tmp_path / "broken.npz"
  np.savez(path, **broken)
  with pytest.raises(ValueError) as error:
    inception.load_weights(path)
  message = str(error.value)
  assert "1 missing keys:\n  Mixed_6b.branch7x7_2.conv.weight (128, 128, 1, 7)" in message
  assert "1 unexpected keys:\n  AuxLogits.fc.weight" in message
  assert ("Mixed_7c.branch_pool.conv.weight: expected (192, 2048, 1, 1), "
          "got (192, 2048, 3, 3)") in message

  (tmp_path / "weights.h5").write_bytes(b"")
  with pytest.raises(ValueError, match=r"unknown weight file extension '\.h5'.*\.npz"):
    inception.load_weights(tmp_path / "weights.h5")


def test_pth_file_and_converter(tmp_path, state_dict):
  torch = pytest.importorskip("torch")
  pth = tmp_path / "weights.pth"
  torch.save({key: torch.from_numpy(value) for key, value in state_dict.items()}, pth)
  npz = tmp_path / "converted.npz"
  inception.main(["convert", str(pth), str(npz)])  # reads and checks the .pth as load_weights does
  converted = inception.read_state_dict(npz)
  assert converted.keys() == state_dict.keys()
  for key, value in state_dict.items():
    np.testing.assert_array_equal(converted[key], value, err_msg=key)


def test_pth_without_torch_says_how_to_convert(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
  monkeypatch.chdir(tmp_path)
  pathlib.Path("w.pth").write_bytes(b"")
  with pytest.raises(ImportError, match=r"needs torch.*inception convert w\.pth w\.npz"):
    inception.load_weights("w.pth")


def test_weights_hash(weights_file):
  digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()
  assert inception.weights_hash(weights_file) == digest[:8]
  assert inception.weights_hash(weights_file, length=64) == digest


def test_preprocess_matches_pytorch_fid():
  expected = np.load(reference.REFERENCE_PATH)
  grid = expected["grid"]
  shrunk = np.asarray(jax.jit(inception.preprocess)(reference.resize_test_images()))
  assert shrunk.shape == (2, 299, 299, 3) and shrunk.dtype == np.float32
  np.testing.assert_allclose(shrunk[:, grid][:, :, grid], expected["preprocessed"], atol=1e-6)


def test_preprocess_scales_and_repeats_grayscale():
  gray = reference.model_test_images()[..., :1]
  np.testing.assert_array_equal(inception.preprocess(gray),
                                inception.preprocess(np.repeat(gray, 3, axis=-1)))
  full_size = np.array([0, 255, 51], np.uint8).repeat(299 * 299).reshape(1, 3, 299, 299)
  full_size = full_size.transpose(0, 2, 3, 1)  # [1, 299, 299, 3], one value per channel
  np.testing.assert_allclose(inception.preprocess(full_size)[0, 0, 0], [-1.0, 1.0, -0.6],
                             atol=1e-6)
  with pytest.raises(TypeError, match="uint8"):
    inception.preprocess(np.zeros((1, 8, 8, 3), np.float32))
  with pytest.raises(ValueError, match="C = 1 or 3"):
    inception.preprocess(np.zeros((1, 8, 8, 4), np.uint8))


def test_features_match_pytorch_fid(weights_file):
  expected = np.load(reference.REFERENCE_PATH)
  features = inception.feature_fn(inception.load_weights(weights_file))
  outputs = jax.device_get(features(reference.model_test_images()))
  assert outputs["pool"].shape == (2, 2048) and outputs["logits"].shape == (2, 1008)
  for name in ("pool", "logits"):
    scale = np.abs(expected[name]).max()
    np.testing.assert_allclose(outputs[name], expected[name], rtol=1e-4, atol=1e-4 * scale,
                               err_msg=name)


def test_inception_feature_space(weights_file):
  """``--features inception:WEIGHTS``: the standard space, recorded as such."""
  space = feature_spaces.load(f"inception:{weights_file}", batch_size=2)
  digits = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 1), dtype=np.uint8)
  out = space.extract(digits)
  assert out["pool"].shape == (3, 2048) and out["logits"].shape == (3, 1008)
  assert space.has_logits and space.protocol["standard"] is True
  assert space.protocol["weights_hash"] == inception.weights_hash(weights_file)
