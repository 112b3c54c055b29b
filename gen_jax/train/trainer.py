"""The host loop: a pure, jitted ``train_step`` driven by an impure loop.

The loop owns everything with side effects: the input pipeline, checkpoints,
metric writers, sample grids, and what a run survives:

* SIGTERM or SIGINT: the loop finishes the step, saves a checkpoint, flushes
  the writers and raises `TrainingPreempted` (``gen-jax train`` then exits with
  `PREEMPTED_EXIT_CODE`); the same command resumes. All processes of a
  multi-process run stop at the same step (`StopSignals`).
* NaN or Inf, in the metrics or anywhere in the train state, is looked for
  whenever the loop logs, draws samples, evaluates or saves, so a non-finite
  state is never saved. ``config.on_nan='stop'`` raises `FloatingPointError`
  naming the step and the metric; ``'rollback'`` restores the newest
  checkpoint and skips the data batches read since it (at most
  ``config.max_nan_rollbacks`` times in a run).
* Data position: step ``s`` reads data batch ``s + skipped``, where ``skipped``
  counts the batches skipped by rollbacks before it. Each checkpoint records
  the skipped ``[first, end)`` ranges (``meta['skipped_batches']``), so a
  resumed run reads exactly what an uninterrupted one reads.

``Method.train_step`` stays a pure function of ``(state, batch)``.
"""

import dataclasses
import signal
import threading

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers, periodic_actions
from etils import epath

from gen_jax import configs, data, images, methods
from gen_jax.evaluation import evaluate as evaluation
from gen_jax.methods.base import Method
from gen_jax.train import parallel
from gen_jax.train.checkpoint import Checkpoints, abstract_with_sharding
from gen_jax.train.state import TrainState
from gen_jax.train.workdir_lock import WorkdirLock

# How ``gen-jax train`` exits when SIGTERM or SIGINT stopped it after a checkpoint:
# sysexits.h's EX_TEMPFAIL, "a temporary failure; the user is invited to retry".
PREEMPTED_EXIT_CODE = 75


class TrainingPreempted(Exception):
  """SIGTERM or SIGINT stopped training, after a checkpoint of ``step`` was saved."""

  def __init__(self, step: int, reason: str, directory: epath.Path):
    super().__init__(f"training stopped at step {step} by {reason}, after saving checkpoint "
                     f"{step} in {directory}; run the same command to resume")
    self.step = step


