"""Sample-quality and restoration metrics as pure functions.

The distribution metrics (FID, KID, IS, precision/recall, density/coverage)
take the features or logits of a feature network (see ``features``); PSNR and
SSIM take image batches. Pairwise work runs in jitted JAX, a chunk of rows at
a time, so no N x M matrix of distances is ever held whole; means, covariances
and matrix square roots are float64 numpy.

Matrix products ask for ``precision="highest"``: accelerators otherwise
multiply float32 in reduced precision, which these metrics cannot afford.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

# ---- Gaussian statistics and the Fréchet distance.


class FeatureMoments(NamedTuple):
  """The first and second moments of a set of features, in float64.

  Moments of successive batches merge exactly (Chan et al.'s pairwise update),
  so the statistics of a large split can be streamed:

    moments = FeatureMoments.empty(dim)
    for batch in batches:
      moments = moments.merge(FeatureMoments.of(batch))
    mu, sigma = moments.gaussian()

  Attributes:
    num_samples: how many feature vectors were seen.
    mean: [D] their mean.
    centred_outer: [D, D] the sum over vectors of (x - mean)(x - mean)^T.
      Summing centred products avoids the cancellation of E[xx^T] - mean mean^T.
  """

  num_samples: int
  mean: np.ndarray
  centred_outer: np.ndarray

  @classmethod
  def empty(cls, dim: int) -> "FeatureMoments":
    """The moments of no features of dimension ``dim``."""
    return cls(0, np.zeros(dim), np.zeros((dim, dim)))

  @classmethod
  def of(cls, features: np.ndarray) -> "FeatureMoments":
    """The moments of features [N, D]."""
    features = np.asarray(features, np.float64)
    mean = features.mean(axis=0)
    centred = features - mean
    return cls(len(features), mean, centred.T @ centred)

  def merge(self, other: "FeatureMoments") -> "FeatureMoments":
    """The moments of the union of both sets."""
    num_samples = self.num_samples + other.num_samples
    delta = other.mean - self.mean
    mean = self.mean + delta * (other.num_samples / num_samples)
    centred_outer = (self.centred_outer + other.centred_outer +
                     np.outer(delta, delta) * (self.num_samples * other.num_samples / num_samples))
    return FeatureMoments(num_samples, mean, centred_outer)

  def gaussian(self) -> tuple[np.ndarray, np.ndarray]:
    """(mu [D], sigma [D, D]): the mean and the unbiased (N - 1) covariance."""
    if self.num_samples < 2:
      raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.num_samples}")
    return self.mean, self.centred_outer / (self.num_samples - 1)


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The Gaussian fitted to features, as FID uses it.

  For a split too large to hold at once, merge ``FeatureMoments`` of its batches.

  Args:
    features: [N, D], N >= 2.

  Returns:
    (mu, sigma): float64 [D] mean and [D, D] covariance (normalised by N - 1,
    as ``np.cov``).
  """
  return FeatureMoments.of(features).gaussian()


def _psd_eigenvalues(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Eigenvalues (clipped) and eigenvectors of a symmetric positive semi-definite matrix.

  Eigenvalues below the round-off level of the largest one are set to 0: they
  are noise (or negative) where the matrix is singular, and their square roots
  would add up to a visible error over thousands of dimensions.
  """
  eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
  round_off = max(eigenvalues.max(), 0.0) * len(eigenvalues) * np.finfo(np.float64).eps
  return np.where(eigenvalues > round_off, eigenvalues, 0.0), eigenvectors


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
  """Squared Fréchet (2-Wasserstein) distance between two Gaussians.

  d^2 = ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)),
  in float64. The trace of the square root is taken from the symmetric form
  sigma1^(1/2) sigma2 sigma1^(1/2), which has the same eigenvalues as
  sigma1 sigma2 but is positive semi-definite, so symmetric eigendecompositions
  apply: no complex round-off as with ``scipy.linalg.sqrtm``, and singular
  covariances (fewer samples than dimensions) are fine.

  Args:
    mu1: [D] mean of the first Gaussian.
    sigma1: [D, D] its covariance.
    mu2: [D] mean of the second Gaussian.
    sigma2: [D, D] its covariance.

  Returns:
    The distance (FID when the Gaussians are fitted to Inception features).
  """
  mu1, sigma1, mu2, sigma2 = (np.asarray(x, np.float64) for x in (mu1, sigma1, mu2, sigma2))
  eigenvalues, eigenvectors = _psd_eigenvalues(sigma1)
  sqrt_sigma1 = (eigenvectors * np.sqrt(eigenvalues)) @ eigenvectors.T
  product_eigenvalues, _ = _psd_eigenvalues(sqrt_sigma1 @ sigma2 @ sqrt_sigma1)
  trace_sqrt_product = np.sqrt(product_eigenvalues).sum()
  return float(np.sum(np.square(mu1 - mu2)) + np.trace(sigma1) + np.trace(sigma2) -
               2 * trace_sqrt_product)


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Fréchet distance between the Gaussians fitted to two feature sets [N, D] and [M, D]."""
  return frechet_distance(*gaussian_statistics(features_a), *gaussian_statistics(features_b))


