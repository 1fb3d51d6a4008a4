"""Pictures of a trained AlexNet: conv1 filters, feature maps, training curves, top-5 predictions,
nearest neighbours in fc7.

  python -m alexnet_jax.visualize --workdir=runs/default --out=docs/images
  python -m alexnet_jax.visualize --workdir=runs/imagenet --image=cat.jpg --channels=12

writes five PNGs into `--out` (default: the workdir):

| file | what it shows |
|---|---|
| `conv1_filters.png` | every conv1 kernel as an RGB tile; with two towers one grid per tower, tower 0 on top (the paper's Figure 3) |
| `feature_maps.png` | the input and the first `--channels` maps of every conv stage (activation, LRN, pooling) for one image |
| `training_curves.png` | `<workdir>/metrics.jsonl`: loss, top-1 and top-5 error (train and validation), learning rate, plateau drops |
| `predictions.png` | the first `--num_images` validation images with their five most probable classes |
| `neighbours.png` | the first `--neighbour_queries` validation images, each beside the six training images (of the first `--neighbour_pool`) nearest in fc7 (the paper's Figure 4) |

The run is loaded as `alexnet_jax.predict` loads it (`config.json`,
`data.json`, the latest or `--step` checkpoint) and images go through the
same evaluation preprocessing. Feature maps come from the model's own `sow`
calls (the 'intermediates' collection of `AlexNet`), not from a copy of the
network. The default image is a real photo shipped with scikit-learn
(`load_sample_images`, china.jpg).

Drawing uses matplotlib `Figure`s on the Agg canvas and never pyplot, so
nothing depends on a display or changes matplotlib's global backend: it runs
headless, in tests, and inside notebooks (which show the written files).
Layouts are measured in quarter inches (exact in binary floating point), so
every PNG is exactly inches x `dpi` pixels, whole numbers for the default
dpi of 100 or any multiple of 4; each function's docstring gives its size.

`plot_*` draw from arrays; `write_*` draw one picture of a run
(`alexnet_jax.predict.load_trained_run`) into a folder, which is what the
command and the Colab notebook call; `main.py` calls `try_write_training_curves`
after a run unless `--config.training_curves=False` (the training loop draws nothing).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from alexnet_jax import metrics, predict, rundir
from alexnet_jax.data import batching, sources
from alexnet_jax.errors import ConfigError, UserError
from alexnet_jax.models import AlexNet
from alexnet_jax.rundir import read_metrics  # noqa: F401  (visualize.read_metrics: its name here before)

__all__ = [
    "METRICS_FILE",
    "CURVES_FILE",
    "filter_grids",
    "plot_conv1_filters",
    "capture_activations",
    "plot_feature_maps",
    "read_metrics",
    "plateau_drops",
    "plot_training_curves",
    "plot_predictions",
    "nearest_neighbours",
    "plot_neighbours",
    "write_neighbours",
    "sample_photo",
    "save_figure",
    "displayable",
    "write_conv1_filters",
    "write_feature_maps",
    "write_training_curves",
    "write_predictions",
    "write_pictures",
]

METRICS_FILE = rundir.METRICS_FILE
CURVES_FILE = "training_curves.png"
PICTURES = (
    "conv1_filters.png",
    "feature_maps.png",
    CURVES_FILE,
    "predictions.png",
    "neighbours.png",
)

# Layout, in inches; multiples of a quarter inch keep the pixel sizes exact (see the module docstring).
FILTER_CELL = 0.5
TITLE_STRIP = 0.25
MAP_CELL = 0.75
MAP_LABELS = 1.25
PREDICTION_ROW = 1.5
PREDICTION_WIDTH = 5.75
CURVES_SIZE = (10.0, 7.0)
NEIGHBOUR_CELL = 1.0
NEIGHBOUR_GAP = 0.25  # between a test image and its neighbours


def save_figure(figure: Figure, path: str) -> str:
    """Renders `figure` with the Agg canvas into the PNG `path` (folders created); returns `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=figure.dpi, facecolor="white")
    return path


def _inches(figure: Figure, left: float, bottom: float, width: float, height: float):
    """An axes placed in inches from the figure's bottom-left corner."""
    figure_width, figure_height = figure.get_size_inches()
    axes = figure.add_axes(
        (left / figure_width, bottom / figure_height, width / figure_width, height / figure_height)
    )
    axes.set_xticks([])
    axes.set_yticks([])
    return axes


def displayable(images: np.ndarray, stats: sources.ColorStats) -> np.ndarray:
    """Normalized images (..., 3) back to RGB in [0, 1] for display."""
    return np.clip(
        np.asarray(images, np.float32) * np.asarray(stats.std) + np.asarray(stats.mean), 0.0, 1.0
    )


# ---------------------------------------------------------------------------
# conv1 filters


def filter_grids(kernel: np.ndarray, columns: int = 16, gap: int = 1) -> list[np.ndarray]:
    """conv1 kernels as RGB mosaics, one per tower.

    kernel: (kh, kw, 3, C), or (towers, kh, kw, 3, C / towers) for a
    two-tower model. Each kernel is scaled to [0, 1] by its own minimum and
    maximum over all three colours (so hues stay comparable within a kernel)
    and placed row by row, `min(columns, C / towers)` per row, with `gap`
    white pixels between tiles. Returns `towers` arrays of shape
    (rows * (kh + gap) - gap, columns * (kw + gap) - gap, 3).
    """
    kernel = np.asarray(kernel, np.float32)
    if kernel.ndim == 4:
        kernel = kernel[None]
    if kernel.ndim != 5 or kernel.shape[-2] != 3:
        raise ValueError(
            f"Expected a conv1 kernel (kh, kw, 3, C) or (towers, kh, kw, 3, C), got shape {kernel.shape}."
        )
    _, height, width, _, count = kernel.shape
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    grids = []
    for tower_kernel in kernel:
        low = tower_kernel.min(axis=(0, 1, 2))
        span = np.maximum(tower_kernel.max(axis=(0, 1, 2)) - low, 1e-12)
        tiles = (tower_kernel - low) / span  # (kh, kw, 3, C)
        grid = np.ones((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), np.float32)
        for index in range(count):
            top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
            grid[top : top + height, left : left + width] = tiles[..., index]
        grids.append(grid)
    return grids


def plot_conv1_filters(kernel: np.ndarray, path: str, columns: int = 16, dpi: int = 100) -> str:
    """Writes the conv1 kernels as an RGB grid per tower (see `filter_grids`) to the PNG `path`.

    kernel: (kh, kw, 3, C) or (towers, kh, kw, 3, C / towers). With two
    towers tower 0 is drawn above tower 1, as in the paper's Figure 3 (where
    GPU 1's kernels came out largely colour-agnostic and GPU 2's colour-specific).
    Size: `min(columns, C / towers) * 0.5` inches wide and
    `towers * (0.25 + rows * 0.5)` high, rows = ceil(C / towers / columns),
    times `dpi` pixels: 800 x 225 for the small model's 64 kernels.
    """
    grids = filter_grids(kernel, columns)
    towers = len(grids)
    count = np.shape(kernel)[-1]
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    block = TITLE_STRIP + rows * FILTER_CELL
    figure = Figure(figsize=(columns * FILTER_CELL, towers * block), dpi=dpi)
    size = "x".join(map(str, np.shape(kernel)[-4:-1]))
    for tower, grid in enumerate(grids):
        bottom = (towers - 1 - tower) * block
        axes = _inches(figure, 0.0, bottom, columns * FILTER_CELL, rows * FILTER_CELL)
        axes.imshow(grid, interpolation="nearest", aspect="auto")
        axes.set_axis_off()
        if towers > 1:
            title = f"tower {tower} (GPU {tower + 1} in the paper): {count} kernels of {size}"
        else:
            title = f"conv1: {count} kernels of {size}, each scaled to its own range"
        figure.text(
            0.5,
            (bottom + block - TITLE_STRIP / 2) / (towers * block),
            title,
            ha="center",
            va="center",
            fontsize=9,
        )
    return save_figure(figure, path)


# ---------------------------------------------------------------------------
# Feature maps


def capture_activations(
    model: AlexNet, params, images: np.ndarray, names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Every stage's output for `images` (N, S, S, 3), through the model's own `sow` calls.

    Returns {'conv1_act': (N, H, W, C), 'conv1_lrn': ..., 'conv1_pool': ...,
    ..., 'conv5_pool': ..., 'fc6_act': (N, 4096), 'fc7_act': (N, 4096)} in
    the order the network computes them (inference mode, no dropout); towers
    merged, tower 0's channels first; float32 whatever the compute dtype.
    `names`: only these stages (the compiled program then keeps no others).
    """
    wanted = None if names is None else tuple(names)
    return {
        name: np.asarray(values, np.float32)  # also for bfloat16 models
        for name, values in _captured(model, wanted)(params, jnp.asarray(images)).items()
    }


@functools.lru_cache(maxsize=8)
def _captured(model: AlexNet, names: tuple[str, ...] | None):
    """The jitted forward pass returning the sown stages `names` (None: all)."""

    def forward(params, images):
        captured = model.apply({"params": params}, images, train=False, mutable=["intermediates"])[
            1
        ]["intermediates"]
        return {
            name: values[0] for name, values in captured.items() if names is None or name in names
        }

    # one compilation instead of one per operation
    return jax.jit(forward)


def plot_feature_maps(
    image: np.ndarray,
    activations: Mapping[str, np.ndarray],
    path: str,
    channels: int = 8,
    dpi: int = 100,
) -> str:
    """Writes the input and the first `channels` maps of every conv stage to the PNG `path`.

    image: (S, S, 3) RGB in [0, 1], shown in the first row. activations:
    stage name -> (H, W, C) for this one image (e.g. `capture_activations`
    of a batch of one, batch axis dropped); entries that are not maps (fc6,
    fc7) are left out. One row per stage; all maps of a stage share one
    colour scale, 0 (or the stage's minimum, if negative) to the stage's
    largest value. Size: `1.25 + channels *
    0.75` inches wide, `0.25 + (1 + stages) * 0.75` high, times `dpi`.
    """
    stages = [(name, np.asarray(maps)) for name, maps in activations.items() if np.ndim(maps) == 3]
    if not stages:
        raise ValueError(
            "No feature maps (H, W, C) among the activations; pass one image's conv stages."
        )
    rows = 1 + len(stages)
    width, height = MAP_LABELS + channels * MAP_CELL, TITLE_STRIP + rows * MAP_CELL
    figure = Figure(figsize=(width, height), dpi=dpi)
    figure.text(
        0.5,
        1 - TITLE_STRIP / 2 / height,
        f"first {channels} channels of each stage, "
        "one colour scale per stage (0 to its largest value)",
        ha="center",
        va="center",
        fontsize=9,
    )
    pad = 0.04

    def cell(row: int, column: int):
        bottom = height - TITLE_STRIP - (row + 1) * MAP_CELL + pad
        return _inches(
            figure,
            MAP_LABELS + column * MAP_CELL + pad,
            bottom,
            MAP_CELL - 2 * pad,
            MAP_CELL - 2 * pad,
        )

    def label(row: int, text: str):
        figure.text(
            0.08 / width,
            1 - (TITLE_STRIP + (row + 0.5) * MAP_CELL) / height,
            text,
            va="center",
            fontsize=8,
        )

    cell(0, 0).imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
    label(0, f"input\n{image.shape[0]}x{image.shape[1]}x3")
    for row, (name, maps) in enumerate(stages, start=1):
        # low < 0 only for tanh
        low, scale = (min(0.0, float(maps.min())), max(float(maps.max()), 1e-12))
        for channel in range(min(channels, maps.shape[-1])):
            cell(row, channel).imshow(
                maps[..., channel], cmap="viridis", vmin=low, vmax=scale, interpolation="nearest"
            )
        layer, stage = name.split("_")
        label(row, f"{layer} {stage}\n{'x'.join(map(str, maps.shape))}\nmax {scale:.3g}")
    return save_figure(figure, path)


def sample_photo() -> np.ndarray:
    """A real photo, uint8 (427, 640, 3): scikit-learn's china.jpg (shipped with it, no download)."""
    from sklearn.datasets import load_sample_images

    return load_sample_images().images[0]


# ---------------------------------------------------------------------------
# Training curves


def plateau_drops(records: Sequence[Mapping]) -> list[int]:
    """Steps whose evaluation lowered the plateau schedule's `lr_scale` (it applies from the next step on)."""
    drops, scale = [], 1.0
    for record in records:
        if "lr_scale" in record:
            if record["lr_scale"] < scale * (1 - 1e-6):
                drops.append(int(record["step"]))
            scale = record["lr_scale"]
    return drops


def plot_training_curves(records: Sequence[Mapping], path: str, dpi: int = 100) -> str:
    """Writes train/validation loss, top-1 and top-5 error and the learning rate against the step.

    records: `read_metrics` output; progress records carry `loss`,
    `top1_error`, `top5_error`, `learning_rate`, `epoch`; evaluation records
    `val_loss`, `val_top1_error`, `val_top5_error`, `lr_scale`. Plateau drops
    are dotted vertical lines on every panel (the learning rate is then on
    a log scale). Four panels; size 10 x 7 inches times `dpi` (1000 x 700 px at 100).
    """
    progress = [r for r in records if "loss" in r]
    evaluations = [r for r in records if "val_loss" in r]
    if not progress and not evaluations:
        raise ValueError("No training ('loss') or evaluation ('val_loss') records to plot.")
    drops = plateau_drops(records)
    figure = Figure(figsize=CURVES_SIZE, dpi=dpi, layout="constrained")
    panels = figure.subplots(2, 2, sharex=True).ravel()

    def curve(axes, rows, key, label, **style):
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            axes.plot(*zip(*points), label=label, **style)

    for axes, key, title in zip(
        panels[:3], ("loss", "top1_error", "top5_error"), ("loss", "top-1 error", "top-5 error")
    ):
        curve(axes, progress, key, "train (batch, augmented)", color="tab:blue", linewidth=1)
        curve(
            axes,
            evaluations,
            f"val_{key}",
            "validation (exact)",
            color="tab:orange",
            marker="o",
            markersize=4,
        )
        axes.set_title(title, fontsize=10)
        if key != "loss":
            axes.set_ylim(bottom=0.0)
    rates = panels[3]
    curve(rates, progress, "learning_rate", "learning rate", color="tab:green")
    rates.set_title("learning rate", fontsize=10)
    if drops and any(r.get("learning_rate", 0) > 0 for r in progress):
        rates.set_yscale("log")
    for axes in panels:
        for index, step in enumerate(drops):
            axes.axvline(
                step, color="grey", linestyle=":", label="plateau: lr / 10" if index == 0 else None
            )
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    for axes in panels[2:]:
        axes.set_xlabel("step")
    epochs = [(r["step"], r["epoch"]) for r in progress if "epoch" in r and r["step"] > 0]
    if epochs:
        steps_per_epoch = epochs[-1][0] / max(epochs[-1][1], 1e-12)
        for axes in panels[:2]:
            top = axes.secondary_xaxis(
                "top", functions=(lambda s: s / steps_per_epoch, lambda e: e * steps_per_epoch)
            )
            top.set_xlabel("epoch", fontsize=8)
    return save_figure(figure, path)


# ---------------------------------------------------------------------------
# Predictions


def plot_predictions(
    images: np.ndarray,
    predictions: Sequence[Sequence[tuple[str, float]]],
    path: str,
    labels: Sequence[str] | None = None,
    dpi: int = 100,
) -> str:
    """Writes each image beside a bar chart of its top-5 (class, probability) pairs to the PNG `path`.

    images: (N, S, S, 3) RGB in [0, 1]; predictions: N lists, best first (as
    `alexnet_jax.predict.ranked` gives them); labels: the N true class names,
    whose bar is drawn green (others grey). Size: 5.75 inches wide,
    `0.25 + N * 1.5` high, times `dpi`.
    """
    count = len(images)
    if count == 0 or len(predictions) != count or (labels is not None and len(labels) != count):
        raise ValueError(
            f"Need as many predictions (and labels) as images; got {count} images, "
            f"{len(predictions)} predictions, {None if labels is None else len(labels)} labels."
        )
    height = TITLE_STRIP + count * PREDICTION_ROW
    figure = Figure(figsize=(PREDICTION_WIDTH, height), dpi=dpi)
    figure.text(
        0.5,
        1 - TITLE_STRIP / 2 / height,
        "validation images: the five most probable classes",
        ha="center",
        va="center",
        fontsize=9,
    )
    for row, (image, best) in enumerate(zip(images, predictions)):
        bottom = height - TITLE_STRIP - (row + 1) * PREDICTION_ROW
        picture = _inches(figure, 0.25, bottom + 0.125, 1.0, 1.0)
        picture.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
        if labels is not None:
            picture.set_title(f"label: {labels[row]}", fontsize=8)
        # class names to its left, percentages to its right
        bars = _inches(figure, 2.25, bottom + 0.25, 2.5, 1.0)
        names = [name[:16] for name, _ in best]
        probabilities = [probability for _, probability in best]
        colours = [
            "tab:green" if labels is not None and name == labels[row] else "tab:grey"
            for name, _ in best
        ]
        positions = np.arange(len(best))[::-1]
        bars.barh(positions, probabilities, color=colours)
        bars.set_yticks(positions, names, fontsize=8)
        bars.set_xlim(0.0, 1.0)
        for position, probability in zip(positions, probabilities):
            bars.text(
                min(probability, 1.0) + 0.02,
                position,
                f"{probability:.1%}",
                va="center",
                fontsize=7,
            )
        bars.tick_params(axis="x", labelsize=7)
    return save_figure(figure, path)


# ---------------------------------------------------------------------------
# Nearest neighbours in fc7 (the paper's Figure 4)


def nearest_neighbours(
    queries: np.ndarray, pool: np.ndarray, k: int = 6, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` rows of `pool` (P, D) closest to each row of `queries` (Q, D) in Euclidean distance.

    Returns (indices (Q, k) int64, distances (Q, k) float64), nearest first; equal
    distances keep the lower pool index first. Computed in float64 from
    |q|^2 - 2 q.p + |p|^2, `block` pool rows at a time, so memory stays
    Q x block whatever the pool's size.
    """
    queries, pool = np.asarray(queries, np.float64), np.asarray(pool, np.float64)
    if queries.ndim != 2 or pool.ndim != 2 or queries.shape[1] != pool.shape[1]:
        raise ValueError(
            f"queries and pool must be (Q, D) and (P, D) with the same D; got {queries.shape} "
            f"and {pool.shape}."
        )
    if not 1 <= k <= len(pool):
        raise ValueError(f"k must be between 1 and the pool's {len(pool)} rows; got {k}.")
    query_norms = np.sum(queries**2, axis=1, keepdims=True)
    best_index = np.zeros((len(queries), 0), np.int64)
    best_squared = np.zeros((len(queries), 0))
    for start in range(0, len(pool), block):
        rows = pool[start : start + block]
        squared = query_norms - 2 * queries @ rows.T + np.sum(rows**2, axis=1)
        index = np.broadcast_to(np.arange(start, start + len(rows)), squared.shape)
        squared = np.concatenate([best_squared, np.maximum(squared, 0.0)], axis=1)
        index = np.concatenate([best_index, index], axis=1)
        order = np.lexsort((index, squared), axis=1)[:, :k]  # by distance, then index
        best_squared = np.take_along_axis(squared, order, axis=1)
        best_index = np.take_along_axis(index, order, axis=1)
    return best_index, np.sqrt(best_squared)


def plot_neighbours(
    queries: np.ndarray,
    neighbours: np.ndarray,
    path: str,
    query_labels: Sequence[str] | None = None,
    neighbour_labels: Sequence[Sequence[str]] | None = None,
    layer: str = "fc7",
    dpi: int = 100,
) -> str:
    """Each test image (first column) beside its nearest training images, as in the paper's Figure 4.

    queries: (Q, S, S, 3) and neighbours: (Q, K, S, S, 3), RGB in [0, 1]; the
    optional labels are drawn above each image; `layer` names the feature layer in
    the title. Size: `K + 1.75` inches wide,
    `0.25 + Q * 1.25` high, times `dpi`.
    """
    count, k = neighbours.shape[:2]
    if count == 0 or len(queries) != count:
        raise ValueError(
            f"Need one row of neighbours per test image; got {len(queries)} images and "
            f"{count} rows."
        )
    row_height = NEIGHBOUR_CELL + TITLE_STRIP
    width = (k + 1) * NEIGHBOUR_CELL + NEIGHBOUR_GAP + 2 * TITLE_STRIP
    height = TITLE_STRIP + count * row_height
    figure = Figure(figsize=(width, height), dpi=dpi)
    figure.text(
        0.5,
        1 - TITLE_STRIP / 2 / height,
        f"test images and the {k} training images nearest in {layer}",
        ha="center",
        va="center",
        fontsize=9,
    )
    for row in range(count):
        bottom = height - TITLE_STRIP - (row + 1) * row_height
        images = [queries[row], *neighbours[row]]
        names = [
            query_labels[row] if query_labels is not None else "",
            *(neighbour_labels[row] if neighbour_labels is not None else [""] * k),
        ]
        for column, (image, name) in enumerate(zip(images, names)):
            left = TITLE_STRIP + column * NEIGHBOUR_CELL + (NEIGHBOUR_GAP if column else 0.0)
            axes = _inches(figure, left, bottom, NEIGHBOUR_CELL, NEIGHBOUR_CELL)
            axes.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
            if name:
                axes.set_title(str(name)[:14], fontsize=7, pad=2)
    return save_figure(figure, path)


# ---------------------------------------------------------------------------
# The pictures of a training run


def write_conv1_filters(run: predict.TrainedRun, out: str, dpi: int = 100) -> str:
    """`<out>/conv1_filters.png` from the run's conv1 kernel; returns its path."""
    return plot_conv1_filters(
        run.params["conv1"]["kernel"], os.path.join(out, PICTURES[0]), dpi=dpi
    )


