"""Which of AlexNet's ideas matter? One change at a time, several seeds, one budget.

    python -m experiments.ablate --seeds=3 --out=results/ablation --report_dir=docs/ablation

Every variant is the base config (`--config`, default `configs/default.py`:
the `small` AlexNet on the embedded digits) under one protocol, plus the
config overrides listed in `VARIANTS`; nothing else differs, so a variant is
a config, never a code fork. The protocol (flags):

- the baseline is the base config as it is (for the default: all 1,437
  training digits, batch 64, the paper's SGD rule with momentum 0.9 and
  weight decay 5e-4 on the kernels, learning rate 0.02 with a one-epoch
  warmup and cosine decay, pad-4 crops, PCA lighting, dropout 0.5, LRN), cut
  to `--epochs` epochs (20; `--steps` counts steps instead; the cosine
  schedule still ends at zero). 20 because the baseline converges there: three
  seeds at 20 epochs gave 1.67%, 0.28% and 0.83% test error, against 1.39% and
  1.67% for the default's own 30 epochs, while 10 epochs gave 2.22%, 2.50% and
  1.94%; `--batch_size`, `--learning_rate` (0: the config's) and
  `--examples_per_class` (-1: the config's) override the base config's;
- evaluation once, at the end, on all 360 test digits; the training loss and
  error of every step are logged.

For each variant the table gives the mean and standard deviation over seeds
of the test error and of the final training loss (mean of the last epoch's
steps), the steps needed to reach `--target_train_error` (training error of
the batches as trained, dropout and augmentation on, averaged over a sliding
epoch: the measure of the paper's Figure 1), and training steps/s.

The "best combination" row joins every modern change (group `modern`) whose
mean test error beat the baseline's; it is decided after those runs, so it
is what this protocol found, not a preset. When none did, it joins them all.

Outputs in `--report_dir` (default `--out`): `ablation.md` (the table),
`ablation.png` (test error per variant), `relu_vs_tanh.png` (the Figure-1
curves) and `results.json` (every run's numbers). Runs go to
`<out>/runs/<variant>/seed<k>`; a finished run is read back, not repeated,
so an interrupted study continues where it stopped (`--overwrite` starts
afresh; `experiments.runner` does this for both studies). Checkpoints are
deleted after each run unless `--keep_checkpoints`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from matplotlib.figure import Figure
from ml_collections import config_flags

from alexnet_jax import visualize
from alexnet_jax.data import sources
from alexnet_jax.errors import ConfigError, UserError
from alexnet_jax.models import count_params
from alexnet_jax.steps import create_model, num_train_steps
from experiments import runner

__all__ = [
    "BEST_COMBINATION",
    "CURVE_VARIANTS",
    "GROUPS",
    "VARIANTS",
    "Variant",
    "abstract_params",
    "best_combination",
    "combine",
    "define_flags",
    "main",
    "plot_test_errors",
    "plot_train_error_curves",
    "protocol_config",
    "run_study",
    "run_summary",
    "run_variants",
    "selected_variants",
    "smoothed",
    "steps_to_reach",
    "summarize",
    "variant_config",
]

GROUPS = ("baseline", "activation", "optimizer", "regularization", "architecture", "size", "modern")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the study: config `overrides` on top of the protocol.

    A variant with `own_rates` gets a second row at its own best learning rate: one seed at each
    of those rates, the one with the lowest final training loss (`own_best_rate`) run on every
    seed.
    """

    name: str
    group: str
    overrides: Mapping[str, Any]
    own_rates: tuple[float, ...] = ()

    def at_rate(self, rate: float) -> "Variant":
        """This variant at learning rate `rate`, named `<name> @ lr <rate>` (no sweep of its own)."""
        overrides = {**self.overrides, "learning_rate": rate}
        return Variant(f"{self.name} @ lr {rate:g}", self.group, overrides)

    @property
    def slug(self) -> str:
        """The run directory's name: the name in lower case, runs of other characters as '_'."""
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


