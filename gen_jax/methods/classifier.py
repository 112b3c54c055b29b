"""Supervised classification: trains the networks behind the domain feature spaces."""

import jax
import jax.numpy as jnp
import optax

from gen_jax.methods.base import Batch, Method, Metrics
from gen_jax.train.state import TrainState, apply_gradients


class Classifier(Method):
  """Softmax cross-entropy on the dataset's labels.

  Not a generative method (``generative = False``: the trainer writes no
  sample grids). A trained run serves as a feature network for evaluation
  (``--features classifier:WORKDIR``) and is judged by its test accuracy
  (``gen-jax eval --workdir WORKDIR --metrics accuracy``).
  """

  network_names = ("classifier",)
  sampling_network = "classifier"
  generative = False

  def init_variables(self, rng):
    images = jnp.zeros((1, *self.info.image_shape))
    return {"classifier": self.networks["classifier"].init(rng, images)}

  def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    def loss_fn(params):
      logits, _ = self.apply("classifier", params, state.collections["classifier"],
                             batch["image"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
      return loss, logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params["classifier"])
    state = apply_gradients(state, "classifier", grads, self.optimizers["classifier"],
                            self.ema_decay)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
    return state.replace(step=state.step + 1), {"loss": loss, "accuracy": accuracy}

  def classify(self, variables, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Logits [B, num_classes] and penultimate features [B, D] of images in [-1, 1]."""
    return self.networks["classifier"].apply(variables, images, return_features=True)

  def generate(self, variables, rng, labels, mutable=False):
    raise TypeError("a classifier run does not generate images; use it as a feature "
                    "network: --features classifier:WORKDIR")
