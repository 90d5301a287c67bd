"""Small convolutional nets for 8x8 digits and 28x28 Fashion-MNIST.

``ConvNet`` is strictly sequential and pooling-free (strided convs downsample), so that it
lowers to every export format, netx's sequential HDF5 included. ``PoolConvNet`` uses max and
average pooling, to exercise the pooling lowerings (OR populations, pooling folded into the next
projection).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sakd.models.base import Network, SpikeSite

NORMS = ("batch", "none")


def conv_bn_act(c_in: int, c_out: int, stride: int, norm: str = "batch") -> nn.Sequential:
    """conv3x3-BN-act; with ``norm="none"`` the BN slot is an ``nn.Identity`` (keeping the
    module indices: ``.0`` conv, ``.1`` norm, ``.2`` act) and the conv gets a bias instead."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    batch_norm = norm == "batch"
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=not batch_norm),
        nn.BatchNorm2d(c_out) if batch_norm else nn.Identity(),
        SpikeSite(detach_reset=True),
    )


def _out_size(size: int, stride: int) -> int:
    return (size + 2 - 3) // stride + 1


class ConvNet(Network):
    """stage_k = conv3x3(stride_k)-BN-act; flatten (C,H,W); fc1-BN-act; fc (the readout).

    ``norm="none"``: no BatchNorm anywhere (BN slots are ``nn.Identity``; conv and fc1 carry
    biases), e.g. for runs whose result must not depend on per-process batch statistics.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: tuple[int, int],
        widths: Sequence[int] = (16, 32, 64),
        strides: Sequence[int] = (1, 2, 2),
        hidden: int = 128,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if len(widths) != len(strides):
            raise ValueError(f"widths {widths} and strides {strides} differ in length")
        height, width = image_size
        channels = in_channels
        names = []
        for k, (c_out, stride) in enumerate(zip(widths, strides), start=1):
            self.add_module(f"stage{k}", conv_bn_act(channels, c_out, stride, norm))
            names.append(f"stage{k}")
            channels, height, width = c_out, _out_size(height, stride), _out_size(width, stride)
        self.stage_names = tuple(names)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(channels * height * width, hidden, bias=norm == "none")
        self.bn_fc1 = nn.BatchNorm1d(hidden) if norm == "batch" else nn.Identity()
        self.act_fc1 = SpikeSite(detach_reset=True)
        self.fc = nn.Linear(hidden, num_classes)
        _init_weights(self)

    def forward_static(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.stage_names:
            x = getattr(self, name)(x)
        x = self.act_fc1(self.bn_fc1(self.fc1(self.flatten(x))))
        return self.fc(x)


class PoolConvNet(Network):
    """stage1 -> maxpool 2 -> stage2 -> avgpool 2 -> flatten -> fc."""

    stage_names = ("stage1", "stage2")

    def __init__(self, num_classes: int, in_channels: int, image_size: tuple[int, int],
                 widths: Sequence[int] = (16, 32)) -> None:
        super().__init__()
        height, width = image_size
        if height % 4 or width % 4:
            raise ValueError(f"PoolConvNet needs image sides divisible by 4, got {image_size}")
        self.stage1 = conv_bn_act(in_channels, widths[0], 1)
        self.maxpool = nn.MaxPool2d(2)
        self.stage2 = conv_bn_act(widths[0], widths[1], 1)
        self.avgpool = nn.AvgPool2d(2)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(widths[1] * (height // 4) * (width // 4), num_classes)
        _init_weights(self)

    def forward_static(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.stage1(x))
        x = self.avgpool(self.stage2(x))
        return self.fc(self.flatten(x))


def _init_weights(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
