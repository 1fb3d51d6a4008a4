"""Losses and metrics: cross-entropy, top-k correctness, softmax averaged over crops and ensemble members.

Pure JAX (no TensorFlow, tfds or matplotlib): the train and eval steps
(`alexnet_jax.steps`) and the consumers of a trained run (`predict`) use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from alexnet_jax.models import AlexNet


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy, (N, classes), (N,) -> (N,).

    With label_smoothing e > 0 the target is (1 - e) * one-hot + e / classes
    (Szegedy et al. 2016), as `torch.nn.CrossEntropyLoss(label_smoothing=e)`.
    """
    logits = logits.astype(jnp.float32)
    if not label_smoothing:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def top_k_correct(scores: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    """(N,) bool: the label is among the k highest scores, ties ranked by class index (as a stable sort).

    A tie never counts in the label's favour just by being a tie: with all
    scores equal only classes 0..k-1 are "predicted".
    """
    label_score = jnp.take_along_axis(scores, labels[:, None], axis=-1)
    classes = jnp.arange(scores.shape[-1])[None, :]
    ahead = (scores > label_score) | ((scores == label_score) & (classes < labels[:, None]))
    return jnp.sum(ahead, axis=-1) < k


def model_variables(params, batch_stats) -> dict:
    """The variables `model.apply` takes: params, and batch-norm statistics where the model has them."""
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def predict_probabilities(
    model: AlexNet, members: Sequence[tuple[Any, Any]], images: jax.Array
) -> jax.Array:
    """Softmax outputs averaged over crops and ensemble members.

    images: (N, S, S, 3), or (N, C, S, S, 3) for C crops each (10-crop test);
    members: (params, batch_stats) pairs, one per network. Returns (N, classes).
    """
    crops = images.shape[1] if images.ndim == 5 else 1
    flat = images.reshape((-1,) + images.shape[-3:])
    total = 0.0
    for params, batch_stats in members:
        logits = model.apply(model_variables(params, batch_stats), flat, train=False)
        probabilities = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
        total = total + probabilities.reshape(images.shape[0], crops, -1).mean(axis=1)
    return total / len(members)
