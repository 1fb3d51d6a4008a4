"""alexnet_jax entry point: train or evaluate a configuration.

  python main.py                                    # small AlexNet on the embedded digits
  python main.py --config=configs/imagenet.py       # the paper's two-tower model on ImageNet
  python main.py --config.batch_size=32             # any config field can be overridden
  python main.py --mode=eval --eval_steps=440,660   # evaluate checkpoints (several: an ensemble)
  python main.py --mode=eval --ensemble_workdirs=runs/seed1,runs/seed2   # an ensemble of separate runs
  python main.py --distributed                      # one process per host of a TPU VM / SLURM / MPI job

--workdir defaults to runs/<config name>; rerunning the same command resumes
from the latest checkpoint there.
"""

import contextlib
import difflib
import faulthandler
import io
import os
import re
import signal
import sys

from absl import app, flags, logging
from ml_collections import config_dict, config_flags

import alexnet_jax  # noqa: F401  (sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads)

DEFAULT_CONFIG = "configs/default.py"


@contextlib.contextmanager
def command_line_mistakes_on_one_line():
    """Reports a mistake on the command line as one line on stderr, `error: ...`, and exit status 2.

    The mistakes: an unknown flag or config field (named with the closest existing one), a value of
    the wrong type, a --config file that is not there. Status 2 is what argparse and the shells use
    for a wrong command line (absl's own parser prints two lines and exits 1); 1 stays for a run
    that fails. An exception from a config file's get_config() is a bug in that file and keeps its
    traceback, as does any other exception.
    """
    # ml_collections reads --config and the --config.<field> overrides from sys.argv too.
    config_file, fields = DEFAULT_CONFIG, []
    for arg, next_arg in zip(sys.argv[1:], [*sys.argv[2:], ""]):
        if match := re.fullmatch(r"--?config(=(.*))?", arg):
            config_file = match[2] if match[1] else next_arg
        elif match := re.match(r"--?(no)?config\.([^=]+)", arg):
            fields.append(match[2])
    try:
        yield
    except flags.Error as error:
        if str(error).startswith(
            "flag --config="
        ):  # get_config() raised a TypeError or ValueError:
            raise SystemExit(
                str(error)
            ) from None  # a bug in the file; absl's message holds its traceback
        message = " ".join(str(error).removeprefix("flag ").split())
        name = re.match(r"--(config\.[^=]+)=", message)
        if name and (value := FLAGS[name[1]].default) is not None:
            message += f"; expected {type(value).__name__} like the config's {value!r}"
        elif isinstance(error, flags.UnrecognizedFlagError):
            message += " (python main.py --helpshort lists the flags)"
    except OSError:  # ml_collections defers "file not found" to the config's first use
        if os.path.exists(config_file.split(":", 1)[0]):
            raise
        message = (
            f"--config: {config_file} not found (paths are relative to the current directory, "
            "e.g. --config=configs/imagenet.py)"
        )
    except (
        AttributeError,
        KeyError,
    ):  # ml_collections looking up an override, or a bug in get_config()
        message = misspelt_field(config_file, fields)
        if message is None:
            raise
    else:
        return
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def misspelt_field(config_file: str, fields: list[str]) -> str | None:
    """What is wrong with the first of `fields` (dotted paths) the config lacks; None if it has all."""
    try:  # the config as its file gives it: a sys_argv without the overrides
        alone = flags.FlagValues()
        config_flags.DEFINE_config_file(
            "config", config_file, flag_values=alone, sys_argv=sys.argv[:1]
        )
        config = alone["config"].value
    except Exception:  # noqa: BLE001 -- an error of the config file itself: the caller re-raises it
        return None
    for field in fields:
        node, parts = config, field.split(".")
        for depth, part in enumerate(parts):
            keys = list(node.keys()) if isinstance(node, config_dict.ConfigDict) else []
            if part not in keys:
                close = difflib.get_close_matches(part, keys, n=1)
                hint = (
                    f"did you mean '{'.'.join(parts[:depth] + close)}'?"
                    if close
                    else f"its fields are in {config_file}"
                )
                return f"--config.{field}: the config has no field '{'.'.join(parts[: depth + 1])}'; {hint}"
            node = node[part]
    return None


# Without --config on the command line, the default config and its overrides are read right here.
with command_line_mistakes_on_one_line():
    config_flags.DEFINE_config_file(
        "config", DEFAULT_CONFIG, "Experiment configuration file.", lock_config=True
    )