SGD_RATES = (0.003, 0.01, 0.03, 0.1)  # the own-rate sweep of the SGD rows
VARIANTS: tuple[Variant, ...] = (
    Variant("baseline", "baseline", {}),
    # The optimizer and activation rows also run at their own best rate, from these.
    Variant("tanh instead of ReLU", "activation", {"activation": "tanh"}, SGD_RATES),
    Variant("sigmoid instead of ReLU", "activation", {"activation": "sigmoid"}, SGD_RATES),
    Variant("no dropout", "regularization", {"dropout_rate": 0.0}),
    Variant("no data augmentation", "regularization", {"train_augment": "none"}),
    Variant("no PCA lighting", "regularization", {"pca_lighting_std": 0.0}),
    # The default has no flips: these are digits.
    Variant("with flips", "regularization", {"horizontal_flip": True}),
    Variant("no LRN", "architecture", {"normalization": "none"}),
    Variant("non-overlapping pooling (2/2)", "architecture", {"pooling": "non_overlapping"}),
    Variant("two towers (paper's connectivity)", "architecture", {"towers": 2}),
    # The paper's one-GPU net: half the kernels of conv1-conv4; conv5 and the fc layers unchanged.
    Variant(
        "one tower, half the kernels", "architecture", {"conv_features": (32, 64, 96, 96, 128)}
    ),
    Variant(
        "half width", "size", {"conv_features": (32, 64, 96, 96, 64), "hidden_features": (256, 256)}
    ),
    Variant(
        "fewer layers (conv1-3, one fc)",
        "size",
        {"conv_features": (64, 128, 192), "hidden_features": (512,)},
    ),
    Variant(
        "shallow: one conv layer + classifier",
        "size",
        {"conv_features": (64,), "hidden_features": ()},
    ),
    Variant(
        "shallow: logistic regression on pixels",
        "size",
        {"conv_features": (), "hidden_features": ()},
    ),
    Variant("BatchNorm instead of LRN", "modern", {"normalization": "batchnorm"}),
    Variant("residual connection (conv4)", "modern", {"residual": True}),
    Variant(
        "AdamW (lr 1e-3, decay 0.05)",
        "modern",
        {"optimizer": "adamw", "learning_rate": 1e-3, "weight_decay": 0.05},
        (3e-4, 1e-3, 3e-3),
    ),
    # The default's warmup and cosine decay against the paper's rule: the rate divided by 10 once
    # (after two thirds of the budget: the paper divided on plateaus, a fixed budget needs a fixed
    # point), no warmup.
    Variant(
        "the paper's schedule (/10 once, no warmup)",
        "optimizer",
        {"schedule": "step", "warmup_epochs": 0.0},
    ),
    Variant("label smoothing 0.1", "modern", {"label_smoothing": 0.1}),
)
BEST_COMBINATION = "best combination of the modern changes"
# The paper's measured effect of each change on ImageNet, where it reports one (Sections 3-4;
# change in top-1 / top-5 error, percentage points): the anchor each row is read against.
PAPER_DELTAS = {
    "tanh instead of ReLU": "6x the steps to 25% train error (Fig. 1, CIFAR-10)",
    "no data augmentation": "substantial overfitting (4.1)",
    "no PCA lighting": "top-1 +1 or more (4.1)",
    "no dropout": "substantial overfitting (4.2)",
    "no LRN": "+1.4 / +1.2 (3.3); none at 128 px (caffenet-benchmark)",
    "non-overlapping pooling (2/2)": "+0.4 / +0.3 (3.4)",
    "one tower, half the kernels": "+1.7 / +1.2 vs two towers (3.2)",
    "fewer layers (conv1-3, one fc)": "removing any middle conv layer: top-1 about +2 (7)",
}
CURVE_VARIANTS = ("baseline", "tanh instead of ReLU")  # the Figure-1 pair

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command's flags; defined only when it runs, so importing the module defines none."""
    config_flags.DEFINE_config_file(
        "config", "configs/default.py", "Base configuration of every variant."
    )
    runner.define_flags("results/ablation", "Seeds 0..N-1 for every variant.", "Where the runs go.")
    flags.adopt_module_key_flags(runner)
    flags.DEFINE_float("epochs", 20.0, "Training epochs of every run (the budget).")
    flags.DEFINE_integer(
        "steps", 0, "Training steps of every run, instead of --epochs (0: epochs)."
    )
    flags.DEFINE_integer("batch_size", 0, "Batch size of every run (0: the config's).")
    flags.DEFINE_integer(
        "examples_per_class", -1, "Training examples per class (0: all; -1: the config's)."
    )
    flags.DEFINE_float(
        "learning_rate", 0.0, "Peak learning rate of the SGD rows (0: the config's)."
    )
    flags.DEFINE_float(
        "target_train_error",
        0.25,
        "Training error whose first crossing is counted (Figure 1: 25%).",
    )
    flags.DEFINE_list(
        "variants", [], "Only these variants (names as in the table, or their run-directory names)."
    )
    flags.DEFINE_string("report_dir", "", "Where the table and the pictures go ('' = --out).")
    flags.DEFINE_bool(
        "keep_checkpoints", False, "Keep every run's checkpoints (they are deleted by default)."
    )


