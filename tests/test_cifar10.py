"""CIFAR-10 from the official binary archive, built here in its format, against numpy's decoding."""

import gzip
import io
import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from alexnet_jax import input_pipeline as ip

NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BATCH_SIZES = {
    "data_batch_1.bin": 3,
    "data_batch_2.bin": 1,
    "data_batch_3.bin": 2,
    "data_batch_4.bin": 4,
    "data_batch_5.bin": 2,
    "test_batch.bin": 3,
}
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"


def examples():
    """Per batch file: (N, 32, 32, 3) uint8 images (HWC) and (N,) labels, different in every file."""
    rng = np.random.default_rng(0)
    return {
        name: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n))
        for name, n in BATCH_SIZES.items()
    }


def records(images, labels) -> bytes:
    """The official layout: per image 1 label byte, then the R, G and B planes, each row by row."""
    return b"".join(
        bytes([label]) + image.transpose(2, 0, 1).tobytes() for image, label in zip(images, labels)
    )


def tar_gz(files: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, payload in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def archive_files(batches):
    files = {
        "batches.meta.txt": ("\n".join(NAMES) + "\n\n").encode(),
        "readme.html": b"<html></html>",
    }
    files.update({name: records(*arrays) for name, arrays in batches.items()})
    return files


def write_archive(folder, files=None, name="cifar-10-binary.tar.gz"):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "wb") as out:
        out.write(tar_gz(archive_files(examples()) if files is None else files))
    return path


def expected(batches, files):
    return np.concatenate([batches[f][0] for f in files]), np.concatenate(
        [batches[f][1] for f in files]
    )


def cifar_config(tmp_path, **overrides):
    defaults = {
        "dataset": "cifar10",
        "data_dir": str(tmp_path / "tfds"),
        "manual_dir": str(tmp_path / "manual"),
        "image_size": 32,
        "resize_size": 32,
        "train_augment": "pad_crop",
        "color_stats": "dataset",
    }
    return ip.InputConfig(**{**defaults, **overrides})


def test_the_archive_loads_in_its_order_with_its_class_names(tmp_path):
    write_archive(tmp_path / "manual")
    data = ip.load_data(cifar_config(tmp_path))
    batches = examples()
    train_images, train_labels = expected(batches, TRAIN_FILES)  # batches 1..5, one after the other
    np.testing.assert_array_equal(data.train.images, train_images)
    np.testing.assert_array_equal(data.train.labels, train_labels)
    np.testing.assert_array_equal(data.eval.images, batches["test_batch.bin"][0])
    np.testing.assert_array_equal(data.eval.labels, batches["test_batch.bin"][1])
    assert data.class_names == NAMES and data.num_classes == 10
    assert data.train.images.dtype == np.uint8 and data.train.labels.dtype == np.int32
    # one pixel read straight from the bytes: the green value of row 5, column 7 of the first image
    raw = archive_files(batches)["data_batch_1.bin"]
    assert data.train.images[0, 5, 7, 1] == raw[1 + 1024 + 5 * 32 + 7]
    assert not (tmp_path / "tfds" / "downloads").exists()


def test_a_larger_resize_size_resizes_once_bilinearly(tmp_path):
    write_archive(tmp_path / "manual")
    data = ip.load_data(cifar_config(tmp_path, image_size=56, resize_size=64))
    images, _ = expected(examples(), TRAIN_FILES)
    reference = tf.image.resize(images.astype(np.float32), (64, 64), method="bilinear").numpy()
    np.testing.assert_array_equal(
        data.train.images, np.round(np.clip(reference, 0, 255)).astype(np.uint8)
    )


def test_split_specs_slice_the_archive_order(tmp_path):
    write_archive(tmp_path / "manual")
    data = ip.load_data(
        cifar_config(tmp_path, train_split="train[2:6]", eval_split="train[:2]+test")
    )
    train_images, train_labels = expected(examples(), TRAIN_FILES)
    np.testing.assert_array_equal(data.train.images, train_images[2:6])
    np.testing.assert_array_equal(
        data.eval.labels, np.concatenate([train_labels[:2], examples()["test_batch.bin"][1]])
    )
    with pytest.raises(ip.DataError, match="CIFAR-10 split 'validation'"):
        ip.load_data(cifar_config(tmp_path, eval_split="validation"))