flags.DEFINE_string(
    "workdir", "", "Where checkpoints and metrics go; default runs/<config file name>."
)
flags.DEFINE_enum(
    "mode",
    "train",
    ["train", "eval", "prepare"],
    "Train (and evaluate), only evaluate checkpoints, or only prepare the dataset (once, before a "
    "multi-host run; with --config.resized_copy=True also its resized copy).",
)
flags.DEFINE_list(
    "eval_steps", [], "With --mode=eval: checkpoint steps to average (default: the latest)."
)
flags.DEFINE_list(
    "ensemble_workdirs",
    [],
    "With --mode=eval: the workdirs of other, separately trained runs of the "
    "same config whose latest checkpoints join the ensemble (the paper's 5 CNNs).",
)
flags.DEFINE_bool(
    "distributed",
    False,
    "Multi-process run: start JAX's distributed runtime first. Alone it "
    "detects the cluster (Cloud TPU VM, SLURM, Open MPI); the flags below set it by hand.",
)
flags.DEFINE_string("coordinator_address", "", "HOST:PORT of process 0 (implies --distributed).")
flags.DEFINE_integer(
    "num_processes", 0, "Number of processes in the run (with --coordinator_address)."
)
flags.DEFINE_integer(
    "process_id", -1, "This process's index, 0..num_processes-1 (with --coordinator_address)."
)
FLAGS = flags.FLAGS


def default_workdir() -> str:
    config_path = flags.FLAGS["config"].config_filename
    return os.path.join("runs", os.path.splitext(os.path.basename(config_path))[0])


def parse_flags(argv: list[str]) -> list[str]:
    """`app.run`'s flags parser: `FLAGS(argv)`, with the command line's mistakes on one line."""
    with command_line_mistakes_on_one_line():
        remaining = FLAGS(argv)
        FLAGS.config.keys()  # a config file that failed to load raises only here, at its first use
    return remaining


def stacks_on_sigusr1() -> None:
    """`kill -USR1 <pid>` prints every thread's Python stack to stderr and the run goes on: where a
    run that seems stuck (a process of a multi-host job waiting for its peers) is.

    Not where stderr is no file (main() called inside a notebook kernel): the run is the same
    without it.
    """
    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (AttributeError, ValueError, io.UnsupportedOperation):
        pass


def main(argv):
    stacks_on_sigusr1()
    import jax  # here, after the flags: a mistake in them is reported in 0.2 s, not after 7 s of imports

    from alexnet_jax import distributed, errors, runtime, train

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        if (
            FLAGS.distributed
            or FLAGS.coordinator_address
            or FLAGS.num_processes
            or FLAGS.process_id >= 0
        ):
            distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
        runtime.quiet_library_logs()
        if jax.process_index() != 0:
            logging.set_verbosity(logging.WARNING)
            logging.warning(
                "%s; only process 0 logs progress and writes metrics",
                distributed.describe_processes(),
            )
        logging.info("JAX %s, %s", jax.__version__, distributed.describe_processes())
        run(FLAGS.mode, FLAGS.config, FLAGS.workdir or default_workdir())
    except train.Preempted as stopped:
        logging.warning("%s", stopped)
        raise SystemExit(train.PREEMPTED_EXIT_CODE) from None
    except (
        errors.UserError
    ) as error:  # the message says what to do; any other exception is a bug: its traceback shows
        raise SystemExit(f"error: {error}") from None


def run(mode: str, config, workdir: str) -> None:
    """Prepares the data, trains (then draws the curves), or evaluates checkpoints."""
    import jax

    from alexnet_jax import errors, steps, train
    from alexnet_jax.data import sources
    from alexnet_jax.summary import model_summary

    if mode == "prepare":
        if jax.process_count() > 1:
            raise errors.ConfigError(
                "--mode=prepare runs in one process; start it once, without the distributed flags."
            )
        data = sources.prepare_data(sources.InputConfig.from_config(config))
        logging.info(
            "%s is ready: %d training and %d evaluation examples.",
            config.dataset,
            len(data.train),
            len(data.eval),
        )
        return
    logging.info(
        "workdir %s; model:\n%s",
        workdir,
        model_summary(steps.create_model(config), config.image_size),
    )
    if mode == "train":
        train.train_and_evaluate(config, workdir)
        if jax.process_index() == 0 and config.training_curves:
            from alexnet_jax import visualize  # matplotlib: only now

            visualize.try_write_training_curves(workdir)
    else:
        train.evaluate_checkpoints(
            config, workdir, [int(s) for s in FLAGS.eval_steps], FLAGS.ensemble_workdirs
        )


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main, flags_parser=parse_flags)
