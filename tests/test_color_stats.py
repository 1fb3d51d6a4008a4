"""Streamed colour statistics (`compute_color_stats`) against numpy's float64 formula."""

import numpy as np
import pytest

from alexnet_jax import input_pipeline as ip


def numpy_reference(images: np.ndarray):
    """The float64 formula on all pixels at once (np.std ddof=0, np.cov ddof=1).

    Returns mean, std, eigval, eigvec."""
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    eigval, eigvec = np.linalg.eigh(np.cov(pixels, rowvar=False))
    order = np.argsort(eigval)[::-1]
    return (
        pixels.mean(0),
        np.maximum(pixels.std(0), 1e-3),
        np.clip(eigval[order], 0.0, None),
        eigvec[:, order],
    )


def assert_matches_reference(stats: ip.ColorStats, images: np.ndarray):
    mean, std, eigval, eigvec = numpy_reference(images)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(stats.std, std, rtol=1e-12)
    np.testing.assert_allclose(stats.eigval, eigval, rtol=1e-9, atol=1e-15)
    ours = np.array(stats.eigvec)
    for i in range(3):  # each component up to sign
        assert abs(abs(ours[:, i] @ eigvec[:, i]) - 1) < 1e-9, (i, ours, eigvec)


def correlated_images(seed=3, shape=(12, 20, 20)):
    rng = np.random.default_rng(seed)
    mixing = np.array([[1.0, 0.2, 0.0], [0.5, 1.0, 0.1], [0.2, 0.3, 1.0]])
    pixels = np.clip(rng.normal(0.5, 0.1, (np.prod(shape), 3)) @ mixing.T * 0.6, 0, 1)
    return np.round(pixels * 255).astype(np.uint8).reshape(*shape, 3)


def test_color_stats_match_numpy_on_random_images():
    images = correlated_images()
    stats = ip.compute_color_stats(images)
    assert_matches_reference(stats, images)
    assert all(
        type(v) is float for v in stats.mean + stats.std + stats.eigval + sum(stats.eigvec, ())
    )
    assert list(stats.eigval) == sorted(stats.eigval, reverse=True)


def test_color_stats_with_a_constant_channel():
    images = correlated_images(seed=5)
    images[..., 1] = 77  # green carries no variance
    stats = ip.compute_color_stats(images)
    assert_matches_reference(stats, images)
    assert stats.std[1] == 1e-3  # clipped
    assert stats.eigval[2] < 1e-18  # the covariance's green row and column are exactly 0
    np.testing.assert_allclose(np.abs(np.array(stats.eigvec)[:, 2]), [0.0, 1.0, 0.0], atol=1e-12)


def test_color_stats_do_not_depend_on_the_chunking():
    images = correlated_images(seed=7, shape=(30, 9, 11))
    expected = ip.compute_color_stats(images)
    pixels = images.reshape(-1, 3)
    for chunked in (
        ip.compute_color_stats(images, chunk_pixels=1),
        ip.compute_color_stats(images, chunk_pixels=50),  # smaller than one image (99 pixels)
        ip.compute_color_stats(images, chunk_pixels=1000),
        ip.compute_color_stats(np.array_split(images, 7)),  # an iterable of uneven chunks
        # (M, 3) pixel chunks from a one-shot iterator
        ip.compute_color_stats(iter(np.array_split(pixels, 13)), chunk_pixels=64),
        ip.compute_color_stats(np.asfortranarray(images), chunk_pixels=100),  # not C-contiguous
    ):
        assert chunked == expected  # exact integer sums: bit-identical, whatever the order


def test_color_stats_lose_no_digits_to_a_large_mean():
    # Half the pixels 254, half 255: a mean near 1 and a spread of half a level, where a
    # one-pass E[x^2] - E[x]^2 in floating point cancels; known exactly.
    n = 1 << 18
    images = np.full((n, 1, 1, 3), 255, np.uint8)
    images[::2] = 254
    stats = ip.compute_color_stats(images)
    np.testing.assert_allclose(stats.mean, [254.5 / 255] * 3, rtol=1e-15)
    np.testing.assert_allclose(stats.std, [0.5 / 255] * 3, rtol=1e-15)  # ddof=0
    # ddof=1, equal in all channels: one direction of variance
    variance = 0.25 / 255**2 * n / (n - 1)
    np.testing.assert_allclose(stats.eigval, [3 * variance, 0.0, 0.0], rtol=1e-14, atol=1e-19)


def test_color_stats_refuse_what_is_not_uint8_rgb():
    with pytest.raises(ValueError, match="uint8"):
        ip.compute_color_stats(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        ip.compute_color_stats(np.zeros((2, 4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="at least 2 pixels"):
        ip.compute_color_stats([np.zeros((1, 1, 1, 3), np.uint8)])
