"""AlexNet in Flax linen: the paper's two-tower model and its relatives.

Variants (`AlexNet(variant=...)`):

| variant | what it is                                            | input   | params (1000 classes) |
|---------|-------------------------------------------------------|---------|-----------------------|
| `paper` | Krizhevsky et al. 2012, two towers, LRN, 96-256-384-384-256 kernels | 224x224 | 60,965,224 |
| `owt`   | torchvision's single-tower `alexnet` ("one weird trick"), 64-192-384-256-256, no LRN, adaptive 6x6 pool | 224x224 | 61,100,840 |
| `small` | the same layer pattern for 32x32 images (CIFAR, upscaled digits) | 32x32 | 1,842,570 (10 classes) |

The `small` variant: conv1 5x5/1 pad 2 (64) -> LRN -> max-pool 3/2 (32->15),
conv2 5x5/1 pad 2 (128) -> LRN -> max-pool 3/2 (15->7), conv3 3x3 (192),
conv4 3x3 (192), conv5 3x3 (128) -> max-pool 3/2 (7->3), fc 1152->512->512,
dropout on the outputs of fc6 and fc7 as in the paper. Its kernel counts are
the paper's scaled by about a half and stay even, so it also runs as two
towers (`towers=2`).

The towers. In the paper each of two GPUs held half of the kernels of every
layer; conv2, conv4 and conv5 saw only the maps of their own GPU, while conv3
and the fully connected layers saw both. Here this structure is explicit in
the parameter tree: with `towers=2` every kernel and bias has a leading tower
axis of size 2 (logical axis name `'tower'`), e.g. `conv2/kernel` is
`(2, 5, 5, 48, 128)`, and activations between a tower layer and the next
within-tower layer are laid out `(tower, batch, height, width, channels)`.
Within-tower convolutions are computed as one plain convolution per tower,
never as a grouped convolution (`feature_group_count=2`): XLA runs those
6-10x slower per layer on CPU (about 3x for the whole model's
forward/backward) and cannot partition them across devices
(`benchmarks/tower_conv.py`). How the per-tower computation is mapped is the
`tower_map` field: the default loops over towers on one device; a sharded
training step can pass a `shard_map`-based map that puts each tower on its own
device. LRN and batch norm act on each tower's own channels, as each GPU
normalized its own maps. Merged activations list tower 0's channels first,
which is the channel order of torch's `groups=2` convolutions.

Initializations (`init_scheme=`):
- `'paper'`: every weight N(0, 0.01^2); biases 1 in conv2, conv4, conv5, fc6
  and fc7 ("the fully-connected hidden layers"), 0 in conv1, conv3 and fc8.
  The paper model's default, for faithfulness. With it the loss is known to
  stay flat for a long while at first; a bias of 1 on the output layer, as
  some write-ups list it, would shift every logit equally and change nothing.
- `'he'`: He et al. 2015 truncated normal with variance 2/fan_in, biases 0.
  A modern default for ReLU networks that trains from the first step
  (default of `small`).
- `'lecun'`: variance 1/fan_in, biases 0; the right scale for tanh/sigmoid.
- `'torch'`: PyTorch's default for `nn.Conv2d`/`nn.Linear`
  (weights and biases uniform in +-1/sqrt(fan_in)), which is what
  torchvision's `alexnet` trains from (default of `owt`).
Fan-in never counts the tower axis of a tower's own kernel.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from alexnet_jax.config_values import config_items
from alexnet_jax.errors import ConfigError
from alexnet_jax.lrn import local_response_norm

__all__ = [
    "AlexNet",
    "from_config",
    "NETWORK_KEYS",
    "layer_widths",
    "VARIANTS",
    "NORMALIZATIONS",
    "NORM_POSITIONS",
    "POOLINGS",
    "ACTIVATIONS",
    "INITS",
    "loop_over_towers",
    "vmap_over_towers",
    "merge_towers",
    "adaptive_avg_pool",
    "count_params",
    "minimum_image_size",
]


# --------------------------------------------------------------------------
# Architecture tables


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """One convolutional layer of the table; `features` counts all towers."""

    name: str
    features: int
    kernel_size: int
    stride: int
    padding: int
    within_tower: bool  # sees only its own tower's channels (paper: conv2, conv4, conv5)
    lrn: bool  # followed by LRN when normalization='lrn' (paper: layers 1 and 2)
    pool: bool  # followed by max-pooling
    paper_bias: float  # bias under init='paper'


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Everything that differs between variants."""

    convs: tuple[ConvLayer, ...]
    hidden_features: tuple[int, ...]  # fc6, fc7
    pooled_size: int  # adaptive average pool to this size before fc6 (0: none)
    dropout_on: str  # 'outputs' of fc6/fc7 (paper) or 'inputs' of fc6/fc7 (torchvision)
    image_size: int
    towers: int
    normalization: str
    init_scheme: str