# ---------------------------------------------------------------------------
# Configs


def protocol_config(
    base,
    steps: int = 0,
    batch_size: int = 0,
    examples_per_class: int = -1,
    learning_rate: float = 0.0,
    epochs: float = 0.0,
):
    """(`base` copied under the study's protocol, its steps per epoch): see the module docstring.

    The budget is `steps` steps, or `epochs` epochs when `steps` is 0; `batch_size`,
    `examples_per_class` and `learning_rate` replace the config's unless 0 (-1 for the examples).
    The schedule stays the config's; `step_epochs` is set to a single drop after two thirds of the
    budget, for the variant with the paper's step schedule. Opens the training data once, to know
    the epoch length.
    """
    config = base.copy_and_resolve_references()
    if batch_size:
        config.batch_size = batch_size
    if learning_rate:
        config.learning_rate = learning_rate
    if examples_per_class >= 0:
        config.train_examples_per_class = examples_per_class
    input_config = sources.InputConfig.from_config(config)
    train_examples = len(sources.load_data(input_config).train)
    steps_per_epoch = num_train_steps(config, train_examples)[1]
    if steps <= 0:
        if epochs <= 0:
            raise ConfigError(
                f"Give a budget: --epochs > 0 or --steps > 0 (got {epochs}, {steps})."
            )
        steps = max(1, round(epochs * steps_per_epoch))
    config.num_train_steps = steps
    config.step_epochs = (2 * steps / 3 / steps_per_epoch,)
    # Evaluated and saved at the end only.
    config.eval_every_steps, config.checkpoint_every_steps = 0, 0
    config.eval_every_epochs, config.checkpoint_every_epochs = 0.0, 0.0
    config.log_every_steps = 1  # every step's training error, for the Figure-1 measure
    return config, steps_per_epoch


def variant_config(protocol, variant: Variant, seed: int):
    """The protocol config with `variant`'s overrides, for `seed`."""
    config = protocol.copy_and_resolve_references()
    for key, value in variant.overrides.items():
        if key not in config:
            raise KeyError(
                f"Variant {variant.name!r} overrides {key!r}, which the config does not have."
            )
        config[key] = value
    config.seed = seed
    return config


def combine(variants: Sequence[Variant], name: str = BEST_COMBINATION) -> Variant:
    """One variant with all the overrides of `variants`; ValueError if two set a field differently."""
    overrides: dict[str, Any] = {}
    for variant in variants:
        for key, value in variant.overrides.items():
            if key in overrides and overrides[key] != value:
                raise ValueError(
                    f"{variant.name!r} sets {key}={value!r}, "
                    f"another change sets {overrides[key]!r}."
                )
            overrides[key] = value
    return Variant(name, "modern", overrides)


