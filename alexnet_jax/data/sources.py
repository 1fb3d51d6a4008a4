"""Where examples come from: the datasets, their settings, classes and colour statistics.

`load_data(InputConfig)` opens the dataset of the config as `Data`: a train and an eval source of
decoded uint8 images (`ArraySource` held in memory, `FileSource` image files decoded on the fly,
`TfdsSource` TFRecord files streamed, or `SyntheticSource`: drawn on the devices by
`alexnet_jax.synthetic`), the classes, and the `ColorStats` that images are normalized with. The tfds builders the package ships are in `alexnet_jax.datasets`.

With `resized_copy=True`, ImageNet and image folders are read from their resized copy
(`alexnet_jax.datasets.resized_copy`): every image once through `base_image`, stored as a JPEG of
`resize_size` x `resize_size`; `prepare_data` (`main.py --mode=prepare`) writes it, `load_data`
only opens it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import time
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

import alexnet_jax.datasets  # noqa: F401  (registers sklearn_digits and resized_copy)
from alexnet_jax import runtime
from alexnet_jax.config_values import config_items
from alexnet_jax.datasets import cifar10, resized_copy
from alexnet_jax.errors import UserError

runtime.hide_accelerators_from_tensorflow()  # tf.data runs on the CPU; JAX keeps the GPU memory

__all__ = [
    "DATASETS",
    "TRAIN_AUGMENTS",
    "EVAL_CROPS",
    "COLOR_STATS",
    "ON_CORRUPT",
    "RESIZED_COPY_DATASETS",
    "IMAGENET_TARS",
    "IMAGE_EXTENSIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGENET_EIGVAL",
    "IMAGENET_EIGVEC",
    "DataError",
    "InputConfig",
    "ColorStats",
    "IMAGENET_COLOR_STATS",
    "compute_color_stats",
    "base_image",
    "base_image_uint8",
    "ArraySource",
    "FileSource",
    "TfdsSource",
    "SyntheticSource",
    "Data",
    "archive_dir",
    "load_data",
    "prepare_data",
]

DATASETS = ("digits", "imagenet2012", "cifar10", "image_folder", "synthetic")
TRAIN_AUGMENTS = ("paper", "inception", "pad_crop", "none")
EVAL_CROPS = ("center", "ten_crop")
COLOR_STATS = ("imagenet", "dataset")
ON_CORRUPT = ("error", "skip")
RESIZED_COPY_DATASETS = ("imagenet2012", "image_folder")  # the datasets read from image files
RESIZED_COPY_FORMATS = ("jpeg", "raw")

IMAGENET_TARS = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")

# Pixels in [0, 1]. Eigenvectors are columns (rows R, G, B), eigenvalues of
# the RGB covariance of ImageNet training pixels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


class DataError(UserError):
    """The data or the data settings are not usable; the message says how to fix it."""


def _choose(kind: str, value: str, valid) -> str:
    if value not in valid:
        choices = ", ".join(map(repr, valid))
        raise DataError(f"Unknown {kind} {value!r}; choose one of: {choices}.")
    return value


# ---------------------------------------------------------------------------
# Settings


@dataclasses.dataclass(frozen=True)
class InputConfig:
    """Everything the pipeline needs, as plain values (see `alexnet_jax.data`)."""

    dataset: str = "digits"
    data_dir: str = ""  # tfds data dir; '' = tfds's default (~/tensorflow_datasets)
    # The ImageNet tars, cifar-10-binary.tar.gz; '' = <data_dir>/downloads/manual.
    manual_dir: str = ""
    folder_root: str = ""  # root of an image folder tree
    train_split: str = ""  # '' = the dataset's own ('train')
    eval_split: str = ""  # '' = the dataset's own ('test', 'validation' or 'val')
    image_size: int = 224  # side of the crops the model sees
    resize_size: int = 256  # shorter side before cropping
    train_augment: str = "paper"
    eval_crop: str = "center"
    pca_lighting_std: float = 0.1  # std of the lighting coefficients; 0 turns it off
    # Random left-right flips in training (not for every kind of image: digits).
    horizontal_flip: bool = True
    color_stats: str = "imagenet"  # 'imagenet' constants, or computed from the 'dataset'
    on_corrupt_image: str = "error"  # image folders: 'error' or 'skip' (and count) bad files
    shuffle_buffer: int = 10_000  # examples, for datasets streamed from disk
    # (5, 6, 7): keep only these labels, renumbered 0, 1, 2 in this order; () = all.
    classes: tuple = ()
    train_examples_per_class: int = 0  # > 0: keep the first N training examples of each class
    half_precision: bool = False  # bfloat16 images
    seed: int = 0
    # dataset='synthetic': labels in 0..num_classes-1, and the sizes of its splits (ImageNet's train
    # split, so that epochs last as long; its validation split)
    num_classes: int = 1000
    synthetic_train_examples: int = 1_281_167
    synthetic_eval_examples: int = 50_000
    # imagenet2012 and image_folder: read the images from their resized copy (every image once
    # through base_image at resize_size), made by prepare_data: stored as JPEGs of this quality
    # ('jpeg'), or as their pixels ('raw': no decoding, 4-7x the disk).
    resized_copy: bool = False
    resized_copy_format: str = "jpeg"
    resized_copy_quality: int = 95

    @classmethod
    def from_config(cls, config) -> "InputConfig":
        """Takes the fields of this class that `config` (a ConfigDict or mapping) has."""
        values = {f.name: config[f.name] for f in dataclasses.fields(cls) if f.name in config}
        # A config read from config.json holds lists where the config file wrote tuples.
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def validated(self) -> "InputConfig":
        """This config, after checking its choices; raises DataError with a fix otherwise."""
        _choose("dataset", self.dataset, DATASETS)
        _choose("train_augment", self.train_augment, TRAIN_AUGMENTS)
        _choose("eval_crop", self.eval_crop, EVAL_CROPS)
        _choose("color_stats", self.color_stats, COLOR_STATS)
        _choose("on_corrupt_image", self.on_corrupt_image, ON_CORRUPT)
        if self.resize_size < self.image_size:
            raise DataError(
                f"resize_size={self.resize_size} is smaller than image_size={self.image_size}; "
                "crops are taken from the resized image, so use resize_size >= image_size."
            )
        if self.dataset == "image_folder" and not self.folder_root:
            raise DataError(
                "dataset='image_folder' needs folder_root: --config.folder_root=/path/to/root."
            )
        if self.dataset == "synthetic":
            for name in ("num_classes", "synthetic_train_examples", "synthetic_eval_examples"):
                if getattr(self, name) < 1:
                    raise DataError(
                        f"dataset='synthetic' needs {name} >= 1, got {getattr(self, name)}."
                    )
        if self.resized_copy:
            self._check_resized_copy()
        return self

    def _check_resized_copy(self) -> None:
        if self.dataset not in RESIZED_COPY_DATASETS:
            where = (
                "drawn on the devices"
                if self.dataset == "synthetic"
                else "held in memory at resize_size already"
            )
            raise DataError(
                f"resized_copy=True is for the datasets read from image files "
                f"({', '.join(RESIZED_COPY_DATASETS)}); {self.dataset}'s images are {where}. "
                "Leave --config.resized_copy=False."
            )
        _choose("resized_copy_format", self.resized_copy_format, RESIZED_COPY_FORMATS)
        if self.resized_copy_format == "jpeg" and not 1 <= self.resized_copy_quality <= 100:
            raise DataError(
                f"resized_copy_quality={self.resized_copy_quality} is not a JPEG quality; "
                "use 1..100 (95 by default)."
            )
        if self.train_augment == "inception":
            raise DataError(
                "train_augment='inception' crops the whole decoded image, and a resized copy holds "
                "only its central resize_size square: use resized_copy=False with it, or "
                "train_augment='paper'."
            )


# ---------------------------------------------------------------------------
# Colour statistics


@dataclasses.dataclass(frozen=True)
class ColorStats:
    """Per-channel mean/std and RGB principal components of training pixels in [0, 1]."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    eigval: tuple[float, float, float]  # descending
    eigvec: tuple[tuple[float, ...], ...]  # (3, 3), column i is component i

    @classmethod
    def from_json(cls, values) -> "ColorStats":
        """The statistics from their JSON form (lists where the fields are tuples)."""
        return cls(
            **{k: tuple(map(tuple, v)) if k == "eigvec" else tuple(v) for k, v in values.items()}
        )