def _pattern(features, kernel_sizes, strides, paddings):
    """The AlexNet conv pattern: LRN after 1-2, pools after 1, 2, 5; groups on 2, 4, 5."""
    return tuple(
        ConvLayer(
            name=f"conv{i + 1}",
            features=features[i],
            kernel_size=kernel_sizes[i],
            stride=strides[i],
            padding=paddings[i],
            within_tower=i in (1, 3, 4),
            lrn=i in (0, 1),
            pool=i in (0, 1, 4),
            paper_bias=1.0 if i in (1, 3, 4) else 0.0,
        )
        for i in range(5)
    )


VARIANTS: dict[str, Architecture] = {
    "paper": Architecture(
        convs=_pattern(
            (96, 256, 384, 384, 256), (11, 5, 3, 3, 3), (4, 1, 1, 1, 1), (2, 2, 1, 1, 1)
        ),
        hidden_features=(4096, 4096),
        pooled_size=0,
        dropout_on="outputs",
        image_size=224,
        towers=2,
        normalization="lrn",
        init_scheme="paper",
    ),
    "owt": Architecture(
        convs=_pattern(
            (64, 192, 384, 256, 256), (11, 5, 3, 3, 3), (4, 1, 1, 1, 1), (2, 2, 1, 1, 1)
        ),
        hidden_features=(4096, 4096),
        pooled_size=6,
        dropout_on="inputs",
        image_size=224,
        towers=1,
        normalization="none",
        init_scheme="torch",
    ),
    "small": Architecture(
        convs=_pattern((64, 128, 192, 192, 128), (5, 5, 3, 3, 3), (1, 1, 1, 1, 1), (2, 2, 1, 1, 1)),
        hidden_features=(512, 512),
        pooled_size=0,
        dropout_on="outputs",
        image_size=32,
        towers=1,
        normalization="lrn",
        init_scheme="he",
    ),
}

NORMALIZATIONS = ("lrn", "batchnorm", "none")
NORM_POSITIONS = ("before_pool", "after_pool")
POOLINGS = {"overlapping": (3, 2), "non_overlapping": (2, 2)}  # (window, stride)
ACTIVATIONS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
}
INITS = ("paper", "he", "lecun", "torch")


def _choose(kind: str, value: str, valid) -> str:
    if value not in valid:
        raise ConfigError(
            f"Unknown {kind} {value!r}; choose one of: {', '.join(map(repr, valid))}."
        )
    return value


# --------------------------------------------------------------------------
# Stateless building blocks


def conv2d(
    x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray, stride: int, padding: int
) -> jnp.ndarray:
    """Plain 2-D convolution. x: (N, H, W, Cin), kernel: (kh, kw, Cin, Cout), bias: (Cout,)."""
    y = lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return y + bias


def max_pool(x: jnp.ndarray, window: int, stride: int) -> jnp.ndarray:
    """VALID max-pooling over the (H, W) axes of a (..., H, W, C) array."""
    lead = (1,) * (x.ndim - 3)
    return lax.reduce_window(
        x, -jnp.inf, lax.max, lead + (window, window, 1), lead + (stride, stride, 1), "VALID"
    )


