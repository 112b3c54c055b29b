"""The evaluation pipeline: feature spaces, cached references, runs, files, periodic eval.

Everything runs offline on scikit-learn's digits (the main job's dataset) with
a classifier trained here by the shared trainer.
"""

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from conftest import EXPERIMENTS, gen_jax
from gen_jax import configs, data, images
from gen_jax.evaluation import evaluate, features, lpips
from gen_jax.train import trainer
from gen_jax.train.checkpoint import Checkpoints

REFERENCE = "digits:test"  # 297 images, 16x16x1


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
  """Each test starts with an empty reference-feature cache."""
  monkeypatch.setenv("GEN_JAX_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory) -> str:
  """A digits classifier trained by the shared trainer (a few hundred steps)."""
  workdir = tmp_path_factory.mktemp("classifier")
  config = configs.load(f"{EXPERIMENTS / 'classifier/digits.py'}")
  config.num_train_steps = 400
  trainer.train(config, workdir)
  return str(workdir)


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory) -> str:
  """A (barely trained) DCGAN run on digits, to sample from."""
  workdir = tmp_path_factory.mktemp("dcgan")
  trainer.train(configs.load(f"{EXPERIMENTS / 'dcgan/digits.py'}:smoke"), workdir)
  return str(workdir)


def reference_images(num: int = 297) -> np.ndarray:
  spec = data.DataSpec(dataset="digits", image_size=16, split="test")
  batches = list(data.eval_batches(spec, batch_size=100))
  return np.concatenate([images.to_uint8(b["image"][b["mask"]]) for b in batches])[:num]


def test_classifier_run_is_accurate(classifier_run):
  result = evaluate.evaluate_run(classifier_run, metrics="accuracy", num=0, reference=REFERENCE,
                                 features=None)
  assert result["metrics"]["accuracy"] > 0.9
  assert result["protocol"]["reference"]["count"] == 297
  assert json.loads(open(result["path"]).read())["metrics"] == result["metrics"]


def test_fid_of_the_split_itself_is_zero_and_grows_with_noise(classifier_run):
  space = features.load(f"classifier:{classifier_run}")
  real = reference_images()
  rng = np.random.default_rng(0)
  fids, kids = [], []
  for sigma in (0, 16, 48, 96):
    noisy = np.clip(real + rng.normal(0, sigma, real.shape), 0, 255).astype(np.uint8)
    result = evaluate.evaluate_images(noisy, metrics=("fid", "kid"), space=space,
                                      reference=REFERENCE, num_reference=297,
                                      resize_reference=True)
    fids.append(result["metrics"]["fid"])
    kids.append(result["metrics"]["kid"])
  assert abs(fids[0]) < 1e-6 * max(fids)
  assert np.all(np.diff(fids) > 0), fids
  assert np.all(np.diff(kids) > 0), kids


def test_reference_features_are_cached_by_protocol(classifier_run):
  space = features.load(f"classifier:{classifier_run}")
  calls = []

  def counting(images_):
    calls.append(len(images_))
    return space.extract(images_)

  counted = dataclasses.replace(space, extract=counting)
  first, protocol = evaluate.reference_features(counted, REFERENCE, 200, (16, 16, 1),
                                                resize=True)
  assert sum(calls) >= 200 and len(first["pool"]) == protocol["count"] == 200
  calls.clear()
  again, _ = evaluate.reference_features(counted, REFERENCE, 200, (16, 16, 1), resize=True)
  assert not calls
  np.testing.assert_array_equal(again["pool"], first["pool"])
  evaluate.reference_features(counted, REFERENCE, 100, (16, 16, 1), resize=True)  # Another.
  assert calls


def test_classifier_space_refuses_other_shapes(classifier_run):
  space = features.load(f"classifier:{classifier_run}")
  with pytest.raises(ValueError, match="takes 16x16x1 images"):
    space.extract(np.zeros((2, 28, 28, 1), np.uint8))


@pytest.mark.parametrize("net, dim", [("vgg16", 512), ("alexnet", 256)])
def test_lpips_backbone_spaces_are_labelled_non_standard(net, dim):
  space = features.load(net, batch_size=4)
  out = space.extract(reference_images(6))
  assert out["pool"].shape == (6, dim) and np.isfinite(out["pool"]).all()
  assert space.protocol["standard"] is False and len(space.protocol["weights_hash"]) == 16
  assert not space.has_logits


@pytest.mark.parametrize("spec, message", [
    ("", "valid feature spaces"),
    ("resnet", "unknown feature space 'resnet'"),
    ("classifier", "classifier:WORKDIR"),
    ("inception", "inception:PATH"),
    ("vgg16:x", "takes no argument"),
    ("alexnet:x", "takes no argument"),
])
def test_bad_feature_spaces(spec, message):
  with pytest.raises(ValueError, match=message):
    features.load(spec)


def test_bad_metric_and_reference_names():
  with pytest.raises(ValueError, match="valid metrics: fid, kid, is, pr"):
    evaluate.parse_metrics("fid,fjd")
  with pytest.raises(ValueError, match="must be DATASET:SPLIT"):
    evaluate.parse_reference("mnist")


def test_lpips_is_zero_for_identical_images_and_grows_with_distortion():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
  np.testing.assert_allclose(lpips.lpips(x, x), 0.0, atol=1e-6)
  distances = []
  for sigma in (4, 16, 48):
    y = np.clip(x + rng.normal(0, sigma, x.shape), 0, 255).astype(np.uint8)
    d = lpips.lpips(x, y)
    np.testing.assert_allclose(d, lpips.lpips(y, x), rtol=1e-5)  # Symmetric.
    distances.append(d.mean())
  assert distances[0] > 0 and np.all(np.diff(distances) > 0), distances


