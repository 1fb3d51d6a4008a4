"""Input pipelines: datasets end to end, augmentation geometry and PCA lighting against numpy."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from fake_data import SYNSETS, jpeg_bytes, photos, write_fake_imagenet

from alexnet_jax import input_pipeline as ip
from alexnet_jax import pixels, sharding
from alexnet_jax.sharding import BatchRows

DIGITS = dict(
    dataset="digits", image_size=32, resize_size=32, train_augment="pad_crop", color_stats="dataset"
)


@pytest.fixture(scope="module")
def digits(tfds_data_dir):
    config = ip.InputConfig(data_dir=tfds_data_dir, **DIGITS)
    return config, ip.load_data(config)


def batches(dataset, count=None):
    iterator = dataset.as_numpy_iterator()
    return [next(iterator) for _ in range(count)] if count else list(iterator)


# --------------------------------------------------------------------------- digits


def test_digits_batches(digits):
    config, data = digits
    assert (len(data.train), len(data.eval), data.num_classes) == (1437, 360, 10)
    batch = batches(ip.train_dataset(data, config, 64), 1)[0]
    assert batch["image"].shape == (64, 32, 32, 3) and batch["image"].dtype == np.float32
    assert batch["label"].dtype == np.int32 and batch["mask"].all()
    assert set(batch["label"]) <= set(range(10))
    # normalized with the training set's own statistics
    assert abs(batch["image"].mean()) < 0.3 and 0.6 < batch["image"].std() < 1.4


def test_same_seed_same_batches_and_resume(digits):
    config, data = digits
    full = batches(ip.train_dataset(data, config, 100), 20)
    again = batches(ip.train_dataset(data, config, 100), 20)
    resumed = batches(ip.train_dataset(data, config, 100, start_step=13), 7)
    for a, b in zip(full, again):
        np.testing.assert_array_equal(a["image"], b["image"])
    for a, b in zip(full[13:], resumed):  # crosses the epoch boundary at step 14
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    other = batches(ip.train_dataset(data, ip.InputConfig(**{**vars(config), "seed": 1}), 100), 1)
    assert not np.array_equal(other[0]["image"], full[0]["image"])


def test_each_epoch_visits_every_example_once(digits):
    config, data = digits
    config = ip.InputConfig(**{**vars(config), "train_augment": "none"})
    first_epoch = batches(ip.train_dataset(data, config, 1437), 2)
    for epoch in first_epoch:
        assert sorted(epoch["label"].tolist()) == sorted(data.train.labels.tolist())
    assert not np.array_equal(first_epoch[0]["label"], first_epoch[1]["label"])  # reshuffled


def test_processes_split_each_global_batch(digits):
    config, data = digits
    whole = batches(ip.train_dataset(data, config, 64, start_step=3), 2)
    parts = [
        batches(ip.train_dataset(data, config, 64, start_step=3, rows=BatchRows((g,), 32, g, 2)), 2)
        for g in range(2)
    ]
    for step in range(2):
        np.testing.assert_array_equal(
            np.concatenate([parts[0][step]["image"], parts[1][step]["image"]]), whole[step]["image"]
        )
    # Shards that are not neighbours (TPU hosts): process 0 holds shards 0 and 2 of 4, process 1 shards 1 and 3.
    apart = [BatchRows((0, 2), 16, 0, 2), BatchRows((1, 3), 16, 1, 2)]
    parts = [
        batches(ip.train_dataset(data, config, 64, start_step=3, rows=rows), 2) for rows in apart
    ]
    for step in range(2):
        for rows, part in zip(apart, parts):
            np.testing.assert_array_equal(part[step]["image"], whole[step]["image"][rows.indices()])


def test_rows_must_be_equal_parts_of_the_batch(digits):
    config, data = digits
    with pytest.raises(ValueError, match="not one of 2 equal parts of a global batch of 64"):
        ip.train_dataset(data, config, 64, rows=BatchRows((0,), 30, 0, 2))


@pytest.mark.parametrize("groups", [1, 2])
def test_eval_counts_every_example_once(digits, groups):
    config, data = digits
    seen = []
    for group in range(groups):
        rows = BatchRows((group,), 100 // groups, group, groups)
        dataset, num_batches = ip.eval_dataset(data, config, 100, rows=rows)
        result = batches(dataset)
        assert len(result) == num_batches == 4  # 360 examples, batch 100: the last one padded
        for batch in result:
            seen.append(batch["label"][batch["mask"]])
    seen = np.concatenate(seen)
    assert len(seen) == 360
    assert sorted(seen.tolist()) == sorted(data.eval.labels.tolist())


def test_half_precision_images(digits):
    config, data = digits
    config = ip.InputConfig(**{**vars(config), "half_precision": True})
    batch = batches(ip.train_dataset(data, config, 8), 1)[0]
    assert batch["image"].dtype.name == "bfloat16"


# --------------------------------------------------------------------------- geometry


def test_random_crop_and_flip_are_numpy_slices():
    image = np.random.default_rng(0).random((36, 40, 3)).astype(np.float32)
    offsets, flips = set(), 0
    for i in range(400):
        seed = tf.constant([7, i], tf.int64)
        crop = ip.random_crop(tf.constant(image), 32, seed).numpy()
        matches = [
            (top, left)
            for top in range(5)
            for left in range(9)
            if np.array_equal(crop, image[top : top + 32, left : left + 32])
        ]
        assert len(matches) == 1
        offsets.add(matches[0])
        flipped = ip.random_flip(tf.constant(crop), seed).numpy()
        if not np.array_equal(flipped, crop):
            np.testing.assert_array_equal(flipped, crop[:, ::-1])
            flips += 1
    assert len(offsets) == 5 * 9  # every position is reachable
    assert 150 < flips < 250  # about half are mirrored


def test_ten_crops_are_the_corners_centre_and_mirrors():
    image = np.random.default_rng(1).random((256, 256, 3)).astype(np.float32)
    crops = ip.ten_crops(tf.constant(image), 224).numpy()
    expected = [
        image[:224, :224],
        image[:224, 32:],
        image[32:, :224],
        image[32:, 32:],
        image[16:240, 16:240],
    ]
    expected += [e[:, ::-1] for e in expected]
    assert crops.shape == (10, 224, 224, 3)
    for crop, reference in zip(crops, expected):
        np.testing.assert_array_equal(crop, reference)


def test_base_image_is_the_central_square_resized():
    photo = photos()[0]  # 427 x 640: the central square is columns 106..532
    square = photo[:, 106:533].astype(np.float32)
    base = ip.base_image(tf.constant(photo), 256).numpy()
    assert base.shape == (256, 256, 3) and base.dtype == np.float32
    np.testing.assert_allclose(base, tf.image.resize(square, [256, 256]).numpy(), atol=1e-3)
    # Shrinking 1-pixel stripes 3x: antialiased to nearly flat grey, not aliased stripes.
    stripes = np.zeros((768, 768, 3), np.uint8)
    stripes[:, ::2] = 255
    shrunk = ip.base_image(tf.constant(stripes), 256).numpy()
    assert abs(shrunk.mean() - 127.5) < 3 and shrunk.std() < 15
    # Already the right size: untouched.
    np.testing.assert_array_equal(
        ip.base_image(tf.constant(photo[:256, :256]), 256).numpy(), photo[:256, :256]
    )


def test_pca_lighting_is_the_papers_formula():
    rng = np.random.default_rng(2)
    image = rng.random((5, 6, 3)).astype(np.float32)
    alpha = rng.normal(0, 0.1, 3).astype(np.float32)
    eigval = np.array(ip.IMAGENET_EIGVAL)
    eigvec = np.array(ip.IMAGENET_EIGVEC)  # columns are the components p_i
    # I_xy + [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T, the same for every pixel
    expected = image + (eigvec * (alpha * eigval)).sum(axis=1)
    ours = ip.pca_lighting(tf.constant(image), tf.constant(alpha), ip.IMAGENET_COLOR_STATS).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)


def test_color_stats_are_the_pixel_pca():
    rng = np.random.default_rng(3)
    mixing = np.array([[1.0, 0.2, 0.0], [0.5, 1.0, 0.1], [0.2, 0.3, 1.0]])
    pixels = np.clip(rng.normal(0.5, 0.1, (4000, 3)) @ mixing.T * 0.6, 0, 1)
    images = np.round(pixels * 255).astype(np.uint8).reshape(10, 20, 20, 3)
    stats = ip.compute_color_stats(images)
    x = images.reshape(-1, 3) / 255.0
    values, vectors = np.linalg.eigh(np.cov(x.T))
    np.testing.assert_allclose(stats.eigval, values[::-1], rtol=1e-9)
    for i in range(3):  # each component up to sign
        component, reference = np.array(stats.eigvec)[:, i], vectors[:, 2 - i]
        assert abs(abs(component @ reference) - 1) < 1e-9
    np.testing.assert_allclose(stats.mean, x.mean(0))


def test_train_augment_draws_lighting_with_the_configured_std():
    # A flat grey image: after lighting each image is one RGB shift whose
    # coordinates on the components are alpha_i * eigval_i.
    stats = ip.IMAGENET_COLOR_STATS
    config = ip.InputConfig(
        image_size=8, resize_size=8, train_augment="paper", pca_lighting_std=0.1
    )
    image = tf.fill([8, 8, 3], tf.constant(128, tf.uint8))
    alphas = []
    for i in range(300):
        out = ip.train_image(image, tf.constant([0, i], tf.int64), config, stats).numpy()
        pixel = out[0, 0] * np.array(stats.std) + np.array(stats.mean)  # undo the normalization
        assert np.allclose(out, out[0, 0])  # one shift for the whole image
        shift = pixel - 128 / 255
        alphas.append((np.array(stats.eigvec).T @ shift) / np.array(stats.eigval))
    assert np.all(np.abs(np.std(alphas, axis=0) - 0.1) < 0.015)


@pytest.mark.parametrize("augment", ["paper", "pad_crop"])
def test_horizontal_flip_off_never_mirrors(augment):
    """An image whose every row reads 0..7: a mirrored crop would read backwards."""
    image = tf.constant(np.tile(np.arange(8, dtype=np.uint8)[None, :, None] * 30, (8, 1, 3)))
    stats = ip.IMAGENET_COLOR_STATS
    for flip in (True, False):
        config = ip.InputConfig(
            image_size=8,
            resize_size=8,
            train_augment=augment,
            pca_lighting_std=0.0,
            horizontal_flip=flip,
        )
        mirrored = 0
        for i in range(40):
            row = ip.train_image(image, tf.constant([0, i], tf.int64), config, stats).numpy()[
                4, :, 0
            ]
            steps = np.diff(row[row > row.min()] if augment == "pad_crop" else row)
            mirrored += int(np.all(steps <= 0) and np.any(steps < 0))
        assert (mirrored > 5) if flip else (mirrored == 0)


def test_inception_augment_range_and_shape():
    config = ip.InputConfig(
        image_size=64, resize_size=72, train_augment="inception", pca_lighting_std=0.0
    )
    image = tf.constant(photos()[1])
    outs = [
        ip.train_image(
            image, tf.constant([1, i], tf.int64), config, ip.IMAGENET_COLOR_STATS
        ).numpy()
        for i in range(5)
    ]
    for out in outs:
        assert out.shape == (64, 64, 3)
        pixels = out * np.array(ip.IMAGENET_STD) + np.array(ip.IMAGENET_MEAN)
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    assert not np.allclose(outs[0], outs[1])


def _numpy_normalize(image, stats, shift=None):
    """The model's input from uint8 crops, in float64: (image / 255 + shift - mean) / std."""
    image = image.astype(np.float64) / 255
    if shift is not None:
        image = image + shift.astype(np.float64).reshape(len(shift), 1, 1, 3)
    return (image - np.array(stats.mean)) / np.array(stats.std)


