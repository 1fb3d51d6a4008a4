"""What every benchmark shares: timing, command-line flags, the machine line, JSON output.

JAX is imported inside the functions that need it, so that a torch-only
worker process (benchmarks/train_step.py) can use the timing and memory
helpers without JAX's memory in its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def median_ms(fn, args, repeats: int, warmup: int) -> float:
    """Median wall time of `fn(*args)` in milliseconds, waiting for the results."""
    import jax

    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def time_steps(
    step: Callable[[Any], Any],
    carry,
    repeats: int,
    warmup: int,
    sync: Callable[[Any], Any] = lambda c: c,
    before_timed: Callable[[], Any] | None = None,
) -> dict:
    """Wall times of `carry = step(carry)`, threaded through `warmup` untimed and `repeats` timed calls.

    For steps that donate or update their input (a train state), so the
    same arguments cannot be passed twice. `sync(carry)` waits for the
    results (e.g. `jax.block_until_ready`; eager CPU torch needs nothing);
    `before_timed()`, if given, runs between the untimed and the timed calls.
    Returns warmup_s and times_s (lists of seconds), median_ms, the final
    carry, and other_cores: the cores other processes kept busy during the
    timed calls, on average (/proc/stat minus this process's CPU time), so
    a reader can tell a quiet machine from a shared one.
    """
    warmup_s = []
    for _ in range(warmup):
        start = time.perf_counter()
        carry = sync(step(carry))
        warmup_s.append(time.perf_counter() - start)
    if before_timed is not None:
        before_timed()
    times = []
    busy_start, own_start, wall_start = (
        machine_busy_seconds(),
        time.process_time(),
        time.perf_counter(),
    )
    for _ in range(repeats):
        start = time.perf_counter()
        carry = sync(step(carry))
        times.append(time.perf_counter() - start)
    wall = time.perf_counter() - wall_start
    others = max(0.0, machine_busy_seconds() - busy_start - (time.process_time() - own_start))
    return dict(
        warmup_s=warmup_s,
        times_s=times,
        median_ms=1e3 * statistics.median(times),
        carry=carry,
        other_cores=others / max(wall, 1e-9),
    )


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0))


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have spent (every core), from /proc/stat."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line (not Linux?)")


def rss_mib() -> float:
    """This process's resident memory now, MiB."""
    return _status_kib("VmRSS") / 1024


def peak_rss_mib() -> float:
    """This process's peak resident memory since it started or since `reset_peak_rss`, MiB."""
    return _status_kib("VmHWM") / 1024


def reset_peak_rss() -> bool:
    """Resets the peak-RSS mark to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# The training step of alexnet_jax, as benchmarks/train_step.py and scaling.py run it

LEARNING_RATE = 1e-3  # low enough that many steps on one repeated random batch do not diverge


def bench_config(model: str, batch: int, mesh_shape=(1, 1), **overrides):
    """The model's own training config (paper: configs/imagenet.py, small: configs/default.py) for a benchmark.

    Changed: batch size, mesh shape, a constant learning rate of
    LEARNING_RATE without warmup (the small model's 0.02 diverges on one
    repeated random batch without its warmup; the rate does not change what
    a step costs), and `overrides` (config fields).
    """
    from configs import default, imagenet

    config = imagenet.get_config() if model == "paper" else default.get_config()
    config.batch_size = batch
    config.mesh_shape = tuple(mesh_shape)
    config.schedule = "constant"
    config.warmup_epochs = 0.0
    config.learning_rate = LEARNING_RATE
    for key, value in overrides.items():
        config[key] = value
    return config


def random_batch(batch: int, image_size: int, num_classes: int, seed: int = 0):
    """(images (B, S, S, 3) float32 N(0, 1), labels (B,) int32), the same for every framework and run."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch, image_size, image_size, 3), dtype=np.float32)
    labels = rng.integers(0, num_classes, batch).astype(np.int32)
    return images, labels


def jax_train_step(config, mesh) -> dict:
    """The training loop's jitted train step on `mesh` with a fresh state and one random global batch.

    Built as `train.train_and_evaluate` builds it (`create_model`,
    `create_optimizer`, `create_train_state`, `compile_steps`: named
    shardings, state donated) and compiled ahead of time. Returns p_train
    (the jitted step), compiled (its executable), compile_s (trace + lower
    + compile), state, batch, dropout_key.
    """
    import jax

    from alexnet_jax import sharding, steps

    model = steps.create_model(config, mesh)
    tx = steps.create_optimizer(config, steps_per_epoch=1000, total_steps=1_000_000)
    _, shardings, _ = steps.state_shardings(model, tx, mesh, config.image_size, config.seed)
    state = steps.create_train_state(model, tx, mesh, config.image_size, config.seed)
    p_train, _ = steps.compile_steps(model, tx, mesh, shardings)
    images, labels = random_batch(config.batch_size, config.image_size, config.num_classes)
    batch = sharding.host_batch_to_global({"image": images, "label": labels}, mesh)
    dropout_key = sharding.put_replicated(jax.random.key(config.seed + 1), mesh)
    start = time.perf_counter()
    compiled = p_train.lower(state, batch, dropout_key).compile()
    compile_s = time.perf_counter() - start
    return dict(
        p_train=p_train,
        compiled=compiled,
        compile_s=compile_s,
        state=state,
        batch=batch,
        dropout_key=dropout_key,
    )


def run_jax_steps(setup: dict, repeats: int, warmup: int, before_timed=None) -> dict:
    """Times `p_train` from a `jax_train_step` setup (its state donated and threaded through) and checks it trained.

    Returns `time_steps`'s timings (without the carry) and losses (one per
    step), trained (every loss finite and the output layer's bias changed)
    and cache_entries (compiled versions of p_train afterwards: 1 unless a
    call recompiled).
    """
    import jax
    import numpy as np

    p_train, state, batch, dropout_key = (
        setup["p_train"],
        setup["state"],
        setup["batch"],
        setup["dropout_key"],
    )
    setup["state"] = None  # donated below: the caller must not use it again
    head = max(
        (name for name in state.params if name.startswith("fc")), key=lambda name: int(name[2:])
    )
    head_bias = np.asarray(jax.device_get(state.params[head]["bias"])).copy()
    metrics = []

    def step(state):
        state, step_metrics = p_train(state, batch, dropout_key)
        metrics.append(step_metrics)
        return state

    timing = time_steps(
        step, state, repeats, warmup, sync=jax.block_until_ready, before_timed=before_timed
    )
    state = timing.pop("carry")
    losses = [float(m["loss"]) for m in jax.device_get(metrics)]
    changed = not np.array_equal(np.asarray(jax.device_get(state.params[head]["bias"])), head_bias)
    return dict(
        timing,
        losses=losses,
        trained=bool(np.all(np.isfinite(losses)) and changed),
        cache_entries=p_train._cache_size() if hasattr(p_train, "_cache_size") else None,
    )


# ---------------------------------------------------------------------------
# Measurements in subprocesses of their own (own memory, own XLA_FLAGS)

WORKER_RESULT = "RESULT "  # prefix of the line a worker prints its JSON result on


def run_worker(script: str, spec: dict, timeout_s: float, env: dict | None = None):
    """Runs `python script --worker JSON(spec)` in a fresh process; its JSON result, or {'error': short reason}.

    env: variables to set in the worker (on top of this process's).
    """
    command = [sys.executable, str(Path(script).resolve()), "--worker", json.dumps(spec)]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=environment,
            cwd=Path(__file__).resolve().parents[1],
        )
    except subprocess.TimeoutExpired:
        return dict(error=f"timed out after {timeout_s:.0f} s")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(WORKER_RESULT):
            return json.loads(line[len(WORKER_RESULT) :])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return dict(error=f"exit code {done.returncode}: {lines[-1][:200] if lines else 'no output'}")