IMAGENET_COLOR_STATS = ColorStats(IMAGENET_MEAN, IMAGENET_STD, IMAGENET_EIGVAL, IMAGENET_EIGVEC)


def _pixel_blocks(chunk: np.ndarray, block_pixels: int):
    """The uint8 pixels of `chunk` (..., 3) as (M <= block_pixels, 3) views (copied if strided)."""
    chunk = np.asarray(chunk)
    if chunk.dtype != np.uint8 or chunk.ndim < 2 or chunk.shape[-1] != 3:
        got = f"{chunk.dtype} {chunk.shape}"
        raise ValueError(f"colour statistics need uint8 arrays shaped (..., 3); got {got}.")
    # Pixels per image (1 for an (M, 3) array of pixels).
    per_item = math.prod(chunk.shape[1:-1])
    items = max(1, block_pixels // max(per_item, 1))
    for start in range(0, len(chunk), items):
        pixels = chunk[start : start + items].reshape(-1, 3)
        for first in range(0, len(pixels), block_pixels):
            yield pixels[first : first + block_pixels]


def compute_color_stats(images, chunk_pixels: int = 1 << 16) -> ColorStats:
    """Mean, std and PCA of the RGB values of uint8 images, as the paper did for ImageNet.

    `images`: one uint8 array (N, H, W, 3) (or (M, 3) pixels), or an iterable
    of such arrays (chunks of a dataset; sizes may differ). One pass in blocks
    of `chunk_pixels` pixels, so memory stays bounded (about 2 MB) whatever the
    dataset's size. Pixels are x / 255: mean, std (ddof=0, as `np.std`) and
    covariance (ddof=1, as `np.cov`) per channel, its eigenvalues descending
    (clipped at 0) and eigenvectors as columns; std is clipped at 1e-3.

    The sums are exact integers: the count n, per-channel sums s_i and sums of
    products S_ij of the uint8 values (each block's by a float64 matmul, exact
    since every partial sum is an integer below 2**53; the totals in int64,
    exact up to 1.4e14 pixels). Then cov_ij = (n S_ij - s_i s_j) / (255^2 n (n-1))
    with the numerator in Python integers: no cancellation, one rounding, so
    a large mean with a tiny spread loses no digits (np.cov's two-pass float64
    rounds a little on every pixel).
    """
    chunks = [images] if isinstance(images, np.ndarray) else images
    # Columns: R, G, B and a column of ones, so one matmul gives S, s (last row) and n (corner).
    buffer = np.ones((chunk_pixels, 4), np.float64)
    totals = np.zeros((4, 4), np.int64)
    for chunk in chunks:
        for pixels in _pixel_blocks(chunk, chunk_pixels):
            block = buffer[: len(pixels)]
            block[:, :3] = pixels
            totals += (block.T @ block).astype(np.int64)
    totals = [[int(value) for value in row] for row in totals]
    n, sums, products = totals[3][3], totals[3][:3], [row[:3] for row in totals[:3]]
    if n < 2:
        raise ValueError(f"colour statistics need at least 2 pixels; got {n}.")
    scale = 255 * 255
    mean = np.array([s / (255 * n) for s in sums])
    std = np.sqrt([(n * products[i][i] - sums[i] ** 2) / (scale * n * n) for i in range(3)])
    covariance = np.array(
        [
            [(n * products[i][j] - sums[i] * sums[j]) / (scale * n * (n - 1)) for j in range(3)]
            for i in range(3)
        ]
    )
    eigval, eigvec = np.linalg.eigh(covariance)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0.0, None), eigvec[:, order]
    return ColorStats(
        tuple(map(float, mean)),
        tuple(map(float, np.maximum(std, 1e-3))),
        tuple(map(float, eigval)),
        tuple(tuple(map(float, row)) for row in eigvec),
    )


