"""The ``gen-jax`` command.

  gen-jax train  --config experiments/<model>/<dataset>.py[:smoke] --workdir DIR [--config.KEY=VALUE ...]
  gen-jax sample --workdir DIR --num N --out FILE.npz [--grid FILE.png] [--seed S] [--step K] [--noema]
  gen-jax eval   --workdir DIR --metrics fid,kid,is,pr --num N --reference DATASET:SPLIT
                 --features classifier:WORKDIR|vgg16|alexnet|inception:WEIGHTS [--step K] [--seed S]
  gen-jax eval   --samples FILE.npz --metrics ... --reference DATASET:SPLIT --features ...
                 [--resize_reference]
  gen-jax eval   --samples PAIRS.npz --metrics psnr,ssim,lpips [--y_channel] [--crop_border N]

Running the same ``train`` command again resumes from the newest checkpoint.
SIGTERM or SIGINT makes ``train`` save a checkpoint and exit with status 75
(``trainer.PREEMPTED_EXIT_CODE``); one that arrives before training starts
exits with 75 too, with nothing to save. Other failures exit with 1, usage
errors with 2.
Multi-process runs pass ``--distributed`` (auto-detected clusters such as
Cloud TPU) or ``--coordinator_address``, ``--num_processes`` and ``--process_id``.
"""

import functools
import json
import os
import signal
import sys

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from gen_jax.train.errors import CheckpointSaveError, ConfigChangedError

FLAGS = flags.FLAGS

config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. experiments/dcgan/mnist.py:smoke.",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.DEFINE_integer("num", None, "sample: number of images (default 64); eval: number of "
                     "samples and most reference images (default 10000).")
flags.DEFINE_string("out", None, "sample: output .npz file; eval --samples: output JSON.")
flags.DEFINE_string("grid", None, "sample: also write a PNG grid of (up to 256) samples.")
flags.DEFINE_integer("seed", 0, "sample, eval: random seed.")
flags.DEFINE_integer("step", None, "sample, eval: checkpoint step (default: newest).")
flags.DEFINE_float("truncation", None, "sample (GANs): truncation trick, z drawn from N(0, I) "
                   "truncated to [-t, t]; 0 turns it off (default: the config's).")
flags.DEFINE_bool("ema", True, "sample, eval: the EMA generator when the run keeps one; "
                  "--noema: the trained generator, with its running statistics.")
flags.DEFINE_string("vary_code", None, "sample (InfoGAN): vary this code (e.g. categorical0, "
                    "continuous1) along each of --num rows, holding the other latents.")
flags.DEFINE_string("samples", None, "eval: an .npz of uint8 images made elsewhere.")
flags.DEFINE_string("metrics", "fid,kid", "eval: comma-separated fid, kid, is, pr "
                    "(accuracy for a classifier run).")
flags.DEFINE_string("reference", None, "eval: DATASET:SPLIT, e.g. mnist:test, npz:PATH:test "
                    "(default: the run's dataset, test split).")
flags.DEFINE_string("features", None,
                    "eval: classifier:WORKDIR, vgg16, alexnet or inception:WEIGHTS.")
flags.DEFINE_integer("batch_size", 250, "eval: images per feature-network call.")
flags.DEFINE_integer("crop_border", 0, "eval psnr/ssim: border pixels cut on every side.")
flags.DEFINE_bool("y_channel", False, "eval psnr/ssim: on the Y channel of YCbCr (BT.601).")
flags.DEFINE_bool("resize_reference", False, "eval: allow a --reference whose images are of "
                  "another resolution or channel count than the samples (not the run's own "
                  "dataset): they are resized and converted to the samples' shape, and the "
                  "protocol records both shapes.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (auto-detect).")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for multi-process.")
flags.DEFINE_integer("num_processes", None, "Number of processes, for multi-process.")
flags.DEFINE_integer("process_id", None, "This process's index, for multi-process.")


def _usage(message: str) -> None:
  print(f"gen-jax: {message}\n{__doc__}", file=sys.stderr)
  sys.exit(2)


def _require(command: str, *names: str) -> None:
  missing = [f"--{n}" for n in names if getattr(FLAGS, n) is None]
  if missing:
    _usage(f"{command} needs {' '.join(missing)}")


def _num(default: int | None) -> int | None:
  """``--num``, or ``default`` when it is not given; usage error if not positive."""
  if FLAGS.num is None:
    return default
  if FLAGS.num <= 0:
    _usage(f"--num must be a positive number of images, got {FLAGS.num}")
  return FLAGS.num


def _require_output_dirs(*names: str) -> None:
  """Usage error, before any work, if the directory of an output flag does not exist."""
  for name in names:
    path = getattr(FLAGS, name)
    directory = os.path.dirname(path) if path else ""
    if directory and not os.path.isdir(directory):
      _usage(f"--{name}={path}: the directory {directory} does not exist; create it first")


