"""Semantic segmentation on the registry's ResNets: torchvision's FCN and DeepLabV3 heads.

``SegmentationNetwork`` has torchvision's FCN/DeepLabV3 layout (``backbone`` = an
``IntermediateLayerGetter`` over a sakd ResNet returning ``"out"``, ``classifier`` = the head),
so parameter names are torchvision's. Both heads are conv-BN-ReLU stacks (every ReLU its own
module, so each becomes a LIF under ``spikify``) ending in a 1x1 conv: the linear readout. No
GroupNorm anywhere. DeepLabV3's ASPP pooling branch (global average pool, 1x1 conv-BN-ReLU,
bilinear upsample of a 1x1 map = a broadcast) and its atrous convs map to average pooling and
dilated conv projections.

``forward(x)`` takes normalized images ``[B, C, H, W]`` and returns per-pixel class logits
``[B, K, H, W]``: the readout ``[B, K, H/s, W/s]`` (for an SNN its mean over T) upsampled
bilinearly to the input size, as torchvision's ``_SimpleSegmentationModel`` does. Upsampling is
linear, so it commutes with the mean over T and runs once, on the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP
from torchvision.models.segmentation.fcn import FCNHead

from sakd.models.base import Network
from sakd.models.detection import resnet_trunk, stage_channels
from sakd.models.resnet import BasicBlock, Bottleneck, ResNet

HEADS = ("fcn", "deeplabv3")


class DeepLabHead(nn.Sequential):
    """torchvision's ``DeepLabHead`` (ASPP, 3x3 conv-BN-ReLU, 1x1 readout; same module indices
    and names) with a configurable ``width``: torchvision fixes 256 channels and rates 12/24/36,
    sized for 512-px images at output stride 8."""

    def __init__(self, in_channels: int, num_classes: int, atrous_rates: Sequence[int] = (12, 24, 36),
                 width: int = 256) -> None:
        super().__init__(
            ASPP(in_channels, list(atrous_rates), out_channels=width),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, num_classes, 1),
        )


class SegmentationNetwork(Network):
    """A segmenter as a sakd ``Network`` (ANN at ``time_steps == 0``, SNN after spikify).

    ``num_classes`` counts the background (class 0 on the data sets of sakd.data.detection);
    target masks are int64 ``[B, H, W]`` with ``ignore_index`` (255) on pixels to skip.
    """

    ignore_index = 255

    def __init__(self, backbone: IntermediateLayerGetter, classifier: nn.Module, num_classes: int,
                 image_size: tuple[int, int], stage_names: Sequence[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.num_classes = num_classes
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.stage_names = tuple(f"backbone.{s}" for s in stage_names)

    def forward_static(self, x: Tensor) -> Tensor:
        """The readout at the backbone's output stride, ``[N, K, H/s, W/s]``."""
        return self.classifier(self.backbone(x)["out"])

    def forward(self, x: Tensor) -> Tensor:
        """Normalized images ``[B, C, H, W]`` -> logits ``[B, K, H, W]`` (mean over T for an SNN,
        then bilinear upsampling to the input size)."""
        if not self.time_steps:
            readout = self.forward_static(x)
        else:
            steps, batch = self.time_steps, x.shape[0]
            folded = x.unsqueeze(0).expand(steps, *x.shape).reshape(steps * batch, *x.shape[1:])
            readout = self.unfold_time(self.forward_static(folded)).mean(0)
        return F.interpolate(readout, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def loss(self, logits: Tensor, masks: Tensor) -> Tensor:
        """Per-pixel cross-entropy, mean over the pixels that are not ``ignore_index``."""
        if logits.shape[-2:] != masks.shape[-2:] or logits.shape[0] != masks.shape[0]:
            raise ValueError(f"logits {tuple(logits.shape)} and masks {tuple(masks.shape)} differ "
                             "in batch or size; masks must be [B, H, W] of the input's size")
        return F.cross_entropy(logits.float(), masks, ignore_index=self.ignore_index)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Class of every pixel, int64 ``[B, H, W]``."""
        return self(x).argmax(1)


def segmentation_resnet(
    num_classes: int,
    in_channels: int,
    image_size: tuple[int, int],
    *,
    head: str = "fcn",
    layers: Sequence[int] = (1, 1, 1),
    widths: Sequence[int] = (16, 32, 64),
    block: type[BasicBlock] | type[Bottleneck] = BasicBlock,
    stem: str = "cifar",
    sew: bool = False,
    out_stage: str | None = None,
    head_width: int | None = None,
    atrous_rates: Sequence[int] = (2, 4, 6),
) -> SegmentationNetwork:
    """FCN or DeepLabV3 on a sakd ResNet read at ``out_stage`` (default: the last stage).

    ``head="fcn"``: torchvision's ``FCNHead`` (3x3 conv to in/4 channels, BN, ReLU, dropout 0.1,
    1x1 readout). ``head="deeplabv3"``: ``DeepLabHead`` of ``head_width`` channels (default: the
    backbone's) with ``atrous_rates``. ``num_classes`` includes the background.
    """
    if head not in HEADS:
        raise ValueError(f"unknown segmentation head '{head}'; choose one of {HEADS}")
    if num_classes < 2:
        raise ValueError(f"a segmenter needs >= 2 classes (background included), got {num_classes}")
    trunk: ResNet = resnet_trunk(in_channels, layers, widths, block, stem, sew)
    stage = out_stage or trunk.stage_names[-1]
    channels = stage_channels(trunk, stage)
    stages = trunk.stage_names[: trunk.stage_names.index(stage) + 1]
    backbone = IntermediateLayerGetter(trunk, {stage: "out"})
    if head == "fcn":
        if channels < 4:
            raise ValueError(f"FCNHead needs >= 4 input channels (it reduces them 4x), got {channels}")
        classifier: nn.Module = FCNHead(channels, num_classes)
    else:
        classifier = DeepLabHead(channels, num_classes, atrous_rates, head_width or channels)
    return SegmentationNetwork(backbone, classifier, num_classes, image_size, stages)
