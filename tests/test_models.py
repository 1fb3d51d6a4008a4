"""AlexNet variants against independent PyTorch models, the paper's numbers and numpy."""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from alexnet_jax.convert import torch_state_dict_to_flax
from alexnet_jax.errors import ConfigError
from alexnet_jax.models import (
    NETWORK_KEYS,
    AlexNet,
    count_params,
    from_config,
    layer_widths,
    max_pool,
    vmap_over_towers,
)
from reference.torch_alexnet import TorchvisionAlexNet, paper_alexnet, scale_weights, small_alexnet


def images(n, size, seed=0):
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype(np.float32)


def torch_logits(model, x_nhwc):
    model = model.double().eval()
    with torch.no_grad():
        return model(torch.tensor(x_nhwc.transpose(0, 3, 1, 2)).double()).numpy()


def flax_logits(model, params, x, **kwargs):
    return np.asarray(
        jax.jit(lambda p, x: model.apply({"params": p}, x, **kwargs))(params, jnp.asarray(x))
    )


def shapes(model, size, batch=1):
    """Parameter shapes from jax.eval_shape (nothing is allocated)."""
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((batch, size, size, 3)))
    return nn.unbox(variables["params"])


def conv_params(kh, cin, cout):
    return kh * kh * cin * cout + cout


# ---------------------------------------------------------------- parameter counts


def test_paper_parameter_count_is_the_papers():
    params = shapes(AlexNet(1000, "paper"), 224)
    per_layer = {name: count_params(p) for name, p in params.items()}
    assert per_layer == {  # REFERENCE: the paper's two-tower model
        "conv1": 34_944,
        "conv2": 307_456,
        "conv3": 885_120,
        "conv4": 663_936,
        "conv5": 442_624,
        "fc6": 37_752_832,
        "fc7": 16_781_312,
        "fc8": 4_097_000,
    }
    assert count_params(params) == 60_965_224


def test_paper_towers_are_explicit_in_the_parameter_tree():
    params = shapes(AlexNet(1000, "paper"), 224)
    assert params["conv1"]["kernel"].shape == (2, 11, 11, 3, 48)
    assert params["conv2"]["kernel"].shape == (2, 5, 5, 48, 128)  # own tower's 48 maps only
    assert params["conv3"]["kernel"].shape == (2, 3, 3, 256, 192)  # both towers' 256 maps
    assert params["conv4"]["kernel"].shape == (2, 3, 3, 192, 192)
    assert params["conv5"]["kernel"].shape == (2, 3, 3, 192, 128)
    assert params["fc6"]["kernel"].shape == (2, 9216, 2048)
    assert params["fc8"]["kernel"].shape == (2, 2048, 1000)
    boxed = jax.eval_shape(
        AlexNet(1000, "paper").init, jax.random.key(0), jnp.zeros((1, 224, 224, 3))
    )["params"]
    specs = nn.get_partition_spec(boxed)
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        assert specs[name]["kernel"][0] == "tower", name


def test_owt_parameter_count_is_torchvisions():
    reference = sum(p.numel() for p in TorchvisionAlexNet(1000).parameters())
    assert reference == 61_100_840
    assert count_params(shapes(AlexNet(1000, "owt"), 224)) == reference