def write_feature_maps(
    run: predict.TrainedRun,
    out: str,
    image_path: str | None = None,
    channels: int = 8,
    dpi: int = 100,
) -> str:
    """`<out>/feature_maps.png` for an image file (default: `sample_photo()`), preprocessed as in evaluation."""
    if image_path:
        image = predict.preprocess(image_path, run.config, run.color_stats, ten_crop=False)
    else:
        image = predict.preprocess_image(
            sample_photo(), run.config, run.color_stats, ten_crop=False
        )
    activations = {
        name: maps[0]
        for name, maps in capture_activations(run.model, run.params, image[None]).items()
    }
    return plot_feature_maps(
        displayable(image, run.color_stats),
        activations,
        os.path.join(out, PICTURES[1]),
        channels,
        dpi,
    )


def write_training_curves(workdir: str, out: str | None = None, dpi: int = 100) -> str:
    """`<out>/training_curves.png` (default: in the workdir) from `<workdir>/metrics.jsonl`; returns its path."""
    return plot_training_curves(
        read_metrics(workdir), os.path.join(out or workdir, CURVES_FILE), dpi
    )


def try_write_training_curves(workdir: str) -> str | None:
    """`write_training_curves` after a run: a failure only logs a warning (the run is complete); its path or None."""
    try:
        path = write_training_curves(workdir)
    except Exception as error:  # noqa: BLE001 - a picture must never cost a finished run
        logging.warning(
            "Could not plot the training curves into %s (%s: %s); the run itself is complete. "
            "Retry with: python -m alexnet_jax.visualize --workdir=%s",
            workdir,
            type(error).__name__,
            error,
            workdir,
        )
        return None
    logging.info("training curves: %s", path)
    return path


