"""Tests of gen_jax.data: determinism, sources, preprocessing and errors."""

import io
import itertools
import json
import os
import pathlib
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from gen_jax import data
from gen_jax.data import pipeline
from gen_jax.data._tf import tf

N = 100  # Examples in the generated npz; label i marks example i.


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> tuple[str, np.ndarray]:
  """A 100+10 example npz of 4x4 grayscale images; y_train[i] = i. Returns (dataset, x_train)."""
  rng = np.random.default_rng(0)
  x_train = rng.integers(0, 256, (N, 4, 4), dtype=np.uint8)
  path = tmp_path_factory.mktemp("npz") / "small.npz"
  np.savez(path, x_train=x_train, y_train=np.arange(N), x_test=x_train[:10], y_test=np.arange(10))
  return f"npz:{path}", x_train


def train(spec: data.DataSpec, steps: int, *, batch: int = 8, seed: int = 0, start: int = 0,
          process_index: int = 0, process_count: int = 1) -> list[dict[str, np.ndarray]]:
  """The first `steps` batches of `train_batches`."""
  it = data.train_batches(spec, global_batch_size=batch, seed=seed, start_step=start,
                          process_index=process_index, process_count=process_count)
  return list(itertools.islice(it, steps))


def labels(batches: list[dict[str, np.ndarray]]) -> np.ndarray:
  return np.concatenate([b["label"] for b in batches])


def to_model_range(pixels: np.ndarray) -> np.ndarray:
  """The expected [-1, 1] values of pixels in [0, 255]."""
  return pixels / np.float32(127.5) - 1


