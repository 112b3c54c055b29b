"""Robustness: one run per workdir, and bad data or configs fail early, clearly and harmlessly.

The lock is tested across real processes; the command line through real
``gen-jax train`` runs on the workdir of a finished smoke run; bad data and most
bad config values in-process.
"""

import io
import json
import os
import pathlib
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
from PIL import Image

from conftest import EXPERIMENTS, ROOT, SMOKE_CONFIG, gen_jax, smoke_run
from gen_jax import configs, data, methods, sample
from gen_jax.train import trainer, workdir_lock
from gen_jax.evaluation import evaluate, features
from gen_jax.train.checkpoint import CHECKSUMS_FILE, CORRUPT_DIR, Checkpoints
from gen_jax.train.errors import ConfigChangedError
from test_preemption import Training, abstract_state, damage

# ----------------------------------------------------------------------------- workdir lock

HOLD_LOCK = """
import sys, time
from gen_jax.train.workdir_lock import WorkdirLock
with WorkdirLock(sys.argv[1]):
  print("locked", flush=True)
  time.sleep(600)
"""
TAKE_LOCK = """
import sys
from gen_jax.train.workdir_lock import WorkdirLock
with WorkdirLock(sys.argv[1]):
  pass
"""


def hold_lock(workdir: pathlib.Path) -> subprocess.Popen:
  """A process that holds the lock of `workdir` until killed, once it holds it."""
  holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(workdir)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline() == "locked\n"
  return holder


@pytest.fixture
def lock_holder(tmp_path):
  """Yields (workdir, the process holding its lock); kills that process afterwards."""
  holder = hold_lock(tmp_path / "run")
  yield tmp_path / "run", holder
  holder.kill()
  holder.wait()


