"""The paper's Figure 1: how much faster a CNN with ReLUs trains than the same net with tanh units.

    python -m experiments.figure1 --seeds=5 --out=results/figure1 --report_dir=docs/ablation

The paper (Section 3.1, Figure 1): "A four-layer convolutional neural network with ReLUs (solid
line) reaches a 25% training error rate on CIFAR-10 six times faster than an equivalent network
with tanh neurons (dashed line). The learning rates for each network were chosen independently
to make training as fast as possible. No regularization of any kind was employed." The protocol
here, on the base config's data (`--config`, default `configs/default.py`: the embedded digits,
all 1,437 training images; `--config=configs/cifar10.py` for CIFAR-10 when its archive is
present):

- the network: four layers with weights, conv1 5x5 (32 kernels) -> activation -> 3x3/2 max pool,
  conv2 5x5 (32) -> activation -> pool, conv3 3x3 (64) -> activation, then the fully connected
  output layer (the `small` AlexNet cut to `conv_features=(32, 32, 64)`, `hidden_features=()`);
  the same for both activations but for the activation;
- no regularization of any kind: no dropout, no weight decay, no augmentation (the evaluation's
  centre crop), no PCA lighting, no LRN or batch norm;
- plain SGD with momentum 0.9 at a constant learning rate, batch `--batch_size` (32), for
  `--steps` steps (300, about 6.7 epochs of the digits);
- the measure: the first step at which the training error of the batches as trained, averaged
  over the trailing `--window` steps (10: 320 images; on the digits 25% falls within the first
  epoch, so a trailing epoch would hide most of the difference), is at most
  `--target_train_error` (25%);
- a rate at which training diverges counts as not reaching the target: its non-finite steps
  are skipped (`skip_nonfinite_steps`), so its run ends and the sweep goes on;
- the learning rates: for each activation, a sweep over `--learning_rates` (3e-4 to 0.03, steps
  of about 3x) with `--sweep_seeds` seeds (2) picks the rate that reaches the target in the
  fewest steps (`fastest_rate`); then `--seeds` seeds (5: 0..4, the sweep's runs read back) at
  that rate.

Reported (`--report_dir`, default `--out`): `figure1.md` (the sweep and the result: steps to the
target per activation, mean and standard deviation over seeds, the ratio tanh / ReLU of the means
and the range of the seed-by-seed ratios), `figure1.png` (training error against epochs, ReLU
solid, tanh dashed, every seed) and `figure1.json` (every run's numbers). Runs go to
`<out>/runs/<activation>_lr<rate>/seed<k>`; a finished run is read back, so an interrupted study
continues where it stopped (`--overwrite` starts afresh).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Mapping, Sequence

import numpy as np
from absl import app, flags, logging
from matplotlib.figure import Figure
from ml_collections import config_flags

from alexnet_jax import visualize
from alexnet_jax.data import sources
from alexnet_jax.errors import ConfigError, UserError
from alexnet_jax.steps import num_train_steps
from experiments import ablate, runner

__all__ = [
    "ACTIVATIONS",
    "NETWORK",
    "define_flags",
    "fastest_rate",
    "figure1_config",
    "main",
    "plot_curves",
    "run_study",
    "summarize",
]

ACTIVATIONS = ("relu", "tanh")
STYLES = {"relu": "-", "tanh": "--"}  # the paper's: ReLU solid, tanh dashed
# The four-layer network and "no regularization of any kind".
NETWORK = {
    "model": "small",
    "conv_features": (32, 32, 64),
    "hidden_features": (),
    "normalization": "none",
    "dropout_rate": 0.0,
    "weight_decay": 0.0,
    "train_augment": "none",
    "pca_lighting_std": 0.0,
    "horizontal_flip": False,
    "label_smoothing": 0.0,
    "optimizer": "sgd",
    "momentum": 0.9,
    "schedule": "constant",
    "warmup_epochs": 0.0,
}

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command's flags; defined only when it runs, so importing the module defines none."""
    config_flags.DEFINE_config_file("config", "configs/default.py", "The data and the base config.")
    runner.define_flags("results/figure1", "Seeds 0..N-1 at each chosen rate.", "Where runs go.")
    FLAGS.set_default("seeds", 5)
    flags.adopt_module_key_flags(runner)
    flags.DEFINE_integer("steps", 300, "Training steps of every run.")
    flags.DEFINE_integer("batch_size", 32, "Batch size of every run.")
    flags.DEFINE_list(
        "learning_rates",
        ["0.0003", "0.001", "0.003", "0.01", "0.03"],
        "The sweep's learning rates.",
    )
    flags.DEFINE_integer("sweep_seeds", 2, "Seeds 0..K-1 of every rate of the sweep.")
    flags.DEFINE_float("target_train_error", 0.25, "The training error counted (Figure 1: 25%).")
    flags.DEFINE_integer("window", 10, "Steps of the trailing mean of the training error.")
    flags.DEFINE_string("report_dir", "", "Where the table and the picture go ('' = --out).")