@pytest.mark.parametrize("towers", [1, 2])
def test_small_parameter_count(towers):
    reference = sum(p.numel() for p in small_alexnet(10, towers=towers).parameters())
    widths, kernels = (64, 128, 192, 192, 128), (5, 5, 3, 3, 3)
    cins = (3, 64 // towers, 128, 192 // towers, 192 // towers)
    by_hand = sum(conv_params(k, c, w) for k, c, w in zip(kernels, cins, widths))
    by_hand += 1152 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
    assert reference == by_hand
    assert count_params(shapes(AlexNet(10, "small", towers=towers), 32)) == reference


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("pooling", ["overlapping", "non_overlapping"])
def test_paper_intermediate_shapes_55_27_13_6(pooling):
    model = AlexNet(1000, "paper", pooling=pooling)
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
    logits, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, mutable=["intermediates"]),
        variables,
        jnp.zeros((2, 224, 224, 3)),
    )
    got = {name: value[0].shape for name, value in state["intermediates"].items()}
    assert got == {
        "conv1_act": (2, 55, 55, 96),
        "conv1_lrn": (2, 55, 55, 96),
        "conv1_pool": (2, 27, 27, 96),
        "conv2_act": (2, 27, 27, 256),
        "conv2_lrn": (2, 27, 27, 256),
        "conv2_pool": (2, 13, 13, 256),
        "conv3_act": (2, 13, 13, 384),
        "conv4_act": (2, 13, 13, 384),
        "conv5_act": (2, 13, 13, 256),
        "conv5_pool": (2, 6, 6, 256),
        "fc6_act": (2, 4096),
        "fc7_act": (2, 4096),
    }
    assert logits.shape == (2, 1000) and logits.dtype == jnp.float32


# ---------------------------------------------------------------- against torch


def test_paper_logits_equal_torch_groups2_with_per_tower_lrn():
    # Weights scaled up so that conv1/conv2 activations reach the hundreds:
    # there LRN divides by up to ~5 and ~17 instead of the near-constant
    # 2**0.75 it applies to O(1) activations, so a wrong LRN shows.
    reference = scale_weights(paper_alexnet(1000, lrn="tower"), gains={0: 100.0, 1: 4.0})
    params = torch_state_dict_to_flax(reference.state_dict(), "paper")
    x = images(2, 224)
    expected = torch_logits(reference, x)
    ours = flax_logits(AlexNet(1000, "paper"), params, x)
    scale = np.abs(expected).max()
    assert scale > 10 and expected.std() > 1  # logits far from constant
    assert np.abs(ours - expected).max() / scale < 1e-5

    # Controls: the comparison can tell LRN within towers from LRN across the
    # tower boundary, and from no LRN at all.
    across = paper_alexnet(1000, lrn="all")
    across.load_state_dict(reference.state_dict())
    assert np.abs(ours - torch_logits(across, x)).max() / scale > 1e-3
    without = flax_logits(AlexNet(1000, "paper", normalization="none"), params, x)
    assert np.abs(without - expected).max() / scale > 0.1


@pytest.mark.parametrize("size", [224, 256])
def test_owt_logits_equal_torchvision_layout_model(size):
    reference = scale_weights(TorchvisionAlexNet(1000), seed=1)
    params = torch_state_dict_to_flax(reference.state_dict(), "owt")
    x = images(2, size, seed=1)
    expected = torch_logits(reference, x)
    ours = flax_logits(AlexNet(1000, "owt"), params, x)
    assert np.abs(expected).max() > 0.5 and expected.std() > 0.1
    assert np.abs(ours - expected).max() < 1e-4


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(towers=2),
        dict(towers=2, norm_position="after_pool"),
        dict(norm_position="after_pool"),
        dict(pooling="non_overlapping"),
        dict(normalization="none"),
        dict(towers=2, activation="tanh"),
        dict(activation="sigmoid"),
        dict(residual=True),
        dict(residual=True, towers=2),
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "default",
)
def test_small_logits_equal_torch(options):
    towers = options.get("towers", 1)
    pool = {"overlapping": (3, 2), "non_overlapping": (2, 2)}[options.get("pooling", "overlapping")]
    activation = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}[
        options.get("activation", "relu")
    ]
    spatial = 3 if pool == (3, 2) else 4  # 32 -> 16 -> 8 -> 4 with 2/2 pools
    reference = small_alexnet(
        10,
        spatial=spatial,
        towers=towers,
        lrn=None if options.get("normalization") == "none" else "tower",
        order=options.get("norm_position", "before_pool"),
        pool=pool,
        activation=activation,
        residual=options.get("residual", False),
    )
    reference = scale_weights(reference, gains={0: 60.0, 1: 3.0}, seed=2)
    params = torch_state_dict_to_flax(reference.state_dict(), "small", towers=towers)
    x = images(3, 32, seed=2)
    expected = torch_logits(reference, x)
    ours = flax_logits(AlexNet(10, "small", **options), params, x)
    scale = np.abs(expected).max()
    assert expected.std() > 1e-2
    assert np.abs(ours - expected).max() / scale < 1e-5