@pytest.mark.parametrize("half_precision", [False, True])
def test_uint8_batches_finished_on_the_devices_are_the_normalized_batches(digits, half_precision):
    config, data = digits
    config = ip.InputConfig(**{**vars(config), "half_precision": half_precision})
    stats = data.color_stats
    assert config.pca_lighting_std > 0
    raw = batches(ip.train_dataset(data, config, 16, normalized=False), 3)
    host = batches(ip.train_dataset(data, config, 16), 3)
    mesh = sharding.create_mesh((4, 2))
    finish = pixels.normalizer(mesh, stats.mean, stats.std, half_precision)
    tolerance = 0.02 if half_precision else 1e-5  # bfloat16 keeps 8 bits of mantissa
    for r, h in zip(raw, host):
        assert r["image"].dtype == np.uint8 and r["image"].shape == (16, 32, 32, 3)
        assert r["lighting"].dtype == np.float32 and r["lighting"].shape == (16, 3)
        assert np.abs(r["lighting"]).max() > 0  # PCA lighting drawn per image
        np.testing.assert_array_equal(r["label"], h["label"])
        reference = _numpy_normalize(r["image"], stats, r["lighting"])
        np.testing.assert_allclose(h["image"].astype(np.float64), reference, atol=tolerance)
        out = finish(sharding.host_batch_to_global(r, mesh))
        assert set(out) == {"image", "label", "mask"}
        assert out["image"].sharding.is_equivalent_to(sharding.batch_sharding(mesh), 4)
        assert out["image"].dtype == (jnp.bfloat16 if half_precision else jnp.float32)
        np.testing.assert_allclose(
            np.asarray(out["image"], np.float64), reference, atol=tolerance, rtol=tolerance
        )