def write_image(path: pathlib.Path, pixels: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(pixels).save(path)


def full_range_ints(count: int, seed: list[int]) -> np.ndarray:
  ints = tf.random.stateless_uniform([count], seed=seed, minval=None, maxval=None, dtype=tf.int64)
  return ints.numpy()


def reference_order(seed: int, num_examples: int, num_positions: int) -> np.ndarray:
  """Example index of positions 0.. by the documented formula, one epoch at a time."""
  shuffle_key = full_range_ints(2, [seed, 0])[0]
  out = []
  for epoch in range(-(-num_positions // num_examples)):
    words = full_range_ints(6, [shuffle_key, epoch])
    order = np.arange(num_examples)
    for key in (words[:3], words[3:]):
      order = tf.raw_ops.RandomIndexShuffle(index=order, seed=key,
                                            max_index=np.int64(num_examples - 1), rounds=8)
    out.append(order)
  return np.concatenate(out)[:num_positions]


def pil_resize(x: np.ndarray, size: int) -> np.ndarray:
  """Reference resize of float images [n, h, w, 1] with PIL's (antialiased) bilinear filter."""
  return np.stack([np.asarray(Image.fromarray(im[..., 0], "F").resize((size, size), Image.BILINEAR))
                   for im in x])[..., None]


# ----------------------------------------------------------------------------- order


def test_order_follows_formula_and_resumes(npz):
  spec = data.DataSpec(npz[0], image_size=4)
  run = train(spec, 40, seed=3)
  np.testing.assert_array_equal(labels(run), reference_order(3, N, 40 * 8))
  resumed = train(spec, 5, seed=3, start=31)
  for a, b in zip(resumed, run[31:36]):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])


def test_every_epoch_is_a_permutation(npz):
  order = labels(train(data.DataSpec(npz[0], image_size=4), 50))  # 4 epochs; batches straddle them.
  epochs = order[:4 * N].reshape(4, N)
  for epoch in epochs:
    np.testing.assert_array_equal(np.sort(epoch), np.arange(N))
  assert len({tuple(e) for e in epochs}) == 4
  assert not np.array_equal(epochs[0], np.arange(N))


def test_process_slices_concatenate_to_global_batch(npz):
  spec = data.DataSpec(npz[0], image_size=4, random_flip=True)
  single = train(spec, 6, batch=8)
  for count in (2, 4):
    parts = [train(spec, 6, batch=8, process_index=p, process_count=count) for p in range(count)]
    for step in range(6):
      for key in ("image", "label"):
        joined = np.concatenate([p[step][key] for p in parts])
        np.testing.assert_array_equal(joined, single[step][key])


def test_seeds_give_different_orders(npz):
  spec = data.DataSpec(npz[0], image_size=4)
  assert not np.array_equal(labels(train(spec, 3, seed=0)), labels(train(spec, 3, seed=1)))
  # Seeds 256 apart would share an order if fed to the shuffle kernel raw.
  assert not np.array_equal(labels(train(spec, 3, seed=1)), labels(train(spec, 3, seed=257)))


@pytest.mark.parametrize("num_examples", [65537, 65536, 7])
def test_shuffle_is_a_permutation_despite_tf_kernel_bug(num_examples):
  # TF's kernel is no bijection when max_index is a power of 4 >= 2**16 (N = 65537).
  got = pipeline.shuffled_indices(tf.range(num_examples, dtype=tf.int64), 5, num_examples).numpy()
  np.testing.assert_array_equal(np.sort(got), np.arange(num_examples))


def test_stateless_flip(npz):
  spec = data.DataSpec(npz[0], image_size=4, random_flip=True)
  run = train(spec, 4, seed=7)
  again = train(spec, 4, seed=7)
  plain = train(data.DataSpec(npz[0], image_size=4), 4, seed=7)
  flip_key = full_range_ints(2, [7, 0])[1]
  np.testing.assert_array_equal(np.concatenate([b["image"] for b in run]),
                                np.concatenate([b["image"] for b in again]))
  flipped = []
  for q, (a, b) in enumerate(zip(np.concatenate([b["image"] for b in run]),
                                 np.concatenate([b["image"] for b in plain]))):
    coin = tf.random.stateless_uniform([], seed=[flip_key, q]) < 0.5
    np.testing.assert_array_equal(a, b[:, ::-1] if coin else b)
    flipped.append(bool(coin))
  assert 0 < sum(flipped) < len(flipped)


def test_batch_not_divisible_by_processes(npz):
  with pytest.raises(ValueError, match="multiple of the process count 3"):
    train(data.DataSpec(npz[0], image_size=4), 1, batch=8, process_count=3)


# ----------------------------------------------------------------------------- values


def test_values_dtype_and_range(npz):
  dataset, x = npz
  batch = train(data.DataSpec(dataset, image_size=4), 1)[0]
  assert batch["image"].dtype == np.float32 and batch["image"].shape == (8, 4, 4, 1)
  assert batch["label"].dtype == np.int32
  np.testing.assert_array_equal(batch["image"], to_model_range(x[batch["label"], ..., None]))


@pytest.mark.parametrize("size", [8, 3])
def test_resize_matches_pil_bilinear(npz, size):
  dataset, x = npz
  got = next(data.eval_batches(data.DataSpec(dataset, image_size=size), batch_size=N))["image"]
  want = to_model_range(pil_resize(x[..., None].astype(np.float32), size))
  assert got.shape == (N, size, size, 1)
  np.testing.assert_allclose(got, want, atol=2e-3)
  assert got.min() >= -1 and got.max() <= 1


def test_channels_forced(npz):
  dataset, x = npz
  spec = data.DataSpec(dataset, image_size=4, channels=3)
  rgb = next(data.eval_batches(spec, batch_size=4))["image"]
  np.testing.assert_array_equal(rgb, to_model_range(np.repeat(x[:4, ..., None], 3, axis=-1)))
  assert data.describe(data.DataSpec(dataset, image_size=4, channels=3)).image_shape == (4, 4, 3)


def test_eval_pads_masks_and_splits_over_processes(npz):
  spec = data.DataSpec(npz[0], image_size=4)
  single = list(data.eval_batches(spec, batch_size=16))
  assert len(single) == 7  # ceil(100 / 16)
  np.testing.assert_array_equal(labels(single)[:N], np.arange(N))
  mask = np.concatenate([b["mask"] for b in single])
  np.testing.assert_array_equal(mask, np.arange(7 * 16) < N)
  parts = [list(data.eval_batches(spec, batch_size=16, process_index=p, process_count=2))
           for p in (0, 1)]
  assert [len(p) for p in parts] == [7, 7]
  for step, batch in enumerate(single):
    for key in ("image", "label", "mask"):
      np.testing.assert_array_equal(np.concatenate([p[step][key] for p in parts]), batch[key])


def test_crop_of_fixed_size_images(npz):
  dataset, x = npz
  got = next(data.eval_batches(data.DataSpec(dataset, image_size=2, crop=2), batch_size=4))["image"]
  np.testing.assert_array_equal(got, to_model_range(x[:4, 1:3, 1:3, None]))
  with pytest.raises(ValueError, match=r"crop 5 is larger than the 4x4 images of npz:"):
    data.describe(data.DataSpec(dataset, image_size=2, crop=5))


# ----------------------------------------------------------------------------- sources


@pytest.fixture
def folder(tmp_path) -> tuple[pathlib.Path, dict[str, np.ndarray]]:
  """PNGs in train/{cat,dog}/ (5x6 RGB, one grayscale) and test/dog/. Returns (root, pixels)."""
  rng = np.random.default_rng(1)
  pixels = {}
  for rel in ["train/cat/a.png", "train/cat/b.png", "train/dog/c.png", "test/dog/d.png"]:
    pixels[rel] = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
  pixels["train/dog/gray.png"] = rng.integers(0, 256, (5, 6), dtype=np.uint8)
  for rel, p in pixels.items():
    write_image(tmp_path / "root" / rel, p)
  return tmp_path / "root", pixels


def test_folder_source_and_grayscale_to_rgb(folder):
  root, pixels = folder
  source = data.get_source(f"folder:{root}", "train")
  assert source.num_examples == 4
  assert (source.image_shape, source.class_names) == ((5, 6, 3), ("cat", "dog"))
  images, labels_ = source.read(np.arange(4))
  np.testing.assert_array_equal(labels_, [0, 0, 1, 1])
  np.testing.assert_array_equal(images[2], pixels["train/dog/c.png"])
  gray = pixels["train/dog/gray.png"]
  np.testing.assert_array_equal(images[3], np.repeat(gray[..., None], 3, axis=-1))
  test = data.describe(data.DataSpec(f"folder:{root}", image_size=8, split="test"))
  assert (test.num_examples, test.image_shape, test.num_classes) == (1, (8, 8, 3), 2)


def test_tar_gz_with_top_level_folder_and_jpeg(tmp_path, folder):
  root, pixels = folder
  archive = tmp_path / "images.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(root, arcname="dataset")
  source = data.get_source(f"folder:{archive}", "train")
  images, _ = source.read(np.arange(4))
  np.testing.assert_array_equal(images[0], pixels["train/cat/a.png"])
  # JPEG, through the whole pipeline; lossy, so compare loosely.
  smooth = np.tile(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], (16, 1, 3))
  write_image(tmp_path / "jpg/train/x/0.jpg", smooth)
  batch = train(data.DataSpec(f"folder:{tmp_path / 'jpg'}", image_size=16), 1, batch=2)[0]
  np.testing.assert_allclose(batch["image"][0], to_model_range(smooth), atol=0.05)