@pytest.mark.parametrize("towers,residual", [(1, False), (2, False), (1, True)])
def test_small_batchnorm_train_mode_equals_torch(towers, residual):
    reference = small_alexnet(10, towers=towers, lrn=None, batchnorm=True, residual=residual)
    reference = scale_weights(reference, seed=3).double().train()
    reference.classifier.eval()  # batch norm in training mode, dropout off
    state = reference.state_dict()
    weighted = {
        k.rsplit(".", 1)[0] for k, v in state.items() if k.endswith("weight") and v.ndim in (2, 4)
    }
    params = torch_state_dict_to_flax(  # batch norm starts at scale 1, bias 0 on both sides
        {k: v for k, v in state.items() if k.rsplit(".", 1)[0] in weighted}, "small", towers=towers
    )
    model = AlexNet(
        10, "small", towers=towers, normalization="batchnorm", dropout_rate=0.0, residual=residual
    )
    x = images(4, 32, seed=3)
    # compiled whole: op by op, init and apply are hundreds of small programs (twice the time)
    variables = jax.jit(model.init)(jax.random.key(0), jnp.asarray(x))
    variables = {
        "params": {**nn.unbox(variables["params"]), **params},
        "batch_stats": variables["batch_stats"],
    }
    apply = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))
    ours, updates = apply(variables, jnp.asarray(x))
    with torch.no_grad():
        expected = reference(torch.tensor(x.transpose(0, 3, 1, 2)).double()).numpy()
    np.testing.assert_allclose(
        np.asarray(ours), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()
    )
    # running statistics moved towards the batch statistics
    assert not np.allclose(np.asarray(updates["batch_stats"]["bn1"]["mean"]), 0.0)


def test_vmap_over_towers_gives_the_same_logits():
    model = AlexNet(10, "small", towers=2)
    x = jnp.asarray(images(2, 32))
    params = nn.unbox(model.init(jax.random.key(1), x)["params"])
    looped = model.apply({"params": params}, x)
    vmapped = AlexNet(10, "small", towers=2, tower_map=vmap_over_towers).apply(
        {"params": params}, x
    )
    np.testing.assert_allclose(np.asarray(vmapped), np.asarray(looped), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- dropout placement


def test_dropout_placement_paper_vs_torchvision():
    """With rate 1 dropout zeroes exactly the layers it sits on, which pins its position."""
    x = jnp.asarray(images(2, 32))
    rngs = {"dropout": jax.random.key(0)}
    paper_style = AlexNet(10, "small", dropout_rate=1.0)  # on fc6/fc7 outputs
    params = nn.unbox(paper_style.init(jax.random.key(1), x)["params"])
    out = np.asarray(paper_style.apply({"params": params}, x, train=True, rngs=rngs))
    np.testing.assert_array_equal(
        out, np.broadcast_to(np.asarray(params["fc8"]["bias"]), out.shape)
    )

    # on fc6/fc7 inputs; at the smallest input, 63x63 (the placement does not depend on the size)
    torchvision_style = AlexNet(1000, "owt", dropout_rate=1.0)
    x63 = jnp.asarray(images(2, 63))
    params = nn.unbox(jax.jit(torchvision_style.init)(jax.random.key(1), x63)["params"])
    out = np.asarray(torchvision_style.apply({"params": params}, x63, train=True, rngs=rngs))
    fc7 = {k: np.asarray(v, np.float64) for k, v in params["fc7"].items()}
    fc8 = {k: np.asarray(v, np.float64) for k, v in params["fc8"].items()}
    expected = np.maximum(fc7["bias"], 0) @ fc8["kernel"] + fc8["bias"]
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), rtol=1e-5, atol=1e-6)


