"""Two processes on localhost, JAX's own runtime: the same training as one process, and a kill + restart resumes.

Each process is `python main.py ... --coordinator_address=127.0.0.1:PORT
--num_processes=2 --process_id=i` with 4 fake CPU devices (gloo CPU
collectives, JAX's default), together a (4, 2) mesh: 'data' across the two
processes, each data shard's two towers in one process. The reference is
the same config trained in this test process on its 8 fake devices.
"""

import os
import signal
import socket
import subprocess
import time
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import COMPILE_FLAGS, largest_difference, read_metrics, start_main, subprocess_env

from alexnet_jax import checkpoints, distributed, rundir, sharding, train
from configs import smoke

STEPS = 6
# The paper's two-tower model at its smallest input, with fc6 and fc7 of 512 instead of 4,096 (the
# towers, their placement and the collectives are the same; the state and its checkpoints are 2.7 M
# instead of 20.2 M parameters); He init and a constant learning rate so that a few steps move the
# parameters far beyond the tolerance (the paper's N(0, 0.01) init barely moves).
OVERRIDES = {
    "model": "paper",
    "towers": 2,
    "hidden_features": (512, 512),
    "image_size": 63,
    "resize_size": 63,
    "batch_size": 16,
    "mesh_shape": (4, 2),
    "init_scheme": "he",
    "schedule": "constant",
    "learning_rate": 0.002,
    "num_train_steps": STEPS,
    "log_every_steps": 1,
    "training_curves": False,  # the runs are compared, not drawn
    "checkpoint_every_steps": 2,
    "eval_every_steps": 0,
}
TIMEOUT = 420  # seconds for one launch; a peer stuck in a collective waits forever otherwise


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Job:
    """The `main.py` processes of one run (two by default, 4 fake devices each); killed together however the test ends."""

    def __init__(
        self,
        data_dir,
        workdir,
        log_dir,
        name,
        workdir_of_process_1=None,
        processes=2,
        devices=4,
        **overrides,
    ):
        port, self.logs, self.processes = free_port(), [], []
        # XLA:CPU aborts a process whose devices do not all reach a collective within 40 s; on a loaded 2-core
        # machine (two test workers, each with subprocesses) that limit was once exceeded in an evaluation.
        flags = f"{COMPILE_FLAGS} --xla_force_host_platform_device_count={devices} --xla_cpu_collective_call_terminate_timeout_seconds=300"
        environment = subprocess_env(XLA_FLAGS=flags)
        for index in range(processes):
            args = [
                "--config=configs/smoke.py",
                f"--config.data_dir={data_dir}",
                f"--workdir={workdir_of_process_1 if index and workdir_of_process_1 else workdir}",
            ]
            if processes > 1:
                args += [
                    f"--coordinator_address=127.0.0.1:{port}",
                    f"--num_processes={processes}",
                    f"--process_id={index}",
                ]
            args += [f"--config.{key}={value}" for key, value in {**OVERRIDES, **overrides}.items()]
            log = open(os.path.join(log_dir, f"{name}.process{index}.log"), "w+")
            self.logs.append(log)
            self.processes.append(
                start_main(*args, env=environment, stdout=log, stderr=subprocess.STDOUT)
            )
        self.deadline = time.time() + TIMEOUT

    def output(self, index: int) -> str:
        self.logs[index].flush()
        self.logs[index].seek(0)
        return self.logs[index].read()

    def wait(self) -> list[int]:
        try:
            return [
                process.wait(timeout=max(1, self.deadline - time.time()))
                for process in self.processes
            ]
        except subprocess.TimeoutExpired:
            raise AssertionError(f"timed out; {self.stacks_and_kill()}") from None

    def wait_for(self, condition):
        while time.time() < self.deadline:
            if condition():
                return
            if any(process.poll() is not None for process in self.processes):
                raise AssertionError(
                    f"a process ended first; process 0 wrote:\n{self.output(0)[-3000:]}"
                )
            time.sleep(0.05)
        raise AssertionError(f"timed out; {self.stacks_and_kill()}")

    def stacks_and_kill(self) -> str:
        """Every process's Python stacks (main.py prints them on SIGUSR1) and log tail; then kills them."""
        running = [process for process in self.processes if process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGUSR1)
        time.sleep(3 if running else 0)
        self.kill()
        return "\n".join(
            f"process {index} wrote:\n{self.output(index)[-6000:]}"
            for index in range(len(self.processes))
        )

    def kill(self):
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()


@pytest.fixture
def jobs():
    started = []
    yield lambda *args, **kwargs: started.append(Job(*args, **kwargs)) or started[-1]
    for job in started:
        job.kill()


