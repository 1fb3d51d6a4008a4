"""What the studies share: a grid of runs, the summary over seeds, the common flags.

A study is a grid: names (an ablation's variants, the transfer study's
methods) times seeds 0..N-1, each cell one `alexnet_jax.train` run with its
own workdir under `<out>/runs`. A cell whose workdir holds a finished run of
the same config is read back from its `metrics.jsonl` instead of trained
again, so an interrupted study continues where it stopped; `--overwrite`
deletes `<out>/runs` first. A finished run of another config in that place
is an error, not a silent mix of two protocols in one table. Checkpoints
are deleted after each run unless the study keeps them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
from absl import flags, logging

from alexnet_jax import rundir, train
from alexnet_jax.errors import ConfigError
from alexnet_jax.steps import num_train_steps

__all__ = [
    "RUNS_SUBDIR",
    "Run",
    "define_flags",
    "final_evaluation",
    "finished_records",
    "markdown_table",
    "mean_std",
    "prepare_out",
    "run_grid",
    "shared_compilations",
    "train_or_read_back",
]

RUNS_SUBDIR = "runs"  # the runs of a study live in <out>/runs


@contextlib.contextmanager
def shared_compilations(out: str):
    """Seeds of a variant compile the same programs: cache them under `out` meanwhile."""
    settings = {
        "jax_compilation_cache_dir": os.path.join(out, "compilation_cache"),
        "jax_persistent_cache_min_compile_time_secs": 0.5,
    }
    previous = {name: jax.config.values[name] for name in settings}
    for name, value in settings.items():
        jax.config.update(name, value)
    try:
        yield
    finally:
        for name, value in previous.items():
            jax.config.update(name, value)


def define_flags(out: str, seeds_help: str, out_help: str) -> None:
    """--seeds, --out (default `out`) and --overwrite, shown in the calling study's --help."""
    flags.DEFINE_integer("seeds", 3, seeds_help)
    flags.DEFINE_string("out", out, out_help)
    flags.DEFINE_bool(
        "overwrite",
        False,
        "Delete the runs of an earlier call in --out first "
        "(without it, finished runs are read back and unfinished ones continue).",
    )


def prepare_out(out: str, overwrite: bool) -> str:
    """`<out>/runs`, deleted first when `overwrite`; returns its path."""
    runs = os.path.join(out, RUNS_SUBDIR)
    if overwrite and os.path.exists(runs):
        logging.info("--overwrite: removing the earlier runs in %s", runs)
        shutil.rmtree(runs)
    return runs


def finished_records(config, workdir: str) -> list[dict] | None:
    """The `metrics.jsonl` records of the finished run of `config` in `workdir`; None if unfinished.

    Finished means evaluated at the last of the config's steps. The total is
    worked out from the training record logged at that step (its epoch gives
    the steps per epoch), so configs counted in epochs are read back too.
    Raises ConfigError when the finished run there was trained with another
    config.
    """
    try:
        records = rundir.read_metrics(workdir)
    except (FileNotFoundError, ValueError):
        return None
    evaluations = [r for r in records if "val_top1_error" in r]
    if not evaluations:
        return None
    last = evaluations[-1]["step"]
    logged = [r for r in records if r["step"] == last and r.get("epoch")]
    if not logged:
        return None
    steps_per_epoch = round(last / logged[-1]["epoch"])
    if num_train_steps(config, steps_per_epoch * config.batch_size)[0] != last:
        return None
    differences = rundir.config_differences(workdir, config)
    if differences:
        raise ConfigError(
            f"{workdir} holds a finished run of another config ({'; '.join(differences[:3])}). "
            "Pass --overwrite to train the study again, or choose another --out."
        )
    return records


class Run(NamedTuple):
    """A finished run: its `metrics.jsonl` records, and its training time (None: read back)."""

    records: list[dict]
    seconds: float | None


def train_or_read_back(
    config, workdir: str, keep_checkpoints: bool = False, quiet: bool = False
) -> Run:
    """The finished run of `config` in `workdir`: read back, or trained (resumed) there first.

    Its checkpoints are deleted after training unless `keep_checkpoints`;
    `quiet` hides the training loop's INFO lines (per-step progress).
    """
    records = finished_records(config, workdir)
    if records is not None:
        return Run(records, None)
    start = time.time()
    verbosity = logging.get_verbosity()
    if quiet:
        logging.set_verbosity(logging.WARNING)
    try:
        train.train_and_evaluate(config, workdir)
    finally:
        logging.set_verbosity(verbosity)
    records = finished_records(config, workdir)
    if records is None:
        raise RuntimeError(
            f"The run in {workdir} ended without its final evaluation; see its log lines above."
        )
    if not keep_checkpoints:
        shutil.rmtree(os.path.join(workdir, rundir.CHECKPOINT_SUBDIR), ignore_errors=True)
    return Run(records, time.time() - start)


def run_grid(
    names: Sequence[str],
    seeds: int,
    plan: Callable[[str, int], tuple[object, str]],
    keep_checkpoints: bool = False,
    quiet: bool = False,
) -> dict[str, list[list[dict]]]:
    """Every seed of every name, in that order: {name: [records of seed 0, seed 1, ...]}.

    `plan(name, seed)` gives the run's (config, workdir); each run goes
    through `train_or_read_back` and logs its final test error.
    """
    results: dict[str, list[list[dict]]] = {}
    for name in names:
        results[name] = []
        for seed in range(seeds):
            config, workdir = plan(name, seed)
            run = train_or_read_back(config, workdir, keep_checkpoints, quiet)
            how = "read back" if run.seconds is None else f"{run.seconds:.0f} s"
            logging.info(
                "%-42s seed %d: test error %5.2f%%  (%s)",
                name,
                seed,
                100 * final_evaluation(run.records)["val_top1_error"],
                how,
            )
            results[name].append(run.records)
    return results


def final_evaluation(records: Sequence[dict]) -> dict:
    """The last evaluation record of a finished run (`val_top1_error` and the other val_ metrics)."""
    return [r for r in records if "val_top1_error" in r][-1]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation) over seeds; the deviation of a single value is 0."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def difference_interval(
    values: Sequence[float], baseline: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float] | None:
    """mean(values) - mean(baseline) and its Welch t interval: (difference, low, high).

    The seeds of a variant and of the baseline are taken as independent samples
    with possibly different variances (Welch-Satterthwaite degrees of freedom).
    None when either has fewer than two values (no variance to estimate). A
    difference is an effect at this confidence when the interval excludes 0.
    """
    from scipy import stats  # installed with scikit-learn; imported only where used

    if len(values) < 2 or len(baseline) < 2:
        return None
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be between 0 and 1; got {confidence}.")
    share = [statistics.variance(v) / len(v) for v in (values, baseline)]
    difference = statistics.mean(values) - statistics.mean(baseline)
    if sum(share) == 0:
        return difference, difference, difference
    degrees = sum(share) ** 2 / sum(s**2 / (len(v) - 1) for s, v in zip(share, (values, baseline)))
    half = float(stats.t.ppf((1 + confidence) / 2, degrees)) * sum(share) ** 0.5
    return difference, difference - half, difference + half


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A markdown table; the first `left` columns align left, the others (numbers) right."""
    rule = "|" + "|".join(["---"] * left + ["---:"] * (len(header) - left)) + "|"
    return "\n".join(
        ["| " + " | ".join(header) + " |", rule]
        + ["| " + " | ".join(cells) + " |" for cells in rows]
    )
