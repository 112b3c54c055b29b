"""Evaluation metrics, jitted where they are JAX, against numpy, scipy and scikit-image."""

import jax
import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import scipy.special
import scipy.stats
from PIL import Image
from scipy.spatial.distance import cdist
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gen_jax.evaluation import metrics

jit_psnr = jax.jit(metrics.psnr, static_argnames=("crop_border", "y_channel"))
jit_ssim = jax.jit(metrics.ssim, static_argnames=("crop_border", "y_channel"))


def random_covariance(rng, dim):
  factor = rng.normal(size=(dim, 2 * dim))
  return factor @ factor.T / (2 * dim)


def reference_frechet_distance(mu1, sigma1, mu2, sigma2):
  """Through the eigenvalues of sigma1 sigma2, which are real and >= 0 up to round-off."""
  eigenvalues = np.clip(np.linalg.eigvals(sigma1 @ sigma2).real, 0, None)
  return (np.sum((mu1 - mu2)**2) + np.trace(sigma1) + np.trace(sigma2) -
          2 * np.sqrt(eigenvalues).sum())


# ---- Gaussian statistics and FID.


def test_gaussian_statistics_match_numpy_and_stream():
  rng = np.random.default_rng(0)
  # A large mean tests that merging batches does not cancel it out of the covariance.
  features = rng.normal(size=(500, 8)) * rng.uniform(0.1, 2, 8) + 1e4
  mu, sigma = metrics.gaussian_statistics(features)
  np.testing.assert_allclose(mu, features.mean(axis=0), rtol=1e-12)
  np.testing.assert_allclose(sigma, np.cov(features, rowvar=False), rtol=1e-9)

  moments = metrics.FeatureMoments.empty(8)
  for start, stop in ((0, 1), (1, 130), (130, 131), (131, 500)):
    moments = moments.merge(metrics.FeatureMoments.of(features[start:stop]))
  streamed_mu, streamed_sigma = moments.gaussian()
  assert moments.num_samples == 500
  np.testing.assert_allclose(streamed_mu, mu, rtol=1e-12)
  np.testing.assert_allclose(streamed_sigma, sigma, rtol=1e-9)


def test_frechet_distance_of_diagonal_gaussians_has_closed_form():
  rng = np.random.default_rng(1)
  mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
  var1, var2 = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
  expected = np.sum((mu1 - mu2)**2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
  np.testing.assert_allclose(
      metrics.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)), expected, rtol=1e-12)


def test_frechet_distance_matches_scipy_sqrtm_and_is_symmetric():
  rng = np.random.default_rng(2)
  mu1, mu2 = rng.normal(size=32), rng.normal(size=32)
  sigma1, sigma2 = random_covariance(rng, 32), random_covariance(rng, 32)
  expected = (np.sum((mu1 - mu2)**2) + np.trace(sigma1) + np.trace(sigma2) -
              2 * np.trace(scipy.linalg.sqrtm(sigma1 @ sigma2).real))
  distance = metrics.frechet_distance(mu1, sigma1, mu2, sigma2)
  np.testing.assert_allclose(distance, expected, rtol=1e-9)
  np.testing.assert_allclose(metrics.frechet_distance(mu2, sigma2, mu1, sigma1), distance,
                             rtol=1e-9)
  assert abs(metrics.frechet_distance(mu1, sigma1, mu1, sigma1)) < 1e-10 * np.trace(sigma1)


def test_frechet_distance_is_stable_for_singular_covariances():
  rng = np.random.default_rng(3)
  # Fewer samples than dimensions: both covariances have rank < 64.
  a, b = rng.normal(size=(20, 64)), rng.normal(size=(30, 64)) * 1.5 + 0.2
  stats_a, stats_b = metrics.gaussian_statistics(a), metrics.gaussian_statistics(b)
  np.testing.assert_allclose(metrics.frechet_distance(*stats_a, *stats_b),
                             reference_frechet_distance(*stats_a, *stats_b), rtol=1e-6)
  assert abs(metrics.frechet_distance(*stats_a, *stats_a)) < 1e-9 * np.trace(stats_a[1])
  # Dimensions where every sample is 0 make the covariances singular without
  # changing the distance.
  a, b = rng.normal(size=(200, 16)), rng.normal(size=(300, 16)) + 0.3
  padded = [np.concatenate([x, np.zeros((len(x), 48))], axis=1) for x in (a, b)]
  np.testing.assert_allclose(metrics.fid(*padded), metrics.fid(a, b), rtol=1e-9)


def test_fid_is_zero_for_one_sample_and_grows_with_noise():
  rng = np.random.default_rng(4)
  features = rng.normal(size=(2000, 32)) @ rng.normal(size=(32, 32)) + 1.0
  assert abs(metrics.fid(features, features)) < 1e-9
  distances = [metrics.fid(features, features + scale * rng.normal(size=features.shape))
               for scale in (0.1, 0.3, 1.0, 3.0)]
  assert 0 < distances[0] and np.all(np.diff(distances) > 0), distances


# ---- KID.