@pytest.fixture(scope="module")
def one_process(tfds_data_dir, tmp_path_factory):
    """The same run in this single process on its 8 fake devices."""
    config = smoke.get_config()
    config.data_dir = tfds_data_dir
    for key, value in OVERRIDES.items():
        config[key] = value
    workdir = str(tmp_path_factory.mktemp("one_process"))
    train.train_and_evaluate(config, workdir)
    return workdir


def assert_trained_like(workdir, reference, label):
    """The run in `workdir` trained as `reference` did: parameters, each step's loss, the evaluation.

    The same global batches and dropout keys; all-reduces across processes may sum in another order.
    """
    expected, got = checkpoints.load_params(reference), checkpoints.load_params(workdir)
    earlier = checkpoints.load_params(reference, step=2)
    moved, difference = largest_difference(expected, earlier), largest_difference(got, expected)
    print(f"{label}: max |difference| {difference:.1e}; parameters moved {moved:.1e} in 4 steps")
    assert moved > 1e-3 and difference < 1e-5, (difference, moved)

    expected_records, records = read_metrics(reference), read_metrics(workdir)
    # each step once, from process 0
    assert [r["step"] for r in records if "loss" in r] == list(range(1, STEPS + 1))
    (evaluated,), (expected_eval,) = (
        [r for r in records if "val_loss" in r],
        [r for r in expected_records if "val_loss" in r],
    )
    assert evaluated["val_examples"] == 360  # every test digit exactly once, not once per process
    np.testing.assert_allclose(evaluated["val_loss"], expected_eval["val_loss"], rtol=1e-5)
    assert evaluated["val_top1_error"] == expected_eval["val_top1_error"]
    for got_step, expected_step in zip(
        [r for r in records if "loss" in r],
        [r for r in expected_records if "loss" in r],
        strict=True,
    ):
        np.testing.assert_allclose(got_step["loss"], expected_step["loss"], rtol=1e-5)


@pytest.mark.slow
def test_two_processes_train_like_one_and_resume_after_a_kill(
    tfds_data_dir, one_process, jobs, tmp_path
):
    workdir = str(tmp_path / "run")
    checkpoint_dir = os.path.join(workdir, checkpoints.CHECKPOINT_SUBDIR)
    first = jobs(tfds_data_dir, workdir, tmp_path, "first")
    # Orbax renames it there when complete
    first.wait_for(lambda: os.path.isdir(os.path.join(checkpoint_dir, "2")))
    first.kill()
    killed_at = max(int(name) for name in os.listdir(checkpoint_dir) if name.isdigit())
    assert killed_at < STEPS, "the first launch finished before it was killed"

    second = jobs(tfds_data_dir, workdir, tmp_path, "second")
    assert second.wait() == [0, 0], second.output(0)[-3000:] + second.output(1)[-3000:]
    log0, log1 = second.output(0), second.output(1)
    assert f"resumed from the checkpoint at step {killed_at} of {STEPS}" in log0
    # Towers of one data shard in one process: rows p0:0 p0:1, ..., p1:2050 p1:2051.
    assert (
        "data 0: p0:0  p0:1" in log0
        and "data 3: p1:2050  p1:2051" in log0
        and "cross the network" not in log0
    )
    # only process 0 logs
    assert "process 1 of 2" in log1 and "step 1/" not in log1 and "eval at step" not in log1
    assert_trained_like(workdir, one_process, "2 processes vs 1")


@pytest.mark.slow
def test_a_data_shards_towers_on_two_processes_train_like_one_process(
    tfds_data_dir, one_process, jobs, tmp_path
):
    # One device per process (SLURM's one task per GPU) on mesh (1, 2): the two processes hold the
    # two towers of the only data shard, so both must load the whole batch. The reference: the same
    # training in this process on mesh (4, 2).
    pair = jobs(
        tfds_data_dir, str(tmp_path / "pair"), tmp_path, "pair", devices=1, mesh_shape=(1, 2)
    )
    assert pair.wait() == [0, 0], pair.output(0)[-3000:] + pair.output(1)[-3000:]
    assert "data 0: p0:0  p1:2048" in pair.output(0)
    assert_trained_like(tmp_path / "pair", one_process, "towers on 2 processes vs 1 process")


@pytest.mark.slow
def test_a_workdir_the_processes_do_not_share_is_refused(tfds_data_dir, jobs, tmp_path):
    # Process 1 sees another directory, as a host without the shared filesystem would.
    job = jobs(
        tfds_data_dir, str(tmp_path / "here"), tmp_path, "unshared", str(tmp_path / "elsewhere")
    )
    assert job.wait() == [1, 1]
    assert "is not the same directory for every process: process 1" in job.output(1)
    assert "error: Process 1 of the run stopped: ConfigError:" in job.output(0)


