"""Import PyTorch AlexNet weights into `AlexNet` parameter trees.

Accepted layout: any state dict whose convolution (4-D) and linear (2-D)
weights appear in network order, each with a bias next to it, e.g.
torchvision's `features.0.weight ... classifier.6.bias`, a plain
`nn.Sequential`'s `0.weight ... 20.bias`, or either with a `module.` prefix
(`nn.DataParallel`). For `variant='paper'` the torch model is the usual
`groups=2` formulation: conv2, conv4 and conv5 have weights of shape
`(out, in / 2, kh, kw)`, and their first half of output channels (and, for
the linear layers, the first half of the features) is tower 0.

Layout changes made here:
- conv weights (out, in, kh, kw) -> HWIO (kh, kw, in, out), split into
  (towers, kh, kw, in, out / towers) for a tower model;
- linear weights (out, in) -> (in, out); torch flattens the last feature map
  in (C, H, W) order and this package in (H, W, C) order, so fc6's input
  rows are permuted accordingly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax.errors import ConfigError, MissingFileError, MissingPackageError
from alexnet_jax.models import VARIANTS, AlexNet

__all__ = ["torch_state_dict_to_flax", "load_torch_weights"]


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor; torch itself is not imported here
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def _split_layers(
    state_dict: Mapping[str, Any],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(weight key, bias key) pairs of conv and linear layers, in order of appearance."""
    for key in state_dict:
        if key.endswith("bias") and key[: -len("bias")] + "weight" not in state_dict:
            raise ConfigError(
                f"State dict has {key!r} but no weight {key[: -len('bias')] + 'weight'!r}."
            )
    convs, linears, used = [], [], set()
    for key, value in state_dict.items():
        if not key.endswith("weight") or np.ndim(value) not in (2, 4):
            continue
        bias_key = key[: -len("weight")] + "bias"
        if bias_key not in state_dict:
            raise ConfigError(
                f"State dict has {key!r} but no bias {bias_key!r}; AlexNet layers all have biases."
            )
        (convs if np.ndim(value) == 4 else linears).append((key, bias_key))
        used.update((key, bias_key))
    unexpected = [k for k in state_dict if k not in used]
    if unexpected:
        raise ConfigError(
            "State dict has entries that are not AlexNet conv/linear weights or biases: "
            f"{unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}. Batch-norm or other extra layers "
            "cannot be imported; pass a plain AlexNet state dict."
        )
    return convs, linears


def _expected_torch_shapes(arch, towers: int) -> str:
    """The torch weight shapes of a variant at its own image size, for error messages."""
    shapes, in_channels = [], 3
    for layer in arch.convs:
        group_in = in_channels // towers if layer.within_tower else in_channels
        shapes.append((layer.features, group_in, layer.kernel_size, layer.kernel_size))
        in_channels = layer.features
    side = arch.pooled_size or {224: 6, 32: 3}.get(arch.image_size, 0)
    widths = [in_channels * side * side, *arch.hidden_features, "classes"]
    shapes += [(out, inp) for inp, out in zip(widths[:-1], widths[1:])]
    return ", ".join(str(shape).replace("'", "") for shape in shapes)