def _averaging_matrix(size_in: int, size_out: int) -> np.ndarray:
    """Rows average the input bins of torch's adaptive pooling: [floor(i*n/m), ceil((i+1)*n/m))."""
    matrix = np.zeros((size_out, size_in), np.float32)
    for i in range(size_out):
        start = (i * size_in) // size_out
        end = -(-((i + 1) * size_in) // size_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def adaptive_avg_pool(x: jnp.ndarray, size: int) -> jnp.ndarray:
    """torch's `AdaptiveAvgPool2d((size, size))` on (N, H, W, C); identity when already size x size."""
    height, width = x.shape[-3], x.shape[-2]
    if (height, width) == (size, size):
        return x
    rows = jnp.asarray(_averaging_matrix(height, size), x.dtype)
    cols = jnp.asarray(_averaging_matrix(width, size), x.dtype)
    return jnp.einsum("oh,nhwc,pw->nopc", rows, x, cols)


def merge_towers(x: jnp.ndarray) -> jnp.ndarray:
    """(towers, N, ..., C) -> (N, ..., towers * C), tower 0's channels first."""
    merged = jnp.moveaxis(x, 0, -2)
    return merged.reshape(merged.shape[:-2] + (-1,))


TowerMap = Callable[[Callable[..., jnp.ndarray], tuple, jnp.ndarray, bool], jnp.ndarray]


def loop_over_towers(fn, tower_params, x, x_per_tower):
    """Default `tower_map`: `fn(*params[t], x[t] or x)` for each tower t, stacked on a new axis 0.

    tower_params: arrays with a leading tower axis; x: (towers, N, ...) when
    `x_per_tower`, else (N, ...) seen by every tower. Each tower gets its own
    plain convolution; on one device XLA runs them one after the other.
    """
    num_towers = tower_params[0].shape[0]
    return jnp.stack(
        [fn(*(p[t] for p in tower_params), x[t] if x_per_tower else x) for t in range(num_towers)]
    )


def vmap_over_towers(fn, tower_params, x, x_per_tower):
    """`tower_map` through `jax.vmap`: XLA turns the batched convs into grouped convs.

    Same result as `loop_over_towers`; kept to measure and test the grouped
    formulation against, not for training.
    """
    in_axes = (0,) * len(tower_params) + (0 if x_per_tower else None,)
    return jax.vmap(fn, in_axes=in_axes)(*tower_params, x)


# --------------------------------------------------------------------------
# Initializers


def _kernel_init(scheme: str, in_axis, batch_axis):
    if scheme == "paper":
        return nn.initializers.normal(stddev=0.01)
    scale, distribution = {
        "he": (2.0, "truncated_normal"),
        "lecun": (1.0, "truncated_normal"),
        # kaiming_uniform(a=sqrt(5)): bound sqrt(6 / ((1 + 5) fan_in)) = sqrt(3 * (1/3) / fan_in).
        "torch": (1.0 / 3.0, "uniform"),
    }[scheme]
    return nn.initializers.variance_scaling(
        scale, "fan_in", distribution, in_axis=in_axis, out_axis=-1, batch_axis=batch_axis
    )


def _bias_init(scheme: str, paper_bias: float, fan_in: int):
    if scheme == "paper":
        return nn.initializers.constant(paper_bias)
    if scheme == "torch":
        bound = 1.0 / np.sqrt(fan_in)
        return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
            key, shape, dtype, -bound, bound
        )
    return nn.initializers.zeros


# --------------------------------------------------------------------------
# Layers with an optional tower axis


class TowerConv(nn.Module):
    """Conv layer; with towers > 1 its kernel is (towers, kh, kw, Cin, Cout / towers).

    Input: (N, H, W, Cin) seen by every tower, or, if `within_tower`,
    (towers, N, H, W, Cin) where tower t sees only x[t].
    Output: (towers, N, H', W', Cout / towers), or (N, H', W', Cout) for one tower.
    """

    layer: ConvLayer
    towers: int
    init_scheme: str
    dtype: Any
    param_dtype: Any
    tower_map: TowerMap

    @nn.compact
    def __call__(self, x):
        layer, towers = self.layer, self.towers
        in_channels = x.shape[-1]
        shape = (layer.kernel_size, layer.kernel_size, in_channels, layer.features // towers)
        axes = ("height", "width", "conv_in", "conv_out")
        batch_axis = ()
        if towers > 1:
            shape, axes, batch_axis = (towers,) + shape, ("tower",) + axes, (0,)
        fan_in = layer.kernel_size * layer.kernel_size * in_channels
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(_kernel_init(self.init_scheme, -2, batch_axis), axes),
            shape,
            self.param_dtype,
        )
        bias = self.param(
            "bias",
            nn.with_logical_partitioning(
                _bias_init(self.init_scheme, layer.paper_bias, fan_in), axes[:-4] + ("conv_out",)
            ),
            shape[:-4] + shape[-1:],
            self.param_dtype,
        )
        x, kernel, bias = x.astype(self.dtype), kernel.astype(self.dtype), bias.astype(self.dtype)

        def conv(kernel, bias, x):
            return conv2d(x, kernel, bias, layer.stride, layer.padding)

        if towers == 1:
            return conv(kernel, bias, x)
        return self.tower_map(conv, (kernel, bias), x, layer.within_tower)