def test_paper_dropout_is_on_fc6_fc7_outputs_at_rate_one_half():
    model = AlexNet(1000, "paper")
    x = jnp.asarray(images(2, 63))  # the smallest input: fc6 still has its 4096 outputs
    params = nn.unbox(jax.jit(model.init)(jax.random.key(1), x[:1])["params"])
    # Rate 1 zeroes fc7's output: only fc8's bias is left.
    out = model.clone(dropout_rate=1.0).apply(
        {"params": params}, x, train=True, rngs={"dropout": jax.random.key(0)}
    )
    np.testing.assert_array_equal(
        np.asarray(out), np.broadcast_to(np.asarray(params["fc8"]["bias"]), out.shape)
    )
    # The default rate: of fc6's positive outputs, about half are dropped and
    # the rest scaled by 1 / (1 - 0.5) (inverted dropout).
    rngs = {"dropout": jax.random.key(0)}
    _, train = model.apply({"params": params}, x, train=True, rngs=rngs, mutable=["intermediates"])
    _, evaluation = model.apply({"params": params}, x, mutable=["intermediates"])
    trained = np.asarray(train["intermediates"]["fc6_act"][0])
    clean = np.asarray(evaluation["intermediates"]["fc6_act"][0])
    active = clean > 0
    kept = trained[active] != 0
    assert active.sum() > 1000 and abs(kept.mean() - 0.5) < 0.03
    np.testing.assert_allclose(trained[active][kept], 2 * clean[active][kept], rtol=1e-5)


def test_too_small_images_are_refused_with_the_minimum():
    with pytest.raises(ValueError, match="at least 63x63"):
        AlexNet(10, "owt").init(jax.random.key(0), jnp.zeros((1, 62, 62, 3)))
    # torchvision's minimum too
    jax.eval_shape(AlexNet(10, "owt").init, jax.random.key(0), jnp.zeros((1, 63, 63, 3)))


def test_dropout_active_only_in_training():
    model = AlexNet(10, "small")
    x = jnp.asarray(images(4, 32))
    params = nn.unbox(model.init(jax.random.key(1), x)["params"])
    eval_a = model.apply({"params": params}, x)
    eval_b = model.apply({"params": params}, x, train=False)
    train_a = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(5)})
    train_b = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(5)})
    train_c = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(6)})
    np.testing.assert_array_equal(np.asarray(eval_a), np.asarray(eval_b))
    np.testing.assert_array_equal(np.asarray(train_a), np.asarray(train_b))
    assert not np.allclose(np.asarray(train_a), np.asarray(eval_a))
    assert not np.allclose(np.asarray(train_a), np.asarray(train_c))


# ---------------------------------------------------------------- initialization


def test_paper_init_statistics():
    model = AlexNet(1000, "paper")
    params = nn.unbox(jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 224, 224, 3)))["params"])
    for name, layer in params.items():
        kernel = np.asarray(layer["kernel"])
        assert abs(kernel.std() - 0.01) < 0.0005, (name, kernel.std())
        assert abs(kernel.mean()) < 0.001, name
        for tower in range(2):
            assert abs(kernel[tower].std() - 0.01) < 0.0006, (name, tower)
    # the paper: biases 1 in conv2, conv4, conv5 and the fully connected hidden
    # layers, 0 in the remaining layers
    for name, value in {
        "conv1": 0,
        "conv2": 1,
        "conv3": 0,
        "conv4": 1,
        "conv5": 1,
        "fc6": 1,
        "fc7": 1,
        "fc8": 0,
    }.items():
        np.testing.assert_array_equal(np.asarray(params[name]["bias"]), value, err_msg=name)


def test_he_init_counts_fan_in_without_the_tower_axis():
    model = AlexNet(1000, "paper", init_scheme="he")
    params = nn.unbox(jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 224, 224, 3)))["params"])
    fan_in = {
        "conv1": 11 * 11 * 3,
        "conv2": 5 * 5 * 48,  # own tower's 48 maps
        "conv3": 3 * 3 * 256,
        "conv4": 3 * 3 * 192,
        "conv5": 3 * 3 * 192,
        "fc6": 9216,
        "fc7": 4096,
        "fc8": 4096,  # both towers' halves of fc7
    }
    for name, fan in fan_in.items():
        std = np.asarray(params[name]["kernel"]).std()
        assert abs(std / np.sqrt(2.0 / fan) - 1) < 0.03, (name, std)
        np.testing.assert_array_equal(np.asarray(params[name]["bias"]), 0.0)


