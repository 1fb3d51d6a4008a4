"""alexnet_jax entry point: train or evaluate a configuration.

  python main.py                                    # small AlexNet on the embedded digits
  python main.py --config=configs/imagenet.py       # the paper's two-tower model on ImageNet
  python main.py --config.batch_size=32             # any config field can be overridden
  python main.py --mode=eval --eval_steps=460,660   # evaluate checkpoints (several: an ensemble)
  python main.py --distributed                      # one process per host of a TPU VM / SLURM / MPI job

--workdir defaults to runs/<config name>; rerunning the same command resumes
from the latest checkpoint there.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import logging as python_logging  # noqa: E402

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from alexnet_jax import checkpoints, distributed, input_pipeline, sharding, train  # noqa: E402
from alexnet_jax.summary import model_summary  # noqa: E402

config_flags.DEFINE_config_file("config", "configs/default.py", "Experiment configuration file.", lock_config=True)
flags.DEFINE_string("workdir", "", "Where checkpoints and metrics go; default runs/<config file name>.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "prepare"],
                  "Train (and evaluate), only evaluate checkpoints, or only prepare the dataset (once, before a "
                  "multi-host run).")
flags.DEFINE_list("eval_steps", [], "With --mode=eval: checkpoint steps to average (default: the latest).")
flags.DEFINE_bool("distributed", False, "Multi-process run: start JAX's distributed runtime first. Alone it "
                  "detects the cluster (Cloud TPU VM, SLURM, Open MPI); the flags below set it by hand.")
flags.DEFINE_string("coordinator_address", "", "HOST:PORT of process 0 (implies --distributed).")
flags.DEFINE_integer("num_processes", 0, "Number of processes in the run (with --coordinator_address).")
flags.DEFINE_integer("process_id", -1, "This process's index, 0..num_processes-1 (with --coordinator_address).")
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
    try:
        if FLAGS.distributed or FLAGS.coordinator_address or FLAGS.num_processes or FLAGS.process_id >= 0:
            distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    # JAX reports every accelerator backend it did not find; that is not news.
    python_logging.getLogger("jax._src.xla_bridge").setLevel(python_logging.WARNING)
    import tensorflow_datasets

    quiet_info_from(tensorflow_datasets)
    if jax.process_index() != 0:
        logging.set_verbosity(logging.WARNING)
    config = FLAGS.config
    workdir = FLAGS.workdir or default_workdir()
    logging.info("JAX %s, %s", jax.__version__, distributed.describe_processes())
    if jax.process_index() != 0:
        logging.warning("%s; only process 0 logs progress and writes metrics", distributed.describe_processes())
    try:
        if FLAGS.mode == "prepare":
            if jax.process_count() > 1:
                raise ValueError("--mode=prepare runs in one process; start it once, without the distributed flags.")
            data = input_pipeline.load_data(input_pipeline.InputConfig.from_config(config))
            logging.info("%s is ready: %d training and %d evaluation examples.", config.dataset, len(data.train),
                         len(data.eval))
            return
        logging.info("workdir %s; model:\n%s", workdir, model_summary(train.create_model(config), config.image_size))
        if FLAGS.mode == "train":
            train.train_and_evaluate(config, workdir)
        else:
            train.evaluate_checkpoints(config, workdir, [int(s) for s in FLAGS.eval_steps])
    except train.Preempted as stopped:
        logging.warning("%s", stopped)
        raise SystemExit(train.PREEMPTED_EXIT_CODE) from None
    except (input_pipeline.DataError, sharding.MeshError, train.TrainingError, checkpoints.CheckpointError,
            distributed.PeerError, FileNotFoundError, ImportError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None  # the message says what to do; no traceback


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