def test_mixed_sizes_read_singly_with_crop(tmp_path):
  for name, shape in [("a", (12, 10)), ("b", (9, 14)), ("c", (20, 20))]:
    write_image(tmp_path / f"train/k/{name}.png", np.full(shape, 200, np.uint8))
  spec = data.DataSpec(f"folder:{tmp_path}", image_size=4, crop=8)
  assert data.get_source(spec.dataset, "train").image_shape is None
  batch = next(data.eval_batches(spec, batch_size=4))
  assert batch["image"].shape == (4, 4, 4, 1)
  np.testing.assert_allclose(batch["image"], to_model_range(np.uint8(200)), atol=1e-5)
  write_image(tmp_path / "train/k/small.png", np.zeros((5, 30), np.uint8))
  with pytest.raises(ValueError, match=r"cannot crop 8x8 from image 'train/k/small.png' .* 5x30"):
    list(data.eval_batches(spec, batch_size=4))


def test_corrupt_and_truncated_images_are_named(tmp_path):
  write_image(tmp_path / "train/a/ok.jpg", np.zeros((8, 8, 3), np.uint8))
  (tmp_path / "train/a/bad.png").write_bytes(b"not an image")
  with pytest.raises(ValueError, match=r"cannot decode image 'train/a/bad.png' in folder:"):
    data.get_source(f"folder:{tmp_path}", "train")
  os.remove(tmp_path / "train/a/bad.png")
  buffer = io.BytesIO()
  noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
  Image.fromarray(noise).save(buffer, "JPEG")
  (tmp_path / "train/a/cut.jpg").write_bytes(buffer.getvalue()[:400])  # Header intact, data cut.
  spec = data.DataSpec(f"folder:{tmp_path}", image_size=8)
  with pytest.raises(ValueError, match=r"cannot decode image 'train/a/cut.jpg' in folder:"):
    list(data.eval_batches(spec, batch_size=2))