def test_restoration_metrics_of_a_pairs_file(tmp_path):
  rng = np.random.default_rng(0)
  targets = rng.integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
  outputs = np.clip(targets + rng.normal(0, 8, targets.shape), 0, 255).astype(np.uint8)
  path = tmp_path / "pairs.npz"
  np.savez(path, images=outputs, targets=targets)
  result = evaluate.evaluate_file(str(path), metrics="psnr,ssim,lpips", crop_border=4,
                                  y_channel=True)
  m = result["metrics"]
  assert 25 < m["psnr"] < 50 and 0 < m["ssim"] < 1 and m["lpips"] > 0
  assert "Y of YCbCr" in result["protocol"]["psnr_ssim"]
  with pytest.raises(ValueError, match="mix distribution metrics"):
    evaluate.evaluate_file(str(path), metrics="psnr,fid")


def test_periodic_evaluation_keeps_the_best_checkpoint(tmp_path, classifier_run):
  config = configs.load(f"{EXPERIMENTS / 'dcgan/digits.py'}:smoke")
  config.num_train_steps = 5
  config.checkpoint_every_steps = 100
  config.keep_checkpoints = 1
  config.eval.every_steps = 1
  config.eval.features = f"classifier:{classifier_run}"
  config.eval.num_samples = 64
  config.eval.metrics = "fid,kid"
  trainer.train(config, tmp_path)
  fid = {}
  for step in range(1, 6):
    result = json.loads(evaluate.result_path(tmp_path, step, config.eval.features,
                                             REFERENCE).read_text())
    assert result["protocol"]["samples"]["count"] == 64
    assert result["protocol"]["reference"]["count"] == 64
    fid[step] = result["metrics"]["fid"]
  best = min(fid, key=fid.get)
  checkpoints = Checkpoints(tmp_path, read_only=True)
  assert set(checkpoints.all_steps()) == {best, 5}
  assert (tmp_path / "checkpoints" / str(best)).is_dir()


def test_periodic_evaluation_checks_its_settings_first(tmp_path, classifier_run):
  config = configs.load(f"{EXPERIMENTS / 'dcgan/digits.py'}:smoke")
  config.eval.every_steps = 2
  config.eval.features = f"classifier:{classifier_run}"
  config.eval.metrics = "kid"
  with pytest.raises(ValueError, match="best_metric 'fid' must be one of the evaluated"):
    trainer.train(config, tmp_path)
  assert not (tmp_path / "checkpoints").exists()


def test_eval_command_on_a_run_and_on_a_samples_file(tmp_path, dcgan_run, classifier_run):
  common = ["--metrics", "fid,kid,is,pr", "--reference", REFERENCE,
            "--features", f"classifier:{classifier_run}"]
  out = gen_jax("eval", "--workdir", dcgan_run, "--num", "128", *common).stdout
  values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line
                and not line.startswith(" "))
  for name in ("fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "density",
               "coverage"):
    assert np.isfinite(float(values[name])), name
  written = json.loads(
      evaluate.result_path(dcgan_run, 4, f"classifier:{classifier_run}", REFERENCE).read_text())
  assert written["protocol"]["features"]["standard"] is False
  assert written["protocol"]["samples"]["count"] == 128
  # The run's own dataset (8x8 digits) is resized to its samples' 16x16, as in training.
  assert written["protocol"]["samples"]["image_shape"] == [16, 16, 1]
  assert written["protocol"]["reference"]["native_shape"] == [8, 8, 1]

  samples = tmp_path / "samples.npz"
  gen_jax("sample", "--workdir", dcgan_run, "--num", "128", "--out", str(samples))
  out = gen_jax("eval", "--samples", str(samples), *common, "--resize_reference").stdout
  assert "fid=" in out
  # The same generator, seed and count: the same figures from the file.
  assert f"fid={values['fid']}" in out


def test_a_reference_of_another_shape_is_refused_unless_asked(tmp_path, npz_factory):
  samples = tmp_path / "rgb32.npz"
  np.savez(samples, images=np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), np.uint8))
  reference = f"{npz_factory((28, 28, 1))}:test"
  with pytest.raises(ValueError, match=r"the samples are 32x32x3 images but those of the "
                                       r"reference npz:.*:test are 28x28x1: .*--resize_reference"):
    evaluate.evaluate_file(str(samples), metrics="fid", reference=reference, features="alexnet")
  result = evaluate.evaluate_file(str(samples), metrics="fid", reference=reference,
                                  features="alexnet", resize_reference=True)
  protocol = json.loads(pathlib.Path(result["path"]).read_text())["protocol"]
  assert protocol["samples"]["image_shape"] == [32, 32, 3]
  assert protocol["reference"]["native_shape"] == [28, 28, 1]
  assert "resize to the samples' size and convert to their channels" in (
      protocol["reference"]["resize"])


def test_eval_command_errors(dcgan_run):
  result = gen_jax("eval", "--workdir", dcgan_run, "--features", "vgg16", "--metrics", "is",
                   "--num", "8", check=False)
  assert result.returncode != 0 and "needs a feature network with class logits" in result.stderr
  result = gen_jax("eval", "--metrics", "fid", check=False)
  assert result.returncode == 2 and "exactly one of --workdir" in result.stderr