def worker_main(measure: Callable[[dict], Any], spec: dict) -> None:
    """The worker side of `run_worker`: prints `measure(spec)`, or the exception that stopped it, as JSON."""
    try:
        result = measure(spec)
    except Exception as error:  # noqa: BLE001 - reported in the table (e.g. torch.compile failing on this machine)
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        result = dict(error=f"{type(error).__name__}: {message}"[:200])
    print(WORKER_RESULT + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------
# Flags and output


def base_parser(description: str) -> argparse.ArgumentParser:
    """A parser with --repeats, --warmup and --json, for benchmarks that choose their own batch flags."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row (default 5)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="untimed calls per row, compilation included (default 2)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser


def parse_args(description: str, batch: int = 32) -> argparse.Namespace:
    """--batch, --repeats, --warmup and --json, the flags of every benchmark."""
    parser = base_parser(description)
    parser.add_argument(
        "--batch", type=int, default=batch, help=f"images per call (default {batch})"
    )
    return parser.parse_args()


def report(
    args: argparse.Namespace, rows: list[dict], table: str, settings: dict | None = None
) -> None:
    """Prints the machine, the settings and the table; writes the rows to --json if asked.

    settings: what to print and save about the run; default batch, repeats and warmup from `args`.
    """
    import jax

    machine = f"jax {jax.__version__}, devices {jax.devices()}, {os.cpu_count()} CPU cores"
    print(f"Machine: {machine}")
    if settings is None:
        settings = dict(batch=args.batch, repeats=args.repeats, warmup=args.warmup)
        print(
            f"batch {args.batch}, median of {args.repeats} calls after {args.warmup} warm-up calls\n"
        )
    else:
        print(", ".join(f"{key} {value}" for key, value in settings.items()) + "\n")
    print(table)
    if args.json:
        args.json.write_text(
            json.dumps(dict(dict(machine=machine, **settings), rows=rows), indent=2) + "\n"
        )