# ---------------------------------------------------------------------------
# The once-only resize (what in-memory datasets hold)


def _central_square(image: tf.Tensor) -> tf.Tensor:
    """The central square of the shorter side of image (H, W, C), in its own dtype."""
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    corner = [(shape[0] - side) // 2, (shape[1] - side) // 2, 0]
    return tf.slice(image, corner, [side, side, 3])


def base_image(image: tf.Tensor, resize_size: int) -> tf.Tensor:
    """The paper's once-per-image step: the central square of the shorter side, resized.

    image: (H, W, 3) -> (resize_size, resize_size, 3). Same region as
    "shorter side to resize_size, then central crop", but the crop comes
    first so the discarded pixels are never resized. Bilinear, antialiased
    only when shrinking more than 2x (at milder shrinks antialiasing costs
    6x the time and changes little). Any dtype in, float32 out, in the
    input's value range.
    """
    square = tf.cast(_central_square(image), tf.float32)
    side = tf.shape(square)[0]
    target = [resize_size, resize_size]
    return tf.cond(
        side == resize_size,
        lambda: square,
        lambda: tf.cond(
            side > 2 * resize_size,
            lambda: tf.image.resize(square, target, method="bilinear", antialias=True),
            lambda: tf.image.resize(square, target, method="bilinear", antialias=False),
        ),
    )


def base_image_uint8(image: tf.Tensor, resize_size: int) -> tf.Tensor:
    """`base_image` of a uint8 image rounded to uint8 (resize_size, resize_size, 3): what datasets
    keep of an image. An image whose shorter side already is resize_size is only cropped."""
    square = _central_square(image)
    return tf.cond(
        tf.shape(square)[0] == resize_size,
        lambda: square,
        lambda: tf.cast(
            tf.round(tf.clip_by_value(base_image(square, resize_size), 0, 255)), tf.uint8
        ),
    )


# ---------------------------------------------------------------------------
# Sources: where decoded uint8 images come from


@dataclasses.dataclass
class ArraySource:
    """A whole split decoded in memory (after the once-only resize): random access by index."""

    images: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # (N,) int32

    def __len__(self) -> int:
        return len(self.labels)

    def lookup(self, index: tf.Tensor):
        """(image (S, S, 3) uint8, label int32) of example `index`."""
        return tf.gather(self._images, index), tf.gather(self._labels, index)

    def __post_init__(self):
        self._images = tf.constant(self.images)
        self._labels = tf.constant(self.labels.astype(np.int32))


@dataclasses.dataclass
class FileSource:
    """Image files decoded on the fly: random access by index."""

    paths: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) int32

    def __len__(self) -> int:
        return len(self.labels)

    def lookup(self, index: tf.Tensor):
        """(image (H, W, 3) uint8, label int32) of example `index`, decoded from its file."""
        data = tf.io.read_file(tf.gather(self._paths, index))
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return image, tf.gather(self._labels, index)

    def __post_init__(self):
        self._paths = tf.constant(self.paths)
        self._labels = tf.constant(self.labels.astype(np.int32))