class TowerDense(nn.Module):
    """Fully connected layer with an optional tower axis.

    Hidden layer (`output=False`): input (N, Din) seen by every tower, kernel
    (towers, Din, Dout / towers), output (towers, N, Dout / towers).
    Output layer (`output=True`): input (towers, N, Din / towers), kernel
    (towers, Din / towers, Dout), the towers' products summed: (N, Dout).
    With one tower both are a plain dense layer, kernel (Din, Dout).
    """

    features: int
    output: bool
    paper_bias: float
    towers: int
    init_scheme: str
    dtype: Any
    param_dtype: Any

    @nn.compact
    def __call__(self, x):
        towers = self.towers
        if towers == 1:
            shape, axes, in_axis, batch_axis = (
                (x.shape[-1], self.features),
                ("mlp_in", "mlp_out"),
                -2,
                (),
            )
            bias_shape, bias_axes, fan_in = (self.features,), ("mlp_out",), x.shape[-1]
        elif self.output:
            # The tower axis is part of the input dimension: fan-in counts it.
            shape, axes, in_axis, batch_axis = (
                (towers, x.shape[-1], self.features),
                ("tower", "mlp_in", "mlp_out"),
                (0, 1),
                (),
            )
            bias_shape, bias_axes, fan_in = (self.features,), ("mlp_out",), towers * x.shape[-1]
        else:
            shape = (towers, x.shape[-1], self.features // towers)
            axes, in_axis, batch_axis = ("tower", "mlp_in", "mlp_out"), -2, (0,)
            bias_shape, bias_axes, fan_in = (
                (towers, self.features // towers),
                ("tower", "mlp_out"),
                x.shape[-1],
            )
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(_kernel_init(self.init_scheme, in_axis, batch_axis), axes),
            shape,
            self.param_dtype,
        )
        bias = self.param(
            "bias",
            nn.with_logical_partitioning(
                _bias_init(self.init_scheme, self.paper_bias, fan_in), bias_axes
            ),
            bias_shape,
            self.param_dtype,
        )
        x, kernel, bias = x.astype(self.dtype), kernel.astype(self.dtype), bias.astype(self.dtype)
        if towers == 1:
            return x @ kernel + bias
        if self.output:
            return jnp.einsum("tni,tio->no", x, kernel) + bias
        return jnp.einsum("ni,tio->tno", x, kernel) + bias[:, None, :]


# --------------------------------------------------------------------------
# The model


class AlexNet(nn.Module):
    """AlexNet; `__call__(images, train=False)` maps (N, H, W, 3) images to float32 logits (N, classes).

    Fields left at `None` take the variant's own default (see `VARIANTS`):
    `towers` (paper 2, others 1), `normalization` (paper and small 'lrn',
    owt 'none') and `init_scheme` (paper 'paper', owt 'torch', small 'he').

    Options:
      normalization: 'lrn' after conv1 and conv2 (the paper), 'batchnorm'
        after every conv before the activation, or 'none'.
      norm_position: where LRN goes: 'before_pool' (conv -> act -> LRN ->
        pool, the paper) or 'after_pool' (conv -> act -> pool -> LRN, CaffeNet
        and common tutorial code).
      pooling: 'overlapping' (window 3, stride 2, the paper) or
        'non_overlapping' (2/2); both give 55-27-13-6 at 224.
      dropout_rate: dropout on fc6/fc7 outputs (paper, small) or on the fc6
        and fc7 inputs (owt, as torchvision does); active only with train=True
        and a 'dropout' rng.
      activation: 'relu', 'tanh' or 'sigmoid'.
      conv_features: kernel counts of the conv layers (all towers together),
        replacing the variant's; fewer entries keep only the first layers of
        the pattern (e.g. `(64,)`: conv1 with its LRN and pool only), `()`
        none at all (the classifier sees the pixels). None: the variant's.
      hidden_features: widths of the hidden fully connected layers (fc6,
        fc7, ...), replacing the variant's; `()` for none (the output layer
        sees the conv features). None: the variant's. The output layer is
        always named fc{6 + number of hidden layers}.
      residual: add each conv layer's input to its output (after its batch
        norm, if any, before the activation) wherever the shapes agree, as
        in ResNet's identity shortcuts; in the variants as tabled that is
        conv4 alone.
      lrn_*: the LRN hyper-parameters (see `alexnet_jax.lrn`); the defaults
        are what the paper's code ran, = torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 2).
      dtype: compute dtype (e.g. jnp.bfloat16); parameters stay in
        `param_dtype`, LRN runs in float32 internally, logits are float32.
      tower_map: how per-tower convolutions are applied (`loop_over_towers`
        by default; `alexnet_jax.sharding` supplies one that keeps each tower
        on its own devices).
      merged_constraint: applied to activations where the towers' maps are
        merged (in front of conv3, fc6, fc7); the sharded step uses it to pin
        them to the batch sharding, so the exchange happens exactly there.

    With train=True and normalization='batchnorm', call `apply` with
    `mutable=['batch_stats']`. Activations are recorded with `sow` in the
    'intermediates' collection (conv{i}_act, conv{i}_lrn, conv{i}_pool,
    fc6_act, fc7_act; towers
    merged), e.g. `apply(..., mutable=['intermediates'])`.
    """

    num_classes: int = 1000
    variant: str = "paper"
    towers: int | None = None
    normalization: str | None = None
    norm_position: str = "before_pool"
    pooling: str = "overlapping"
    dropout_rate: float = 0.5
    activation: str = "relu"
    conv_features: tuple[int, ...] | None = None
    hidden_features: tuple[int, ...] | None = None
    residual: bool = False
    init_scheme: str | None = None
    lrn_size: int = 5
    lrn_alpha: float = 1e-4
    lrn_beta: float = 0.75
    lrn_k: float = 2.0
    lrn_divide_alpha_by_size: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    tower_map: TowerMap = loop_over_towers
    merged_constraint: Callable[[jnp.ndarray], jnp.ndarray] | None = None

    @property
    def architecture(self) -> Architecture:
        """The variant's row of `VARIANTS` (ValueError listing the variants if unknown), resized by
        `conv_features` / `hidden_features` when they are set."""
        arch = VARIANTS[_choose("model variant", self.variant, tuple(VARIANTS))]
        if self.conv_features is not None:
            features = tuple(self.conv_features)
            if len(features) > len(arch.convs) or any(
                not isinstance(f, int) or f < 1 for f in features
            ):
                raise ConfigError(
                    f"conv_features={features!r}: give at most {len(arch.convs)} positive kernel counts, one per conv "
                    f"layer of the pattern (variant {self.variant!r} has {', '.join(str(c.features) for c in arch.convs)})."
                )
            convs = tuple(
                dataclasses.replace(layer, features=f) for layer, f in zip(arch.convs, features)
            )
            arch = dataclasses.replace(arch, convs=convs)
        if self.hidden_features is not None:
            hidden = tuple(self.hidden_features)
            if any(not isinstance(f, int) or f < 1 for f in hidden):
                raise ConfigError(
                    f"hidden_features={hidden!r}: give positive layer widths, or () for none."
                )
            arch = dataclasses.replace(arch, hidden_features=hidden)
        return arch

    def resolved(self) -> dict[str, Any]:
        """The variant-dependent settings after defaults, validated."""
        arch = self.architecture
        towers = arch.towers if self.towers is None else self.towers
        widths = [c.features for c in arch.convs] + list(arch.hidden_features)
        if not isinstance(towers, int) or towers < 1 or any(w % towers for w in widths):
            raise ConfigError(
                f"towers={towers!r} does not divide the layer widths of variant {self.variant!r} "
                f"({', '.join(map(str, widths))}); use a divisor of all of them, e.g. 1 or 2."
            )
        if towers > 1 and not (arch.convs and arch.hidden_features):
            raise ConfigError(
                f"towers={towers} needs at least one conv layer and one hidden layer (conv_features="
                f"{self.conv_features!r}, hidden_features={self.hidden_features!r}); use towers=1 for this network."
            )
        normalization = arch.normalization if self.normalization is None else self.normalization
        init = arch.init_scheme if self.init_scheme is None else self.init_scheme
        _choose("normalization", normalization, NORMALIZATIONS)
        _choose("norm_position", self.norm_position, NORM_POSITIONS)
        _choose("pooling", self.pooling, tuple(POOLINGS))
        _choose("activation", self.activation, tuple(ACTIVATIONS))
        _choose("init_scheme", init, INITS)
        if self.num_classes < 1:
            raise ConfigError(f"num_classes must be positive, got {self.num_classes}.")
        return dict(towers=towers, normalization=normalization, init_scheme=init)

    @nn.compact
    def __call__(self, images: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"AlexNet expects images of shape (N, H, W, 3), got {images.shape}.")
        arch = self.architecture
        settings = self.resolved()
        towers, normalization, init = (
            settings["towers"],
            settings["normalization"],
            settings["init_scheme"],
        )
        window, stride = POOLINGS[self.pooling]
        if min(images.shape[1:3]) < minimum_image_size(arch, window, stride):
            raise ConfigError(
                f"Images of {images.shape[1]}x{images.shape[2]} are too small for AlexNet(variant={self.variant!r}, "
                f"pooling={self.pooling!r}): the feature maps vanish. Use at least "
                f"{minimum_image_size(arch, window, stride)}x{minimum_image_size(arch, window, stride)} "
                f"(the variant is made for {arch.image_size}x{arch.image_size})."
            )
        activation = ACTIVATIONS[self.activation]
        # After a tower layer (towers > 1) activations carry a leading tower axis.
        constrain = self.merged_constraint or (lambda a: a)

        def merged(a):
            return constrain(merge_towers(a)) if towers > 1 else a

        def lrn(a):
            return local_response_norm(
                a,
                self.lrn_size,
                self.lrn_alpha,
                self.lrn_beta,
                self.lrn_k,
                self.lrn_divide_alpha_by_size,
            )

        x = images.astype(self.dtype)
        for index, layer in enumerate(arch.convs, start=1):
            if index > 1 and not layer.within_tower:
                x = merged(x)  # the towers exchange activations here (conv3)
            shortcut = x
            x = TowerConv(
                layer, towers, init, self.dtype, self.param_dtype, self.tower_map, name=layer.name
            )(x)
            if normalization == "batchnorm":
                bn_axes = ("tower", "conv_out") if towers > 1 else ("conv_out",)
                x = nn.BatchNorm(
                    use_running_average=not train,
                    axis=(0, -1) if towers > 1 else -1,  # per tower, per channel
                    momentum=0.9,
                    epsilon=1e-5,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    scale_init=nn.with_logical_partitioning(nn.initializers.ones, bn_axes),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, bn_axes),
                    name=f"bn{index}",
                )(x)
            if self.residual and shortcut.shape == x.shape:
                # identity shortcut: same channels, stride 1, size-preserving padding
                x = x + shortcut
            x = activation(x)
            self.sow("intermediates", f"conv{index}_act", merged(x))
            use_lrn = normalization == "lrn" and layer.lrn
            if use_lrn and self.norm_position == "before_pool":
                x = lrn(x)
                self.sow("intermediates", f"conv{index}_lrn", merged(x))
            if layer.pool:
                x = max_pool(x, window, stride)
                self.sow("intermediates", f"conv{index}_pool", merged(x))
            if use_lrn and self.norm_position == "after_pool":
                x = lrn(x)
                self.sow("intermediates", f"conv{index}_lrn", merged(x))

        x = merged(x)
        if arch.pooled_size:
            x = adaptive_avg_pool(x, arch.pooled_size)
        x = x.reshape(x.shape[0], -1)  # (N, H * W * C), channels fastest

        dropout = nn.Dropout(self.dropout_rate, deterministic=not train)
        for index, features in enumerate(arch.hidden_features, start=6):
            if index > 6:
                x = merged(x)  # fc7 sees both towers' fc6 outputs
            if arch.dropout_on == "inputs":
                x = dropout(x)
            x = TowerDense(
                features, False, 1.0, towers, init, self.dtype, self.param_dtype, name=f"fc{index}"
            )(x)
            x = activation(x)
            if arch.dropout_on == "outputs":
                x = dropout(x)
            self.sow("intermediates", f"fc{index}_act", merged(x))
        # fc8 keeps the towers apart on its input side: each tower multiplies its
        # own half of fc7 and the products are summed.
        logits = TowerDense(
            self.num_classes,
            True,
            0.0,
            towers,
            init,
            self.dtype,
            self.param_dtype,
            name=f"fc{len(arch.hidden_features) + 6}",
        )(x)
        return logits.astype(jnp.float32)


