"""FCOS object detectors on the registry's ResNets, as ANNs that ``spikify`` turns into SNNs.

The detector is torchvision's ``FCOS`` (points, target assignment, focal/GIoU/centerness losses,
box coding, postprocess and NMS are torchvision's code) with three parts made hardware-shaped:

- the **backbone** is a sakd ``ResNet`` (plain -> Spiking-ResNet, or SEW) read at its stages by
  torchvision's ``IntermediateLayerGetter``, under a **feature pyramid** that is torchvision's
  ``FeaturePyramidNetwork`` with BatchNorm (foldable) and a spike site after every lateral sum
  and every output conv: adds and nearest upsampling act on spikes, and every FPN level is a
  spike map (docs/detection.md explains why);
- the **head** shares its convs across levels (as FCOS does) but has one BatchNorm and one spike
  site per level and layer (no GroupNorm: it cannot be folded into weights); its last convs
  (class logits, box regression, centerness) are linear readouts;
- **time** is folded into the batch as in ``sakd.models.base``; ``forward`` returns the readouts
  averaged over T, and torchvision's losses and postprocess run on those averages.

``forward(x)`` takes normalized images ``[B, C, H, W]`` of the size the detector was built for
and returns the readouts ``{"cls_logits": [B, N, K], "bbox_reg": [B, N, 4], "bbox_ctrness":
[B, N, 1]}`` (N locations over all levels, K classes, ``bbox_reg`` before torchvision's ReLU).
``losses(readouts, targets)``, ``postprocess(readouts)`` and ``decode_boxes(readouts)`` turn
them into torchvision's losses, detections and boxes in pixels.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOS, FCOSHead
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import boxes as box_ops
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from sakd.models.base import Network, SpikeSite
from sakd.models.resnet import BasicBlock, Bottleneck, ResNet

READOUTS = ("cls_logits", "bbox_reg", "bbox_ctrness")


# ---------------------------------------------------------------------------------------------
# backbone: a sakd ResNet read at its stages, under a spiking feature pyramid


def resnet_trunk(in_channels: int, layers: Sequence[int], widths: Sequence[int],
                 block: type[BasicBlock] | type[Bottleneck] = BasicBlock, stem: str = "imagenet",
                 sew: bool = False) -> ResNet:
    """The sakd ResNet whose stages a detector or segmenter reads (its fc is never used:
    ``IntermediateLayerGetter`` keeps the modules up to the last stage read)."""
    return ResNet(block, layers, 1, in_channels, stem, widths, sew)


def stage_channels(trunk: ResNet, stage: str) -> int:
    """Output channels of stage ``layer{k}`` of a sakd ResNet."""
    if stage not in trunk.stage_names:
        raise ValueError(f"'{stage}' is not a stage of the backbone; its stages are "
                         f"{list(trunk.stage_names)}")
    last_block = getattr(trunk, stage)[-1]
    return (last_block.bn3 if hasattr(last_block, "bn3") else last_block.bn2).num_features


class SpikingFeaturePyramid(FeaturePyramidNetwork):
    """torchvision's ``FeaturePyramidNetwork`` with BatchNorm and two spike sites per level.

    ``inner_sites[i]`` closes the lateral sum of level i (lateral conv+BN of stage i plus the
    nearest-upsampled top-down spikes), ``layer_sites[i]`` closes its 3x3 output conv+BN, so the
    top-down path carries spikes and every pyramid level is a spike map. Parameter names are
    torchvision's (``inner_blocks.i.0`` conv, ``.1`` BN; ``layer_blocks.i.*``); the sites have none.
    ``extra_blocks`` may be ``LastLevelMaxPool`` (subsamples the last level's spikes);
    ``LastLevelP6P7`` is refused: it applies a functional ReLU, which cannot become a neuron.
    """

    def __init__(self, in_channels_list: Sequence[int], out_channels: int,
                 extra_blocks: LastLevelMaxPool | None = None) -> None:
        if extra_blocks is not None and not isinstance(extra_blocks, LastLevelMaxPool):
            raise ValueError(f"extra FPN block {type(extra_blocks).__name__} is not supported: "
                             "only LastLevelMaxPool keeps every stage a conv or pool on spikes")
        super().__init__(list(in_channels_list), out_channels, extra_blocks,
                         norm_layer=nn.BatchNorm2d)
        levels = len(in_channels_list)
        self.inner_sites = nn.ModuleList(SpikeSite() for _ in range(levels))
        self.layer_sites = nn.ModuleList(SpikeSite() for _ in range(levels))

    def forward(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        """``{name: [N, C_i, H_i, W_i]}`` (highest resolution first) -> the pyramid's spike maps
        ``{name: [N, out_channels, H_i, W_i]}`` (plus ``"pool"`` with ``LastLevelMaxPool``)."""
        names = list(x.keys())
        features = list(x.values())
        top = len(features) - 1
        last_inner = self.inner_sites[top](self.inner_blocks[top](features[top]))
        results = [self.layer_sites[top](self.layer_blocks[top](last_inner))]
        for idx in range(top - 1, -1, -1):
            lateral = self.inner_blocks[idx](features[idx])
            top_down = F.interpolate(last_inner, size=lateral.shape[-2:], mode="nearest")
            last_inner = self.inner_sites[idx](lateral + top_down)
            results.insert(0, self.layer_sites[idx](self.layer_blocks[idx](last_inner)))
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, features, names)
        return OrderedDict(zip(names, results))


class FPNBackbone(nn.Module):
    """``body`` (the trunk's stages) then ``fpn``: torchvision's ``BackboneWithFPN`` layout, so
    parameter names are ``body.*`` (the ResNet's own names) and ``fpn.*``."""

    def __init__(self, trunk: ResNet, stages: Sequence[str], out_channels: int,
                 extra_level: bool = False) -> None:
        super().__init__()
        if not stages:
            raise ValueError("the feature pyramid needs at least one backbone stage")
        channels = [stage_channels(trunk, s) for s in stages]
        self.stages = tuple(stages)
        self.body = IntermediateLayerGetter(trunk, {s: str(i) for i, s in enumerate(stages)})
        self.fpn = SpikingFeaturePyramid(channels, out_channels,
                                         LastLevelMaxPool() if extra_level else None)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.fpn(self.body(x))


# ---------------------------------------------------------------------------------------------
# head: convs shared across levels, BatchNorm and spike sites per level, linear readouts


class LevelwiseTower(nn.Module):
    """``num_convs`` 3x3 convs shared by every level; after each, a BatchNorm and a spike site of
    that level's own (``norms[level][i]``, ``sites[level][i]``): a BN shared across levels would
    mix their statistics, and a site shared across levels would be one neuron used several times.
    Folded for the chip, level l's conv i is ``conv_i`` scaled by ``norms[l][i]``."""

    def __init__(self, channels: int, num_levels: int, num_convs: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False)
                                   for _ in range(num_convs))
        self.norms = nn.ModuleList(nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(num_convs))
                                   for _ in range(num_levels))
        self.sites = nn.ModuleList(nn.ModuleList(SpikeSite() for _ in range(num_convs))
                                   for _ in range(num_levels))
        for conv in self.convs:
            nn.init.normal_(conv.weight, std=0.01)

    def forward(self, x: Tensor, level: int) -> Tensor:
        for i, conv in enumerate(self.convs):
            x = self.sites[level][i](self.norms[level][i](conv(x)))
        return x


def _locations_last(x: Tensor) -> Tensor:
    """``[N, K, H, W]`` -> ``[N, H*W, K]`` (torchvision's layout for one point per location)."""
    return x.flatten(2).transpose(1, 2)


class FCOSClassificationTower(nn.Module):
    """Class branch: tower, then ``cls_logits`` (3x3, linear readout, focal-loss prior bias)."""

    def __init__(self, channels: int, num_levels: int, num_classes: int, num_convs: int,
                 prior_probability: float = 0.01) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.tower = LevelwiseTower(channels, num_levels, num_convs)
        self.cls_logits = nn.Conv2d(channels, num_classes, 3, padding=1)
        nn.init.normal_(self.cls_logits.weight, std=0.01)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_probability) / prior_probability))

    def forward(self, features: list[Tensor]) -> Tensor:
        """Levels ``[N, C, H_l, W_l]`` -> logits ``[N, sum_l H_l W_l, K]``."""
        return torch.cat([_locations_last(m) for m in self.level_maps(features)], dim=1)

    def level_maps(self, features: list[Tensor]) -> list[Tensor]:
        """The readout maps ``[N, K, H_l, W_l]`` of every level (what the chip's readouts hold)."""
        return [self.cls_logits(self.tower(f, level)) for level, f in enumerate(features)]