def test_folder_errors(tmp_path):
  with pytest.raises(ValueError, match="contains no images laid out as <split>/<class>/<image>"):
    data.get_source(f"folder:{tmp_path}", "train")
  write_image(tmp_path / "train/a/0.png", np.zeros((2, 2), np.uint8))
  (tmp_path / "validation/a").mkdir(parents=True)
  with pytest.raises(ValueError,
                     match=r"no images for split 'validation' .* with images are \['train'\]"):
    data.get_source(f"folder:{tmp_path}", "validation")
  with pytest.raises(FileNotFoundError, match="nowhere"):
    data.get_source(f"folder:{tmp_path / 'nowhere'}", "train")
  with pytest.raises(ValueError, match="neither a directory nor a tar archive"):
    data.get_source(f"folder:{tmp_path / 'train/a/0.png'}", "train")


def test_unknown_dataset_and_split(npz):
  with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'.*'mnist'.*"
                                       r"'npz:PATH', 'folder:PATH', 'tfds:NAME'"):
    data.describe(data.DataSpec("imagenet", image_size=8))
  with pytest.raises(ValueError, match=r"split 'valid' not found in npz:.*\['test', 'train'\]"):
    data.describe(data.DataSpec(npz[0], image_size=8, split="valid"))
  with pytest.raises(ValueError, match=r"split 'valid' not found in digits"):
    data.get_source("digits", "valid")


def test_digits():
  from sklearn.datasets import load_digits

  info = data.describe(data.DataSpec("digits", image_size=16))
  assert (info.num_examples, info.image_shape, info.num_classes) == (1500, (16, 16, 1), 10)
  spec = data.DataSpec("digits", image_size=8, split="test")
  batch = next(data.eval_batches(spec, batch_size=297))
  digits = load_digits()
  want = to_model_range(np.round(digits.images[1500:] * (255 / 16)).astype(np.uint8))
  np.testing.assert_array_equal(batch["image"][..., 0], want)
  np.testing.assert_array_equal(batch["label"], digits.target[1500:])
  upsampled = train(data.DataSpec("digits", image_size=16, random_flip=True), 1)[0]
  assert upsampled["image"].shape == (8, 16, 16, 1)


# ----------------------------------------------------------------------------- TFDS, mocked


def test_tfds_with_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=12):
    info = data.describe(data.DataSpec("mnist", image_size=28))
    assert (info.num_examples, info.image_shape, info.num_classes) == (12, (28, 28, 1), 10)
    reference = [tfds.data_source("mnist", split="train")[i] for i in range(12)]
    batch = next(data.eval_batches(data.DataSpec("mnist", image_size=28), batch_size=12))
    want = to_model_range(np.stack([ex["image"] for ex in reference]))
    np.testing.assert_array_equal(batch["image"], want)
    np.testing.assert_array_equal(batch["label"], [ex["label"] for ex in reference])

    # No ClassLabel: unconditional. The DCGAN crop: central 140x140 of 218x178.
    celeb = data.DataSpec("celeb_a", image_size=64, crop=140, random_flip=True)
    assert data.describe(celeb) == data.DatasetInfo(12, (64, 64, 3), 0, None)
    batch = train(celeb, 1, batch=4)[0]
    assert batch["image"].shape == (4, 64, 64, 3)
    np.testing.assert_array_equal(batch["label"], 0)
    spec = data.DataSpec("celeb_a", image_size=140, crop=140)
    cropped = next(data.eval_batches(spec, batch_size=2))["image"][1]
    stored = tfds.data_source("celeb_a", split="train")[1]["image"]
    np.testing.assert_array_equal(cropped, to_model_range(stored[39:179, 19:159]))

    # Images of varying sizes (the mock draws 5..50 pixels a side).
    flowers = data.DataSpec("tfds:tf_flowers", image_size=16)
    assert data.get_source(flowers.dataset, "train").image_shape is None
    assert train(flowers, 1, batch=4)[0]["image"].shape == (4, 16, 16, 3)


# ----------------------------------------------------------------------------- TFDS, prepared