def torch_state_dict_to_flax(
    state_dict: Mapping[str, Any],
    variant: str = "paper",
    num_classes: int | None = None,
    towers: int | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Converts a PyTorch AlexNet state dict to params for `AlexNet(variant=variant)`.

    Args:
      state_dict: mapping from torch parameter names to tensors (or arrays).
        Keys may carry a `module.` prefix. Non-parameter entries are refused.
      variant: the `AlexNet` variant the weights are for ('paper', 'owt', 'small').
      num_classes: classes of the target model; by default read off the last
        linear layer.
      towers: number of towers of the target model (the variant's default if None).

    fc6 may be sized for any square last feature map (another input size or
    pooling than the variant's default); the returned params then fit the
    model applied at that size.

    Returns:
      `{'conv1': {'kernel': ..., 'bias': ...}, ..., 'fc8': {...}}` of float32
      numpy arrays, to be used as `{'params': result}` with the matching
      `AlexNet(num_classes, variant, towers=towers)`.

    Raises:
      ValueError: naming the torch key and the expected shape, when a layer
        is missing, extra, or of the wrong shape.
    """
    if variant not in VARIANTS:
        raise ConfigError(
            f"Unknown model variant {variant!r}; choose one of: {', '.join(map(repr, VARIANTS))}."
        )
    arch = VARIANTS[variant]
    state_dict = {
        k[len("module.") :] if k.startswith("module.") else k: v for k, v in state_dict.items()
    }
    convs, linears = _split_layers(state_dict)
    if len(convs) != len(arch.convs) or len(linears) != len(arch.hidden_features) + 1:
        raise ConfigError(
            f"AlexNet(variant={variant!r}) needs {len(arch.convs)} conv weights (4-D) followed by "
            f"{len(arch.hidden_features) + 1} linear weights (2-D), in torch layout "
            f"{_expected_torch_shapes(arch, towers or arch.towers)}; the state dict has conv weights "
            f"{[k for k, _ in convs]} and linear weights {[k for k, _ in linears]}."
        )
    if num_classes is None:
        num_classes = int(np.shape(state_dict[linears[-1][0]])[0])

    model = AlexNet(num_classes=num_classes, variant=variant, towers=towers)
    n_towers = model.resolved()["towers"]
    image = jnp.zeros((1, arch.image_size, arch.image_size, 3))
    expected = nn.unbox(jax.eval_shape(model.init, jax.random.key(0), image)["params"])

    def fetch(key: str, torch_shape: tuple[int, ...]) -> np.ndarray:
        value = _to_numpy(state_dict[key])
        if value.shape != torch_shape:
            raise ConfigError(
                f"{key!r} has shape {tuple(value.shape)}, but AlexNet(variant={variant!r}, "
                f"num_classes={num_classes}, towers={n_towers}) expects {torch_shape} (torch layout)."
            )
        return value

    params: dict[str, dict[str, np.ndarray]] = {}
    for layer, (weight_key, bias_key) in zip(arch.convs, convs):
        kernel_shape = expected[layer.name]["kernel"].shape  # ([towers,] kh, kw, in, out / towers)
        kh, kw, cin, cout = kernel_shape[-4:]
        total_out = cout * n_towers
        weight = fetch(weight_key, (total_out, cin, kh, kw)).transpose(2, 3, 1, 0)
        bias = fetch(bias_key, (total_out,))
        if n_towers > 1:
            weight = weight.reshape(kh, kw, cin, n_towers, cout).transpose(3, 0, 1, 2, 4)
            bias = bias.reshape(n_towers, cout)
        params[layer.name] = {"kernel": weight, "bias": bias}

    last_channels = arch.convs[-1].features
    names = [f"fc{i}" for i in range(6, 6 + len(linears))]
    for position, (name, (weight_key, bias_key)) in enumerate(zip(names, linears)):
        kernel_shape = expected[name]["kernel"].shape
        output_layer = position == len(linears) - 1
        if n_towers == 1:
            total_in, total_out = kernel_shape
        elif output_layer:  # (towers, in / towers, out)
            total_in, total_out = n_towers * kernel_shape[1], kernel_shape[2]
        else:  # (towers, in, out / towers)
            total_in, total_out = kernel_shape[1], n_towers * kernel_shape[2]
        if position == 0:
            # fc6's input size depends on the image size and pooling the torch
            # model was built for; any square map of the last conv's channels fits.
            torch_in = int(np.shape(state_dict[weight_key])[-1])
            side = int(round(np.sqrt(torch_in / last_channels)))
            if side * side * last_channels == torch_in:
                total_in = torch_in
        weight = fetch(weight_key, (total_out, total_in))
        bias = fetch(bias_key, (total_out,))
        if position == 0:
            # torch flattens (C, H, W); this package flattens (H, W, C).
            weight = weight.reshape(total_out, last_channels, side, side).transpose(0, 2, 3, 1)
            weight = weight.reshape(total_out, total_in)
        kernel = weight.T  # (in, out)
        if n_towers > 1 and output_layer:
            kernel = kernel.reshape(n_towers, total_in // n_towers, total_out)
        elif n_towers > 1:
            kernel = kernel.reshape(total_in, n_towers, total_out // n_towers).transpose(1, 0, 2)
            bias = bias.reshape(n_towers, total_out // n_towers)
        params[name] = {"kernel": np.ascontiguousarray(kernel), "bias": bias}
    return params


def load_torch_weights(
    path: str | os.PathLike,
    variant: str = "paper",
    num_classes: int | None = None,
    towers: int | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Reads a `.pth` state dict and converts it with `torch_state_dict_to_flax`.

    The file is read with `torch.load(..., weights_only=True)`: only tensors
    and plain containers are unpickled, never arbitrary code. A checkpoint
    that wraps the state dict under 'state_dict' or 'model' is unwrapped.
    Needs PyTorch installed (`pip install torch`).
    """
    try:
        import torch
    except ImportError as error:
        raise MissingPackageError(
            "Reading .pth files needs PyTorch, which is an optional dependency: pip install torch"
        ) from error
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"No weights file at {path!r}.")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError or RuntimeError here
        raise ConfigError(
            f"Could not read {path!r} as a weights-only PyTorch file ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). Only state dicts of tensors are "
            "accepted; re-save the model with torch.save(model.state_dict(), path)."
        ) from error
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{path!r} holds a {type(loaded).__name__}, not a state dict of tensors.")
    return torch_state_dict_to_flax(loaded, variant=variant, num_classes=num_classes, towers=towers)
