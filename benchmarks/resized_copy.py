"""The resized copy (`resized_copy=True`) of an image folder: time to make, disk size, pixels, speed.

Writes `--num_images` ImageNet-size training JPEGs (and 8 validation ones) with
`benchmarks.input_pipeline.write_jpegs` (crops of the two sklearn sample photos at 500x375,
333x500, ..., JPEG quality 90), then:

  1. prepares their resized copy with `sources.prepare_data` (`main.py --mode=prepare`):
     listing, the check that every file decodes, colour statistics, then the copy itself
     (decode, shorter side to `--size`, central square, JPEG `--quality`, written by tfds); the
     first part is timed again alone, as `load_data` without a copy does it;
  2. disk: the copy's TFRecord files against the original JPEG files;
  3. pixels: every training image of the copy as training decodes it (libjpeg's accurate DCT,
     `resized_copy.decoders(builder)`), and as tfds would by default (TensorFlow's fast DCT), against
     `base_image` of the original computed on the fly in float32 (what training does without a
     copy), in 0..255 levels: mean absolute difference, the largest, and PSNR;
  4. speed: the paper's training augmentation (`train_dataset`, batch 64) from the originals and
     from the copy, in images per CPU-second of this process (less sensitive than images/s to
     other processes on the machine).

Run from the repository root:

    python benchmarks/resized_copy.py [--num_images 300] [--size 256] [--quality 95] [--batches 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np
import tensorflow as tf

from alexnet_jax.data import batching, sources
from alexnet_jax.datasets import resized_copy
from benchmarks.input_pipeline import write_jpegs


def pixel_differences(copy_builder, root: Path, size: int, decoders) -> dict:
    """Mean |d|, max |d| and PSNR of the copy's training images against on-the-fly base_image."""
    total = squares = count = 0.0
    largest = 0.0
    dataset = copy_builder.as_dataset(split="train", shuffle_files=False, decoders=decoders)
    for example in dataset.as_numpy_iterator():
        original = tf.io.decode_image(
            tf.io.read_file(str(root / example["file_name"].decode())),
            channels=3,
            expand_animations=False,
        )
        reference = sources.base_image(original, size).numpy().astype(np.float64)
        difference = example["image"].astype(np.float64) - reference
        total += np.abs(difference).sum()
        squares += (difference**2).sum()
        count += difference.size
        largest = max(largest, float(np.abs(difference).max()))
    return {
        "mean_abs": total / count,
        "max_abs": largest,
        "psnr_db": 10 * np.log10(255.0**2 / (squares / count)),
    }


def augmentation_rate(data, config, batches: int, batch: int = 64) -> float:
    """Images per CPU-second of the paper's training augmentation, after one warm-up batch."""
    iterator = batching.train_dataset(data, config, batch).as_numpy_iterator()
    next(iterator)
    start = time.process_time()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--quality", type=int, default=95)
    parser.add_argument("--batches", type=int, default=4, help="timed batches of 64 per pipeline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="alexnet_resized_copy_") as temporary:
        root = Path(temporary) / "images"
        write_jpegs(root, args.num_images)
        config = sources.InputConfig(
            dataset="image_folder",
            folder_root=str(root),
            data_dir=str(Path(temporary) / "tfds"),
            resize_size=args.size,
            image_size=min(224, args.size),
            train_augment="paper",
            color_stats="imagenet",
            resized_copy=True,
            resized_copy_quality=args.quality,
        )
        start = time.perf_counter()
        data = sources.prepare_data(config)
        prepare_s = time.perf_counter() - start
        builder = data.train.builder
        images = len(data.train) + len(data.eval)
        copy_bytes = resized_copy.disk_bytes(builder)
        source_bytes = builder.info.metadata["source_bytes"]
        # Without a copy, load_data does the preparation's first part: listing, decode check,
        # colour statistics (color_stats='dataset').
        start = time.perf_counter()
        originals = sources.load_data(
            sources.InputConfig(**{**vars(config), "resized_copy": False, "color_stats": "dataset"})
        )
        checks_s = time.perf_counter() - start
        accurate = pixel_differences(builder, root, args.size, resized_copy.decoders(builder))
        fast = pixel_differences(builder, root, args.size, None)
        from_originals = augmentation_rate(originals, config, args.batches)
        from_copy = augmentation_rate(data, config, args.batches)

    print(
        f"{images} images ({args.num_images} train + {len(data.eval)} val), copy at {args.size}, "
        f"JPEG quality {args.quality}; {os.cpu_count()} CPU cores, tensorflow {tf.__version__}"
    )
    copy_s = prepare_s - checks_s
    print(
        f"prepare_data: {prepare_s:.1f} s, {1000 * prepare_s / images:.1f} s per 1000 images; "
        f"of it listing, decode check and colour statistics (load_data without a copy) "
        f"{checks_s:.1f} s, the copy itself {copy_s:.1f} s = {images / copy_s:.0f} images/s = "
        f"{1000 * copy_s / images:.1f} s per 1000 images"
    )
    print(
        f"disk: originals {source_bytes / 2**20:.2f} MiB ({source_bytes / images / 1024:.1f} KiB "
        f"per image), copy {copy_bytes / 2**20:.2f} MiB ({copy_bytes / images / 1024:.1f} KiB), "
        f"{copy_bytes / source_bytes:.1%} of the originals\n"
    )
    print("| decoder of the copy | mean abs | max abs | PSNR dB |")
    print("|---|---:|---:|---:|")
    for name, row in (("accurate DCT (training)", accurate), ("fast DCT (tfds default)", fast)):
        print(f"| {name} | {row['mean_abs']:.3f} | {row['max_abs']:.1f} | {row['psnr_db']:.2f} |")
    print(
        f"\npaper augmentation, images per CPU-second: originals {from_originals:.0f}, "
        f"copy {from_copy:.0f} ({from_copy / from_originals:.2f}x)"
    )


if __name__ == "__main__":
    main()