def write_predictions(
    run: predict.TrainedRun, out: str, num_images: int = 6, dpi: int = 100
) -> str:
    """`<out>/predictions.png`: the first `num_images` validation images (centre crops) and their top 5."""
    input_config = dataclasses.replace(
        sources.InputConfig.from_config(run.config), eval_crop="center"
    )
    data = sources.load_data(input_config)
    dataset, _ = batching.eval_dataset(data, input_config, num_images)
    batch = next(dataset.as_numpy_iterator())
    if "mask" in batch:  # a split smaller than num_images is padded: show its real images only
        batch = {key: value[batch["mask"].astype(bool)] for key, value in batch.items()}
    probabilities = np.asarray(
        jax.jit(
            lambda params, images: metrics.predict_probabilities(run.model, ((params, {}),), images)
        )(run.params, jnp.asarray(batch["image"]))
    )
    return plot_predictions(
        displayable(batch["image"], data.color_stats),
        predict.ranked(probabilities, run.class_names),
        os.path.join(out, PICTURES[3]),
        labels=[run.class_names[label] for label in batch["label"]],
        dpi=dpi,
    )


def _centre_crops(data: sources.Data, split: str, config, count: int, batch: int = 64):
    """The first `count` images of a split (`'train'` or `'eval'`) preprocessed as for
    evaluation (centre crop, no augmentation): (images (n, S, S, 3), labels (n,)), n <= count."""
    data = dataclasses.replace(data, eval=getattr(data, split))
    dataset, _ = batching.eval_dataset(data, config, min(batch, count))
    images, labels = [], []
    for examples in dataset.as_numpy_iterator():
        keep = examples["mask"].astype(bool)
        images.append(examples["image"][keep])
        labels.append(examples["label"][keep])
        if sum(map(len, labels)) >= count:
            break
    return np.concatenate(images)[:count], np.concatenate(labels)[:count]


