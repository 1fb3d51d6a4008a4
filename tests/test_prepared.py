"""The resized copy (`resized_copy=True`, alexnet_jax/datasets/resized_copy.py): its images against
PIL, the training stream's exact resume from it, ImageNet's labels, and the errors that say what
to do."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from fake_data import write_fake_imagenet
from helpers import run_main
from PIL import Image

from alexnet_jax.data import batching, sources
from alexnet_jax.datasets import resized_copy
from benchmarks.input_pipeline import write_jpegs

SIZE = 256  # the paper's: the photos (333-500 px) shrink by 1.3-2x, where base_image does not antialias


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """8 training and 8 validation JPEGs of ImageNet sizes (crops of real photos, 2 classes)."""
    root = tmp_path_factory.mktemp("images")
    write_jpegs(root, 8)
    return root


def folder_config(root, data_dir, **overrides):
    values = dict(
        dataset="image_folder",
        folder_root=str(root),
        data_dir=str(data_dir),
        resize_size=SIZE,
        image_size=224,
        train_augment="paper",
        color_stats="dataset",
        resized_copy=True,
    )
    return sources.InputConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def prepared(folder, tmp_path_factory):
    """(config, Data) of the folder's copy at 256x256, JPEG quality 95."""
    config = folder_config(folder, tmp_path_factory.mktemp("tfds"))
    return config, sources.prepare_data(config)


def copy_images(source: sources.TfdsSource) -> dict[str, tuple[np.ndarray, int]]:
    """file name -> (image, label) of a split of a copy, decoded as training decodes it."""
    dataset = source.builder.as_dataset(split=source.split, decoders=source.decoders)
    return {
        ex["file_name"].decode(): (ex["image"], int(ex["label"])) for ex in tfds.as_numpy(dataset)
    }


