"""The embedded sklearn_digits builder against scikit-learn's own arrays."""

import numpy as np
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

import alexnet_jax.datasets  # noqa: F401  (registers the builder)


def test_digits_builder_prepares_offline_with_the_documented_split(tfds_data_dir):
    builder = tfds.builder("sklearn_digits", data_dir=tfds_data_dir)
    builder.download_and_prepare()  # conftest makes any download attempt fail
    assert builder.info.splits["train"].num_examples == 1437
    assert builder.info.splits["test"].num_examples == 360

    digits = load_digits()
    order = np.random.RandomState(0).permutation(1797)  # the documented split
    expected = {}
    for split, indices in (("train", order[:1437]), ("test", order[1437:])):
        grey = np.kron(digits.images[indices], np.ones((4, 4)))  # 8x8 -> 32x32 blocks
        expected[split] = (np.round(grey * 255 / 16).astype(np.uint8), digits.target[indices])

    for split, (grey, labels) in expected.items():
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        images = data["image"]
        assert images.shape == (len(labels), 32, 32, 3) and images.dtype == np.uint8
        assert images.min() == 0 and images.max() == 255
        assert (images[..., 0] == images[..., 1]).all() and (images[..., 1] == images[..., 2]).all()
        # Same examples (tfds stores them in its own order): match by content.
        ours = sorted((img[..., 0].tobytes(), int(lab)) for img, lab in zip(images, data["label"]))
        theirs = sorted((img.tobytes(), int(lab)) for img, lab in zip(grey, labels))
        assert ours == theirs
