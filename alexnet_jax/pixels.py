"""The input's float arithmetic, on the devices: uint8 crops -> the normalized images the model sees.

The host pipeline (`alexnet_jax.data`, `normalized=False`) ships each batch as uint8 crops plus,
for training, PCA lighting's RGB shift per image; one jitted program here finishes it where the
batch already lies: image / 255 + shift, minus the mean, over the std, per channel, in float32,
then bfloat16 with half precision. That is the arithmetic of `augment.normalize`, so a model sees
the same values either way (up to float32 rounding), while the host does no float work and sends
a quarter of the bytes. This module imports no TensorFlow.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from alexnet_jax import sharding

__all__ = ["normalize", "normalizer"]


def normalize(image, mean, std, shift=None, dtype=jnp.float32) -> jax.Array:
    """(image / 255 + shift - mean) / std per channel.

    image: (B, ..., H, W, 3) uint8 (or any dtype holding 0..255); shift: (B, 3) float32, one RGB
    shift per image (None: none); mean, std: (3,). Returns float32 (or `dtype`) of image's shape.
    """
    image = image.astype(jnp.float32) / 255.0
    if shift is not None:
        shift = jnp.asarray(shift, jnp.float32)
        image = image + shift.reshape(shift.shape[:1] + (1,) * (image.ndim - 2) + (3,))
    mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
    return ((image - mean) / std).astype(dtype)


@functools.lru_cache(maxsize=16)
def normalizer(
    mesh: Mesh, mean: tuple[float, ...], std: tuple[float, ...], half_precision: bool = False
) -> Callable[[dict], dict]:
    """jit(batch) -> batch with `image` normalized (and `lighting` consumed), laid out like the
    batch (`sharding.batch_sharding`). batch: global arrays from `sharding.host_batch_to_global`
    of a `normalized=False` pipeline."""
    dtype = jnp.bfloat16 if half_precision else jnp.float32
    layout = sharding.batch_sharding(mesh)

    def finish(batch):
        batch = dict(batch)
        shift = batch.pop("lighting", None)
        batch["image"] = normalize(batch["image"], mean, std, shift, dtype)
        return batch

    return jax.jit(finish, out_shardings=layout)
