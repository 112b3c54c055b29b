"""Orbax checkpoints of the train state, with the config that made them.

Each checkpoint has two items: ``state`` (the whole ``TrainState``) and
``meta`` (JSON: the config, the data's shape and the data batches skipped by
NaN rollbacks, so that the data position is ``step`` plus the skipped count),
so that a checkpoint can be sampled from without the dataset, and a workdir is
never resumed with a different model.

What survives a crash: Orbax writes each checkpoint into
``<step>.orbax-checkpoint-tmp`` and renames it to ``<step>`` only once every
file is written, so a kill during a save leaves a temporary directory that is
never read (and is deleted by the next run), never a partial ``<step>``. A
``<step>`` whose files were damaged later (truncated, deleted) fails to restore:
`Checkpoints.restore_newest` then falls back to an older one and moves the bad
one to ``WORKDIR/checkpoints_corrupt/<step>``.

Bit rot and overwritten files are caught too: before Orbax commits a save, the
sha256 of every file it wrote goes into ``<step>/checksums.json`` (in Orbax's
background thread, so training does not wait for it), and each restore first
checks the files against it. A mismatch makes the checkpoint damaged, like an
unreadable one. Checkpoints without the file (made before it was recorded)
restore unverified, with a warning. A checkpoint whose files match but whose
state does not fit the run's is sound: the config changed (`ConfigChangedError`
names the keys). A save that cannot write its files (a full disk) raises one
`CheckpointSaveError` naming the step and the file.
"""

import hashlib
import json
import logging as std_logging
import os
import re
import sys
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from gen_jax import configs
from gen_jax.train.errors import CheckpointSaveError, ConfigChangedError, DamagedCheckpointError

# Where unreadable checkpoints are moved, beside WORKDIR/checkpoints.
CORRUPT_DIR = "checkpoints_corrupt"

# In each checkpoint: {relative path: sha256} of the files its save wrote.
CHECKSUMS_FILE = "checksums.json"
# The checkpoint's items, the directories whose files are hashed (Orbax may
# still update its own files at the top of the step directory after the hook).
ITEMS = ("state", "meta")

# The config sections that decide what the saved state means; everything else
# (run length, logging, learning rates, data source) may change on resume, except
# what changes the state's structure (EMA on or off, image channels), which
# restoring finds (`ConfigChangedError`).
MODEL_IDENTITY_KEYS = ("model", "method", "image_size")