def test_torch_init_matches_pytorch_default_bounds():
    model = AlexNet(1000, "owt")  # default init_scheme='torch'
    params = nn.unbox(jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 224, 224, 3)))["params"])
    layers = [
        m
        for m in TorchvisionAlexNet().modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    for name, module in zip(params, layers):
        kernel, bias = np.asarray(params[name]["kernel"]), np.asarray(params[name]["bias"])
        w, b = module.weight.detach().numpy(), module.bias.detach().numpy()
        assert abs(kernel.std() / w.std() - 1) < 0.05, name
        assert (
            kernel.max() <= np.abs(w).max() * 1.01
            and abs(kernel.max() / np.abs(w).max() - 1) < 0.05
        ), name
        assert abs(np.abs(bias).max() / np.abs(b).max() - 1) < 0.1, name


# ---------------------------------------------------------------- dtypes and errors


@pytest.mark.parametrize("towers", [1, 2])
def test_bfloat16_compute_returns_float32_logits_close_to_float32(towers):
    model32 = AlexNet(10, "small", towers=towers)
    x = jnp.asarray(images(4, 32))
    params = nn.unbox(model32.init(jax.random.key(0), x)["params"])
    logits32 = np.asarray(model32.apply({"params": params}, x))
    logits16, state = model32.clone(dtype=jnp.bfloat16).apply(
        {"params": params}, x, mutable=["intermediates"]
    )
    assert logits16.dtype == jnp.float32
    assert state["intermediates"]["conv1_act"][0].dtype == jnp.bfloat16  # computed in bfloat16
    assert state["intermediates"]["fc7_act"][0].dtype == jnp.bfloat16
    assert np.abs(np.asarray(logits16) - logits32).max() < 0.05 * np.abs(logits32).max()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(variant="vgg"), "'paper', 'owt', 'small'"),
        (dict(variant="paper", towers=3), "towers=3"),
        (dict(variant="small", normalization="layernorm"), "'lrn', 'batchnorm', 'none'"),
        (dict(variant="small", activation="gelu"), "'relu', 'tanh', 'sigmoid'"),
        (dict(variant="small", pooling="avg"), "'overlapping', 'non_overlapping'"),
        (dict(variant="small", init_scheme="xavier"), "'paper', 'he', 'lecun', 'torch'"),
        (dict(variant="small", norm_position="middle"), "'before_pool', 'after_pool'"),
    ],
)
def test_bad_options_name_the_valid_ones(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AlexNet(10, **kwargs).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_rejects_channels_first_images():
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        AlexNet(10, "small").init(jax.random.key(0), jnp.zeros((1, 3, 32, 32)))


# ---------------------------------------------------------------- max-pooling gradient


@pytest.mark.parametrize("window,stride", [(3, 2), (2, 2), (2, 3), (3, 1)])
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_value_and_gradient_equal_torch(window, stride, ties):
    """models.max_pool and its gradient against torch's max_pool2d: the first maximum gets it on ties."""
    rng = np.random.default_rng(3)
    # With ties, small integers make most windows hold several equal maxima:
    # only the first (row-major) may get the gradient, as in torch.
    x = rng.integers(0, 3, (2, 13, 13, 5)) if ties else rng.normal(size=(2, 13, 13, 5))
    x = x.astype(np.float32)
    if ties:
        assert (x == 2).sum() > x.size // 4  # the control: many windows tie
    grad_out = rng.normal(
        size=(2, (13 - window) // stride + 1, (13 - window) // stride + 1, 5)
    ).astype(np.float32)
    y, vjp = jax.vjp(lambda a: max_pool(a, window, stride), jnp.asarray(x))
    (grad_x,) = jax.jit(vjp)(jnp.asarray(grad_out))

    tx = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, window, stride)
    ty.backward(torch.tensor(grad_out.transpose(0, 3, 1, 2), dtype=torch.float64))
    np.testing.assert_array_equal(np.asarray(y), ty.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_allclose(
        np.asarray(grad_x), tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-6
    )
    # Each window's gradient lands once: the totals agree.
    np.testing.assert_allclose(float(grad_x.sum()), float(grad_out.sum()), rtol=1e-5)


def test_max_pool_with_a_tower_axis_equals_torch():
    """(towers, N, H, W, C) input, as the paper model pools it, against torch pooling every (tower, image) alone."""
    x = np.random.default_rng(4).normal(size=(2, 3, 27, 27, 4)).astype(np.float32)
    g = np.random.default_rng(5).normal(size=(2, 3, 13, 13, 4)).astype(np.float32)
    y, vjp = jax.vjp(lambda a: max_pool(a, 3, 2), jnp.asarray(x))
    (grad_x,) = vjp(jnp.asarray(g))

    def nchw(a):  # (towers, N, H, W, C) -> (towers * N, C, H, W)
        return torch.tensor(
            a.reshape((-1,) + a.shape[2:]).transpose(0, 3, 1, 2), dtype=torch.float64
        )

    def back(t, shape):
        return t.numpy().transpose(0, 2, 3, 1).reshape(shape)

    tx = nchw(x).requires_grad_()
    ty = torch.nn.functional.max_pool2d(tx, 3, 2)
    ty.backward(nchw(g))
    np.testing.assert_array_equal(np.asarray(y), back(ty.detach(), g.shape))
    np.testing.assert_allclose(np.asarray(grad_x), back(tx.grad, x.shape), rtol=1e-6, atol=1e-6)


# The keys of configs/default.py's "Model" section, with a value other than the default's.
MODEL_KEYS = {
    "num_classes": 7,
    "model": "owt",
    "towers": 2,
    "normalization": "batchnorm",
    "norm_position": "after_pool",
    "pooling": "non_overlapping",
    "dropout_rate": 0.25,
    "activation": "tanh",
    "init_scheme": "paper",
    "conv_features": (32, 64),
    "hidden_features": (),
    "residual": True,
    "half_precision": True,
}


def test_every_model_key_of_the_config_reaches_the_model():
    """from_config reads fields by name: a key renamed on one side only would be ignored silently."""
    from configs import default

    base = from_config(default.get_config())
    assert (base.variant, base.towers, base.dtype) == ("small", 1, jnp.float32)
    for key, value in MODEL_KEYS.items():
        config = default.get_config()
        assert key in config, key
        assert config[key] != value, key
        config[key] = value
        changed = {
            field.name
            for field in dataclasses.fields(AlexNet)
            if field.name != "parent"
            and getattr(from_config(config), field.name) != getattr(base, field.name)
        }
        expected = {"model": "variant", "half_precision": "dtype"}.get(key, key)
        assert changed == {expected}, (key, changed)
    assert from_config(default.get_config(), towers=2).towers == 2  # keyword arguments win
    # the keys that tell two trained networks apart are model keys (dropout and init are not among them)
    assert set(NETWORK_KEYS) < set(MODEL_KEYS) and {"dropout_rate", "init_scheme"}.isdisjoint(
        NETWORK_KEYS
    )


def test_layer_widths_read_tuples_and_the_text_of_older_configs():
    from configs import default

    config = default.get_config()
    assert layer_widths(config, "conv_features") is None
    for value, widths in [
        ((64, 128), (64, 128)),
        (("64,128",), (64, 128)),
        ("64,128", (64, 128)),
        ("", None),
        ("none", ()),
        ((), ()),
    ]:
        config = default.get_config().to_dict()
        config["conv_features"] = value
        assert layer_widths(config, "conv_features") == widths, value
    with pytest.raises(ConfigError, match="not a tuple of layer widths"):
        layer_widths({"conv_features": ("64;128",)}, "conv_features")
