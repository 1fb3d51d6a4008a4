"""One training step, alexnet_jax vs. PyTorch: images/s, compile time, achieved FLOP/s, peak memory.

What is timed, per model and batch size:
  (i)   alexnet_jax: the jitted train step the training loop runs, built
        from the project's own pieces (`steps.create_model`,
        `create_optimizer`, `create_train_state`, `compile_steps` with state
        donation) on a 1-device ('data', 'model') = (1, 1) mesh from
        `alexnet_jax.sharding`, with the model's config (`configs/imagenet.py`
        for `paper`, `configs/default.py` for `small`; a constant learning
        rate of 0.001, no warmup, so that the repeated steps on one random
        batch do not diverge): forward with dropout, cross-entropy, backward, the
        paper's SGD rule (momentum 0.9, weight decay 5e-4), metrics.
        Compiled ahead of time (`p_train.lower(...).compile()`, timed as
        "compile"); the timed calls then go through `p_train` itself, which
        reuses that executable (checked: one cache entry at the end).
        Optional rows (`--frameworks`): `jax_bf16`, the same step with
        `half_precision=True`; `jax_ynn_conv`, the same step compiled with
        XLA:CPU's default YNNPACK convolutions instead of
        `steps.CPU_COMPILER_OPTIONS`, which measures that option.
  (ii)  PyTorch eager: the independent model of `reference/torch_alexnet.py`
        (`paper_alexnet()`: groups=2 on conv2/4/5 and LRN on each tower's
        channels; `small_alexnet()`), initialised like the JAX config's
        scheme, in train mode (dropout active), `F.cross_entropy`,
        `torch.optim.SGD(momentum=0.9, weight_decay=5e-4)`. The paper's rule
        differs from torch's SGD only in where the learning rate multiplies,
        which costs the same.
  (iii) PyTorch `torch.compile`: the same with `torch.compile(model)` and the
        optimizer step in a `torch.compile`d function (the whole step
        compiled, as JAX compiles it). It recompiles the optimizer step on
        the second call, once the momentum buffers exist, so it gets one
        more untimed call; its "compile" is the time of the untimed calls
        beyond that many steady-state steps. A failure is reported in its
        row, not raised. Inductor caches compiled graphs (under
        /tmp/torchinductor_$USER): a rerun with the same shapes compiles
        faster than the first run.

Both frameworks get the same random float32 images, N(0, 1), in their native
layout (JAX NHWC, torch NCHW), and the same random labels (int32 for JAX,
int64 as torch's cross_entropy needs). Each row checks that its steps
trained: every loss is finite and the output layer's bias changed; the
first and last loss are printed. torch runs `--torch_threads` intra-op
threads (default: the cores this process may use); XLA's CPU backend uses
all of them by default. torch's OpenMP threads spin and wait for each other,
so a torch row slows down many times over when another process takes a core:
the `others` column says how many cores other processes kept busy.

Each row runs in its own subprocess (`--worker`), so its memory is its own.
Reported: step time (median of the timed calls after the untimed ones),
images/s, alexnet_jax images/s over this row's, and achieved FLOP/s:
the analytic count of the training step's work, 3 x the forward pass (one
forward, two backward products per layer: the usual convention), the
forward being 2 x the multiply-adds of every conv and dense layer including
the taps that fall on zero padding (what a dense convolution kernel
computes), divided by the step time and by the machine's dense matmul rate:
the best of a jitted float32 N x N @ N x N matmul in JAX and `torch.mm`,
measured in the same run (`--matmul_size`). Memory: each worker's peak
resident set (Linux VmHWM, reset after the untimed calls, so it is the peak
of the timed steps) for the whole process, and the same above the process's
resident set right after its imports (the JAX worker imports the
TensorFlow-free `alexnet_jax.steps` and `sharding` only): that is parameters, optimizer state, data, gradients, activations and workspace,
plus whatever the allocator keeps (for JAX, also what XLA's compiler left
allocated; for torch.compile, what its compilation did).

A second table reads the compiled alexnet_jax step: XLA's own FLOP count
(`compiled.cost_analysis()['flops']`) against the analytic one. XLA counts
only multiply-adds on real pixels (not on padding) and skips conv1's input
gradient (the images need none), so it is also compared with the analytic
count done the same way; the rest of the difference is elementwise work
(LRN, ReLU, pooling, softmax, the optimizer). And
`compiled.memory_analysis()`: temporaries, and arguments + outputs - aliased
(donated) + temporaries, the executable's peak-memory bound.

Run from the repository root (defaults: paper at 32 and 128, small at 64
and 256, all three frameworks; roughly 10 minutes on 2 idle cores):

    python benchmarks/train_step.py [--json PATH]
    python benchmarks/train_step.py --models small --small_batches 8 --repeats 1 --warmup 1  # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# a CPU benchmark: the same backend in this process and its workers
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(REPO))  # run as a script from anywhere: alexnet_jax, configs, reference

from common import (
    analytic_macs,
    batch_list,
    bench_config,
    cpu_cores,
    jax_train_step,
    name_list,
    peak_rss_mib,
    report,
    reset_peak_rss,
    rss_mib,
    run_jax_steps,
    run_worker,
    time_steps,
    torch_train_step,
    train_flops,
    worker_main,
    xla_costs,
)

MODELS = ("paper", "small")
FRAMEWORKS = ("jax", "jax_bf16", "jax_ynn_conv", "torch", "torch_compile")
DEFAULT_FRAMEWORKS = ("jax", "torch", "torch_compile")
FRAMEWORK_NAMES = {
    "jax": "alexnet_jax (jit)",
    "jax_bf16": "alexnet_jax bfloat16 (jit)",
    "jax_ynn_conv": "alexnet_jax, YNNPACK convs (jit)",
    "torch": "torch eager",
    "torch_compile": "torch.compile",
}
DEFAULT_BATCHES = {"paper": "32,128", "small": "64,256"}
DEFAULT_REPEATS = {"paper": 3, "small": 10}


# ---------------------------------------------------------------------------
# Workers: one measurement each, in a subprocess of their own


def jax_worker(spec: dict) -> dict:
    import jax

    from alexnet_jax import sharding, steps

    rss_imports = rss_mib()
    if spec["kind"] == "jax_ynn_conv":
        steps.CPU_COMPILER_OPTIONS = {}  # XLA:CPU's own default: YNNPACK also for convolutions
    config = bench_config(spec["model"], spec["batch"], half_precision=spec["kind"] == "jax_bf16")
    setup = jax_train_step(
        config, sharding.create_mesh(config.mesh_shape, devices=jax.devices()[:1])
    )
    peak = {}
    result = run_jax_steps(
        setup,
        spec["repeats"],
        spec["warmup"],
        before_timed=lambda: peak.update(reset=reset_peak_rss(), rss_before=rss_mib()),
    )
    return dict(
        result,
        compile_s=setup["compile_s"],
        rss_imports_mib=rss_imports,
        peak_rss_mib=peak_rss_mib(),
        peak_reset=peak["reset"],
        rss_before_timed_mib=peak["rss_before"],
        **xla_costs(setup["compiled"]),
    )


def torch_worker(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    rss_imports = rss_mib()
    config = bench_config(spec["model"], spec["batch"])
    setup = torch_train_step(config, spec["model"], compiled=spec["kind"] == "torch_compile")
    step, losses = setup["step"], setup["losses"]

    # the second call recompiles the optimizer step
    warmup = spec["warmup"] + setup["extra_warmup"]
    peak = {}
    timing = time_steps(
        step,
        losses,
        spec["repeats"],
        warmup,
        before_timed=lambda: peak.update(reset=reset_peak_rss(), rss_before=rss_mib()),
    )
    timing.pop("carry")
    steady = timing["median_ms"] / 1e3
    return dict(
        timing,
        compile_s=max(0.0, sum(timing["warmup_s"]) - warmup * steady),
        losses=[float(loss) for loss in losses],
        trained=setup["trained"](),
        rss_imports_mib=rss_imports,
        peak_rss_mib=peak_rss_mib(),
        peak_reset=peak["reset"],
        rss_before_timed_mib=peak["rss_before"],
        threads=torch.get_num_threads(),
    )


def matmul_worker(spec: dict) -> dict:
    """Dense float32 matmul rate, JAX (jitted) and torch.mm, GFLOP/s: the machine's practical limit."""
    import torch

    torch.set_num_threads(spec["threads"])
    import jax
    import jax.numpy as jnp

    n, repeats = spec["size"], spec["repeats"]
    flops = 2 * n**3
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    jax_timing = time_steps(lambda _: matmul(a, b), None, repeats, 2, sync=jax.block_until_ready)
    ta, tb = torch.from_numpy(jax.device_get(a).copy()), torch.from_numpy(jax.device_get(b).copy())
    torch_timing = time_steps(lambda _: torch.mm(ta, tb), None, repeats, 2)
    return dict(
        size=n,
        jax_gflops=flops / jax_timing["median_ms"] / 1e6,
        torch_gflops=flops / torch_timing["median_ms"] / 1e6,
        other_cores=max(jax_timing["other_cores"], torch_timing["other_cores"]),
    )


