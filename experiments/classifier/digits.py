"""The classifier of scikit-learn's digits (16x16, offline): domain features for the main job.

The MNIST recipe (experiments/classifier/mnist.py) at the main job's 16x16.

Run:
  gen-jax train --config experiments/classifier/digits.py --workdir /tmp/classifier_digits
  gen-jax eval --workdir /tmp/gen_jax_digits --features classifier:/tmp/classifier_digits \
      --reference digits:test --metrics fid,kid,is,pr --num 297
Expected: about 97% test accuracy after 1000 steps (a minute of CPU).
"""

from gen_jax import configs


def get_config(arg=None):
  config = configs.sibling_config(__file__, "mnist", arg)
  config.dataset = "digits"
  config.image_size = 16
  if "smoke" not in configs.parse_args(arg):
    config.batch_size = 64
    config.num_train_steps = 1000
  return config