def reference_kid(a, b, num_subsets, subset_size, seed):
  """The unbiased MMD^2 estimator in float64 on the subsets ``kid`` documents."""
  subset_size = min(subset_size, len(a), len(b))
  rng = np.random.default_rng(seed)
  estimates = []
  for _ in range(num_subsets):
    x = a[rng.choice(len(a), subset_size, replace=False)].astype(np.float64)
    y = b[rng.choice(len(b), subset_size, replace=False)].astype(np.float64)
    kernel = lambda u, v: (u @ v.T / a.shape[1] + 1)**3
    off_diagonal = ~np.eye(subset_size, dtype=bool)
    estimates.append(kernel(x, x)[off_diagonal].mean() + kernel(y, y)[off_diagonal].mean() -
                     2 * kernel(x, y).mean())
  return np.mean(estimates), np.std(estimates)


@pytest.mark.parametrize("subset_size", [40, 1000])
def test_kid_matches_numpy_reference(subset_size):
  rng = np.random.default_rng(5)
  a = rng.normal(size=(60, 16)).astype(np.float32)
  b = (rng.normal(size=(70, 16)) * 1.3 + 0.4).astype(np.float32)
  mean, std = metrics.kid(a, b, num_subsets=7, subset_size=subset_size, seed=3)
  expected_mean, expected_std = reference_kid(a, b, 7, subset_size, seed=3)
  np.testing.assert_allclose(mean, expected_mean, rtol=1e-5)
  np.testing.assert_allclose(std, expected_std, rtol=1e-3)


def test_kid_of_one_distribution_is_zero_within_its_spread():
  rng = np.random.default_rng(6)
  a, b = rng.normal(size=(2, 600, 32)).astype(np.float32)
  mean, std = metrics.kid(a, b, num_subsets=50, subset_size=300)
  assert abs(mean) < std
  shifted_mean, _ = metrics.kid(a, b + 0.5, num_subsets=50, subset_size=300)
  assert shifted_mean > 20 * std


# ---- Inception Score.


def test_inception_score_matches_scipy_reference():
  rng = np.random.default_rng(7)
  logits = rng.normal(size=(103, 12)) * 3  # 103 does not split evenly into 10 parts.
  probs = scipy.special.softmax(logits, axis=1)
  scores = []
  for i in range(10):
    part = probs[i * 103 // 10:(i + 1) * 103 // 10]
    scores.append(np.exp(np.mean(scipy.stats.entropy(part.T, part.mean(axis=0)[:, None]))))
  np.testing.assert_allclose(metrics.inception_score(logits), (np.mean(scores), np.std(scores)),
                             rtol=1e-10)


def test_inception_score_extremes():
  logits = np.random.default_rng(8).normal(size=(1, 10))
  mean, std = metrics.inception_score(np.repeat(logits, 500, axis=0))
  np.testing.assert_allclose((mean, std), (1.0, 0.0), atol=1e-10)
  # Confident and balanced over 10 classes in every part; logits of 1000
  # overflow a softmax that does not subtract the maximum.
  labels = np.arange(1000) % 10
  mean, std = metrics.inception_score(1000.0 * np.eye(10)[labels])
  np.testing.assert_allclose((mean, std), (10.0, 0.0), atol=1e-9)


# ---- Precision/recall, density/coverage.


def reference_knn_radii(x, k):
  distances = cdist(x, x)
  np.fill_diagonal(distances, np.inf)
  return np.sort(distances, axis=1)[:, k - 1]


@pytest.fixture
def real_and_fake():
  rng = np.random.default_rng(9)
  # Offset from the origin, to exercise the centring of the float32 distances.
  real = rng.normal(size=(300, 10)) + 20
  fake = rng.normal(size=(250, 10)) * 1.2 + 20.3
  return real.astype(np.float32), fake.astype(np.float32)


def test_precision_recall_match_brute_force(real_and_fake):
  real, fake = (x.astype(np.float64) for x in real_and_fake)
  fake_to_real = cdist(fake, real)
  precision = np.mean(np.any(fake_to_real <= reference_knn_radii(real, 3), axis=1))
  recall = np.mean(np.any(fake_to_real.T <= reference_knn_radii(fake, 3), axis=1))
  # batch_size 64 does not divide either set: the last chunk is a remainder.
  assert metrics.precision_recall(*real_and_fake, k=3, batch_size=64) == (
      pytest.approx(precision), pytest.approx(recall))
  assert metrics.precision_recall(real_and_fake[0], real_and_fake[0], k=3) == (1.0, 1.0)


def test_density_coverage_match_brute_force(real_and_fake):
  real, fake = (x.astype(np.float64) for x in real_and_fake)
  radii = reference_knn_radii(real, 5)
  fake_to_real = cdist(fake, real)
  density = np.sum(fake_to_real <= radii) / (5 * len(fake))
  coverage = np.mean(fake_to_real.min(axis=0) <= radii)
  assert metrics.density_coverage(*real_and_fake, k=5, batch_size=64) == (
      pytest.approx(density), pytest.approx(coverage))
  _, coverage = metrics.density_coverage(real_and_fake[0], real_and_fake[0], k=5)
  assert coverage == 1.0


# ---- PSNR, SSIM, Y channel.


def reference_image_metrics(a, b, data_range, crop_border, y_channel):
  """scikit-image's PSNR and SSIM of each image pair, on Y channels if asked."""
  if y_channel:
    # rgb2ycbcr takes uint8 or floats in [0, 1] and gives Y in [16, 235].
    a, b = (rgb2ycbcr(x / data_range if x.dtype != np.uint8 else x)[..., :1] for x in (a, b))
    data_range = 255
  if crop_border:
    a, b = (x[:, crop_border:-crop_border, crop_border:-crop_border] for x in (a, b))
  psnrs = [peak_signal_noise_ratio(x, y, data_range=data_range) for x, y in zip(a, b)]
  ssims = [structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=data_range,
                                 channel_axis=-1) for x, y in zip(a, b)]
  return np.array(psnrs), np.array(ssims)


