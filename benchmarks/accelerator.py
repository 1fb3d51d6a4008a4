"""The training step on an accelerator (GPU, TPU; or the CPU, on tiny settings), alexnet_jax vs. PyTorch.

Needs JAX, Flax, optax and (for the reference rows) PyTorch; nothing here or
in what it imports loads TensorFlow, tfds or matplotlib, so it runs on
accelerator images that have none (each row's JSON says whether its process
had TensorFlow loaded). The configs need ml_collections (a pure-Python
wheel).

What is timed, per model (`paper`: the two towers; `owt`: torchvision's
single tower), batch size and precision (float32; bfloat16):
  alexnet_jax: the jitted, donated train step the training loop runs
    (`common.jax_train_step`: `steps.create_model`, `create_optimizer`,
    `create_train_state`, `compile_steps`) on a 1-device ('data', 'model')
    mesh, with the model's config (paper: `configs/imagenet.py`; owt: the
    same recipe with the variant's own towers, normalization and init;
    a constant learning rate of 0.001, so many steps on one batch do not
    diverge), on one random batch that lives on the device: forward with
    dropout, cross-entropy, backward, the paper's SGD rule, metrics.
    bfloat16 is the config's `half_precision=True`: bfloat16 activations
    and compute, float32 parameters, LRN sums, logits and loss. float32
    runs at JAX's default matmul precision (on NVIDIA tensor-core GPUs:
    TF32 for float32 convolutions and products).
  torch eager / torch.compile: the independent models of
    `reference/torch_alexnet.py` (`paper_alexnet()`: groups=2 on conv2/4/5
    and LRN on each tower's channels; `TorchvisionAlexNet` for owt), set up
    by `common.torch_train_step` (initialised like the JAX config, dropout
    active, `F.cross_entropy`, `torch.optim.SGD` with momentum and weight
    decay; torch.compile compiles the model and the optimizer step),
    channels_last, on the same device; bfloat16 is `torch.autocast` with
    bfloat16. On CUDA: cudnn.benchmark on, TF32 allowed for matmuls and
    convolutions (as JAX's default precision uses it).

Timing (`common.time_back_to_back`): after the untimed calls (JAX: after
compiling ahead of time; torch.compile: one more, its optimizer step
recompiles on the second call), `--windows` windows of `--repeats` steps
queued back to back, the device waited for at the end of each; the step
time is the median window's time per step. Every row checks that its steps
trained (every loss finite, the output layer's bias changed).

Per row: compile s (JAX: trace + lower + compile; torch: the untimed calls'
time beyond as many steady steps), step ms, images/s, achieved FLOP/s from
the analytic count (`common.analytic_macs`: 3 x the forward pass's
multiply-adds x 2, padding taps included, the convention of
benchmarks/train_step.py) and, for alexnet_jax, from XLA's own count of the
compiled step (`cost_analysis()['flops']`: no padding taps, no input
gradient for conv1, plus the elementwise work), the fraction of the chip's
peak (`DATASHEET_PEAKS`: dense tensor-core rates from NVIDIA's datasheets,
TF32 for float32 rows, BF16 for bfloat16 rows; "-" for a chip not listed,
such as the CPU) and of the matmul rate measured in the same run (a jitted
N x N @ N x N product in each precision: the practical peak), and peak
device memory (JAX: the device's `memory_stats()['peak_bytes_in_use']`
over the worker process, compilation's autotuning included; torch:
`torch.cuda.max_memory_allocated()` over the timed steps; none on CPU;
alexnet_jax also XLA's bound for the executable, arguments + outputs -
donated + temporaries).

"The largest that fits": for each model of `--search_models` and each
precision, alexnet_jax's batch is doubled until a step runs out of device
memory or passes `--largest_cap`. It starts from the largest power-of-two
multiple of the largest listed batch that XLA's memory bound, fitted
linearly over the listed batches, puts within 90% of the device's memory
limit (halving from there if that does not run); torch eager then runs at
the batch found. JAX workers get `XLA_PYTHON_CLIENT_MEM_FRACTION=0.9`
(default 0.75) unless it is set.

Each measurement runs in a subprocess of its own (own device memory; a row
that runs out of memory or crashes is reported, not raised). This process
never starts an accelerator backend itself. `--deadline_s` skips the rows
that would start after it, saying so in their rows, and cuts the timeout of
a row that would end after it. Rows run in the order of `--batches` (the
table sorts them), then the searches.

Run from the repository root:

    python benchmarks/accelerator.py [--json PATH]            # on the accelerator
    python benchmarks/accelerator.py --tiny [--json PATH]     # every path on CPU: about 5 min on 2 cores
    python benchmarks/accelerator.py --tiny --frameworks jax,torch --search_models=  # under a minute

The prepared command for a machine with one accelerator (both this
benchmark and the correctness checks of benchmarks/accelerator_check.py
within 8 minutes; JSON and logs under $OUT, default /tmp/accel_out):

    bash benchmarks/accelerator_device.sh

It needs ml_collections there (the configs import it; it needs absl-py and
PyYAML, which accelerator images have): carry its pure-Python wheel in
`.whl/` at the repository root, kept out of git (`.git/info/exclude`), e.g.

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_17_x86_64 -d .whl ml_collections==1.1.0

The script installs `.whl/*.whl` into /tmp/site first when `.whl` exists, and
stops at once, saying so, when ml_collections cannot be imported.
`ACCEL_TINY=1 PYTHON=.venv/bin/python bash benchmarks/accelerator_device.sh`
rehearses it on CPU (tiny settings, CPU backend).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: alexnet_jax, configs, reference

from common import (
    analytic_macs,
    batch_list,
    bench_config,
    jax_train_step,
    name_list,
    report,
    run_jax_steps,
    run_worker,
    time_back_to_back,
    torch_train_step,
    train_flops,
    worker_main,
    xla_costs,
)

MODELS = ("paper", "owt")
PRECISIONS = ("float32", "bfloat16")
FRAMEWORKS = ("jax", "torch", "torch_compile")
FRAMEWORK_NAMES = {
    "jax": "alexnet_jax (jit)",
    "torch": "torch eager",
    "torch_compile": "torch.compile",
}

# Dense (no 2:4 sparsity) peak FLOP/s by JAX's `device_kind` (the longest name it starts with).
# float32 rows are compared with the TF32 tensor-core peak: XLA's default precision and torch
# with TF32 allowed run float32 convolutions and products there; FP32 (CUDA cores) is listed too.
DATASHEET_PEAKS = {
    "NVIDIA H200": dict(
        bfloat16=989.4e12,
        float32=494.7e12,
        fp32_cuda_cores=66.9e12,
        source="NVIDIA H200 Tensor Core GPU datasheet, H200 SXM: BF16 Tensor Core 1,979 TFLOPS and "
        "TF32 Tensor Core 989 TFLOPS, both 'with sparsity' (dense: half), FP32 67 TFLOPS",
    ),
    "NVIDIA H200 NVL": dict(
        bfloat16=835.5e12,
        float32=417.5e12,
        fp32_cuda_cores=60e12,
        source="NVIDIA H200 Tensor Core GPU datasheet, H200 NVL: BF16 Tensor Core 1,671 TFLOPS and "
        "TF32 Tensor Core 835 TFLOPS, both 'with sparsity' (dense: half), FP32 60 TFLOPS",
    ),
    "NVIDIA H100 80GB HBM3": dict(
        bfloat16=989.4e12,
        float32=494.7e12,
        fp32_cuda_cores=66.9e12,
        source="NVIDIA H100 Tensor Core GPU datasheet, H100 SXM: BF16 Tensor Core 1,979 TFLOPS and "
        "TF32 Tensor Core 989 TFLOPS, both 'with sparsity' (dense: half), FP32 67 TFLOPS",
    ),
}

ACCELERATOR_SETTINGS = dict(
    models=list(MODELS),
    batches=[128, 512, 256],
    precisions=list(PRECISIONS),
    frameworks=list(FRAMEWORKS),
    compile_batches=[128],
    compile_models=["paper"],
    search_models=list(MODELS),
    largest_cap=16384,
    image_size=None,
    hidden_features=None,
    repeats=10,
    windows=3,
    warmup=2,
    matmul_size=8192,
)
# On CPU: the smallest images both models take, fc6 and fc7 256 wide (in both frameworks),
# batches of 2, one timed step; not a measurement of the model, a check that every path runs.
TINY_SETTINGS = dict(
    ACCELERATOR_SETTINGS,
    batches=[2],
    compile_batches=[2],
    largest_cap=4,
    image_size=63,
    hidden_features=[256, 256],
    repeats=1,
    windows=1,
    warmup=1,
    matmul_size=256,
)
ROW_MIN_S = 20  # a row starts only with this much time left before the deadline
OUT_OF_MEMORY = ("resource_exhausted", "out of memory")  # in the error of a row that ran out


def peaks_for(device_kind: str) -> dict | None:
    """The `DATASHEET_PEAKS` entry of a device (the longest name its kind starts with), or None."""
    names = [name for name in DATASHEET_PEAKS if device_kind.startswith(name)]
    return DATASHEET_PEAKS[max(names, key=len)] if names else None


def row_config(spec: dict):
    """The benchmark config of a row: `bench_config` at its batch, precision and image size."""
    overrides = dict(half_precision=spec["precision"] == "bfloat16")
    if spec.get("image_size"):
        overrides["image_size"] = spec["image_size"]
    if spec.get("hidden_features"):
        overrides["hidden_features"] = tuple(spec["hidden_features"])
    return bench_config(spec["model"], spec["batch"], **overrides)


# ---------------------------------------------------------------------------
# Workers: one measurement each, in a subprocess of their own


def machine_worker(spec: dict) -> dict:
    """The default device, its memory limit, the JAX versions, and the jitted matmul rate in each precision."""
    import jax
    import jax.numpy as jnp

    device = jax.devices()[0]
    n = spec["size"]
    rates = {}
    for precision in PRECISIONS:
        dtype = getattr(jnp, precision)
        a = jax.random.normal(jax.random.key(0), (n, n), dtype)
        b = jax.random.normal(jax.random.key(1), (n, n), dtype)
        matmul = jax.jit(jnp.matmul)
        timing = time_back_to_back(
            lambda _: matmul(a, b), None, 10, 2, sync=jax.block_until_ready, windows=3
        )
        rates[precision] = 2 * n**3 / (timing["median_ms"] / 1e3)
    plugins = {
        dist.metadata["Name"]: dist.version
        for dist in metadata.distributions()
        if (dist.metadata["Name"] or "").lower().replace("_", "-").startswith("jax-cuda")
    }
    return dict(
        platform=device.platform,
        device_kind=device.device_kind,
        device_count=jax.device_count(),
        bytes_limit=(device.memory_stats() or {}).get("bytes_limit"),
        platform_version=getattr(device.client, "platform_version", None),
        jax=jax.__version__,
        jaxlib=metadata.version("jaxlib"),
        plugins=plugins,
        matmul_size=n,
        matmul_flops_per_s=rates,
        tensorflow_imported="tensorflow" in sys.modules,
    )


def jax_worker(spec: dict) -> dict:
    import jax

    from alexnet_jax import sharding

    setup = jax_train_step(
        row_config(spec), sharding.create_mesh((1, 1), devices=jax.devices()[:1])
    )
    costs = xla_costs(setup["compiled"])
    result = run_jax_steps(
        setup, spec["repeats"], spec["warmup"], timer=time_back_to_back, windows=spec["windows"]
    )
    stats = jax.devices()[0].memory_stats() or {}
    return dict(
        result,
        compile_s=setup["compile_s"],
        peak_bytes=stats.get("peak_bytes_in_use"),
        **costs,
        tensorflow_imported="tensorflow" in sys.modules,
    )


def torch_worker(spec: dict) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    setup = torch_train_step(
        row_config(spec),
        spec["model"],
        compiled=spec["kind"] == "torch_compile",
        device=device,
        channels_last=True,
        autocast_dtype=torch.bfloat16 if spec["precision"] == "bfloat16" else None,
    )

    def sync(carry):
        if cuda:
            torch.cuda.synchronize()
        return carry

    def before_timed():
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    warmup = spec["warmup"] + setup["extra_warmup"]
    timing = time_back_to_back(
        setup["step"],
        setup["losses"],
        spec["repeats"],
        warmup,
        sync=sync,
        before_timed=before_timed,
        windows=spec["windows"],
    )
    timing.pop("carry")
    steady = timing["median_ms"] / 1e3
    return dict(
        timing,
        compile_s=max(0.0, sum(timing["warmup_s"]) - warmup * steady),
        losses=[float(loss) for loss in setup["losses"]],
        trained=setup["trained"](),
        peak_bytes=torch.cuda.max_memory_allocated() if cuda else None,
        torch=torch.__version__,
        torch_cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if cuda else None,
        torch_device=torch.cuda.get_device_name() if cuda else "cpu",
        tensorflow_imported="tensorflow" in sys.modules,
    )


WORKERS = {
    "machine": machine_worker,
    "jax": jax_worker,
    "torch": torch_worker,
    "torch_compile": torch_worker,
}


# ---------------------------------------------------------------------------
# Running rows against a deadline


class Runner:
    """Runs row specs in worker processes, each within `timeout_s` and before the deadline."""

    def __init__(self, timeout_s: float, deadline_s: float | None, machine: dict):
        self.timeout_s = timeout_s
        self.deadline = None if deadline_s is None else time.monotonic() + deadline_s
        self.machine = machine
        self.env = {}
        if "XLA_PYTHON_CLIENT_MEM_FRACTION" not in os.environ:
            self.env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = "0.9"

    def left_s(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    def run(self, spec: dict) -> dict:
        """The row of `spec`: its spec, and the worker's result or an error or skipped reason."""
        row = {key: value for key, value in spec.items() if key not in ("repeats", "windows")}
        left = self.left_s()
        if left < ROW_MIN_S:
            return dict(row, skipped=f"deadline: {max(left, 0):.0f} s left (--deadline_s)")
        name = f"{spec['model']} {spec['precision']} batch {spec['batch']}: {FRAMEWORK_NAMES[spec['kind']]}"
        print(f"{name} ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        result = run_worker(__file__, spec, min(self.timeout_s, left), env=self.env)
        print(
            f"{name}: {time.monotonic() - start:.0f} s"
            + (f", {result['error']}" if "error" in result else ""),
            file=sys.stderr,
            flush=True,
        )
        return dict(row, **result)


def ran(row: dict) -> bool:
    return "error" not in row and "skipped" not in row


def out_of_memory(row: dict) -> bool:
    return any(mark in row.get("error", "").lower() for mark in OUT_OF_MEMORY)


def first_guess(rows: list[dict], bytes_limit: int | None, cap: int) -> int:
    """The first batch of a search: the largest power-of-two multiple of the largest batch that ran
    whose XLA memory bound, fitted linearly through the two largest batches that ran, stays within
    90% of `bytes_limit`; twice that batch without a limit or a fit."""
    points = sorted((row["batch"], row["xla_peak_bytes"]) for row in rows)
    top = points[-1][0]
    guess = 2 * top
    if bytes_limit and len(points) >= 2 and points[-1][0] > points[-2][0]:
        (b0, m0), (b1, m1) = points[-2], points[-1]
        per_image = (m1 - m0) / (b1 - b0)
        if per_image > 0:
            fits = (0.9 * bytes_limit - (m1 - per_image * b1)) / per_image
            while guess * 2 <= fits and guess * 2 <= cap:
                guess *= 2
    return guess


def search_largest(runner: Runner, base: dict, done: list[dict], cap: int) -> tuple[list, dict]:
    """alexnet_jax's largest batch for `base`'s model and precision: (the rows run, the outcome).

    Doubles from `first_guess` while steps run; after an out-of-memory failure below any success,
    halves down to the largest batch already run. outcome: largest (the largest batch that ran,
    listed or searched) and stopped (why the search ended).
    """
    largest = max(row["batch"] for row in done)
    batch = first_guess(done, runner.machine.get("bytes_limit"), cap)
    rows, failed_at = [], None
    while True:
        if batch > cap:
            stopped = f"the cap, {cap} (--largest_cap)"
            break
        row = runner.run(dict(base, batch=batch, search=True))
        rows.append(row)
        if ran(row) and row["trained"]:
            largest = max(largest, batch)
            if failed_at is not None and 2 * batch >= failed_at:
                stopped = f"out of memory at {failed_at}"
                break
            batch *= 2
        elif out_of_memory(row):
            failed_at = batch
            if batch // 2 <= largest:
                stopped = f"out of memory at {batch}"
                break
            batch //= 2
        else:
            stopped = f"batch {batch}: {row.get('error') or row.get('skipped') or 'did not train'}"
            break
    return rows, dict(largest=largest, stopped=stopped)


# ---------------------------------------------------------------------------
# Derived values and tables


def add_rates(row: dict, macs: dict, machine: dict) -> None:
    """Adds images/s, achieved FLOP/s (analytic; XLA's for alexnet_jax) and the fractions of the peak
    and of the measured matmul rate to a row that ran."""
    analytic, analytic_xla = train_flops(macs[row["model"]], row["batch"])
    row.update(analytic_flops=analytic, analytic_xla_flops=analytic_xla)
    if not ran(row):
        return
    seconds = row["median_ms"] / 1e3
    peak = (peaks_for(machine["device_kind"]) or {}).get(row["precision"])
    matmul = machine["matmul_flops_per_s"][row["precision"]]
    row.update(
        images_per_s=row["batch"] / seconds,
        flops_per_s=analytic / seconds,
        fraction_of_peak=analytic / seconds / peak if peak else None,
        fraction_of_matmul=analytic / seconds / matmul,
    )
    if "xla_flops" in row:
        row["xla_flops_per_s"] = row["xla_flops"] / seconds


def ratios(rows: list[dict]) -> list[dict]:
    """alexnet_jax's images/s over torch eager's and torch.compile's, per model, precision and batch."""
    rate = {
        (row["model"], row["precision"], row["batch"], row["kind"]): row["images_per_s"]
        for row in rows
        if ran(row)
    }
    out = []
    for model, precision, batch in sorted({key[:3] for key in rate}, key=sort_key):
        jax_rate = rate.get((model, precision, batch, "jax"))
        entry = dict(model=model, precision=precision, batch=batch)
        for kind in ("torch", "torch_compile"):
            other = rate.get((model, precision, batch, kind))
            entry[f"jax_over_{kind}"] = jax_rate / other if jax_rate and other else None
        out.append(entry)
    return out


def sort_key(key) -> tuple:
    model, precision, batch = key[:3]
    return (MODELS.index(model), PRECISIONS.index(precision), batch, *key[3:])


def tera(value) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value / 1e12:.3g}"


