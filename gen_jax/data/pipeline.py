"""The input pipeline: deterministic, exactly resumable batches from any dataset.

Determinism design
------------------
The order of training examples is a pure function of ``(seed, position)``.
Training reads an endless stream of global positions q = 0, 1, 2, ... For a
split of N examples, position q is the example

    shuffle_key, flip_key = stateless_uniform([2], seed=(seed, 0))      # full-range int64s
    epoch = q // N
    i     = q %  N
    k     = stateless_uniform([6], seed=(shuffle_key, epoch))           # 6 key words
    index = shuffle(shuffle(i, k[0:3]), k[3:6])

where ``shuffle(i, key) = RandomIndexShuffle(i, key, max_index=N-1)`` is the op
behind ``tf.random.experimental.index_shuffle``: a keyed bijection of [0, N),
evaluated one position at a time without materialising the permutation. Each
epoch thus gets a fresh pseudorandom order of the whole split. (Why hashed keys
and two shuffles: the kernel keys its cipher with only the low W bits of each of
its 3 key words, W = half its block size, 8 bits for N <= 2**16. Raw (seed,
epoch) keys would make seeds 256 apart, or epochs 256 apart, share an order; one
shuffle offers only 2**24 orders, two compose to 2**48.)

Train step s consumes the positions [s*B, (s+1)*B) for the global batch size B,
and process p of P reads only its contiguous slice [s*B + p*B/P, s*B + (p+1)*B/P).
It follows that:

* Resuming needs nothing but the step: ``train_batches(start_step=k)`` yields
  exactly the batches an uninterrupted run yields from step k on. There is no
  shuffle buffer or iterator state to checkpoint.
* The global batch does not depend on the number of processes: the slices of
  P processes, concatenated in process order, are the single-process batch.
  Each process reads only its own examples.
* Each epoch visits every example exactly once. Epochs need not line up with
  steps; a batch may straddle two epochs.
* Augmentation is stateless as well: the random horizontal flip of position q
  is ``tf.image.stateless_random_flip_left_right(image, seed=(flip_key, q))``,
  never TensorFlow's global RNG, so it shares all the properties above.

``eval_batches`` reads a split once in index order (position q is example q),
pads the last global batch and marks real examples with ``mask``.

Reading and preprocessing
-------------------------
Per batch, tf.data maps positions to indices (TF ops), reads them with
`Source.read` through ``tf.numpy_function`` (one call per batch; one per
example for datasets whose images differ in size), takes the optional central
square crop in numpy (so that an image too small for it can be named), then in
TF: converts channels, resizes to ``image_size`` (antialiased bilinear: a
triangle filter when shrinking, plain bilinear when enlarging), scales to
[-1, 1] and flips. Maps run in parallel, in order, with prefetching. An error
raised by a source inside tf.data (say an undecodable file) reaches the caller
as the original Python exception rather than a TF ``InvalidArgumentError``.
"""

import dataclasses
import math
from collections.abc import Callable, Iterator

import numpy as np

from gen_jax.data._tf import tf
from gen_jax.data.sources import Source, get_source

__all__ = ["DataSpec", "DatasetInfo", "describe", "eval_batches", "get_source", "train_batches"]

