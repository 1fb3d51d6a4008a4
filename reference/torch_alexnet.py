"""Independent PyTorch AlexNets, written from the paper and torchvision's source.

Nothing here imports alexnet_jax: these models are the references the Flax
models are compared with. Layer widths and orders are spelled out again on
purpose.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TowerLRN(nn.Module):
    """torch's LocalResponseNorm applied to each tower's block of channels separately."""

    def __init__(
        self, towers: int, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0
    ):
        super().__init__()
        self.towers = towers
        self.lrn = nn.LocalResponseNorm(size, alpha, beta, k)

    def forward(self, x):
        return torch.cat([self.lrn(part) for part in x.chunk(self.towers, dim=1)], dim=1)


class Shortcut(nn.Module):
    """`body(x) + x`: a ResNet identity shortcut around a conv (and its batch norm)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x) + x


class TorchvisionAlexNet(nn.Module):
    """torchvision.models.AlexNet, same module names (features / avgpool / classifier)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class PatternAlexNet(nn.Module):
    """The paper's layer pattern with `groups` on conv2/4/5, as tutorials write it in torch.

    widths: the five conv widths; kernels/strides/paddings per conv; fc: the
    two hidden widths; lrn: 'tower' (each tower's channels separately),
    'all' (across all channels, crossing the tower boundary) or None;
    order: 'before_pool' (conv, act, LRN, pool) or 'after_pool';
    residual: a `Shortcut` around every conv (+ batch norm) whose output has
    its input's shape (same width, stride 1, size-kept padding).
    """

    def __init__(
        self,
        widths,
        kernels,
        strides,
        paddings,
        fc,
        spatial,
        num_classes,
        towers=2,
        lrn="tower",
        order="before_pool",
        pool=(3, 2),
        activation=nn.ReLU,
        batchnorm=False,
        residual=False,
    ):
        super().__init__()
        layers = []
        in_channels = 3
        for i in range(5):
            groups = towers if i in (1, 3, 4) else 1
            conv = [
                nn.Conv2d(
                    in_channels, widths[i], kernels[i], strides[i], paddings[i], groups=groups
                )
            ]
            if batchnorm:
                conv.append(nn.BatchNorm2d(widths[i], eps=1e-5))
            same_shape = (
                in_channels == widths[i] and strides[i] == 1 and 2 * paddings[i] == kernels[i] - 1
            )
            if residual and same_shape:
                layers.append(Shortcut(nn.Sequential(*conv)))
            else:
                layers.extend(conv)
            layers.append(activation())
            norm = None
            if lrn is not None and i in (0, 1):
                norm = TowerLRN(towers if lrn == "tower" else 1)
            if norm is not None and order == "before_pool":
                layers.append(norm)
            if i in (0, 1, 4):
                layers.append(nn.MaxPool2d(*pool))
            if norm is not None and order == "after_pool":
                layers.append(norm)
            in_channels = widths[i]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(widths[4] * spatial * spatial, fc[0]),
            activation(),
            nn.Dropout(0.5),
            nn.Linear(fc[0], fc[1]),
            activation(),
            nn.Dropout(0.5),
            nn.Linear(fc[1], num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def paper_alexnet(num_classes=1000, spatial=6, **kwargs) -> PatternAlexNet:
    """Krizhevsky et al. 2012: 96-256-384-384-256, 11/4 then 5 then 3x3 kernels, fc 4096.

    `spatial`: the side of conv5's pooled output, 6 for 224x224 images, 1 for 63x63.
    """
    return PatternAlexNet(
        (96, 256, 384, 384, 256),
        (11, 5, 3, 3, 3),
        (4, 1, 1, 1, 1),
        (2, 2, 1, 1, 1),
        (4096, 4096),
        spatial,
        num_classes,
        **kwargs,
    )


def small_alexnet(num_classes=10, spatial=3, **kwargs) -> PatternAlexNet:
    """The 32x32 variant documented in alexnet_jax.models: 64-128-192-192-128, 5/5/3/3/3, fc 512."""
    kwargs.setdefault("towers", 1)
    return PatternAlexNet(
        (64, 128, 192, 192, 128),
        (5, 5, 3, 3, 3),
        (1, 1, 1, 1, 1),
        (2, 2, 1, 1, 1),
        (512, 512),
        spatial,
        num_classes,
        **kwargs,
    )


def scale_weights(
    model: nn.Module, gains: dict[int, float] | None = None, seed: int = 0
) -> nn.Module:
    """Re-draws conv/linear weights as N(0, gain^2 / fan_in) and biases U(-0.5, 0.5).

    gains maps the index of a conv/linear layer (in order) to its gain (default
    sqrt(2), which keeps ReLU activations at a constant scale).
    """
    gains = gains or {}
    generator = torch.Generator().manual_seed(seed)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for index, layer in enumerate(layers):
            fan_in = layer.weight[0].numel()
            gain = gains.get(index, math.sqrt(2.0))
            drawn = torch.randn(layer.weight.shape, generator=generator)
            layer.weight.copy_(drawn * gain / math.sqrt(fan_in))
            layer.bias.copy_(torch.rand(layer.bias.shape, generator=generator) - 0.5)
    return model
