"""Does pretraining help with few labels? Digits 0-4 -> digits 5-9, four ways, several seeds.

    python -m alexnet_jax.transfer --seeds=3 --labels_per_class=10 --out=results/transfer

For every seed: the `small` AlexNet is pretrained on the digits 0-4 (all
their training examples), then trained on the digits 5-9 with only
`labels_per_class` labelled training examples per class, in four ways:

- (a) from scratch (He init; the pretrained network is not used);
- (b) fine-tuning every layer from the pretrained weights;
- (c) fine-tuning with conv1-conv5 frozen (fc6-fc8 train);
- (d) a linear probe: only the classifier head fc8 trains.

The pretrained network's head has 5 outputs too, but for the digits 0-4;
(b)-(d) start it afresh (`reinit_layers=fc8`).
All four use the same recipe and budget (`--steps`, batch = every labelled
example, the paper's SGD rule, cosine decay), and are tested on every test
image of the digits 5-9. The table (mean and standard deviation over seeds
of the test error) is printed and written to `<out>/transfer.md`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags, logging  # noqa: E402

from alexnet_jax import train  # noqa: E402
from configs import default  # noqa: E402

SOURCE_CLASSES, TARGET_CLASSES = "0,1,2,3,4", "5,6,7,8,9"
CONVS = "conv1,conv2,conv3,conv4,conv5"
METHODS = {
    "(a) from scratch": {},
    "(b) fine-tune all layers": {"init_from": True},
    "(c) fine-tune, conv1-conv5 frozen": {"init_from": True, "freeze": CONVS},
    "(d) linear probe (fc8 only)": {"init_from": True, "linear_probe": True},
}

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command's flags; defined only when it runs, so importing the module defines none."""
    flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1: each pretrains its own network and runs every method.")
    flags.DEFINE_integer("labels_per_class", 10, "Labelled training examples per target class (digits 5-9).")
    flags.DEFINE_integer("pretrain_epochs", 30, "Epochs of pretraining on the digits 0-4.")
    flags.DEFINE_integer("steps", 100, "Training steps of every target run.")
    flags.DEFINE_float("learning_rate", 0.01, "Peak learning rate of every target run.")
    flags.DEFINE_string("out", "results/transfer", "Where the runs and the table go.")
    flags.DEFINE_string("data_dir", "", "tfds data dir ('' = ~/tensorflow_datasets).")
    flags.DEFINE_bool("overwrite", False, "Replace the runs of an earlier call in --out.")


def _base(seed: int, data_dir: str):
    config = default.get_config()
    config.seed, config.data_dir, config.num_classes = seed, data_dir, 5
    config.eval_every_steps = 0  # evaluate at the end only
    config.log_every_steps = 50
    return config


def pretrain_config(seed: int, epochs: int, data_dir: str = ""):
    """The small model on every training example of the digits 0-4, the default recipe."""
    config = _base(seed, data_dir)
    config.classes, config.num_epochs, config.checkpoint_every_steps = SOURCE_CLASSES, float(epochs), 10_000
    config.warmup_epochs = min(config.warmup_epochs, epochs / 10)
    return config


def target_config(seed: int, method: str, pretrained_workdir: str, labels_per_class: int, steps: int,
                  learning_rate: float, data_dir: str = ""):
    """A run on the digits 5-9 with `labels_per_class` labels per class, as `method` (a key of METHODS)."""
    config = _base(seed, data_dir)
    config.classes, config.train_examples_per_class = TARGET_CLASSES, labels_per_class
    config.batch_size = 5 * labels_per_class  # every labelled example in every step
    config.num_train_steps, config.learning_rate, config.warmup_epochs = steps, learning_rate, 0.0
    config.checkpoint_every_steps = steps
    settings = METHODS[method]
    if settings.get("init_from"):
        # The pretrained head also has 5 outputs, but for other classes (0-4): start it afresh.
        config.init_from, config.reinit_layers = pretrained_workdir, "fc8"
    config.freeze = settings.get("freeze", "")
    config.linear_probe = settings.get("linear_probe", False)
    return config


def summarize(errors: dict[str, list[float]]) -> str:
    """A markdown table: test error mean and standard deviation (over seeds) per method."""
    lines = ["| method | test error, mean | std | runs |", "|---|---:|---:|---:|"]
    for method, values in errors.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        lines.append(f"| {method} | {100 * statistics.mean(values):.1f}% | {100 * spread:.1f}% | {len(values)} |")
    return "\n".join(lines)


def main(argv):
    del argv
    runs = os.path.join(FLAGS.out, "runs")
    if os.path.exists(runs):
        if not FLAGS.overwrite:
            raise SystemExit(f"error: {runs} holds an earlier call's runs; pass --overwrite to replace them.")
        logging.info("--overwrite: removing the earlier runs in %s", runs)
        shutil.rmtree(runs)
    start = time.time()
    errors: dict[str, list[float]] = {method: [] for method in METHODS}
    for seed in range(FLAGS.seeds):
        source = os.path.join(runs, f"seed{seed}", "pretrain_0-4")
        metrics = train.train_and_evaluate(pretrain_config(seed, FLAGS.pretrain_epochs, FLAGS.data_dir), source)
        logging.info("seed %d: pretrained on digits 0-4, test error %.4f", seed, metrics["val_top1_error"])
        for method in METHODS:
            config = target_config(seed, method, source, FLAGS.labels_per_class, FLAGS.steps, FLAGS.learning_rate,
                                   FLAGS.data_dir)
            workdir = os.path.join(runs, f"seed{seed}", method.split()[0].strip("()"))
            errors[method].append(train.train_and_evaluate(config, workdir)["val_top1_error"])
    table = summarize(errors)
    print(table)
    print(f"wall time {time.time() - start:.0f} s")
    with open(os.path.join(FLAGS.out, "transfer.md"), "w") as file:
        file.write(table + "\n")


if __name__ == "__main__":
    define_flags()
    logging.set_verbosity(logging.INFO)
    app.run(main)