def test_uint8_ten_crop_eval_batches_finished_on_the_devices(digits):
    config, data = digits
    config = ip.InputConfig(**{**vars(config), "eval_crop": "ten_crop", "image_size": 28})
    stats = data.color_stats
    (raw,), (host,) = (
        batches(ip.eval_dataset(data, config, 24, normalized=n)[0], 1) for n in (False, True)
    )
    assert raw["image"].dtype == np.uint8 and raw["image"].shape == (24, 10, 28, 28, 3)
    assert "lighting" not in raw
    reference = (raw["image"] / 255 - np.array(stats.mean)) / np.array(stats.std)
    np.testing.assert_allclose(host["image"], reference, atol=1e-5)
    mesh = sharding.create_mesh((2, 1), devices=jax.devices()[:2])
    out = pixels.normalizer(mesh, stats.mean, stats.std)(sharding.host_batch_to_global(raw, mesh))
    np.testing.assert_allclose(np.asarray(out["image"]), reference, atol=1e-5)


def test_base_image_uint8_crops_without_rounding_and_rounds_a_resize():
    photo = photos()[0]  # 427 x 640
    square = ip.base_image_uint8(tf.constant(photo[:300, :256]), 256).numpy()
    np.testing.assert_array_equal(square, photo[22:278, :256])  # central square, untouched
    resized = ip.base_image_uint8(tf.constant(photo), 256).numpy()
    float_resize = ip.base_image(tf.constant(photo), 256).numpy()
    np.testing.assert_array_equal(resized, np.clip(np.round(float_resize), 0, 255))
    assert resized.dtype == np.uint8


