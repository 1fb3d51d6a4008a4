"""`sklearn_digits`: scikit-learn's handwritten digits as a tfds dataset, no download.

`sklearn.datasets.load_digits()` ships 1,797 real 8x8 greyscale digits
(UCI "Optical Recognition of Handwritten Digits", 16 grey levels, ink = 16)
inside scikit-learn, so this builder prepares offline, in about a second.

- Split: the examples are ordered by `numpy.random.RandomState(0).permutation(1797)`;
  the first 1,437 (80%) are `train`, the remaining 360 are `test`. Every class
  has between 137 and 153 training examples.
- Images: grey levels 0..16 scaled to 0..255 (`round(v * 255 / 16)`), each pixel
  repeated into a 4x4 block (8x8 -> 32x32, nearest neighbour, no invented
  detail) and the grey channel copied to R, G and B: uint8 (32, 32, 3),
  white ink on black.
- Labels: the digit, 0..9.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

NUM_TRAIN = 1437
SPLIT_SEED = 0
UPSCALE = 4


def digits_images_and_labels() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits in the builder's order: uint8 (1797, 32, 32, 3) images and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.RandomState(SPLIT_SEED).permutation(len(digits.target))
    grey = np.round(digits.images[order] * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    grey = grey.repeat(UPSCALE, axis=1).repeat(UPSCALE, axis=2)  # (N, 32, 32)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    return rgb, digits.target[order].astype(np.int64)


class SklearnDigits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's 8x8 handwritten digits, upscaled to 32x32 RGB."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: 1,437 train / 360 test, 32x32x3 uint8."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(32, 32, 3)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # everything is inside scikit-learn
        images, labels = digits_images_and_labels()
        return {
            "train": self._generate_examples(images[:NUM_TRAIN], labels[:NUM_TRAIN], offset=0),
            "test": self._generate_examples(
                images[NUM_TRAIN:], labels[NUM_TRAIN:], offset=NUM_TRAIN
            ),
        }

    def _generate_examples(self, images, labels, offset):
        for index, (image, label) in enumerate(zip(images, labels)):
            yield offset + index, {"image": image, "label": int(label)}
