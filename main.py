"""alexnet_jax entry point: train or evaluate a configuration.

  python main.py                                    # small AlexNet on the embedded digits
  python main.py --config=configs/imagenet.py       # the paper's two-tower model on ImageNet
  python main.py --config.batch_size=32             # any config field can be overridden
  python main.py --mode=eval --eval_steps=460,660   # evaluate checkpoints (several: an ensemble)

--workdir defaults to runs/<config name>; rerunning the same command resumes
from the latest checkpoint there.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import logging as python_logging  # noqa: E402

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from alexnet_jax import checkpoints, input_pipeline, sharding, train  # noqa: E402
from alexnet_jax.summary import model_summary  # noqa: E402

config_flags.DEFINE_config_file("config", "configs/default.py", "Experiment configuration file.", lock_config=True)
flags.DEFINE_string("workdir", "", "Where checkpoints and metrics go; default runs/<config file name>.")
flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train (and evaluate), or only evaluate checkpoints.")
flags.DEFINE_list("eval_steps", [], "With --mode=eval: checkpoint steps to average (default: the latest).")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() first (multi-host runs).")
FLAGS = flags.FLAGS


def default_workdir() -> str:
    config_path = flags.FLAGS["config"].config_filename
    return os.path.join("runs", os.path.splitext(os.path.basename(config_path))[0])


def quiet_info_from(module) -> None:
    """Hides a library's absl INFO lines (tfds logs every file it opens); its warnings still show."""
    root = os.path.dirname(os.path.abspath(module.__file__))
    logging.get_absl_logger().addFilter(
        lambda record: record.levelno >= python_logging.WARNING or not os.path.abspath(record.pathname).startswith(root)
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.distributed:
        jax.distributed.initialize()
    # JAX reports every accelerator backend it did not find; that is not news.
    python_logging.getLogger("jax._src.xla_bridge").setLevel(python_logging.WARNING)
    import tensorflow_datasets

    quiet_info_from(tensorflow_datasets)
    if jax.process_index() != 0:
        logging.set_verbosity(logging.WARNING)
    config = FLAGS.config
    workdir = FLAGS.workdir or default_workdir()
    logging.info("JAX %s, %d process(es), devices: %s", jax.__version__, jax.process_count(),
                 ", ".join(str(d) for d in jax.devices()))
    try:
        logging.info("workdir %s; model:\n%s", workdir, model_summary(train.create_model(config), config.image_size))
        if FLAGS.mode == "train":
            train.train_and_evaluate(config, workdir)
        else:
            train.evaluate_checkpoints(config, workdir, [int(s) for s in FLAGS.eval_steps])
    except train.Preempted as stopped:
        logging.warning("%s", stopped)
        raise SystemExit(train.PREEMPTED_EXIT_CODE) from None
    except (input_pipeline.DataError, sharding.MeshError, train.TrainingError, checkpoints.CheckpointError,
            FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None  # the message says what to do; no traceback


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
