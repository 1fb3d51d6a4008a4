"""What the tests build themselves: real photos from scikit-learn, fake ILSVRC2012 tars, small training configs."""

import io
import os
import tarfile

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_sample_images

from configs import smoke


def photos():
    """The two real 427x640 photos shipped with scikit-learn."""
    return load_sample_images().images


def jpeg_bytes(image: np.ndarray) -> bytes:
    return tf.io.encode_jpeg(image, quality=95).numpy()


SYNSETS = ["n01751748", "n09193705", "n02105855", "n04263257"]  # labels of val images 1-4


def add_file(archive: tarfile.TarFile, name: str, payload: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    archive.addfile(info, io.BytesIO(payload))


def write_fake_imagenet(manual_dir):
    """ILSVRC2012 tars in their real layout, holding crops of real photos."""
    os.makedirs(manual_dir, exist_ok=True)
    sources = photos()
    crops = [sources[i % 2][20 * i : 20 * i + 300, 30 * i : 30 * i + 400] for i in range(8)]
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_train.tar"), "w") as train:
        for s, synset in enumerate(SYNSETS):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as class_tar:
                for k in range(2):
                    add_file(class_tar, f"{synset}_{k + 1}.JPEG", jpeg_bytes(crops[2 * s + k]))
            add_file(train, f"{synset}.tar", inner.getvalue())
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_val.tar"), "w") as val:
        for i in range(4):
            add_file(
                val,
                f"ILSVRC2012_val_{i + 1:08d}.JPEG",
                jpeg_bytes(crops[i].transpose(1, 0, 2).copy()),
            )


# The evaluation split of tests whose property holds on any evaluation set: 40 of the 360 test digits.
FIRST_40_TEST_DIGITS = "test[:40]"


def digits_config(tfds_data_dir, **overrides):
    """configs/smoke.py on the tests' data dir: batch 8, a constant rate, checkpoints every 3 steps.

    No evaluation before the end. Batch 8 (one example on each of the 8 fake devices) instead of
    the smoke run's 32: a step of the `small` model costs about 7 GFLOP instead of 28, and no test
    of the loop depends on the batch size.
    """
    config = smoke.get_config()
    config.data_dir = tfds_data_dir
    config.batch_size = 8
    config.schedule = "constant"
    config.log_every_steps = 2
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 3
    for key, value in overrides.items():
        config[key] = value
    return config