# ---------------------------------------------------------------------------
# Reading a run


def smoothed(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over `window` values (fewer at the start).

    Entry i averages values[max(0, i-window+1) : i+1].
    """
    values = np.asarray(values, np.float64)
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (sums[ends] - sums[starts]) / (ends - starts)


def steps_to_reach(steps: Sequence[int], errors: Sequence[float], target: float) -> int | None:
    """The first step whose (smoothed) error is at most `target`; None if it never gets there."""
    hits = np.nonzero(np.asarray(errors) <= target)[0]
    return int(steps[hits[0]]) if len(hits) else None


def run_summary(records: Sequence[Mapping], window: int, batch_size: int, target: float) -> dict:
    """What the table needs from a finished run's `metrics.jsonl` records.

    `window`: the logged steps averaged, for the training-error curve (trailing mean) and the final
    training loss (the last `window`); the ablation uses an epoch.
    """
    logged = [r for r in records if "top1_error" in r]
    steps = [r["step"] for r in logged]
    errors = smoothed([r["top1_error"] for r in logged], window)
    rates = [r["images_per_second"] for r in logged[5:] or logged]
    return {
        "test_error": runner.final_evaluation(records)["val_top1_error"],
        "final_train_loss": float(np.mean([r["loss"] for r in logged[-window:]])),
        "steps_to_target": steps_to_reach(steps, errors, target),
        "steps_per_second": statistics.median(rates) / batch_size,
        "curve_steps": steps,
        "curve_train_error": [float(e) for e in errors],
    }


# ---------------------------------------------------------------------------
# The table and the pictures


def _reached(runs: Sequence[Mapping]) -> tuple[float | None, int]:
    """(mean steps to the target over the runs that reached it, None if none did; how many did)."""
    reached = [r["steps_to_target"] for r in runs if r["steps_to_target"] is not None]
    return (statistics.mean(reached) if reached else None), len(reached)


def summarize(results: Mapping[str, Mapping], target: float) -> str:
    """The markdown table: one row per variant, means and standard deviations over its seeds, and
    the difference of its mean test error to the baseline's with a 95% Welch interval (in
    percentage points), marked "effect" when the interval excludes 0."""
    header = (
        "variant",
        "overrides",
        "params",
        "test error",
        "final train loss",
        f"steps to {100 * target:.0f}% train error",
        "steps/s",
        "test error - baseline, 95% interval",
        "the paper (ImageNet)",
    )
    rows = []
    baseline = (
        [r["test_error"] for r in results["baseline"]["runs"]] if "baseline" in results else []
    )
    for name, result in results.items():
        runs = result["runs"]
        error, error_std = runner.mean_std([r["test_error"] for r in runs])
        loss, loss_std = runner.mean_std([r["final_train_loss"] for r in runs])
        steps, count = _reached(runs)
        to_target = "not reached" if steps is None else f"{steps:.0f}"
        if count < len(runs):
            to_target += f" ({count}/{len(runs)} runs)"
        overrides = ", ".join(f"{k}={v}" for k, v in result["overrides"].items()) or "-"
        rows.append(
            (
                name,
                overrides,
                f"{result['params']:,}",
                f"{100 * error:.1f}% ± {100 * error_std:.1f}",
                f"{loss:.3f} ± {loss_std:.3f}",
                to_target,
                f"{statistics.mean(r['steps_per_second'] for r in runs):.1f}",
                "-" if name == "baseline" else _difference_cell(runs, baseline),
                PAPER_DELTAS.get(name.split(" @ lr ")[0], "-"),
            )
        )
    return runner.markdown_table(header, rows, left=2)


def _difference_cell(runs: Sequence[Mapping], baseline: Sequence[float]) -> str:
    """'+1.2 [+0.3, +2.1] effect' in percentage points; 'needs 2+ seeds' with fewer."""
    if not baseline:
        return "no baseline row"
    interval = runner.difference_interval([r["test_error"] for r in runs], baseline)
    if interval is None:
        return "needs 2+ seeds"
    difference, low, high = (100 * value for value in interval)
    verdict = " effect" if low > 0 or high < 0 else ""
    return f"{difference:+.1f} [{low:+.1f}, {high:+.1f}]{verdict}"


GROUP_COLOURS = dict(
    zip(GROUPS, ("#444444", "#d62728", "#8c564b", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"))
)


def plot_test_errors(results: Mapping[str, Mapping], path: str, dpi: int = 100) -> str:
    """Horizontal bars: mean test error per variant, std as error bars, the baseline dashed."""
    names = list(results)
    means, stds = zip(
        *(runner.mean_std([100 * r["test_error"] for r in results[n]["runs"]]) for n in names)
    )
    height = 0.34 * len(names) + 1.4
    figure = Figure(figsize=(9.0, height), dpi=dpi)
    axes = figure.add_axes((0.36, 0.9 / height, 0.6, 1 - 1.3 / height))
    rows = np.arange(len(names))[::-1]
    colours = [GROUP_COLOURS[results[n]["group"]] for n in names]
    axes.barh(rows, means, xerr=stds, color=colours, ecolor="black", capsize=2)
    axes.set_yticks(rows, names, fontsize=8)
    if "baseline" in results:
        axes.axvline(means[names.index("baseline")], color="black", linestyle="--", linewidth=1)
    seeds = len(next(iter(results.values()))["runs"])
    axes.set_xlabel(f"test error (%), mean ± std over {seeds} seed(s)")
    axes.set_xscale("log")
    axes.grid(axis="x", which="both", alpha=0.3)
    handles = [
        axes.bar(0, 0, color=GROUP_COLOURS[g], label=g)
        for g in GROUPS
        if any(results[n]["group"] == g for n in names)
    ]
    axes.legend(handles=handles, fontsize=7, loc="lower right")
    return visualize.save_figure(figure, path)


def plot_train_error_curves(
    results: Mapping[str, Mapping], names: Sequence[str], target: float, path: str, dpi: int = 100
) -> str:
    """The paper's Figure 1 for `names`: smoothed training error vs steps.

    Each seed is drawn thin, the seeds' mean thick.
    """
    figure = Figure(figsize=(6.4, 4.4), dpi=dpi)
    axes = figure.add_axes((0.12, 0.12, 0.84, 0.8))
    for name, style in zip(names, ("-", "--", ":")):
        runs = results[name]["runs"]
        colour = GROUP_COLOURS[results[name]["group"]]
        for run in runs:
            axes.plot(
                run["curve_steps"],
                100 * np.asarray(run["curve_train_error"]),
                style,
                color=colour,
                alpha=0.3,
                linewidth=0.8,
            )
        length = min(len(r["curve_steps"]) for r in runs)
        mean = np.mean([r["curve_train_error"][:length] for r in runs], axis=0)
        steps, count = _reached(runs)
        if count == len(runs):
            label = f"{name}: {steps:.0f} steps to {100 * target:.0f}%"
        else:
            label = f"{name}: {100 * target:.0f}% reached in {count}/{len(runs)} runs"
        axes.plot(
            runs[0]["curve_steps"][:length],
            100 * mean,
            style,
            color=colour,
            linewidth=2,
            label=label,
        )
    axes.axhline(100 * target, color="grey", linewidth=0.8)
    axes.set_xlabel("training step")
    axes.set_ylabel("training error (%), sliding mean over an epoch")
    axes.set_ylim(0, 100)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    axes.set_title("Training error vs steps, ReLU vs tanh (cf. the paper's Figure 1)", fontsize=9)
    return visualize.save_figure(figure, path)


# ---------------------------------------------------------------------------
# The study


def run_variants(
    protocol,
    steps_per_epoch: int,
    variants: Sequence[Variant],
    seeds: int,
    out: str,
    target: float,
    keep_checkpoints: bool = False,
) -> dict:
    """Trains (or reads back) every seed of every variant, in `<out>/runs/<slug>/seed<k>`.

    Returns {name: its group, overrides, parameter count and runs (`run_summary`s)}.
    """
    by_name = {variant.name: variant for variant in variants}

    def plan(name: str, seed: int):
        workdir = os.path.join(out, runner.RUNS_SUBDIR, by_name[name].slug, f"seed{seed}")
        return variant_config(protocol, by_name[name], seed), workdir

    # quiet: the per-step lines of runs of hundreds of steps would drown the progress.
    records = runner.run_grid(list(by_name), seeds, plan, keep_checkpoints, quiet=True)
    results = {}
    for name, variant in by_name.items():
        config = variant_config(protocol, variant, 0)
        runs = [run_summary(r, steps_per_epoch, config.batch_size, target) for r in records[name]]
        results[name] = {
            "group": variant.group,
            "overrides": dict(variant.overrides),
            "params": count_params(abstract_params(config)),
            "runs": runs,
        }
    return results


def abstract_params(config):
    """The parameter shapes of `config`'s model (nothing is computed)."""
    model = create_model(config)
    images = jax.ShapeDtypeStruct((1, config.image_size, config.image_size, 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x), images)["params"]