WORKERS = {
    "jax": jax_worker,
    "jax_bf16": jax_worker,
    "jax_ynn_conv": jax_worker,
    "torch": torch_worker,
    "torch_compile": torch_worker,
    "matmul": matmul_worker,
}


# ---------------------------------------------------------------------------
# Tables


def throughput_table(rows: list[dict]) -> str:
    lines = [
        "| model | batch | framework | compile s | step ms | images/s | alexnet_jax / this | GFLOP/s (3x fwd) "
        "| of matmul rate | peak RSS MiB | above imports MiB | loss first -> last | trained | others |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for row in rows:
        head = f"| {row['model']} | {row['batch']} | {FRAMEWORK_NAMES[row['framework']]} "
        if "error" in row:
            lines.append(head + f"| failed: {row['error']} |" + " |" * 10)
            continue
        ratio = f"{row['jax_over_this']:.2f}x" if row.get("jax_over_this") else "-"
        lines.append(
            head
            + f"| {row['compile_s']:.1f} | {row['median_ms']:.1f} | {row['images_per_s']:.1f} | {ratio} "
            f"| {row['gflops']:.1f} | {100 * row['fraction_of_matmul']:.0f}% | {row['peak_rss_mib']:.0f} "
            f"| {row['peak_rss_mib'] - row['rss_imports_mib']:.0f} | {row['losses'][0]:.4f} -> {row['losses'][-1]:.4f} "
            f"| {'yes' if row['trained'] else 'NO'} | {row['other_cores']:.2f} |"
        )
    return "\n".join(lines)


def xla_table(rows: list[dict]) -> str:
    lines = [
        "| model | batch | step | analytic GFLOP (3x fwd) | analytic as XLA counts | XLA cost_analysis GFLOP "
        "| XLA / analytic as XLA counts | XLA temp MiB | XLA args + outputs - aliased + temp MiB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if not row["framework"].startswith("jax") or "error" in row:
            continue
        lines.append(
            f"| {row['model']} | {row['batch']} | {FRAMEWORK_NAMES[row['framework']]} | {row['analytic_flops'] / 1e9:.2f} "
            f"| {row['analytic_xla_flops'] / 1e9:.2f} "
            f"| {row['xla_flops'] / 1e9:.2f} | {row['xla_flops'] / row['analytic_xla_flops']:.3f} "
            f"| {row['xla_temp_bytes'] / 2**20:.0f} | {row['xla_peak_bytes'] / 2**20:.0f} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", type=name_list(MODELS), default=list(MODELS), help="paper,small (default both)"
    )
    parser.add_argument(
        "--paper_batches",
        type=batch_list,
        default=batch_list(DEFAULT_BATCHES["paper"]),
        help=f"batch sizes of the paper model (default {DEFAULT_BATCHES['paper']})",
    )
    parser.add_argument(
        "--small_batches",
        type=batch_list,
        default=batch_list(DEFAULT_BATCHES["small"]),
        help=f"batch sizes of the small model (default {DEFAULT_BATCHES['small']})",
    )
    parser.add_argument(
        "--frameworks",
        type=name_list(FRAMEWORKS),
        default=list(DEFAULT_FRAMEWORKS),
        help="of jax,jax_bf16,jax_ynn_conv,torch,torch_compile (default jax,torch,torch_compile; "
        "jax_bf16 is alexnet_jax with half_precision=True: bfloat16 activations and compute; "
        "jax_ynn_conv compiles its step with XLA:CPU's default YNNPACK convolutions instead of "
        "steps.CPU_COMPILER_OPTIONS)",
    )
    parser.add_argument(
        "--repeats", type=int, help="timed steps per row (default: paper 3, small 10)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed steps per row after compilation (default 1)"
    )
    parser.add_argument(
        "--matmul_size", type=int, default=4096, help="N of the N x N matmul rate (default 4096)"
    )
    parser.add_argument(
        "--torch_threads",
        type=int,
        default=cpu_cores(),
        help="torch intra-op threads (default: the cores this process may use)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds one row may take (default 1800)"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one measurement, as JSON
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        worker_main(WORKERS[spec["kind"]], spec)
        return
    run_start = time.perf_counter()
    from alexnet_jax import steps

    matmul = run_worker(
        __file__,
        dict(kind="matmul", size=args.matmul_size, repeats=5, threads=args.torch_threads),
        args.timeout,
    )
    if "error" in matmul:
        raise SystemExit(f"The matmul rate could not be measured ({matmul['error']}).")
    limit_gflops = max(matmul["jax_gflops"], matmul["torch_gflops"])
    macs = {name: analytic_macs(steps.create_model(bench_config(name, 1))) for name in args.models}
    rows = []
    for model_name in args.models:
        repeats = args.repeats or DEFAULT_REPEATS[model_name]
        for batch in args.paper_batches if model_name == "paper" else args.small_batches:
            analytic, analytic_xla = train_flops(macs[model_name], batch)
            jax_rate = None
            for framework in args.frameworks:
                spec = dict(
                    kind=framework,
                    model=model_name,
                    batch=batch,
                    repeats=repeats,
                    warmup=args.warmup,
                    threads=args.torch_threads,
                )
                print(
                    f"{model_name} batch {batch}: {FRAMEWORK_NAMES[framework]} ...",
                    file=sys.stderr,
                    flush=True,
                )
                row = dict(
                    model=model_name,
                    batch=batch,
                    framework=framework,
                    analytic_flops=analytic,
                    analytic_xla_flops=analytic_xla,
                    **run_worker(__file__, spec, args.timeout),
                )
                if "error" not in row:
                    seconds = row["median_ms"] / 1e3
                    row.update(
                        images_per_s=batch / seconds,
                        gflops=analytic / seconds / 1e9,
                        fraction_of_matmul=analytic / seconds / 1e9 / limit_gflops,
                    )
                    if framework == "jax":
                        jax_rate = row["images_per_s"]
                    elif jax_rate:
                        row["jax_over_this"] = jax_rate / row["images_per_s"]
                rows.append(row)

    notes = [
        f"Matmul rate ({args.matmul_size}x{args.matmul_size} float32): JAX {matmul['jax_gflops']:.1f} GFLOP/s, "
        f"torch.mm {matmul['torch_gflops']:.1f} GFLOP/s; 'of matmul rate' divides by the better, {limit_gflops:.1f}.",
        "Analytic forward multiply-adds per image: "
        + "; ".join(
            f"{name} {m['dense'] / 1e6:.1f} M ({m['real'] / 1e6:.1f} M not counting padding taps)"
            for name, m in macs.items()
        )
        + ". GFLOP/s (3x fwd) = 3 x 2 x that x batch / step time.",
        "compile s: alexnet_jax trace + lower + XLA compile; torch, the untimed calls' time beyond as many "
        "steady steps. "
        "peak RSS: the worker process's peak resident memory during the timed steps; above imports: minus its "
        "resident memory right after importing its libraries. others: cores other processes kept busy meanwhile.",
    ]
    for row in rows:
        if row.get("peak_reset") is False:
            notes.append(
                f"{row['model']} {row['batch']} {row['framework']}: the peak-RSS mark could not be reset; "
                "its peak includes compilation."
            )
        if row.get("cache_entries") not in (None, 1):
            notes.append(
                f"Warning: {row['model']} {row['batch']}: p_train holds {row['cache_entries']} compiled "
                "versions; the timed calls may include a recompilation."
            )
        if "error" not in row and not row["trained"]:
            notes.append(
                f"Warning: {row['model']} {row['batch']} {row['framework']}: a loss was not finite or the "
                "parameters did not change."
            )
    busiest = max([row.get("other_cores", 0.0) for row in rows] + [matmul["other_cores"]])
    if busiest > 0.2:
        notes.append(
            f"Warning: other processes kept up to {busiest:.1f} cores busy during timed steps; the rates "
            "understate both frameworks, torch's (spinning OpenMP threads) far more than XLA's."
        )
    table = "\n\n".join(
        [
            throughput_table(rows),
            "XLA's view of the compiled alexnet_jax step:",
            xla_table(rows),
            "\n".join(notes),
            f"total {time.perf_counter() - run_start:.0f} s",
        ]
    )
    repeats = ", ".join(f"{name} {args.repeats or DEFAULT_REPEATS[name]}" for name in args.models)
    settings = dict(
        torch=metadata.version("torch"),
        torch_threads=args.torch_threads,
        warmup_steps=args.warmup,
        timed_steps=f"({repeats})",
        matmul_gflops_jax=round(matmul["jax_gflops"], 1),
        matmul_gflops_torch=round(matmul["torch_gflops"], 1),
    )
    report(args, rows, table, settings)


if __name__ == "__main__":
    main()
