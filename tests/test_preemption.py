"""What a run survives: SIGTERM, SIGKILL (even mid-save), corrupt checkpoints, NaNs.

Real ``gen-jax train`` processes on the DCGAN smoke config, with a decaying
learning rate (cosine) and EMA, are stopped and resumed, and their final train
states compared bitwise with one uninterrupted run. The subprocesses share a
JAX persistent compilation cache, only to start faster: it changes no result.
NaNs are made in-process, by a huge learning rate or a poisoned example.
"""

import os
import pathlib
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import EXPERIMENTS, ROOT, write_npz
from gen_jax import configs, data, methods, sample
from gen_jax.train import parallel, trainer
from gen_jax.train.checkpoint import CORRUPT_DIR, Checkpoints, abstract_with_sharding

CONFIG = "experiments/dcgan/mnist.py:smoke"
NUM_STEPS = 120
CHECKPOINT_EVERY = 10
# Every step logged (so that the tests see progress), saves frequent, grids only at the end;
# a decaying schedule and EMA (on in the config), so that resuming has them to get right.
OVERRIDES = (f"--config.num_train_steps={NUM_STEPS}",
             f"--config.checkpoint_every_steps={CHECKPOINT_EVERY}",
             "--config.log_every_steps=1", "--config.sample_every_steps=1000",
             "--config.optimizers.generator.schedule=cosine",
             "--config.optimizers.discriminator.schedule=cosine")
