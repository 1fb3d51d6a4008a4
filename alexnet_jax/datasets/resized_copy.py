"""`resized_copy`: a dataset's images stored once at the size training crops them from.

The paper "down-sampled the images to a fixed resolution of 256 x 256": shorter side to 256, the
central 256 x 256 crop. A resized copy holds every image of a dataset after that step, stored as
a JPEG (so that training decodes a small JPEG and crops it, with no resize) or as its raw pixels
(so that training only crops: four to seven times the disk, no decoding at all). It is a tfds
dataset like any other (TFRecord files, `builder_from_directory` reads it without this code),
under `<data_dir>/resized_copy/<name>/1.0.0/`, where `<name>` says what was copied, the size and
the JPEG quality or `raw`, e.g. `imagenet2012_256_q95`, `imagenet2012_256_raw`.

- Features: `image` uint8 (size, size, 3), a JPEG (`tfds.features.Image`) or raw bytes
  (`tfds.features.Tensor`, encoding BYTES), `label` (the source's class names), `file_name`
  (the source's own name of the image: tfds's `file_name`, or the path in an image folder).
- Encoding: `tf.io.encode_jpeg(quality=...)` with its default 4:2:0 chroma subsampling, in
  parallel (tf.data); tfds's `Image(encoding_format="jpeg")` would encode at TensorFlow's default
  quality (95), one image at a time, so the feature stores the bytes made here.
- Decoding: `decoders(builder)` reads a JPEG copy's images with libjpeg's accurate integer DCT
  (at 256 x 256 as fast as TensorFlow's default, the fast one, and half a grey level closer to
  the source: docs/performance.md); a raw copy's bytes are its pixels.
- Writing: tfds writes into `incomplete.XXXXXX_1.0.0/` beside the version folder and renames it
  at the end; an exception removes it, so an interrupted preparation leaves no copy that reads as
  prepared. A killed process leaves that folder behind; `write` deletes it the next time.
- `metadata.json` (`info.metadata`): what the source was, and what the data layer keeps there
  (the folder's fingerprint, colour statistics, skipped files).

What goes in (the source's images already resized) comes from `alexnet_jax.data.sources`, which
knows the datasets; this module only writes, finds and reads copies.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

NAME = "resized_copy"
VERSION = "1.0.0"
INCOMPLETE_PREFIX = "incomplete."  # tfds's temporary folders (tfds.core.constants)
PROGRESS_SECONDS = 30.0  # between progress lines while a copy is written


@dataclasses.dataclass(frozen=True)
class CopyPlan:
    """What a copy holds and where its examples come from.

    `examples(split)`: a tf.data.Dataset of {"image": uint8 (size, size, 3), "label": int,
    "file_name": string} for each split in `split_sizes` (split name -> number of examples);
    file names are unique within a split (they are the examples' keys).
    """

    name: str  # the copy's folder: <source>_<size>_q<quality> or <source>_<size>_raw
    size: int
    quality: int | None  # JPEG quality; None: raw pixels
    class_names: tuple[str, ...]
    split_sizes: Mapping[str, int]
    examples: Callable[[str], tf.data.Dataset]
    metadata: Mapping  # JSON values, kept in the copy's metadata.json
    description: str


def copy_name(source: str, size: int, quality: int | None) -> str:
    """The folder name of a copy: `imagenet2012_256_q95`, or `imagenet2012_256_raw` for raw pixels
    (quality None)."""
    return f"{source}_{size}_" + ("raw" if quality is None else f"q{quality}")


def describe(quality: int | None) -> str:
    """How a copy stores its images, in words: `JPEG quality 95`, `raw pixels`."""
    return "raw pixels" if quality is None else f"JPEG quality {quality}"


def copy_dir(data_dir: str, name: str) -> str:
    """`<data_dir>/resized_copy/<name>/1.0.0`: where the copy called `name` lives."""
    return os.path.join(data_dir, NAME, name, VERSION)


class ResizedCopy(tfds.core.GeneratorBasedBuilder):
    """Writes the images of a `CopyPlan` as `size` x `size` JPEGs or raw pixels (reading needs no
    plan)."""

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {str(VERSION): "First release: shorter side to size, central square, JPEG."}

    def __init__(self, *, plan: CopyPlan, data_dir: str):
        self._plan = plan
        config = tfds.core.BuilderConfig(
            name=plan.name,
            version=VERSION,
            release_notes=self.RELEASE_NOTES,
            description=plan.description,
        )
        # tfds warns of every config not listed in the class; each copy is one of those.
        logger = logging.get_absl_logger()
        logger.addFilter(_not_custom_config_warning)
        try:
            super().__init__(data_dir=data_dir, config=config)
        finally:
            logger.removeFilter(_not_custom_config_warning)

    def _info(self) -> tfds.core.DatasetInfo:
        shape = (self._plan.size, self._plan.size, 3)
        if self._plan.quality is None:
            image = tfds.features.Tensor(
                shape=shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
            )
        else:
            image = tfds.features.Image(shape=shape, encoding_format="jpeg")
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": image,
                    "label": tfds.features.ClassLabel(names=list(self._plan.class_names)),
                    "file_name": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "label"),
            metadata=tfds.core.MetadataDict(self._plan.metadata),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the plan's examples are on this machine
        return {split: self._generate_examples(split) for split in self._plan.split_sizes}

    def _generate_examples(self, split):
        plan = self._plan

        def encode(example):
            jpeg = tf.io.encode_jpeg(example["image"], quality=plan.quality)
            return {**example, "image": jpeg}

        encoded = plan.examples(split)
        if plan.quality is not None:
            encoded = encoded.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        progress = _Progress(f"{plan.name} {split}", plan.split_sizes[split])
        for example in encoded.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
            file_name = example["file_name"].decode()
            yield (
                file_name,
                {"image": example["image"], "label": example["label"], "file_name": file_name},
            )
            progress.advance()
        progress.finish()


def _not_custom_config_warning(record) -> bool:
    return not record.getMessage().startswith("Using custom data configuration")


class _Progress:
    """Log lines while a split is written: images done, rate, time left."""

    def __init__(self, what: str, total: int):
        self.what, self.total, self.done = what, total, 0
        self.start = self.last = time.perf_counter()

    def advance(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            rate = self.done / (now - self.start)
            left = (self.total - self.done) / rate
            logging.info(
                "resized copy %s: %d of %d images (%.1f%%), %.0f images/s, %.0f min left",
                self.what,
                self.done,
                self.total,
                100 * self.done / max(self.total, 1),
                rate,
                left / 60,
            )

    def finish(self) -> None:
        seconds = time.perf_counter() - self.start
        logging.info(
            "resized copy %s: %d images in %.1f s, %.0f images/s",
            self.what,
            self.done,
            seconds,
            self.done / max(seconds, 1e-9),
        )


def write(plan: CopyPlan, data_dir: str) -> tfds.core.DatasetBuilder:
    """Writes the copy of `plan` under `data_dir` (none of that name may exist) and opens it.

    First deletes what killed preparations of this copy left behind (tfds's `incomplete.*`
    folders beside the version folder).
    """
    parent = os.path.dirname(copy_dir(data_dir, plan.name))
    if os.path.isdir(parent):
        for entry in os.listdir(parent):
            if entry.startswith(INCOMPLETE_PREFIX):
                logging.info("deleting %s, left by an interrupted preparation", entry)
                shutil.rmtree(os.path.join(parent, entry))
    builder = ResizedCopy(plan=plan, data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return open_copy(data_dir, plan.name)


def open_copy(data_dir: str, name: str) -> tfds.core.DatasetBuilder | None:
    """The prepared copy called `name` under `data_dir`, read without this code; None if none."""
    directory = copy_dir(data_dir, name)
    if not os.path.isfile(os.path.join(directory, "dataset_info.json")):
        return None  # (tfds's check below warns of a folder without it)
    if not tfds.core.utils.file_utils.is_valid_variant_dir(tfds.core.Path(directory)):
        return None
    return tfds.builder_from_directory(directory)


def copies_of(data_dir: str, source: str) -> list[tuple[int, int | None]]:
    """(size, JPEG quality or None for raw pixels) of every prepared copy of `source` under
    `data_dir`, sorted (raw after the JPEGs of a size)."""
    root = os.path.join(data_dir, NAME)
    pattern = re.compile(re.escape(source) + r"_(\d+)_(?:q(\d+)|raw)")
    found = []
    for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        match = pattern.fullmatch(entry)
        if match and open_copy(data_dir, entry) is not None:
            found.append((int(match[1]), None if match[2] is None else int(match[2])))
    return sorted(found, key=lambda found: (found[0], found[1] is None, found[1] or 0))


def disk_bytes(builder: tfds.core.DatasetBuilder) -> int:
    """Bytes of the TFRecord files of every split of a prepared dataset."""
    return sum(
        os.path.getsize(os.fspath(path))
        for split in builder.info.splits.values()
        for path in split.filepaths
    )


@tfds.decode.make_decoder()
def _accurate_jpeg(serialized: tf.Tensor, feature) -> tf.Tensor:
    image = tf.io.decode_jpeg(serialized, channels=3, dct_method="INTEGER_ACCURATE")
    image.set_shape(feature.shape)
    return image


def decoders(builder: tfds.core.DatasetBuilder) -> dict | None:
    """tfds `decoders` for a copy: its JPEGs read with libjpeg's accurate integer DCT (None for
    raw pixels, which tfds reads as they are)."""
    if isinstance(builder.info.features["image"], tfds.features.Image):
        return {"image": _accurate_jpeg()}
    return None
