"""Detection and segmentation metrics of a Network on a data set, with torchmetrics.

- detection: COCO-style mean average precision (torchmetrics ``MeanAveragePrecision``,
  pycocotools backend): mAP@[.5:.95], mAP@.5, mAP@.75, mAR@100; boxes with ``iscrowd`` = 1 are
  ignored, as COCO and VOC's "difficult" protocol do;
- segmentation: mean IoU over the classes present (torchmetrics ``MulticlassJaccardIndex``,
  macro), per-class IoU and pixel accuracy, pixels with ``ignore_index`` skipped.

Both shard the data set over processes without padding (``ShardSampler``); torchmetrics gathers
the states at ``compute()`` when torch.distributed is initialized, so every rank returns the same
figures. Firing rates of an SNN's neurons come with ``firing_rates=True``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset

from sakd.data.detection import IGNORE_INDEX, detection_collate, targets_to
from sakd.models.base import Network
from sakd.train.distributed import DistEnv, ShardSampler, all_reduce_sum
from sakd.train.evaluate import FiringRateMeter, autocast_context


@dataclass(frozen=True)
class DetectionMetrics:
    """COCO-style figures in [0, 1] (-1 where torchmetrics has nothing to average, e.g. no
    ground-truth box at all); ``n`` images."""

    map: float  # mAP@[.5:.95]
    map_50: float
    map_75: float
    mar_100: float  # mean average recall with at most 100 detections per image
    n: int
    map_per_class: dict[str, float] = field(default_factory=dict)
    firing_rates: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SegmentationMetrics:
    """``miou``: mean IoU over the classes that occur in the targets or the predictions;
    ``iou_per_class``: those classes' IoU (absent classes are left out); ``pixel_acc`` over the
    non-ignored pixels; ``n`` images."""

    miou: float
    pixel_acc: float
    n: int
    iou_per_class: dict[str, float] = field(default_factory=dict)
    firing_rates: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _loader(dataset: Dataset, batch_size: int, env: DistEnv, workers: int, collate) -> DataLoader:
    sampler = ShardSampler(len(dataset), env.rank, env.world_size)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate, pin_memory=env.device.type == "cuda")


def _rates(meter: FiringRateMeter | None, env: DistEnv) -> dict[str, float]:
    if meter is None:
        return {}
    names = meter.names
    totals = all_reduce_sum([meter.sums.get(n, 0.0) for n in names]
                            + [meter.counts.get(n, 0.0) for n in names], env)
    return {n: totals[i] / max(totals[len(names) + i], 1.0) for i, n in enumerate(names)}


@torch.no_grad()
def evaluate_detection(model: Network, dataset: Dataset, env: DistEnv | None = None,
                       batch_size: int = 64, amp: str = "auto", workers: int = 0,
                       class_names: tuple[str, ...] = (), firing_rates: bool = False) -> DetectionMetrics:
    """mAP of an ``FCOSDetector`` (ANN or SNN) on a detection set (items ``(image, target)``).

    ``class_names`` (e.g. ``DatasetInfo.class_names``) adds the per-class mAP@[.5:.95].
    """
    from torchmetrics.detection import MeanAveragePrecision

    if not hasattr(model, "postprocess"):
        raise TypeError(f"{type(model).__name__} has no postprocess(): evaluate_detection needs a "
                        "detector (a 'detection' family architecture)")
    env = env or DistEnv()
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox",
                                  class_metrics=bool(class_names)).to(env.device)
    was_training = model.training
    model.eval()
    meter = FiringRateMeter(model) if firing_rates and model.is_spiking else None
    seen = 0
    try:
        for images, targets in _loader(dataset, batch_size, env, workers, detection_collate):
            images = images.to(env.device, non_blocking=True)
            with autocast_context(env.device, amp):
                readouts = model(images)
            detections = model.postprocess(readouts)
            truth = [{k: t[k] for k in ("boxes", "labels", "iscrowd") if k in t}
                     for t in targets_to(targets, env.device)]
            metric.update(detections, truth)
            seen += len(targets)
        result = metric.compute()
    finally:
        model.train(was_training)
        if meter is not None:
            meter.remove()
    (seen,) = all_reduce_sum([float(seen)], env)
    per_class = {}
    if class_names and "map_per_class" in result:
        values = result["map_per_class"].flatten().tolist()
        classes = result["classes"].flatten().tolist()
        per_class = {class_names[int(c)]: float(v) for c, v in zip(classes, values)
                     if 0 <= int(c) < len(class_names)}
    return DetectionMetrics(float(result["map"]), float(result["map_50"]), float(result["map_75"]),
                            float(result["mar_100"]), int(seen), per_class, _rates(meter, env))


@torch.no_grad()
def evaluate_segmentation(model: Network, dataset: Dataset, env: DistEnv | None = None,
                          batch_size: int = 64, amp: str = "auto", workers: int = 0,
                          class_names: tuple[str, ...] = (), ignore_index: int = IGNORE_INDEX,
                          firing_rates: bool = False) -> SegmentationMetrics:
    """mIoU and pixel accuracy of a segmenter (ANN or SNN) on a set of ``(image, mask)`` items;
    ``model(x)`` returns logits ``[B, K, H, W]``."""
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    env = env or DistEnv()
    num_classes = int(getattr(model, "num_classes", 0) or len(class_names))
    if num_classes < 2:
        raise ValueError("evaluate_segmentation needs the number of classes: a model with "
                         "num_classes, or class_names")
    kwargs = dict(num_classes=num_classes, ignore_index=ignore_index)
    miou = MulticlassJaccardIndex(average="macro", **kwargs).to(env.device)
    per_class = MulticlassJaccardIndex(average="none", **kwargs).to(env.device)
    accuracy = MulticlassAccuracy(average="micro", **kwargs).to(env.device)
    present = torch.zeros(num_classes, dtype=torch.float64)
    was_training = model.training
    model.eval()
    meter = FiringRateMeter(model) if firing_rates and model.is_spiking else None
    seen = 0
    try:
        for images, masks in _loader(dataset, batch_size, env, workers, None):
            images, masks = images.to(env.device), masks.to(env.device)
            with autocast_context(env.device, amp):
                logits = model(images)
            if logits.shape[-2:] != masks.shape[-2:]:
                raise ValueError(f"logits {tuple(logits.shape)} and masks {tuple(masks.shape)} differ in size")
            predictions = logits.argmax(1)
            for metric in (miou, per_class, accuracy):
                metric.update(predictions, masks)
            valid = masks != ignore_index
            present += torch.bincount(masks[valid].flatten().cpu(), minlength=num_classes)[:num_classes].double()
            present += torch.bincount(predictions[valid].flatten().cpu(), minlength=num_classes).double()
            seen += len(masks)
        mean_iou, ious, pixel_acc = miou.compute(), per_class.compute(), accuracy.compute()
    finally:
        model.train(was_training)
        if meter is not None:
            meter.remove()
    totals = all_reduce_sum([float(seen), *present.tolist()], env)
    names = class_names or tuple(str(k) for k in range(num_classes))
    iou = {names[k]: float(ious[k]) for k in range(num_classes) if totals[1 + k] > 0}
    value = float(mean_iou)
    return SegmentationMetrics(value if math.isfinite(value) else 0.0, float(pixel_acc),
                               int(totals[0]), iou, _rates(meter, env))


# ---------------------------------------------------------------------------------------------
# the same figures from predictions made elsewhere (the chip's readouts, decoded on the host)


def detection_metrics(detections: list[dict[str, torch.Tensor]],
                      targets: list[dict[str, torch.Tensor]]) -> DetectionMetrics:
    """COCO-style mAP of ``detections`` (per image ``boxes`` xyxy, ``scores``, ``labels``)
    against ``targets`` (``boxes``, ``labels``, ``iscrowd``), as ``evaluate_detection`` scores
    a detector's own postprocess."""
    from torchmetrics.detection import MeanAveragePrecision

    if len(detections) != len(targets):
        raise ValueError(f"{len(detections)} detections for {len(targets)} targets")
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox")
    truth = [{k: t[k] for k in ("boxes", "labels", "iscrowd") if k in t} for t in targets]
    metric.update([{k: v.float() if k != "labels" else v for k, v in d.items()} for d in detections],
                  truth)
    result = metric.compute()
    return DetectionMetrics(float(result["map"]), float(result["map_50"]), float(result["map_75"]),
                            float(result["mar_100"]), len(targets))


def segmentation_metrics(predictions: torch.Tensor, masks: torch.Tensor, num_classes: int,
                         ignore_index: int = IGNORE_INDEX) -> SegmentationMetrics:
    """mIoU and pixel accuracy of class maps ``predictions`` ``[B, H, W]`` against ``masks``
    (``ignore_index`` skipped), as ``evaluate_segmentation`` scores a segmenter's argmax."""
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    kwargs = dict(num_classes=num_classes, ignore_index=ignore_index)
    miou = MulticlassJaccardIndex(average="macro", **kwargs)
    accuracy = MulticlassAccuracy(average="micro", **kwargs)
    miou.update(predictions, masks)
    accuracy.update(predictions, masks)
    value = float(miou.compute())
    return SegmentationMetrics(value if math.isfinite(value) else 0.0, float(accuracy.compute()),
                               int(len(masks)))