# Feistel rounds of RandomIndexShuffle: TF's kernel documentation recommends 8
# for good permutations of small splits (its Python wrapper uses 4).
_SHUFFLE_ROUNDS = 8


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """The data section of a config.

  Attributes:
    dataset: ``mnist``, ``fashion_mnist``, ``cifar10``, ``celeb_a``, ``digits``,
      ``npz:PATH``, ``folder:PATH`` or ``tfds:NAME`` (see `gen_jax.data.sources`).
    image_size: side of the square output images.
    split: the split to read, e.g. ``train`` or ``test``.
    crop: side of a central square cut from each stored image before resizing
      (e.g. 140 for 218x178 CelebA at 64x64, the usual DCGAN protocol); None keeps
      the whole image, squashed to a square if it is not one.
    random_flip: flip training images horizontally with probability 1/2.
    channels: 1 or 3 to force grayscale or RGB output; None keeps the dataset's.
  """

  dataset: str
  image_size: int
  split: str = "train"
  crop: int | None = None
  random_flip: bool = False
  channels: int | None = None

  def __post_init__(self):
    if self.image_size < 1:
      raise ValueError(f"image_size must be positive, got {self.image_size}")
    if self.crop is not None and self.crop < 1:
      raise ValueError(f"crop must be positive or None, got {self.crop}")
    if self.channels not in (None, 1, 3):
      raise ValueError(f"channels must be 1, 3 or None, got {self.channels}")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a model needs to know about the batches of a `DataSpec`.

  Attributes:
    num_examples: examples in the split.
    image_shape: (image_size, image_size, C) of the output images.
    num_classes: number of label values; 0 if the dataset is unlabelled.
    class_names: a name per label value, if the dataset has them.
    unused_classes: label values that no example has (see `Source`).
  """

  num_examples: int
  image_shape: tuple[int, int, int]
  num_classes: int
  class_names: tuple[str, ...] | None = None
  unused_classes: tuple[int, ...] = ()


def _open(spec: DataSpec) -> tuple[Source, int]:
  """The source of `spec` and its output channel count, after checking they fit."""
  source = get_source(spec.dataset, spec.split)
  if not source.num_examples:
    raise ValueError(f"split {spec.split!r} of {source.name} has no examples")
  if source.channels not in (1, 3):
    raise ValueError(f"{source.name} has {source.channels}-channel images; "
                     "only 1 or 3 are supported")
  if spec.crop and source.image_shape and spec.crop > min(source.image_shape[:2]):
    h, w = source.image_shape[:2]
    raise ValueError(f"crop {spec.crop} is larger than the {h}x{w} images of {source.name}")
  if spec.crop and source.example_sizes is not None:
    # Images of differing sizes: name the first too small now, not when a batch reaches it.
    too_small = np.flatnonzero(source.example_sizes.min(axis=1) < spec.crop)
    if too_small.size:
      h, w = source.example_sizes[too_small[0]]
      raise ValueError(f"cannot crop {spec.crop}x{spec.crop} from "
                       f"{source.example_name(too_small[0])}, which is {h}x{w} ({too_small.size} "
                       f"of the {source.num_examples} images of split {spec.split!r} are smaller)")
  return source, spec.channels or source.channels


def describe(spec: DataSpec) -> DatasetInfo:
  """Size, output shape and classes of `spec`'s split, without decoding it.

  Raises:
    ValueError: unknown dataset or split, an empty split, a crop larger than an image,
      or an image that cannot be read (the message names it).
  """
  source, channels = _open(spec)
  return DatasetInfo(source.num_examples, (spec.image_size, spec.image_size, channels),
                     source.num_classes, source.class_names, source.unused_classes)


# ----------------------------------------------------------------------------- positions -> indices


def _full_range_ints(count: int, seed: tf.Tensor) -> tf.Tensor:
  return tf.random.stateless_uniform([count], seed=seed, minval=None, maxval=None, dtype=tf.int64)


def stream_keys(seed: int) -> tuple[int, int]:
  """(shuffle_key, flip_key): independent int64 keys derived from the run's seed."""
  shuffle_key, flip_key = _full_range_ints(2, tf.constant([seed, 0], tf.int64)).numpy().tolist()
  return shuffle_key, flip_key


def _shuffle_is_bijective(max_index: int) -> bool:
  # The kernel uses ceil(log2(max_index)) bits, rounded up to even and at least
  # 16, which cannot represent max_index itself when it is a power of 4 >= 2**16.
  return max_index < 2**16 or max_index & (max_index - 1) or max_index.bit_length() % 2 == 0


def _permute(i: tf.Tensor, key: tf.Tensor, n: int) -> tf.Tensor:
  """A keyed permutation of [0, n): int64 [m] indices, int64 [m, 3] key words."""

  def shuffle(index, max_index):
    return tf.raw_ops.RandomIndexShuffle(index=index, seed=key,
                                         max_index=tf.constant(max_index, tf.int64),
                                         rounds=_SHUFFLE_ROUNDS)

  if _shuffle_is_bijective(n - 1):
    return shuffle(i, n - 1)
  # Work around the kernel bug: permute [0, n] instead and send the one i that
  # lands on n one step further along its cycle (cycle walking).
  j = shuffle(i, n)
  return tf.where(j == n, shuffle(tf.fill(tf.shape(i), tf.constant(n, tf.int64)), n), j)


