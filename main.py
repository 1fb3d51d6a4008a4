"""alexnet_jax entry point.

  python main.py                                   # small AlexNet, embedded digits config
  python main.py --config=configs/imagenet.py      # the paper's two-tower model
  python main.py --config.batch_size=32            # any config field can be overridden

Prints the configured model (layers, output shapes, parameters) and times
jitted forward/backward passes on a synthetic batch.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import logging as python_logging  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from alexnet_jax.models import AlexNet  # noqa: E402
from alexnet_jax.summary import model_summary  # noqa: E402

config_flags.DEFINE_config_file("config", "configs/default.py", "Experiment configuration file.", lock_config=True)
flags.DEFINE_integer("steps", 3, "Timed forward/backward passes after the compiling one.")
FLAGS = flags.FLAGS


def create_model(config) -> AlexNet:
    return AlexNet(
        num_classes=config.num_classes,
        variant=config.model,
        towers=config.towers,
        normalization=config.normalization,
        norm_position=config.norm_position,
        pooling=config.pooling,
        dropout_rate=config.dropout_rate,
        activation=config.activation,
        init_scheme=config.init_scheme,
        dtype=jnp.bfloat16 if config.half_precision else jnp.float32,
    )


def time_forward_backward(model: AlexNet, config, steps: int) -> None:
    """Compiles and times value_and_grad of the cross-entropy on random images."""
    key = jax.random.key(config.seed)
    images = jax.random.normal(key, (config.batch_size, config.image_size, config.image_size, 3))
    labels = jax.random.randint(key, (config.batch_size,), 0, config.num_classes)
    variables = jax.jit(model.init)(key, images[:1])

    @jax.jit
    def loss_and_grads(variables, images, labels, rng):
        def loss_fn(params):
            logits, _ = model.apply(
                {**variables, "params": params}, images, train=True, rngs={"dropout": rng}, mutable=["batch_stats"]
            )
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        return jax.value_and_grad(loss_fn)(variables["params"])

    start = time.perf_counter()
    loss, _ = jax.block_until_ready(loss_and_grads(variables, images, labels, key))
    logging.info("compiled and ran one forward/backward in %.1f s (loss %.4f, ln(classes) = %.4f)",
                 time.perf_counter() - start, float(loss), float(jnp.log(config.num_classes)))
    for step in range(steps):
        start = time.perf_counter()
        jax.block_until_ready(loss_and_grads(variables, images, labels, jax.random.fold_in(key, step)))
        seconds = time.perf_counter() - start
        logging.info("forward/backward %d/%d: %.3f s, %.1f images/s", step + 1, steps, seconds,
                     config.batch_size / seconds)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    config = FLAGS.config
    # JAX reports every accelerator backend it did not find; that is not news.
    python_logging.getLogger("jax._src.xla_bridge").setLevel(python_logging.WARNING)
    logging.info("JAX %s on %s", jax.__version__, ", ".join(str(d) for d in jax.devices()))
    model = create_model(config)
    logging.info("model:\n%s", model_summary(model, config.image_size))
    time_forward_backward(model, config, FLAGS.steps)


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
