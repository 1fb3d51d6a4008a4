"""What happens to one example: the training augmentations and the evaluation crops.

All in TensorFlow, on one decoded image (H, W, 3); randomness comes from a stateless seed, so the
same seed gives the same image. `train_image` and `eval_image` turn a uint8 image into the
normalized float32 crop(s) the model sees; the rest are their steps.
"""

from __future__ import annotations

import tensorflow as tf

from alexnet_jax.data.sources import ColorStats, InputConfig, base_image_uint8

__all__ = [
    "lighting_shift",
    "pca_lighting",
    "center_crop",
    "random_crop",
    "random_flip",
    "inception_crop_box",
    "random_resized_crop",
    "color_jitter",
    "ten_crops",
    "train_pixels",
    "eval_pixels",
    "train_image",
    "eval_image",
    "normalize",
]


def lighting_shift(alpha: tf.Tensor, stats: ColorStats) -> tf.Tensor:
    """sum_i alpha_i * eigval_i * eigvec_i: PCA lighting's RGB shift, (..., 3) for alpha (..., 3)
    ~ N(0, std^2)."""
    eigval = tf.constant(stats.eigval, tf.float32)
    eigvec = tf.constant(stats.eigvec, tf.float32)
    return tf.linalg.matvec(eigvec, alpha * eigval)


def pca_lighting(image: tf.Tensor, alpha: tf.Tensor, stats: ColorStats) -> tf.Tensor:
    """Adds sum_i alpha_i * eigval_i * eigvec_i to every pixel (one RGB shift per image).

    image: (..., H, W, 3) in [0, 1]; alpha: (..., 3) ~ N(0, std^2).
    """
    return image + lighting_shift(alpha, stats)[..., None, None, :]


# ---------------------------------------------------------------------------
# Geometry (one image (H, W, 3) of any dtype)


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """The central size x size crop of image (H, W, 3)."""
    shape = tf.shape(image)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return tf.slice(image, [top, left, 0], [size, size, 3])


def random_crop(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """A size x size crop at a uniformly random position (every position equally likely)."""
    shape = tf.shape(image)
    top = tf.random.stateless_uniform([], seed, 0, shape[0] - size + 1, tf.int32)
    left_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    left = tf.random.stateless_uniform([], left_seed, 0, shape[1] - size + 1, tf.int32)
    return tf.slice(image, [top, left, 0], [size, size, 3])


def random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """image (H, W, 3) mirrored left-right with probability 1/2."""
    flip = tf.random.stateless_uniform([], seed) < 0.5
    # tf.reverse, not image[:, ::-1]: TensorFlow's negative-stride slice took 1.4 ms of CPU per
    # 224x224x3 image, six times the reverse (docs/performance.md)
    return tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)