class StopSignals:
  """SIGTERM and SIGINT as a request to stop that every process honours at one step.

  Inside the ``with`` block the handlers only record the signal; the loop calls
  `agreed` once per step. With one process that is the recorded flag. With
  several, each step all-reduces (max) the processes' flags on the devices, and
  `agreed` returns the reduction dispatched at the previous step, which is
  complete by then: every process gets the same answer at the same step, one
  step after the signal, without waiting on the step just dispatched, for the
  price of a one-integer collective per step. (JAX's
  preemption service, ``multihost_utils.reached_preemption_sync_point``, agrees
  without a collective, but only exists after ``jax.distributed.initialize``
  and only hears a SIGTERM caught by its own C++ handler, never a Ctrl-C; one
  mechanism for both signals, one process or many, is simpler to trust.)
  On exit the previous handlers are reinstated.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self, mesh: jax.sharding.Mesh):
    self.received: str | None = None  # The first signal this process received.
    self._mesh = mesh
    self._previous = {}
    self._pending: jax.Array | None = None
    self._any = jax.jit(jnp.max, out_shardings=parallel.replicated(mesh))

  def __enter__(self) -> "StopSignals":
    if threading.current_thread() is not threading.main_thread():
      logging.warning("training outside the main thread, where signal handlers cannot be "
                      "installed: SIGTERM and SIGINT will stop it without a checkpoint")
      return self
    for signum in self.SIGNALS:
      self._previous[signum] = signal.signal(signum, self._record)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      # None: a handler installed outside Python (JAX's preemption notifier in
      # multi-process runs), which Python cannot reinstate; the default is closest.
      signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    self._previous = {}

  def _record(self, signum: int, frame) -> None:
    del frame
    self.received = self.received or signal.Signals(signum).name

  @property
  def reason(self) -> str:
    return self.received or "a signal to another process of the run"

  def agreed(self) -> bool:
    """Whether to stop after this step; the same on every process at every call."""
    if jax.process_count() == 1:
      return self.received is not None
    flags = np.full(len(self._mesh.local_devices), self.received is not None, np.int32)
    reduced = self._any(jax.make_array_from_process_local_data(
        parallel.batch_sharding(self._mesh), flags))
    previous, self._pending = self._pending, reduced
    return previous is not None and bool(previous)


def _finite_parts(state: TrainState) -> dict[str, jax.Array]:
  """``{'params/generator': no NaN or Inf in it, ...}`` over the float parts of ``state``."""
  parts = {}
  for field in ("params", "ema_params", "collections", "opt_state"):
    for network, tree in getattr(state, field).items():
      checks = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree)
                if jnp.issubdtype(x.dtype, jnp.inexact)]
      if checks:
        parts[f"{field}/{network}"] = jnp.stack(checks).all()
  return parts


def _divergence(first_step: int, history: list[dict[str, np.ndarray]],
                finite_parts: dict[str, bool], step: int) -> str | None:
  """What went non-finite, or None.

  Args:
    first_step: the step whose metrics are ``history[0]``.
    history: each step's metrics since the last report, on the host.
    finite_parts: `_finite_parts` of the state after ``step``.
    step: the steps taken.

  Returns:
    The first step with a NaN or Inf metric and those metrics; else the parts of
    the state that hold one; else None.
  """
  for offset, metrics in enumerate(history):
    bad = sorted(k for k, v in metrics.items() if not np.all(np.isfinite(v)))
    if bad:
      values = ", ".join(f"{k}={np.mean(metrics[k])}" for k in bad)
      return f"non-finite {values} at step {first_step + offset}"
  bad = sorted(name for name, finite in finite_parts.items() if not finite)
  if bad:
    return f"NaN or Inf in {', '.join(bad)} of the train state at step {step}"
  return None


def _skipped_count(skipped_batches: list[list[int]]) -> int:
  return sum(end - first for first, end in skipped_batches)


def jit_train_step(method: Method, mesh: jax.sharding.Mesh, state_sharding):
  """``method.train_step`` compiled for ``mesh``: batch sharded on ``'data'``, state
  as ``state_sharding``, the old state donated."""
  return jax.jit(method.train_step,
                 in_shardings=(state_sharding, parallel.batch_sharding(mesh)),
                 out_shardings=(state_sharding, parallel.replicated(mesh)),
                 donate_argnums=0)


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (or resumes training of) the model of ``config`` in ``workdir``.

  Returns:
    The final train state.

  Raises:
    TrainingPreempted: SIGTERM or SIGINT stopped the run after a checkpoint.
    FloatingPointError: a NaN or Inf that ``config.on_nan`` does not recover from.
    WorkdirInUseError: another run holds the workdir.
  """
  # ---- Checks and set-up: everything that can fail does so before compiling.
  configs.validate(config)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  if config.batch_size % jax.process_count():
    raise ValueError(f"batch_size {config.batch_size} must be a multiple of the number of "
                     f"processes ({jax.process_count()})")
  spec = configs.data_spec(config)
  info = data.describe(spec)
  method = methods.build(config, info)
  # One run per workdir: a second one stops here, before it writes anything.
  with (WorkdirLock(workdir, process_index=jax.process_index()),
        StopSignals(mesh) as stop_signals):
    return _train_locked(config, epath.Path(workdir), mesh, spec, info, method, stop_signals)