def own_best_rate(variant: Variant, swept: Mapping[str, Mapping]) -> float:
    """The rate of `variant.own_rates` whose run (`run_variants` results of `at_rate(rate)`, one
    seed) ended with the lowest final training loss; the smaller rate on a tie. Training loss,
    not test error, so that the test digits play no part in choosing."""

    def loss(rate: float) -> float:
        return statistics.mean(
            r["final_train_loss"] for r in swept[variant.at_rate(rate).name]["runs"]
        )

    return min(variant.own_rates, key=lambda rate: (loss(rate), rate))


def run_own_rates(protocol, steps_per_epoch, variants, seeds, out, target, keep_checkpoints):
    """For each variant with `own_rates`: the sweep (one seed per rate), then its best rate on
    every seed. Returns ({row name: result}, {variant name: {rate: final training loss}})."""
    rows, sweeps = {}, {}
    for variant in variants:
        if not variant.own_rates:
            continue
        candidates = [variant.at_rate(rate) for rate in variant.own_rates]
        swept = run_variants(
            protocol, steps_per_epoch, candidates, 1, out, target, keep_checkpoints
        )
        best = own_best_rate(variant, swept)
        sweeps[variant.name] = {
            rate: swept[variant.at_rate(rate).name]["runs"][0]["final_train_loss"]
            for rate in variant.own_rates
        }
        rows |= run_variants(
            protocol, steps_per_epoch, [variant.at_rate(best)], seeds, out, target, keep_checkpoints
        )
    return rows, sweeps


