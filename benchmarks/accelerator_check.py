"""Correctness of the train step on the accelerator: the device against the CPU, bfloat16 against
float32, the two towers on two devices against one.

Every step is the training loop's jitted, donated train step
(`common.jax_train_step`, the model's config at a constant learning rate of
0.001, one random batch, the same dropout key), and every comparison starts
both sides from one initial state, copied to each. A parameter is compared
by its update, `after - initial`: the largest |update_a - update_b| over the
leaf, divided by the largest |update_b| (an update is far smaller than the
weight it changes, so comparing the weights themselves would hide any error
in it). The checks:

  (a) step vs CPU: one step on the default device and on the CPU (paper
      and owt), both at matmul precision 'highest' (float32 products and
      convolutions; on NVIDIA GPUs XLA's default would use TF32). Bounds:
      the loss within LOSS_RTOL = 1e-4 relative, every parameter's update
      within UPDATE_RTOL = 1e-2. float32 sums of up to ~10^5 terms taken in
      another order (cuDNN's algorithms, Winograd among them, against
      XLA:CPU's) differ by ~1e-6-1e-4 relative; a max-pool window whose two
      largest inputs are equal to rounding sends its gradient to another
      input, which moved one conv2 channel's update by 7e-4 of the update's
      size (docs/performance.md); a wrong layout, tower wiring or update
      rule moves it by order 1. The same step at the default precision is
      reported beside it, for information (TF32 rounds products to 10-bit
      mantissas).
  (b) bfloat16: `--steps` (20) steps of the paper model with
      `half_precision=True` and in float32 (default precision), on one
      repeated batch, from one initial state. Passes when every loss is
      finite and each bfloat16 loss is within BF16_BAND = 0.15 of float32's
      at the same step. bfloat16 keeps 8 significant bits (relative rounding
      2^-9); parameters, LRN sums and the loss stay float32. On the 2-core
      CPU at 63x63, batch 16, the two runs stayed within 0.014 of each other
      while the loss fell from 7.3 to 3.2; a bfloat16 failure (an overflow,
      a reduction in bfloat16) shows up as a non-finite loss or a gap of
      nats.
  (c) two towers: three steps of the paper model on a ('data', 'model') =
      (1, 2) mesh, tower t on device t, against the same steps on one
      device, at precision 'highest'; the same bounds as (a) (the sums over
      the towers' halves of conv3, fc6, fc7 and fc8 are taken in another
      order). It needs two devices; with one it is reported as skipped.

Prints a table, writes JSON (`--json`), and exits with 1 when a check fails.

    python benchmarks/accelerator_check.py [--json PATH]    # on the accelerator
    python benchmarks/accelerator_check.py --tiny            # CPU: a small model at 63x63, seconds
    # (c) on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu ...
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: alexnet_jax, configs

import flax
import jax
import numpy as np
from common import bench_config, jax_train_step, name_list

from alexnet_jax import sharding

LOSS_RTOL = 1e-4
UPDATE_RTOL = 1e-2
BF16_BAND = 0.15

# The checks on accelerators: the models at 224x224.
ACCELERATOR_SETTINGS = dict(batch=64, image_size=None, model_fields={})
# On CPU: a narrow model (every layer of the pattern, fewer kernels and fc units) at the smallest
# images both variants take; it checks that every comparison runs, not the accelerator.
TINY_SETTINGS = dict(
    batch=4,
    image_size=63,
    model_fields=dict(conv_features=(16, 32, 48, 48, 32), hidden_features=(64, 64), num_classes=10),
)


def check_config(model: str, settings: dict, **fields):
    """The benchmark config of a check: `bench_config` at its batch, image size and model fields."""
    overrides = dict(settings["model_fields"], **fields)
    if settings["image_size"]:
        overrides["image_size"] = settings["image_size"]
    return bench_config(model, settings["batch"], **overrides)


def setup_on(config, devices, mesh_shape=(1, 1), create_state: bool = False) -> dict:
    """`jax_train_step` on a mesh of `devices`; with `create_state`, a fresh state (the initial
    state of a comparison, `initial_state`), else compiled for its shapes and shardings alone."""
    mesh = sharding.create_mesh(mesh_shape, devices=devices)
    return dict(jax_train_step(config, mesh, create_state=create_state), config=config)


def initial_state(setup: dict):
    """The host copy of a setup's fresh state, the initial state of a comparison."""
    state, setup["state"] = setup["state"], None
    return jax.device_get(state)


def place(setup: dict, host_state):
    """A copy of a host (numpy) state on `setup`'s devices, with its shardings."""
    return jax.device_put(host_state, setup["shardings"])


