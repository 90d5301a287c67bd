"""ResNets with torchvision's parameter names and one activation module per use.

One definition serves three families (the ANN form; ``spikify`` turns each ``SpikeSite`` into a
LIF neuron):

- ``sew=False``: the plain ResNet. Spikified, it is the Spiking-ResNet of sakd.md §2.2: the
  ReLU after the residual add becomes a LIF, so block outputs are binary spikes.
- ``sew=True``: SEW-ResNet with ADD connections (sakd.md §2.3): a neuron closes each branch and
  the downsample path, and there is none after the add. Its parameters are exactly those of the
  plain ResNet, so a ResNet teacher transfers into it by ``load_state_dict``.
- ``stem="cifar"``: 3x3 stride-1 stem without max-pool; ``stem="imagenet"``: 7x7/2 + max-pool.

torchvision's ``BasicBlock`` reuses one ``self.relu`` several times per block; here every use is
its own ``SpikeSite``, so no two neurons share state after spikify. ReLUs have no parameters,
so torchvision state dicts load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sakd.models.base import Network, SpikeSite


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, sew: bool = False) -> None:
        super().__init__()
        self.sew = sew
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = SpikeSite(detach_reset=False)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        # plain/spiking: the activation after the add; SEW: the one closing the branch
        self.relu2 = SpikeSite(detach_reset=not sew)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        if self.sew:
            return self.relu2(out) + identity
        return self.relu2(out + identity)


class Bottleneck(nn.Module):
    """torchvision's V1.5 bottleneck (stride on the 3x3 conv)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, sew: bool = False) -> None:
        super().__init__()
        self.sew = sew
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = SpikeSite(detach_reset=False)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = SpikeSite(detach_reset=False)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = SpikeSite(detach_reset=not sew)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.sew:
            return self.relu3(out) + identity
        return self.relu3(out + identity)


class ResNet(Network):
    """torchvision-compatible ResNet (ImageNet or CIFAR stem), plain or SEW."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int,
        in_channels: int = 3,
        stem: str = "imagenet",
        widths: Sequence[int] = (64, 128, 256, 512),
        sew: bool = False,
    ) -> None:
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if len(widths) != len(layers):
            raise ValueError(f"{len(layers)} stages but {len(widths)} widths")
        self.sew = sew
        inplanes = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, inplanes, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(in_channels, inplanes)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = SpikeSite(detach_reset=not sew)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else None
        names = []
        for k, (planes, blocks) in enumerate(zip(widths, layers), start=1):
            stride = 1 if k == 1 else 2
            stage, inplanes = make_stage(block, inplanes, planes, blocks, stride, sew)
            self.add_module(f"layer{k}", stage)
            names.append(f"layer{k}")
        self.stage_names = tuple(names)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(widths[-1] * block.expansion, num_classes)
        init_resnet(self)

    def forward_static(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(self.flatten(self.avgpool(x)))


class ResNet19(Network):
    """ResNet-19 for CIFAR (tdBN / SAKD): stem 64, stages 128x3, 256x3 (/2), 512x2 (/2), then
    fc 512->256, act, fc 256->classes (the SNN head of the authors' code, used for the ANN too so
    that level-1 transfer is a plain ``load_state_dict``; sakd.md §1.5 notes the original could not)."""

    stage_names = ("layer1", "layer2", "layer3")

    def __init__(self, num_classes: int, in_channels: int = 3,
                 widths: Sequence[int] = (64, 128, 256, 512), layers: Sequence[int] = (3, 3, 2),
                 hidden: int = 256) -> None:
        super().__init__()
        inplanes = widths[0]
        self.conv1 = conv3x3(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = SpikeSite(detach_reset=True)
        for k, (planes, blocks) in enumerate(zip(widths[1:], layers), start=1):
            stage, inplanes = make_stage(BasicBlock, inplanes, planes, blocks, 1 if k == 1 else 2)
            self.add_module(f"layer{k}", stage)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(widths[-1], hidden)
        self.relu_fc1 = SpikeSite(detach_reset=True)
        self.fc = nn.Linear(hidden, num_classes)
        init_resnet(self)

    def forward_static(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.relu_fc1(self.fc1(self.flatten(self.avgpool(x))))
        return self.fc(x)


def make_stage(block, inplanes: int, planes: int, blocks: int, stride: int,
               sew: bool = False) -> tuple[nn.Sequential, int]:
    """One residual stage (torchvision's ``_make_layer``); returns it and its output channels."""
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out_channels:
        parts = [conv1x1(inplanes, out_channels, stride), nn.BatchNorm2d(out_channels)]
        if sew:
            parts.append(SpikeSite(detach_reset=False))
        downsample = nn.Sequential(*parts)
    layers = [block(inplanes, planes, stride, downsample, sew=sew)]
    layers += [block(out_channels, planes, sew=sew) for _ in range(1, blocks)]
    return nn.Sequential(*layers), out_channels


def init_resnet(model: nn.Module) -> None:
    """torchvision's initialisation: Kaiming-normal (fan_out) convs, BN weight 1 and bias 0."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