def _interleaved(results: Mapping[str, Mapping], own: Mapping[str, Mapping]) -> dict:
    """The rows of `results` with each own-rate row right after its variant's."""
    rows = {}
    for name, result in results.items():
        rows[name] = result
        rows |= {row: own[row] for row in own if row.startswith(f"{name} @ lr ")}
    return rows


def best_combination(results: Mapping[str, Mapping], variants: Sequence[Variant]) -> Variant:
    """The modern changes whose mean test error beat the baseline's, joined (all when none did)."""

    def mean_error(name: str) -> float:
        return statistics.mean(r["test_error"] for r in results[name]["runs"])

    modern = [v for v in variants if v.group == "modern" and v.name in results]
    better = [v for v in modern if mean_error(v.name) < mean_error("baseline")]
    chosen = better or modern
    return combine(chosen, f"{BEST_COMBINATION}: " + " + ".join(v.name for v in chosen))


def selected_variants(names: Sequence[str]) -> tuple[Variant, ...]:
    """The variants named (by table or run-directory name), in the study's order; all if none."""
    if not names:
        return VARIANTS
    known = {v.name: v for v in VARIANTS} | {v.slug: v for v in VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"Unknown variant(s) {unknown}; choose from: {', '.join(v.slug for v in VARIANTS)}."
        )
    wanted = {known[n].name for n in names}
    return tuple(v for v in VARIANTS if v.name in wanted)