class FCOSRegressionTower(nn.Module):
    """Box branch: tower, then ``bbox_reg`` (ltrb, before torchvision's ReLU) and
    ``bbox_ctrness`` (3x3 linear readouts)."""

    def __init__(self, channels: int, num_levels: int, num_convs: int) -> None:
        super().__init__()
        self.tower = LevelwiseTower(channels, num_levels, num_convs)
        self.bbox_reg = nn.Conv2d(channels, 4, 3, padding=1)
        self.bbox_ctrness = nn.Conv2d(channels, 1, 3, padding=1)
        for layer in (self.bbox_reg, self.bbox_ctrness):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Levels -> (``[N, L, 4]`` raw ltrb, ``[N, L, 1]`` centerness logits), L locations."""
        reg, ctr = self.level_maps(features)
        return (torch.cat([_locations_last(m) for m in reg], dim=1),
                torch.cat([_locations_last(m) for m in ctr], dim=1))

    def level_maps(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level the box map ``[N, 4, H_l, W_l]`` and the centerness map ``[N, 1, H_l, W_l]``."""
        reg, ctr = [], []
        for level, f in enumerate(features):
            t = self.tower(f, level)
            reg.append(self.bbox_reg(t))
            ctr.append(self.bbox_ctrness(t))
        return reg, ctr