@dataclasses.dataclass
class TfdsSource:
    """A prepared tfds split streamed from its TFRecord files (too large for memory)."""

    builder: Any
    split: str
    num_examples: int
    decoders: dict | None = None  # tfds decoders of its features (None: tfds's own)

    def __len__(self) -> int:
        return self.num_examples


@dataclasses.dataclass
class SyntheticSource:
    """A split of random images drawn on the devices (`alexnet_jax.synthetic`): nothing on the host."""

    num_examples: int

    def __len__(self) -> int:
        return self.num_examples


@dataclasses.dataclass
class Data:
    """The train and eval sources of a dataset, its classes and colour statistics."""

    train: ArraySource | FileSource | TfdsSource | SyntheticSource
    eval: ArraySource | FileSource | TfdsSource | SyntheticSource
    num_classes: int
    color_stats: ColorStats
    class_names: tuple[str, ...] = ()
    skipped_files: tuple[str, ...] = ()


# ---------------------------------------------------------------------------
# Loading datasets


def _data_dir(config: InputConfig) -> str | None:
    return os.path.expanduser(config.data_dir) if config.data_dir else None


def _tfds_arrays(builder, split: str, resize_size: int) -> ArraySource:
    """Reads a small tfds split into memory, images through the once-only resize step."""
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    first = next(iter(dataset.take(1)))
    if tuple(first["image"].shape[:2]) != (resize_size, resize_size):

        def resized(ex):
            return {"image": base_image_uint8(ex["image"], resize_size), "label": ex["label"]}

        dataset = dataset.map(resized, num_parallel_calls=tf.data.AUTOTUNE)
    arrays = tfds.as_numpy(dataset.batch(4096))
    images, labels = [], []
    for batch in arrays:
        images.append(batch["image"])
        labels.append(batch["label"])
    return ArraySource(np.concatenate(images), np.concatenate(labels).astype(np.int32))


def _load_digits(config: InputConfig) -> Data:
    builder = tfds.builder("sklearn_digits", data_dir=_data_dir(config))
    builder.download_and_prepare()
    train = _tfds_arrays(builder, config.train_split or "train", config.resize_size)
    evaluation = _tfds_arrays(builder, config.eval_split or "test", config.resize_size)
    return Data(train, evaluation, 10, _stats(config, train), tuple(map(str, range(10))))


def _load_cifar10(config: InputConfig) -> Data:
    """A tfds `cifar10` prepared in data_dir, else the official binary archive in manual_dir.

    Never a download: offline, tfds's hangs for minutes. Both sources give the examples in the
    archive's order (see alexnet_jax/datasets/cifar10.py).
    """
    data_dir = _data_dir(config) or tfds.core.constants.DATA_DIR
    # Only where tfds may have prepared it: a tfds builder of a folder that does not exist logs
    # a warning.
    builder = None
    if tf.io.gfile.isdir(os.path.join(data_dir, "cifar10")):
        builder = tfds.builder("cifar10", data_dir=data_dir)
    try:
        if builder is not None and builder.is_prepared():
            cifar = cifar10.Cifar10.from_tfds(builder)
        else:
            archive = cifar10.find_archive(archive_dir(config), os.path.join(data_dir, "cifar10"))
            cifar = cifar10.Cifar10.from_archive(archive)
        train = _tfds_arrays(cifar, config.train_split or "train", config.resize_size)
        evaluation = _tfds_arrays(cifar, config.eval_split or "test", config.resize_size)
    except cifar10.Cifar10Error as error:
        raise DataError(str(error)) from None
    return Data(train, evaluation, cifar10.NUM_CLASSES, _stats(config, train), cifar.class_names)


def archive_dir(config: InputConfig) -> str:
    """Where the user's own archives are (the ImageNet tars, cifar-10-binary.tar.gz).

    manual_dir, or tfds's `<data_dir>/downloads/manual`.
    """
    if config.manual_dir:
        return os.path.expanduser(config.manual_dir)
    return os.path.join(_data_dir(config) or tfds.core.constants.DATA_DIR, "downloads", "manual")


def _imagenet_builder(config: InputConfig):
    """tfds's `imagenet2012`, prepared from the user's tars on first use."""
    builder = tfds.builder("imagenet2012", data_dir=_data_dir(config))
    if not builder.is_prepared():
        manual_dir = archive_dir(config)
        missing = [
            name for name in IMAGENET_TARS if not os.path.isfile(os.path.join(manual_dir, name))
        ]
        if missing:
            raise DataError(
                "ImageNet (ILSVRC2012) is not prepared and cannot be downloaded automatically: "
                f"missing {' and '.join(missing)} in {manual_dir}.\n"
                "Download them from image-net.org (registration required), put both tar files "
                "in that folder, or point to the folder that holds them with "
                "--config.manual_dir=/path/to/tars (the prepared dataset goes to "
                "--config.data_dir). Preparation is done once."
            )
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=manual_dir, try_download_gcs=False
            )
        )
    return builder


def _imagenet_stats(config: InputConfig) -> ColorStats:
    if config.color_stats == "dataset":
        raise DataError(
            "color_stats='dataset' is not computed for imagenet2012; use 'imagenet' (its "
            "constants)."
        )
    return IMAGENET_COLOR_STATS