def inception_crop_box(image_shape: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(begin, size) of an Inception-style crop of an image of shape (H, W, 3): area 8%-100%,
    aspect ratio 3/4-4/3; `tf.slice` arguments."""
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return begin, crop_size


def random_resized_crop(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """Inception-style crop (`inception_crop_box`) resized to size."""
    begin, crop_size = inception_crop_box(tf.shape(image), seed)
    crop = tf.slice(image, begin, crop_size)
    return tf.image.resize(crop, [size, size], method="bilinear", antialias=True)


def color_jitter(image: tf.Tensor, seed: tf.Tensor, strength=0.4, hue=0.1) -> tf.Tensor:
    """torchvision ColorJitter(strength, strength, strength, hue), in fixed order.

    image: (H, W, 3) in [0, 1].
    """
    seeds = tf.random.experimental.stateless_split(seed, 4)
    factors = tf.random.stateless_uniform([3], seeds[0], 1 - strength, 1 + strength)
    image = tf.clip_by_value(image * factors[0], 0.0, 1.0)  # brightness
    grey = tf.image.rgb_to_grayscale(image)
    mean = tf.reduce_mean(grey)
    image = tf.clip_by_value((image - mean) * factors[1] + mean, 0.0, 1.0)  # contrast
    grey = tf.image.rgb_to_grayscale(image)
    image = tf.clip_by_value(grey + (image - grey) * factors[2], 0.0, 1.0)  # saturation
    delta = tf.random.stateless_uniform([], seeds[1], -hue, hue)
    return tf.clip_by_value(tf.image.adjust_hue(image, delta), 0.0, 1.0)


def ten_crops(image: tf.Tensor, size: int) -> tf.Tensor:
    """(10, size, size, 3): the four corners (top-left, top-right, bottom-left, bottom-right),
    the centre, then each mirrored."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    corners = [
        (0, 0),
        (0, width - size),
        (height - size, 0),
        (height - size, width - size),
        ((height - size) // 2, (width - size) // 2),
    ]
    crops = tf.stack([tf.slice(image, [top, left, 0], [size, size, 3]) for top, left in corners])
    return tf.concat([crops, tf.reverse(crops, [2])], axis=0)


# ---------------------------------------------------------------------------
# One example
#
# Every image passes through two stages: its geometry and colour changes (`train_pixels`,
# `eval_pixels`: uint8 crops, plus the PCA lighting's RGB shift for training) and the float
# arithmetic that makes the model's input (`normalize`: /255, + shift, - mean, / std). The
# trainer ships the uint8 crops and does the second stage on its devices
# (`alexnet_jax.pixels`); `train_image` and `eval_image` do both here, for every other user.


def train_pixels(
    image_uint8: tf.Tensor, seed: tf.Tensor, config: InputConfig, stats: ColorStats
) -> tuple[tf.Tensor, tf.Tensor]:
    """One training image before its float arithmetic: uint8 (H, W, 3) -> (uint8 crop (S, S, 3),
    lighting (3,) float32, the RGB shift of PCA lighting in [0, 1] units; zeros without it).

    Only an image that is resized (a resized copy or an in-memory dataset already has the base
    size) or colour-jittered (`inception`) is rounded to uint8 on the way: by at most half a level.
    All randomness comes from `seed` (a stateless seed, int64 (2,)).
    """
    seeds = tf.random.experimental.stateless_split(seed, 5)
    size, augment = config.image_size, config.train_augment
    if augment == "inception":
        image = random_resized_crop(tf.cast(image_uint8, tf.float32), size, seeds[0]) / 255.0
        image = _to_uint8(color_jitter(image, seeds[2]) * 255.0)
    else:
        image = base_image_uint8(image_uint8, config.resize_size)
        if augment == "paper":
            image = random_crop(image, size, seeds[0])
        elif augment == "pad_crop":
            image = random_crop(tf.pad(image, [[4, 4], [4, 4], [0, 0]]), size, seeds[0])
        else:
            image = center_crop(image, size)
    shift = tf.zeros([3], tf.float32)
    if augment != "none":
        if config.horizontal_flip:
            image = random_flip(image, seeds[1])
        if config.pca_lighting_std > 0:
            alpha = tf.random.stateless_normal([3], seeds[3], stddev=config.pca_lighting_std)
            shift = lighting_shift(alpha, stats)
    return image, shift


def eval_pixels(image_uint8: tf.Tensor, config: InputConfig) -> tf.Tensor:
    """One evaluation image before its float arithmetic: uint8 (H, W, 3) -> uint8 (S, S, 3), or
    (10, S, S, 3) for eval_crop='ten_crop'."""
    image = base_image_uint8(image_uint8, config.resize_size)
    if config.eval_crop == "ten_crop":
        return ten_crops(image, config.image_size)
    return center_crop(image, config.image_size)


def train_image(
    image_uint8: tf.Tensor, seed: tf.Tensor, config: InputConfig, stats: ColorStats
) -> tf.Tensor:
    """One training image, uint8 (H, W, 3) -> normalized float32 (S, S, 3): `train_pixels`, then
    `normalize` with its lighting shift."""
    image, shift = train_pixels(image_uint8, seed, config, stats)
    return normalize(image, stats, shift)


def eval_image(image_uint8: tf.Tensor, config: InputConfig, stats: ColorStats) -> tf.Tensor:
    """One evaluation image, uint8 (H, W, 3) -> normalized float32 (S, S, 3), or (10, S, S, 3)
    for eval_crop='ten_crop'."""
    return normalize(eval_pixels(image_uint8, config), stats)


def _to_uint8(values: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.round(tf.clip_by_value(values, 0.0, 255.0)), tf.uint8)


def normalize(image: tf.Tensor, stats: ColorStats, shift: tf.Tensor | None = None) -> tf.Tensor:
    """(image / 255 + shift - mean) / std per channel, float32; image (..., 3) uint8 and shift
    (..., 3) (broadcast over the pixels of each image; None: no shift). The same arithmetic as
    `alexnet_jax.pixels.normalize` on the devices."""
    image = tf.cast(image, tf.float32) / 255.0
    if shift is not None:
        image = image + shift[..., None, None, :]
    return (image - tf.constant(stats.mean, tf.float32)) / tf.constant(stats.std, tf.float32)
