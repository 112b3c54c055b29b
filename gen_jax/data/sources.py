"""Random-access image sources: one split of one dataset, read by example index.

Every dataset reaches the input pipeline as a `Source`: it knows its size and
image shape, and `Source.read` returns the examples at given indices as numpy
arrays. The pipeline decides which indices to read (see `pipeline.py`), so
sources carry no state about order or position.

Dataset names (`get_source`, `DATASETS`):

* ``mnist``, ``fashion_mnist``, ``cifar10``, ``celeb_a``, ``tfds:NAME``: a
  TensorFlow Datasets catalog dataset through ``tfds.data_source`` (ArrayRecord
  random access; downloads and prepares it under ``TFDS_DATA_DIR`` or
  ``~/tensorflow_datasets`` on first use, which needs network access).
* ``npz:PATH``: a numpy archive with ``x_train``, ``y_train``, ``x_test``,
  ``y_test``; ``x`` uint8 [N, H, W] or [N, H, W, C], ``y`` integer labels.
* ``folder:PATH``: images laid out as ``PATH/<split>/<class>/<image>``, where
  PATH is a directory or a tar archive (``.tar.gz``, ``.tgz``, ``.tar``; one
  top-level folder inside the archive is allowed). Archives are read into
  memory once per process, so they suit small datasets such as CIFAR-10 (20 MB);
  extract large ones and point at the directory instead.
* ``digits``: scikit-learn's 8x8 handwritten digits (1797 images), embedded so
  that examples run offline. It has no official split: the first 1500 images
  are ``train`` and the remaining 297 ``test``.
"""

import abc
import collections
import dataclasses
import functools
import io
import os
import posixpath
import tarfile
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from absl import logging
from PIL import Image

from gen_jax import npz

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# PIL modes without colour; a folder made only of these is a 1-channel dataset.
_GRAY_MODES = frozenset({"1", "L", "LA"})
# PIL modes of more than 8 bits per pixel: PIL's conversion to 8 bits clips
# them instead of scaling, so they are refused rather than turned to garbage.
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_DIGITS_TRAIN = 1500


