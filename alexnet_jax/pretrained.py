"""Starting a run from pretrained weights (`--config.init_from=PATH`).

PATH is one of:
- a PyTorch `.pth` / `.pt` state dict in torchvision's layout (e.g.
  torchvision's `alexnet-owt-7be5be79.pth`, read by
  `convert.load_torch_weights` with `weights_only=True`);
- one of this package's training workdirs, its `checkpoints/` directory
  (the latest checkpoint), or one numbered checkpoint in it
  (`runs/default/checkpoints/460`).

Every layer's parameters must have the shapes of the configured model,
except the classifier head's class dimension: when the class counts differ,
the head keeps the fresh initialisation of the model (logged), which is how
a network pretrained on one label set is fine-tuned on another. Any other
difference is an error naming the layer and both shapes. `reinit_layers`
keeps chosen layers fresh whatever their shapes (a head of as many, but
other, classes).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
from absl import logging

from alexnet_jax import checkpoints, convert, distributed, sharding
from alexnet_jax.config_values import config_items
from alexnet_jax.errors import ConfigError, MissingFileError
from alexnet_jax.models import head_layer
from alexnet_jax.optim import layer_of

TORCH_SUFFIXES = (".pth", ".pt")


class PretrainedError(ConfigError):
    """The pretrained weights cannot start this model; the message names the layer and the fix."""


def read_weights(path: str, variant: str, towers: int) -> dict:
    """The parameters stored at `path` as a nested dict of numpy arrays (layout of `AlexNet(variant, towers)`)."""
    path = os.path.expanduser(os.fspath(path))
    if path.endswith(TORCH_SUFFIXES):
        return convert.load_torch_weights(path, variant=variant, towers=towers)
    if not os.path.exists(path):
        raise MissingFileError(
            f"init_from={path!r} does not exist; give a PyTorch state dict ({', '.join(TORCH_SUFFIXES)}) or a "
            "training workdir (or its checkpoints/ directory, or one numbered checkpoint in it)."
        )
    if os.path.isfile(path):
        raise PretrainedError(
            f"init_from={path!r} is a file but not a PyTorch state dict ({', '.join(TORCH_SUFFIXES)}); give a .pth "
            "file or a training workdir."
        )
    head, tail = os.path.split(os.path.normpath(path))
    if tail.isdigit() and os.path.basename(head) == checkpoints.CHECKPOINT_SUBDIR:
        return checkpoints.load_params(head, step=int(tail))
    return checkpoints.load_params(path)


def merge_pretrained(
    pretrained: dict, fresh_shapes: dict, source: str, reinit: Sequence[str] = ()
) -> tuple[dict, list[str]]:
    """Checks `pretrained` against the model's parameter shapes; which leaves to keep fresh.

    Args:
      pretrained: nested dict of arrays, as from `read_weights`.
      fresh_shapes: the model's parameter tree (arrays or ShapeDtypeStructs).
      source: where `pretrained` came from, for messages.
      reinit: layers that keep the fresh initialisation whatever was saved for
        them (e.g. `['fc8']` for a head of as many, but other, classes; a
        layer's batch norm goes with it, `bn2` with `conv2`).

    Returns:
      (pretrained params restricted to the model's tree, as float32 numpy
      arrays with `None` for the leaves that keep the fresh initialisation;
      the names of the re-initialised layers, e.g. `['fc8']`).

    Raises:
      PretrainedError: a layer is missing or extra, or has another shape than
        the model's (other than the head's class dimension).
    """
    missing = sorted(set(fresh_shapes) - set(pretrained))
    extra = sorted(set(pretrained) - set(fresh_shapes))
    if missing or extra:
        raise PretrainedError(
            f"The weights in {source} do not fit the configured model: "
            + "; ".join(
                part
                for part in (
                    f"layers missing there: {missing}" if missing else "",
                    f"layers the model does not have: {extra}" if extra else "",
                )
                if part
            )
            + ". Check --config.model, --config.towers and --config.normalization."
        )
    head = head_layer(fresh_shapes)
    unknown = [layer for layer in reinit if layer not in {layer_of(name) for name in fresh_shapes}]
    if unknown:
        raise PretrainedError(
            f"Cannot re-initialise {unknown}: the model's layers are {', '.join(fresh_shapes)}."
        )
    merged, reinitialised = {}, []
    for layer, fresh in fresh_shapes.items():
        if layer_of(layer) in reinit:  # kept fresh whatever was saved for it (bn2 goes with conv2)
            merged[layer] = {name: None for name in fresh}
            reinitialised.append(layer)
            continue
        merged[layer] = {}
        if set(fresh) != set(pretrained[layer]):
            raise PretrainedError(
                f"Layer {layer} in {source} has parameters {sorted(pretrained[layer])}, the model "
                f"{sorted(fresh)}."
            )
        differs = {
            name: (tuple(np.shape(pretrained[layer][name])), tuple(fresh[name].shape))
            for name in fresh
            if tuple(np.shape(pretrained[layer][name])) != tuple(fresh[name].shape)
        }
        class_dimension_only = layer == head and all(
            len(got) == len(want) and got[:-1] == want[:-1] for got, want in differs.values()
        )
        if differs and not class_dimension_only:
            details = ", ".join(f"{name} {got} vs {want}" for name, (got, want) in differs.items())
            raise PretrainedError(
                f"Layer {layer}: the weights in {source} have shapes that the configured model does not "
                f"(pretrained vs model: {details}). Only the classifier {head}'s class count may differ; check "
                "--config.model, --config.towers and --config.image_size (fc6's input depends on it), or start the "
                f"layer afresh with --config.reinit_layers={layer}."
            )
        if differs:
            reinitialised.append(layer)
        for name in fresh:
            merged[layer][name] = (
                None if differs else np.asarray(pretrained[layer][name], np.float32)
            )
    return merged, reinitialised


def load_pretrained(
    path: str, variant: str, towers: int, fresh_shapes: dict, reinit: Sequence[str] = ()
) -> dict:
    """`read_weights` + `merge_pretrained`, logging what was loaded and what was re-initialised."""
    merged, reinitialised = merge_pretrained(
        read_weights(path, variant, towers), fresh_shapes, path, reinit
    )
    logging.info("initialised from %s", path)
    for layer in reinitialised:
        why = (
            "as asked (reinit_layers)"
            if layer in reinit
            else "the pretrained weights have another number of classes"
        )
        logging.info("%s re-initialised: %s", layer, why)
    return merged


def replace_params(params: Any, merged: dict, put) -> Any:
    """`params` with every non-None leaf of `merged` put in its place by `put(host_array, like=old_leaf)`."""
    return {
        layer: {
            name: leaf if merged[layer][name] is None else put(merged[layer][name], leaf)
            for name, leaf in leaves.items()
        }
        for layer, leaves in params.items()
    }


def init_state(config, model, state):
    """The train `state` with the pretrained parameters of `config.init_from` put in (on every
    process, in the state's shardings); `config.reinit_layers` and a head of another class count
    stay as initialised."""
    towers = model.resolved()["towers"]
    reinit = tuple(str(name) for name in config_items(config.get("reinit_layers", ())))
    merged = distributed.everywhere(
        lambda: load_pretrained(config.init_from, config.model, towers, state.params, reinit)
    )

    def put(host, like):
        return sharding.put_global(host.astype(like.dtype), like.sharding)

    return state.replace(params=replace_params(state.params, merged, put))
