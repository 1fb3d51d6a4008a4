"""The alexnet_jax train step on 1, 2, 4 and 8 fake CPU devices: data parallelism vs. the tower split.

For every device count n, the training loop's jitted train step (built by
`steps.create_model` / `create_optimizer` / `create_train_state` /
`compile_steps`, as in `benchmarks/train_step.py`) runs on two meshes
('data', 'model'):
  (n, 1):    pure data parallelism; both towers of every example on one device;
  (n/2, 2):  the paper's split, tower t on 'model' index t, data parallel
             over n/2 (what `--config.mesh_shape="(-1, 2)"` gives).
The global batch (`--batch`) stays fixed, so each device gets batch / n
(or batch / (n/2)) examples. Both meshes run the same two-tower model (the
small model with `towers=2`, the paper model as it is), with the model's
config (`configs/default.py`, `configs/imagenet.py`) at a constant learning
rate of 0.001 and random float32 images; each row checks every loss is
finite and the parameters changed.

Per row: the compile time (trace + lower + compile, ahead of time), the
median step time after the untimed calls, images/s, the step time over the
1-device step, the (n/2, 2) / (n, 1) step-time ratio, the cost of the tower
split at that device count, and the collectives in the compiled HLO, counted
by the mesh axis their replica groups span (parsed by reference/hlo.py, as
in the communication test): 'data' ones carry gradients (XLA combines them
into few all-reduces), 'model' ones the towers' exchanges at conv3, fc6,
fc7 and fc8.

The fake devices (`XLA_FLAGS=--xla_force_host_platform_device_count=n`,
which must be set before JAX is imported, so every device count runs in a
subprocess of this script) share the same CPU cores. This measures the
partitioning overhead and communication structure of each layout, not a
speedup: n devices here never compute faster than one.

Each row also shows the worker process's peak resident memory: with n
fake devices in one process, every replicated array (the parameters and
momentum of data parallelism) exists n times, and each device applies the
optimizer update to its own replica, so on shared cores the step time grows
with n even at a fixed global batch; the tower split halves the replicated
tower parameters.

Run from the repository root (defaults: the paper model, global batch 32,
1, 2, 4, 8 devices, 3 timed steps per row; several minutes on 2 cores, and
several GiB of memory at 8 devices; `--models small,paper` adds the small
model with two towers, a few minutes more):

    python benchmarks/scaling.py [--models paper] [--batch 32] [--devices 1,2,4,8] [--json PATH]
    python benchmarks/scaling.py --models small --batch 8 --repeats 1 --warmup 1  # a quick check
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# a CPU benchmark: the same backend in this process and its workers
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(REPO))  # run as a script from anywhere: alexnet_jax, configs, reference

from common import (
    bench_config,
    jax_train_step,
    peak_rss_mib,
    report,
    reset_peak_rss,
    run_jax_steps,
    run_worker,
    worker_main,
)

from reference.hlo import collectives  # the parser the communication test uses

MODELS = ("small", "paper")
DEFAULT_MODELS = "paper"
SHORT = {
    "all-reduce": "AR",
    "all-gather": "AG",
    "reduce-scatter": "RS",
    "all-to-all": "A2A",
    "ragged-all-to-all": "RA2A",
    "collective-permute": "CP",
    "collective-broadcast": "CB",
}


def meshes(devices: int) -> list[tuple[int, int]]:
    """(n, 1) and, for even n, (n/2, 2)."""
    return [(devices, 1)] + ([(devices // 2, 2)] if devices % 2 == 0 else [])


def count_collectives(hlo: str, mesh) -> dict:
    """Collectives of compiled HLO by the mesh axes their groups span, and by opcode.

    Axis keys: 'data', 'model', 'data+model', and 'trivial' for groups of
    one device each (left in by the partitioner; they move no data).
    """
    by_axis, by_opcode = collections.Counter(), collections.Counter()
    for found in collectives(hlo, mesh):
        axes = sorted(found.axes)
        by_axis["+".join(axes) if axes else "trivial"] += 1
        by_opcode[found.opcode] += 1
    return dict(by_axis=dict(by_axis), by_opcode=dict(by_opcode))


def worker(spec: dict) -> list[dict]:
    """Every (model, mesh) row for one device count; runs with that many fake devices."""
    import jax

    from alexnet_jax import sharding

    if jax.device_count() != spec["devices"]:
        raise RuntimeError(
            f"expected {spec['devices']} devices, JAX sees {jax.device_count()}: XLA_FLAGS not applied"
        )
    rows = []
    for model in spec["models"]:
        for shape in meshes(spec["devices"]):
            reset_peak_rss()
            config = bench_config(model, spec["batch"], mesh_shape=shape, towers=2)
            mesh = sharding.create_mesh(config.mesh_shape)
            setup = jax_train_step(config, mesh)
            counts = count_collectives(setup["compiled"].as_text(), mesh)
            result = run_jax_steps(setup, spec["repeats"], spec["warmup"])
            rows.append(
                dict(
                    result,
                    model=model,
                    devices=spec["devices"],
                    mesh=list(shape),
                    batch=spec["batch"],
                    compile_s=setup["compile_s"],
                    collectives=counts,
                    peak_rss_mib=peak_rss_mib(),
                )
            )
    return rows


def run_device_count(spec: dict, timeout_s: float) -> list[dict] | dict:
    """One device count in a fresh process with that many fake CPU devices; {'error': reason} if it fails."""
    flags = re.sub(
        r"--xla_force_host_platform_device_count=\S+", "", os.environ.get("XLA_FLAGS", "")
    )
    flags = f"{flags} --xla_force_host_platform_device_count={spec['devices']}".strip()
    return run_worker(__file__, spec, timeout_s, env=dict(XLA_FLAGS=flags))


def collective_cells(counts: dict) -> str:
    """'data' count | 'model' count | the rest (both axes, trivial) | ops by opcode."""
    axes, opcodes = counts["by_axis"], counts["by_opcode"]
    rest = (
        ", ".join(f"{v} {k}" for k, v in sorted(axes.items()) if k not in ("data", "model")) or "0"
    )
    listed = ", ".join(f"{v} {SHORT.get(k, k)}" for k, v in sorted(opcodes.items())) or "none"
    return f"{axes.get('data', 0)} | {axes.get('model', 0)} | {rest} | {listed}"


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| model | devices | mesh (data, model) | per-device batch | compile s | step ms | images/s | vs 1 device "
        "| (n/2,2) / (n,1) | 'data' collectives | 'model' collectives | other collectives | collective ops "
        "| peak RSS MiB | trained | others |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|---:|",
    ]
    for row in rows:
        head = f"| {row['model']} | {row['devices']} | "
        if "error" in row:
            lines.append(head + f"{row.get('mesh', '-')} | failed: {row['error']} |" + " |" * 12)
            continue
        data, model = row["mesh"]
        split = f"{row['split_ratio']:.2f}x" if row.get("split_ratio") else "-"
        versus = f"{row['vs_one_device']:.2f}x" if row.get("vs_one_device") else "-"
        lines.append(
            head
            + f"({data}, {model}) | {row['batch'] // data} | {row['compile_s']:.1f} | {row['median_ms']:.1f} "
            f"| {row['images_per_s']:.1f} | {versus} | {split} | {collective_cells(row['collectives'])} "
            f"| {row['peak_rss_mib']:.0f} | {'yes' if row['trained'] else 'NO'} | {row['other_cores']:.2f} |"
        )
    return "\n".join(lines)


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give positive integers separated by commas, e.g. 1,2,4,8"
        )
    return values


def model_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or any(name not in MODELS for name in names):
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose from {', '.join(MODELS)}, separated by commas"
        )
    return names


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        type=model_list,
        default=model_list(DEFAULT_MODELS),
        help=f"small and/or paper, e.g. small,paper (default {DEFAULT_MODELS})",
    )
    parser.add_argument(
        "--batch", type=int, default=32, help="global batch, every mesh (default 32)"
    )
    parser.add_argument(
        "--devices",
        type=int_list,
        default=[1, 2, 4, 8],
        help="fake CPU device counts (default 1,2,4,8)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per row (default 3)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed steps per row after compilation (default 1)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800,
        help="seconds one device count may take (default 1800)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one device count, as JSON
    args = parser.parse_args()
    if not args.worker:
        for devices in args.devices:
            for data, _ in meshes(devices):
                if args.batch % data:
                    parser.error(
                        f"--batch {args.batch} does not divide over {data} data shards (mesh ({data}, ...) "
                        f"at {devices} devices); use a multiple of {max(args.devices)}."
                    )
    return args


def main() -> None:
    args = parse_args()
    if args.worker:
        worker_main(worker, json.loads(args.worker))
        return
    run_start = time.perf_counter()
    rows = []
    for devices in args.devices:
        print(f"{devices} device(s) ...", file=sys.stderr, flush=True)
        spec = dict(
            devices=devices,
            models=args.models,
            batch=args.batch,
            repeats=args.repeats,
            warmup=args.warmup,
        )
        result = run_device_count(spec, args.timeout)
        if isinstance(result, dict):  # the whole device count failed
            rows.extend(dict(model=model, devices=devices, **result) for model in args.models)
        else:
            rows.extend(result)
    rows.sort(
        key=lambda row: (MODELS.index(row["model"]), row["devices"], row.get("mesh", [0, 0])[1])
    )
    one_device = {
        row["model"]: row["median_ms"]
        for row in rows
        if row.get("devices") == 1 and "error" not in row
    }
    data_parallel = {
        (row["model"], row["devices"]): row["median_ms"]
        for row in rows
        if "error" not in row and row["mesh"][1] == 1
    }
    for row in rows:
        if "error" in row:
            continue
        row["images_per_s"] = row["batch"] / (row["median_ms"] / 1e3)
        if row["model"] in one_device:
            row["vs_one_device"] = row["median_ms"] / one_device[row["model"]]
        if row["mesh"][1] == 2 and (row["model"], row["devices"]) in data_parallel:
            row["split_ratio"] = row["median_ms"] / data_parallel[(row["model"], row["devices"])]
    notes = [
        "vs 1 device: step time over the 1-device step; (n/2,2) / (n,1): step time of the tower split over pure "
        "data parallelism at the same device count. Collectives: counted in the compiled HLO by the mesh axis their "
        "groups span (AR all-reduce, AG all-gather, RS reduce-scatter, CP collective-permute; 'trivial': groups of one "
        "device, which move nothing). peak RSS: the worker process's (all n fake devices) during the row. others: "
        "cores other processes kept busy during the timed steps.",
        "All fake devices share this machine's cores: this shows partitioning and communication overhead, not speedup.",
    ]
    if any("error" not in row and not row["trained"] for row in rows):
        notes.append(
            "Warning: some rows did not train (a loss was not finite or the parameters did not change)."
        )
    busiest = max([row.get("other_cores", 0.0) for row in rows])
    if busiest > 0.2:
        notes.append(
            f"Warning: other processes kept up to {busiest:.1f} cores busy during timed steps."
        )
    table = "\n\n".join(
        [markdown_table(rows), "\n".join(notes), f"total {time.perf_counter() - run_start:.0f} s"]
    )
    settings = dict(
        global_batch=args.batch,
        models=",".join(args.models),
        devices=",".join(map(str, args.devices)),
        timed_steps=args.repeats,
        warmup_steps=args.warmup,
    )
    report(args, rows, table, settings)


if __name__ == "__main__":
    main()