class Source(abc.ABC):
  """One split of a dataset, readable by example index.

  Attributes:
    name: the dataset as the user wrote it (e.g. ``folder:/data/faces``), for messages.
    num_examples: number of examples N in the split; indices are 0..N-1.
    image_shape: (H, W, C) of every stored image, or None if sizes vary.
    channels: C, the channel count `read` returns (1 or 3).
    num_classes: number of label values, 0 for an unlabelled dataset.
    class_names: a name per label value, or None if the dataset has none.
    example_sizes: int [N, 2], the (H, W) of each example when known without
      decoding it (images in a folder), else None.
    unused_classes: label values in [0, num_classes) that no example has, where
      the class count comes from the largest label (npz files): a gap such as an
      'ignore' label 255 among classes 0..9.
  """

  name: str
  num_examples: int
  image_shape: tuple[int, int, int] | None
  channels: int
  num_classes: int
  class_names: tuple[str, ...] | None = None
  example_sizes: np.ndarray | None = None
  unused_classes: tuple[int, ...] = ()

  @abc.abstractmethod
  def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reads examples.

    Args:
      indices: int [n], each in [0, num_examples).

    Returns:
      (images uint8 [n, H, W, C], labels int32 [n]). When `image_shape` is None
      the images of one call must share a size, so callers read them one by one.
    """

  def example_name(self, index: int) -> str:
    """How error messages refer to example `index`."""
    return f"example {index} of {self.name}"


@dataclasses.dataclass(eq=False)
class ArraySource(Source):
  """A split held in memory as arrays (npz files, digits).

  Attributes:
    name: see `Source`.
    images: uint8 [N, H, W, C].
    labels: int32 [N].
    num_classes: see `Source`.
    class_names: see `Source`.
    unused_classes: see `Source`.
  """

  name: str
  images: np.ndarray
  labels: np.ndarray
  num_classes: int
  class_names: tuple[str, ...] | None = None
  unused_classes: tuple[int, ...] = ()

  def __post_init__(self):
    self.num_examples = len(self.images)
    self.image_shape = self.images.shape[1:]
    self.channels = self.image_shape[-1]

  def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return self.images[indices], self.labels[indices]


def _fingerprint(path: str) -> tuple:
  """A cheap identity of a file, or of a split/class directory tree, for caches.

  Adding, removing or renaming images changes the mtime of their class folder,
  so a changed dataset is read again instead of being served from the cache.
  """
  if not os.path.isdir(path):
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size)
  level = dirs = [path]
  for _ in range(2):  # The split and class folders.
    level = [e.path for d in level for e in os.scandir(d) if e.is_dir()]
    dirs = dirs + level
  return tuple(sorted((d, os.stat(d).st_mtime_ns) for d in dirs))


def _splits_error(name: str, split: str, present: Iterable[str]) -> ValueError:
  return ValueError(f"split {split!r} not found in {name}; its splits are {sorted(present)}")


# ----------------------------------------------------------------------------- npz


@functools.lru_cache(maxsize=2)
def _load_npz(path: str, fingerprint: tuple) -> dict[str, np.ndarray]:
  del fingerprint  # Only part of the cache key.
  return npz.load(path, "dataset")


def npz_source(path: str, split: str) -> ArraySource:
  """`npz:PATH`: arrays ``x_<split>`` (uint8 [N, H, W(, C)]) and ``y_<split>``."""
  name = f"npz:{path}"
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{name}: no such file")
  arrays = _load_npz(os.path.abspath(path), _fingerprint(path))
  splits = [k[2:] for k in arrays if k.startswith("x_") and f"y_{k[2:]}" in arrays]
  if split not in splits:
    raise _splits_error(name, split, splits)
  images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
  if images.dtype != np.uint8 or images.ndim not in (3, 4):
    raise ValueError(f"{name}: x_{split} must be uint8 [N, H, W] or [N, H, W, C], "
                     f"got {images.dtype} {images.shape}")
  if images.ndim == 3:
    images = images[..., None]
  for key in (f"y_{s}" for s in splits):
    if arrays[key].dtype.kind not in "iu":
      # A cast would truncate 0.7 to 0: the labels were not meant as these class ids.
      raise ValueError(f"{name}: {key} must hold integer class ids, got {arrays[key].dtype} "
                       f"(e.g. {arrays[key].reshape(-1)[:3].tolist()}); store the class of "
                       f"each image as an integer in [0, number of classes)")
  if labels.size != len(images) or labels.min(initial=0) < 0:
    raise ValueError(f"{name}: y_{split} must hold one class id >= 0 per image of x_{split} "
                     f"{images.shape}, got {labels.dtype} {labels.shape} with minimum "
                     f"{labels.min(initial=0)}")
  # Class count from every split, so that label ids mean the same in each.
  ids = np.unique(np.concatenate([arrays[f"y_{s}"].reshape(-1) for s in splits]))
  num_classes = 1 + int(ids.max(initial=0))
  unused = tuple(int(i) for i in np.setdiff1d(np.arange(num_classes), ids))
  return ArraySource(name, images, labels.reshape(-1).astype(np.int32), num_classes,
                     unused_classes=unused)


# ----------------------------------------------------------------------------- digits


def digits_source(split: str) -> ArraySource:
  """`digits`: scikit-learn's 8x8 digits scaled to uint8; train = first 1500."""
  from sklearn.datasets import load_digits  # Deferred: sklearn is slow to import.

  splits = {"train": slice(None, _DIGITS_TRAIN), "test": slice(_DIGITS_TRAIN, None)}
  if split not in splits:
    raise _splits_error("digits", split, splits)
  digits = load_digits()
  images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
  return ArraySource("digits", images[splits[split]], digits.target[splits[split]].astype(np.int32),
                     num_classes=10, class_names=tuple(str(d) for d in range(10)))


# ----------------------------------------------------------------------------- folder


@functools.lru_cache(maxsize=2)
def _read_archive(path: str, fingerprint: tuple) -> dict[str, bytes]:
  """The image members of a tar archive, by normalised member name."""
  del fingerprint  # Only part of the cache key.
  try:
    with tarfile.open(path) as archive:
      return {posixpath.normpath(m.name): archive.extractfile(m).read() for m in archive
              if m.isfile() and os.path.splitext(m.name)[1].lower() in IMAGE_EXTENSIONS}
  except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
    raise ValueError(f"folder:{path}: the archive cannot be read to its end ({type(e).__name__}: "
                     f"{e}); it is probably truncated or damaged: copy it again") from e


