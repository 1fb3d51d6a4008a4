"""Channel-window LRN on CPU: four ways to compute the window sum of squares.

Local response normalization (size 5, alpha 1e-4 / 5, beta 0.75, k 2, the
AlexNet defaults) of float32 NHWC activations shaped like the paper model's
conv1 output (N, 55, 55, 96) and conv2 output (N, 27, 27, 256). The
formulations differ only in how the sum of squares over each channel's window
is computed:

  (i)   `alexnet_jax.lrn.local_response_norm`, as implemented: a
        `lax.reduce_window` sum over the zero-padded channel axis;
  (ii)  zero-pad the channel axis and add `size` shifted slices;
  (iii) a banded matmul, squares @ band, with band a (C, C) 0/1 matrix;
  (iv)  the difference of two shifted cumulative sums.

Each is jitted and timed forward and forward+backward (gradient of the sum of
the outputs with respect to the input): median wall time of one call after
`warmup` untimed calls (compilation included), and its ratio to (i). Before
timing, every formulation's outputs and gradients are checked against (i):
max |difference| / max |reference| must stay below 1e-5. Inputs are
ReLU'd normals scaled so that alpha' * window_sum is of order 0.1-1, where the
normalization visibly acts.

Run from the repository root:

    python benchmarks/lrn.py [--batch 32] [--repeats 5] [--warmup 2] [--json PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import jax
import jax.numpy as jnp
import numpy as np
from common import median_ms, parse_args, report
from jax import lax

from alexnet_jax.lrn import local_response_norm

SIZE, ALPHA, BETA, K = 5, 1e-4, 0.75, 2.0
COEFFICIENT = ALPHA / SIZE  # alpha divided by size, as local_response_norm's default
LOW, HIGH = SIZE // 2, (SIZE - 1) // 2  # the window of channel c is [c - LOW, c + HIGH]
SHAPES = (("conv1", 55, 96), ("conv2", 27, 256))  # (layer, height = width, channels)
TOLERANCE = 1e-5
INPUT_SCALE = 50.0


def normalize(x, window_sum):
    """The LRN formula, given each channel's window sum of squares."""
    return x / (K + COEFFICIENT * window_sum) ** BETA


def lrn_shifted_slices(x):
    """(ii) Window sum as the sum of `SIZE` shifted slices of the zero-padded squares."""
    channels = x.shape[-1]
    padded = jnp.pad(x * x, ((0, 0),) * (x.ndim - 1) + ((LOW, HIGH),))
    window_sum = sum(
        lax.slice_in_dim(padded, offset, offset + channels, axis=-1) for offset in range(SIZE)
    )
    return normalize(x, window_sum)


def band_matrix(channels: int) -> np.ndarray:
    """(C, C) matrix whose column c is 1 on the rows of channel c's window."""
    source, target = np.arange(channels)[:, None], np.arange(channels)[None, :]
    return ((source >= target - LOW) & (source <= target + HIGH)).astype(np.float32)


def lrn_banded_matmul(x):
    """(iii) Window sum as squares @ band (full float32 precision)."""
    band = jnp.asarray(band_matrix(x.shape[-1]))
    return normalize(x, jnp.matmul(x * x, band, precision=lax.Precision.HIGHEST))


def lrn_cumsum(x):
    """(iv) Window sum as the difference of an exclusive prefix sum at the window's two ends."""
    channels = x.shape[-1]
    padded = jnp.pad(x * x, ((0, 0),) * (x.ndim - 1) + ((LOW + 1, HIGH),))  # one extra leading zero
    prefix = jnp.cumsum(padded, axis=-1)
    return normalize(x, prefix[..., SIZE : SIZE + channels] - prefix[..., :channels])


FORMULATIONS = {
    "(i) reduce_window (package)": lambda x: local_response_norm(x, SIZE, ALPHA, BETA, K),
    "(ii) pad + shifted slices": lrn_shifted_slices,
    "(iii) banded matmul": lrn_banded_matmul,
    "(iv) cumsum difference": lrn_cumsum,
}


def relative_error(value, reference) -> float:
    """max |value - reference| / max |reference|."""
    return float(jnp.max(jnp.abs(value - reference)) / jnp.max(jnp.abs(reference)))


def bench(batch: int, repeats: int, warmup: int) -> list[dict]:
    """Checks and times every formulation on both shapes; one row per (shape, formulation)."""
    rows = []
    for layer, size, channels in SHAPES:
        x = INPUT_SCALE * jax.nn.relu(
            jax.random.normal(jax.random.key(0), (batch, size, size, channels), jnp.float32)
        )
        reference_fwd = reference_bwd = None
        for name, lrn in FORMULATIONS.items():
            forward = jax.jit(lrn)
            backward = jax.jit(jax.grad(lambda x, lrn=lrn: jnp.sum(lrn(x))))
            outputs, grads = forward(x), backward(x)
            if reference_fwd is None:
                reference_fwd, reference_bwd = outputs, grads
            error = max(
                relative_error(outputs, reference_fwd), relative_error(grads, reference_bwd)
            )
            if error > TOLERANCE:
                raise AssertionError(
                    f"{name} on {layer}: relative error {error:.1e} > {TOLERANCE:.0e}"
                )
            rows.append(
                dict(
                    shape=f"{layer} {batch}x{size}x{size}x{channels}",
                    formulation=name,
                    forward_ms=median_ms(forward, (x,), repeats, warmup),
                    backward_ms=median_ms(backward, (x,), repeats, warmup),
                    relative_error=error,
                )
            )
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The results as a markdown table, each time also as a ratio to (i) on the same shape."""
    lines = [
        "| shape | formulation | forward ms | vs (i) | forward+backward ms | vs (i) | max rel. error vs (i) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    references = {}
    for row in rows:
        reference = references.setdefault(row["shape"], row)
        lines.append(
            f"| {row['shape']} | {row['formulation']} "
            f"| {row['forward_ms']:.2f} | {row['forward_ms'] / reference['forward_ms']:.2f}x "
            f"| {row['backward_ms']:.2f} | {row['backward_ms'] / reference['backward_ms']:.2f}x "
            f"| {row['relative_error']:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rows = bench(args.batch, args.repeats, args.warmup)
    report(args, rows, markdown_table(rows))


if __name__ == "__main__":
    main()
