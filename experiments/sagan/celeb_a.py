"""The SAGAN recipe of experiments/sagan/mnist.py on CelebA faces at 64x64.

The DCGAN CelebA networks (experiments/dcgan/celeb_a.py) with spectral norm in
both, self-attention on the 32x32 maps of each, hinge loss and two time-scale
learning rates.

Run (TFDS downloads celeb_a, about 1.4 GB):
  gen-jax train --config experiments/sagan/celeb_a.py --workdir /tmp/sagan_celeba
Arguments: ``smoke``.
Expected: faces after ~10k steps (an accelerator is advised).
"""

from gen_jax import configs


def get_config(arg=None):
  args = configs.parse_args(arg)
  config = configs.experiment_config(__file__, "dcgan/celeb_a", arg)
  configs.sibling_recipe(__file__)(config, args)
  return config
