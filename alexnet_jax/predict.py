"""Top-5 predictions of a trained run for image files.

  python -m alexnet_jax.predict --workdir=runs/default photo.jpg other.png
  python -m alexnet_jax.predict --workdir=runs/imagenet --step=450000 --ten_crop cat.jpg

Rebuilds the model from `<workdir>/config.json`, the preprocessing and class
names from `<workdir>/data.json` (both written when training starts), loads
the parameters of the latest (or `--step`) checkpoint on one device, and
prints the five most probable classes of each image with their
probabilities. Images go through the evaluation preprocessing: the central
square of the shorter side resized to `resize_size`, the central
`image_size` crop (or the paper's 10 crops, averaged), the training set's
mean/std normalization.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Sequence

import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf
from absl import app, flags

from alexnet_jax import checkpoints, metrics, rundir, runtime, steps
from alexnet_jax.data import augment, sources
from alexnet_jax.errors import ConfigError, MissingFileError, UserError
from alexnet_jax.models import AlexNet


def load_run(workdir: str) -> tuple[ml_collections.ConfigDict, dict]:
    """(config, data info) saved by training in `workdir` (rundir.read_run_info)."""
    return rundir.read_run_info(workdir)


class TrainedRun(NamedTuple):
    """What it takes to run a trained network on new images."""

    config: ml_collections.ConfigDict
    model: AlexNet
    params: dict  # host numpy arrays, as saved
    color_stats: sources.ColorStats  # the training set's, for normalizing inputs
    class_names: list[str]  # one per class; the class index as text where the data set has no names


def load_trained_run(workdir: str, step: int | None = None) -> TrainedRun:
    """The model, parameters (latest checkpoint, or `step`) and preprocessing of a training run."""
    config, info = load_run(workdir)
    if config.normalization == "batchnorm":
        raise ConfigError(
            "predict and visualize read parameters only; batch-norm models also need their running statistics."
        )
    stats = sources.ColorStats.from_json(info["color_stats"])
    params = checkpoints.load_params(workdir, step)
    names = list(info["class_names"]) or [str(i) for i in range(config.num_classes)]
    return TrainedRun(config, steps.create_model(config), params, stats, names)


def preprocess_image(
    image: np.ndarray, config, stats: sources.ColorStats, ten_crop: bool
) -> np.ndarray:
    """A uint8 image (H, W, 3) -> (S, S, 3), or (10, S, S, 3) crops, normalized as in evaluation."""
    eval_config = sources.InputConfig(
        image_size=config.image_size,
        resize_size=config.resize_size,
        eval_crop="ten_crop" if ten_crop else "center",
    )
    return augment.eval_image(tf.convert_to_tensor(image, tf.uint8), eval_config, stats).numpy()


def preprocess(path: str, config, stats: sources.ColorStats, ten_crop: bool) -> np.ndarray:
    """An image file -> (S, S, 3), or (10, S, S, 3) crops, normalized as in evaluation."""
    if not os.path.isfile(path):
        raise MissingFileError(f"No image file at {path!r}.")
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError as error:
        raise ConfigError(f"{path!r} cannot be read as an image (JPEG, PNG, GIF, BMP).") from error
    return preprocess_image(image.numpy(), config, stats, ten_crop)


def ranked(
    probabilities: np.ndarray, class_names: Sequence[str], k: int = 5
) -> list[list[tuple[str, float]]]:
    """(N, classes) probabilities -> for each row, its k most probable (class name, probability), best first."""
    results = []
    for row in probabilities:
        best = np.argsort(-row)[:k]
        results.append([(class_names[i], float(row[i])) for i in best])
    return results


def top5(
    workdir: str, paths: list[str], step: int | None = None, ten_crop: bool = False
) -> list[list[tuple[str, float]]]:
    """For each image, the five most probable (class name, probability) pairs."""
    run = load_trained_run(workdir, step)
    images = jnp.asarray(
        np.stack([preprocess(p, run.config, run.color_stats, ten_crop) for p in paths])
    )
    probabilities = np.asarray(
        metrics.predict_probabilities(run.model, ((run.params, {}),), images)
    )
    return ranked(probabilities, run.class_names)


FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command's flags; defined only when it runs, so importing the module (visualize, training) defines none."""
    flags.DEFINE_string("workdir", None, "The --workdir of a training run.")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
    flags.DEFINE_bool("ten_crop", False, "Average the paper's 10 crops instead of the centre crop.")
    flags.mark_flag_as_required("workdir")


def main(argv):
    paths = argv[1:]
    if not paths:
        raise app.UsageError(
            "Name at least one image file: python -m alexnet_jax.predict --workdir=DIR IMAGE..."
        )
    runtime.quiet_library_logs()
    try:
        results = top5(FLAGS.workdir, paths, FLAGS.step, FLAGS.ten_crop)
    except UserError as error:  # one line; anything else is a bug and keeps its traceback
        raise SystemExit(f"error: {error}") from None
    for path, best in zip(paths, results):
        print(path)
        for rank, (name, probability) in enumerate(best, start=1):
            print(f"  {rank}. {name:<30} {probability:7.2%}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
