"""alexnet_jax entry point.

  python main.py                                   # small AlexNet, embedded digits config
  python main.py --config=configs/imagenet.py      # the paper's two-tower model
  python main.py --config.batch_size=32            # any config field can be overridden

Prints the configured model (layers, output shapes, parameters), prepares the
dataset (offline for the default digits), measures the input pipeline, and
times jitted forward/backward passes on real training batches.
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

from alexnet_jax import input_pipeline  # noqa: E402
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


def time_input(batches, batch_size: int, count: int = 10) -> dict:
    """Takes `count` batches after a first one and logs images/s; returns the last batch."""
    batch = next(batches)
    start = time.perf_counter()
    for _ in range(count):
        batch = next(batches)
    seconds = time.perf_counter() - start
    logging.info("input pipeline: %d batches of %d in %.2f s, %.0f images/s", count, batch_size, seconds,
                 count * batch_size / seconds)
    return batch


def time_forward_backward(model: AlexNet, config, batch: dict, steps: int) -> None:
    """Compiles and times value_and_grad of the cross-entropy on one real batch."""
    key = jax.random.key(config.seed)
    images, labels = jnp.asarray(batch["image"]), jnp.asarray(batch["label"])
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
                     len(labels) / seconds)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    config = FLAGS.config
    # JAX reports every accelerator backend it did not find; that is not news.
    python_logging.getLogger("jax._src.xla_bridge").setLevel(python_logging.WARNING)
    logging.info("JAX %s on %s", jax.__version__, ", ".join(str(d) for d in jax.devices()))
    model = create_model(config)
    logging.info("model:\n%s", model_summary(model, config.image_size))
    input_config = input_pipeline.InputConfig.from_config(config)
    logging.set_verbosity(logging.ERROR)  # tfds logs every file it opens at INFO
    try:
        data = input_pipeline.load_data(input_config)
        batches = input_pipeline.train_dataset(data, input_config, config.batch_size).as_numpy_iterator()
    except input_pipeline.DataError as error:
        raise SystemExit(f"error: {error}") from None  # the message says what to do; no traceback
    finally:
        logging.set_verbosity(logging.INFO)
    logging.info("data: %s, %d training and %d evaluation examples, %d classes%s", config.dataset,
                 len(data.train), len(data.eval), data.num_classes,
                 f", {len(data.skipped_files)} unreadable files skipped" if data.skipped_files else "")
    if data.num_classes != config.num_classes:
        raise SystemExit(f"error: {config.dataset} has {data.num_classes} classes but config.num_classes is "
                         f"{config.num_classes}; set --config.num_classes={data.num_classes}.")
    batch = time_input(batches, config.batch_size)
    time_forward_backward(model, config, batch, FLAGS.steps)

if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