def run_steps(setup: dict, state, steps: int):
    """(state, losses) after `steps` calls of `setup`'s train step on its batch (state donated)."""
    losses = []
    for _ in range(steps):
        state, metrics = setup["p_train"](state, setup["batch"], setup["dropout_key"])
        losses.append(metrics["loss"])
    return state, [float(loss) for loss in jax.device_get(losses)]


def update_difference(initial, a, b) -> tuple[float, str]:
    """(largest over leaves of max|update_a - update_b| / max|update_b|, that leaf's name).

    initial, a, b: parameter trees (host or device); update = tree - initial.
    """
    flat = [
        flax.traverse_util.flatten_dict(jax.device_get(tree), sep="/") for tree in (initial, a, b)
    ]
    worst, worst_name = 0.0, ""
    for name, start in flat[0].items():
        start = np.asarray(start, np.float64)
        update_a = np.asarray(flat[1][name], np.float64) - start
        update_b = np.asarray(flat[2][name], np.float64) - start
        scale = float(np.abs(update_b).max())
        difference = float(np.abs(update_a - update_b).max())
        relative = difference / scale if scale > 0 else (0.0 if difference == 0 else math.inf)
        if relative >= worst:
            worst, worst_name = relative, name
    return worst, worst_name


def compare(name: str, model: str, initial, losses_a: list, losses_b: list, params_a, params_b):
    """A check's row: the last losses' relative difference and the worst update difference."""
    loss_rel = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(losses_a, losses_b))
    worst, leaf = update_difference(initial.params, params_a, params_b)
    finite = all(math.isfinite(loss) for loss in losses_a + losses_b)
    passed = bool(finite and loss_rel <= LOSS_RTOL and worst <= UPDATE_RTOL)
    return dict(
        check=name,
        model=model,
        status="pass" if passed else "FAIL",
        losses_a=losses_a,
        losses_b=losses_b,
        loss_relative_difference=loss_rel,
        loss_bound=LOSS_RTOL,
        update_relative_difference=worst,
        update_bound=UPDATE_RTOL,
        worst_leaf=leaf,
        measured=f"loss {loss_rel:.1e}, update {worst:.1e} ({leaf})",
        bound=f"loss {LOSS_RTOL:.0e}, update {UPDATE_RTOL:.0e}",
    )


def step_vs_cpu(model: str, settings: dict) -> tuple[dict, dict]:
    """(a): one step on the default device and on the CPU at 'highest' precision.

    Returns the check's row and the reference: the initial state (host), the CPU step's losses
    and parameters (which `default_precision_info` compares the default-precision step with) and
    the default device's setup (which `two_towers` reuses).
    """
    platform = jax.devices()[0].platform
    with jax.default_matmul_precision("highest"):
        config = check_config(model, settings)
        device = setup_on(config, jax.devices()[:1], create_state=True)
        cpu = setup_on(config, jax.devices("cpu")[:1])
        initial = initial_state(device)
        state_d, losses_d = run_steps(device, place(device, initial), 1)
        state_c, losses_c = run_steps(cpu, place(cpu, initial), 1)
    row = compare(
        f"(a) step on {platform} vs CPU, float32 'highest'",
        model,
        initial,
        losses_d,
        losses_c,
        state_d.params,
        state_c.params,
    )
    if platform == "cpu":
        row["note"] = "the default device is the CPU: compared with itself"
    return row, dict(initial=initial, cpu_losses=losses_c, cpu_params=state_c.params, setup=device)


def default_precision_info(model: str, reference: dict, first_step: dict) -> dict:
    """The default-precision step (TF32 on NVIDIA GPUs) against the CPU's 'highest' one: information."""
    row = compare(
        "(a') the same step at the default precision vs CPU 'highest' (information)",
        model,
        reference["initial"],
        first_step["losses"],
        reference["cpu_losses"],
        first_step["params"],
        reference["cpu_params"],
    )
    row["status"] = "info"
    return row