# --------------------------------------------------------------------------- ImageNet


def test_imagenet_prepares_from_the_users_tars(tmp_path):
    manual_dir = tmp_path / "manual"
    write_fake_imagenet(manual_dir)
    config = ip.InputConfig(
        dataset="imagenet2012",
        data_dir=str(tmp_path / "tfds"),
        manual_dir=str(manual_dir),
        eval_crop="ten_crop",
    )
    data = ip.load_data(config)
    assert (len(data.train), len(data.eval), data.num_classes) == (8, 4, 1000)

    train = batches(ip.train_dataset(data, config, 4), 2)
    assert train[0]["image"].shape == (4, 224, 224, 3)
    labels = np.concatenate([b["label"] for b in train])  # one epoch
    assert sorted(data.class_names[label] for label in labels) == sorted(SYNSETS * 2)

    # Streamed from TFRecords, the stream still resumes exactly (here across epochs).
    full = batches(ip.train_dataset(data, config, 3), 6)
    resumed = batches(ip.train_dataset(data, config, 3, start_step=4), 2)
    for a, b in zip(full[4:], resumed):
        np.testing.assert_array_equal(a["image"], b["image"])

    dataset, num_batches = ip.eval_dataset(data, config, 3)
    result = batches(dataset)
    assert num_batches == len(result) == 2
    assert result[0]["image"].shape == (3, 10, 224, 224, 3)
    mask = np.concatenate([b["mask"] for b in result])
    assert mask.sum() == 4
    eval_labels = np.concatenate([b["label"] for b in result])[mask]
    # labels from tfds's validation_labels.txt (tfds stores examples in its own order)
    assert sorted(data.class_names[label] for label in eval_labels) == sorted(SYNSETS)

    # Two groups of processes (fewer TFRecord files than groups): each record in one group's stream only.
    plain = ip.InputConfig(**{**vars(config), "train_augment": "none", "eval_crop": "center"})
    epoch = np.concatenate([b["image"] for b in batches(ip.train_dataset(data, plain, 4), 2)])
    parts = [
        np.concatenate(
            [
                b["image"]
                for b in batches(ip.train_dataset(data, plain, 4, rows=BatchRows((g,), 2, g, 2)), 2)
            ]
        )
        for g in range(2)
    ]
    assert len(data.train.builder.info.splits["train"].filepaths) < 2
    key = lambda images: sorted(image.tobytes() for image in images)  # noqa: E731
    assert key(np.concatenate(parts)) == key(epoch)  # together: one epoch, no example twice
    seen = []
    for g in range(2):
        dataset, num_batches = ip.eval_dataset(data, plain, 4, rows=BatchRows((g,), 2, g, 2))
        seen += [b["label"][b["mask"]] for b in batches(dataset)]
    assert sorted(data.class_names[label] for label in np.concatenate(seen)) == sorted(SYNSETS)


