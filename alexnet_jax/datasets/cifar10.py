"""CIFAR-10 in memory, from the official binary archive or a prepared tfds `cifar10`; no download.

The archive is https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (170 MB),
which the user fetches once and puts in a folder (see `find_archive`). Inside it,
`cifar-10-batches-bin/` holds data_batch_1.bin .. data_batch_5.bin (train) and
test_batch.bin (test): records of 1 label byte (0..9) and 3,072 pixel bytes, the
1,024 red, then the 1,024 green, then the 1,024 blue values of a 32x32 image, row
by row (10,000 records a file; the count is taken from the file size). The class
names are the lines of `batches.meta.txt`.

The Python version of the archive (cifar-10-python.tar.gz) is refused: its
batches are pickles, and unpickling a file can run any code in it.

Both sources give the examples in the archive's order: 'train' = data_batch_1
to data_batch_5 in turn, 'test' = test_batch. (tfds stores them shuffled; their
ids, train_00000.., number them in the archive's order, so they are sorted back.)
"""

from __future__ import annotations

import dataclasses
import os
import tarfile
import zlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

ARCHIVE = "cifar-10-binary.tar.gz"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
PYTHON_ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
NAMES_FILE = "batches.meta.txt"
NUM_CLASSES = 10
SIDE = 32
RECORD_BYTES = 1 + 3 * SIDE * SIDE


class Cifar10Error(Exception):
    """CIFAR-10 is missing or damaged, or a split spec is wrong; the message says how to fix it."""


def _fetch_again(path: str) -> str:
    return f"download {URL} again and replace {path} with it."


@dataclasses.dataclass(frozen=True)
class Cifar10:
    """The two splits in the archive's order; `as_dataset` reads them like a tfds builder's."""

    # 'train' and 'test' -> (N, 32, 32, 3) uint8 images, (N,) int64 labels
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    class_names: tuple[str, ...]

    @classmethod
    def from_archive(cls, path: str) -> Cifar10:
        """Decodes the official binary archive at `path`; Cifar10Error naming it if unusable."""
        members = _read_members(path)
        lines = members[NAMES_FILE].decode("ascii", "replace").splitlines()
        names = tuple(line.strip() for line in lines if line.strip())
        if len(names) != NUM_CLASSES:
            raise Cifar10Error(
                f"{path}: {FOLDER}/{NAMES_FILE} lists {len(names)} class names, "
                f"not {NUM_CLASSES}; " + _fetch_again(path)
            )
        train = [_decode_batch(path, name, members[name]) for name in TRAIN_FILES]
        splits = {
            "train": tuple(np.concatenate(arrays) for arrays in zip(*train)),
            "test": _decode_batch(path, TEST_FILE, members[TEST_FILE]),
        }
        return cls(splits, names)

    @classmethod
    def from_tfds(cls, builder) -> Cifar10:
        """Reads a prepared tfds `cifar10`, each split sorted back into the archive's order."""
        splits = {}
        for split in ("train", "test"):
            dataset = builder.as_dataset(split=split, shuffle_files=False).batch(10_000)
            batches = list(tfds.as_numpy(dataset))
            order = np.argsort(np.concatenate([batch["id"] for batch in batches]), kind="stable")
            images = np.concatenate([batch["image"] for batch in batches])[order]
            labels = np.concatenate([batch["label"] for batch in batches])[order]
            splits[split] = (images, labels.astype(np.int64))
        return cls(splits, tuple(builder.info.features["label"].names))

    def as_dataset(self, split: str, shuffle_files: bool = False) -> tf.data.Dataset:
        """`{'image': (32, 32, 3) uint8, 'label': int64}` examples of a tfds split spec ('train',
        'train[:45000]', 'test', 'train+test', ...), sliced in the archive's order."""
        del shuffle_files  # in memory, in one order
        infos = {
            name: tfds.core.SplitInfo(name=name, shard_lengths=[len(labels)], num_bytes=0)
            for name, (_, labels) in self.splits.items()
        }
        try:
            parts = tfds.core.ReadInstruction.from_spec(split).to_absolute(infos)
        except ValueError as error:
            raise Cifar10Error(f"CIFAR-10 split {split!r}: {error}") from None
        images, labels = (
            np.concatenate([self.splits[part.splitname][k][part.from_ : part.to] for part in parts])
            for k in (0, 1)
        )
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})


def find_archive(manual_dir: str, prepared_dir: str) -> str:
    """The path of the binary archive in `manual_dir`, or Cifar10Error saying where to put it.

    `prepared_dir` is where a prepared tfds `cifar10` was looked for first (the message names it).
    """
    path = os.path.join(manual_dir, ARCHIVE)
    if os.path.isfile(path):
        return path
    where = (
        f"download {URL} (170 MB) on any machine with internet and put it in {manual_dir}, "
        "or point to the folder that holds it with --config.manual_dir=/path/to/folder"
    )
    python_archive = os.path.join(manual_dir, PYTHON_ARCHIVE)
    if os.path.isfile(python_archive):
        raise Cifar10Error(
            f"{python_archive} is the Python version of CIFAR-10, which is not read here "
            f"(its batches are pickles, and unpickling can run code); {where}."
        )
    raise Cifar10Error(
        f"CIFAR-10 is not here and is never downloaded: no prepared tfds cifar10 in "
        f"{prepared_dir} and no {path}; {where}."
    )


def _read_members(path: str) -> dict[str, bytes]:
    """The batch files and class names of the archive by file name, in one pass, not extracted."""
    wanted = {f"{FOLDER}/{name}": name for name in (*TRAIN_FILES, TEST_FILE, NAMES_FILE)}
    members = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                name = wanted.get(member.name.removeprefix("./"))
                if name and member.isfile():
                    members[name] = archive.extractfile(member).read()
                    if len(members) == len(wanted):
                        break
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise Cifar10Error(
            f"{path} cannot be read as a tar.gz archive ({error}): it is damaged, cut short "
            f"or not {ARCHIVE}; " + _fetch_again(path)
        ) from None
    missing = [f"{FOLDER}/{name}" for name in wanted.values() if name not in members]
    if missing:
        raise Cifar10Error(
            f"{path} is not CIFAR-10's binary archive: it has no {', '.join(missing)}; "
            + _fetch_again(path)
        )
    return members


def _decode_batch(path: str, name: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: (N, 32, 32, 3) uint8 images and (N,) int64 labels, N from the file size."""
    if not data or len(data) % RECORD_BYTES:
        raise Cifar10Error(
            f"{path}: {FOLDER}/{name} has {len(data)} bytes, not a whole number of "
            f"{RECORD_BYTES}-byte records (1 label byte, 32x32x3 pixel bytes); "
            + _fetch_again(path)
        )
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= NUM_CLASSES:
        raise Cifar10Error(
            f"{path}: {FOLDER}/{name} has label {labels.max()}, CIFAR-10's are "
            f"0..{NUM_CLASSES - 1}; " + _fetch_again(path)
        )
    images = records[:, 1:].reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)  # planes -> HWC
    return np.ascontiguousarray(images), labels