def figure1_config(base, activation: str, learning_rate: float, seed: int, steps: int, batch: int):
    """`base` with the Figure-1 network and protocol (module docstring), for one run."""
    config = base.copy_and_resolve_references()
    for key, value in {**NETWORK, "activation": activation}.items():
        if key not in config:
            raise KeyError(f"The Figure-1 protocol sets {key!r}, which the config does not have.")
        config[key] = value
    config.learning_rate, config.seed = learning_rate, seed
    config.num_train_steps, config.batch_size = steps, batch
    config.train_examples_per_class = 0
    config.eval_every_steps, config.checkpoint_every_steps = 0, 0
    config.eval_every_epochs, config.checkpoint_every_epochs = 0.0, 0.0
    config.log_every_steps = 1  # every step's training error
    config.skip_nonfinite_steps = True  # a diverging rate ends its run, not the study
    return config


def fastest_rate(steps_by_rate: Mapping[float, Sequence[int | None]]) -> float:
    """The learning rate whose runs reach the target in the fewest steps (mean over its seeds).

    `steps_by_rate`: rate -> steps to the target of each sweep seed (None: not reached). Only
    rates where every seed reached the target count; between equally fast rates the smaller wins.
    ConfigError when no rate reached it (train longer: --steps).
    """
    reached = {
        rate: statistics.mean(steps)
        for rate, steps in steps_by_rate.items()
        if steps and all(s is not None for s in steps)
    }
    if not reached:
        raise ConfigError(
            f"No learning rate of the sweep ({', '.join(map(str, steps_by_rate))}) reached the "
            "target in every seed; train longer (--steps) or sweep other --learning_rates."
        )
    return min(reached, key=lambda rate: (reached[rate], rate))


def _slug(activation: str, rate: float) -> str:
    return f"{activation}_lr{rate:g}"


def _one_activation(activation, learning_rates, seeds, sweep_seeds, plan, summaries):
    """(fastest rate, {rate: steps to the target per sweep seed}, the summaries of `seeds` seeds
    at that rate)."""
    names = [f"{activation}@{rate!r}" for rate in learning_rates]
    records = runner.run_grid(names, sweep_seeds, plan, quiet=True)
    sweep = {
        rate: [s["steps_to_target"] for s in summaries(records[name])]
        for rate, name in zip(learning_rates, names)
    }
    rate = fastest_rate(sweep)
    logging.info(
        "%s: fastest rate of the sweep %g (steps to the target: %s)", activation, rate, sweep
    )
    name = f"{activation}@{rate!r}"
    return rate, sweep, summaries(runner.run_grid([name], seeds, plan, quiet=True)[name])


def run_study(
    base,
    seeds: int,
    steps: int,
    batch_size: int,
    learning_rates: Sequence[float],
    sweep_seeds: int,
    target: float,
    out: str,
    report_dir: str = "",
    window: int = 10,
) -> dict:
    """The sweep, then the seeds at each activation's fastest rate; writes the report."""
    if seeds < sweep_seeds or sweep_seeds < 1:
        raise ConfigError(f"need 1 <= --sweep_seeds <= --seeds; got {sweep_seeds} and {seeds}.")
    if not 1 <= window <= steps:
        raise ConfigError(f"--window must be between 1 and --steps ({steps}); got {window}.")
    probe = figure1_config(base, "relu", learning_rates[0], 0, steps, batch_size)
    train_examples = len(sources.load_data(sources.InputConfig.from_config(probe)).train)
    steps_per_epoch = num_train_steps(probe, train_examples)[1]
    runs_dir = os.path.join(out, runner.RUNS_SUBDIR)

    def summaries(records):
        return [ablate.run_summary(r, window, batch_size, target) for r in records]

    def plan(name: str, seed: int):
        activation, rate = name.split("@")
        config = figure1_config(base, activation, float(rate), seed, steps, batch_size)
        return config, os.path.join(runs_dir, _slug(activation, float(rate)), f"seed{seed}")

    start = time.time()
    sweep, chosen, results = {}, {}, {}
    with runner.shared_compilations(out):
        for activation in ACTIVATIONS:
            chosen[activation], sweep[activation], results[activation] = _one_activation(
                activation, learning_rates, seeds, sweep_seeds, plan, summaries
            )
    wall = time.time() - start

    report_dir = report_dir or out
    os.makedirs(report_dir, exist_ok=True)
    table = summarize(sweep, chosen, results, target, window)
    with open(os.path.join(report_dir, "figure1.md"), "w") as file:
        file.write(table + "\n")
    picture = os.path.join(report_dir, "figure1.png")
    plot_curves(results, chosen, steps_per_epoch, window, target, picture)
    with open(os.path.join(report_dir, "figure1.json"), "w") as file:
        protocol = {k: list(v) if isinstance(v, tuple) else v for k, v in NETWORK.items()}
        json.dump(
            {
                "dataset": base.dataset,
                "protocol": protocol,
                "steps": steps,
                "batch_size": batch_size,
                "steps_per_epoch": steps_per_epoch,
                "target_train_error": target,
                "window_steps": window,
                "sweep": {a: {f"{r:g}": s for r, s in v.items()} for a, v in sweep.items()},
                "chosen_learning_rates": chosen,
                "seeds": seeds,
                "wall_seconds": round(wall),
                "results": results,
            },
            file,
            indent=1,
        )
    print(table)
    print(f"wall time {wall:.0f} s; report in {report_dir}")
    return {"sweep": sweep, "chosen": chosen, "results": results}


