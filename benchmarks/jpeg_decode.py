"""Faster JPEG decoding for the training crop: reduced DCT scale and fused decode-and-crop.

Measures, per image on one CPU thread, three ways to get the paper's base image
(the central square of the shorter side, resized to 256x256, `sources.base_image`)
and two ways to get the Inception-style crop (`augment.random_resized_crop`, 224x224)
from a JPEG file's bytes:

  paper, decode + crop + resize    `tf.io.decode_jpeg`, then `base_image` (what the package does)
  paper, fused central square      `tf.image.decode_and_crop_jpeg` of the central square, then
                                   the same resize: the discarded sides are never decoded
  paper, reduced DCT scale         `tf.io.decode_jpeg(ratio=r)` with the largest r in 2, 4, 8
                                   that keeps the shorter side >= 256 (r=1 where none does), then
                                   `base_image` of the smaller image
  inception, decode + crop         `tf.io.decode_jpeg`, then the sampled box, resized
  inception, fused crop            the same box from `tf.image.extract_jpeg_shape`, decoded alone
                                   by `decode_and_crop_jpeg`, then the same resize

with the same random box for both Inception rows. Each row reports microseconds per image
(process CPU time over all images, after one untimed pass) and, against the first row of its
recipe, the pixel difference of the float32 result in 0..255 levels (mean abs, max abs, PSNR).
The images are JPEGs of real photos (`benchmarks.input_pipeline.write_jpegs`: the sklearn
sample photos cropped to ImageNet's typical sizes, 333-500 px, quality 90) and, because
the reduced scale needs a shorter side of at least 512, `--large` more at twice those sizes.

Run from the repository root:

    python benchmarks/jpeg_decode.py [--num_images 200] [--large 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np
import tensorflow as tf
from PIL import Image

from alexnet_jax.data import augment, sources
from benchmarks.input_pipeline import JPEG_QUALITY, list_train_files, write_jpegs

RESIZE_SIZE, IMAGE_SIZE = 256, 224


def _central_square(shape):
    side = tf.minimum(shape[0], shape[1])
    return (shape[0] - side) // 2, (shape[1] - side) // 2, side


def paper_reference(data, seed):
    return sources.base_image(tf.io.decode_jpeg(data, channels=3), RESIZE_SIZE)


def paper_fused(data, seed):
    top, left, side = _central_square(tf.io.extract_jpeg_shape(data))
    square = tf.image.decode_and_crop_jpeg(data, tf.stack([top, left, side, side]), channels=3)
    return sources.base_image(square, RESIZE_SIZE)


def paper_reduced_scale(data, seed):
    shape = tf.io.extract_jpeg_shape(data)
    side = tf.minimum(shape[0], shape[1])

    def decoded(ratio):
        return lambda: tf.io.decode_jpeg(data, channels=3, ratio=ratio)

    # decode_jpeg's ratio is an attribute, not a tensor: one branch per ratio.
    image = tf.case(
        [(side >= ratio * RESIZE_SIZE, decoded(ratio)) for ratio in (8, 4, 2)],
        default=decoded(1),
    )
    return sources.base_image(image, RESIZE_SIZE)


def _resized(crop):
    return tf.image.resize(
        tf.cast(crop, tf.float32), [IMAGE_SIZE, IMAGE_SIZE], method="bilinear", antialias=True
    )


def inception_reference(data, seed):
    image = tf.io.decode_jpeg(data, channels=3)
    begin, size = augment.inception_crop_box(tf.io.extract_jpeg_shape(data), seed)
    return _resized(tf.slice(image, begin, size))


def inception_fused(data, seed):
    begin, size = augment.inception_crop_box(tf.io.extract_jpeg_shape(data), seed)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    return _resized(tf.image.decode_and_crop_jpeg(data, window, channels=3))


ROWS = (
    ("paper", "decode + crop + resize (the package)", paper_reference),
    ("paper", "fused central square (decode_and_crop_jpeg)", paper_fused),
    ("paper", "reduced DCT scale (decode_jpeg ratio=2/4/8)", paper_reduced_scale),
    ("inception", "decode + crop (the package)", inception_reference),
    ("inception", "fused crop (decode_and_crop_jpeg)", inception_fused),
)


def run(fn, blobs, repeats: int):
    """(outputs, CPU microseconds per image): the best of `repeats` timed passes."""
    call = tf.function(fn)
    seeds = [tf.constant([i, 0], tf.int64) for i in range(len(blobs))]
    outputs = [call(b, s).numpy() for b, s in zip(blobs, seeds)]  # traces, warms the cache
    best = np.inf
    for _ in range(repeats):
        start = time.process_time()
        for b, s in zip(blobs, seeds):
            call(b, s)
        best = min(best, time.process_time() - start)
    return outputs, 1e6 * best / len(blobs)


def difference(outputs, reference) -> dict:
    d = np.concatenate([(a.astype(np.float64) - b).ravel() for a, b in zip(outputs, reference)])
    mse = float(np.mean(d**2))
    return dict(
        mean_abs=float(np.mean(np.abs(d))),
        max_abs=float(np.max(np.abs(d))),
        psnr=10 * np.log10(255.0**2 / mse) if mse > 0 else np.inf,
    )


def large_copies(paths, directory: Path, count: int) -> list[str]:
    """The first `count` images at twice their size (bicubic), as JPEGs of the same quality."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i, path in enumerate(paths[:count]):
        with Image.open(path) as image:
            large = image.resize((2 * image.width, 2 * image.height), Image.BICUBIC)
        target = directory / f"{i:06d}.jpg"
        large.save(target, quality=JPEG_QUALITY)
        out.append(str(target))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=200)
    parser.add_argument("--large", type=int, default=100, help="images at twice the size")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the best counts")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with tempfile.TemporaryDirectory(prefix="alexnet_jpeg_decode_") as temporary:
        root = Path(temporary)
        write_jpegs(root / "typical", args.num_images)
        paths, _ = list_train_files(root / "typical")
        sets = {"ImageNet-size (333-500 px)": paths}
        if args.large:
            sets["twice that (666-1000 px)"] = large_copies(paths, root / "large", args.large)
        print(
            f"tensorflow {tf.__version__}, one thread; JPEG quality {JPEG_QUALITY}; "
            f"best of {args.repeats} passes\n"
        )
        print(
            "| images | recipe | method | us per image | speed-up | mean abs | max abs | PSNR dB |"
        )
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for name, files in sets.items():
            blobs = [tf.constant(open(p, "rb").read()) for p in files]
            reference = {}
            for recipe, method, fn in ROWS:
                outputs, micros = run(fn, blobs, args.repeats)
                if recipe not in reference:
                    reference[recipe] = (outputs, micros)
                    cells = "1.00x | 0 | 0 | inf"
                else:
                    base, base_micros = reference[recipe]
                    d = difference(outputs, base)
                    cells = (
                        f"{base_micros / micros:.2f}x | {d['mean_abs']:.3f} | "
                        f"{d['max_abs']:.1f} | {d['psnr']:.1f}"
                    )
                print(f"| {name}, {len(files)} | {recipe} | {method} | {micros:.0f} | {cells} |")


if __name__ == "__main__":
    main()