def write_neighbours(
    run: predict.TrainedRun,
    out: str,
    num_queries: int = 5,
    k: int = 6,
    pool_size: int = 2000,
    dpi: int = 100,
) -> str:
    """`<out>/neighbours.png`: the first `num_queries` validation images and, for each, the `k`
    training images whose fc7 feature vectors (the last hidden layer, after its ReLU; fc6
    for a model with one hidden layer) are nearest in Euclidean distance, among the first `pool_size` training images (the paper's
    Figure 4 searched all of ImageNet's training set). All centre crops, as in evaluation."""
    if num_queries < 1 or pool_size < k:
        raise ConfigError(
            f"Need at least one test image and a pool of at least k={k} training images; got "
            f"{num_queries} and {pool_size}."
        )
    input_config = dataclasses.replace(
        sources.InputConfig.from_config(run.config), eval_crop="center"
    )
    data = sources.load_data(input_config)
    queries, query_labels = _centre_crops(data, "eval", input_config, num_queries)
    pool, pool_labels = _centre_crops(data, "train", input_config, pool_size)
    if len(pool) < k:
        raise ConfigError(f"The training split has {len(pool)} images, fewer than k={k}.")

    # the last hidden layer: fc7, or fc6 for a variant with one (hidden_features=N)
    stages = jax.eval_shape(_captured(run.model, None), run.params, queries[:1])  # names only
    hidden = [name for name in stages if name.startswith("fc") and name.endswith("_act")]
    layer = max(hidden, key=lambda name: int(name[2:-4]), default=None)
    if layer is None:
        raise ConfigError(
            "This model has no hidden fully connected layer (hidden_features=none) whose "
            "features the neighbours could be found in."
        )

    def features(images):
        return np.concatenate(
            [
                capture_activations(run.model, run.params, images[i : i + 64], [layer])[layer]
                for i in range(0, len(images), 64)
            ]
        )

    index, _ = nearest_neighbours(features(queries), features(pool), k)
    names = run.class_names
    return plot_neighbours(
        displayable(queries, data.color_stats),
        displayable(pool[index], data.color_stats),
        os.path.join(out, PICTURES[4]),
        query_labels=[names[label] for label in query_labels],
        neighbour_labels=[[names[label] for label in row] for row in pool_labels[index]],
        layer=layer.removesuffix("_act"),
        dpi=dpi,
    )