def test_imagenet_missing_tars_error(tmp_path):
    config = ip.InputConfig(
        dataset="imagenet2012", data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path / "empty")
    )
    with pytest.raises(ip.DataError) as error:
        ip.load_data(config)
    message = str(error.value)
    for needed in (
        "ILSVRC2012_img_train.tar",
        "ILSVRC2012_img_val.tar",
        str(tmp_path / "empty"),
        "--config.manual_dir",
    ):
        assert needed in message
    assert not (tmp_path / "tfds" / "downloads").exists() or not any(
        (tmp_path / "tfds" / "downloads").iterdir()
    )


# --------------------------------------------------------------------------- CIFAR-10 and folders


def test_cifar10_through_mock_data(tmp_path, monkeypatch):
    config = ip.InputConfig(
        dataset="cifar10",
        data_dir=str(tmp_path),
        image_size=32,
        resize_size=32,
        train_augment="pad_crop",
    )
    # as if prepared by tfds
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    (tmp_path / "cifar10").mkdir()
    with tfds.testing.mock_data(num_examples=20):
        data = ip.load_data(config)
    assert len(data.train) == 20 and data.num_classes == 10
    batch = batches(ip.train_dataset(data, config, 8), 1)[0]
    assert batch["image"].shape == (8, 32, 32, 3)
    dataset, _ = ip.eval_dataset(data, config, 8)
    assert sum(b["mask"].sum() for b in batches(dataset)) == 20


def write_folder(root, corrupt=None):
    for split, count in (("train", 3), ("val", 2)):
        for c, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(count):
                (folder / f"{k}.jpg").write_bytes(
                    jpeg_bytes(photos()[c][k * 50 : k * 50 + 120, :160])
                )
    if corrupt is not None:
        (root / "train" / "dog" / "broken.jpg").write_bytes(corrupt)


@pytest.mark.parametrize("payload", [b"", b"this is not an image at all"])
def test_image_folder_corrupt_file_is_named(tmp_path, payload):
    write_folder(tmp_path, corrupt=payload)
    config = ip.InputConfig(
        dataset="image_folder", folder_root=str(tmp_path), image_size=64, resize_size=72
    )
    with pytest.raises(ip.DataError, match=r"broken\.jpg") as error:
        ip.load_data(config)
    assert "on_corrupt_image=skip" in str(error.value)


