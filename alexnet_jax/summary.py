"""A readable table of an AlexNet: each stage's output shape and each layer's parameters."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from alexnet_jax.models import AlexNet, count_params


def model_summary(model: AlexNet, image_size: int) -> str:
    """Returns a text table for `model` applied to (1, image_size, image_size, 3) images.

    Shapes come from `jax.eval_shape`, so nothing is allocated or computed.
    Tower kernels are shown as `towers x (per-tower kernel shape)`.
    """
    images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), images)
    logits, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, mutable=["intermediates"]), variables, images
    )
    params = nn.unbox(variables["params"])
    towers = model.resolved()["towers"]

    def kernel_text(layer: str) -> str:
        shape = params[layer]["kernel"].shape
        inner = "x".join(map(str, shape[1:] if towers > 1 else shape))
        return f"{towers} x {inner}" if towers > 1 else inner

    rows = [("layer", "output", "parameters", "kernel")]
    for name, (value,) in state["intermediates"].items():
        layer, stage = name.split("_")
        shape = "x".join(map(str, value.shape[1:]))
        if stage == "act":
            rows.append((layer, shape, f"{count_params(params[layer]):,}", kernel_text(layer)))
        else:
            rows.append((f"  {stage}", shape, "", ""))
    head = f"fc{len(model.architecture.hidden_features) + 6}"
    rows.append((head, str(logits.shape[-1]), f"{count_params(params[head]):,}", kernel_text(head)))
    rows.append(("total", "", f"{count_params(params):,}", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(
            cell.ljust(w) if i in (0, 1, 3) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    settings = model.resolved()
    header = (
        f"AlexNet variant={model.variant!r} towers={towers} normalization={settings['normalization']!r} "
        f"init={settings['init_scheme']!r} input={image_size}x{image_size}x3"
    )
    return "\n".join([header] + [line.rstrip() for line in lines])