def summarize(sweep, chosen, results, target: float, window: int = 10) -> str:
    """Two markdown tables: the sweep (steps to the target per rate), and the result at the chosen
    rates with the ratio tanh / ReLU."""
    rates = sorted({rate for by_rate in sweep.values() for rate in by_rate})
    percent = f"{100 * target:.0f}% training error (trailing mean over {window} steps)"

    def cell(steps):
        shown = ["-" if s is None else str(s) for s in steps]
        return ", ".join(shown)

    sweep_rows = [
        (activation, *(cell(sweep[activation].get(rate, [])) for rate in rates))
        for activation in sweep
    ]
    lines = [
        f"Sweep: steps to {percent} per learning rate ('-': not reached)",
        "",
        runner.markdown_table(("activation", *(f"lr {r:g}" for r in rates)), sweep_rows),
        "",
        f"At each activation's fastest rate, every seed: steps to {percent}",
        "",
    ]
    steps = {a: [r["steps_to_target"] for r in results[a]] for a in results}
    rows = []
    for activation in results:
        reached = [s for s in steps[activation] if s is not None]
        mean, std = runner.mean_std(reached) if reached else (float("nan"), 0.0)
        rows.append(
            (
                activation,
                f"{chosen[activation]:g}",
                cell(steps[activation]),
                f"{mean:.1f} ± {std:.1f}"
                + (
                    ""
                    if len(reached) == len(steps[activation])
                    else f" ({len(reached)}/{len(steps[activation])} reached)"
                ),
            )
        )
    lines.append(
        runner.markdown_table(("activation", "learning rate", "per seed", "mean ± std"), rows)
    )
    if set(steps) >= {"relu", "tanh"} and all(None not in s for s in steps.values()):
        paired = [t / r for r, t in zip(steps["relu"], steps["tanh"])]
        ratio = statistics.mean(steps["tanh"]) / statistics.mean(steps["relu"])
        lines += [
            "",
            f"tanh / ReLU: {ratio:.2f}x the steps (ratio of the means; seed by seed "
            f"{min(paired):.2f}x-{max(paired):.2f}x); the paper: 6x on CIFAR-10.",
        ]
    return "\n".join(lines)


def plot_curves(
    results, chosen, steps_per_epoch: int, window: int, target: float, path: str, dpi=100
) -> str:
    """Figure 1 in the paper's style: training error against epochs, ReLU solid, tanh dashed."""
    figure = Figure(figsize=(6.4, 4.4), dpi=dpi)
    axes = figure.add_axes((0.12, 0.12, 0.84, 0.8))
    for activation, runs in results.items():
        for index, run in enumerate(runs):
            axes.plot(
                np.asarray(run["curve_steps"]) / steps_per_epoch,
                100 * np.asarray(run["curve_train_error"]),
                STYLES[activation],
                color="black",
                linewidth=1.0,
                alpha=0.8 if index == 0 else 0.35,
                label=f"{activation} (lr {chosen[activation]:g}), {len(runs)} seeds"
                if index == 0
                else None,
            )
    axes.axhline(100 * target, color="grey", linewidth=0.8)
    axes.set_xlabel("epochs")
    axes.set_ylabel(f"training error (%), trailing mean over {window} steps")
    axes.set_ylim(0, 100)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    axes.set_title(
        "Four-layer CNN, ReLU (solid) vs tanh (dashed): the paper's Figure 1", fontsize=9
    )
    return visualize.save_figure(figure, path)


def main(argv):
    """The command: the study as the flags say (`define_flags`)."""
    del argv
    try:
        runner.prepare_out(FLAGS.out, FLAGS.overwrite)
        try:
            rates = [float(rate) for rate in FLAGS.learning_rates]
        except ValueError:
            raise ConfigError(
                f"--learning_rates={','.join(FLAGS.learning_rates)}: give numbers, e.g. 0.01,0.1."
            ) from None
        run_study(
            FLAGS.config,
            FLAGS.seeds,
            FLAGS.steps,
            FLAGS.batch_size,
            rates,
            FLAGS.sweep_seeds,
            FLAGS.target_train_error,
            FLAGS.out,
            FLAGS.report_dir,
            FLAGS.window,
        )
    except UserError as error:  # the message says what to do; a bug keeps its traceback
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    define_flags()
    logging.set_verbosity(logging.INFO)
    app.run(main)