@pytest.mark.slow
def test_a_locked_workdir_stops_both_processes(tfds_data_dir, jobs, tmp_path):
    workdir = tmp_path / "locked"
    workdir.mkdir()
    lock = rundir.WorkdirLock(str(workdir))
    lock.acquire()  # as if another run held it
    try:
        job = jobs(tfds_data_dir, str(workdir), tmp_path, "locked")
        assert job.wait() == [1, 1]
    finally:
        lock.release()
    assert "is in use by another run" in job.output(0)
    # not waiting forever
    assert "error: Process 0 of the run stopped: WorkdirError:" in job.output(1)


# ---------------------------------------------------------------------------
# Single-process pieces


def fake_mesh(rows):
    devices = np.array(
        [[SimpleNamespace(process_index=p, id=i) for p, i in row] for row in rows], dtype=object
    )
    return SimpleNamespace(
        devices=devices, shape={"data": devices.shape[0], "model": devices.shape[1]}
    )


def test_data_rows_follow_the_data_shards_of_each_processs_devices():
    # (4, 2), two processes of four devices: 'data' across processes, halves of the batch.
    two_by_four = fake_mesh(
        [[(0, 0), (0, 1)], [(0, 2), (0, 3)], [(1, 4), (1, 5)], [(1, 6), (1, 7)]]
    )
    assert [sharding.data_rows(two_by_four, 16, p) for p in range(2)] == [
        ((0, 1), 4, 0, 2),
        ((2, 3), 4, 1, 2),
    ]
    # (2, 2), one device per process: processes 2d and 2d+1 hold the towers of shard d and load the same rows.
    one_each = fake_mesh([[(0, 0), (1, 1)], [(2, 2), (3, 3)]])
    assert [sharding.data_rows(one_each, 8, p) for p in range(4)] == [((0,), 4, 0, 2)] * 2 + [
        ((1,), 4, 1, 2)
    ] * 2
    # (1, 2): both load everything
    assert sharding.data_rows(fake_mesh([[(0, 0), (1, 1)]]), 8, 1) == ((0,), 8, 0, 1)
    # One process, (8, 1): all rows.
    rows = sharding.data_rows(fake_mesh([[(0, i)] for i in range(8)]), 16, 0)
    assert rows.size == rows.global_size == 16 and list(rows.indices()) == list(range(16))
    # Shards that are not neighbours, as a TPU mesh can order hosts: process 0 holds shards 0 and 2.
    apart = sharding.data_rows(fake_mesh([[(0, 0)], [(1, 1)], [(0, 2)], [(1, 3)]]), 8, 0)
    assert apart == ((0, 2), 2, 0, 2) and list(apart.indices()) == [0, 1, 4, 5]


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [[(0, 0), (0, 1)], [(0, 2), (1, 3)], [(1, 4), (1, 5)]],
            "overlapping or unequal",
        ),  # 3 devices per process on (3, 2)
        ([[(0, 0)], [(1, 1)], [(1, 2)]], "overlapping or unequal"),  # 1 and 2 devices
    ],
)
def test_data_rows_refuse_layouts_the_processes_cannot_split(rows, message):
    with pytest.raises(sharding.MeshError, match=message):
        sharding.data_rows(fake_mesh(rows), 12, 0)


def test_towers_share_host():
    paired = fake_mesh([[(0, 0), (0, 1)], [(1, 4), (1, 5)]])
    assert distributed.towers_share_host(paired, ["a", "b"])
    assert not distributed.towers_share_host(
        fake_mesh([[(0, 0), (1, 4)], [(0, 1), (1, 5)]]), ["a", "b"]
    )
    # One process per GPU (SLURM's way): two processes of one host hold a data shard's towers.
    assert distributed.towers_share_host(
        fake_mesh([[(0, 0), (1, 1)], [(2, 2), (3, 3)]]), ["a", "a", "b", "b"]
    )
    assert "data 1: p1:4  p1:5" in distributed.describe_mesh(paired, ["a", "b"])


@pytest.mark.parametrize(
    "args, message",
    [
        (("", 2, 0), "need --coordinator_address"),
        (("10.0.0.2", 2, 0), "must be HOST:PORT"),
        (("127.0.0.1:1234", 2, 5), r"--process_id must be in \[0, 2\)"),
    ],
)
def test_initialize_rejects_incomplete_settings(args, message):
    with pytest.raises(ValueError, match=message):
        distributed.initialize(*args)


def test_agreement_with_one_process_is_a_plain_call():
    assert distributed.everywhere(lambda: 3) == 3
    assert distributed.process_zero_first(lambda: 4) == 4
    with pytest.raises(KeyError):
        distributed.on_process_zero(lambda: {}["missing"])
    assert distributed.any_process(True) and not distributed.any_process(False)