class Checkpoints:
  """The run's ``CheckpointManager`` under ``WORKDIR/checkpoints``.

  Args:
    workdir: the run's directory.
    max_to_keep: newest checkpoints kept (None keeps all).
    read_only: for sampling and evaluation from a finished run.
    best_metric: with ``keep_best``, also keep the ``keep_best`` checkpoints
      with the lowest value of this metric (saved with ``save(metrics=...)``),
      beside the newest ones.
    keep_best: how many best checkpoints to keep.
  """

  def __init__(self, workdir: str, max_to_keep: int | None = None, read_only: bool = False,
               best_metric: str = "", keep_best: int = 1):
    self.directory = epath.Path(workdir) / "checkpoints"
    self.read_only = read_only
    self.best_metric = best_metric
    # A writer deletes the temporary directories of saves that a kill interrupted;
    # the workdir lock guarantees that no other run is saving into them.
    options = dict(create=not read_only, read_only=read_only,
                   enable_async_checkpointing=not read_only,
                   cleanup_tmp_directories=not read_only)
    self._saving: int | None = None  # The step of the save in progress.
    self._failed = False  # Whether a save failed (reported once).
    _quiet_failed_saves()
    if not read_only:
      # Runs once the save's files are written, before Orbax renames it into place.
      options["async_options"] = ocp.AsyncOptions(
          post_finalization_callback=self._record_checksums)
    if best_metric and not read_only:
      # orbax's policies: a checkpoint survives if it is among the newest OR the best.
      policies = ocp.checkpoint_managers
      best = lambda metrics: metrics[best_metric]  # noqa: E731
      options.update(
          best_fn=best, best_mode="min", keep_checkpoints_without_metrics=False,
          preservation_policy=policies.AnyPreservationPolicy([
              policies.LatestN(n=max_to_keep),
              policies.BestN(get_metric_fn=best, reverse=True, n=keep_best,
                             keep_checkpoints_without_metrics=False)]))
    else:
      options["max_to_keep"] = max_to_keep
    self.manager = ocp.CheckpointManager(self.directory,
                                         options=ocp.CheckpointManagerOptions(**options),
                                         item_names=ITEMS)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def meta(self, step: int) -> dict[str, Any]:
    """The ``meta`` item of checkpoint ``step``: ``config`` and ``data_info``."""
    return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def check_same_model(self, step: int, config: ml_collections.ConfigDict,
                       saved: dict[str, Any] | None = None) -> None:
    """Refuses to resume checkpoint ``step`` with a config of another model.

    ``saved`` is the checkpoint's config if already read.
    """
    saved = self.meta(step)["config"] if saved is None else saved
    current = configs.to_json_dict(config)
    for key in MODEL_IDENTITY_KEYS:
      if saved.get(key) != current.get(key):
        raise ValueError(
            f"{self.directory} holds checkpoints of a different model: config.{key} was "
            f"{json.dumps(saved.get(key), sort_keys=True)} at step {step}, now "
            f"{json.dumps(current.get(key), sort_keys=True)}. Use a new --workdir, or "
            f"run with the config the checkpoints were made with.")

  def restore(self, step: int, abstract_state: Any) -> Any:
    """Restores the state of ``step`` into the shapes and shardings of ``abstract_state``,
    after `verify`."""
    self.verify(step)
    return self._restore_state(step, abstract_state)

  def _restore_state(self, step: int, abstract_state: Any) -> Any:
    logging.info("restoring checkpoint %s/%d", self.directory, step)
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
    return self.manager.restore(step, args=args)["state"]

  def verify(self, step: int) -> bool:
    """Checks the files of checkpoint ``step`` against the checksums of its save.

    Returns:
      True if they match, False if the checkpoint has no checksums (saved by an
      older gen_jax): then it is restored unverified, with a warning.

    Raises:
      DamagedCheckpointError: a file is missing or its bytes changed since the save.
    """
    step_dir = self.directory / str(step)
    recorded_path = step_dir / CHECKSUMS_FILE
    if not recorded_path.exists():
      logging.warning("checkpoint %s has no %s (saved by an older gen_jax): restoring it "
                      "unverified", step_dir, CHECKSUMS_FILE)
      return False
    recorded = json.loads(recorded_path.read_text())
    for name, digest in recorded.items():
      path = step_dir / name
      if not path.exists():
        raise DamagedCheckpointError(f"{path} is missing (checkpoint {step} was saved with it)")
      if _sha256(path) != digest:
        raise DamagedCheckpointError(
            f"{path} does not match the sha256 recorded when checkpoint {step} was saved (its "
            f"bytes changed since: bit rot or an overwritten file)")
    return True

  def _config_change(self, step: int, meta: dict[str, Any],
                     config: ml_collections.ConfigDict, error: Exception) -> str:
    """Why sound checkpoint ``step`` does not restore into ``config``'s state: the keys."""
    changed = _differences(meta["config"], configs.to_json_dict(config))
    data_info = meta.get("data_info", {})
    message = (f"checkpoint {step} in {self.directory} is sound (its files match the "
               f"checksums of its save), but its train state does not fit the one of this "
               f"config ({_summary(error)}). ")
    if not changed:
      return message + ("No config key differs from the checkpoint's: the code that builds "
                        "the train state changed (another gen_jax version?). The checkpoints "
                        "are left as they are; train in another --workdir, or with that code.")
    keys = "; ".join(f"config.{key} was {json.dumps(saved)}, now {json.dumps(now)}"
                     for key, saved, now in changed)
    return message + (
        f"The config differs from the checkpoint's in: {keys} (the checkpoint's data: images "
        f"{data_info.get('image_shape')}, {data_info.get('num_classes')} classes). Turning "
        f"EMA on or off (ema_decay 0), data of other channels or classes, or other model sizes "
        f"change what the train state holds. The checkpoints are left as they are: resume "
        f"with the checkpoint's values, or train in another --workdir.")

  def _record_checksums(self) -> None:
    """Writes ``checksums.json`` into the save being committed (Orbax's hook, on process 0
    once every process has written its files)."""
    # The save's temporary directory; the step directory itself where Orbax writes in place.
    pending = list(self.directory.glob(f"{self._saving}.orbax-checkpoint-tmp*"))
    step_dir = pending[0] if len(pending) == 1 else self.directory / str(self._saving)
    (step_dir / CHECKSUMS_FILE).write_text(json.dumps(checksums(step_dir), indent=1,
                                                      sort_keys=True))

  def restore_newest(self, abstract_state: Any,
                     config: ml_collections.ConfigDict | None = None,
                     steps: list[int] | None = None) -> tuple[int, Any, dict[str, Any]] | None:
    """The newest checkpoint that restores, falling back to older ones.

    A checkpoint that cannot be read (truncated or missing files, or files that
    differ from the checksums of its save) is passed over with a warning naming
    its step. Once an older one restores, the unreadable ones are moved to
    ``WORKDIR/checkpoints_corrupt/<step>`` (kept for inspection, out of the way
    of later saves), unless this is read-only: then
    they stay where they are. When none restores, nothing is moved: a failure
    common to all (say, code that changed the state's structure) must not empty
    the workdir.

    Args:
      abstract_state: shapes and shardings to restore into, or a function of a
        checkpoint's ``meta`` that gives them (a reader that builds the model
        from the checkpoint's own config).
      config: the run's config, checked against each checkpoint's model; None
        for a reader.
      steps: the steps to try; default all.

    Returns:
      ``(step, state, meta)``, or None when there are no checkpoints.

    Raises:
      ValueError: the checkpoints are of another model (`check_same_model`).
      ConfigChangedError: a checkpoint whose files match its checksums does not
        restore into ``abstract_state``: the config changed; names its keys.
      RuntimeError: there are checkpoints but none restores; lists each error.
    """
    failures = []
    for step in sorted(self.all_steps() if steps is None else steps, reverse=True):
      error, verified = None, False
      try:
        verified = self.verify(step)
        meta = self.meta(step)
        saved_config = meta["config"]
      except Exception as e:  # noqa: BLE001 - Orbax and TensorStore raise many types.
        error = e
      if error is None:
        if config is not None:
          self.check_same_model(step, config, saved_config)
        abstract = abstract_state(meta) if callable(abstract_state) else abstract_state
        try:
          state = self._restore_state(step, abstract)
        except Exception as e:  # noqa: BLE001
          if verified and config is not None:
            # Its files are as saved, so the state does not fit the run: not damage.
            raise ConfigChangedError(self._config_change(step, meta, config, e)) from e
          error = e
      if not _on_every_process(error is None):
        error = error or RuntimeError("another process of the run could not restore it")
        logging.warning("checkpoint %d in %s cannot be restored (%s); trying an older one",
                        step, self.directory, _summary(error))
        failures.append((step, error))
        continue
      if failures and not self.read_only:
        moved = self._move_aside([failed for failed, _ in failures])
        logging.warning("resuming from checkpoint %d: the newer checkpoint(s) %s could not be "
                        "restored and were moved to %s", step,
                        ", ".join(str(failed) for failed, _ in failures),
                        ", ".join(map(str, moved)))
      elif failures:
        logging.warning("using checkpoint %d of %s: the newer checkpoint(s) %s cannot be "
                        "restored and are left in place", step, self.directory,
                        ", ".join(str(failed) for failed, _ in failures))
      return step, state, meta
    if failures:
      tried = "; ".join(f"step {step}: {_summary(error)}" for step, error in failures)
      others = sorted(set(self.all_steps()) - {step for step, _ in failures})
      raise RuntimeError(
          f"no checkpoint in {self.directory} can be restored; tried {tried}"
          + (f". Other steps: {others}" if others else "")
          + ("" if self.read_only else
             f". They are left in place. If they are damaged, move them out of the way (e.g. "
             f"to {self.directory.parent / CORRUPT_DIR}) to start from scratch, or train in "
             f"another --workdir."))
    return None

  def _move_aside(self, steps: list[int]) -> list[epath.Path]:
    """Moves the directories of ``steps`` to ``WORKDIR/checkpoints_corrupt``."""
    corrupt = self.directory.parent / CORRUPT_DIR
    targets = []
    for step in steps:
      target = corrupt / str(step)
      copy = 1
      while target.exists():  # The same step may have been moved aside by an earlier run.
        copy += 1
        target = corrupt / f"{step}.{copy}"
      targets.append(target)
    if jax.process_index() == 0:
      corrupt.mkdir(parents=True, exist_ok=True)
      for step, target in zip(steps, targets):
        (self.directory / str(step)).rename(target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("gen_jax: corrupt checkpoints moved aside")
    self.manager.reload()
    return targets

  def best_step(self) -> int | None:
    """The kept step with the lowest ``best_metric`` (None if none was evaluated)."""
    scored = [(metrics[self.best_metric], step) for step in self.all_steps()
              if (metrics := self.manager.metrics(step)) and self.best_metric in metrics]
    return min(scored)[1] if scored else None

  def save(self, step: int, state: Any, config: ml_collections.ConfigDict,
           data_info: dict[str, Any], metrics: dict[str, float] | None = None,
           skipped_batches: list[list[int]] = ()) -> None:
    """Starts an asynchronous save of ``state`` as checkpoint ``step``.

    Args:
      step: the checkpoint's step.
      state: the train state.
      config: the run's config, saved in ``meta``.
      data_info: the data's description (``dataclasses.asdict(DatasetInfo)``).
      metrics: from periodic evaluation, to rank it for the best-N policy.
      skipped_batches: ``[first, end)`` ranges of data batch positions that NaN
        rollbacks skipped (see the trainer), saved in ``meta``.
    """
    meta = {"config": configs.to_json_dict(config), "data_info": data_info,
            "skipped_batches": [list(span) for span in skipped_batches]}
    # Orbax finishes the previous save before it starts this one, so one step is pending.
    self.wait_until_finished()
    self._saving = step
    self.manager.save(step, metrics=metrics, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def wait_until_finished(self) -> None:
    """Waits for the pending asynchronous save, if any.

    Raises:
      CheckpointSaveError: the save failed (a full disk, an I/O error); raised
        once, later calls return.
    """
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001 - TensorStore reports I/O errors as ValueError.
      if self._failed:
        return  # Orbax raises a failed save's error at every wait: it was reported.
      self._failed = True
      # Without the chain: TensorStore's and Orbax's frames say nothing more than the message.
      raise CheckpointSaveError(self._save_failure(e)) from None

  def _save_failure(self, error: Exception) -> str:
    """What failed in the save of ``self._saving``, what is kept and what to do."""
    message = str(error)
    path = re.search(r'Failed writing: "([^"]+)"', message)
    reason = re.search(r": ([^:\[]+?) \[os_error_code='\d+'\]", message)
    self.manager.reload()
    kept = [step for step in self.all_steps() if step != self._saving]
    return (f"saving checkpoint {self._saving} in {self.directory} failed: "
            + (f"{reason.group(1)} (writing {path.group(1)})" if reason and path
               else _summary(error))
            + (f". The newest complete checkpoint, {max(kept)}, is kept" if kept else
               ". No checkpoint was saved before")
            + "; the next start deletes the unfinished save. Free disk space (or fix the I/O "
              "error) and run the same command to resume.")

  def close(self) -> None:
    """Waits for pending saves and releases the manager.

    Raises:
      CheckpointSaveError: as `wait_until_finished`.
    """
    self.wait_until_finished()
    if not self._failed:
      self.manager.close()


class _DropOrbaxTracebacks(std_logging.Filter):
  """Keeps the error records of Orbax (and of its asyncio tasks) to their message."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    orbax = f"{os.sep}orbax{os.sep}"
    if record.levelno >= std_logging.ERROR and (orbax in record.pathname
                                                or orbax in str(record.msg)):
      record.exc_info = record.exc_text = None
    return True


_ORBAX_TRACEBACKS = _DropOrbaxTracebacks()


def _quiet_failed_saves() -> None:
  """Keeps a failed save (a full disk) to one message: gen_jax's `CheckpointSaveError`.

  Otherwise its error comes with a traceback from each of Orbax's threads that
  waits on it and from each of its asyncio tasks, and the TensorStore writes still
  running complete into event loops Orbax has closed, each printing an
  "Event loop is closed" traceback: about a hundred for one full disk.
  """
  for logger in (logging.get_absl_logger(), std_logging.getLogger("asyncio")):
    if _ORBAX_TRACEBACKS not in logger.filters:
      logger.addFilter(_ORBAX_TRACEBACKS)
  if getattr(sys.unraisablehook, "__wrapped__", None) is None:
    previous = sys.unraisablehook

    def hook(unraisable):
      if not (isinstance(unraisable.exc_value, RuntimeError)
              and str(unraisable.exc_value) == "Event loop is closed"):
        previous(unraisable)

    hook.__wrapped__ = previous
    sys.unraisablehook = hook


def _differences(saved: dict[str, Any], current: dict[str, Any],
                 prefix: str = "") -> list[tuple[str, Any, Any]]:
  """``[(dotted key, saved value, current value)]`` where two config dicts differ."""
  changed = []
  for key in sorted(saved.keys() | current.keys()):
    old, new = saved.get(key), current.get(key)
    if isinstance(old, dict) and isinstance(new, dict):
      changed += _differences(old, new, f"{prefix}{key}.")
    elif old != new:
      changed.append((f"{prefix}{key}", old, new))
  return changed


def _sha256(path: epath.Path) -> str:
  with path.open("rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def checksums(step_dir: epath.Path) -> dict[str, str]:
  """``{path relative to step_dir: sha256}`` of the files of a checkpoint's items."""
  return {str((folder / name).relative_to(step_dir)): _sha256(folder / name)
          for item in ITEMS for folder, _, names in (step_dir / item).walk() for name in names}


def abstract_with_sharding(abstract: Any, sharding: jax.sharding.Sharding) -> Any:
  """``ShapeDtypeStruct``s of ``abstract`` placed with ``sharding``."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                      abstract)


def _on_every_process(ok: bool) -> bool:
  """Whether ``ok`` holds on every process of the run (all take the same branch)."""
  if jax.process_count() == 1:
    return ok
  return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))


def _summary(error: Exception) -> str:
  """``'Type: message'`` of an error, without the spec that TensorStore's errors append."""
  message = str(error).strip().split(" See full TensorStore details", 1)[0]
  lines = message.splitlines()
  return f"{type(error).__name__}: {lines[0][:300] if lines else ''}"
