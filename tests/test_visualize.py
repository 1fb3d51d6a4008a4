"""Pictures: exact PNG sizes, tower-grouped filter grids, activations against a hand-written forward pass,
curves from a real run's metrics, the command, and the Colab notebook executed end to end."""

import json
import logging as std_logging
import os
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest
from absl import logging
from fake_data import digits_config
from helpers import COMPILE_FLAGS, ROOT, run_python
from jax import lax
from PIL import Image

from alexnet_jax import checkpoints, train, visualize
from alexnet_jax.models import AlexNet


def png_size(path) -> tuple[int, int]:
    """(width, height) of a PNG, checking it is a real, non-blank picture."""
    assert os.path.getsize(path) > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 8, "the picture is (nearly) blank"
        return image.size


class Warnings(std_logging.Handler):
    """Collects the warnings logged through absl while it is attached."""

    def __init__(self):
        super().__init__(std_logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def trained(tfds_data_dir, tmp_path_factory):
    """A 4-step digits run, evaluated at steps 2 and 4, whose end-of-run plot fails: (workdir, metrics, warnings).

    One run serves every test here; the notebook's run checks the curves that a run writes when plotting works.
    """
    workdir = str(tmp_path_factory.mktemp("run"))
    config = digits_config(
        tfds_data_dir, num_train_steps=4, eval_every_steps=2, checkpoint_every_steps=2
    )
    warnings = Warnings()

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts today")

    logging.get_absl_logger().addHandler(warnings)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(visualize, "plot_training_curves", broken)
            metrics = train.train_and_evaluate(config, workdir)
            # what main.py does after training
            assert visualize.try_write_training_curves(workdir) is None
    finally:
        logging.get_absl_logger().removeHandler(warnings)
    return workdir, metrics, warnings.messages


@pytest.fixture(scope="module")
def trained_workdir(trained):
    return trained[0]


@pytest.mark.slow
def test_a_plotting_failure_only_warns_and_keeps_the_run(trained):
    workdir, metrics, warnings = trained
    # trained and evaluated to the end
    assert np.isfinite(metrics["loss"]) and metrics["val_examples"] == 360
    assert checkpoints.Checkpointer(os.path.join(workdir, "checkpoints")).all_steps() == [2, 4]
    assert not os.path.exists(os.path.join(workdir, visualize.CURVES_FILE))
    assert any(
        "Could not plot the training curves" in m and "no fonts today" in m for m in warnings
    ), warnings


# ---------------------------------------------------------------------------
# conv1 filters


def test_filter_grids_put_each_towers_kernels_in_its_own_grid():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(2, 5, 5, 3, 6)).astype(np.float32)
    grids = visualize.filter_grids(kernel, columns=4)
    assert len(grids) == 2
    for tower, grid in enumerate(grids):
        # 2 rows x 4 columns of 5x5 tiles, 1-pixel gaps
        assert grid.shape == (2 * 6 - 1, 4 * 6 - 1, 3)
        for index in range(8):
            top, left = (index // 4) * 6, (index % 4) * 6
            tile = grid[top : top + 5, left : left + 5]
            if index < 6:
                weights = kernel[tower, ..., index]
                expected = (weights - weights.min()) / (weights.max() - weights.min())
                np.testing.assert_allclose(tile, expected, atol=1e-6)
            else:
                np.testing.assert_array_equal(tile, 1.0)  # empty slots stay white
        np.testing.assert_array_equal(grid[5, :], 1.0)  # the gap between the rows
    single = visualize.filter_grids(kernel[1], columns=16)  # (kh, kw, 3, C): one grid, one row of 6
    assert len(single) == 1 and single[0].shape == (5, 6 * 6 - 1, 3)
    np.testing.assert_allclose(single[0][:, :5], grids[1][:5, :5])  # the same kernel, the same tile
    with pytest.raises(ValueError, match=r"\(kh, kw, 3, C\)"):
        visualize.filter_grids(np.zeros((5, 5, 4, 8)))


@pytest.mark.slow
def test_conv1_filter_png_sizes(tmp_path, trained_workdir):
    rng = np.random.default_rng(1)
    # the paper's conv1: 48 kernels per tower, 16 per row
    paper = rng.normal(size=(2, 11, 11, 3, 48))
    assert png_size(visualize.plot_conv1_filters(paper, str(tmp_path / "paper.png"))) == (
        800,
        2 * (25 + 3 * 50),
    )
    assert png_size(visualize.plot_conv1_filters(paper, str(tmp_path / "paper50.png"), dpi=50)) == (
        400,
        175,
    )
    # the trained small model: 64 kernels of 5x5x3, one grid
    params = checkpoints.load_params(trained_workdir)
    assert params["conv1"]["kernel"].shape == (5, 5, 3, 64)
    assert png_size(
        visualize.plot_conv1_filters(params["conv1"]["kernel"], str(tmp_path / "small.png"))
    ) == (800, 225)


# ---------------------------------------------------------------------------
# Activations


def reference_forward(params, images, towers):
    """The small AlexNet by hand: lax convolutions, numpy LRN and pooling, towers split by channel blocks.

    Returns the same stage names as the model sows, towers merged (tower 0's channels first).
    """
    specs = [  # name, kernel, padding, within its own tower, LRN, pool (models.py's table for `small`)
        ("conv1", 5, 2, False, True, True),
        ("conv2", 5, 2, True, True, True),
        ("conv3", 3, 1, False, False, False),
        ("conv4", 3, 1, True, False, False),
        ("conv5", 3, 1, True, False, True),
    ]

    def conv(x, kernel, bias, padding):
        y = lax.conv_general_dilated(
            x,
            kernel,
            (1, 1),
            [(padding, padding)] * 2,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=lax.Precision.HIGHEST,
        )
        return np.asarray(y, np.float64) + bias

    def lrn(
        a, size=5, alpha=1e-4, beta=0.75, k=2.0
    ):  # torch.nn.LocalResponseNorm's window, per tower
        out = np.empty_like(a)
        for c in range(a.shape[-1]):
            window = a[..., max(0, c - size // 2) : c + (size - 1) // 2 + 1]
            out[..., c] = a[..., c] / (k + alpha / size * (window**2).sum(-1)) ** beta
        return out

    def pool(a, window=3, stride=2):
        size = (a.shape[1] - window) // stride + 1
        out = np.full((a.shape[0], size, size, a.shape[3]), -np.inf)
        for i in range(window):
            for j in range(window):
                out = np.maximum(
                    out, a[:, i : i + stride * size : stride, j : j + stride * size : stride]
                )
        return out

    def per_tower(x, fn):  # fn on each tower's channel block, blocks concatenated again
        return np.concatenate(
            [fn(block, t) for t, block in enumerate(np.split(x, towers, axis=-1))], axis=-1
        )

    stages, x = {}, np.asarray(images, np.float64)
    for name, kernel_size, padding, within, use_lrn, use_pool in specs:
        kernel, bias = np.asarray(params[name]["kernel"]), np.asarray(params[name]["bias"])
        if towers == 1:
            x = conv(x.astype(np.float32), kernel, bias, padding)
        else:
            outputs = []
            for t in range(towers):
                seen = np.split(x, towers, axis=-1)[t] if within else x
                outputs.append(conv(seen.astype(np.float32), kernel[t], bias[t], padding))
            x = np.concatenate(outputs, axis=-1)
        x = np.maximum(x, 0.0)
        stages[f"{name}_act"] = x
        if use_lrn:
            x = per_tower(x, lambda block, t: lrn(block))
            stages[f"{name}_lrn"] = x
        if use_pool:
            x = pool(x)
            stages[f"{name}_pool"] = x
    x = x.reshape(x.shape[0], -1)  # channels fastest
    for name in ("fc6", "fc7"):
        kernel, bias = (
            np.asarray(params[name]["kernel"], np.float64),
            np.asarray(params[name]["bias"], np.float64),
        )
        if towers == 1:
            x = np.maximum(x @ kernel + bias, 0.0)
        else:
            x = np.concatenate(
                [np.maximum(x @ kernel[t] + bias[t], 0.0) for t in range(towers)], axis=-1
            )
        stages[f"{name}_act"] = x
    return stages


def random_params(model, images, seed):
    """He-scaled normal kernels and N(0, 0.1^2) biases for every parameter (shapes by eval_shape: nothing compiled)."""
    shapes = nn.unbox(jax.eval_shape(model.init, jax.random.key(0), images)["params"])
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if path[-1].key == "bias":
            return rng.normal(0.0, 0.1, leaf.shape).astype(np.float32)
        # never the tower axis
        fan_in = np.prod(leaf.shape[-4:-1]) if leaf.ndim >= 4 else leaf.shape[-2]
        return (rng.normal(size=leaf.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.mark.parametrize("towers", [1, 2])
def test_captured_activations_equal_a_forward_pass_by_hand(towers):
    model = AlexNet(10, "small", towers=towers)
    # Large inputs, so LRN's sum of squares matters next to k = 2.
    images = 20 * np.random.default_rng(towers).normal(size=(2, 32, 32, 3)).astype(np.float32)
    params = random_params(model, images, towers)
    if towers == 2:
        assert params["conv1"]["kernel"].shape == (2, 5, 5, 3, 32)
    captured = visualize.capture_activations(model, params, images)
    expected = reference_forward(params, images, towers)
    lrn_without_neighbours = expected["conv1_act"] / 2.0**0.75
    assert (
        np.abs(expected["conv1_lrn"] - lrn_without_neighbours).max()
        > 0.1 * np.abs(lrn_without_neighbours).max()
    )
    assert list(captured) == list(expected)  # every stage, in the order the network computes them
    for name, value in expected.items():
        assert captured[name].shape == value.shape, name
        np.testing.assert_allclose(
            captured[name], value, rtol=2e-4, atol=2e-5 * np.abs(value).max(), err_msg=name
        )


def test_feature_map_png_sizes(tmp_path):
    model = AlexNet(10, "small")
    image = np.random.default_rng(0).uniform(size=(32, 32, 3)).astype(np.float32)
    params = random_params(model, image[None], 0)
    maps = {
        name: value[0]
        for name, value in visualize.capture_activations(model, params, image[None]).items()
    }
    # 10 conv stages (conv1-2 act/lrn/pool, conv3, conv4, conv5 act/pool) plus the input row
    assert png_size(visualize.plot_feature_maps(image, maps, str(tmp_path / "8.png"))) == (
        125 + 8 * 75,
        25 + 11 * 75,
    )
    assert png_size(
        visualize.plot_feature_maps(image, maps, str(tmp_path / "4.png"), channels=4)
    ) == (425, 850)
    with pytest.raises(ValueError, match="No feature maps"):
        visualize.plot_feature_maps(image, {"fc6_act": maps["fc6_act"]}, str(tmp_path / "none.png"))


# ---------------------------------------------------------------------------
# Training curves


@pytest.mark.slow
def test_curves_of_a_real_run(trained_workdir, tmp_path):
    records = visualize.read_metrics(trained_workdir)
    progress = [r for r in records if "loss" in r]
    evaluations = [r for r in records if "val_loss" in r]
    # The keys the plot reads are the ones training writes.
    assert {"loss", "top1_error", "top5_error", "learning_rate", "epoch"} <= set(progress[-1])
    assert {"val_loss", "val_top1_error", "val_top5_error", "lr_scale"} <= set(evaluations[-1])
    assert [r["step"] for r in evaluations] == [2, 4]
    assert png_size(visualize.write_training_curves(trained_workdir, str(tmp_path))) == (1000, 700)
    assert png_size(visualize.plot_training_curves(records, str(tmp_path / "c.png"), dpi=60)) == (
        600,
        420,
    )


def test_plateau_drops_are_found_and_drawn(tmp_path):
    records = []
    for step in range(1, 11):
        scale = 1.0 if step <= 4 else 0.1 if step <= 8 else 0.01
        records.append(
            {
                "step": step,
                "loss": 2.0 / step,
                "top1_error": 0.5,
                "top5_error": 0.1,
                "learning_rate": 0.01 * scale,
                "epoch": step / 5,
            }
        )
        if step % 2 == 0:  # evaluations decide a drop that applies from the next step on
            records.append(
                {
                    "step": step,
                    "val_loss": 1.0,
                    "val_top1_error": 0.4,
                    "val_top5_error": 0.1,
                    "lr_scale": 1.0 if step < 4 else 0.1 if step < 8 else 0.01,
                }
            )
    assert visualize.plateau_drops(records) == [4, 8]
    assert visualize.plateau_drops([r for r in records if r["step"] < 4]) == []
    assert png_size(visualize.plot_training_curves(records, str(tmp_path / "plateau.png"))) == (
        1000,
        700,
    )


def test_metrics_file_errors_say_what_to_do(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"metrics.jsonl not found.*Train first \(python main.py"
    ):
        visualize.read_metrics(str(tmp_path))
    (tmp_path / "metrics.jsonl").write_text(
        # cut short by a kill
        '{"step": 2, "loss": 1.5}\n{"step": 4, "lo'
    )
    assert visualize.read_metrics(str(tmp_path)) == [{"step": 2, "loss": 1.5}]
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="holds no records yet"):
        visualize.read_metrics(str(tmp_path))
    with pytest.raises(ValueError, match="No training"):
        visualize.plot_training_curves([{"step": 1, "val_examples": 3.0}], str(tmp_path / "x.png"))


# ---------------------------------------------------------------------------
# Predictions and the command


def test_prediction_png_size_and_checks(tmp_path):
    images = np.random.default_rng(0).uniform(size=(3, 32, 32, 3))
    top5 = [[(str(c), p) for c, p in zip(range(5), (0.5, 0.2, 0.1, 0.1, 0.05))] for _ in range(3)]
    path = visualize.plot_predictions(images, top5, str(tmp_path / "p.png"), labels=["0", "3", "9"])
    assert png_size(path) == (575, 25 + 3 * 150)
    with pytest.raises(ValueError, match="as many predictions"):
        visualize.plot_predictions(images, top5[:2], str(tmp_path / "q.png"))


@pytest.mark.slow
def test_command_writes_the_five_pictures(trained_workdir, tmp_path):
    out = tmp_path / "pictures"
    args = [
        f"--workdir={trained_workdir}",
        f"--out={out}",
        "--channels=6",
        "--num_images=4",
        "--neighbour_queries=3",
        "--neighbour_pool=50",
    ]
    # This process's environment as it is: its 8 fake CPU devices (conftest.py).
    result = run_python("-m", "alexnet_jax.visualize", *args, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    assert png_size(out / "conv1_filters.png") == (800, 225)
    assert png_size(out / "feature_maps.png") == (125 + 6 * 75, 25 + 11 * 75)
    assert png_size(out / "training_curves.png") == (1000, 700)
    assert png_size(out / "predictions.png") == (575, 25 + 4 * 150)
    assert png_size(out / "neighbours.png") == (600 + 175, 25 + 3 * 125)


@pytest.mark.slow
def test_pictures_of_a_workdir_that_is_not_a_run(trained_workdir, tmp_path):
    with pytest.raises(FileNotFoundError, match="Train first"):
        visualize.write_pictures(str(tmp_path))  # no metrics.jsonl
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    with pytest.raises(
        FileNotFoundError, match="config.json not found: is .* the --workdir of a training run"
    ):
        visualize.write_pictures(str(tmp_path))
    for name in ("config.json", "data.json"):
        (tmp_path / name).write_text(open(os.path.join(trained_workdir, name)).read())
    with pytest.raises(FileNotFoundError, match="No checkpoint in"):
        visualize.write_pictures(str(tmp_path))
    with pytest.raises(ValueError, match=r"No checkpoint for step 3 .* available steps: \[2, 4\]"):
        visualize.write_pictures(trained_workdir, str(tmp_path / "out"), step=3)


# ---------------------------------------------------------------------------
# The notebook


@pytest.mark.slow
def test_colab_notebook_runs_end_to_end(tfds_data_dir, tmp_path, monkeypatch):
    import nbclient
    import nbformat

    # A kernel spec for this very interpreter, found first through JUPYTER_PATH, so the
    # notebook runs in the test's environment even in a fresh virtualenv with no kernel installed.
    kernel_dir = tmp_path / "jupyter" / "kernels" / "alexnet_jax_test"
    kernel_dir.mkdir(parents=True)
    environment = {
        "ALEXNET_JAX_NOTEBOOK_STEPS": "2",
        "ALEXNET_JAX_NOTEBOOK_WORKDIR": str(tmp_path / "run"),
        "TFDS_DATA_DIR": tfds_data_dir,  # tfds's own default data dir: the digits prepared by this session
        "XLA_FLAGS": COMPILE_FLAGS,  # one CPU device, as a plain runtime has
        "JAX_PLATFORMS": "cpu",
    }
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "alexnet_jax test",
        "language": "python",
        "env": environment,
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv(
        "JUPYTER_PATH",
        os.pathsep.join(filter(None, [str(tmp_path / "jupyter"), os.environ.get("JUPYTER_PATH")])),
    )
    notebook = nbformat.read(os.path.join(ROOT, "notebooks", "alexnet_colab.ipynb"), as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="alexnet_jax_test",
        timeout=240,
        resources={"metadata": {"path": os.path.join(ROOT, "notebooks")}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not [o for o in outputs if o.output_type == "error"]
    pictures = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    # curves, filters, feature maps, predictions, the paper model's tower grids
    assert len(pictures) >= 5
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "ten-crop" in text and "top-1 error" in text
    assert checkpoints.Checkpointer(tmp_path / "run" / "checkpoints").all_steps()[-1] == 2
    # written by training at its end
    assert png_size(tmp_path / "run" / visualize.CURVES_FILE) == (1000, 700)


@pytest.mark.parametrize("block", [1024, 7])
def test_nearest_neighbours_equal_a_brute_force_search(block):
    """Against scipy's pairwise distances and a stable sort, within one block and across blocks of
    7 rows; with a duplicated pool row (a tie: the lower index first) and a query in the pool."""
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(0)
    pool = rng.normal(size=(40, 16)) * rng.uniform(0.5, 2.0, size=16)
    pool[23] = pool[5]
    queries = np.concatenate([rng.normal(size=(5, 16)), pool[5:6] + 1e-3, pool[30:31]])
    index, distance = visualize.nearest_neighbours(queries, pool, k=6, block=block)
    reference = cdist(queries, pool)
    expected = np.argsort(reference, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(distance, np.take_along_axis(reference, expected, 1), atol=1e-6)
    assert index[-1, 0] == 30 and distance[-1, 0] < 1e-6  # a pool row is its own nearest
    assert list(index[-2, :2]) == [5, 23]  # the tie


def test_nearest_neighbours_refuse_shapes_that_do_not_match():
    with pytest.raises(ValueError, match="same D"):
        visualize.nearest_neighbours(np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="k must be between 1 and the pool's 4 rows"):
        visualize.nearest_neighbours(np.zeros((2, 3)), np.zeros((4, 3)), k=6)


def test_neighbours_picture_size(tmp_path):
    rng = np.random.default_rng(0)
    path = visualize.plot_neighbours(
        rng.uniform(size=(2, 16, 16, 3)),
        rng.uniform(size=(2, 6, 16, 16, 3)),
        str(tmp_path / "n.png"),
        query_labels=["a", "b"],
        neighbour_labels=[["a"] * 6, ["b"] * 6],
    )
    assert png_size(path) == (775, 25 + 2 * 125)