def shuffled_indices(positions: tf.Tensor, shuffle_key: int, num_examples: int) -> tf.Tensor:
  """The example read at each training position (see the module docstring).

  Args:
    positions: int64 [m] global positions.
    shuffle_key: the first of `stream_keys`.
    num_examples: N, the size of the split.

  Returns:
    int64 [m] example indices in [0, N).
  """
  epochs = positions // num_examples
  # Key words are drawn once per distinct epoch of the batch (usually one or two).
  first = tf.reduce_min(epochs)
  shuffle_key = tf.constant(shuffle_key, tf.int64)
  words = tf.map_fn(lambda e: _full_range_ints(6, tf.stack([shuffle_key, e])),
                    tf.range(first, tf.reduce_max(epochs) + 1),
                    fn_output_signature=tf.TensorSpec([6], tf.int64))
  words = tf.gather(words, epochs - first)
  once = _permute(positions % num_examples, words[:, :3], num_examples)
  return _permute(once, words[:, 3:], num_examples)


def _local_batch(global_batch_size: int, process_index: int, process_count: int) -> int:
  """B/P, after checking that the batch splits evenly over the processes."""
  if global_batch_size < 1 or global_batch_size % process_count:
    raise ValueError(f"the global batch size {global_batch_size} must be a positive multiple of "
                     f"the process count {process_count}")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
  return global_batch_size // process_count


def _positions(steps: tf.data.Dataset, global_batch_size: int, process_index: int,
               local_batch: int) -> tf.data.Dataset:
  """For each step s of `steps`, the positions of this process's slice: int64 [B/P]."""
  first = process_index * local_batch
  return steps.map(lambda s: s * global_batch_size + first + tf.range(local_batch, dtype=tf.int64))


# ----------------------------------------------------------------------------- reading


