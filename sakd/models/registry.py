"""Architectures by name. Each entry builds the ANN; ``spikify`` makes its SNN."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from sakd.errors import SakdError
from sakd.models import dense
from sakd.models.base import Network
from sakd.models.convnet import ConvNet, PoolConvNet
from sakd.models.resnet import BasicBlock, Bottleneck, ResNet, ResNet19


class ModelError(SakdError):
    """Unknown architecture or an input it cannot take; the message says what to do."""


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str  # convnet | resnet | sew_resnet | resnet19
    builder: Callable[..., Network]  # (num_classes, in_channels, image_size) -> ANN
    teacher: str  # the ANN architecture whose weights transfer into this one
    description: str
    tiny: bool = False  # a small variant for tests


ARCHITECTURES: dict[str, ArchSpec] = {}


def register(name: str, family: str, builder: Callable[..., Network], description: str,
             teacher: str | None = None, tiny: bool = False) -> None:
    if name in ARCHITECTURES:
        raise ValueError(f"architecture '{name}' is already registered")
    ARCHITECTURES[name] = ArchSpec(name, family, builder, teacher or name, description, tiny)


def _resnet(block, layers, stem, sew=False, widths=(64, 128, 256, 512)):
    def build(num_classes: int, in_channels: int, image_size: tuple[int, int]) -> Network:
        return ResNet(block, layers, num_classes, in_channels, stem, widths[: len(layers)], sew)

    return build


def _convnet(cls, **kwargs):
    def build(num_classes: int, in_channels: int, image_size: tuple[int, int]) -> Network:
        return cls(num_classes, in_channels, image_size, **kwargs)

    return build


def _resnet19(**kwargs):
    def build(num_classes: int, in_channels: int, image_size: tuple[int, int]) -> Network:
        return ResNet19(num_classes, in_channels, **kwargs)

    return build


_DEPTHS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
           50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3)),
           152: (Bottleneck, (3, 8, 36, 3))}

register("convnet", "convnet", _convnet(ConvNet),
         "3 conv-BN stages (16-32-64, strides 1-2-2), fc 128, fc; sequential, netx-exportable")
register("convnet_wide", "convnet", _convnet(ConvNet, widths=(64, 128, 256), hidden=512),
         "wider ConvNet (64-128-256, fc 512) for Fashion-MNIST")
register("convnet_pool", "convnet", _convnet(PoolConvNet),
         "conv, max-pool, conv, avg-pool, fc: exercises the pooling lowerings")
for depth, (block, layers) in _DEPTHS.items():
    register(f"resnet{depth}", "resnet", _resnet(block, layers, "imagenet"),
             f"torchvision ResNet-{depth} (ImageNet stem); spikified: Spiking-ResNet-{depth}")
    register(f"resnet{depth}_cifar", "resnet", _resnet(block, layers, "cifar"),
             f"ResNet-{depth} with the CIFAR stem (3x3, no max-pool)")
    register(f"sew_resnet{depth}", "sew_resnet", _resnet(block, layers, "imagenet", sew=True),
             f"SEW-ResNet-{depth} (ADD); same parameters as resnet{depth}",
             teacher=f"resnet{depth}")
register("resnet19", "resnet19", _resnet19(), "ResNet-19 for CIFAR (64 | 128x3, 256x3, 512x2 | fc 256)")
register("resnet_small", "resnet", _resnet(BasicBlock, (1, 1, 1), "cifar", widths=(32, 64, 128)),
         "Spiking-ResNet sized for 28x28 (CIFAR stem, 3 stages of one BasicBlock: 32-64-128)")
register("fcos_resnet_small", "detection", dense.fcos_resnet_small, "FCOS, spiking FPN (32 ch, strides 4-8-16) on a ResNet (ImageNet stem, 32-64-128); 64-px canvas")
register("fcos_sew_resnet_small", "detection", dense.fcos_sew_resnet_small, "fcos_resnet_small on SEW-ResNet blocks", teacher="fcos_resnet_small")
register("fcn_resnet_small", "segmentation", dense.fcn_resnet_small, "FCN head on a ResNet (CIFAR stem, 16-32-64, output stride 4)")
register("fcn_sew_resnet_small", "segmentation", dense.fcn_sew_resnet_small, "fcn_resnet_small on SEW-ResNet blocks", teacher="fcn_resnet_small")
register("deeplabv3_resnet_small", "segmentation", dense.deeplabv3_resnet_small, "DeepLabV3 head (ASPP 64 ch, rates 2-4-6) on a ResNet (CIFAR stem, 16-32-64)")
register("fcos_resnet18", "detection", dense.fcos_resnet18, "FCOS, spiking FPN (128 ch, strides 8-16-32) on ResNet-18; VOC/COCO images (320 px and up)")
register("fcos_sew_resnet18", "detection", dense.fcos_sew_resnet18, "fcos_resnet18 on SEW-ResNet-18", teacher="fcos_resnet18")
register("fcn_resnet18", "segmentation", dense.fcn_resnet18, "FCN head on ResNet-18 read at layer3 (output stride 16); VOC/COCO images")
register("fcn_sew_resnet18", "segmentation", dense.fcn_sew_resnet18, "fcn_resnet18 on SEW-ResNet-18", teacher="fcn_resnet18")
register("deeplabv3_sew_resnet_small", "segmentation", dense.deeplabv3_sew_resnet_small, "deeplabv3_resnet_small on SEW-ResNet blocks", teacher="deeplabv3_resnet_small")

# tiny variants: each family, a few thousand parameters, for the tests
_TINY = (8, 16)
register("test_convnet", "convnet", _convnet(ConvNet, widths=(4, 8), strides=(1, 2), hidden=16),
         "tiny ConvNet", tiny=True)
register("test_convnet_nobn", "convnet",
         _convnet(ConvNet, widths=(4, 8), strides=(1, 2), hidden=16, norm="none"),
         "tiny ConvNet without BatchNorm (biases instead): DDP on the CPU matches one process",
         tiny=True)
register("test_convnet_pool", "convnet", _convnet(PoolConvNet, widths=(4, 8)),
         "tiny PoolConvNet", tiny=True)
register("test_resnet", "resnet", _resnet(BasicBlock, (1, 1), "cifar", widths=_TINY),
         "tiny Spiking-ResNet (BasicBlock, CIFAR stem)", tiny=True)
register("test_resnet_bottleneck", "resnet", _resnet(Bottleneck, (1, 1), "imagenet", widths=(4, 8)),
         "tiny Spiking-ResNet (Bottleneck, ImageNet stem)", tiny=True)
register("test_sew_resnet", "sew_resnet", _resnet(BasicBlock, (1, 1), "cifar", sew=True, widths=_TINY),
         "tiny SEW-ResNet", teacher="test_resnet", tiny=True)
register("test_sew_resnet_bottleneck", "sew_resnet",
         _resnet(Bottleneck, (1, 1), "imagenet", sew=True, widths=(4, 8)),
         "tiny SEW-ResNet (Bottleneck)", teacher="test_resnet_bottleneck", tiny=True)
register("test_resnet19", "resnet19", _resnet19(widths=(8, 8, 16, 16), layers=(1, 1, 1), hidden=8),
         "tiny ResNet-19", tiny=True)


def arch_spec(name: str) -> ArchSpec:
    if name not in ARCHITECTURES:
        close = difflib.get_close_matches(name, list(ARCHITECTURES), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelError(f"unknown architecture '{name}'.{hint} `sakd models` lists them all.")
    return ARCHITECTURES[name]


def build_model(name: str, num_classes: int, in_channels: int = 3,
                image_size: tuple[int, int] = (32, 32)) -> Network:
    """Build the ANN of architecture ``name`` for the given input and number of classes."""
    spec = arch_spec(name)
    if num_classes < 1 or in_channels < 1 or min(image_size) < 1:
        raise ModelError(f"{name}: bad input description classes={num_classes}, "
                         f"channels={in_channels}, image={image_size}")
    try:
        model = spec.builder(num_classes, in_channels, tuple(image_size))
    except ValueError as exc:
        raise ModelError(f"{name} cannot take {in_channels}x{image_size[0]}x{image_size[1]} "
                         f"input: {exc}") from exc
    model.arch = name
    return model