def pil_reference(path, size: int, centred: bool = True) -> np.ndarray:
    """Shorter side to `size` (PIL bilinear, which antialiases), then the central (or top-left)
    size x size crop: float64 (size, size, 3)."""
    with Image.open(path) as file:
        image = file.convert("RGB")
    scale = size / min(image.size)
    width, height = (max(size, round(side * scale)) for side in image.size)
    image = image.resize((width, height), Image.BILINEAR)
    left, top = ((width - size) // 2, (height - size) // 2) if centred else (0, 0)
    return np.asarray(image.crop((left, top, left + size, top + size)), np.float64)


def test_copy_holds_every_image_resized_and_centre_cropped(folder, prepared):
    config, data = prepared
    assert data.class_names == ("china", "flower") and data.num_classes == 2
    assert (len(data.train), len(data.eval)) == (8, 8)
    differences = []
    for source in (data.train, data.eval):
        images = copy_images(source)
        assert len(images) == len(source)
        for name, (image, label) in images.items():
            assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
            assert data.class_names[label] == name.split("/")[1]  # split/class/file
            difference = np.abs(image - pil_reference(folder / name, SIZE)).mean()
            differences.append(difference)
            # Measured: 2.1-6.8 levels per image, 3.2 over all 16: PIL antialiases these 1.3-2x
            # shrinks, base_image does not, and JPEG quality 95 adds 1.8 (docs/performance.md).
            assert difference < 8, (name, difference)
            with Image.open(folder / name) as file:
                square = file.width == file.height
            if not square:  # the control: a crop of the wrong place is far off (measured 22-58)
                corner = np.abs(image - pil_reference(folder / name, SIZE, centred=False)).mean()
                assert corner > 15, (name, corner)
    assert np.mean(differences) < 4.5


def test_copy_keeps_the_folders_colour_statistics_and_drops_the_resize(prepared):
    config, data = prepared
    originals = sources.load_data(sources.InputConfig(**{**vars(config), "resized_copy": False}))
    assert data.color_stats == originals.color_stats  # the same 2,000 (here: 8) images, exactly
    # The stored image is a JPEG of the copy's size: training only decodes and crops it.
    info = data.train.builder.info
    assert info.features["image"].shape == (SIZE, SIZE, 3)
    assert info.features["image"].encoding_format == "jpeg"
    assert info.metadata["quality"] == 95


def test_training_stream_from_the_copy_resumes_exactly(prepared):
    config, data = prepared
    full = list(batching.train_dataset(data, config, 4).take(6).as_numpy_iterator())
    # 2 steps per epoch: the resumed stream starts inside epoch 1 and crosses into epoch 2
    resumed = list(
        batching.train_dataset(data, config, 4, start_step=3).take(3).as_numpy_iterator()
    )
    for a, b in zip(full[3:], resumed, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    assert not np.array_equal(full[3]["image"], full[4]["image"])  # the control
    dataset, num_batches = batching.eval_dataset(data, config, 3)
    masks = [batch["mask"] for batch in dataset.as_numpy_iterator()]
    assert num_batches == len(masks) == 3 and np.concatenate(masks).sum() == 8


def test_imagenet_copy_keeps_the_labels_and_class_names(tmp_path):
    write_fake_imagenet(tmp_path / "manual")
    config = sources.InputConfig(
        dataset="imagenet2012",
        data_dir=str(tmp_path / "tfds"),
        manual_dir=str(tmp_path / "manual"),
        resize_size=64,
        image_size=56,
        resized_copy=True,
    )
    data = sources.prepare_data(config)
    original = tfds.builder("imagenet2012", data_dir=str(tmp_path / "tfds"))
    assert data.class_names == tuple(original.info.features["label"].names)
    for split, source in (("train", data.train), ("validation", data.eval)):
        assert source.split == split
        images = copy_images(source)
        for ex in tfds.as_numpy(original.as_dataset(split=split)):
            image, label = images.pop(ex["file_name"].decode())
            assert label == ex["label"]
            reference = sources.base_image(ex["image"], 64).numpy()
            # JPEG quality 95 at 64x64 (more detail per pixel than at 256): measured 3.0-3.8
            assert np.abs(image - reference).mean() < 5
        assert not images  # nothing else in the copy
    assert [len(data.train), len(data.eval)] == [8, 4]


@pytest.mark.parametrize("dataset", ["digits", "cifar10", "synthetic"])
def test_datasets_not_read_from_image_files_refuse_a_copy(dataset):
    with pytest.raises(sources.DataError, match="resized_copy=True is for the datasets read from"):
        sources.InputConfig(dataset=dataset, resized_copy=True).validated()


def test_other_settings_a_copy_cannot_serve_are_refused(folder, tmp_path):
    with pytest.raises(sources.DataError, match="train_augment='inception' crops the whole"):
        folder_config(folder, tmp_path, train_augment="inception").validated()
    with pytest.raises(sources.DataError, match="resized_copy_quality=0 is not a JPEG quality"):
        folder_config(folder, tmp_path, resized_copy_quality=0).validated()


def test_training_without_a_copy_says_to_prepare_it(folder, tmp_path):
    for config in (
        folder_config(folder, tmp_path),
        sources.InputConfig(dataset="imagenet2012", data_dir=str(tmp_path), resized_copy=True),
    ):
        with pytest.raises(sources.DataError) as error:
            sources.load_data(config)
        message = str(error.value)
        assert "no resized copy of" in message and "\n" not in message
        assert "--mode=prepare" in message and "--config.resized_copy=False" in message


def test_a_copy_of_another_size_is_named(folder, prepared):
    config, _ = prepared
    with pytest.raises(sources.DataError) as error:
        sources.load_data(sources.InputConfig(**{**vars(config), "resize_size": 240}))
    message = str(error.value)
    assert "at resize_size=240" in message
    assert "Copies made at other settings: resize_size=256 JPEG quality 95" in message


def test_a_changed_folder_is_refused_then_rebuilt(folder, tmp_path):
    root = tmp_path / "images"
    shutil.copytree(folder, root)
    config = folder_config(root, tmp_path / "tfds", resize_size=32, image_size=32)
    sources.prepare_data(config)
    # Another folder with the same files (or this one at another path) gets its own copy.
    other = folder_config(folder, tmp_path / "tfds", resize_size=32, image_size=32)
    with pytest.raises(sources.DataError, match="no resized copy of the image folder"):
        sources.load_data(other)

    shutil.copy(root / "train" / "china" / "000000.jpg", root / "train" / "china" / "extra.jpg")
    with pytest.raises(sources.DataError) as error:
        sources.load_data(config)
    assert "is out of date" in str(error.value)
    assert "9 and 8 now" in str(error.value) and "--mode=prepare" in str(error.value)
    assert len(sources.prepare_data(config).train) == 9  # rebuilt
    assert len(sources.load_data(config).train) == 9


def test_a_copy_made_skipping_unreadable_files_names_them(folder, tmp_path):
    root = tmp_path / "images"
    shutil.copytree(folder, root)
    (root / "train" / "china" / "broken.jpg").write_bytes(b"not a JPEG")
    config = folder_config(
        root, tmp_path / "tfds", resize_size=32, image_size=32, on_corrupt_image="skip"
    )
    data = sources.prepare_data(config)
    assert len(data.train) == 8 and data.skipped_files == (str(root / "train/china/broken.jpg"),)
    # The copy left the file out: reading it as if every file had to be readable says so.
    strict = sources.InputConfig(**{**vars(config), "on_corrupt_image": "error"})
    with pytest.raises(sources.DataError, match="1 file.* cannot be read as images:\n  .*broken"):
        sources.load_data(strict)


def test_an_interrupted_preparation_leaves_no_copy(folder, tmp_path, monkeypatch):
    config = folder_config(folder, tmp_path, resize_size=32, image_size=32)
    generate = resized_copy.ResizedCopy._generate_examples

    class Interrupted(Exception):
        pass

    def interrupted(self, split):
        for count, example in enumerate(generate(self, split)):
            if count == 3:
                raise Interrupted  # half way through the first split
            yield example

    monkeypatch.setattr(resized_copy.ResizedCopy, "_generate_examples", interrupted)
    with pytest.raises(Interrupted):
        sources.prepare_data(config)
    copies = tmp_path / resized_copy.NAME
    (name,) = os.listdir(copies)
    assert os.listdir(copies / name) == []  # no version folder, no incomplete.* left
    with pytest.raises(sources.DataError, match="--mode=prepare"):
        sources.load_data(config)

    # A killed process leaves tfds's incomplete.* folder; the next preparation deletes it.
    (copies / name / "incomplete.ABC123_1.0.0").mkdir()
    monkeypatch.setattr(resized_copy.ResizedCopy, "_generate_examples", generate)
    assert len(sources.prepare_data(config).train) == 8
    assert os.listdir(copies / name) == [resized_copy.VERSION]


@pytest.mark.slow
def test_main_prepares_the_copy_with_progress_lines(folder, tmp_path):
    prepared = run_main(
        "--config=configs/smoke.py",
        "--config.dataset=image_folder",
        f"--config.folder_root={folder}",
        f"--config.data_dir={tmp_path}",
        "--config.resized_copy=True",
        "--mode=prepare",
    )
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    assert "train: 8 images in" in prepared.stderr and "images/s" in prepared.stderr
    assert "image_folder is ready: 8 training and 8 evaluation examples" in prepared.stderr
    (name,) = os.listdir(tmp_path / resized_copy.NAME)  # the smoke config's 32x32, quality 95
    assert name.endswith("_32_q95") and resized_copy.open_copy(str(tmp_path), name) is not None


def test_a_raw_copy_holds_base_image_uint8_exactly_and_is_found_by_format(folder, tmp_path):
    data_dir = tmp_path / "tfds"
    jpeg = folder_config(folder, data_dir)
    raw = folder_config(folder, data_dir, resized_copy_format="raw")
    with pytest.raises(sources.DataError, match="no resized copy .* raw pixels"):
        sources.load_data(raw)
    sources.prepare_data(jpeg)
    with pytest.raises(sources.DataError, match="other settings: resize_size=256 JPEG quality 95"):
        sources.load_data(raw)
    data = sources.prepare_data(raw)
    info = data.train.builder.info
    assert os.path.basename(os.path.dirname(data.train.builder.data_dir)).endswith("_256_raw")
    assert info.metadata["format"] == "raw" and info.metadata["quality"] is None
    assert data.train.decoders is None
    originals = sources.load_data(sources.InputConfig(**{**vars(raw), "resized_copy": False}))
    assert data.color_stats == originals.color_stats
    for source in (data.train, data.eval):
        for name, (image, _) in copy_images(source).items():
            # decoded as the folder's pipeline decodes it (PIL's libjpeg settings differ by a level)
            photo = tf.io.decode_jpeg(tf.io.read_file(str(folder / name)), channels=3).numpy()
            # numpy: the central square of the shorter side, bilinear to 256 as base_image does
            # (its float result checked against PIL above), rounded: the copy adds nothing to it
            side = min(photo.shape[:2])
            top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
            square = photo[top : top + side, left : left + side]
            reference = sources.base_image(square, SIZE).numpy()
            np.testing.assert_array_equal(image, np.round(np.clip(reference, 0, 255)))
    # Its disk: 3 bytes a pixel and a little framing, against the JPEG copy's few KiB an image
    assert resized_copy.disk_bytes(data.train.builder) > len(data.train) * SIZE * SIZE * 3
    with pytest.raises(sources.DataError, match="Unknown resized_copy_format 'png'"):
        folder_config(folder, tmp_path, resized_copy_format="png").validated()