class _Reader:
  """`Source.read` plus the central crop, as a TF op that remembers Python errors.

  Args:
    source: the split to read.
    crop: side of the central square to keep, or None.
  """

  def __init__(self, source: Source, crop: int | None):
    self.source = source
    self.crop = crop
    self.errors: list[Exception] = []

  def _read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
      images, labels = self.source.read(indices)
      if self.crop:
        h, w = images.shape[1:3]
        if min(h, w) < self.crop:
          name = self.source.example_name(indices[0])
          raise ValueError(f"cannot crop {self.crop}x{self.crop} from {name}, which is {h}x{w}")
        top, left = (h - self.crop) // 2, (w - self.crop) // 2
        images = images[:, top:top + self.crop, left:left + self.crop]
      return images, labels
    except Exception as e:
      self.errors.append(e)  # tf.numpy_function would turn it into a TF error.
      raise

  def __call__(self, indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """int64 [n] -> (uint8 [n, H, W, C], int32 [n])."""
    images, labels = tf.numpy_function(self._read, [indices], (tf.uint8, tf.int32),
                                       stateful=False)
    h, w = (self.crop, self.crop) if self.crop else (self.source.image_shape or (None, None))[:2]
    images = tf.ensure_shape(images, [None, h, w, self.source.channels])
    return images, tf.ensure_shape(labels, [None])


def _to_model_range(images: tf.Tensor, size: int, channels: int) -> tf.Tensor:
  """uint8 [n, h, w, c] -> float32 [n, size, size, channels] in [-1, 1]."""
  x = tf.cast(images, tf.float32)
  if x.shape[-1] != channels:
    x = tf.image.grayscale_to_rgb(x) if channels == 3 else tf.image.rgb_to_grayscale(x)
  h, w = x.shape[1:3]
  if (h, w) != (size, size):
    # Antialiasing (a wider filter) matters only when shrinking, and costs ~10x
    # when enlarging; unknown sizes (mixed-size datasets) get it to be safe.
    enlarging = h and w and h <= size and w <= size
    x = tf.image.resize(x, [size, size], method="bilinear", antialias=not enlarging)
  # Rounding in the resampling weights can overshoot the range by an ulp.
  return tf.clip_by_value(x / 127.5 - 1.0, -1.0, 1.0)


def _flip(images: tf.Tensor, positions: tf.Tensor, flip_key: int) -> tf.Tensor:
  """Flips each image [n, H, W, C] at random, seeded by (flip_key, its position)."""
  flip_key = tf.constant(flip_key, tf.int64)
  def flip(args):
    image, position = args
    return tf.image.stateless_random_flip_left_right(image, seed=tf.stack([flip_key, position]))

  return tf.map_fn(flip, (images, positions), fn_output_signature=images.dtype)


def _batches(spec: DataSpec, source: Source, channels: int, positions: tf.data.Dataset,
             local_batch: int, to_index: Callable[[tf.Tensor], tf.Tensor], *,
             flip_key: int | None = None, mask: bool = False) -> Iterator[dict[str, np.ndarray]]:
  """Reads and preprocesses the examples at `positions`, one batch per element.

  Args:
    spec: what to read.
    source: its source, from `_open`.
    channels: the output channel count, from `_open`.
    positions: int64 [b] global positions per batch.
    local_batch: b.
    to_index: positions -> example indices.
    flip_key: the key of random flips (see `stream_keys`), or None for no flipping.
    mask: add ``mask = position < N``, for padded evaluation batches.

  Returns:
    An iterator of {'image': float32 [b, S, S, C], 'label': int32 [b] (, 'mask': bool [b])}.
  """
  reader = _Reader(source, spec.crop)

  def load(q):
    images, labels = reader(to_index(q))
    x = _to_model_range(images, spec.image_size, channels)
    batch = {"image": x if flip_key is None else _flip(x, q, flip_key), "label": labels}
    return {**batch, "mask": q < source.num_examples} if mask else batch

  if source.image_shape is None:
    # Images of different sizes cannot share an array until resized: read singly.
    positions = positions.rebatch(1)
  ds = positions.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if source.image_shape is None:
    ds = ds.rebatch(local_batch)
  return _iterate(ds.prefetch(tf.data.AUTOTUNE), reader.errors)


def _iterate(ds: tf.data.Dataset, errors: list[Exception]) -> Iterator[dict[str, np.ndarray]]:
  """Iterates `ds` as numpy, re-raising a source's own exception over TF's wrapper."""
  iterator = ds.as_numpy_iterator()
  while True:
    try:
      batch = next(iterator)
    except StopIteration:
      return
    except tf.errors.OpError:
      if errors:
        raise errors[0] from None
      raise
    yield batch


# ----------------------------------------------------------------------------- public iterators


def train_batches(spec: DataSpec, *, global_batch_size: int, seed: int, start_step: int,
                  process_index: int, process_count: int) -> Iterator[dict[str, np.ndarray]]:
  """This process's slices of the global training batches, forever, from `start_step`.

  Batch k of the iterator is the slice of train step ``start_step + k``; it is a
  pure function of (spec, global_batch_size, seed, step, process_index,
  process_count). See the module docstring.

  Args:
    spec: the data to read (``spec.split`` is the split trained on).
    global_batch_size: B, examples per step over all processes.
    seed: seed of the example order and of random flips, in [0, 2**63).
    start_step: the first train step to yield (0 for a fresh run).
    process_index: p, this process's index in [0, P).
    process_count: P, the number of processes.

  Returns:
    An iterator of {'image': float32 [B/P, S, S, C] in [-1, 1], 'label': int32 [B/P]}.

  Raises:
    ValueError: B not a multiple of P, a bad seed/step/index, or the errors of `describe`.
  """
  if not 0 <= seed < 2**63:
    raise ValueError(f"seed must be in [0, 2**63), got {seed}")
  if start_step < 0:
    raise ValueError(f"start_step must be non-negative, got {start_step}")
  local_batch = _local_batch(global_batch_size, process_index, process_count)
  source, channels = _open(spec)
  positions = _positions(tf.data.Dataset.counter(start_step), global_batch_size, process_index,
                         local_batch)
  shuffle_key, flip_key = stream_keys(seed)
  return _batches(spec, source, channels, positions, local_batch,
                  lambda q: shuffled_indices(q, shuffle_key, source.num_examples),
                  flip_key=flip_key if spec.random_flip else None)


def eval_batches(spec: DataSpec, *, batch_size: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """One pass over ``spec.split`` in index order, without shuffling or flipping.

  `batch_size` is global, as in `train_batches`: global batch g holds examples
  [g*B, (g+1)*B) and process p gets its contiguous slice [g*B + p*B/P, ...).
  Every process yields ceil(N / B) batches; entries past the end of the split
  repeat the last example and have ``mask`` False.

  Args:
    spec: the data to read; ``random_flip`` is ignored.
    batch_size: B, the global batch size; a multiple of P.
    process_index: p, this process's index in [0, P).
    process_count: P, the number of processes.

  Returns:
    An iterator of {'image': float32 [B/P, S, S, C] in [-1, 1], 'label': int32 [B/P],
    'mask': bool [B/P]}.
  """
  local_batch = _local_batch(batch_size, process_index, process_count)
  source, channels = _open(spec)
  steps = tf.data.Dataset.range(math.ceil(source.num_examples / batch_size))
  positions = _positions(steps, batch_size, process_index, local_batch)
  return _batches(spec, source, channels, positions, local_batch,
                  lambda q: tf.minimum(q, source.num_examples - 1), mask=True)