def test_a_missing_archive_says_where_to_put_it_and_downloads_nothing(tmp_path):
    # conftest makes any tfds download raise a RuntimeError: a DataError here means none was tried
    with pytest.raises(ip.DataError) as error:
        ip.load_data(cifar_config(tmp_path))
    message = str(error.value)
    for needed in (
        URL,
        str(tmp_path / "manual"),
        str(tmp_path / "tfds"),
        "--config.manual_dir",
        "never downloaded",
    ):
        assert needed in message
    assert "\n" not in message
    assert not (tmp_path / "tfds" / "downloads").exists()


def test_the_default_folder_is_data_dir_downloads_manual(tmp_path):
    write_archive(tmp_path / "tfds" / "downloads" / "manual")
    data = ip.load_data(cifar_config(tmp_path, manual_dir=""))
    assert len(data.train) == 12 and len(data.eval) == 3


def test_the_python_archive_is_refused(tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "cifar-10-python.tar.gz").write_bytes(b"pickles")
    with pytest.raises(
        ip.DataError, match="cifar-10-python.tar.gz is the Python version.*pickles.*" + URL
    ):
        ip.load_data(cifar_config(tmp_path))


def corrupt_archives():
    good = archive_files(examples())
    whole = tar_gz(good)
    short_record = {**good, "data_batch_3.bin": good["data_batch_3.bin"][:-1]}
    bad_label = {**good, "test_batch.bin": bytes([10]) + good["test_batch.bin"][1:]}
    no_test = {name: payload for name, payload in good.items() if name != "test_batch.bin"}
    nine_names = {**good, "batches.meta.txt": "\n".join(NAMES[:9]).encode()}
    return {
        "not a tar": (b"<html>404 Not Found</html>" * 100, "cannot be read as a tar.gz archive"),
        "not a tar inside the gzip": (
            gzip.compress(b"x" * 5000),
            "cannot be read as a tar.gz archive",
        ),
        "cut short": (whole[: len(whole) // 2], "cannot be read as a tar.gz archive"),
        "a record cut short": (
            tar_gz(short_record),
            "data_batch_3.bin has 6145 bytes, not a whole number of 3073",
        ),
        "a label out of range": (tar_gz(bad_label), "test_batch.bin has label 10"),
        "a batch missing": (tar_gz(no_test), "has no cifar-10-batches-bin/test_batch.bin"),
        "nine class names": (tar_gz(nine_names), "lists 9 class names"),
    }


@pytest.mark.parametrize("case", list(corrupt_archives()))
def test_a_bad_archive_is_a_data_error_naming_it(tmp_path, case):
    payload, reason = corrupt_archives()[case]
    (tmp_path / "manual").mkdir()
    path = tmp_path / "manual" / "cifar-10-binary.tar.gz"
    path.write_bytes(payload)
    with pytest.raises(ip.DataError) as error:
        ip.load_data(cifar_config(tmp_path))
    assert str(path) in str(error.value) and reason in str(error.value) and URL in str(error.value)


def test_a_tfds_prepared_cifar10_is_used_in_the_archive_order(tmp_path, monkeypatch):
    """tfds's own builder, fed the same archive, as the reference; its stored order is shuffled."""
    extracted = tmp_path / "extracted"
    with tarfile.open(write_archive(tmp_path / "elsewhere")) as archive:
        archive.extractall(extracted, filter="data")
    monkeypatch.setattr(
        tfds.download.DownloadManager, "download_and_extract", lambda self, url: str(extracted)
    )
    builder = tfds.builder("cifar10", data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )

    data = ip.load_data(cifar_config(tmp_path))  # no archive in manual_dir: the prepared dataset
    train_images, train_labels = expected(examples(), TRAIN_FILES)
    np.testing.assert_array_equal(data.train.images, train_images)
    np.testing.assert_array_equal(data.train.labels, train_labels)
    np.testing.assert_array_equal(data.eval.images, examples()["test_batch.bin"][0])
    assert data.class_names == NAMES
    stored = np.concatenate(
        [b["image"] for b in tfds.as_numpy(builder.as_dataset(split="train").batch(100))]
    )
    assert not np.array_equal(stored, train_images)  # the sort by id is what restores the order