def gib(value) -> str:
    return "-" if value is None else f"{value / 2**30:.2f}"


def percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def rows_table(rows: list[dict]) -> str:
    lines = [
        "| model | precision | batch | framework | compile s | step ms | images/s | TFLOP/s analytic "
        "| TFLOP/s XLA | of peak | of matmul | peak memory GiB | XLA bound GiB | loss first -> last "
        "| trained |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    ordered = sorted(
        rows,
        key=lambda r: sort_key(
            (r["model"], r["precision"], r["batch"], FRAMEWORKS.index(r["kind"]))
        ),
    )
    for row in ordered:
        head = (
            f"| {row['model']} | {row['precision']} | {row['batch']}{' (search)' if row.get('search') else ''} "
            f"| {FRAMEWORK_NAMES[row['kind']]} "
        )
        if not ran(row):
            reason = f"failed: {row['error']}" if "error" in row else f"skipped: {row['skipped']}"
            lines.append(head + f"| {reason} |" + " |" * 10)
            continue
        lines.append(
            head
            + f"| {row['compile_s']:.1f} | {row['median_ms']:.2f} | {row['images_per_s']:,.0f} "
            f"| {tera(row['flops_per_s'])} | {tera(row.get('xla_flops_per_s'))} "
            f"| {percent(row['fraction_of_peak'])} | {percent(row['fraction_of_matmul'])} "
            f"| {gib(row['peak_bytes'])} | {gib(row.get('xla_peak_bytes'))} "
            f"| {row['losses'][0]:.3f} -> {row['losses'][-1]:.3f} | {'yes' if row['trained'] else 'NO'} |"
        )
    return "\n".join(lines)