LOGGED_STEP = re.compile(r"\] \[(\d+)\] \w+=")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
  return write_npz(tmp_path_factory.mktemp("data") / "28x28x1.npz", (28, 28, 1))


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
  cache = tmp_path_factory.mktemp("jax_cache")
  return {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


class Training:
  """A ``gen-jax train`` subprocess, its log in a file that the test polls."""

  def __init__(self, workdir: pathlib.Path, dataset: str, env: dict[str, str], *extra: str):
    command = shutil.which("gen-jax")
    command = [command] if command else [sys.executable, "-m", "gen_jax"]
    self.workdir = workdir
    self.log = workdir.with_name(f"{workdir.name}.{time.monotonic_ns()}.log")
    with open(self.log, "w") as log:
      self.process = subprocess.Popen(
          [*command, "train", f"--config={CONFIG}", f"--workdir={workdir}",
           f"--config.dataset={dataset}", *OVERRIDES, *extra],
          cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

  def text(self) -> str:
    return self.log.read_text(errors="replace")

  def logged_step(self) -> int:
    return max(map(int, LOGGED_STEP.findall(self.text())), default=-1)

  def wait_until(self, condition, timeout: float = 300) -> None:
    """Polls ``condition()`` until true; fails if the run ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while not condition():
      assert self.process.poll() is None, f"the run ended early:\n{self.text()[-3000:]}"
      if time.monotonic() > deadline:
        self.process.kill()
        raise AssertionError(f"timed out:\n{self.text()[-3000:]}")
      time.sleep(0.002)

  def finish(self, timeout: float = 600) -> int:
    return self.process.wait(timeout)

  def kill(self, signum: int) -> int:
    self.process.send_signal(signum)
    return self.finish()

  def pause(self) -> None:
    """Stops the process (SIGSTOP) and returns once it is stopped."""
    self.process.send_signal(signal.SIGSTOP)
    stat = pathlib.Path(f"/proc/{self.process.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "T":
      time.sleep(0.001)


def train(workdir: pathlib.Path, dataset: str, env: dict[str, str], *extra: str) -> str:
  """Trains to the end; returns the log."""
  run = Training(workdir, dataset, env, *extra)
  assert run.finish() == 0, run.text()[-3000:]
  return run.text()


def final_state(workdir: pathlib.Path):
  _, state, step = sample.load_run(str(workdir))
  return step, jax.device_get(state)


def assert_states_equal(a, b) -> None:
  """Bitwise: step, rng, params, collections, optimizer states (the schedule's count), EMA."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    assert np.array_equal(x, y), f"{jax.tree_util.keystr(path)} differs"


def tmp_dirs(workdir: pathlib.Path, newer_than: float = 0.0) -> list[pathlib.Path]:
  """The temporary directories of unfinished saves, changed after ``newer_than``."""
  found = []
  for path in (workdir / "checkpoints").glob("*.orbax-checkpoint-tmp*"):
    try:
      if path.stat().st_mtime >= newer_than:
        found.append(path)
    except FileNotFoundError:  # Renamed on commit meanwhile.
      pass
  return sorted(found)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, dataset, env):
  """``(workdir, final state)`` of the run that nothing stopped."""
  workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
  train(workdir, dataset, env)
  step, state = final_state(workdir)
  assert step == NUM_STEPS
  return workdir, state


# ----------------------------------------------------------------------------- signals


def test_sigterm_saves_exits_75_and_resumes_exactly(uninterrupted, dataset, env, tmp_path):
  workdir = tmp_path / "run"
  run = Training(workdir, dataset, env)
  after = random.randint(5, NUM_STEPS // 2)
  run.wait_until(lambda: run.logged_step() >= after)
  assert run.kill(signal.SIGTERM) == trainer.PREEMPTED_EXIT_CODE == 75, run.text()[-3000:]
  stopped = re.search(r"training stopped at step (\d+) by SIGTERM, after saving checkpoint",
                      run.text())
  assert stopped, run.text()[-3000:]
  step = int(stopped.group(1))
  assert after <= step < NUM_STEPS
  assert Checkpoints(workdir, read_only=True).latest_step() == step
  assert re.search(rf"\] \[{step}\] .*d_loss=", run.text())  # Written before exiting.

  log = train(workdir, dataset, env)
  assert f"starting at step {step} of {NUM_STEPS}" in log
  final_step, state = final_state(workdir)
  assert final_step == NUM_STEPS
  assert_states_equal(state, uninterrupted[1])


def test_sigkill_at_any_moment_even_mid_save_loses_only_steps(uninterrupted, dataset, env,
                                                               tmp_path):
  """Killed at a random step, during an asynchronous save, at a random step again: each
  restart resumes from the newest complete checkpoint, and the end is as if never killed."""
  workdir = tmp_path / "run"
  for moment in ("random", "during a save", "random"):
    launched = time.time()
    run = Training(workdir, dataset, env)
    run.wait_until(lambda: "starting at step" in run.text())
    start = int(re.search(r"starting at step (\d+)", run.text()).group(1))
    if moment == "random":
      after = start + random.randint(CHECKPOINT_EVERY, 3 * CHECKPOINT_EVERY)
      run.wait_until(lambda: run.logged_step() >= after)
    else:  # Frozen while a save of this run is unfinished, then killed.
      while True:
        run.wait_until(lambda: tmp_dirs(workdir, newer_than=launched))
        run.pause()
        if tmp_dirs(workdir, newer_than=launched):
          break
        run.process.send_signal(signal.SIGCONT)
    assert run.kill(signal.SIGKILL) == -signal.SIGKILL
    steps = Checkpoints(workdir, read_only=True).all_steps()
    assert max(steps, default=0) < NUM_STEPS
    if moment == "during a save":
      unfinished = int(tmp_dirs(workdir, newer_than=launched)[0].name.split(".")[0])
      assert unfinished not in steps  # Never listed, so never restored.

  log = train(workdir, dataset, env)
  resumed_from = int(re.search(r"starting at step (\d+)", log).group(1))
  assert resumed_from == max(steps, default=0)
  assert not tmp_dirs(workdir)  # The interrupted save's directory was cleaned up.
  final_step, state = final_state(workdir)
  assert final_step == NUM_STEPS
  assert_states_equal(state, uninterrupted[1])


def test_two_processes_stop_at_the_same_step(dataset, tmp_path):
  """SIGTERM to one process of two: both save the same step and exit 75."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # One device each.
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  workdir = tmp_path / "run"
  runs = [Training(workdir, dataset, env, f"--coordinator_address=localhost:{port}",
                   "--num_processes=2", f"--process_id={i}") for i in range(2)]
  try:
    for run in runs:
      run.wait_until(lambda: run.logged_step() >= 3)
    runs[1].process.send_signal(signal.SIGTERM)
    codes = [run.finish() for run in runs]
  finally:
    for run in runs:
      if run.process.poll() is None:
        run.process.kill()
  texts = [run.text() for run in runs]
  assert codes == [75, 75], texts[0][-2000:] + texts[1][-2000:]
  first = re.search(r"training stopped at step (\d+) by a signal to another process", texts[0])
  second = re.search(r"training stopped at step (\d+) by SIGTERM", texts[1])
  assert first and second and first.group(1) == second.group(1)
  assert Checkpoints(workdir, read_only=True).latest_step() == int(first.group(1))


def test_stop_signals_only_set_a_flag_and_restore_the_handlers():
  previous = {s: signal.getsignal(s) for s in trainer.StopSignals.SIGNALS}
  with trainer.StopSignals(parallel.make_mesh()) as stop:
    assert not stop.agreed()
    os.kill(os.getpid(), signal.SIGINT)  # Would raise KeyboardInterrupt without it.
    assert stop.agreed() and stop.reason == "SIGINT"
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.reason == "SIGINT"  # The first signal is the one reported.
  assert {s: signal.getsignal(s) for s in trainer.StopSignals.SIGNALS} == previous


# ----------------------------------------------------------------------------- checkpoints


def damage(step_dir: pathlib.Path, how: str) -> None:
  """Truncates every file of the ``state`` item to half, deletes its data files, or
  (``bitrot``) overwrites 64 bytes in the middle of its largest file, keeping its size."""
  files = [p for p in (step_dir / "state").rglob("*") if p.is_file()]
  if how == "bitrot":
    largest = max(files, key=lambda p: p.stat().st_size)
    with open(largest, "r+b") as f:
      f.seek(largest.stat().st_size // 2)
      f.write(bytes(np.random.default_rng(0).integers(0, 256, 64, np.uint8)))
    return
  for path in files:
    if how == "truncate":
      path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    elif path.parent.name == "d":
      path.unlink()


def test_corrupt_newest_checkpoints_are_moved_aside_and_resume_falls_back(
    uninterrupted, dataset, env, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted[0], workdir)
  newest, second, third = sorted(Checkpoints(workdir, read_only=True).all_steps(),
                                 reverse=True)
  damage(workdir / "checkpoints" / str(newest), "truncate")
  damage(workdir / "checkpoints" / str(second), "delete")
  damaged = {step: sorted(p.name for p in (workdir / "checkpoints" / str(step)).rglob("*"))
             for step in (newest, second)}

  log = train(workdir, dataset, env)
  assert f"checkpoint {newest} in {workdir / 'checkpoints'} cannot be restored" in log
  assert f"checkpoint {second} in {workdir / 'checkpoints'} cannot be restored" in log
  assert (f"resuming from checkpoint {third}: the newer checkpoint(s) {newest}, {second} could "
          f"not be restored and were moved to {workdir / CORRUPT_DIR / str(newest)}") in log
  assert f"starting at step {third} of {NUM_STEPS}" in log
  for step, names in damaged.items():  # Moved, as they were.
    assert sorted(p.name for p in (workdir / CORRUPT_DIR / str(step)).rglob("*")) == names
  final_step, state = final_state(workdir)  # Retrained from the third: the same end.
  assert final_step == NUM_STEPS
  assert_states_equal(state, uninterrupted[1])


def smoke_config(dataset: str, **overrides):
  config = configs.load(f"{EXPERIMENTS / 'dcgan/mnist.py'}:smoke")
  config.update_from_flattened_dict({"dataset": dataset, "log_every_steps": 1,
                                     "sample_every_steps": 1000, **overrides})
  return config


def abstract_state(config):
  """The train state's shapes for ``config``, replicated over the test's devices."""
  method = methods.build(config, data.describe(configs.data_spec(config)))
  return abstract_with_sharding(jax.eval_shape(method.init, jax.random.PRNGKey(0)),
                                parallel.replicated(parallel.make_mesh()))


def test_no_restorable_checkpoint_is_an_error_listing_each(uninterrupted, dataset, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted[0] / "checkpoints", workdir / "checkpoints")
  steps = Checkpoints(workdir, read_only=True).all_steps()
  for step in steps:
    damage(workdir / "checkpoints" / str(step), "truncate")
  config = smoke_config(dataset)
  checkpoints = Checkpoints(workdir)
  with pytest.raises(RuntimeError, match=rf"no checkpoint in .*checkpoints can be restored; "
                                         rf"tried step {max(steps)}: .* They are left in place"
                     ) as error:
    checkpoints.restore_newest(abstract_state(config), config)
  checkpoints.close()
  assert all(f"step {step}: " in str(error.value) for step in steps)
  assert Checkpoints(workdir, read_only=True).all_steps() == steps
  assert not (workdir / CORRUPT_DIR).exists()


# ----------------------------------------------------------------------------- NaN and Inf


def files(workdir: pathlib.Path) -> dict[str, tuple[int, int]]:
  return {str(p.relative_to(workdir)): (p.stat().st_size, p.stat().st_mtime_ns)
          for p in workdir.rglob("*") if p.is_file()}


def test_divergence_stops_naming_step_and_metric_and_keeps_the_checkpoints(
    uninterrupted, dataset, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted[0], workdir)
  before = files(workdir / "checkpoints")
  config = smoke_config(dataset, num_train_steps=NUM_STEPS + 10,
                        checkpoint_every_steps=1)  # A save at every step, if it were allowed.
  for optimizer in config.optimizers.values():
    optimizer.learning_rate = 1e30
  with pytest.raises(FloatingPointError, match=(
      rf"training diverged: non-finite \w+=(nan|inf|-inf).* at step {NUM_STEPS + 1}\. Stopped; "
      rf"checkpoint {NUM_STEPS}, the newest, is kept as it was\. Lower the learning rates, or "
      rf"set --config.on_nan=rollback")):
    trainer.train(config, workdir)
  assert files(workdir / "checkpoints") == before


POISON = 7  # The label of the one example that turns the train state into NaNs.


def poison_on_label(monkeypatch) -> None:
  """Makes every method built in this test put NaN into metrics and parameters when the
  batch holds the example labelled ``POISON``."""
  build = methods.build

  def build_poisoned(config, info):
    method = build(config, info)
    clean_step = method.train_step

    def train_step(state, batch):
      state, metrics = clean_step(state, batch)
      nan = jnp.where(jnp.any(batch["label"] == POISON), jnp.nan, 0.0)
      params = jax.tree.map(lambda x: x + nan, state.params)
      return state.replace(params=params), {**metrics, "g_loss": metrics["g_loss"] + nan}

    method.train_step = train_step
    return method

  monkeypatch.setattr(methods, "build", build_poisoned)


def test_rollback_skips_the_batches_since_the_checkpoint_and_resumes_exactly(
    monkeypatch, tmp_path, caplog):
  # 400 examples (an epoch is 50 batches of 8), one poisoned: the first of data batch 13,
  # found by reading that batch with example ids as labels.
  images = np.random.default_rng(0).integers(0, 256, (400, 28, 28), np.uint8)
  np.savez(tmp_path / "ids.npz", x_train=images, y_train=np.arange(400))
  batch_13 = next(data.train_batches(data.DataSpec(f"npz:{tmp_path / 'ids.npz'}", image_size=28),
                                     global_batch_size=8, seed=0, start_step=13,
                                     process_index=0, process_count=1))
  labels = np.zeros(400, np.int64)
  labels[batch_13["label"][0]] = POISON
  np.savez(tmp_path / "poisoned.npz", x_train=images, y_train=labels)
  poison_on_label(monkeypatch)
  config = smoke_config(f"npz:{tmp_path / 'poisoned.npz'}", num_train_steps=20,
                        checkpoint_every_steps=5, on_nan="rollback", max_nan_rollbacks=1)

  # Step 14 reads batch 13 and is found non-finite: back to checkpoint 10, past batches 10-13.
  state = trainer.train(config, tmp_path / "run")
  assert ("training diverged: non-finite g_loss=nan at step 14. Rolling back to step 10 and "
          "skipping data batches [10, 14) (rollback 1 of at most 1)") in caplog.text
  assert int(state.step) == 20
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state)))
  checkpoints = Checkpoints(tmp_path / "run", read_only=True)
  assert checkpoints.all_steps() == [10, 15, 20]
  assert [checkpoints.meta(s)["skipped_batches"] for s in (10, 15, 20)] == [[], [[10, 14]],
                                                                            [[10, 14]]]
  # Resumed from 15, the run reads the batches the uninterrupted one read after it.
  shutil.rmtree(tmp_path / "run" / "checkpoints" / "20")
  resumed = trainer.train(config, tmp_path / "run")
  assert_states_equal(jax.device_get(resumed), jax.device_get(state))


def test_on_nan_config_values_are_checked():
  config = configs.load(f"{EXPERIMENTS / 'dcgan/mnist.py'}:smoke")
  assert (config.on_nan, config.max_nan_rollbacks) == ("stop", 3)
  config.on_nan = "skip"
  with pytest.raises(ValueError, match=r"config.on_nan must be 'stop' or 'rollback', got 'skip'"):
    configs.validate(config)
  config.on_nan = "rollback"
  config.max_nan_rollbacks = 0
  with pytest.raises(ValueError, match="config.max_nan_rollbacks must be a positive integer"):
    configs.validate(config)