def minimum_image_size(arch: Architecture, pool_window: int, pool_stride: int) -> int:
    """Smallest square input whose feature maps stay at least 1x1 through every conv and pool."""

    def final_size(size: int) -> int:
        for layer in arch.convs:
            size = (size + 2 * layer.padding - layer.kernel_size) // layer.stride + 1
            if layer.pool and size >= pool_window:
                size = (size - pool_window) // pool_stride + 1
            elif layer.pool:
                return 0
        return size

    size = 1
    while final_size(size) < 1:
        size += 1
    return size


def count_params(params) -> int:
    """Number of scalars in a (possibly boxed) parameter tree."""
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nn.unbox(params)))


def head_layer(params) -> str:
    """The classifier's name in a parameter tree: the last fully connected layer (`fc8`)."""
    return max((name for name in params if name.startswith("fc")), key=lambda name: int(name[2:]))


# --------------------------------------------------------------------------
# From a config

# The config keys that decide the function a set of parameters computes: two runs that agree on
# these (and on the parameter shapes) trained the same network. Dropout and the initialization
# change only how it trains.
NETWORK_KEYS = (
    "model",
    "towers",
    "num_classes",
    "normalization",
    "norm_position",
    "pooling",
    "activation",
    "conv_features",
    "hidden_features",
    "residual",
)