class LevelwiseFCOSHead(FCOSHead):
    """An ``FCOSHead`` whose towers use per-level BatchNorm and spike sites instead of GroupNorm
    and shared ReLUs. torchvision's ``compute_loss`` (sigmoid focal loss, GIoU, centerness BCE,
    each divided by the number of foreground points) and box coder are inherited unchanged.

    ``FCOSHead.__init__`` is not called: it would build the GroupNorm towers (and fails for
    fewer than 32 channels); this sets the same three attributes.
    """

    def __init__(self, channels: int, num_levels: int, num_classes: int, num_convs: int = 4) -> None:
        nn.Module.__init__(self)
        self.box_coder = det_utils.BoxLinearCoder(normalize_by_size=True)
        self.classification_head = FCOSClassificationTower(channels, num_levels, num_classes, num_convs)
        self.regression_head = FCOSRegressionTower(channels, num_levels, num_convs)

    def forward(self, x: list[Tensor]) -> dict[str, Tensor]:
        """The readouts (linear; ``bbox_reg`` before the ReLU that ``head_outputs`` applies)."""
        return assemble_readouts(self.level_readouts(x))

    def level_readouts(self, x: list[Tensor]) -> dict[str, Tensor]:
        """Every readout map by ``"<readout>.<level>"`` (``cls_logits.0``: ``[N, K, H_0, W_0]``,
        ``bbox_reg.0``: ``[N, 4, ...]``, ``bbox_ctrness.0``: ``[N, 1, ...]``, ...): the head's
        last convs, i.e. what the chip's readout populations hold, one per output and level."""
        cls = self.classification_head.level_maps(x)
        reg, ctr = self.regression_head.level_maps(x)
        out: dict[str, Tensor] = {}
        for name, maps in zip(READOUTS, (cls, reg, ctr)):
            for level, m in enumerate(maps):
                out[f"{name}.{level}"] = m
        return out


def assemble_readouts(maps: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per-level readout maps (``LevelwiseFCOSHead.level_readouts``) -> the detector's readouts
    ``{name: [N, sum_l H_l W_l, k]}``: each map's locations flattened row by row and the levels
    concatenated in pyramid order, as torchvision's FCOS head lays them out. Host work (a
    reshape): the chip's readouts are the maps."""
    out = {}
    for name in READOUTS:
        levels = sorted((int(k.rsplit(".", 1)[1]), v) for k, v in maps.items()
                        if k.rsplit(".", 1)[0] == name)
        if not levels or [lv for lv, _ in levels] != list(range(len(levels))):
            raise KeyError(f"readout maps lack '{name}.<level>' for levels 0..n-1 (got "
                           f"{sorted(maps)})")
        out[name] = torch.cat([_locations_last(v) for _, v in levels], dim=1)
    return out


# ---------------------------------------------------------------------------------------------
# the detector


