"""What every benchmark shares: timing, command-line flags, the machine line, JSON output,
the project's train step and its PyTorch counterpart, the analytic FLOP count.

JAX, torch and the project are imported inside the functions that need them,
so that a torch-only worker process (benchmarks/train_step.py,
benchmarks/accelerator.py) can use the timing and memory helpers without
JAX's memory in its own, and nothing here imports TensorFlow (the
accelerator benchmarks run where it is not installed).
"""

from __future__ import annotations

import argparse
import contextlib
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
    return time_back_to_back(step, carry, 1, warmup, sync, before_timed, windows=repeats)


def time_back_to_back(
    step: Callable[[Any], Any],
    carry,
    repeats: int,
    warmup: int,
    sync: Callable[[Any], Any] = lambda c: c,
    before_timed: Callable[[], Any] | None = None,
    windows: int = 3,
) -> dict:
    """`time_steps` where each of `windows` timed windows runs `repeats` calls back to back and
    waits once, at its end: the step time an asynchronous device reaches when the host queues the
    next step while the current one runs (as the training loop does).

    The `warmup` untimed calls wait for each result. times_s: each window's time per call (s);
    median_ms: the median of those. `time_steps` is the case of one call per window.
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
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(repeats):
            carry = step(carry)
        carry = sync(carry)
        times.append((time.perf_counter() - start) / repeats)
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


# The config each benchmarked model trains with: (module in configs/, fields changed). `owt`
# (torchvision's single tower) has no config of its own: the paper's ImageNet recipe with the
# variant's own towers, normalization and init (alexnet_jax.models), which the PyTorch side
# reads too.
BENCH_MODELS = {
    "paper": ("imagenet", {}),
    "owt": ("imagenet", dict(model="owt", towers=1, normalization="none", init_scheme="torch")),
    "small": ("default", {}),
}


def bench_config(model: str, batch: int, mesh_shape=(1, 1), **overrides):
    """The model's own training config (paper: configs/imagenet.py, small: configs/default.py, owt:
    `BENCH_MODELS`) for a benchmark.

    Changed: batch size, mesh shape, a constant learning rate of
    LEARNING_RATE without warmup (the small model's 0.02 diverges on one
    repeated random batch without its warmup; the rate does not change what
    a step costs), and `overrides` (config fields).
    """
    import importlib

    module, fields = BENCH_MODELS[model]
    config = importlib.import_module(f"configs.{module}").get_config()
    for key, value in fields.items():
        config[key] = value
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


def jax_train_step(config, mesh, create_state: bool = True) -> dict:
    """The training loop's jitted train step on `mesh` with a fresh state and one random global batch.

    Built as `train.train_and_evaluate` builds it (`create_model`,
    `create_optimizer`, `create_train_state`, `compile_steps`: named
    shardings, state donated) and compiled ahead of time. Returns p_train
    (the jitted step), compiled (its executable), compile_s (trace + lower
    + compile), state (None without `create_state`: then compiled for the
    state's shapes and shardings alone), shardings (the state's), batch,
    dropout_key.
    """
    import jax

    from alexnet_jax import sharding, steps

    model = steps.create_model(config, mesh)
    tx = steps.create_optimizer(config, steps_per_epoch=1000, total_steps=1_000_000)
    abstract, shardings, _ = steps.state_shardings(model, tx, mesh, config.image_size, config.seed)
    state = (
        steps.create_train_state(model, tx, mesh, config.image_size, config.seed)
        if create_state
        else None
    )
    p_train, _ = steps.compile_steps(model, tx, mesh, shardings)
    images, labels = random_batch(config.batch_size, config.image_size, config.num_classes)
    batch = sharding.host_batch_to_global({"image": images, "label": labels}, mesh)
    dropout_key = sharding.put_replicated(jax.random.key(config.seed + 1), mesh)
    like = state
    if like is None:
        like = jax.tree.map(
            lambda leaf, where: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=where),
            abstract,
            shardings,
        )
    start = time.perf_counter()
    compiled = p_train.lower(like, batch, dropout_key).compile()
    compile_s = time.perf_counter() - start
    return dict(
        p_train=p_train,
        compiled=compiled,
        compile_s=compile_s,
        state=state,
        shardings=shardings,
        batch=batch,
        dropout_key=dropout_key,
    )


def run_jax_steps(
    setup: dict, repeats: int, warmup: int, before_timed=None, timer=time_steps, **timer_options
) -> dict:
    """Times `p_train` from a `jax_train_step` setup (its state donated and threaded through) and checks it trained.

    timer: `time_steps` (each call waited for) or `time_back_to_back`
    (`timer_options`: its windows). Returns the timer's timings (without the
    carry) and losses (one per step), trained (every loss finite and the
    output layer's bias changed) and cache_entries (compiled versions of
    p_train afterwards: 1 unless a call recompiled).
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

    timing = timer(
        step,
        state,
        repeats,
        warmup,
        sync=jax.block_until_ready,
        before_timed=before_timed,
        **timer_options,
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


def xla_costs(compiled) -> dict:
    """XLA's view of a compiled step: its FLOP count (`cost_analysis()['flops']`, NaN if absent) and
    `memory_analysis()`: temporaries, and arguments + outputs - aliased (donated) + temporaries,
    the executable's peak-memory bound (bytes)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    memory = compiled.memory_analysis()
    return dict(
        xla_flops=float((cost or {}).get("flops", float("nan"))),
        xla_temp_bytes=memory.temp_size_in_bytes,
        xla_peak_bytes=memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        - memory.alias_size_in_bytes
        + memory.temp_size_in_bytes,
        xla_argument_bytes=memory.argument_size_in_bytes,
        xla_output_bytes=memory.output_size_in_bytes,
        xla_alias_bytes=memory.alias_size_in_bytes,
    )


# ---------------------------------------------------------------------------
# Analytic FLOPs


def conv_taps(size_in: int, kernel: int, stride: int, padding: int) -> tuple[int, int, int]:
    """(output size, kernel taps summed over output positions along one axis, those on real pixels)."""
    size_out = (size_in + 2 * padding - kernel) // stride + 1
    real = 0
    for o in range(size_out):
        first = max(0, padding - o * stride)
        last = min(kernel - 1, size_in - 1 + padding - o * stride)
        real += max(0, last - first + 1)
    return size_out, size_out * kernel, real


def analytic_macs(model, image_size: int | None = None) -> dict:
    """Multiply-adds of one image's forward pass through `model` (an alexnet_jax AlexNet), by layer kind.

    image_size: the images' side; default the variant's own (224 for paper and owt). Returns dense (padding taps counted), real (padding taps not counted;
    the fully connected layers are in both) and conv1_real (conv1's share of
    `real`, whose input gradient a training step does not need).
    """
    from alexnet_jax.models import POOLINGS

    arch, towers = model.architecture, model.resolved()["towers"]
    window, pool_stride = POOLINGS[model.pooling]
    size, channels = image_size or arch.image_size, 3
    dense = real = conv1_real = 0
    for index, layer in enumerate(arch.convs):
        size_out, taps, real_taps = conv_taps(size, layer.kernel_size, layer.stride, layer.padding)
        # input channels each output map sees
        seen = channels // towers if layer.within_tower else channels
        dense += taps * taps * seen * layer.features
        real += real_taps * real_taps * seen * layer.features
        if index == 0:
            conv1_real = real_taps * real_taps * seen * layer.features
        size, channels = size_out, layer.features
        if layer.pool:
            size = (size - window) // pool_stride + 1
    if arch.pooled_size:
        size = arch.pooled_size
    fc = 0
    width = size * size * channels
    for features in tuple(arch.hidden_features) + (model.num_classes,):
        fc += width * features  # fc8's towers each see their half of fc7: the same count in all
        width = features
    return dict(dense=dense + fc, real=real + fc, conv1_real=conv1_real)


def train_flops(macs: dict, batch: int) -> tuple[float, float]:
    """(3 x forward FLOPs with padding taps, the step's conv/dense FLOPs as XLA counts them) for a batch."""
    convention = 3 * 2 * macs["dense"] * batch
    as_xla = 2 * (3 * macs["real"] - macs["conv1_real"]) * batch
    return convention, as_xla


# ---------------------------------------------------------------------------
# The same step in PyTorch: reference/torch_alexnet.py's independent models


def torch_model(model: str, num_classes: int, image_size: int, hidden_features=None):
    """The PyTorch AlexNet of `model`: paper (`paper_alexnet`: groups=2 on conv2/4/5, LRN per
    tower), owt (`TorchvisionAlexNet`), small (`small_alexnet`), for square images of `image_size`.

    hidden_features: widths of fc6 and fc7 replacing the reference's (as the JAX config's field of
    that name does), e.g. (256, 256) for a quick check; None keeps them.
    """
    import torch

    from reference.torch_alexnet import TorchvisionAlexNet, paper_alexnet, small_alexnet

    if model == "owt":
        net = TorchvisionAlexNet(num_classes)  # adaptive 6x6 pool: any image size
    else:
        build = paper_alexnet if model == "paper" else small_alexnet
        # The classifier's input size follows from the images'; found on a throwaway model whose
        # initialization draws are undone, so the model returned starts from the same random state.
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            probe = torch.zeros(1, 3, image_size, image_size)
            side = build(num_classes).features(probe).shape[-1]
        net = build(num_classes, spatial=side)
    if hidden_features is not None:
        linears = [
            i for i, layer in enumerate(net.classifier) if isinstance(layer, torch.nn.Linear)
        ]
        widths = [net.classifier[linears[0]].in_features, *hidden_features, num_classes]
        if len(widths) != len(linears) + 1:
            raise ValueError(f"hidden_features={hidden_features!r}: {model} has {len(linears) - 1}")
        for index, width_in, width_out in zip(linears, widths, widths[1:]):
            net.classifier[index] = torch.nn.Linear(width_in, width_out)
    return net


def init_like_jax(model, scheme: str) -> None:
    """Conv/linear weights drawn as the JAX config's `init_scheme` draws them (paper: N(0, 0.01^2), biases
    1 in conv2/4/5 and fc6/7; he: N(0, 2 / fan_in), biases 0; torch: torch's own defaults, left as they
    are), so both frameworks start from similar scales."""
    import math

    import torch

    if scheme == "torch":
        return
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for index, layer in enumerate(layers):
            fan_in = layer.weight[0].numel()  # per output map: a grouped conv's own tower only
            std = 0.01 if scheme == "paper" else math.sqrt(2.0 / fan_in)
            layer.weight.normal_(0.0, std)
            layer.bias.fill_(1.0 if scheme == "paper" and index in (1, 3, 4, 5, 6) else 0.0)


def torch_train_step(
    config,
    model: str,
    compiled: bool,
    device: str = "cpu",
    channels_last: bool = False,
    autocast_dtype=None,
) -> dict:
    """The PyTorch counterpart of `jax_train_step`: `torch_model(model)` initialised like the JAX
    config's scheme, in train mode (dropout active), `F.cross_entropy`,
    `torch.optim.SGD(momentum, weight_decay)` at the config's rate, on `random_batch`'s images
    (NCHW, torch's native layout; `channels_last`: stored NHWC) and labels (int64) on `device`.

    compiled: `torch.compile` the model and the optimizer step (the whole step compiled, as JAX
    compiles it); the optimizer step recompiles on the second call, once the momentum buffers
    exist, so such a step wants one more untimed call (`extra_warmup`). autocast_dtype: e.g.
    torch.bfloat16, the forward and loss under `torch.autocast`. The paper's update rule differs
    from torch's SGD only in where the learning rate multiplies, which costs the same.

    Returns step (losses -> losses: one training step, appending its loss tensor), losses (the
    list), extra_warmup, net and trained (a function: every loss finite and the output layer's
    bias changed since the start).
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.manual_seed(config.seed)
    net = torch_model(model, config.num_classes, config.image_size, config.get("hidden_features"))
    init_like_jax(net, config.init_scheme)
    net.train()  # dropout active
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(device=device, memory_format=memory_format)
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=config.learning_rate,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    images, labels = random_batch(config.batch_size, config.image_size, config.num_classes)
    # NCHW, torch's native layout
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    x = x.to(device=device, memory_format=memory_format)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    forward = torch.compile(net) if compiled else net

    def optimizer_step():
        optimizer.step()

    update = torch.compile(optimizer_step, fullgraph=False) if compiled else optimizer_step
    head_bias = net.classifier[-1].bias.detach().clone()
    losses = []
    autocast = (
        (lambda: torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype))
        if autocast_dtype is not None
        else contextlib.nullcontext
    )

    def step(losses):
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(forward(x), y)
        loss.backward()
        update()
        losses.append(loss.detach())
        return losses

    def trained() -> bool:
        values = [float(loss) for loss in losses]
        changed = not torch.equal(net.classifier[-1].bias.detach(), head_bias)
        return bool(values and all(np.isfinite(values)) and changed)

    return dict(
        step=step, losses=losses, extra_warmup=1 if compiled else 0, net=net, trained=trained
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


def batch_list(text: str) -> list[int]:
    """An argparse type: positive integers (batch sizes, widths) separated by commas, e.g. "32,128"."""
    try:
        batches = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give positive integers separated by commas, e.g. 32,128"
        )
    return batches


def name_list(valid, allow_empty: bool = False):
    """An argparse type: names from `valid` separated by commas (with `allow_empty`, also none)."""

    def parse(text: str) -> list[str]:
        names = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [name for name in names if name not in valid]
        if unknown or not (names or allow_empty):
            raise argparse.ArgumentTypeError(
                f"{text!r}: choose from {', '.join(valid)}, separated by commas"
                + (" (or '' for none)" if allow_empty else "")
            )
        return names

    return parse


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
    args: argparse.Namespace,
    rows: list[dict],
    table: str,
    settings: dict | None = None,
    machine: str | None = None,
    extra: dict | None = None,
) -> None:
    """Prints the machine, the settings and the table; writes the rows to --json if asked.

    settings: what to print and save about the run; default batch, repeats and warmup from `args`.
    machine: the machine line; default this process's JAX version, devices and CPU cores (which
    starts JAX's backend in this process: a process that leaves the accelerator to its workers
    passes its own). extra: more results for the JSON file only (the table shows them).
    """
    if machine is None:
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
            json.dumps(
                dict(dict(machine=machine, **settings), rows=rows, **(extra or {})), indent=2
            )
            + "\n"
        )
