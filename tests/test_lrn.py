"""LRN against torch.nn.LocalResponseNorm, tf.nn.local_response_normalization and numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from alexnet_jax.lrn import LocalResponseNorm, local_response_norm


def torch_lrn(x_nhwc: np.ndarray, size, alpha=1e-4, beta=0.75, k=2.0) -> np.ndarray:
    """torch reference in float64 (channels first inside)."""
    x = torch.tensor(np.asarray(x_nhwc, np.float64)).permute(0, 3, 1, 2)
    return torch.nn.LocalResponseNorm(size, alpha, beta, k)(x).permute(0, 2, 3, 1).numpy()


def numpy_lrn(x, size, alpha, beta, k):
    """The paper's formula with an explicit, clipped window, alpha applied as given."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    channels = x.shape[-1]
    for c in range(channels):
        lo, hi = max(0, c - size // 2), min(channels, c + (size - 1) // 2 + 1)
        energy = (x[..., lo:hi] ** 2).sum(-1)
        out[..., c] = x[..., c] / (k + alpha * energy) ** beta
    return out


def activations(shape, scale, seed=0):
    """ReLU-like activations at a scale where LRN is far from a constant division."""
    return (np.abs(np.random.default_rng(seed).normal(size=shape)) * scale).astype(np.float32)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("channels", [2, 7, 96])
def test_default_equals_torch(size, channels):
    x = activations((2, 5, 4, channels), scale=200.0, seed=size * 100 + channels)
    ours = np.asarray(local_response_norm(jnp.asarray(x), size=size))
    reference = torch_lrn(x, size)
    np.testing.assert_allclose(ours, reference, rtol=2e-6, atol=1e-6)


def test_paper_defaults_are_torch_5_1e4_075_2_and_really_normalize():
    x = activations((2, 6, 6, 48), scale=300.0)
    ours = np.asarray(local_response_norm(jnp.asarray(x)))
    np.testing.assert_allclose(ours, torch_lrn(x, 5, 1e-4, 0.75, 2.0), rtol=2e-6)
    # At this scale the divisor varies a lot between pixels: a constant
    # division by k**beta (a do-nothing LRN) would be far off.
    divisor = x / np.maximum(ours, 1e-12)
    assert divisor[x > 1].max() / divisor[x > 1].min() > 2.0
    np.testing.assert_allclose(ours, numpy_lrn(x, 5, 1e-4 / 5, 0.75, 2.0), rtol=2e-6)


@pytest.mark.parametrize("size", [1, 3, 5, 7, 9])
@pytest.mark.parametrize("channels", [3, 8, 64])
def test_alpha_not_divided_equals_tensorflow(size, channels):
    import tensorflow as tf

    x = activations((2, 4, 5, channels), scale=100.0, seed=size + channels)
    ours = np.asarray(
        local_response_norm(
            jnp.asarray(x), size=size, alpha=1e-4, beta=0.75, k=2.0, divide_alpha_by_size=False
        )
    )
    reference = tf.nn.local_response_normalization(
        tf.constant(x), depth_radius=(size - 1) // 2, bias=2.0, alpha=1e-4, beta=0.75
    ).numpy()
    np.testing.assert_allclose(ours, reference, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(ours, numpy_lrn(x, size, 1e-4, 0.75, 2.0), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("size", [4, 6])
def test_even_window_position(size):
    # Even windows reach one channel further back than forward, as in torch.
    x = activations((1, 2, 2, 9), scale=300.0)
    ours = np.asarray(
        local_response_norm(
            jnp.asarray(x), size=size, alpha=3e-3, beta=0.6, k=1.5, divide_alpha_by_size=False
        )
    )
    np.testing.assert_allclose(ours, numpy_lrn(x, size, 3e-3, 0.6, 1.5), rtol=2e-6)
    np.testing.assert_allclose(ours, torch_lrn(x, size, 3e-3 * size, 0.6, 1.5), rtol=2e-6)


def test_channel_edges_see_a_clipped_window():
    x = np.zeros((1, 1, 1, 6), np.float32)
    x[..., 0] = 100.0
    x[..., 5] = 50.0
    out = np.asarray(
        local_response_norm(
            jnp.asarray(x), size=5, alpha=1e-2, beta=1.0, k=1.0, divide_alpha_by_size=False
        )
    )
    # channel 0's window is channels 0..2; channel 5's is 3..5
    np.testing.assert_allclose(out[0, 0, 0, 0], 100.0 / (1.0 + 1e-2 * 100.0**2), rtol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0, 5], 50.0 / (1.0 + 1e-2 * 50.0**2), rtol=1e-6)


def test_large_float32_activations_match_torch():
    x = activations((2, 3, 3, 16), scale=1e6)
    ours = np.asarray(local_response_norm(jnp.asarray(x)))
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, torch_lrn(x, 5), rtol=2e-6)


def test_float16_input_does_not_overflow():
    # Squares of these values overflow float16 (max 65504); the window sums
    # must be formed in float32.
    x16 = activations((2, 3, 3, 16), scale=2000.0).astype(np.float16)
    ours = local_response_norm(jnp.asarray(x16))
    assert ours.dtype == jnp.float16
    ours = np.asarray(ours, np.float32)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, torch_lrn(x16.astype(np.float32), 5), rtol=2e-3)


def test_bfloat16_input():
    x = activations((2, 4, 4, 32), scale=300.0)
    x_bf16 = jnp.asarray(x, jnp.bfloat16)
    ours = local_response_norm(x_bf16)
    assert ours.dtype == jnp.bfloat16
    reference = torch_lrn(np.asarray(x_bf16, np.float32), 5)
    np.testing.assert_allclose(np.asarray(ours, np.float32), reference, rtol=8e-3, atol=1e-3)


@pytest.mark.parametrize("size", [4, 5])
def test_gradient_equals_torch_autograd(size):
    x = activations((2, 3, 4, 12), scale=150.0, seed=3)
    weights = np.random.default_rng(4).normal(size=x.shape)

    def loss(x):
        return jnp.sum(local_response_norm(x, size=size, alpha=2e-4, beta=0.75, k=2.0) * weights)

    ours = np.asarray(jax.grad(loss)(jnp.asarray(x)))
    x_t = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    out = torch.nn.LocalResponseNorm(size, 2e-4, 0.75, 2.0)(x_t.permute(0, 3, 1, 2)).permute(
        0, 2, 3, 1
    )
    (out * torch.tensor(weights)).sum().backward()
    reference = x_t.grad.numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6 * np.abs(reference).max())


def test_module_equals_torch():
    x = activations((2, 3, 3, 10), scale=200.0)
    module = LocalResponseNorm(size=3, alpha=2e-4, beta=0.5, k=1.0)
    variables = module.init(jax.random.key(0), jnp.asarray(x))
    assert variables == {} or not jax.tree.leaves(variables)
    ours = np.asarray(module.apply(variables, jnp.asarray(x)))
    np.testing.assert_allclose(ours, torch_lrn(x, 3, 2e-4, 0.5, 1.0), rtol=2e-6)


def test_rejects_bad_size():
    with pytest.raises(ValueError, match="positive"):
        local_response_norm(jnp.ones((1, 2, 2, 4)), size=0)