def head_outputs(readouts: dict[str, Tensor]) -> dict[str, Tensor]:
    """Readouts -> torchvision's FCOS head outputs: ``bbox_regression = relu(bbox_reg)`` (the
    ReLU that ``FCOSRegressionHead`` applies; here it runs on the T-averaged readout, as the
    host reads it off the chip)."""
    missing = [k for k in READOUTS if k not in readouts]
    if missing:
        raise KeyError(f"detector readouts lack {missing}; pass the dict that the detector's "
                       "forward returned")
    return {"cls_logits": readouts["cls_logits"],
            "bbox_regression": readouts["bbox_reg"].clamp(min=0),
            "bbox_ctrness": readouts["bbox_ctrness"]}


class FCOSDetector(FCOS, Network):
    """torchvision's FCOS as a sakd ``Network`` (ANN at ``time_steps == 0``, SNN after spikify).

    Built for one image size (``image_size``, the canvas): the points of every level are fixed by
    it. ``num_classes`` is the number of object classes; target labels are ``0..K-1`` (no
    background class: FCOS's sigmoid focal loss has none). Point sizes are ``anchor_scale`` times
    each level's stride: FCOS's convention is 1 (scale ranges [4s, 8s] per level, for objects of
    tens to hundreds of pixels); 0.5 suits objects of 8-48 px on a 32-64 px canvas.

    The torchvision ``transform`` is kept for ``predict`` on raw images only: its min and max
    size are the canvas's shorter side (so a canvas-sized image is not resized) and its mean/std
    are the data's. ``forward`` expects images already normalized with that mean/std.
    """

    def __init__(
        self,
        backbone: FPNBackbone,
        num_classes: int,
        image_size: tuple[int, int],
        in_channels: int,
        head_convs: int = 2,
        anchor_scale: float = 1.0,
        center_sampling_radius: float = 1.5,
        score_thresh: float = 0.2,
        nms_thresh: float = 0.6,
        detections_per_img: int = 100,
        topk_candidates: int = 1000,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if anchor_scale <= 0:
            raise ValueError(f"anchor_scale must be > 0, got {anchor_scale}")
        height, width = int(image_size[0]), int(image_size[1])
        level_shapes = _probe_levels(backbone, in_channels, (height, width))
        if any(h < 1 or w < 1 for h, w in level_shapes):
            raise ValueError(f"a {height}x{width} image leaves a pyramid level empty {level_shapes}")
        strides = [(height // h, width // w) for h, w in level_shapes]
        if any(b[0] <= a[0] or b[1] <= a[1] for a, b in itertools.pairwise(strides)):
            raise ValueError(f"a {height}x{width} image is too small for this pyramid: its levels "
                             f"{level_shapes} do not get coarser (strides {strides})")
        anchor_generator = AnchorGenerator(tuple((anchor_scale * sh,) for sh, _ in strides),
                                           ((1.0,),) * len(strides))
        head = LevelwiseFCOSHead(backbone.out_channels, len(level_shapes), num_classes, head_convs)
        side = min(height, width)
        super().__init__(
            backbone, num_classes, min_size=side, max_size=side,
            image_mean=list(image_mean) if image_mean is not None else [0.0] * in_channels,
            image_std=list(image_std) if image_std is not None else [1.0] * in_channels,
            anchor_generator=anchor_generator, head=head,
            center_sampling_radius=center_sampling_radius, score_thresh=score_thresh,
            nms_thresh=nms_thresh, detections_per_img=detections_per_img,
            topk_candidates=topk_candidates, size_divisible=1,
        )
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = (height, width)
        self.level_shapes = tuple(level_shapes)
        self.strides = tuple(strides)
        self.num_anchors_per_level = [h * w for h, w in level_shapes]
        levels = [f"backbone.fpn.layer_sites.{i}" for i in range(len(backbone.stages))]
        self.stage_names = tuple(f"backbone.body.{s}" for s in backbone.stages) + tuple(levels)

    @property
    def num_locations(self) -> int:
        """Points over all pyramid levels (the N of the readouts)."""
        return sum(self.num_anchors_per_level)

    # the network ------------------------------------------------------------------------------
    def forward_static(self, x: Tensor) -> dict[str, Tensor]:
        return assemble_readouts(self.forward_chip(x))

    def forward_chip(self, x: Tensor) -> dict[str, Tensor]:
        """One step's readout maps, one per head output and pyramid level
        (``LevelwiseFCOSHead.level_readouts``): the part of the network the chip runs; the
        export traces this, and ``assemble_readouts`` (host) turns it into the readouts."""
        features = list(self.backbone(x).values())
        return self.head.level_readouts(features)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Normalized images ``[B, C, H, W]`` -> readouts ``{name: [B, N, k]}``; for an SNN each
        readout is the mean over T of its per-step values."""
        if not self.time_steps:
            return self.forward_static(x)
        steps, batch = self.time_steps, x.shape[0]
        folded = x.unsqueeze(0).expand(steps, *x.shape).reshape(steps * batch, *x.shape[1:])
        readouts = self.forward_static(folded)
        return {k: v.reshape(steps, batch, *v.shape[1:]).mean(0) for k, v in readouts.items()}

    # torchvision's detector machinery on the readouts -----------------------------------------
    def anchors(self, batch: int, device: torch.device, dtype: torch.dtype = torch.float32) -> list[Tensor]:
        """torchvision's points for ``batch`` canvases: ``batch`` tensors ``[N, 4]`` (x1y1x2y2,
        pixels), levels concatenated in pyramid order."""
        height, width = self.image_size
        images = ImageList(torch.empty((batch, 1, height, width), device=device, dtype=dtype),
                           [(height, width)] * batch)
        features = [torch.empty((1, 1, h, w), device=device, dtype=dtype) for h, w in self.level_shapes]
        return self.anchor_generator(images, features)

    def _check(self, readouts: dict[str, Tensor]) -> dict[str, Tensor]:
        outputs = head_outputs(readouts)
        locations = outputs["cls_logits"].shape[1]
        if locations != self.num_locations or outputs["cls_logits"].shape[-1] != self.num_classes:
            raise ValueError(
                f"readouts with {locations} locations x {outputs['cls_logits'].shape[-1]} classes, "
                f"but this detector was built for {self.image_size[0]}x{self.image_size[1]} "
                f"images ({self.num_locations} locations) and {self.num_classes} classes: feed it "
                "images of that size (build it with the data's image_size)")
        return outputs

    def losses(self, readouts: dict[str, Tensor], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """torchvision's FCOS losses: ``classification`` (sigmoid focal), ``bbox_regression``
        (GIoU), ``bbox_ctrness`` (BCE), each summed and divided by the foreground points.

        ``targets``: one dict per image with ``boxes`` float ``[M, 4]`` (x1, y1, x2, y2 in
        canvas pixels) and ``labels`` int64 ``[M]`` in ``0..K-1``.
        """
        outputs = self._check(readouts)
        if len(targets) != outputs["cls_logits"].shape[0]:
            raise ValueError(f"{outputs['cls_logits'].shape[0]} images but {len(targets)} targets")
        for i, target in enumerate(targets):
            boxes, labels = target["boxes"], target["labels"]
            if boxes.ndim != 2 or boxes.shape[-1] != 4 or len(labels) != len(boxes):
                raise ValueError(f"target {i}: boxes must be [M, 4] with M labels, got boxes "
                                 f"{tuple(boxes.shape)} and labels {tuple(labels.shape)}")
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(f"target {i}: labels must lie in 0..{self.num_classes - 1}, got "
                                 f"{labels.tolist()}")
            if bool((boxes[:, 2:] <= boxes[:, :2]).any()):
                raise ValueError(f"target {i}: every box needs x2 > x1 and y2 > y1, got {boxes.tolist()}")
        outputs = {k: v.float() for k, v in outputs.items()}
        anchors = self.anchors(len(targets), outputs["cls_logits"].device)
        return self.compute_loss(targets, outputs, anchors, self.num_anchors_per_level)

    def decode_boxes(self, readouts: dict[str, Tensor]) -> Tensor:
        """The box of every location, ``[B, N, 4]`` (x1, y1, x2, y2 in canvas pixels)."""
        outputs = self._check(readouts)
        regression = outputs["bbox_regression"].float()
        anchors = torch.stack(self.anchors(regression.shape[0], regression.device))
        return self.box_coder.decode(regression, anchors)

    def scores(self, readouts: dict[str, Tensor]) -> Tensor:
        """FCOS's detection score per location and class, ``sqrt(sigmoid(cls) * sigmoid(ctr))``,
        ``[B, N, K]``."""
        outputs = self._check(readouts)
        return torch.sqrt(torch.sigmoid(outputs["cls_logits"].float())
                          * torch.sigmoid(outputs["bbox_ctrness"].float()))

    def postprocess(self, readouts: dict[str, Tensor]) -> list[dict[str, Tensor]]:
        """torchvision's FCOS postprocess (score threshold, top-k per level, box decoding,
        clipping, class-wise NMS): one dict per image with ``boxes`` ``[D, 4]`` (canvas pixels),
        ``scores`` ``[D]`` and ``labels`` int64 ``[D]``."""
        outputs = {k: v.float() for k, v in self._check(readouts).items()}
        batch = outputs["cls_logits"].shape[0]
        split = {k: list(v.split(self.num_anchors_per_level, dim=1)) for k, v in outputs.items()}
        anchors = [list(a.split(self.num_anchors_per_level))
                   for a in self.anchors(batch, outputs["cls_logits"].device)]
        return self.postprocess_detections(split, anchors, [self.image_size] * batch)

    @torch.no_grad()
    def predict(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        """Detections on raw images (``[C, h, w]`` floats in [0, 1], any size), in each image's
        own pixels: torchvision's transform (resize to fit the canvas, normalize), zero padding
        (the mean colour) to the canvas, forward, postprocess, and boxes mapped back."""
        if not images:
            return []
        was_training = self.training
        self.eval()
        try:
            original = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
            batch, _ = self.transform(list(images))
            height, width = self.image_size
            tensors = batch.tensors
            if tensors.shape[-2] > height or tensors.shape[-1] > width:
                raise ValueError(f"resized images {tuple(tensors.shape[-2:])} exceed the canvas "
                                 f"{self.image_size}")
            tensors = F.pad(tensors, (0, width - tensors.shape[-1], 0, height - tensors.shape[-2]))
            detections = self.postprocess(self(tensors))
            for det, shape in zip(detections, batch.image_sizes):
                det["boxes"] = box_ops.clip_boxes_to_image(det["boxes"], shape)
            return self.transform.postprocess(detections, batch.image_sizes, original)
        finally:
            self.train(was_training)


def _probe_levels(backbone: FPNBackbone, in_channels: int,
                  image_size: tuple[int, int]) -> list[tuple[int, int]]:
    """(H, W) of every pyramid level for one image of ``image_size`` (a dry run in eval mode, so
    no BatchNorm statistic moves; shapes only on the meta device)."""
    was_training = backbone.training
    backbone.eval()
    try:
        reference = next(backbone.parameters())
        probe = torch.zeros((1, in_channels, *image_size), device=reference.device, dtype=reference.dtype)
        with torch.no_grad():
            levels = backbone(probe)
    finally:
        backbone.train(was_training)
    return [(int(v.shape[-2]), int(v.shape[-1])) for v in levels.values()]


def fcos_resnet(
    num_classes: int,
    in_channels: int,
    image_size: tuple[int, int],
    *,
    layers: Sequence[int] = (1, 1, 1),
    widths: Sequence[int] = (32, 64, 128),
    block: type[BasicBlock] | type[Bottleneck] = BasicBlock,
    stem: str = "imagenet",
    sew: bool = False,
    fpn_stages: Sequence[str] | None = None,
    fpn_channels: int = 32,
    extra_level: bool = False,
    head_convs: int = 2,
    **detector_kwargs,
) -> FCOSDetector:
    """FCOS on a sakd ResNet (``sew=True``: SEW-ResNet, same parameters) with a spiking FPN of
    ``fpn_channels`` on ``fpn_stages`` (default: every stage), plus one subsampled level with
    ``extra_level``. ``detector_kwargs`` go to ``FCOSDetector`` (anchor_scale, thresholds,
    image_mean/std, ...)."""
    trunk = resnet_trunk(in_channels, layers, widths, block, stem, sew)
    stages = list(fpn_stages) if fpn_stages is not None else list(trunk.stage_names)
    backbone = FPNBackbone(trunk, stages, fpn_channels, extra_level)
    return FCOSDetector(backbone, num_classes, image_size, in_channels, head_convs=head_convs,
                        **detector_kwargs)