# ---- Kernel Inception Distance.


@jax.jit
def _polynomial_kernel_row_sums(features_a, features_b, subsets_a, subsets_b):
  """Row sums of the kernel matrices of each pair of subsets.

  Returns float32 [S, m] each: within subset a without the diagonal, within
  subset b without the diagonal, and between a and b. Summing the rows is left
  to float64 on the host: MMD^2 is a small difference of means of ~m^2 kernel
  values, and a float32 sum of that many loses it.
  """
  dim = features_a.shape[-1]

  def kernel(x, y):
    return (jnp.matmul(x, y.T, precision="highest") / dim + 1.0) ** 3

  def row_sums(subsets):
    x, y = features_a[subsets[0]], features_b[subsets[1]]
    k_xx, k_yy = kernel(x, x), kernel(y, y)
    return (k_xx.sum(axis=1) - jnp.diagonal(k_xx), k_yy.sum(axis=1) - jnp.diagonal(k_yy),
            kernel(x, y).sum(axis=1))

  return jax.lax.map(row_sums, (subsets_a, subsets_b))


def kid(features_a: np.ndarray, features_b: np.ndarray, num_subsets: int = 100,
        subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
  """Kernel Inception Distance (Bińkowski et al., 2018).

  The unbiased estimate of MMD^2 with the kernel k(x, y) = (x.y / D + 1)^3,

    sum_{i != j} k(a_i, a_j) / (m (m - 1)) + sum_{i != j} k(b_i, b_j) / (m (m - 1))
      - 2 sum_{i, j} k(a_i, b_j) / m^2,

  on ``num_subsets`` pairs of random subsets of size m. Subset s is drawn,
  after the previous ones, as ``rng.choice(N, m, replace=False)`` then
  ``rng.choice(M, m, replace=False)`` with ``rng = np.random.default_rng(seed)``.

  Args:
    features_a: [N, D].
    features_b: [M, D].
    num_subsets: how many subset pairs to average over.
    subset_size: m; clipped to min(N, M), in which case every subset holds a
      whole set (the smaller one) and the spread over subsets only reflects
      which samples of the larger one were drawn.
    seed: seed of the subset draws.

  Returns:
    (mean, std) of the estimates over subsets (std with ddof 0, as the reference
    implementation). The mean can be slightly negative when the sets match.
  """
  num_a, num_b = len(features_a), len(features_b)
  subset_size = min(subset_size, num_a, num_b)
  if subset_size < 2:
    raise ValueError(f"KID needs at least 2 samples per set, got {num_a} and {num_b}")
  rng = np.random.default_rng(seed)
  subsets = [(rng.choice(num_a, subset_size, replace=False),
              rng.choice(num_b, subset_size, replace=False)) for _ in range(num_subsets)]
  subsets_a, subsets_b = (np.stack(s) for s in zip(*subsets))
  within_a, within_b, between = (
      np.asarray(s, np.float64).sum(axis=1) for s in _polynomial_kernel_row_sums(
          jnp.asarray(features_a, jnp.float32), jnp.asarray(features_b, jnp.float32),
          subsets_a, subsets_b))
  mmd2 = ((within_a + within_b) / (subset_size * (subset_size - 1)) -
          2 * between / subset_size**2)
  return float(mmd2.mean()), float(mmd2.std())


# ---- Inception Score.


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
  """log(sum(exp(x))) along ``axis`` (kept), shifted by the maximum so nothing overflows."""
  peak = x.max(axis=axis, keepdims=True)
  return peak + np.log(np.exp(x - peak).sum(axis=axis, keepdims=True))


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
  """Inception Score (Salimans et al., 2016), exp E_x KL(p(y|x) || p(y)).

  As the original code: the samples are cut, in order, into ``splits``
  contiguous parts [i N // splits, (i + 1) N // splits), each part's p(y) is
  the mean of its p(y|x), and the score is computed per part.

  Args:
    logits: [N, C] classifier logits (the softmax is applied here, in float64).
    splits: number of parts.

  Returns:
    (mean, std) of the parts' scores (std with ddof 0, as the original).
  """
  logits = np.asarray(logits, np.float64)
  log_probs = logits - _logsumexp(logits, axis=1)
  num = len(log_probs)
  scores = []
  for i in range(splits):
    part = log_probs[i * num // splits:(i + 1) * num // splits]
    log_marginal = _logsumexp(part, axis=0) - np.log(len(part))
    kl = np.sum(np.exp(part) * (part - log_marginal), axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


# ---- Precision/recall and density/coverage: k-nearest-neighbour balls.


def _sq_distances(query: jax.Array, points: jax.Array, points_sq_norms: jax.Array) -> jax.Array:
  """Squared distances [N] from query [D] to points [N, D], clipped at 0 (round-off)."""
  return jnp.maximum(
      jnp.dot(query, query, precision="highest") + points_sq_norms -
      2 * jnp.matmul(points, query, precision="highest"), 0.0)


@functools.partial(jax.jit, static_argnames=("k", "batch_size"))
def _kth_neighbour_sq_distances(points, k, batch_size):
  """[N, D] -> [N]: squared distance from each point to its k-th nearest other point."""
  sq_norms = jnp.sum(jnp.square(points), axis=-1)

  def kth(args):
    point, index = args
    sq = _sq_distances(point, points, sq_norms).at[index].set(jnp.inf)  # Not its own neighbour.
    # Removing the k - 1 nearest one by one is several times faster on CPU
    # than lax.top_k, for the small k these metrics use.
    for _ in range(k - 1):
      sq = sq.at[jnp.argmin(sq)].set(jnp.inf)
    return jnp.min(sq)

  return jax.lax.map(kth, (points, jnp.arange(len(points))), batch_size=batch_size)


@functools.partial(jax.jit, static_argnames="batch_size")
def _ball_counts(queries, centres, centre_sq_radii, batch_size):
  """[Q]: for each query, how many centres' closed balls (radii given squared) hold it."""
  sq_norms = jnp.sum(jnp.square(centres), axis=-1)

  def count(query):
    return jnp.sum(_sq_distances(query, centres, sq_norms) <= centre_sq_radii)

  return jax.lax.map(count, queries, batch_size=batch_size)


@functools.partial(jax.jit, static_argnames="batch_size")
def _nearest_sq_distances(queries, points, batch_size):
  """[Q]: squared distance from each query to its nearest point."""
  sq_norms = jnp.sum(jnp.square(points), axis=-1)
  return jax.lax.map(lambda query: jnp.min(_sq_distances(query, points, sq_norms)), queries,
                     batch_size=batch_size)


def _centred_on_real(real_features: np.ndarray, fake_features: np.ndarray,
                     k: int) -> tuple[jax.Array, jax.Array]:
  """Both sets as float32, shifted by the real mean, after checking both have more than k samples.

  Distances do not change, and the expansion |x|^2 + |y|^2 - 2 x.y of smaller
  vectors loses less to float32 cancellation.
  """
  if k >= min(len(real_features), len(fake_features)):
    raise ValueError(f"k={k} needs more than k samples in each set, got "
                     f"{len(real_features)} real and {len(fake_features)} fake")
  centre = np.mean(real_features, axis=0, dtype=np.float64).astype(np.float32)
  return (jnp.asarray(real_features, jnp.float32) - centre,
          jnp.asarray(fake_features, jnp.float32) - centre)


def precision_recall(real_features: np.ndarray, fake_features: np.ndarray, k: int = 3,
                     batch_size: int = 512) -> tuple[float, float]:
  """Improved precision and recall (Kynkäänniemi et al., 2019).

  Each sample's ball reaches its k-th nearest neighbour in its own set (the
  sample itself excluded). Precision is the fraction of fake samples inside
  at least one real ball; recall the fraction of real samples inside at least
  one fake ball. Balls are closed (distance <= radius), as in the paper.

  Args:
    real_features: [N, D].
    fake_features: [M, D].
    k: the neighbour that sets the radii; both sets need more than k samples.
    batch_size: rows of each distance matrix computed at once (memory is about
      batch_size x max(N, M) floats).

  Returns:
    (precision, recall), both in [0, 1].
  """
  real, fake = _centred_on_real(real_features, fake_features, k)
  real_sq_radii = _kth_neighbour_sq_distances(real, k, batch_size)
  fake_sq_radii = _kth_neighbour_sq_distances(fake, k, batch_size)
  precision = jnp.mean(_ball_counts(fake, real, real_sq_radii, batch_size) > 0)
  recall = jnp.mean(_ball_counts(real, fake, fake_sq_radii, batch_size) > 0)
  return float(precision), float(recall)


def density_coverage(real_features: np.ndarray, fake_features: np.ndarray, k: int = 5,
                     batch_size: int = 512) -> tuple[float, float]:
  """Density and coverage (Naeem et al., 2020).

  With each real sample's closed ball reaching its k-th nearest real neighbour
  (itself excluded): density is the number of (fake sample, real ball holding
  it) pairs divided by k M, so about 1 when the fake samples are distributed as
  the real ones (it is not bounded by 1); coverage is the fraction of real balls
  holding at least one fake sample.

  Args:
    real_features: [N, D].
    fake_features: [M, D].
    k: the neighbour that sets the radii; both sets need more than k samples.
    batch_size: rows of each distance matrix computed at once (memory is about
      batch_size x max(N, M) floats).

  Returns:
    (density, coverage); coverage is in [0, 1].
  """
  real, fake = _centred_on_real(real_features, fake_features, k)
  real_sq_radii = _kth_neighbour_sq_distances(real, k, batch_size)
  real_balls_per_fake = _ball_counts(fake, real, real_sq_radii, batch_size)
  density = jnp.sum(real_balls_per_fake) / (k * len(fake))
  coverage = jnp.mean(_nearest_sq_distances(real, fake, batch_size) <= real_sq_radii)
  return float(density), float(coverage)


# ---- Restoration metrics on images.

# ITU-R BT.601 luma weights for R, G, B in [0, 1], giving Y in [16, 235] as
# MATLAB's rgb2ycbcr (the super-resolution convention).
_LUMA_WEIGHTS = (65.481, 128.553, 24.966)
_LUMA_OFFSET = 16.0


def _gaussian_taps(radius: int, sigma: float) -> list[float]:
  """The 2 radius + 1 weights of a sampled Gaussian, normalised to sum to 1 (as
  scipy.ndimage and MATLAB's fspecial)."""
  taps = np.exp(-np.arange(-radius, radius + 1)**2 / (2 * sigma**2))
  return (taps / taps.sum()).tolist()


# SSIM as Wang et al. (2004): an 11x11 Gaussian window of sigma 1.5.
_SSIM_K1, _SSIM_K2 = 0.01, 0.03
_SSIM_TAPS = _gaussian_taps(radius=5, sigma=1.5)


def rgb_to_y(images: jax.Array, data_range: float = 255.0) -> jax.Array:
  """The luma Y of YCbCr (ITU-R BT.601), as MATLAB's ``rgb2ycbcr``.

  Y = 16 + 65.481 R + 128.553 G + 24.966 B for R, G, B in [0, 1]. MATLAB
  rounds Y to uint8 for uint8 input; this does not.

  Args:
    images: [..., 3] RGB, uint8 or float, with values in [0, data_range].
    data_range: the value of full intensity.

  Returns:
    float32 [..., 1], Y on the 0..255 scale (16..235) whatever ``data_range``.
  """
  rgb = images.astype(jnp.float32) / data_range
  luma = sum(weight * rgb[..., channel] for channel, weight in enumerate(_LUMA_WEIGHTS))
  return (_LUMA_OFFSET + luma)[..., None]


def _prepare(images: jax.Array, data_range: float, crop_border: int,
             y_channel: bool) -> tuple[jax.Array, float]:
  """float32 images [B, H', W', C'] to compare, and the data range they now have."""
  if y_channel:
    images, data_range = rgb_to_y(images, data_range), 255.0
  else:
    images = images.astype(jnp.float32)
  if crop_border:
    images = images[:, crop_border:-crop_border, crop_border:-crop_border]
  return images, data_range


def psnr(a: jax.Array, b: jax.Array, data_range: float = 255.0, crop_border: int = 0,
         y_channel: bool = False) -> jax.Array:
  """Peak signal-to-noise ratio, 10 log10(data_range^2 / MSE), per image.

  Args:
    a: [B, H, W, C] images, uint8 or float, with values in [0, data_range].
    b: the images to compare with, same shape.
    data_range: the value of full intensity (255 for uint8, 1 for images in [0, 1]).
    crop_border: pixels left out on each side before comparing (the
      super-resolution convention crops the scale factor).
    y_channel: compare the luma Y of ``rgb_to_y`` (C must be 3) instead of all
      channels, the super-resolution convention; the peak is then 255, Y's.

  Returns:
    float32 [B], in dB (inf where the images are equal).
  """
  if a.shape != b.shape:
    raise ValueError(f"psnr compares images of one shape, got {a.shape} and {b.shape}")
  a, peak = _prepare(a, data_range, crop_border, y_channel)
  b, _ = _prepare(b, data_range, crop_border, y_channel)
  mse = jnp.mean(jnp.square(a - b), axis=(1, 2, 3))
  return 10.0 * jnp.log10(peak**2 / mse)


def _gaussian_filter_valid(images: jax.Array) -> jax.Array:
  """[B, H, W, C] -> [B, H - 10, W - 10, C]: the SSIM window's weighted means
  where the whole window lies inside the image (separable, one axis at a time)."""
  for axis in (1, 2):
    size = images.shape[axis] - len(_SSIM_TAPS) + 1
    images = sum(weight * jax.lax.slice_in_dim(images, offset, offset + size, axis=axis)
                 for offset, weight in enumerate(_SSIM_TAPS))
  return images


def ssim(a: jax.Array, b: jax.Array, data_range: float = 255.0, crop_border: int = 0,
         y_channel: bool = False) -> jax.Array:
  """Structural similarity (Wang et al., 2004), per image.

  The setting of the paper: an 11x11 Gaussian window of sigma 1.5, K1 = 0.01,
  K2 = 0.03, population (not sample) covariances, and the mean of the SSIM map
  over the positions where the window fits inside the image; with several
  channels, the mean over channels. The same as ``skimage.metrics.
  structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=..., channel_axis=-1)``.

  Args:
    a: [B, H, W, C] images, uint8 or float, with values in [0, data_range];
      at least 11x11 after cropping.
    b: the images to compare with, same shape.
    data_range: the value of full intensity (255 for uint8, 1 for images in [0, 1]).
    crop_border: pixels left out on each side before comparing.
    y_channel: compare the luma Y of ``rgb_to_y`` (C must be 3) instead of all
      channels.

  Returns:
    float32 [B], at most 1.
  """
  if a.shape != b.shape:
    raise ValueError(f"ssim compares images of one shape, got {a.shape} and {b.shape}")
  a, peak = _prepare(a, data_range, crop_border, y_channel)
  b, _ = _prepare(b, data_range, crop_border, y_channel)
  if min(a.shape[1:3]) < len(_SSIM_TAPS):
    raise ValueError(f"ssim needs images of at least {len(_SSIM_TAPS)}x{len(_SSIM_TAPS)} "
                     f"after cropping, got {a.shape[1]}x{a.shape[2]}")
  # Shifting each image channel by its mean leaves the covariances unchanged,
  # and E[x^2] - E[x]^2 of the shifted values loses less to float32 cancellation.
  shift_a = a.mean(axis=(1, 2), keepdims=True)
  shift_b = b.mean(axis=(1, 2), keepdims=True)
  a, b = a - shift_a, b - shift_b
  # One filtering of the five maps stacked on channels: it compiles several
  # times faster than five.
  moments = _gaussian_filter_valid(jnp.concatenate([a, b, a * a, b * b, a * b], axis=-1))
  mean_a, mean_b, mean_aa, mean_bb, mean_ab = jnp.split(moments, 5, axis=-1)
  var_a, var_b = mean_aa - mean_a**2, mean_bb - mean_b**2
  cov = mean_ab - mean_a * mean_b
  mean_a, mean_b = mean_a + shift_a, mean_b + shift_b
  c1, c2 = (_SSIM_K1 * peak)**2, (_SSIM_K2 * peak)**2
  ssim_map = ((2 * mean_a * mean_b + c1) * (2 * cov + c2) /
              ((mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)))
  return ssim_map.mean(axis=(1, 2, 3))


def best_code_accuracy(codes: np.ndarray, classes: np.ndarray, num_values: int,
                       num_classes: int) -> float:
  """Accuracy of a categorical code as a classifier after the best matching of values to classes.

  InfoGAN's categorical code is unsupervised, so its values come in an
  arbitrary order; the Hungarian algorithm finds the one-to-one assignment of
  code values to classes that agrees with ``classes`` most often.

  Args:
    codes: int [N] code values.
    classes: int [N] classes (e.g. a classifier's labels of the images).
    num_values: values of the code.
    num_classes: number of classes.
  """
  counts = np.zeros((num_values, num_classes), np.int64)
  np.add.at(counts, (codes, classes), 1)
  rows, cols = linear_sum_assignment(counts, maximize=True)
  return float(counts[rows, cols].sum() / len(codes))
