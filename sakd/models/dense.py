"""Builders of the registry's detection and segmentation entries (the "dense" tasks).

Kept apart from ``detection.py`` and ``segmentation.py`` so that importing the registry does not
import torchvision's detection package (about 1.5 s): each builder imports its module when it is
called. Every builder has the registry's signature ``(num_classes, in_channels, image_size)`` and
takes keyword overrides on top (e.g. ``image_mean``/``image_std`` for a detector's ``predict``).

Small variants (they train in minutes on two CPU cores):

- ``fcos_resnet_small``: FCOS on a ResNet with the ImageNet stem (7x7/2 + max-pool) and three
  BasicBlock stages 32-64-128 (strides 4, 8, 16), a 32-channel spiking FPN on all three, two
  head convs per branch, points of half the stride (objects of 8-48 px on a 64-px canvas),
  centre-sampling radius 2.5.
- ``fcn_resnet_small`` / ``deeplabv3_resnet_small``: torchvision's FCN / DeepLabV3 head on a
  ResNet with the CIFAR stem (3x3, stride 1) and three BasicBlock stages 16-32-64: output stride
  4 (a 16x16 readout on a 64-px canvas); DeepLabV3 with 64 channels and atrous rates 2, 4, 6.
- ``*_sew_resnet_small``: the same with SEW-ResNet blocks; same parameters, so the plain
  variant is their teacher.
"""

from __future__ import annotations

from typing import Any

from sakd.models.base import Network

FCOS_SMALL: dict[str, Any] = dict(layers=(1, 1, 1), widths=(32, 64, 128), stem="imagenet",
                                  fpn_channels=32, head_convs=2, anchor_scale=0.5,
                                  center_sampling_radius=2.5)
SEGMENTATION_SMALL: dict[str, Any] = dict(layers=(1, 1, 1), widths=(16, 32, 64), stem="cifar")


def fcos_resnet_small(num_classes: int, in_channels: int, image_size: tuple[int, int],
                      **overrides: Any) -> Network:
    from sakd.models.detection import fcos_resnet

    return fcos_resnet(num_classes, in_channels, image_size, **{**FCOS_SMALL, **overrides})


def fcos_sew_resnet_small(num_classes: int, in_channels: int, image_size: tuple[int, int],
                          **overrides: Any) -> Network:
    return fcos_resnet_small(num_classes, in_channels, image_size, **{"sew": True, **overrides})


def fcn_resnet_small(num_classes: int, in_channels: int, image_size: tuple[int, int],
                     **overrides: Any) -> Network:
    from sakd.models.segmentation import segmentation_resnet

    return segmentation_resnet(num_classes, in_channels, image_size,
                               **{**SEGMENTATION_SMALL, "head": "fcn", **overrides})


def fcn_sew_resnet_small(num_classes: int, in_channels: int, image_size: tuple[int, int],
                         **overrides: Any) -> Network:
    return fcn_resnet_small(num_classes, in_channels, image_size, **{"sew": True, **overrides})


def deeplabv3_resnet_small(num_classes: int, in_channels: int, image_size: tuple[int, int],
                           **overrides: Any) -> Network:
    from sakd.models.segmentation import segmentation_resnet

    return segmentation_resnet(num_classes, in_channels, image_size,
                               **{**SEGMENTATION_SMALL, "head": "deeplabv3",
                                  "atrous_rates": (2, 4, 6), **overrides})


def deeplabv3_sew_resnet_small(num_classes: int, in_channels: int, image_size: tuple[int, int],
                               **overrides: Any) -> Network:
    return deeplabv3_resnet_small(num_classes, in_channels, image_size, **{"sew": True, **overrides})


# real-image variants (VOC / COCO at 320-512 px, for a user's GPU): ResNet-18 widths, FCOS's own
# point sizes and centre sampling, an FPN on strides 8-16-32 (P3-P5)
FCOS_RESNET18: dict[str, Any] = dict(layers=(2, 2, 2, 2), widths=(64, 128, 256, 512),
                                     stem="imagenet", fpn_stages=("layer2", "layer3", "layer4"),
                                     fpn_channels=128, head_convs=4,
                                     anchor_scale=1.0, center_sampling_radius=1.5)
SEGMENTATION_RESNET18: dict[str, Any] = dict(layers=(2, 2, 2, 2), widths=(64, 128, 256, 512),
                                             stem="imagenet", out_stage="layer3")


def fcos_resnet18(num_classes: int, in_channels: int, image_size: tuple[int, int],
                  **overrides: Any) -> Network:
    from sakd.models.detection import fcos_resnet

    return fcos_resnet(num_classes, in_channels, image_size, **{**FCOS_RESNET18, **overrides})


def fcos_sew_resnet18(num_classes: int, in_channels: int, image_size: tuple[int, int],
                      **overrides: Any) -> Network:
    return fcos_resnet18(num_classes, in_channels, image_size, **{"sew": True, **overrides})


def fcn_resnet18(num_classes: int, in_channels: int, image_size: tuple[int, int],
                 **overrides: Any) -> Network:
    from sakd.models.segmentation import segmentation_resnet

    return segmentation_resnet(num_classes, in_channels, image_size,
                               **{**SEGMENTATION_RESNET18, "head": "fcn", **overrides})


def fcn_sew_resnet18(num_classes: int, in_channels: int, image_size: tuple[int, int],
                     **overrides: Any) -> Network:
    return fcn_resnet18(num_classes, in_channels, image_size, **{"sew": True, **overrides})
