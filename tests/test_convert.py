"""PyTorch weight import: key layouts, file loading, and the errors users see."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from alexnet_jax.convert import load_torch_weights, torch_state_dict_to_flax
from alexnet_jax.models import AlexNet
from reference.torch_alexnet import TorchvisionAlexNet, paper_alexnet, scale_weights, small_alexnet


def logits_agree(torch_model, params, variant, num_classes=10, size=32):
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype(np.float32)
    with torch.no_grad():
        expected = (
            torch_model.double().eval()(torch.tensor(x.transpose(0, 3, 1, 2)).double()).numpy()
        )
    ours = np.asarray(AlexNet(num_classes, variant).apply({"params": params}, jnp.asarray(x)))
    return np.abs(ours - expected).max() / np.abs(expected).max() < 1e-5


def test_plain_sequential_keys_convert():
    # A tutorial-style single nn.Sequential: keys '0.weight', '4.weight', ...
    reference = small_alexnet(10)
    flat = torch.nn.Sequential(*reference.features, torch.nn.Flatten(), *reference.classifier)
    scale_weights(flat, gains={0: 60.0, 1: 3.0})
    assert "0.weight" in flat.state_dict()
    params = torch_state_dict_to_flax(flat.state_dict(), "small")
    assert logits_agree(flat, params, "small")


def test_dataparallel_prefix_is_stripped():
    reference = scale_weights(small_alexnet(10, towers=1))
    prefixed = {f"module.{k}": v for k, v in reference.state_dict().items()}
    params = torch_state_dict_to_flax(prefixed, "small")
    assert logits_agree(reference, params, "small")


def test_num_classes_read_from_last_layer():
    params = torch_state_dict_to_flax(small_alexnet(7).state_dict(), "small")
    assert params["fc8"]["kernel"].shape == (512, 7)
    variables = jax.eval_shape(
        AlexNet(7, "small").init, jax.random.key(0), jnp.zeros((1, 32, 32, 3))
    )
    expected = jax.tree.map(lambda a: a.shape, nn.unbox(variables["params"]))
    assert jax.tree.map(np.shape, params) == expected


def test_paper_ungrouped_conv2_names_key_and_expected_shape():
    state = paper_alexnet(1000).state_dict()
    state["features.4.weight"] = torch.zeros(256, 96, 5, 5)  # groups=1 instead of 2
    with pytest.raises(
        ValueError,
        match=r"'features\.4\.weight' has shape \(256, 96, 5, 5\).*expects \(256, 48, 5, 5\)",
    ):
        torch_state_dict_to_flax(state, "paper")


def test_torchvision_weights_into_paper_variant_are_refused_clearly():
    with pytest.raises(
        ValueError,
        match=r"'features\.0\.weight' has shape \(64, 3, 11, 11\).*expects \(96, 3, 11, 11\)",
    ):
        torch_state_dict_to_flax(TorchvisionAlexNet().state_dict(), "paper")


def test_missing_bias_is_named():
    state = small_alexnet(10).state_dict()
    del state["classifier.6.bias"]
    with pytest.raises(ValueError, match=r"classifier\.6\.weight.*no bias 'classifier\.6\.bias'"):
        torch_state_dict_to_flax(state, "small")


def test_missing_weight_is_named():
    state = paper_alexnet(1000).state_dict()
    del state["features.0.weight"]
    with pytest.raises(
        ValueError, match=r"'features\.0\.bias' but no weight 'features\.0\.weight'"
    ):
        torch_state_dict_to_flax(state, "paper")


def test_missing_layer_lists_what_was_found():
    state = small_alexnet(10).state_dict()
    del state["classifier.3.weight"], state["classifier.3.bias"]
    with pytest.raises(
        ValueError,
        match=r"3 linear weights.*\(512, 1152\), \(512, 512\), \(classes, 512\).*\['classifier\.0\.weight', 'classifier\.6\.weight'\]",
    ):
        torch_state_dict_to_flax(state, "small")


def test_batchnorm_entries_are_refused():
    state = small_alexnet(10, batchnorm=True).state_dict()
    with pytest.raises(ValueError, match=r"running_mean"):
        torch_state_dict_to_flax(state, "small")


def test_unknown_variant():
    with pytest.raises(ValueError, match="'paper', 'owt', 'small'"):
        torch_state_dict_to_flax(small_alexnet(10).state_dict(), "resnet")


def test_load_torch_weights_reads_pth_files(tmp_path):
    reference = scale_weights(small_alexnet(10, towers=2), gains={0: 60.0, 1: 3.0})
    torch.save(reference.state_dict(), tmp_path / "plain.pth")
    torch.save({"state_dict": reference.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    direct = torch_state_dict_to_flax(reference.state_dict(), "small", towers=2)
    for name in ("plain.pth", "wrapped.pth"):
        loaded = load_torch_weights(tmp_path / name, "small", towers=2)
        jax.tree.map(np.testing.assert_array_equal, loaded, direct)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        expected = reference.double().eval()(torch.tensor(x.transpose(0, 3, 1, 2)).double()).numpy()
    ours = np.asarray(AlexNet(10, "small", towers=2).apply({"params": direct}, jnp.asarray(x)))
    assert np.abs(ours - expected).max() / np.abs(expected).max() < 1e-5


class NotATensor:
    """Unpickling this would need arbitrary code; weights_only refuses it."""


def test_load_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"payload": NotATensor()}, path)
    with pytest.raises(ValueError, match="weights-only"):
        load_torch_weights(path, "small")


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No weights file"):
        load_torch_weights(tmp_path / "nope.pth", "small")


def test_load_non_dict(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="not a state dict"):
        load_torch_weights(path, "small")