def run_study(
    base,
    seeds: int,
    steps: int,
    batch_size: int,
    examples_per_class: int,
    learning_rate: float,
    target: float,
    out: str,
    report_dir: str = "",
    variants: Sequence[Variant] = VARIANTS,
    keep_checkpoints: bool = False,
    epochs: float = 0.0,
) -> dict:
    """Runs every variant, then the best combination (when the baseline and a modern change ran).

    The budget: `steps`, or `epochs` when `steps` is 0 (`protocol_config`). Writes the report (see
    the module docstring) and returns `run_variants`' results.
    """
    protocol, steps_per_epoch = protocol_config(
        base, steps, batch_size, examples_per_class, learning_rate, epochs
    )
    report_dir = report_dir or out
    start = time.time()
    with runner.shared_compilations(out):
        results = run_variants(
            protocol, steps_per_epoch, variants, seeds, out, target, keep_checkpoints
        )
        own, sweeps = run_own_rates(
            protocol, steps_per_epoch, variants, seeds, out, target, keep_checkpoints
        )
        results = _interleaved(results, own)
        if "baseline" in results and any(v.group == "modern" for v in variants):
            combination = best_combination(results, variants)
            results |= run_variants(
                protocol, steps_per_epoch, [combination], seeds, out, target, keep_checkpoints
            )
    wall = time.time() - start
    table = summarize(results, target)
    os.makedirs(report_dir, exist_ok=True)
    with open(os.path.join(report_dir, "ablation.md"), "w") as file:
        file.write(table + "\n")
    plot_test_errors(results, os.path.join(report_dir, "ablation.png"))
    if all(name in results for name in CURVE_VARIANTS):
        plot_train_error_curves(
            results, CURVE_VARIANTS, target, os.path.join(report_dir, "relu_vs_tanh.png")
        )
    fields = (
        "dataset",
        "model",
        "num_train_steps",
        "batch_size",
        "learning_rate",
        "train_examples_per_class",
        "schedule",
        "warmup_epochs",
        "step_epochs",
    )
    protocol_fields = {
        k: list(protocol[k]) if isinstance(protocol[k], tuple) else protocol[k] for k in fields
    }
    with open(os.path.join(report_dir, "results.json"), "w") as file:
        json.dump(
            {
                "protocol": protocol_fields,
                "seeds": seeds,
                "target_train_error": target,
                "wall_seconds": round(wall),
                "own_rate_sweeps": {
                    name: {f"{rate:g}": loss for rate, loss in sweep.items()}
                    for name, sweep in sweeps.items()
                },
                "results": results,
            },
            file,
            indent=1,
        )
    print(table)
    print(f"wall time {wall:.0f} s; report in {report_dir}")
    return results


def main(argv):
    """The command: the study as the flags say (`define_flags`)."""
    del argv
    try:
        runner.prepare_out(FLAGS.out, FLAGS.overwrite)
        variants = selected_variants(FLAGS.variants)
        run_study(
            FLAGS.config,
            FLAGS.seeds,
            FLAGS.steps,
            FLAGS.batch_size,
            FLAGS.examples_per_class,
            FLAGS.learning_rate,
            FLAGS.target_train_error,
            FLAGS.out,
            FLAGS.report_dir,
            variants,
            FLAGS.keep_checkpoints,
            FLAGS.epochs,
        )
    except UserError as error:  # the message says what to do; a bug keeps its traceback
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    define_flags()
    logging.set_verbosity(logging.INFO)
    app.run(main)