def _layout(paths: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
  """Groups ``split/class/file`` paths by split: {split: [(class, path)]}.

  A single folder enclosing everything (as in ``cifar10/train/cat/1.jpg``) is
  looked through; hidden files and images at other depths are ignored.
  """
  parts = {p: p.split("/") for p in paths if not any(s.startswith(".") for s in p.split("/"))}
  if len({p[0] for p in parts.values()}) == 1 and all(len(p) == 4 for p in parts.values()):
    parts = {path: p[1:] for path, p in parts.items()}
  splits: dict[str, list[tuple[str, str]]] = {}
  for path, p in parts.items():
    if len(p) == 3:
      splits.setdefault(p[0], []).append((p[1], path))
  return splits


class FolderSource(Source):
  """`folder:PATH`: images in ``PATH/<split>/<class>/<image>`` (directory or tar).

  Classes are the sorted class-folder names found in any split, so a label id
  means the same class in every split. Examples are ordered by (class, path).
  Construction reads every image header (not the pixels) to learn the sizes and
  channel count: the dataset is 1-channel if all images are grayscale and RGB
  otherwise. Images of other modes are converted to that one (grayscale to RGB,
  palette and CMYK to RGB, alpha channels dropped), and a warning counts them.
  Images of more than 8 bits per channel (16-bit PNGs, float TIFFs) are refused,
  as is a file that cannot be decoded: the error names the file.
  """

  def __init__(self, path: str, split: str, fingerprint: tuple):
    self.name = f"folder:{path}"
    if os.path.isdir(path):
      paths = [posixpath.join(*os.path.relpath(os.path.join(d, f), path).split(os.sep))
               for d, _, files in os.walk(path, followlinks=True) for f in files
               if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
      self._open = lambda rel: os.path.join(path, rel)
    else:
      members = _read_archive(path, fingerprint)
      paths = list(members)
      self._open = lambda rel: io.BytesIO(members[rel])
    layout = _layout(paths)
    if not layout:
      raise ValueError(f"{self.name} contains no images laid out as <split>/<class>/<image> "
                       f"(extensions {sorted(IMAGE_EXTENSIONS)})")
    if split not in layout:
      raise ValueError(f"no images for split {split!r} in {self.name} (expected "
                       f"{path}/{split}/<class>/<image>); the splits with images are "
                       f"{sorted(layout)}")
    self.class_names = tuple(sorted({c for files in layout.values() for c, _ in files}))
    self.num_classes = len(self.class_names)
    class_ids = {c: i for i, c in enumerate(self.class_names)}
    files = sorted(layout[split])
    self._files = [f for _, f in files]
    self._labels = np.array([class_ids[c] for c, _ in files], np.int32)
    self.num_examples = len(files)
    headers = [self._header(i) for i in range(self.num_examples)]
    modes = [mode for mode, _ in headers]
    for index, mode in enumerate(modes):
      if mode in _HIGH_DEPTH_MODES:
        raise ValueError(f"{self.example_name(index)} has PIL mode {mode!r} (more than 8 bits "
                         f"per channel); only 8-bit images are supported: save it as 8-bit")
    self.channels = 1 if all(mode in _GRAY_MODES for mode in modes) else 3
    self._log_conversions(split, modes)
    self.example_sizes = np.array([size[::-1] for _, size in headers])
    sizes = {size for _, size in headers}
    self.image_shape = (*sizes.pop()[::-1], self.channels) if len(sizes) == 1 else None

  def _log_conversions(self, split: str, modes: list[str]) -> None:
    """Warns of the images that `_decode` converts, counted by PIL mode."""
    target = "L" if self.channels == 1 else "RGB"
    counts = collections.Counter(mode for mode in modes if mode != target)
    if counts:
      by_mode = ", ".join(f"{mode}: {n}" for mode, n in sorted(counts.items()))
      logging.warning("%s: converting %d of the %d images of split %r to %s (PIL modes %s)%s",
                      self.name, counts.total(), len(modes), split, target, by_mode,
                      "; alpha channels are dropped" if counts.keys() & _ALPHA_MODES else "")

  def example_name(self, index: int) -> str:
    return f"image {self._files[index]!r} in {self.name}"

  def _with_image(self, index: int, fn: Callable[[Image.Image], Any]) -> Any:
    """``fn(image)`` for example `index`, with errors naming its file."""
    try:
      with Image.open(self._open(self._files[index])) as im:
        return fn(im)
    except Exception as e:
      raise ValueError(f"cannot decode {self.example_name(index)}: {e}") from e

  def _header(self, index: int) -> tuple[str, tuple[int, int]]:
    return self._with_image(index, lambda im: (im.mode, im.size))

  def _decode(self, index: int) -> np.ndarray:
    mode = "L" if self.channels == 1 else "RGB"
    pixels = self._with_image(index, lambda im: np.asarray(im.convert(mode)))
    return pixels.reshape(*pixels.shape[:2], self.channels)

  def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([self._decode(i) for i in indices]), self._labels[indices]


@functools.lru_cache(maxsize=4)
def _cached_folder_source(path: str, split: str, fingerprint: tuple) -> FolderSource:
  return FolderSource(path, split, fingerprint)


def folder_source(path: str, split: str) -> FolderSource:
  """`folder:PATH`; sources are cached while the folder or archive is unchanged."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"folder:{path}: no such directory or archive")
  if not os.path.isdir(path) and not tarfile.is_tarfile(path):
    raise ValueError(f"folder:{path} is neither a directory nor a tar archive")
  return _cached_folder_source(path, split, _fingerprint(path))


# ----------------------------------------------------------------------------- TFDS


class TfdsSource(Source):
  """A TFDS catalog dataset through ``tfds.data_source`` (ArrayRecord random access).

  The image is the ``image`` feature (else the first Image feature); the label
  the ``label`` ClassLabel (else the first ClassLabel). Datasets without a
  ClassLabel, such as ``celeb_a``, are unconditional: labels 0, num_classes 0.
  """

  def __init__(self, dataset: str, split: str, name: str | None = None):
    import tensorflow_datasets as tfds  # Deferred: importing TFDS takes seconds.

    self.name = name or f"tfds:{dataset}"
    try:
      self._data = tfds.data_source(dataset, split=split)
    except OSError as e:  # requests' and urllib's errors are OSErrors.
      raise OSError(
          f"{self.name}: TFDS could not download or prepare it ({type(e).__name__}: "
          f"{str(e).splitlines()[0][:300] if str(e) else ''}). The first use needs a network "
          f"(the data is then kept under $TFDS_DATA_DIR, default ~/tensorflow_datasets); "
          f"offline, train on a local copy: --config.dataset=npz:PATH or folder:PATH") from e
    features = self._data.dataset_info.features

    def first(kind, preferred):
      keys = [k for k, f in features.items() if isinstance(f, kind)]
      return preferred if preferred in keys else next(iter(keys), None)

    self._image_key = first(tfds.features.Image, "image")
    if self._image_key is None:
      raise ValueError(f"{self.name} has no Image feature; its features are {sorted(features)}")
    self._label_key = first(tfds.features.ClassLabel, "label")
    labels = features[self._label_key] if self._label_key else None
    self.num_classes = labels.num_classes if labels else 0
    self.class_names = tuple(labels.names) if labels else None
    self.num_examples = len(self._data)
    shape = features[self._image_key].shape
    self.channels = shape[-1]
    self.image_shape = tuple(shape) if None not in shape else None

  def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    examples = [self._data[int(i)] for i in indices]
    labels = [ex[self._label_key] if self._label_key else 0 for ex in examples]
    return np.stack([ex[self._image_key] for ex in examples]), np.array(labels, np.int32)


# ----------------------------------------------------------------------------- registry


def _tfds(name: str) -> Callable[[str], Source]:
  return functools.partial(TfdsSource, name, name=name)


# Plain names map to `constructor(split)`, the prefix kinds in PREFIX_KINDS to
# `constructor(argument, split)` for a dataset written `kind:argument`.
DATASETS: dict[str, Callable[..., Source]] = {
    "mnist": _tfds("mnist"),
    "fashion_mnist": _tfds("fashion_mnist"),
    "cifar10": _tfds("cifar10"),
    "celeb_a": _tfds("celeb_a"),
    "digits": digits_source,
    "npz": npz_source,
    "folder": folder_source,
    "tfds": TfdsSource,
}
PREFIX_KINDS = ("npz", "folder", "tfds")
_FORMS = ("npz:PATH", "folder:PATH", "tfds:NAME")


def get_source(dataset: str, split: str) -> Source:
  """The `Source` for one split of a dataset.

  Args:
    dataset: a name in `DATASETS` or ``npz:PATH``, ``folder:PATH``, ``tfds:NAME``.
    split: e.g. ``train`` or ``test``.

  Raises:
    ValueError: unknown dataset or split, empty folder, undecodable image.
    FileNotFoundError: PATH does not exist.
  """
  kind, colon, argument = dataset.partition(":")
  if colon and kind in PREFIX_KINDS and argument:
    return DATASETS[kind](argument, split)
  if not colon and dataset in DATASETS and dataset not in PREFIX_KINDS:
    return DATASETS[dataset](split)
  names = sorted(k for k in DATASETS if k not in PREFIX_KINDS)
  raise ValueError(f"unknown dataset {dataset!r}; valid names are {names} and the forms "
                   f"{list(_FORMS)}")