# How ``train`` exits on SIGTERM or SIGINT before the trainer's own handlers are in place
# (importing, building the model, restoring): as after a save, so a scheduler requeues it.
_EARLY_STOP_EXIT_CODE = 75  # trainer.PREEMPTED_EXIT_CODE, without importing the trainer.


def _stop_before_training(signum: int, frame) -> None:
  del frame
  print(f"gen-jax train: {signal.Signals(signum).name} before training started: nothing to "
        f"save yet; run the same command to start", file=sys.stderr)
  sys.exit(_EARLY_STOP_EXIT_CODE)


def _train() -> None:
  from gen_jax.train import trainer  # Deferred: importing TF/JAX takes seconds.
  _require("train", "config", "workdir")
  try:
    trainer.train(FLAGS.config, FLAGS.workdir)
  except trainer.TrainingPreempted as e:
    logging.warning("%s", e)
    sys.exit(trainer.PREEMPTED_EXIT_CODE)
  except (CheckpointSaveError, ConfigChangedError) as e:  # The message says it all.
    logging.error("%s", e)
    sys.exit(1)


def _sample() -> None:
  from gen_jax import images, sample
  _require("sample", "workdir", "out")
  _require_output_dirs("out", "grid")
  row_length = None
  if FLAGS.vary_code:
    out = sample.vary_code(FLAGS.workdir, FLAGS.vary_code, _num(10), seed=FLAGS.seed,
                           step=FLAGS.step, ema=FLAGS.ema)
    row_length = int(out["num_values"])
  else:
    out = sample.sample(FLAGS.workdir, _num(64), seed=FLAGS.seed, step=FLAGS.step,
                        truncation=FLAGS.truncation, ema=FLAGS.ema)
  with open(FLAGS.out, "wb") as f:
    np.savez(f, **out)
  logging.info("wrote %s: images %s", FLAGS.out, out["images"].shape)
  if FLAGS.grid:
    images.save_png(FLAGS.grid, images.make_grid(out["images"][:256], row_length))


def _eval() -> None:
  from gen_jax.evaluation import evaluate
  if bool(FLAGS.workdir) == bool(FLAGS.samples):
    _usage("eval needs exactly one of --workdir (a run) or --samples (an .npz of images)")
  _require_output_dirs("out")
  common = dict(metrics=FLAGS.metrics, reference=FLAGS.reference, features=FLAGS.features,
                seed=FLAGS.seed, batch_size=FLAGS.batch_size,
                resize_reference=FLAGS.resize_reference)
  if FLAGS.workdir:
    result = evaluate.evaluate_run(FLAGS.workdir, num=_num(10_000), step=FLAGS.step,
                                   ema=FLAGS.ema, **common)
    _write_scalars(FLAGS.workdir, result)
  else:
    result = evaluate.evaluate_file(FLAGS.samples, num=_num(None), out=FLAGS.out,
                                    crop_border=FLAGS.crop_border, y_channel=FLAGS.y_channel,
                                    **common)
  print(json.dumps(result["protocol"], indent=2, sort_keys=True))
  for name, value in result["metrics"].items():
    print(f"{name}={value:.6g}")
  print(f"written to {result['path']}")


def _write_scalars(workdir: str, result: dict) -> None:
  """The figures as TensorBoard scalars of the run, under ``eval/<features>/``."""
  from clu import metric_writers
  kind = result["protocol"].get("features", {}).get("features", "classifier")
  writer = metric_writers.create_default_writer(workdir, just_logging=False)
  writer.write_scalars(result["step"], {f"eval/{kind}/{k}": v
                                        for k, v in result["metrics"].items()})
  writer.close()


def main(command: str, argv: list[str]) -> None:
  if len(argv) > 1:
    _usage(f"unexpected arguments {argv[1:]}")
  from gen_jax import xla_cpu
  xla_cpu.configure()  # Before anything starts the JAX backend.
  if FLAGS.distributed or FLAGS.num_processes:
    from gen_jax.train import parallel
    parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes,
                                    FLAGS.process_id)
  COMMANDS[command]()


COMMANDS = {"train": _train, "sample": _sample, "eval": _eval}


def run() -> None:
  """Console entry point: ``gen-jax COMMAND [flags]``."""
  if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
    _usage(f"the first argument must be one of {', '.join(COMMANDS)}")
  if sys.argv[1] == "train":
    for signum in (signal.SIGTERM, signal.SIGINT):  # Until the trainer installs its own.
      signal.signal(signum, _stop_before_training)
  app.run(functools.partial(main, sys.argv[1]), argv=[sys.argv[0], *sys.argv[2:]])


if __name__ == "__main__":
  run()