def write_pictures(
    workdir: str,
    out: str | None = None,
    step: int | None = None,
    image_path: str | None = None,
    channels: int = 8,
    num_images: int = 6,
    dpi: int = 100,
    num_neighbour_queries: int = 5,
    neighbour_pool: int = 2000,
) -> dict[str, str]:
    """Writes the five pictures of a training run into `out` (default: the workdir); returns name -> path.

    Raises a UserError (MissingFileError, WorkdirError, ...) saying what is missing (metrics,
    config.json/data.json, checkpoints, the image file).
    """
    out = out or workdir
    read_metrics(workdir)  # first: the cheapest check that this is a training run that has logged
    run = predict.load_trained_run(workdir, step)
    paths = {
        "conv1_filters": write_conv1_filters(run, out, dpi),
        "feature_maps": write_feature_maps(run, out, image_path, channels, dpi),
        "training_curves": write_training_curves(workdir, out, dpi),
        "predictions": write_predictions(run, out, num_images, dpi),
        "neighbours": write_neighbours(run, out, num_neighbour_queries, 6, neighbour_pool, dpi),
    }
    for name, path in paths.items():
        logging.info("%s: %s (%.0f KB)", name, path, os.path.getsize(path) / 1024)
    return paths


FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command's flags; defined only when it runs, so importing the module (training does) defines none."""
    flags.DEFINE_string("workdir", None, "The --workdir of a training run.")
    flags.DEFINE_string("out", "", "Folder for the PNGs (default: the workdir).")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
    flags.DEFINE_string(
        "image", "", "Image file for the feature maps (default: scikit-learn's china.jpg)."
    )
    flags.DEFINE_integer("channels", 8, "Feature maps shown per stage.")
    flags.DEFINE_integer("num_images", 6, "Validation images with their top-5 predictions.")
    flags.DEFINE_integer("dpi", 100, "Pixels per inch of the PNGs.")
    flags.DEFINE_integer(
        "neighbour_queries", 5, "Validation images shown with their fc7 nearest neighbours."
    )
    flags.DEFINE_integer(
        "neighbour_pool",
        2000,
        "Training images searched for the neighbours: the first this many (centre crops).",
    )
    flags.mark_flag_as_required("workdir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    # the command prints what it wrote; no library INFO lines (tfds, JAX)
    logging.set_verbosity(logging.WARNING)
    try:
        paths = write_pictures(
            FLAGS.workdir,
            FLAGS.out,
            FLAGS.step,
            FLAGS.image,
            FLAGS.channels,
            FLAGS.num_images,
            FLAGS.dpi,
            FLAGS.neighbour_queries,
            FLAGS.neighbour_pool,
        )
    except UserError as error:  # one line; anything else is a bug and keeps its traceback
        raise SystemExit(f"error: {error}") from None
    for path in paths.values():
        print(f"{path}  ({os.path.getsize(path) / 1024:.0f} KB)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