# The catalog's MNIST builder prepared by TFDS's own download_and_prepare, in a fresh
# process that reads TFDS_DATA_DIR, with only the download replaced by local files
# (as TFDS's mnist_test.py does). This is the path of --config.dataset=mnist.
PREPARE_MNIST = """
import json, sys
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import mnist
from gen_jax import data

files = sys.argv[1]
mnist._TRAIN_EXAMPLES, mnist._TEST_EXAMPLES = 12, 4
tfds.download.DownloadManager.download_and_extract = (
    lambda self, urls: {key: f"{files}/{key}" for key in urls})
out = {}
for name in ("mnist", "tfds:mnist"):
  spec = data.DataSpec(name, image_size=28, split="test")
  batch = next(data.eval_batches(spec, batch_size=4))
  out[name] = [data.describe(spec).num_classes, batch["image"].tolist(), batch["label"].tolist()]
with open(sys.argv[2], "w") as f:
  json.dump(out, f)
"""


def write_idx(path: pathlib.Path, array: np.ndarray) -> None:
  """MNIST's file format: a header of 8 (labels) or 16 (images) bytes, then uint8 values."""
  path.write_bytes(bytes(16 if array.ndim == 3 else 8) + array.tobytes())


def test_tfds_catalog_dataset_is_prepared_by_tfds_and_read(tmp_path):
  rng = np.random.default_rng(0)
  files = tmp_path / "downloads"
  files.mkdir()
  splits = {}
  for split, n in (("train", 12), ("test", 4)):
    splits[split] = (rng.integers(0, 256, (n, 28, 28), np.uint8),
                     rng.integers(0, 10, n).astype(np.uint8))
    write_idx(files / f"{split}_data", splits[split][0])
    write_idx(files / f"{split}_labels", splits[split][1])
  env = {**os.environ, "TFDS_DATA_DIR": str(tmp_path / "tfds")}
  result = subprocess.run([sys.executable, "-c", PREPARE_MNIST, str(files), str(tmp_path / "read.json")],
                          env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  images, labels = splits["test"]
  # TFDS stores the examples in an order of its own: compare them as sets.
  written = sorted(zip(to_model_range(images).tolist(), labels.tolist()))
  for name, (num_classes, got_images, got_labels) in json.loads(
      (tmp_path / "read.json").read_text()).items():
    assert num_classes == 10, name
    assert sorted(zip(np.array(got_images)[..., 0].tolist(), got_labels)) == written, name
  assert (tmp_path / "tfds" / "mnist" / "3.0.1" / "dataset_info.json").is_file()


def test_tfds_without_a_network_says_what_to_do(monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")

  def offline(name, split):
    raise ConnectionError(f"Failed to resolve 'storage.googleapis.com' for {name}")

  monkeypatch.setattr(tfds, "data_source", offline)
  with pytest.raises(OSError, match=r"mnist: TFDS could not download or prepare it "
                                    r"\(ConnectionError: Failed to resolve .*\)\. The first use "
                                    r"needs a network .* offline, train on a local copy: "
                                    r"--config.dataset=npz:PATH or folder:PATH"):
    data.describe(data.DataSpec("mnist", image_size=28))


# ----------------------------------------------------------------------------- shared datasets


def test_mnist_npz(shared_datasets):
  dataset = f"npz:{shared_datasets / 'mnist.npz'}"
  assert data.describe(data.DataSpec(dataset, 28)).num_examples == 60000
  test = data.describe(data.DataSpec(dataset, 28, split="test"))
  assert (test.num_examples, test.image_shape, test.num_classes) == (10000, (28, 28, 1), 10)
  batch = next(data.eval_batches(data.DataSpec(dataset, 28, split="test"), batch_size=64))
  with np.load(shared_datasets / "mnist.npz") as f:
    np.testing.assert_array_equal(batch["image"][..., 0], to_model_range(f["x_test"][:64]))
    np.testing.assert_array_equal(batch["label"], f["y_test"][:64])


def test_cifar10_tar_gz(shared_datasets):
  dataset = f"folder:{shared_datasets / 'cifar10_jpeg.tar.gz'}"
  source = data.get_source(dataset, "train")
  assert (source.num_examples, source.image_shape, source.num_classes) == (50000, (32, 32, 3), 10)
  assert source.class_names[:3] == ("airplane", "automobile", "bird")
  batch = train(data.DataSpec(dataset, 32, random_flip=True), 1, batch=16)[0]
  assert batch["image"].shape == (16, 32, 32, 3)
  assert -1 <= batch["image"].min() < batch["image"].max() <= 1