def test_second_process_on_a_locked_workdir_is_refused(lock_holder):
  workdir, holder = lock_holder
  second = subprocess.run([sys.executable, "-c", TAKE_LOCK, str(workdir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  assert second.returncode != 0
  assert "WorkdirInUseError" in second.stderr
  assert f"pid {holder.pid} on host {socket.gethostname()}" in second.stderr
  assert "or train in another --workdir" in second.stderr


def test_lock_of_a_killed_run_is_taken_over(lock_holder, caplog):
  workdir, holder = lock_holder
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  assert (workdir / "run.lock").exists()  # Left behind by the killed holder.
  with workdir_lock.WorkdirLock(workdir) as lock:
    assert json.loads(pathlib.Path(lock.path).read_text())["pid"] == os.getpid()
  assert "taking over" in caplog.text and f"pid {holder.pid} on host" in caplog.text
  assert not (workdir / "run.lock").exists()


def test_lock_is_released_on_exit_and_taken_only_by_process_0(tmp_path, caplog):
  with pytest.raises(KeyError):
    with workdir_lock.WorkdirLock(tmp_path):
      with workdir_lock.WorkdirLock(tmp_path, process_index=1):  # Another process of the run.
        raise KeyError("the run fails")
  assert not (tmp_path / "run.lock").exists()
  with workdir_lock.WorkdirLock(tmp_path):
    pass
  assert "taking over" not in caplog.text


# ----------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory, npz_factory):
  """The workdir of a finished smoke run: checkpoints 2 and 4."""
  return smoke_run(tmp_path_factory.mktemp("robust_run"), npz_factory((28, 28, 1)))


def snapshot(workdir: pathlib.Path) -> dict[str, tuple[int, int]]:
  """(size, mtime) of every file under `workdir`."""
  return {str(p.relative_to(workdir)): (p.stat().st_size, p.stat().st_mtime_ns)
          for p in workdir.rglob("*") if p.is_file()}


@pytest.mark.parametrize("override, messages", [
    ("--config.batch_size=abc", ["--config.batch_size=abc", "invalid literal for int()"]),
    ("--config.nonexistent=1", ["'nonexistent'"]),
    ("--config.keep_checkpoints=0", ["config.keep_checkpoints must be a positive integer, got 0"]),
])
def test_bad_config_fails_and_keeps_the_workdir(trained_workdir, npz_factory, override,
                                                messages):
  before = snapshot(trained_workdir)
  result = gen_jax("train", f"--config={SMOKE_CONFIG}", f"--workdir={trained_workdir}",
                   f"--config.dataset={npz_factory((28, 28, 1))}", override, check=False)
  assert result.returncode != 0
  for message in messages:
    assert message in result.stderr
  assert "starting at step" not in result.stderr  # Failed before restoring or compiling.
  assert snapshot(trained_workdir) == before
  _, state, step = sample.load_run(str(trained_workdir))
  assert step == 4 and int(state.step) == 4


def test_fewer_steps_than_the_checkpoint_says_so_and_keeps_the_earlier_config(
    trained_workdir, npz_factory, tmp_path, caplog):
  workdir = shutil.copytree(trained_workdir, tmp_path / "run")
  before = snapshot(workdir / "checkpoints")
  first = json.loads((workdir / "config.json").read_text())
  config = smoke_config(dataset=npz_factory((28, 28, 1)), num_train_steps=3)
  assert int(trainer.train(config, workdir).step) == 4
  assert (f"nothing to train: the run in {workdir} is at step 4 and config.num_train_steps is 3; "
          f"raise --config.num_train_steps to train further") in caplog.text
  assert snapshot(workdir / "checkpoints") == before
  assert json.loads((workdir / "config.json").read_text())["num_train_steps"] == 3
  assert json.loads((workdir / "config.1.json").read_text()) == first
  trainer.train(config, workdir)  # The same config again: nothing more to keep.
  assert sorted(p.name for p in workdir.glob("config*.json")) == ["config.1.json", "config.json"]


def test_a_failed_save_is_one_message_and_the_newest_checkpoint_is_kept(
    trained_workdir, npz_factory, tmp_path):
  workdir = shutil.copytree(trained_workdir, tmp_path / "run")

  # Writing a file past 200 kB fails (EFBIG), as writing to a full disk does: the smoke
  # checkpoint's data files are larger, its logs and sample grid smaller.
  def limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

  result = subprocess.run(
      [sys.executable, "-m", "gen_jax", "train", f"--config={SMOKE_CONFIG}",
       f"--workdir={workdir}", f"--config.dataset={npz_factory((28, 28, 1))}",
       "--config.num_train_steps=6"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, preexec_fn=limit_file_size)
  assert result.returncode == 1
  assert re.search(r"saving checkpoint 6 in .*/checkpoints failed: File too large \(writing "
                   r".*/checkpoints/6.orbax-checkpoint-tmp/\S+\)\. The newest complete "
                   r"checkpoint, 4, is kept; the next start deletes the unfinished save\. Free "
                   r"disk space", result.stderr), result.stderr[-3000:]
  assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr
  assert sample.load_run(workdir)[2] == 4


def test_train_refuses_a_workdir_in_use(trained_workdir, npz_factory):
  holder = hold_lock(trained_workdir)
  try:
    result = gen_jax("train", f"--config={SMOKE_CONFIG}", f"--workdir={trained_workdir}",
                     f"--config.dataset={npz_factory((28, 28, 1))}", check=False)
  finally:
    holder.kill()
    holder.wait()
  assert result.returncode != 0
  assert f"in use by another training run (pid {holder.pid}" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["sample", "--num=0"], "--num must be a positive number of images, got 0"),
    (["eval", "--num=-5", "--features=vgg16"], "--num must be a positive number of images, got -5"),
    (["sample", "--grid={tmp}/missing/grid.png"],
     "--grid={tmp}/missing/grid.png: the directory {tmp}/missing does not exist; create it first"),
])
def test_bad_numbers_and_missing_output_directories_are_refused_before_any_work(
    trained_workdir, tmp_path, args, message):
  command, *flags = [arg.format(tmp=tmp_path) for arg in args]
  result = gen_jax(command, f"--workdir={trained_workdir}", f"--out={tmp_path / 'out.npz'}",
                   *flags, check=False)
  assert result.returncode == 2
  assert f"gen-jax: {message.format(tmp=tmp_path)}" in result.stderr
  assert "sampling" not in result.stderr and not (tmp_path / "out.npz").exists()


def catches(pid: int, signum: int) -> bool:
  """Whether process ``pid`` has installed a handler for ``signum`` (its SigCgt mask)."""
  status = pathlib.Path(f"/proc/{pid}/status").read_text()
  mask = int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.MULTILINE).group(1), 16)
  return bool(mask >> (signum - 1) & 1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_before_training_starts_exits_as_preempted_with_a_message(
    tmp_path, npz_factory, signum):
  run = Training(tmp_path / "run", npz_factory((28, 28, 1)), dict(os.environ))
  run.wait_until(lambda: catches(run.process.pid, signal.SIGTERM))
  time.sleep(0.2)  # SIGINT's handler is the next statement; TensorFlow takes seconds to import.
  assert run.kill(signum) == trainer.PREEMPTED_EXIT_CODE
  assert "starting at step" not in run.text()
  name = signal.Signals(signum).name
  assert (f"gen-jax train: {name} before training started: nothing to save yet; run the same "
          f"command to start") in run.text()
  assert "Traceback" not in run.text()
  assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("how", ["truncate", "bitrot"])
def test_sampling_passes_over_a_damaged_newest_checkpoint(trained_workdir, tmp_path, caplog,
                                                         how):
  workdir = shutil.copytree(trained_workdir, tmp_path / "run")
  damage(workdir / "checkpoints" / "4", how)
  _, _, step = sample.load_run(workdir)
  assert step == 2
  assert "using checkpoint 2" in caplog.text and "checkpoint(s) 4 cannot be restored" in caplog.text
  assert (workdir / "checkpoints" / "4").is_dir()  # Read-only: left where it was.
  with pytest.raises(RuntimeError, match=r"can be restored; tried step 4: .*Other steps: \[2\]"):
    sample.load_run(workdir, step=4)


def test_bit_rot_fails_the_checksums_and_the_checkpoint_is_moved_aside(
    trained_workdir, npz_factory, tmp_path, caplog):
  workdir = shutil.copytree(trained_workdir, tmp_path / "run")
  assert json.loads((workdir / "checkpoints/4" / CHECKSUMS_FILE).read_text())
  damage(workdir / "checkpoints" / "4", "bitrot")
  config = smoke_config(dataset=npz_factory((28, 28, 1)))
  checkpoints = Checkpoints(workdir)
  step, _, _ = checkpoints.restore_newest(abstract_state(config), config)
  checkpoints.close()
  assert step == 2
  assert re.search(r"checkpoint 4 in .* cannot be restored \(DamagedCheckpointError: .*/4/state/"
                   r"\S+ does not match the sha256 recorded when checkpoint 4 was saved",
                   caplog.text)
  assert "were moved to " + str(workdir / CORRUPT_DIR / "4") in caplog.text
  assert Checkpoints(workdir, read_only=True).all_steps() == [2]


def test_checkpoint_without_checksums_restores_unverified(trained_workdir, tmp_path, caplog):
  workdir = shutil.copytree(trained_workdir, tmp_path / "run")
  (workdir / "checkpoints/4" / CHECKSUMS_FILE).unlink()
  assert sample.load_run(workdir)[2] == 4
  assert f"{workdir / 'checkpoints/4'} has no {CHECKSUMS_FILE}" in caplog.text
  assert "restoring it unverified" in caplog.text


@pytest.mark.parametrize("overrides, named", [
    ({"ema_decay": 0.0}, "config.ema_decay was 0.999, now 0.0"),
    ({"channels": 3}, "config.channels was null, now 3"),
])
def test_a_config_change_that_alters_the_state_is_named_and_the_checkpoints_kept(
    trained_workdir, npz_factory, tmp_path, overrides, named):
  workdir = shutil.copytree(trained_workdir, tmp_path / "run")
  config = smoke_config(dataset=npz_factory((28, 28, 1)), **overrides)
  checkpoints = Checkpoints(workdir)
  with pytest.raises(ConfigChangedError) as error:
    checkpoints.restore_newest(abstract_state(config), config)
  checkpoints.close()
  assert "checkpoint 4 in " in str(error.value)
  assert "is sound (its files match the checksums of its save)" in str(error.value)
  assert named in str(error.value) and "damaged" not in str(error.value)
  assert "The checkpoints are left as they are" in str(error.value)
  assert Checkpoints(workdir, read_only=True).all_steps() == [2, 4]
  assert not (workdir / CORRUPT_DIR).exists()


def test_train_with_ema_turned_off_names_the_key_without_a_traceback(trained_workdir,
                                                                    npz_factory, tmp_path):
  workdir = shutil.copytree(trained_workdir, tmp_path / "run")
  result = gen_jax("train", f"--config={SMOKE_CONFIG}", f"--workdir={workdir}",
                   f"--config.dataset={npz_factory((28, 28, 1))}", "--config.ema_decay=0",
                   check=False)
  assert result.returncode == 1
  assert re.search(r"checkpoint 4 in .* is sound .* config.ema_decay was 0.999, now 0.0",
                   result.stderr)
  assert "Traceback" not in result.stderr and not (workdir / CORRUPT_DIR).exists()


def test_allowed_config_changes_resume(trained_workdir, npz_factory, tmp_path):
  workdir = shutil.copytree(trained_workdir, tmp_path / "run")
  config = smoke_config(dataset=npz_factory((28, 28, 1)), ema_decay=0.9, batch_size=16,
                        **{"optimizers.generator.learning_rate": 1e-3})
  checkpoints = Checkpoints(workdir)
  step, _, _ = checkpoints.restore_newest(abstract_state(config), config)
  checkpoints.close()
  assert step == 4


# ----------------------------------------------------------------------------- config values


def smoke_config(**overrides):
  config = configs.load(f"{EXPERIMENTS / 'dcgan/mnist.py'}:smoke")
  config.update_from_flattened_dict(overrides)
  return config


@pytest.mark.parametrize("key, value, message", [
    ("dataset", "", "config.dataset must be a dataset name such as mnist"),
    ("image_size", -28, "config.image_size must be a positive integer, got -28"),
    ("batch_size", 0, "config.batch_size must be a positive integer, got 0"),
    ("keep_checkpoints", -1, "config.keep_checkpoints must be a positive integer, got -1"),
    ("crop", 0, "config.crop must be a positive integer, or None for the whole image, got 0"),
    ("channels", 2, "config.channels must be 1, 3, or None for the dataset's, got 2"),
    ("seed", -1, "config.seed must be an integer in [0, 2**63), got -1"),
    ("ema_decay", 1.0, "config.ema_decay must be in [0, 1) (0: no EMA), got 1.0"),
    ("model.latent_dim", 0, "config.model.latent_dim must be a positive integer, got 0"),
    ("model.generator.features", (16, -8, 4),
     "config.model.generator.features must be positive integers, got (16, -8, 4)"),
    ("optimizers.generator.name", "adamax", "config.optimizers.generator.name: unknown "
     "optimizer 'adamax'; valid optimizers: adam, adamw, rmsprop, sgd"),
    ("optimizers.discriminator.schedule", "cosin", "config.optimizers.discriminator.schedule: "
     "unknown schedule 'cosin'; valid schedules: constant, cosine, linear"),
    ("optimizers.generator.learning_rate", -2e-4,
     "config.optimizers.generator.learning_rate must be positive, got -0.0002"),
    ("optimizers.generator.warmup_steps", -5,
     "config.optimizers.generator.warmup_steps must be a non-negative integer, got -5"),
    ("eval.every_steps", -1, "config.eval.every_steps must be a non-negative integer"),
    ("eval.num_samples", 0, "config.eval.num_samples must be a positive integer, got 0"),
    ("eval.batch_size", -250, "config.eval.batch_size must be a positive integer, got -250"),
    ("eval.keep_best", 0, "config.eval.keep_best must be a positive integer, got 0"),
    ("eval.metrics", "fid,fjd", "config.eval.metrics: unknown metric(s) ['fjd']; valid "
     "metrics: fid, kid, is, pr"),
    ("eval.metrics", "", "config.eval.metrics: unknown metric(s) ''; valid metrics: fid"),
])
def test_bad_value_names_key_value_and_what_is_valid(key, value, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    configs.validate(smoke_config(**{key: value}))


def test_a_model_name_that_does_not_fit_the_model_keys_is_named(npz_factory):
  config = smoke_config(dataset=npz_factory((28, 28, 1)), **{"model.name": "gan"})
  with pytest.raises(ValueError, match=r"config.model does not fit model 'gan': .*unexpected "
                                       r"keyword argument 'base_size'\. Its keys are those of "
                                       r"another model: set config.model.name back"):
    methods.build(config, data.describe(configs.data_spec(config)))


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*/*.py")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_experiment_config_is_valid(path):
  for arg in ("", ":smoke"):
    configs.validate(configs.load(f"{path}{arg}"))


# ----------------------------------------------------------------------------- bad data


def write_image(path: pathlib.Path, pixels: np.ndarray, mode: str | None = None) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  image = Image.fromarray(pixels)
  (image.convert(mode) if mode else image).save(path)


def first_batch(dataset: str, **spec) -> dict[str, np.ndarray]:
  spec = data.DataSpec(dataset, **{"image_size": 8, **spec})
  return next(data.train_batches(spec, global_batch_size=4, seed=0, start_step=0,
                                 process_index=0, process_count=1))


def test_grayscale_and_alpha_images_in_an_rgb_folder_are_converted_and_counted(tmp_path,
                                                                             caplog):
  write_image(tmp_path / "train/a/rgb.png", np.full((8, 8, 3), 10, np.uint8))
  write_image(tmp_path / "train/a/gray.png", np.full((8, 8), 200, np.uint8))
  write_image(tmp_path / "train/b/rgba.png", np.full((8, 8, 3), 30, np.uint8), mode="RGBA")
  batch = first_batch(f"folder:{tmp_path}")
  assert batch["image"].shape == (4, 8, 8, 3)
  gray = batch["image"][batch["image"][:, 0, 0, 0] > 0]  # The other two are darker.
  assert len(gray)
  np.testing.assert_allclose(gray, 200 / 127.5 - 1, atol=1e-6)  # Every channel.
  assert ("converting 2 of the 3 images of split 'train' to RGB (PIL modes L: 1, RGBA: 1); alpha "
          "channels are dropped") in caplog.text


def test_high_bit_depth_image_is_refused_by_name(tmp_path):
  write_image(tmp_path / "train/a/ok.png", np.zeros((8, 8), np.uint8))
  write_image(tmp_path / "train/a/deep.png", np.full((8, 8), 40_000, np.uint16))
  with pytest.raises(ValueError, match=r"image 'train/a/deep.png' in folder:.* has PIL mode "
                                       r"'I;16' \(more than 8 bits per channel\)"):
    data.describe(data.DataSpec(f"folder:{tmp_path}", image_size=8))


def test_truncated_image_in_a_tar_gz_reaches_the_trainer_as_a_named_error(tmp_path):
  noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(noise).save(buffer, "JPEG")
  for i in range(4):
    write_image(tmp_path / f"images/train/a/{i}.png", noise)
  jpeg = buffer.getvalue()
  cut = jpeg.index(b"\xff\xda") + 100  # The whole header, then a little of the scan.
  (tmp_path / "images/train/a/cut.jpg").write_bytes(jpeg[:cut])
  archive = tmp_path / "images.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(tmp_path / "images", arcname="images")
  spec = data.DataSpec(f"folder:{archive}", image_size=8)
  batches = data.train_batches(spec, global_batch_size=5, seed=0, start_step=0, process_index=0,
                               process_count=1)
  with pytest.raises(ValueError, match=r"cannot decode image 'images/train/a/cut.jpg' in "
                                       r"folder:.*images.tar.gz: image file is truncated"):
    next(batches)


def test_images_of_differing_sizes_are_resized_or_named_if_smaller_than_the_crop(tmp_path):
  for name, (h, w) in {"wide": (12, 30), "tall": (40, 9), "square": (16, 16)}.items():
    write_image(tmp_path / f"train/a/{name}.png", np.full((h, w, 3), 60, np.uint8))
  dataset = f"folder:{tmp_path}"
  batch = first_batch(dataset)
  assert batch["image"].shape == (4, 8, 8, 3)
  np.testing.assert_allclose(batch["image"], 60 / 127.5 - 1, atol=1e-5)
  assert first_batch(dataset, crop=9)["image"].shape == (4, 8, 8, 3)
  # Named before any batch is read.
  with pytest.raises(ValueError, match=r"cannot crop 10x10 from image 'train/a/tall.png' in "
                                       r"folder:.*, which is 40x9 \(1 of the 3 images"):
    data.describe(data.DataSpec(dataset, image_size=8, crop=10))


class MixedSizes(data.Source):
  """Two examples, 12x12 and 5x30, of a source that knows their sizes only once read."""

  name = "mixed_sizes"
  num_examples = 2
  image_shape = None
  channels = 1
  num_classes = 0

  def read(self, indices):
    (index,) = indices
    return np.zeros((1, *[(12, 12), (5, 30)][index], 1), np.uint8), np.zeros(1, np.int32)


def test_error_inside_tf_data_reaches_the_caller_unwrapped(monkeypatch):
  monkeypatch.setitem(data.DATASETS, "mixed_sizes", lambda split: MixedSizes())
  with pytest.raises(ValueError, match=r"cannot crop 8x8 from example 1 of mixed_sizes, which is "
                                       r"5x30"):
    first_batch("mixed_sizes", crop=8)


def test_empty_folder_split_or_npz_split_is_named(tmp_path):
  with pytest.raises(ValueError, match="contains no images laid out as <split>/<class>/<image>"):
    data.describe(data.DataSpec(f"folder:{tmp_path}", image_size=8))
  write_image(tmp_path / "train/a/0.png", np.zeros((8, 8), np.uint8))
  with pytest.raises(ValueError, match=r"no images for split 'test' .* splits with images are "
                                       r"\['train'\]"):
    data.describe(data.DataSpec(f"folder:{tmp_path}", image_size=8, split="test"))
  path = tmp_path / "empty.npz"
  np.savez(path, x_train=np.zeros((0, 8, 8), np.uint8), y_train=np.zeros(0, np.int64))
  with pytest.raises(ValueError, match=r"split 'train' of npz:.*empty.npz has no examples"):
    first_batch(f"npz:{path}")
  with pytest.raises(ValueError, match=r"split 'test' not found in npz:.*; its splits are "
                                       r"\['train'\]"):
    data.describe(data.DataSpec(f"npz:{path}", image_size=8, split="test"))


@pytest.mark.parametrize("labels", [np.zeros(9, int), np.zeros((10, 10), int), np.full(10, -1)],
                         ids=["too_few", "one_hot", "negative"])
def test_npz_labels_that_do_not_match_the_images_are_refused(tmp_path, labels):
  path = tmp_path / "bad.npz"
  np.savez(path, x_train=np.zeros((10, 8, 8), np.uint8), y_train=labels)
  with pytest.raises(ValueError, match=r"y_train must hold one class id >= 0 per image of "
                                       r"x_train \(10, 8, 8, 1\), got"):
    data.describe(data.DataSpec(f"npz:{path}", image_size=8))


def test_float_labels_and_an_ignore_label_for_a_conditional_model_are_refused(tmp_path):
  images = np.zeros((10, 8, 8), np.uint8)
  np.savez(tmp_path / "float.npz", x_train=images, y_train=np.arange(10) + 0.7)
  with pytest.raises(ValueError, match=r"npz:.*float.npz: y_train must hold integer class ids, "
                                       r"got float64 \(e.g. \[0.7, 1.7, 2.7\]\)"):
    data.describe(data.DataSpec(f"npz:{tmp_path / 'float.npz'}", image_size=8))
  # An 'ignore' label 255 among classes 0..8: harmless unconditionally, refused with labels.
  np.savez(tmp_path / "ignore.npz", x_train=np.zeros((10, 28, 28), np.uint8),
           y_train=np.r_[np.arange(9), 255])
  for experiment, conditional in (("dcgan", False), ("cgan", True), ("classifier", True)):
    config = configs.load(f"{EXPERIMENTS / experiment / 'mnist.py'}:smoke")
    config.dataset = f"npz:{tmp_path / 'ignore.npz'}"
    info = data.describe(configs.data_spec(config))
    assert (info.num_classes, info.unused_classes) == (256, tuple(range(9, 255)))
    if not conditional:
      methods.build(config, info)
      continue
    with pytest.raises(ValueError, match=rf"the labels of npz:.*ignore.npz go up to 255, but 246 "
                                         rf"of the 256 class ids have no image \(ids 9-254\): "
                                         rf"this {config.model.name} would learn 256 classes"):
      methods.build(config, info)


def write_bad_npz(path: pathlib.Path, how: str) -> pathlib.Path:
  """Random bytes, a truncated archive, or an archive whose ``images`` are Python objects."""
  if how == "random_bytes":
    path.write_bytes(np.random.default_rng(0).bytes(1000))
  elif how == "truncated":
    np.savez(path, images=np.zeros((4, 8, 8, 1), np.uint8))
    path.write_bytes(path.read_bytes()[:300])
  else:
    np.savez(path, images=np.array([None, 1], dtype=object))
  return path


BAD_NPZ = {"random_bytes": r"is not an .npz archive of named numpy arrays .*: it is not a zip "
                           r"archive \(a truncated copy, or another format\)",
           "truncated": r"is not an .npz archive of named numpy arrays .*: it is not a zip "
                        r"archive",
           "objects": r"array 'images' of .* cannot be read: Object arrays cannot be loaded.* "
                      r"Only arrays of numbers are read"}


@pytest.mark.parametrize("how", sorted(BAD_NPZ))
def test_a_bad_npz_is_named_as_dataset_samples_or_weights(tmp_path, how):
  path = write_bad_npz(tmp_path / "bad.npz", how)
  for what, load in [("dataset", lambda: data.describe(data.DataSpec(f"npz:{path}", 8))),
                     ("samples file", lambda: evaluate.evaluate_file(str(path), metrics="fid")),
                     ("inception weights", lambda: features.load(f"inception:{path}"))]:
    with pytest.raises(ValueError, match=BAD_NPZ[how]) as error:
      load()
    assert f"{what} {path}" in str(error.value) and "allow_pickle=`" not in str(error.value)


def test_missing_inception_weights_and_empty_samples_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"inception weights /nonexistent.pth: no such file"):
    features.load("inception:/nonexistent.pth")
  np.savez(tmp_path / "empty.npz", images=np.zeros((0, 28, 28, 1), np.uint8))
  with pytest.raises(ValueError, match=r"empty.npz: images holds no images \(shape \[0, 28, 28, "
                                       r"1\]\); there is nothing to evaluate"):
    evaluate.evaluate_file(str(tmp_path / "empty.npz"), metrics="fid", reference="digits:test",
                           features="vgg16")


def test_truncated_tar_gz_is_named(tmp_path):
  for i in range(8):
    write_image(tmp_path / f"images/train/a/{i}.png",
                np.random.default_rng(i).integers(0, 256, (32, 32, 3), np.uint8))
  with tarfile.open(tmp_path / "images.tar.gz", "w:gz") as tar:
    tar.add(tmp_path / "images", arcname="images")
  archive = tmp_path / "images.tar.gz"
  archive.write_bytes(archive.read_bytes()[:archive.stat().st_size // 2])
  with pytest.raises(ValueError, match=r"folder:.*images.tar.gz: the archive cannot be read to "
                                       r"its end \(EOFError: .*\); it is probably truncated"):
    data.describe(data.DataSpec(f"folder:{archive}", image_size=8))


def test_a_workdir_that_is_a_file_is_named(tmp_path):
  (tmp_path / "run").write_text("")
  with pytest.raises(NotADirectoryError, match=r"workdir .*run is a file, not a directory"):
    with workdir_lock.WorkdirLock(tmp_path / "run"):
      pass
