"""The accelerator benchmark and correctness checks (benchmarks/accelerator.py,
benchmarks/accelerator_check.py) on tiny CPU settings; their import graph has no TensorFlow."""

import json
import math
import os

import numpy as np
import pytest
from helpers import ROOT, run_python, subprocess_env

BENCHMARKS = os.path.join(ROOT, "benchmarks")
HEAVY = ("tensorflow", "tensorflow_datasets", "matplotlib")
# XLA's FLOP count of a step over the analytic count of its conv and dense products done XLA's
# way (no padding taps, no input gradient for conv1): XLA adds the elementwise work (LRN, ReLU,
# pooling, softmax, about 10 FLOP per parameter for the update), 10-13% of it at the tiny
# settings' batch of 2, 1.3-2.0% at 224x224 and batches of 32-128 (docs/performance.md).
XLA_OVER_ANALYTIC = (1.0, 1.25)


@pytest.fixture
def benchmarks_path(monkeypatch):
    """benchmarks/ importable as the scripts see it (their `from common import ...`)."""
    monkeypatch.syspath_prepend(BENCHMARKS)


def test_the_benchmarks_import_no_tensorflow_tfds_or_matplotlib():
    # Everything the scripts and their workers import, the function-level imports included.
    imports = (
        "import accelerator, accelerator_check, common, torch; "
        "import alexnet_jax.steps, alexnet_jax.sharding, configs.imagenet, configs.default, "
        "reference.torch_alexnet"
    )
    probe = f"import sys; {imports}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([BENCHMARKS, env["PYTHONPATH"]])
    result = run_python("-c", probe, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_analytic_count_matches_the_papers(benchmarks_path):
    from common import analytic_macs, bench_config

    from alexnet_jax import steps

    # Forward multiply-adds per 224x224 image: 724 M for the paper's model, 714 M for torchvision's.
    for model, millions in (("paper", 724), ("owt", 714)):
        macs = analytic_macs(steps.create_model(bench_config(model, 1)))
        assert macs["dense"] / 1e6 == pytest.approx(millions, rel=0.01), model


class FakeRunner:
    """Runs a search's rows without a device: a batch above `fits` runs out of memory."""

    def __init__(self, fits: int, bytes_limit=None):
        self.fits, self.machine, self.batches = fits, dict(bytes_limit=bytes_limit), []

    def run(self, spec):
        self.batches.append(spec["batch"])
        if spec["batch"] > self.fits:
            return dict(spec, error="XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory")
        return dict(spec, trained=True, xla_peak_bytes=100 + 10 * spec["batch"])


@pytest.mark.parametrize(
    "fits, bytes_limit, cap, tried, largest, stopped",
    [
        (40, None, 1024, [16, 32, 64], 32, "out of memory at 64"),  # doubles from 2 x 8
        # XLA's bound, 100 + 10 x batch, puts 80 within 90% of 1000 bytes: start at 64, halve
        (40, 1000, 1024, [64, 32], 32, "out of memory at 64"),
        (1000, None, 32, [16, 32], 32, "the cap, 32 (--largest_cap)"),
        (12, None, 1024, [16], 8, "out of memory at 16"),  # nothing above the listed batches
    ],
)
def test_the_largest_batch_search(benchmarks_path, fits, bytes_limit, cap, tried, largest, stopped):
    import accelerator

    runner = FakeRunner(fits, bytes_limit)
    done = [dict(batch=b, xla_peak_bytes=100 + 10 * b) for b in (4, 8)]
    rows, outcome = accelerator.search_largest(runner, dict(kind="jax"), done, cap)
    assert runner.batches == tried
    assert outcome == dict(largest=largest, stopped=stopped)
    assert all(row["search"] for row in rows)


def test_rows_after_the_deadline_are_skipped_not_started(benchmarks_path):
    import accelerator

    runner = accelerator.Runner(timeout_s=300, deadline_s=accelerator.ROW_MIN_S - 1, machine={})
    spec = dict(kind="jax", model="paper", batch=128, precision="float32", repeats=1, windows=1)
    row = runner.run(spec)  # a worker started here would fail: no such script argument
    assert row["skipped"].startswith("deadline") and row["batch"] == 128


def test_update_difference_is_relative_to_the_update(benchmarks_path):
    import accelerator_check

    initial = {"layer": {"kernel": np.array([1.0, 1.0]), "bias": np.array([0.0])}}
    a = {"layer": {"kernel": np.array([1.01, 1.02]), "bias": np.array([0.5])}}
    b = {"layer": {"kernel": np.array([1.01, 1.0202]), "bias": np.array([0.5])}}
    worst, leaf = accelerator_check.update_difference(initial, a, b)
    # The kernel's updates differ by 2e-4 where the larger update is 0.0202: 1%, although the
    # weights themselves agree to 2e-4 relative.
    assert leaf == "layer/kernel"
    assert worst == pytest.approx(2e-4 / 0.0202, rel=1e-6)


@pytest.mark.slow
def test_benchmark_runs_tiny_on_cpu(tmp_path):
    output = tmp_path / "accelerator.json"
    result = run_python(
        "benchmarks/accelerator.py",
        "--tiny",
        # The two-tower model only (owt's rows are the same code with another model; its FLOP
        # count is checked above): each row is a process of its own, about 6 s on 2 cores.
        "--models=paper",
        "--precisions=float32",
        "--frameworks=jax,torch",
        "--search_models=",
        f"--json={output}",
        # One torch thread: its OpenMP threads spin while they wait, which slows the other test
        # worker's process on a 2-core machine (and this row with it).
        env=subprocess_env(JAX_DISABLE_MOST_OPTIMIZATIONS="1", OMP_NUM_THREADS="1"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(output.read_text())
    rows = {(row["model"], row["kind"]): row for row in report["rows"]}
    assert sorted(rows) == [("paper", "jax"), ("paper", "torch")]
    for (model, kind), row in rows.items():
        assert "error" not in row and "skipped" not in row, row
        assert math.isfinite(row["median_ms"]) and row["median_ms"] > 0, row
        assert row["images_per_s"] > 0 and row["flops_per_s"] > 0, row
        assert row["trained"], row
        assert row["tensorflow_imported"] is False, row
        if kind == "jax":
            ratio = row["xla_flops"] / row["analytic_xla_flops"]
            assert XLA_OVER_ANALYTIC[0] <= ratio <= XLA_OVER_ANALYTIC[1], (model, ratio)
            assert row["cache_entries"] == 1, row
    assert {entry["model"] for entry in report["ratios"]} == {"paper"}
    assert all(entry["jax_over_torch"] > 0 for entry in report["ratios"])
    assert report["tensorflow_imported"] is False and report["device"]["platform"] == "cpu"
    assert "alexnet_jax / torch eager" in result.stdout


@pytest.mark.slow
def test_correctness_checks_pass_tiny_on_two_cpu_devices(tmp_path):
    output = tmp_path / "accelerator_check.json"
    env = subprocess_env(
        XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_DISABLE_MOST_OPTIMIZATIONS="1"
    )
    # (a) of the paper model only: on CPU it compares the CPU with itself; owt's is the same code.
    result = run_python(
        "benchmarks/accelerator_check.py",
        "--tiny",
        "--step_models=paper",
        f"--json={output}",
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["passed"] and report["device_count"] == 2
    statuses = {(row["check"][:3], row["model"]): row["status"] for row in report["checks"]}
    assert statuses == {
        ("(a)", "paper"): "pass",
        ("(b)", "paper"): "pass",
        ("(c)", "paper"): "pass",  # run, not skipped: two devices
    }
    towers = next(row for row in report["checks"] if row["check"].startswith("(c)"))
    assert 0 < towers["update_relative_difference"] <= towers["update_bound"]
    assert report["tensorflow_imported"] is False
