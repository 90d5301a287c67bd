"""What the training jobs do differently per task (``config.task``): the data, the task object,
the evaluation and the figure that picks the best epoch.

- ``classification``: ``sakd.data.load_splits``, cross-entropy / ``DistillationTask``, top-1
  accuracy (%); the best epoch has the highest validation accuracy.
- ``detection``: ``sakd.data.detection.load_dense_splits`` (target dicts, ``detection_collate``),
  torchvision's FCOS losses / ``DetectionDistillationTask``, torchmetrics' COCO mAP; the best
  epoch has the highest validation mAP@[.5:.95].
- ``segmentation``: the same loader (class maps), per-pixel cross-entropy /
  ``SegmentationDistillationTask``, torchmetrics' mean IoU; the best epoch has the highest
  validation mIoU.

The dense metrics are in [0, 1]; ``select_acc`` in the metrics log holds them in % (100 x), so
that one rule picks the best epoch of every task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset

from sakd.models.base import Network
from sakd.train.distributed import DistEnv

#: the figure each task's best epoch is chosen by (a key of the evaluation dict)
SELECT_METRIC = {"classification": "acc", "detection": "map", "segmentation": "miou"}
#: how the figure is named in logs and summaries
METRIC_TITLE = {"acc": "accuracy", "map": "mAP@[.5:.95]", "miou": "mIoU"}

Evaluator = Callable[..., dict[str, Any]]


def dense_data(config: Any) -> Any:
    """The ``DenseSplits`` of a detection or segmentation config."""
    from sakd.data.detection import load_dense_splits

    d = config.data
    options: dict[str, Any] = {}
    if d.name in ("digit-scenes", "fashion-scenes"):
        for key in ("train_scenes", "test_scenes"):
            if getattr(d, key) is not None:
                options[key] = getattr(d, key)
    elif d.year is not None:
        options["year"] = d.year
    size = None if d.image_size is None else (d.image_size, d.image_size)
    return load_dense_splits(d.name, config.task, d.root, size, augment=d.augment,
                             val_fraction=d.val_fraction, seed=config.seed, **options)


def move_targets(y: Any, device: torch.device) -> Any:
    """A batch's targets on ``device``: a tensor (labels, class maps) or a list of target dicts."""
    if torch.is_tensor(y):
        return y.to(device, non_blocking=True)
    from sakd.data.detection import targets_to

    return targets_to(y, device)


def plain_task(task: str, model: torch.nn.Module) -> torch.nn.Module:
    """The task object that trains ``model`` on the ground truth alone (the ANN teacher)."""
    from sakd.distill import ClassificationTask

    if task == "classification":
        return ClassificationTask(model)
    from sakd.distill.detection import DetectionTask, SegmentationTask

    return DetectionTask(model) if task == "detection" else SegmentationTask(model)


def distillation_task(task: str, student: torch.nn.Module, teacher: Network | None, config: Any,
                      schedule: Any, taps: list[str]) -> torch.nn.Module:
    """SAKD level 2 for ``task`` (``kd=none``: the task loss only)."""
    d = config.distill
    if task == "classification":
        from sakd.distill import DistillationTask

        return DistillationTask(student, teacher, d.kd, d.logit_weight, d.temperature, schedule, taps)
    from sakd.distill.detection import DetectionDistillationTask, SegmentationDistillationTask

    if task == "detection":
        return DetectionDistillationTask(student, teacher, d.kd, d.logit_weight, d.temperature,
                                         schedule, taps, box_weight=d.box_weight)
    return SegmentationDistillationTask(student, teacher, d.kd, d.logit_weight, d.temperature,
                                        schedule, taps)


def evaluator(task: str, class_names: tuple[str, ...] = ()) -> Evaluator:
    """``fn(network, dataset, env, *, batch_size, amp, workers, firing_rates)`` -> a dict of
    figures (classification: acc %, loss, n; detection: map, map_50, map_75, mar_100, n;
    segmentation: miou, pixel_acc, n; plus firing_rates on request)."""
    if task == "classification":
        from sakd.train.evaluate import evaluate

        return evaluate

    def run(network: Network, dataset: Dataset, env: DistEnv, batch_size: int = 64,
            amp: str = "auto", workers: int = 0, firing_rates: bool = False) -> dict[str, Any]:
        from sakd.train.evaluate_dense import evaluate_detection, evaluate_segmentation

        fn = evaluate_detection if task == "detection" else evaluate_segmentation
        metrics = fn(network, dataset, env, batch_size=batch_size, amp=amp, workers=workers,
                     class_names=class_names, firing_rates=firing_rates).to_dict()
        metrics.pop("map_per_class", None)
        if not firing_rates:
            metrics.pop("firing_rates", None)
        return metrics

    return run


def check_classes(network: Network, num_classes: int, data: str, what: str) -> None:
    """``network`` must predict ``num_classes`` (objects for detection, classes with the
    background for segmentation)."""
    from sakd.train.checkpoint import CheckpointError

    predicted = getattr(network, "num_classes", None)
    if predicted is None:
        predicted = network.classifier.out_features
    if int(predicted) != int(num_classes):
        raise CheckpointError(f"the {what} predicts {predicted} classes but {data} has "
                              f"{num_classes}")
