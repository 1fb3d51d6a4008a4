"""Within-tower convolutions on CPU: one grouped conv vs. one plain conv per tower.

The paper model's conv2, conv4 and conv5 each see only their own tower's
channels. XLA can compute such a layer as one grouped convolution
(`feature_group_count=2`, what `jax.vmap` over the tower axis lowers to) or as
two plain convolutions on the channel halves (what `loop_over_towers` does).
Both give the same numbers; this script measures what each costs on CPU.

Part 1, per layer: jitted forward+backward (gradient of the sum of the outputs
with respect to the input and the kernel) of conv2 (27x27x96 -> 256, 5x5,
pad 2), conv4 (13x13x384 -> 384, 3x3, pad 1) and conv5 (13x13x384 -> 256, 3x3,
pad 1), as (i) one `lax.conv_general_dilated` with `feature_group_count=2` and
(ii) two plain convolutions whose outputs are concatenated.

Part 2, whole model: one jitted `value_and_grad` of the softmax cross-entropy
on random labels (train=False, so no dropout) of `AlexNet(variant='paper')`
with `tower_map=loop_over_towers` vs. `tower_map=vmap_over_towers`, with the
same parameters.

Each row reports the median wall time of one call (after `warmup` untimed
calls, which include compilation), images/s, and grouped/plain time ratio;
the max abs differences between the two formulations (outputs/logits and
gradients) are printed as a check.

Run from the repository root:

    python benchmarks/tower_conv.py [--batch 32] [--repeats 5] [--warmup 2] [--json PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import flax.linen as nn
import jax
import jax.numpy as jnp
from common import median_ms, parse_args, report
from jax import lax

from alexnet_jax.models import AlexNet, loop_over_towers, vmap_over_towers

# (name, input size, input channels, output channels, kernel size, padding) of
# the paper model's within-tower layers, both towers together.
LAYERS = (
    ("conv2", 27, 96, 256, 5, 2),
    ("conv4", 13, 384, 384, 3, 1),
    ("conv5", 13, 384, 256, 3, 1),
)
TOWERS = 2


def max_abs_diff(a, b) -> float:
    """Largest absolute difference between two pytrees of arrays of the same structure."""
    diffs = jax.tree.map(lambda u, v: float(jnp.max(jnp.abs(u - v))), a, b)
    return max(jax.tree.leaves(diffs))


def max_abs(tree) -> float:
    """Largest absolute value in a pytree of arrays: the scale a difference is judged against."""
    return max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree.leaves(tree))


def grouped_conv(x, kernel, padding):
    """Within-tower conv as one XLA grouped convolution. kernel: (kh, kw, Cin / 2, Cout)."""
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(1, 1),
        padding=((padding, padding), (padding, padding)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=TOWERS,
    )


def plain_convs(x, kernel, padding):
    """The same layer as one plain convolution per tower, outputs concatenated (tower 0 first)."""
    outputs = [
        lax.conv_general_dilated(
            x_tower,
            k_tower,
            window_strides=(1, 1),
            padding=((padding, padding), (padding, padding)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        for x_tower, k_tower in zip(
            jnp.split(x, TOWERS, axis=-1), jnp.split(kernel, TOWERS, axis=-1)
        )
    ]
    return jnp.concatenate(outputs, axis=-1)


def forward_backward(conv, padding):
    """Jitted (outputs, (d sum / d input, d sum / d kernel)) of one conv formulation."""

    def loss(x, kernel):
        outputs = conv(x, kernel, padding)
        return jnp.sum(outputs), outputs

    return jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))


def bench_layers(batch: int, repeats: int, warmup: int) -> list[dict]:
    """Part 1: grouped vs. plain forward+backward of conv2, conv4 and conv5."""
    rows = []
    for name, size, cin, cout, ksize, padding in LAYERS:
        key_x, key_k = jax.random.split(jax.random.key(0))
        x = jax.random.normal(key_x, (batch, size, size, cin), jnp.float32)
        kernel = 0.01 * jax.random.normal(key_k, (ksize, ksize, cin // TOWERS, cout), jnp.float32)
        plain = forward_backward(plain_convs, padding)
        grouped = forward_backward(grouped_conv, padding)
        (plain_grads, plain_out), (grouped_grads, grouped_out) = (
            plain(x, kernel),
            grouped(x, kernel),
        )
        rows.append(
            dict(
                name=f"{name} {size}x{size}x{cin}->{cout} {ksize}x{ksize}",
                plain_ms=median_ms(plain, (x, kernel), repeats, warmup),
                grouped_ms=median_ms(grouped, (x, kernel), repeats, warmup),
                output_diff=max_abs_diff(plain_out, grouped_out),
                grad_diff=max_abs_diff(plain_grads, grouped_grads),
                grad_scale=max_abs(plain_grads),
            )
        )
    return rows


def bench_model(batch: int, repeats: int, warmup: int) -> dict:
    """Part 2: value_and_grad of the paper model, towers looped vs. vmapped (grouped convs)."""
    key_init, key_images, key_labels = jax.random.split(jax.random.key(0), 3)
    images = jax.random.normal(key_images, (batch, 224, 224, 3), jnp.float32)
    labels = jax.random.randint(key_labels, (batch,), 0, 1000)
    plain_model = AlexNet(variant="paper", tower_map=loop_over_towers)
    grouped_model = AlexNet(variant="paper", tower_map=vmap_over_towers)
    params = nn.unbox(plain_model.init(key_init, images[:1])["params"])

    def step(model):
        def loss(params, images, labels):
            logits = model.apply({"params": params}, images, train=False)
            log_probs = jax.nn.log_softmax(logits)
            return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1)), logits

        return jax.jit(jax.value_and_grad(loss, has_aux=True))

    plain, grouped = step(plain_model), step(grouped_model)
    (_, plain_logits), plain_grads = plain(params, images, labels)
    (_, grouped_logits), grouped_grads = grouped(params, images, labels)
    return dict(
        name="AlexNet paper, value_and_grad",
        plain_ms=median_ms(plain, (params, images, labels), repeats, warmup),
        grouped_ms=median_ms(grouped, (params, images, labels), repeats, warmup),
        output_diff=max_abs_diff(plain_logits, grouped_logits),
        grad_diff=max_abs_diff(plain_grads, grouped_grads),
        grad_scale=max_abs(plain_grads),
    )


def markdown_table(rows: list[dict], batch: int) -> str:
    """The results as a markdown table, with images/s and the grouped/plain ratio."""
    lines = [
        "| forward+backward | plain ms | grouped ms | plain img/s | grouped img/s | grouped/plain "
        "| max abs diff, outputs | max abs diff, grads (max abs grad) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['plain_ms']:.1f} | {row['grouped_ms']:.1f} "
            f"| {1e3 * batch / row['plain_ms']:.1f} | {1e3 * batch / row['grouped_ms']:.1f} "
            f"| {row['grouped_ms'] / row['plain_ms']:.2f}x | {row['output_diff']:.1e} "
            f"| {row['grad_diff']:.1e} ({row['grad_scale']:.1e}) |"
        )
    return "\n".join(lines)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rows = bench_layers(args.batch, args.repeats, args.warmup) + [
        bench_model(args.batch, args.repeats, args.warmup)
    ]
    for row in rows:
        row["ratio"] = row["grouped_ms"] / row["plain_ms"]
    report(args, rows, markdown_table(rows, args.batch))


if __name__ == "__main__":
    main()