def test_image_folder_skips_and_counts_when_asked(tmp_path):
    write_folder(tmp_path, corrupt=b"garbage")
    config = ip.InputConfig(
        dataset="image_folder",
        folder_root=str(tmp_path),
        image_size=64,
        resize_size=72,
        on_corrupt_image="skip",
        color_stats="dataset",
    )
    data = ip.load_data(config)
    assert [os.path.basename(p) for p in data.skipped_files] == ["broken.jpg"]
    assert (len(data.train), len(data.eval), data.class_names) == (6, 4, ("cat", "dog"))
    labels = np.concatenate([b["label"] for b in batches(ip.train_dataset(data, config, 3), 2)])
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]


def test_bad_settings_name_the_choices():
    with pytest.raises(ip.DataError, match="'digits', 'imagenet2012', 'cifar10', 'image_folder'"):
        ip.load_data(ip.InputConfig(dataset="mnist"))
    with pytest.raises(ip.DataError, match="folder_root"):
        ip.load_data(ip.InputConfig(dataset="image_folder"))
    with pytest.raises(ip.DataError, match="resize_size=200 is smaller than image_size=224"):
        ip.load_data(ip.InputConfig(resize_size=200))


# --------------------------------------------------------------------------- image folder classes


def write_class_images(folder, count, seed, extension=".png"):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        image = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
        encoded = (
            tf.io.encode_png(image) if extension == ".png" else tf.io.encode_jpeg(image, quality=95)
        )
        with open(os.path.join(folder, f"{k}{extension}"), "wb") as file:
            file.write(encoded.numpy())


def tiny_folder_config(root, **overrides):
    return ip.InputConfig(
        dataset="image_folder", folder_root=str(root), image_size=8, resize_size=8, **overrides
    )


def test_image_folder_eval_class_not_in_train_is_named(tmp_path):
    for c, name in enumerate(("cat", "dog")):
        write_class_images(tmp_path / "train" / name, 2, c)
        write_class_images(tmp_path / "val" / name, 1, 10 + c, ".jpg")
    write_class_images(tmp_path / "val" / "zebra", 1, 20)
    write_class_images(tmp_path / "val" / "Cat ", 1, 21)  # a near-miss of a training class
    with pytest.raises(ip.DataError) as error:
        ip.load_data(tiny_folder_config(tmp_path))
    message = str(error.value)
    assert "\n" not in message
    assert (
        f"{tmp_path / 'val'} has 2 class folder(s) that are not in {tmp_path / 'train'}: 'Cat ', 'zebra' ("
        in message
    )
    assert "Add each class to" in message and "remove or rename" in message


def test_image_folder_lists_at_most_ten_unknown_classes(tmp_path):
    write_class_images(tmp_path / "train" / "cat", 1, 0)
    for k in range(12):
        os.makedirs(tmp_path / "val" / f"class{k:02d}")  # empty folders count as classes too
    with pytest.raises(
        ip.DataError, match=r"has 12 class folder\(s\) .*'class09', \.\.\. \(only"
    ) as error:
        ip.load_data(tiny_folder_config(tmp_path))
    assert "'class10'" not in str(error.value)


def test_image_folder_eval_may_lack_a_class_and_hidden_entries_are_ignored(tmp_path):
    for c, name in enumerate(("cat", "dog", "owl")):
        write_class_images(tmp_path / "train" / name, 2, c)
    write_class_images(tmp_path / "val" / "dog", 3, 10, ".jpg")
    for split in (
        "train",
        "val",
    ):  # what notebooks and macOS leave behind: neither classes nor images
        write_class_images(tmp_path / split / ".ipynb_checkpoints", 1, 30)
        (tmp_path / split / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
        (tmp_path / split / "dog" / "._0.jpg").write_bytes(b"\0\5\26\7 resource fork")
    data = ip.load_data(tiny_folder_config(tmp_path, color_stats="dataset"))
    assert data.class_names == ("cat", "dog", "owl") and data.num_classes == 3
    assert (len(data.train), len(data.eval), data.skipped_files) == (6, 3, ())
    assert data.eval.labels.tolist() == [1, 1, 1]  # dog keeps its training label
    assert data.train.labels.tolist() == [0, 0, 1, 1, 2, 2]