def _streamed_data(
    builder, splits, dataset: str, stats: ColorStats, decoders=None, skipped_files=()
) -> Data:
    """`Data` of a prepared tfds dataset whose (train, eval) `splits` are streamed from its files."""
    known = builder.info.splits
    for split in splits:
        if split not in known:
            raise DataError(f"{dataset} has no split {split!r}; it has {sorted(known.keys())}.")
    train, evaluation = (TfdsSource(builder, s, known[s].num_examples, decoders) for s in splits)
    names = tuple(builder.info.features["label"].names)
    return Data(train, evaluation, len(names), stats, names, tuple(skipped_files))


def _load_imagenet(config: InputConfig) -> Data:
    stats = _imagenet_stats(config)
    splits = (config.train_split or "train", config.eval_split or "validation")
    return _streamed_data(_imagenet_builder(config), splits, "imagenet2012", stats)


def _visible(names) -> list[str]:
    # Hidden entries are never classes or images, in any split: tool droppings such as
    # .ipynb_checkpoints/ or .DS_Store, and macOS's ._photo.jpg resource forks (not images).
    return sorted(name for name in names if not name.startswith("."))


def _list_image_folder(root: str, split: str, class_names=None, class_split: str = "train"):
    """Paths (N,) str, labels (N,) int32 and class names of `root/split/<class>/<image>` files.

    The classes are `split`'s non-hidden folders, sorted, or `class_names` (those of
    `class_split`) for an evaluation split, which may lack some of them but must have no others.
    """
    split_dir = os.path.join(root, split)
    if not os.path.isdir(split_dir):
        raise DataError(
            f"Image folder split {split_dir!r} does not exist. "
            f"Expected {root}/<split>/<class>/<image files>."
        )
    entries = _visible(os.listdir(split_dir))
    folders = [name for name in entries if os.path.isdir(os.path.join(split_dir, name))]
    classes = class_names or tuple(folders)
    if not classes:
        raise DataError(
            f"{split_dir!r} has no class folders. Expected {split_dir}/<class>/<image files>."
        )
    unknown = [name for name in folders if name not in classes]
    if unknown:
        listed = ", ".join(map(repr, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
        class_dir = os.path.join(root, class_split)
        raise DataError(
            f"Image folder {split_dir} has {len(unknown)} class folder(s) that are not in "
            f"{class_dir}: {listed} (only training classes can be evaluated). Add each class "
            f"to {class_dir} (with training images), or remove or rename the folder."
        )
    paths, labels = [], []
    for label, name in enumerate(classes):
        class_dir = os.path.join(split_dir, name)
        if not os.path.isdir(class_dir):
            continue  # a training class missing from the evaluation split
        for file_name in _visible(os.listdir(class_dir)):
            if file_name.lower().endswith(IMAGE_EXTENSIONS):
                paths.append(os.path.join(class_dir, file_name))
                labels.append(label)
    if not paths:
        raise DataError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) under {split_dir!r}.")
    return np.array(paths), np.array(labels, np.int32), classes


def _find_unreadable(paths: np.ndarray) -> list[str]:
    """Files TensorFlow cannot decode as images, found by decoding all in parallel once."""
    indices = tf.data.Dataset.range(len(paths))
    path_table = tf.constant(paths)

    def decodes(index):
        data = tf.io.read_file(path_table[index])
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        # The result must depend on the decoded image, or tf.data prunes the decode.
        with tf.control_dependencies([tf.debugging.assert_greater(tf.size(image), 0)]):
            return tf.identity(index)

    readable = indices.map(decodes, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    good = set(int(i) for i in readable.as_numpy_iterator())
    return [str(paths[i]) for i in range(len(paths)) if i not in good]


def _unreadable_error(bad) -> DataError:
    listed = "\n  ".join(bad[:10]) + ("\n  ..." if len(bad) > 10 else "")
    return DataError(
        f"{len(bad)} file(s) in the image folder cannot be read as images:\n  {listed}\n"
        "Remove or replace them, or set --config.on_corrupt_image=skip to leave them out "
        "(they are counted)."
    )


def _checked_files(config: InputConfig, paths: np.ndarray, labels: np.ndarray):
    bad = _find_unreadable(paths)
    if bad and config.on_corrupt_image == "error":
        raise _unreadable_error(bad)
    keep = ~np.isin(paths, bad)
    return paths[keep], labels[keep], tuple(bad)


def _list_folder(config: InputConfig):
    """(root, class names, {"train": (paths, labels), "eval": (paths, labels)}) of an image folder."""
    root = os.path.expanduser(config.folder_root)
    train_split = config.train_split or "train"
    train_paths, train_labels, classes = _list_image_folder(root, train_split)
    eval_split = config.eval_split or "val"
    eval_paths, eval_labels, _ = _list_image_folder(root, eval_split, classes, train_split)
    return root, classes, {"train": (train_paths, train_labels), "eval": (eval_paths, eval_labels)}


def _load_image_folder(config: InputConfig) -> Data:
    _, classes, files = _list_folder(config)
    train_paths, train_labels, bad_train = _checked_files(config, *files["train"])
    eval_paths, eval_labels, bad_eval = _checked_files(config, *files["eval"])
    train, evaluation = FileSource(train_paths, train_labels), FileSource(eval_paths, eval_labels)
    stats = _stats(config, train)
    return Data(train, evaluation, len(classes), stats, classes, bad_train + bad_eval)


def _sample_base_images(source: FileSource, resize_size: int, limit: int = 2000, batch: int = 64):
    """Up to `limit` evenly spaced training images, through the once-only resize, for colour stats.

    Yields uint8 batches (<= batch, resize_size, resize_size, 3): only a few are in memory at once.
    """
    indices = np.linspace(0, len(source) - 1, min(limit, len(source))).astype(np.int64)
    dataset = tf.data.Dataset.from_tensor_slices(indices).map(
        lambda i: base_image_uint8(source.lookup(i)[0], resize_size),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    yield from dataset.batch(batch).as_numpy_iterator()


def _stats(config: InputConfig, train: ArraySource | FileSource) -> ColorStats:
    """ImageNet's constants, or (color_stats='dataset') those of the training images.

    In one streaming pass: all of an in-memory dataset's, a sample of up to 2,000 of an image
    folder's.
    """
    if config.color_stats != "dataset":
        return IMAGENET_COLOR_STATS
    if isinstance(train, ArraySource):
        return compute_color_stats(train.images)
    return compute_color_stats(_sample_base_images(train, config.resize_size))


def _load_synthetic(config: InputConfig) -> Data:
    """Random images of the config's size (normalized already: the colour statistics are unused)."""
    return Data(
        train=SyntheticSource(config.synthetic_train_examples),
        eval=SyntheticSource(config.synthetic_eval_examples),
        num_classes=config.num_classes,
        color_stats=IMAGENET_COLOR_STATS,
    )


# ---------------------------------------------------------------------------
# The resized copy (resized_copy=True): every image once through base_image, stored as a JPEG

PREPARE_COMMAND = (
    "python main.py --config=<this config> --mode=prepare (with this run's --config.* flags)"
)


class _CopyKey(NamedTuple):
    """Where the resized copy of a config's dataset is, and what it is a copy of."""

    data_dir: str
    source: str  # what all copies of the dataset are named after: imagenet2012, folder_<...>
    described: str  # the dataset in words
    name: str  # this copy's: <source>_<size>_q<quality>

    @property
    def directory(self) -> str:
        return resized_copy.copy_dir(self.data_dir, self.name)


def _copy_key(config: InputConfig) -> _CopyKey:
    """An image folder's copies are named after a hash of its real path and split folders, so
    that two folders never share a copy; whether the files are still those copied is the
    fingerprint's job (`_stale`)."""
    if config.dataset == "imagenet2012":
        source = described = "imagenet2012"
    else:
        root = os.path.realpath(os.path.expanduser(config.folder_root))
        splits = (config.train_split or "train", config.eval_split or "val")
        digest = hashlib.sha256(json.dumps([root, *splits]).encode()).hexdigest()[:12]
        label = re.sub(r"[^a-z0-9]+", "_", os.path.basename(root).lower()).strip("_")[:40]
        source = f"folder_{label or 'root'}_{digest}"
        described = f"the image folder {root} ({', '.join(splits)})"
    data_dir = _data_dir(config) or tfds.core.constants.DATA_DIR
    name = resized_copy.copy_name(source, config.resize_size, _copy_quality(config))
    return _CopyKey(data_dir, source, described, name)


def _folder_fingerprint(root: str, classes, files) -> tuple[str, int]:
    """(a hash of the class names and every file's path, label, size and modification time, the
    files' total bytes); `files` as `_list_folder` gives them."""
    digest = hashlib.sha256(json.dumps(list(classes)).encode())
    total = 0
    for split, (paths, labels) in files.items():
        digest.update(f"{split}\n".encode())
        for path, label in zip(paths, labels):
            stat = os.stat(path)
            total += stat.st_size
            line = f"{os.path.relpath(path, root)}\t{label}\t{stat.st_size}\t{stat.st_mtime_ns}\n"
            digest.update(line.encode())
    return digest.hexdigest(), total


def _copy_quality(config: InputConfig) -> int | None:
    """The JPEG quality of the config's resized copy; None for raw pixels."""
    return config.resized_copy_quality if config.resized_copy_format == "jpeg" else None


def _copy_metadata(config: InputConfig, **fields) -> dict:
    return {
        "dataset": config.dataset,
        "size": config.resize_size,
        "format": config.resized_copy_format,
        "quality": _copy_quality(config),
        "prepared": time.strftime("%Y-%m-%d %H:%M:%S"),
        **fields,
    }


def _imagenet_copy_plan(config: InputConfig, name: str) -> resized_copy.CopyPlan:
    builder = _imagenet_builder(config)
    size = config.resize_size

    def examples(split):
        def resized(ex):
            image = base_image_uint8(ex["image"], size)
            return {"image": image, "label": ex["label"], "file_name": ex["file_name"]}

        dataset = builder.as_dataset(split=split, shuffle_files=False)
        return dataset.map(resized, num_parallel_calls=tf.data.AUTOTUNE)

    source = f"imagenet2012 {builder.version}"
    return resized_copy.CopyPlan(
        name=name,
        size=size,
        quality=_copy_quality(config),
        class_names=tuple(builder.info.features["label"].names),
        split_sizes={split: info.num_examples for split, info in builder.info.splits.items()},
        examples=examples,
        metadata=_copy_metadata(
            config, source=source, source_bytes=resized_copy.disk_bytes(builder)
        ),
        description=f"{source}, shorter side to {size}, central square",
    )


def _folder_copy_plan(config: InputConfig, name: str) -> resized_copy.CopyPlan:
    """The copy of an image folder: its files checked as `load_data` checks them, and the colour
    statistics of the same 2,000 training images `color_stats='dataset'` reads without a copy."""
    root, classes, files = _list_folder(config)
    fingerprint, source_bytes = _folder_fingerprint(root, classes, files)
    checked, skipped = {}, []
    for split, (paths, labels) in files.items():
        paths, labels, bad = _checked_files(config, paths, labels)
        checked[split] = FileSource(paths, labels)
        skipped += [os.path.relpath(path, root) for path in bad]
    size = config.resize_size
    stats = compute_color_stats(_sample_base_images(checked["train"], size))

    def examples(split):
        source = checked[split]
        names = tf.constant([os.path.relpath(path, root) for path in source.paths])

        def example(index):
            image, label = source.lookup(index)
            image = base_image_uint8(image, size)
            return {"image": image, "label": label, "file_name": tf.gather(names, index)}

        return tf.data.Dataset.range(len(source)).map(example, num_parallel_calls=tf.data.AUTOTUNE)

    metadata = _copy_metadata(
        config,
        source=root,
        splits=[config.train_split or "train", config.eval_split or "val"],
        files={split: len(paths) for split, (paths, _) in files.items()},
        fingerprint=fingerprint,
        source_bytes=source_bytes,
        skipped_files=skipped,
        color_stats=dataclasses.asdict(stats),
    )
    return resized_copy.CopyPlan(
        name=name,
        size=size,
        quality=_copy_quality(config),
        class_names=tuple(classes),
        split_sizes={split: len(source) for split, source in checked.items()},
        examples=examples,
        metadata=metadata,
        description=f"{root}, shorter side to {size}, central square",
    )


def _stale(config: InputConfig, builder) -> str | None:
    """Why an image folder's copy no longer shows the folder; None if it does (ImageNet: always)."""
    if config.dataset != "image_folder":
        return None
    root, classes, files = _list_folder(config)
    metadata = builder.info.metadata
    if _folder_fingerprint(root, classes, files)[0] == metadata["fingerprint"]:
        return None
    then, now = metadata["files"], {split: len(paths) for split, (paths, _) in files.items()}
    return (
        f"{root} changed since the copy was made ({metadata['prepared']}): "
        f"{then['train']} training and {then['eval']} evaluation files then, {now['train']} and "
        f"{now['eval']} now, or files were added, removed, replaced or moved between classes"
    )


def _missing_copy(config: InputConfig, key: _CopyKey) -> DataError:
    message = (
        f"resized_copy=True, but there is no resized copy of {key.described} at "
        f"resize_size={config.resize_size}, {resized_copy.describe(_copy_quality(config))} "
        f"({key.directory}). Build it once with {PREPARE_COMMAND}, or set "
        "--config.resized_copy=False to read the original images."
    )
    others = resized_copy.copies_of(key.data_dir, key.source)
    if others:
        listed = ", ".join(f"resize_size={s} {resized_copy.describe(q)}" for s, q in others)
        message += (
            f" Copies made at other settings: {listed}; --config.resize_size (and "
            "--config.resized_copy_format, --config.resized_copy_quality) choose one."
        )
    return DataError(message)


def _load_resized_copy(config: InputConfig) -> Data:
    key = _copy_key(config)
    builder = resized_copy.open_copy(key.data_dir, key.name)
    if builder is None:
        raise _missing_copy(config, key)
    if reason := _stale(config, builder):
        raise DataError(
            f"The resized copy {key.directory} is out of date: {reason}. "
            f"Rebuild it with {PREPARE_COMMAND}; it replaces the old copy."
        )
    decoders = resized_copy.decoders(builder)
    dataset = f"{config.dataset}'s resized copy"
    if config.dataset == "imagenet2012":
        splits = (config.train_split or "train", config.eval_split or "validation")
        return _streamed_data(builder, splits, dataset, _imagenet_stats(config), decoders=decoders)
    metadata = builder.info.metadata
    root = metadata["source"]
    skipped = tuple(os.path.join(root, path) for path in metadata["skipped_files"])
    if skipped and config.on_corrupt_image == "error":
        raise _unreadable_error(skipped)
    stats = IMAGENET_COLOR_STATS
    if config.color_stats == "dataset":
        stats = ColorStats.from_json(metadata["color_stats"])
    splits = ("train", "eval")
    return _streamed_data(builder, splits, dataset, stats, decoders=decoders, skipped_files=skipped)


def _write_resized_copy(config: InputConfig) -> None:
    """Writes the resized copy of `config`'s dataset, unless it is there and current."""
    key = _copy_key(config)
    builder = resized_copy.open_copy(key.data_dir, key.name)
    if builder is not None:
        reason = _stale(config, builder)
        if reason is None:
            logging.info("The resized copy of %s is ready: %s", key.described, key.directory)
            return
        logging.warning("Rebuilding the resized copy %s: %s.", key.directory, reason)
        shutil.rmtree(key.directory)
    start = time.perf_counter()
    plan = (_imagenet_copy_plan if config.dataset == "imagenet2012" else _folder_copy_plan)(
        config, key.name
    )
    logging.info("Writing the resized copy of %s to %s", key.described, key.directory)
    builder = resized_copy.write(plan, key.data_dir)
    images = sum(plan.split_sizes.values())
    seconds = time.perf_counter() - start
    copy_bytes, source_bytes = resized_copy.disk_bytes(builder), plan.metadata["source_bytes"]
    logging.info(
        "Resized copy written in %.0f s (%.0f images/s): %d images, %.1f MiB, %.0f%% of the "
        "%.1f MiB of the source",
        seconds,
        images / seconds,
        images,
        copy_bytes / 2**20,
        100 * copy_bytes / max(source_bytes, 1),
        source_bytes / 2**20,
    )


_LOADERS = {
    "digits": _load_digits,
    "imagenet2012": _load_imagenet,
    "cifar10": _load_cifar10,
    "image_folder": _load_image_folder,
    "synthetic": _load_synthetic,
}


def load_data(config: InputConfig) -> Data:
    """Prepares (once) and opens the dataset of `config`; with `resized_copy=True` opens its
    resized copy, which `prepare_data` writes.

    Raises DataError, with a fix, on bad input.
    """
    config = config.validated()
    loader = _load_resized_copy if config.resized_copy else _LOADERS[config.dataset]
    data = loader(config)
    if config.classes or config.train_examples_per_class > 0:
        data = _subset(data, config)
    return data


def prepare_data(config: InputConfig) -> Data:
    """`main.py --mode=prepare`: prepares the dataset of `config` and, with `resized_copy=True`,
    writes its resized copy (rebuilds an image folder's if the folder changed); then opens it.

    Progress lines (images done, images/s) go to the log while a copy is written.
    """
    config = config.validated()
    if config.resized_copy:
        _write_resized_copy(config)
    return load_data(config)


def _parse_classes(value, num_classes: int) -> list[int]:
    """The label numbers of `classes`: a tuple such as (5, 6, 7), or the text "5,6,7" of older runs."""
    try:
        classes = [int(item) for item in config_items(value)]
    except (TypeError, ValueError):
        raise DataError(
            f"classes must be label numbers, e.g. (5, 6, 7, 8, 9) (--config.classes=5,6,7,8,9); "
            f"got {value!r}."
        ) from None
    bad = [c for c in classes if not 0 <= c < num_classes]
    if not classes or bad or len(set(classes)) != len(classes):
        raise DataError(
            f"classes={value!r} must list distinct labels in 0..{num_classes - 1} (the dataset has "
            f"{num_classes} classes), e.g. (5, 6, 7, 8, 9)."
        )
    return classes


def _take(source, keep: np.ndarray, labels: np.ndarray):
    if isinstance(source, ArraySource):
        return ArraySource(source.images[keep], labels[keep])
    return FileSource(source.paths[keep], labels[keep])


def _subset(data: Data, config: InputConfig) -> Data:
    """Only the classes in `config.classes` (renumbered), at most N training examples of each."""
    if isinstance(data.train, (TfdsSource, SyntheticSource)):
        where = "streamed from its TFRecord files"
        if config.dataset == "synthetic":
            where = "drawn on the devices"
        elif config.resized_copy:
            where = "streamed from its resized copy (resized_copy=True)"
        raise DataError(
            "classes / train_examples_per_class need a dataset held in memory or an image folder; "
            f"{config.dataset} is {where}."
        )
    if config.classes:
        classes = _parse_classes(config.classes, data.num_classes)
    else:
        classes = list(range(data.num_classes))
    new_label = np.full(data.num_classes, -1, np.int32)
    new_label[classes] = np.arange(len(classes), dtype=np.int32)
    sources = []
    for split, source in (("train", data.train), ("eval", data.eval)):
        labels = new_label[source.labels]
        keep = labels >= 0
        if split == "train" and config.train_examples_per_class > 0:
            # Position of each example within its class, in split order.
            rank = np.zeros(len(labels), np.int64)
            for label in range(len(classes)):
                members = np.flatnonzero(labels == label)
                rank[members] = np.arange(len(members))
            keep &= rank < config.train_examples_per_class
        if not keep.any():
            raise DataError(f"No {split} examples of classes {classes} in {config.dataset}.")
        sources.append(_take(source, np.flatnonzero(keep), labels))
    train, evaluation = sources
    names = tuple(data.class_names[c] for c in classes) if data.class_names else ()
    return dataclasses.replace(
        data,
        train=train,
        eval=evaluation,
        num_classes=len(classes),
        color_stats=_stats(config, train),
        class_names=names,
    )