# Config keys that differ from the name of the model field they set.
_CONFIG_KEYS = {"variant": "model"}
_NOT_FROM_CONFIG = ("parent", "name", "dtype")


def from_config(config, **fields) -> AlexNet:
    """The AlexNet a config describes (configs/default.py, "Model").

    Every field of `AlexNet` is read from the config key of the same name when the config has
    it (`config.towers` -> `towers`), except `variant`, which is `config.model`;
    `config.half_precision` picks bfloat16 compute. Keyword arguments (e.g. `tower_map`) are
    passed on. A field the config does not set keeps the model's default, so the config.json of
    an older run builds the model it trained.
    """
    values = {}
    for field in dataclasses.fields(AlexNet):
        key = _CONFIG_KEYS.get(field.name, field.name)
        if field.init and field.name not in _NOT_FROM_CONFIG and key in config:
            values[field.name] = config[key]
    for name in ("conv_features", "hidden_features"):
        if name in values:
            values[name] = layer_widths(config, name)
    dtype = jnp.bfloat16 if config.get("half_precision", False) else jnp.float32
    return AlexNet(**{"dtype": dtype, **values, **fields})


def layer_widths(config, field: str) -> tuple[int, ...] | None:
    """A width tuple of the config, e.g. (64, 128): None when unset (the variant's own), () for none.

    Also reads the text of older configs: "64,128", "" (the variant's) and "none".
    """
    value = config.get(field, None)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().lower() == "none":
        return ()
    items = config_items(value)
    # Whole numbers only: text from the command line or an older config.json, or ints.
    if not all(
        isinstance(item, int)
        and not isinstance(item, bool)
        or isinstance(item, str)
        and item.isdigit()
        for item in items
    ):
        raise ConfigError(
            f"config.{field}={value!r} is not a tuple of layer widths; use e.g. (64, 128, 192) "
            f"(--config.{field}=64,128,192), () for no such layers, or None for the model "
            "variant's own."
        )
    return tuple(int(item) for item in items)