def random_image_pair(rng, shape):
  """Smooth uint8 images (large flat areas stress the SSIM variances) and noisy copies."""
  smooth = scipy.ndimage.gaussian_filter(rng.uniform(0, 255, shape), (0, 3, 3, 0))
  a = np.clip((smooth - smooth.mean()) * 4 + 128, 0, 255).round()
  b = np.clip(a + rng.normal(0, 6, shape), 0, 255).round()
  return a.astype(np.uint8), b.astype(np.uint8)


def test_rgb_to_y_matches_skimage():
  a, _ = random_image_pair(np.random.default_rng(10), (2, 16, 16, 3))
  np.testing.assert_allclose(jax.jit(metrics.rgb_to_y)(a), rgb2ycbcr(a)[..., :1], atol=1e-4)
  np.testing.assert_allclose(jax.jit(metrics.rgb_to_y)(a / 255.0, 1.0), rgb2ycbcr(a)[..., :1],
                             atol=1e-4)


@pytest.mark.parametrize("as_float", [False, True], ids=["uint8", "float01"])
@pytest.mark.parametrize("crop_border, y_channel", [(0, False), (4, True)])
def test_psnr_ssim_match_skimage(as_float, crop_border, y_channel):
  a, b = random_image_pair(np.random.default_rng(11), (3, 48, 40, 3))
  data_range = 255
  if as_float:
    a, b, data_range = a / np.float32(255), b / np.float32(255), 1.0
  expected_psnr, expected_ssim = reference_image_metrics(a, b, data_range, crop_border,
                                                         y_channel)
  options = dict(data_range=data_range, crop_border=crop_border, y_channel=y_channel)
  np.testing.assert_allclose(jit_psnr(a, b, **options), expected_psnr, atol=1e-4)
  np.testing.assert_allclose(jit_ssim(a, b, **options), expected_ssim, atol=1e-5)
  assert np.all(np.isinf(jit_psnr(a, a, **options)))
  np.testing.assert_allclose(jit_ssim(a, a, **options), 1.0, atol=1e-6)


# Bicubic upsampling on Set5 in the super-resolution convention (Y channel,
# crop = scale), with the figures published for it (e.g. Lim et al., 2017).
# Those were computed on Y rounded to uint8 (MATLAB's rgb2ycbcr), which this
# library does not do, hence the tolerance: ~0.02 dB and ~0.001 SSIM.
@pytest.mark.parametrize("scale, published_psnr, published_ssim",
                         [(2, 33.66, 0.9299), (4, 28.42, 0.8104)])
def test_set5_bicubic_matches_skimage_and_published_figures(shared_datasets, scale,
                                                            published_psnr, published_ssim):
  folder = shared_datasets / "sr" / "Set5" / f"image_SRF_{scale}"
  high_res_paths = sorted(folder.glob("*_HR.png"))
  if not high_res_paths:
    pytest.skip(f"Set5 (x{scale}) not found in {folder}")
  psnrs, ssims = [], []
  for path in high_res_paths:
    high_res = Image.open(path).convert("RGB")
    low_res = Image.open(str(path).replace("_HR.png", "_LR.png")).convert("RGB")
    # PIL's bicubic is MATLAB's kernel (a = -0.5); the crop removes most of
    # their different edge handling.
    upsampled = np.asarray(low_res.resize(high_res.size, Image.BICUBIC))[None]
    high_res = np.asarray(high_res)[None]
    expected_psnr, expected_ssim = reference_image_metrics(high_res, upsampled, 255, scale,
                                                           y_channel=True)
    psnrs.append(jit_psnr(high_res, upsampled, crop_border=scale, y_channel=True)[0])
    ssims.append(jit_ssim(high_res, upsampled, crop_border=scale, y_channel=True)[0])
    np.testing.assert_allclose(psnrs[-1], expected_psnr[0], atol=1e-4)
    np.testing.assert_allclose(ssims[-1], expected_ssim[0], atol=1e-5)
  assert abs(np.mean(psnrs) - published_psnr) < 0.03
  assert abs(np.mean(ssims) - published_ssim) < 0.0012
