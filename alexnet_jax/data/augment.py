"""What happens to one example: the training augmentations and the evaluation crops.

All in TensorFlow, on one decoded image (H, W, 3); randomness comes from a stateless seed, so the
same seed gives the same image. `train_image` and `eval_image` turn a uint8 image into the
normalized float32 crop(s) the model sees; the rest are their steps.
"""

from __future__ import annotations

import tensorflow as tf

from alexnet_jax.data.sources import ColorStats, InputConfig, base_image

__all__ = [
    "pca_lighting",
    "center_crop",
    "random_crop",
    "random_flip",
    "inception_crop_box",
    "random_resized_crop",
    "color_jitter",
    "ten_crops",
    "train_image",
    "eval_image",
    "normalize",
]


def pca_lighting(image: tf.Tensor, alpha: tf.Tensor, stats: ColorStats) -> tf.Tensor:
    """Adds sum_i alpha_i * eigval_i * eigvec_i to every pixel (one RGB shift per image).

    image: (..., H, W, 3) in [0, 1]; alpha: (..., 3) ~ N(0, std^2).
    """
    eigval = tf.constant(stats.eigval, tf.float32)
    eigvec = tf.constant(stats.eigvec, tf.float32)
    shift = tf.linalg.matvec(eigvec, alpha * eigval)  # (..., 3)
    return image + shift[..., None, None, :]


# ---------------------------------------------------------------------------
# Geometry (one image (H, W, 3) float32 in [0, 1])


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
    return tf.cond(flip, lambda: image[:, ::-1, :], lambda: image)


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
    return tf.concat([crops, crops[:, :, ::-1, :]], axis=0)


# ---------------------------------------------------------------------------
# One example


def train_image(
    image_uint8: tf.Tensor, seed: tf.Tensor, config: InputConfig, stats: ColorStats
) -> tf.Tensor:
    """One training image, uint8 (H, W, 3) -> normalized float32 (S, S, 3).

    All randomness comes from `seed` (a stateless seed, int64 (2,)).
    """
    seeds = tf.random.experimental.stateless_split(seed, 5)
    size, augment = config.image_size, config.train_augment
    # Geometry first, on the original values: fewer pixels to convert.
    if augment == "inception":
        image = random_resized_crop(tf.cast(image_uint8, tf.float32), size, seeds[0]) / 255.0
        image = color_jitter(image, seeds[2])
    else:
        image = base_image(image_uint8, config.resize_size) / 255.0
        if augment == "paper":
            image = random_crop(image, size, seeds[0])
        elif augment == "pad_crop":
            image = random_crop(tf.pad(image, [[4, 4], [4, 4], [0, 0]]), size, seeds[0])
        else:
            image = center_crop(image, size)
    if augment != "none":
        if config.horizontal_flip:
            image = random_flip(image, seeds[1])
        if config.pca_lighting_std > 0:
            alpha = tf.random.stateless_normal([3], seeds[3], stddev=config.pca_lighting_std)
            image = pca_lighting(image, alpha, stats)
    return normalize(image, stats)


def eval_image(image_uint8: tf.Tensor, config: InputConfig, stats: ColorStats) -> tf.Tensor:
    """One evaluation image, uint8 (H, W, 3) -> normalized float32 (S, S, 3), or (10, S, S, 3)
    for eval_crop='ten_crop'."""
    image = base_image(image_uint8, config.resize_size) / 255.0
    if config.eval_crop == "ten_crop":
        return normalize(ten_crops(image, config.image_size), stats)
    return normalize(center_crop(image, config.image_size), stats)


def normalize(image: tf.Tensor, stats: ColorStats) -> tf.Tensor:
    """(image - mean) / std per channel; image (..., 3) in [0, 1]."""
    return (image - tf.constant(stats.mean, tf.float32)) / tf.constant(stats.std, tf.float32)
