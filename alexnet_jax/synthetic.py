"""Synthetic input (`dataset=synthetic`): random batches drawn on the devices, no host pipeline.

With it a run measures the model's speed apart from the input pipeline's (as Flax's fake-data
benchmark does): compare its images/s with a run on real images to see what the input costs.
Batches are drawn by one jitted program straight into their place on the mesh (split over 'data'
like a loaded batch), so nothing is decoded, augmented or copied from the host.

Batch i of the training stream comes from fold_in(fold_in(key(seed), 0), i): the same seed gives
the same batches, a resumed run continues the stream, and the values do not depend on the mesh
(JAX's partitionable threefry). Evaluation batches use stream 1 and are padded like a real split's
last batch (mask False). Images are standard normal (rounded to bfloat16 with half_precision), like normalized pixels; labels are uniform in
0..num_classes-1. This module imports no TensorFlow.
"""

from __future__ import annotations

import functools
import math
from typing import Iterator

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from alexnet_jax import sharding

__all__ = ["train_batches", "eval_batches", "num_eval_batches"]

_TRAIN_STREAM, _EVAL_STREAM = 0, 1


@functools.lru_cache(maxsize=16)
def _draw_fn(mesh: Mesh, image_shape: tuple[int, ...], num_classes: int, half_precision: bool):
    """jit(seed, stream, index, valid) -> {image, label, mask}, laid out with batch_sharding."""
    dtype = jnp.bfloat16 if half_precision else jnp.float32
    batch_size = image_shape[0]

    def draw(seed, stream, index, valid):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), stream), index)
        image_key, label_key = jax.random.split(key)
        return {
            # float32 draws, rounded: half precision sees the same images
            "image": jax.random.normal(image_key, image_shape, jnp.float32).astype(dtype),
            "label": jax.random.randint(label_key, (batch_size,), 0, num_classes, jnp.int32),
            "mask": jnp.arange(batch_size) < valid,
        }

    out = sharding.batch_sharding(mesh)
    return jax.jit(draw, out_shardings={"image": out, "label": out, "mask": out})


def train_batches(
    mesh: Mesh,
    global_batch_size: int,
    image_size: int,
    num_classes: int,
    seed: int,
    start_step: int = 0,
    half_precision: bool = False,
) -> Iterator[dict[str, jax.Array]]:
    """The endless training stream from global step `start_step` on: global arrays, image
    (B, S, S, 3), label (B,) int32, mask (B,) all True. Every process iterates it in step."""
    shape = (global_batch_size, image_size, image_size, 3)
    draw = _draw_fn(mesh, shape, num_classes, half_precision)
    step = start_step
    while True:
        yield draw(seed, _TRAIN_STREAM, step, global_batch_size)
        step += 1


def num_eval_batches(num_examples: int, global_batch_size: int) -> int:
    """Global batches in one pass over `num_examples` (the last one padded)."""
    return max(1, math.ceil(num_examples / global_batch_size))


def eval_batches(
    mesh: Mesh,
    global_batch_size: int,
    image_size: int,
    num_examples: int,
    num_classes: int,
    seed: int,
    ten_crop: bool = False,
    half_precision: bool = False,
) -> Iterator[dict[str, jax.Array]]:
    """One pass over a synthetic evaluation split of `num_examples`: image (B, S, S, 3), or
    (B, 10, S, S, 3) for the ten crops; the last batch's rows past the split have mask False."""
    crops = (10,) if ten_crop else ()
    shape = (global_batch_size, *crops, image_size, image_size, 3)
    draw = _draw_fn(mesh, shape, num_classes, half_precision)
    for index in range(num_eval_batches(num_examples, global_batch_size)):
        yield draw(seed, _EVAL_STREAM, index, num_examples - index * global_batch_size)
