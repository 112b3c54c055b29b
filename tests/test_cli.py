"""``gen-jax train`` and ``gen-jax sample`` end to end, in subprocesses."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import SMOKE_CONFIG, gen_jax, smoke_run


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory, npz_factory):
  return smoke_run(tmp_path_factory.mktemp("cli_run"), npz_factory((28, 28, 1)))


def test_train_writes_checkpoints_grid_config_and_logs(trained_workdir):
  assert sorted(p.name for p in (trained_workdir / "checkpoints").iterdir()
                if p.name.isdigit()) == ["2", "4"]
  assert (trained_workdir / "samples_00000004.png").is_file()
  assert json.loads((trained_workdir / "config.json").read_text())["model"]["name"] == "dcgan"
  assert list(trained_workdir.glob("events.out.tfevents.*"))


def test_same_command_resumes(trained_workdir, npz_factory, tmp_path):
  # A copy: the other tests expect the shared run as it was trained, in any order.
  workdir = shutil.copytree(trained_workdir, tmp_path / "run")
  result = gen_jax("train", f"--config={SMOKE_CONFIG}", f"--workdir={workdir}",
                   f"--config.dataset={npz_factory((28, 28, 1))}",
                   "--config.num_train_steps=6")
  assert "starting at step 4 of 6" in result.stderr
  assert (workdir / "checkpoints" / "6").is_dir()


def test_sample_writes_npz_and_grid(trained_workdir, tmp_path):
  out, grid = tmp_path / "samples.npz", tmp_path / "grid.png"
  gen_jax("sample", f"--workdir={trained_workdir}", "--num=10", f"--out={out}",
          f"--grid={grid}", "--seed=3", "--step=2")
  with np.load(out) as f:
    assert set(f.files) == {"images"}  # unconditional: no labels
    images = f["images"]
  assert images.dtype == np.uint8 and images.shape == (10, 28, 28, 1)
  assert images.max() > images.min()
  assert Image.open(grid).size[0] > 28 * 3


def test_sample_unknown_step_lists_available(trained_workdir, tmp_path):
  result = gen_jax("sample", f"--workdir={trained_workdir}", "--num=2",
                   f"--out={tmp_path / 'x.npz'}", "--step=3", check=False)
  assert result.returncode != 0
  assert "no checkpoint for step 3" in result.stderr and "available steps" in result.stderr


def test_bad_command_line(tmp_path):
  result = gen_jax("fly", check=False)
  assert result.returncode == 2 and "must be one of train, sample" in result.stderr
  result = gen_jax("train", f"--config={SMOKE_CONFIG}", f"--workdir={tmp_path}",
                   "--config.batch_sise=4", check=False)
  assert result.returncode != 0 and "batch_sise" in result.stderr
  result = gen_jax("train", f"--config={SMOKE_CONFIG}", check=False)
  assert result.returncode == 2 and "train needs --workdir" in result.stderr


def test_noema_samples_the_trained_generator(trained_workdir, tmp_path):
  """The smoke run keeps an EMA (decay 0.999): the default and --noema differ."""
  drawn = {}
  for flag in ("--ema", "--noema"):
    out = tmp_path / f"{flag}.npz"
    gen_jax("sample", f"--workdir={trained_workdir}", "--num=8", f"--out={out}", flag)
    with np.load(out) as f:
      drawn[flag] = f["images"]
  assert not np.array_equal(drawn["--ema"], drawn["--noema"])