def bfloat16_vs_float32(settings: dict, steps: int, initial) -> tuple[dict, dict]:
    """(b): `steps` steps with half_precision=True and in float32, from `initial` (a host state of
    the paper model). Also returns the float32 run's first step (losses, params)."""
    float32 = setup_on(check_config("paper", settings), jax.devices()[:1])
    bfloat16 = setup_on(check_config("paper", settings, half_precision=True), jax.devices()[:1])
    state, first = run_steps(float32, place(float32, initial), 1)
    first_step = dict(losses=first, params=jax.device_get(state.params))
    _, rest = run_steps(float32, state, steps - 1)
    losses_32 = first + rest
    _, losses_16 = run_steps(bfloat16, place(bfloat16, initial), steps)
    gap = float(np.max(np.abs(np.subtract(losses_16, losses_32))))
    finite = bool(np.all(np.isfinite(losses_16)) and np.all(np.isfinite(losses_32)))
    passed = finite and gap <= BF16_BAND
    row = dict(
        check=f"(b) bfloat16 vs float32, {steps} steps",
        model="paper",
        status="pass" if passed else "FAIL",
        losses_float32=losses_32,
        losses_bfloat16=losses_16,
        largest_gap=gap,
        band=BF16_BAND,
        measured=f"largest gap {gap:.3f}; float32 {losses_32[0]:.3f} -> {losses_32[-1]:.3f}, "
        f"bfloat16 {losses_16[0]:.3f} -> {losses_16[-1]:.3f}",
        bound=f"finite, gap <= {BF16_BAND}",
    )
    return row, first_step


def two_towers(steps: int, reference: dict) -> dict:
    """(c): `steps` steps of the paper model on a (1, 2) mesh against one device, at 'highest', from
    (a)'s initial state; the one-device side is (a)'s setup."""
    name = f"(c) two towers on a (1, 2) mesh vs one device, {steps} steps"
    if jax.device_count() < 2:
        return dict(
            check=name,
            model="paper",
            status="skipped",
            measured=f"needs 2 devices, {jax.device_count()} here",
            bound="-",
        )
    one, initial = reference["setup"], reference["initial"]
    with jax.default_matmul_precision("highest"):
        towers = setup_on(one["config"], jax.devices()[:2], mesh_shape=(1, 2))
        state_1, losses_1 = run_steps(one, place(one, initial), steps)
        state_2, losses_2 = run_steps(towers, place(towers, initial), steps)
    return compare(
        name,
        "paper",
        initial,
        losses_2,
        losses_1,
        jax.device_get(state_2.params),
        jax.device_get(state_1.params),
    )


def table(rows: list[dict]) -> str:
    lines = ["| check | model | result | measured | bound |", "|---|---|---|---|---|"]
    for row in rows:
        note = f" ({row['note']})" if row.get("note") else ""
        lines.append(
            f"| {row['check']} | {row['model']} | {row['status']} | {row['measured']}{note} "
            f"| {row['bound']} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="a narrow model at 63x63, batch 4 (for the CPU)"
    )
    parser.add_argument("--batch", type=int, help="images per step (default 64; tiny 4)")
    parser.add_argument(
        "--step_models",
        type=name_list(("paper", "owt")),
        default=["paper", "owt"],
        help="models of (a) (default paper,owt; the paper model's is needed by (a') and (c))",
    )
    parser.add_argument("--steps", type=int, default=20, help="steps of (b) (default 20)")
    parser.add_argument("--tower_steps", type=int, default=3, help="steps of (c) (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    start = time.monotonic()
    settings = dict(TINY_SETTINGS if args.tiny else ACCELERATOR_SETTINGS)
    if args.batch:
        settings["batch"] = args.batch
    device = jax.devices()[0]
    print(
        f"Device: {device.device_kind} ({device.platform}), {jax.device_count()} device(s); "
        f"jax {jax.__version__}, jaxlib {metadata.version('jaxlib')}",
        flush=True,
    )
    paper_row, paper_reference = step_vs_cpu("paper", settings)
    rows = [paper_row] + [
        step_vs_cpu(model, settings)[0] for model in args.step_models if model != "paper"
    ]
    bfloat16_row, first_step = bfloat16_vs_float32(settings, args.steps, paper_reference["initial"])
    if device.platform != "cpu":
        rows.append(default_precision_info("paper", paper_reference, first_step))
    rows.append(bfloat16_row)
    rows.append(two_towers(args.tower_steps, paper_reference))
    failed = [row["check"] for row in rows if row["status"] == "FAIL"]
    elapsed = time.monotonic() - start
    print(table(rows))
    print(
        f"\nbatch {settings['batch']}, images {settings['image_size'] or 224}x"
        f"{settings['image_size'] or 224}; {'FAILED: ' + '; '.join(failed) if failed else 'all passed'}"
        f"; {elapsed:.0f} s"
    )
    if args.json:
        result = dict(
            device=device.device_kind,
            platform=device.platform,
            device_count=jax.device_count(),
            jax=jax.__version__,
            jaxlib=metadata.version("jaxlib"),
            batch=settings["batch"],
            image_size=settings["image_size"] or 224,
            model_fields={
                key: list(value) if isinstance(value, tuple) else value
                for key, value in settings["model_fields"].items()
            },
            checks=rows,
            passed=not failed,
            total_s=round(elapsed, 1),
            tensorflow_imported="tensorflow" in sys.modules,
        )
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
