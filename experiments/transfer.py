"""Does pretraining help with few labels? Digits 0-4 -> digits 5-9, four ways, several seeds.

    python -m experiments.transfer --seeds=3 --labels_per_class=10 --out=results/transfer

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

Runs go to `<out>/runs/seed<k>/` (`pretrain_0-4`, then `a` to `d`); a
finished run is read back, not repeated, so an interrupted study continues
where it stopped (`--overwrite` starts afresh). Checkpoints are kept: (b)-(d)
start from the pretrained one.
"""

from __future__ import annotations

import os
import time

from absl import app, flags, logging

from alexnet_jax.errors import UserError
from configs import default
from experiments import runner

__all__ = [
    "CONVS",
    "METHODS",
    "SOURCE_CLASSES",
    "TARGET_CLASSES",
    "define_flags",
    "main",
    "pretrain_config",
    "run_study",
    "summarize",
    "target_config",
]

SOURCE_CLASSES, TARGET_CLASSES = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
CONVS = ("conv1", "conv2", "conv3", "conv4", "conv5")
METHODS = {
    "(a) from scratch": {},
    "(b) fine-tune all layers": {"init_from": True},
    "(c) fine-tune, conv1-conv5 frozen": {"init_from": True, "freeze": CONVS},
    "(d) linear probe (fc8 only)": {"init_from": True, "linear_probe": True},
}
PRETRAIN = "pretrain on digits 0-4"

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command's flags; defined only when it runs, so importing the module defines none."""
    runner.define_flags(
        "results/transfer",
        "Seeds 0..N-1: each pretrains its own network and runs every method.",
        "Where the runs and the table go.",
    )
    flags.adopt_module_key_flags(runner)
    flags.DEFINE_integer(
        "labels_per_class", 10, "Labelled training examples per target class (digits 5-9)."
    )
    flags.DEFINE_integer("pretrain_epochs", 30, "Epochs of pretraining on the digits 0-4.")
    flags.DEFINE_integer("steps", 100, "Training steps of every target run.")
    flags.DEFINE_float("learning_rate", 0.01, "Peak learning rate of every target run.")
    flags.DEFINE_string("data_dir", "", "tfds data dir ('' = ~/tensorflow_datasets).")


def _base(seed: int, data_dir: str):
    config = default.get_config()
    config.seed, config.data_dir, config.num_classes = seed, data_dir, 5
    config.eval_every_steps = config.eval_every_epochs = 0  # evaluate at the end only
    config.checkpoint_every_epochs = 0.0  # checkpoint_every_steps below
    config.log_every_steps = 50
    return config


def pretrain_config(seed: int, epochs: int, data_dir: str = ""):
    """The small model on every training example of the digits 0-4, the default recipe."""
    config = _base(seed, data_dir)
    config.classes, config.num_epochs = SOURCE_CLASSES, float(epochs)
    config.checkpoint_every_steps = 10_000
    config.warmup_epochs = min(config.warmup_epochs, epochs / 10)
    return config


def target_config(
    seed: int,
    method: str,
    pretrained_workdir: str,
    labels_per_class: int,
    steps: int,
    learning_rate: float,
    data_dir: str = "",
):
    """A run on the digits 5-9, `labels_per_class` labels per class, as `method` (in METHODS)."""
    config = _base(seed, data_dir)
    config.classes, config.train_examples_per_class = TARGET_CLASSES, labels_per_class
    config.batch_size = 5 * labels_per_class  # every labelled example in every step
    config.num_train_steps, config.learning_rate, config.warmup_epochs = steps, learning_rate, 0.0
    config.checkpoint_every_steps = steps
    settings = METHODS[method]
    if settings.get("init_from"):
        # The pretrained head also has 5 outputs, but for other classes (0-4): start it afresh.
        config.init_from, config.reinit_layers = pretrained_workdir, ("fc8",)
    config.freeze = settings.get("freeze", ())
    config.linear_probe = settings.get("linear_probe", False)
    return config


def summarize(errors: dict[str, list[float]]) -> str:
    """A markdown table: test error mean and standard deviation (over seeds) per method."""
    rows = []
    for method, values in errors.items():
        mean, spread = runner.mean_std(values)
        rows.append((method, f"{100 * mean:.1f}%", f"{100 * spread:.1f}%", str(len(values))))
    return runner.markdown_table(("method", "test error, mean", "std", "runs"), rows)


def run_study(
    seeds: int,
    labels_per_class: int,
    pretrain_epochs: int,
    steps: int,
    learning_rate: float,
    out: str,
    data_dir: str = "",
) -> dict[str, list[float]]:
    """Pretrains for every seed, then runs every method; returns each method's test errors.

    The errors are listed by seed; the table goes to `<out>/transfer.md`.
    """
    runs = os.path.join(out, runner.RUNS_SUBDIR)

    def pretrained(seed: int) -> str:
        return os.path.join(runs, f"seed{seed}", "pretrain_0-4")

    def plan_pretraining(name: str, seed: int):
        return pretrain_config(seed, pretrain_epochs, data_dir), pretrained(seed)

    def plan_target(method: str, seed: int):
        config = target_config(
            seed, method, pretrained(seed), labels_per_class, steps, learning_rate, data_dir
        )
        return config, os.path.join(runs, f"seed{seed}", method.split()[0].strip("()"))

    start = time.time()
    runner.run_grid([PRETRAIN], seeds, plan_pretraining, keep_checkpoints=True)
    records = runner.run_grid(list(METHODS), seeds, plan_target, keep_checkpoints=True)
    errors = {
        method: [runner.final_evaluation(r)["val_top1_error"] for r in runs_of_method]
        for method, runs_of_method in records.items()
    }
    table = summarize(errors)
    print(table)
    print(f"wall time {time.time() - start:.0f} s")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "transfer.md"), "w") as file:
        file.write(table + "\n")
    return errors


def main(argv):
    """The command: the study as the flags say (`define_flags`)."""
    del argv
    try:
        runner.prepare_out(FLAGS.out, FLAGS.overwrite)
        run_study(
            FLAGS.seeds,
            FLAGS.labels_per_class,
            FLAGS.pretrain_epochs,
            FLAGS.steps,
            FLAGS.learning_rate,
            FLAGS.out,
            FLAGS.data_dir,
        )
    except UserError as error:  # the message says what to do; a bug keeps its traceback
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    define_flags()
    logging.set_verbosity(logging.INFO)
    app.run(main)
