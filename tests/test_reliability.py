"""Faults a long run meets: kills, preemption, damaged checkpoints, a second run, hostile files."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import torch
from fake_data import digits_config
from helpers import read_metrics, run_main, start_main

from alexnet_jax import checkpoints, rundir, train
from alexnet_jax.convert import load_torch_weights

STEPS = 18


def run_args(data_dir, workdir, *extra):
    """configs/smoke.py at batch 8 (as tests/fake_data.digits_config: a quarter of the compute)."""
    return [
        "--config=configs/smoke.py",
        f"--config.data_dir={data_dir}",
        f"--workdir={workdir}",
        "--config.batch_size=8",
        f"--config.num_train_steps={STEPS}",
        "--config.log_every_steps=1",
        "--config.checkpoint_every_steps=3",
        "--config.eval_every_steps=9",
        "--config.eval_every_epochs=0",
        "--config.checkpoint_every_epochs=0",
        "--config.training_curves=False",  # the runs are compared, not drawn
        *extra,
    ]


def run(data_dir, workdir, *extra):
    return run_main(*run_args(data_dir, workdir, *extra), timeout=600)


def start(data_dir, workdir, *extra):
    args = run_args(data_dir, workdir, *extra)
    return start_main(*args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(
                f"the run ended before the condition: {process.stderr.read()[-2000:]}"
            )
        time.sleep(0.01)
    process.kill()
    raise AssertionError("timed out")


def logged_steps(workdir):
    records = read_metrics(workdir)
    return [r["step"] for r in records if "loss" in r], [
        r["step"] for r in records if "val_loss" in r
    ]


@pytest.fixture(scope="module")
def uninterrupted(tfds_data_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    result = run(tfds_data_dir, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def assert_same_run(workdir, reference):
    jax.tree.map(
        np.testing.assert_array_equal,
        checkpoints.load_params(workdir),
        checkpoints.load_params(reference),
    )
    assert logged_steps(workdir) == logged_steps(reference) == (list(range(1, STEPS + 1)), [9, 18])


@pytest.mark.slow
def test_sigkill_anywhere_loses_nothing(tfds_data_dir, uninterrupted, tmp_path):
    workdir = tmp_path / "run"
    checkpoint_dir = workdir / "checkpoints"

    def metrics_reach(step):
        def reached():
            try:
                return logged_steps(workdir)[0][-1] >= step
            except (FileNotFoundError, IndexError, ValueError):
                return False

        return reached

    def new_temporary_checkpoint(before):
        def appeared():
            return checkpoint_dir.exists() and any(
                "tmp" in n and n not in before for n in os.listdir(checkpoint_dir)
            )

        return appeared

    # 1. before the first checkpoint (step 3): the rerun starts over and re-logs steps 1-2 once
    process = start(tfds_data_dir, workdir)
    wait_for(metrics_reach(2), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # 2. while a checkpoint is being written
    before = set(os.listdir(checkpoint_dir)) if checkpoint_dir.exists() else set()
    process = start(tfds_data_dir, workdir)
    wait_for(new_temporary_checkpoint(before), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # 3. in the middle of training, between checkpoints
    process = start(tfds_data_dir, workdir)
    wait_for(metrics_reach(10), process)
    process.send_signal(signal.SIGKILL)
    process.wait()

    result = run(tfds_data_dir, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from the checkpoint at step" in result.stderr
    assert_same_run(workdir, uninterrupted)


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_75_then_resumes(tfds_data_dir, uninterrupted, tmp_path):
    workdir = tmp_path / "run"
    process = start(tfds_data_dir, workdir)
    wait_for(
        lambda: os.path.exists(workdir / "metrics.jsonl") and logged_steps(workdir)[0][-1:] >= [4],
        process,
    )
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == train.PREEMPTED_EXIT_CODE == 75
    stopped_at = int(stderr.split("Stopped by SIGTERM after step ")[1].split(" ")[0])
    assert stopped_at in checkpoints.Checkpointer(workdir / "checkpoints").all_steps()
    result = run(tfds_data_dir, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resumed from the checkpoint at step {stopped_at} of {STEPS}" in result.stderr
    assert_same_run(workdir, uninterrupted)
    assert not os.path.exists(workdir / "training_curves.png")  # --config.training_curves=False


def damage(step_dir):
    """Truncates every data file of a checkpoint to half its size, as a disk that filled up would."""
    for folder, _, files in os.walk(step_dir):
        for name in files:
            path = os.path.join(folder, name)
            size = os.path.getsize(path)
            with open(path, "r+b") as file:
                file.truncate(size // 2)


@pytest.mark.slow  # over 20 s on 2 CPU cores
def test_damaged_latest_checkpoint_falls_back_with_a_warning(tfds_data_dir, tmp_path, caplog):
    workdir = tmp_path / "run"
    train.train_and_evaluate(digits_config(tfds_data_dir, num_train_steps=6), str(workdir))
    damage(workdir / "checkpoints" / "6")
    with caplog.at_level("WARNING"):
        train.train_and_evaluate(digits_config(tfds_data_dir, num_train_steps=9), str(workdir))
    assert any(
        "checkpoint at step 6" in r.getMessage() and "skipped" in r.getMessage()
        for r in caplog.records
    )
    reference = tmp_path / "reference"
    train.train_and_evaluate(digits_config(tfds_data_dir, num_train_steps=9), str(reference))
    jax.tree.map(
        np.testing.assert_array_equal,
        checkpoints.load_params(workdir, 9),
        checkpoints.load_params(reference, 9),
    )


@pytest.mark.slow
def test_damaged_array_data_falls_back_too(tfds_data_dir, tmp_path, caplog):
    workdir = tmp_path / "run"
    train.train_and_evaluate(digits_config(tfds_data_dir, num_train_steps=6), str(workdir))
    for folder, _, files in os.walk(workdir / "checkpoints" / "6" / "state"):
        for name in files:
            if "ocdbt" in folder or name.startswith("manifest"):  # the tensor store, not the JSON
                with open(os.path.join(folder, name), "r+b") as file:
                    file.truncate(0)
    with caplog.at_level("WARNING"):
        train.train_and_evaluate(digits_config(tfds_data_dir, num_train_steps=9), str(workdir))
    assert any("checkpoint at step 6" in r.getMessage() for r in caplog.records)
    assert (workdir / "checkpoints" / "6.damaged").is_dir()


@pytest.mark.slow
def test_changed_optimizer_is_refused_without_touching_checkpoints(tfds_data_dir, tmp_path):
    workdir = tmp_path / "run"
    train.train_and_evaluate(digits_config(tfds_data_dir, num_train_steps=3), str(workdir))
    with pytest.raises(checkpoints.CheckpointMismatchError, match="another optimizer setup"):
        train.train_and_evaluate(
            digits_config(tfds_data_dir, num_train_steps=6, optimizer="adamw"), str(workdir)
        )
    assert sorted(os.listdir(workdir / "checkpoints")) == ["3"]


@pytest.mark.slow
def test_no_readable_checkpoint_never_restarts_silently(tfds_data_dir, tmp_path):
    workdir = tmp_path / "run"
    train.train_and_evaluate(digits_config(tfds_data_dir, num_train_steps=3), str(workdir))
    damage(workdir / "checkpoints" / "3")
    for attempt in range(2):  # and again, once the damaged step has been set aside
        with pytest.raises(
            checkpoints.CheckpointError,
            match=r"None of the checkpoints .* can be read \(3\.damaged;",
        ):
            train.train_and_evaluate(digits_config(tfds_data_dir, num_train_steps=6), str(workdir))
    assert (workdir / "checkpoints" / "3.damaged").is_dir()


@pytest.mark.slow
def test_checkpoint_of_another_model_is_refused(tfds_data_dir, tmp_path):
    workdir = tmp_path / "run"
    train.train_and_evaluate(digits_config(tfds_data_dir, num_train_steps=3), str(workdir))
    with pytest.raises(
        checkpoints.CheckpointMismatchError, match="written by a different model"
    ) as error:
        train.train_and_evaluate(
            digits_config(tfds_data_dir, num_train_steps=6, towers=2), str(workdir)
        )
    assert "conv1/kernel: checkpoint [5, 5, 3, 64] vs config [2, 5, 5, 3, 32]" in str(error.value)

    # Another class count (e.g. the same workdir used for another data set):
    saved = checkpoints.Checkpointer(workdir / "checkpoints").read_metadata(3)
    expected = dict(saved["param_shapes"], **{"fc8/kernel": [512, 5], "fc8/bias": [5]})
    config = digits_config(tfds_data_dir, num_classes=5)
    with pytest.raises(
        checkpoints.CheckpointMismatchError, match=r"fc8/bias: checkpoint \[10\] vs config \[5\]"
    ):
        checkpoints.model_check(str(workdir), config, expected)(3, saved)


def test_unwritable_workdir(tfds_data_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(rundir.WorkdirError, match="Cannot write to the workdir"):
        train.train_and_evaluate(
            digits_config(tfds_data_dir, num_train_steps=1), str(blocker / "run")
        )


@pytest.mark.slow
def test_second_run_on_the_same_workdir_is_refused(tfds_data_dir, tmp_path):
    workdir = tmp_path / "run"
    first = start(tfds_data_dir, workdir)
    try:
        wait_for(lambda: (workdir / ".lock").exists(), first)
        second = run(tfds_data_dir, workdir)
        assert second.returncode == 1
        assert (
            "is in use by another run (host" in second.stderr
            and f"process {first.pid}" in second.stderr
        )
    finally:
        first.kill()
        first.wait()


@pytest.mark.slow
def test_stale_lock_is_taken_over(tfds_data_dir, tmp_path, caplog):
    workdir = tmp_path / "run"
    workdir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (workdir / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    with caplog.at_level("WARNING"):
        train.train_and_evaluate(digits_config(tfds_data_dir, num_train_steps=1), str(workdir))
    assert any("stale lock" in r.getMessage() for r in caplog.records)
    assert not (workdir / ".lock").exists()


class CreatesAFile:
    """Unpickling this would run code: os.system('touch <path>')."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_weight_files_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"
    weights = tmp_path / "evil.pth"
    torch.save({"features.0.weight": CreatesAFile(marker)}, weights)
    with pytest.raises(ValueError, match="weights-only"):
        load_torch_weights(weights, "small")
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, message",
    [
        (
            "--config.model=vgg",
            "Unknown model variant 'vgg'; choose one of: 'paper', 'owt', 'small'",
        ),
        (
            "--config.dataset=mnist",
            "Unknown dataset 'mnist'; choose one of: 'digits', 'imagenet2012', 'cifar10', 'image_folder'",
        ),
        ("--config.mesh_shape=(3,1)", "mesh_shape (3, 1) has 3 devices but there are 1"),
    ],
)
def test_bad_settings_give_one_clear_line(tfds_data_dir, tmp_path, override, message):
    result = run(tfds_data_dir, tmp_path / "run", override)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