def ratio_table(entries: list[dict]) -> str:
    lines = [
        "| model | precision | batch | alexnet_jax / torch eager | alexnet_jax / torch.compile |",
        "|---|---|---:|---:|---:|",
    ]
    for entry in entries:
        cells = [
            "-" if entry[f"jax_over_{kind}"] is None else f"{entry[f'jax_over_{kind}']:.2f}x"
            for kind in ("torch", "torch_compile")
        ]
        lines.append(
            f"| {entry['model']} | {entry['precision']} | {entry['batch']} | {cells[0]} | {cells[1]} |"
        )
    return "\n".join(lines)


def largest_table(largest: list[dict]) -> str:
    lines = [
        "| model | precision | largest batch that ran (alexnet_jax) | stopped by |",
        "|---|---|---:|---|",
    ]
    for entry in largest:
        lines.append(
            f"| {entry['model']} | {entry['precision']} | {entry['largest']} | {entry['stopped']} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Flags


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ACCELERATOR_SETTINGS
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="CPU-sized defaults: 63x63 images, batch 2, one timed step, search cap 4",
    )
    parser.add_argument("--models", type=name_list(MODELS), help=f"default {default['models']}")
    parser.add_argument(
        "--batches",
        type=batch_list,
        help=f"in the order to run them (default {default['batches']})",
    )
    parser.add_argument(
        "--precisions", type=name_list(PRECISIONS), help=f"default {default['precisions']}"
    )
    parser.add_argument(
        "--frameworks", type=name_list(FRAMEWORKS), help=f"default {default['frameworks']}"
    )
    parser.add_argument(
        "--compile_batches",
        type=batch_list,
        help=f"batches with torch.compile rows (default {default['compile_batches']})",
    )
    parser.add_argument(
        "--compile_models",
        type=name_list(MODELS),
        help=f"models with torch.compile rows (default {default['compile_models']})",
    )
    parser.add_argument(
        "--search_models",
        type=name_list(MODELS, allow_empty=True),
        help=f"models whose largest batch is searched, '' for none (default {default['search_models']})",
    )
    parser.add_argument(
        "--largest_cap",
        type=int,
        help=f"the search's largest batch (default {default['largest_cap']}; tiny 4)",
    )
    parser.add_argument(
        "--image_size", type=int, help="image side (default the model's, 224; tiny 63)"
    )
    parser.add_argument(
        "--hidden_features",
        type=batch_list,
        help="fc6,fc7 widths in both frameworks (default the model's, 4096,4096; tiny 256,256)",
    )
    parser.add_argument(
        "--repeats", type=int, help=f"steps per timed window (default {default['repeats']})"
    )
    parser.add_argument("--windows", type=int, help=f"timed windows (default {default['windows']})")
    parser.add_argument(
        "--warmup", type=int, help=f"untimed steps per row (default {default['warmup']})"
    )
    parser.add_argument(
        "--matmul_size",
        type=int,
        help=f"N of the N x N matmul rate (default {default['matmul_size']})",
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds one row may take (default 300)"
    )
    parser.add_argument(
        "--deadline_s",
        type=float,
        help="seconds from the start after which no row starts (default none)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one measurement, as JSON
    args = parser.parse_args()
    for key, value in (TINY_SETTINGS if args.tiny else ACCELERATOR_SETTINGS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main() -> None:
    args = parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        worker_main(WORKERS[spec["kind"]], spec)
        return
    run_start = time.monotonic()
    from alexnet_jax import steps

    machine = run_worker(__file__, dict(kind="machine", size=args.matmul_size), args.timeout)
    if "error" in machine:
        raise SystemExit(f"The device could not be read ({machine['error']}).")
    runner = Runner(args.timeout, args.deadline_s, machine)
    common_spec = dict(
        image_size=args.image_size,
        hidden_features=args.hidden_features,
        repeats=args.repeats,
        windows=args.windows,
        warmup=args.warmup,
    )
    macs = {
        model: analytic_macs(
            steps.create_model(
                row_config(dict(common_spec, model=model, batch=1, precision="float32"))
            ),
            args.image_size,
        )
        for model in args.models
    }
    rows = []
    for batch in args.batches:
        for model in args.models:
            for precision in args.precisions:
                for kind in args.frameworks:
                    if kind == "torch_compile" and (
                        batch not in args.compile_batches or model not in args.compile_models
                    ):
                        continue
                    spec = dict(kind=kind, model=model, batch=batch, precision=precision)
                    rows.append(runner.run(dict(spec, **common_spec)))
    largest = []
    if "jax" in args.frameworks:
        for model in args.search_models:
            for precision in args.precisions:
                base = dict(kind="jax", model=model, precision=precision, **common_spec)
                done = [
                    row
                    for row in rows
                    if row["kind"] == "jax"
                    and row["model"] == model
                    and row["precision"] == precision
                    and ran(row)
                ]
                if not done:
                    continue
                searched, outcome = search_largest(runner, base, done, args.largest_cap)
                rows.extend(searched)
                if "torch" in args.frameworks and outcome["largest"] > max(args.batches):
                    torch_spec = dict(base, kind="torch", batch=outcome["largest"], search=True)
                    rows.append(runner.run(torch_spec))
                largest.append(dict(model=model, precision=precision, **outcome))
    for row in rows:
        add_rates(row, macs, machine)
    ratio_entries = ratios(rows)
    peaks = peaks_for(machine["device_kind"])
    torch_row = next((row for row in rows if row["kind"] != "jax" and ran(row)), {})
    notes = [
        f"Device: {machine['device_kind']} ({machine['platform']}, {machine['device_count']} device(s), "
        f"memory limit {gib(machine['bytes_limit'])} GiB); torch on {torch_row.get('torch_device', '-')}.",
        "Peak: "
        + (
            f"{tera(peaks['float32'])} TFLOP/s for float32 rows (TF32 tensor cores), "
            f"{tera(peaks['bfloat16'])} for bfloat16, from {peaks['source']}."
            if peaks
            else "this device's datasheet peak is unknown here ('of peak': -)."
        ),
        f"Matmul rate ({args.matmul_size}x{args.matmul_size}, jitted, default precision): "
        + ", ".join(
            f"{precision} {tera(rate)} TFLOP/s"
            for precision, rate in machine["matmul_flops_per_s"].items()
        )
        + ".",
        "Analytic forward multiply-adds per image"
        + (f" at {args.image_size}x{args.image_size}" if args.image_size else "")
        + ": "
        + "; ".join(f"{name} {m['dense'] / 1e6:.1f} M" for name, m in macs.items())
        + ". TFLOP/s analytic = 3 x 2 x that x batch / step time; XLA = cost_analysis()['flops'] / step time.",
        "compile s: alexnet_jax trace + lower + XLA compile; torch, the untimed calls' time beyond "
        "as many steady steps. peak memory: JAX, the worker process's peak on the device (compilation "
        "included); torch, max_memory_allocated over the timed steps. XLA bound: arguments + outputs "
        "- donated + temporaries of the compiled step.",
    ]
    untrained = [
        f"{row['model']} {row['precision']} {row['batch']} {row['kind']}"
        for row in rows
        if ran(row) and not row["trained"]
    ]
    if untrained:
        notes.append(
            "Warning: a loss was not finite or the parameters did not change in: "
            + ", ".join(untrained)
        )
    with_tf = [str(row.get("kind")) for row in rows + [machine] if row.get("tensorflow_imported")]
    if with_tf or "tensorflow" in sys.modules:
        notes.append(f"Warning: TensorFlow was imported ({', '.join(with_tf) or 'this process'}).")
    total_s = time.monotonic() - run_start
    parts = [rows_table(rows), "alexnet_jax images/s over PyTorch's:", ratio_table(ratio_entries)]
    if largest:
        parts += ["The largest batch:", largest_table(largest)]
    parts += ["\n".join(notes), f"total {total_s:.0f} s"]
    torch_versions = {key: torch_row.get(key) for key in ("torch", "torch_cuda", "cudnn")}
    settings = dict(
        jax=machine["jax"],
        jaxlib=machine["jaxlib"],
        **{name: version for name, version in machine["plugins"].items()},
        **{key: value for key, value in torch_versions.items() if value is not None},
        image_size=args.image_size or 224,
        hidden_features=args.hidden_features or "the model's",
        timed=f"median of {args.windows} windows of {args.repeats} steps after {args.warmup} untimed",
        total_s=round(total_s),
    )
    machine_line = (
        f"{machine['device_kind']} ({machine['platform']}), {machine['device_count']} device(s), "
        f"{os.cpu_count()} CPU cores"
    )
    report(
        args,
        rows,
        "\n\n".join(parts),
        settings,
        machine=machine_line,
        extra=dict(
            device=machine,
            peaks=peaks,
            analytic_macs=macs,
            ratios=ratio_entries,
            largest=largest,
            tensorflow_imported="tensorflow" in sys.modules,
        ),
    )


if __name__ == "__main__":
    main()