def _train_locked(config: ml_collections.ConfigDict, workdir: epath.Path,
                  mesh: jax.sharding.Mesh, spec: data.DataSpec, info: data.DatasetInfo,
                  method: Method, stop_signals: StopSignals) -> TrainState:
  """``train`` after its checks, while this run holds the workdir's lock."""
  workdir.mkdir(parents=True, exist_ok=True)
  is_chief = jax.process_index() == 0

  # ---- Train state: restored from the newest readable checkpoint, or initialised in place.
  replicated = parallel.replicated(mesh)
  rng = jax.random.PRNGKey(config.seed)
  abstract_state = abstract_with_sharding(jax.eval_shape(method.init, rng), replicated)
  state_sharding = jax.tree.map(lambda _: replicated, abstract_state)
  init = jax.jit(method.init, out_shardings=state_sharding)
  evaluating = config.eval.every_steps > 0 and method.generative
  if evaluating:
    eval_space = evaluation.prepare_periodic(config, info.image_shape)
  checkpoints = Checkpoints(workdir, max_to_keep=config.keep_checkpoints,
                            best_metric=config.eval.best_metric if evaluating else "",
                            keep_best=config.eval.keep_best)
  restored = checkpoints.restore_newest(abstract_state, config)
  if restored is None:
    state, skipped_batches = init(rng), []
  else:
    _, state, meta = restored
    skipped_batches = meta.get("skipped_batches", [])
  if is_chief:  # Only now: a refused config must not overwrite the workdir's config.json.
    configs.write_json(config, workdir)
  start_step = int(jax.device_get(state.step))
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  logging.info("%s: %s parameters, starting at step %d of %d", config.model.name,
               f"{num_params:,}", start_step, config.num_train_steps)
  if start_step >= config.num_train_steps:
    logging.warning("nothing to train: the run in %s is at step %d and config.num_train_steps is "
                    "%d; raise --config.num_train_steps to train further", workdir, start_step,
                    config.num_train_steps)
  if skipped_batches:
    logging.info("NaN rollbacks skipped the data batches %s", skipped_batches)

  # ---- Steps: compiled once, with donation of the old state.
  train_step = jit_train_step(method, mesh, state_sharding)
  finite_parts = jax.jit(_finite_parts, out_shardings=replicated)
  generate = jax.jit(method.generate, out_shardings=replicated)
  grid_rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5A3)  # same z every grid
  grid_labels = method.sample_labels(config.num_grid_images)

  # ---- Host side: data, writers, progress.
  def batches_from(step: int):
    return data.train_batches(spec, global_batch_size=config.batch_size, seed=config.seed,
                              start_step=step + _skipped_count(skipped_batches),
                              process_index=jax.process_index(),
                              process_count=jax.process_count())

  def report_progress():
    return periodic_actions.ReportProgress(num_train_steps=config.num_train_steps,
                                           writer=writer, every_secs=30)

  writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
  if start_step == 0:
    writer.write_hparams(_flatten(configs.to_json_dict(config)))
  data_info = dataclasses.asdict(info)

  def write_grid(step: int, variables) -> None:
    samples = images.to_uint8(jax.device_get(generate(variables, grid_rng, grid_labels)))
    grid = images.make_grid(samples)
    writer.write_images(step, {"samples": grid[None]})
    if is_chief:
      images.save_png(workdir / f"samples_{step:08d}.png", grid)

  def evaluate(step: int, variables) -> dict[str, float]:
    result = evaluation.evaluate_state(config, method, state, variables, step, eval_space,
                                       generate)
    kind = result["protocol"]["features"]["features"]
    writer.write_scalars(step, {f"eval/{kind}/{k}": v for k, v in result["metrics"].items()})
    if is_chief:
      evaluation.write_result(evaluation.result_path(
          workdir, step, config.eval.features, evaluation.config_reference(config)), result)
    return result["metrics"]

  def roll_back(problem: str, step: int) -> tuple[TrainState, int]:
    """The newest checkpoint's state and step, past the batches read since; or raises."""
    checkpoints.wait_until_finished()
    good = checkpoints.latest_step()
    kept = ("no checkpoint was saved yet" if good is None else
            f"checkpoint {good}, the newest, is kept as it was")
    if config.on_nan == "stop":
      raise FloatingPointError(
          f"training diverged: {problem}. Stopped; {kept}. Lower the learning rates, or set "
          f"--config.on_nan=rollback to restart from the newest checkpoint without the data "
          f"batches read since")
    if len(skipped_batches) >= config.max_nan_rollbacks:
      raise FloatingPointError(
          f"training diverged: {problem}, after {len(skipped_batches)} rollbacks "
          f"(config.max_nan_rollbacks={config.max_nan_rollbacks}; skipped data batches "
          f"{skipped_batches}). Stopped; {kept}")
    good = good or 0
    offset = _skipped_count(skipped_batches)
    skipped_batches.append([good + offset, step + offset])
    logging.warning("training diverged: %s. Rolling back to step %d and skipping data batches "
                    "[%d, %d) (rollback %d of at most %d)", problem, good, good + offset,
                    step + offset, len(skipped_batches), config.max_nan_rollbacks)
    restored = init(rng) if good == 0 else checkpoints.restore(good, abstract_state)
    return restored, good

  step = start_step
  batches = batches_from(step)
  progress = report_progress()
  history = []  # Each step's metrics since the last report.
  try:
    while step < config.num_train_steps:
      with jax.profiler.StepTraceAnnotation("train", step_num=step):
        state, metrics = train_step(state, parallel.global_batch(next(batches), mesh))
      history.append(metrics)
      step += 1
      progress(step)
      stopping = stop_signals.agreed()
      last = step == config.num_train_steps
      logging_now = step % config.log_every_steps == 0 or last or stopping
      sampling = method.generative and (step % config.sample_every_steps == 0 or last)
      evaluating_now = evaluating and (step % config.eval.every_steps == 0 or last)
      # Evaluated steps are always saved, so that the best one can be kept.
      saving = step % config.checkpoint_every_steps == 0 or last or stopping or evaluating_now
      if not (logging_now or sampling or evaluating_now or saving):
        continue
      # The state is about to be reported, drawn from, evaluated or saved: check it first.
      history = jax.device_get(history)  # One transfer for all steps and metrics.
      problem = _divergence(step - len(history) + 1, history,
                            jax.device_get(finite_parts(state)), step)
      if problem:
        state, step = roll_back(problem, step)
        batches, progress, history = batches_from(step), report_progress(), []
        continue
      if logging_now:
        writer.write_scalars(step, {k: float(np.mean([m[k] for m in history]))
                                    for k in history[0]})
        history = []
      # Measured once for the grid and the evaluation (standing statistics cost forward passes).
      variables = method.sampling_variables(state) if sampling or evaluating_now else None
      if sampling:
        write_grid(step, variables)
      scores = evaluate(step, variables) if evaluating_now else None
      if saving:
        checkpoints.save(step, state, config, data_info, metrics=scores,
                         skipped_batches=skipped_batches)
      if stopping and not last:
        raise TrainingPreempted(step, stop_signals.reason, checkpoints.directory)
  finally:
    checkpoints.close()
    writer.flush()
  return state


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
  """Nested config dict -> ``{'model.name': ...}`` with scalar values for hparams."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
  return flat
