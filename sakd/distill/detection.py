"""SAKD for detection and semantic segmentation: task objects with ``DistillationTask``'s interface.

Level 1 is unchanged (the SNN is ``spikify`` of the ANN detector/segmenter, the teacher's
weights load by ``load_state_dict``). Level 2 trains the SNN on

- detection (FCOS): torchvision's FCOS losses on the ground truth (focal + GIoU + centerness)
  + ``logit_weight`` * ``sigmoid_kd`` (class logits, per-class binary KL with temperature)
  + ``box_weight`` * ``box_kd`` (GIoU between the student's and the teacher's decoded boxes,
  plus the binary KL of the centerness, on the teacher's positive locations)
  + w_f * sum_k MSE(adapter_k(rate_k), F_k) on backbone stages and FPN levels;
- segmentation: per-pixel cross-entropy + ``logit_weight`` * per-pixel softmax KL with
  temperature (``logits_kd`` with every pixel a sample) + the same feature term.

``kd`` is one of ``both``, ``logits`` (head outputs only: for detection the class and the box
terms), ``features`` or ``none`` (the from-scratch baseline), as for classification. The
teacher is frozen in eval mode, runs under ``no_grad`` and stays outside the module tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import generalized_box_iou_loss

from sakd.distill.losses import feature_kd, logits_kd
from sakd.distill.schedule import FeatureWeight
from sakd.distill.task import DistillationTask, SAKDStudent, TaskOutput, check_taps_match
from sakd.models.base import Network

if TYPE_CHECKING:
    from sakd.models.detection import FCOSDetector

Targets = list[dict[str, Tensor]]


@dataclass
class DenseTaskOutput(TaskOutput):
    """``TaskOutput`` whose ``logits`` are the class logits (detection ``[B, N, K]``,
    segmentation ``[B, K, H, W]``), plus every readout of a detector in ``outputs``."""

    outputs: dict[str, Tensor] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# loss terms (pure functions of tensors)


def sigmoid_kd(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Logit KD for sigmoid (focal-loss) classifiers: ``tau^2 * mean over locations of
    sum_k KL(Bernoulli(sigmoid(z_A,k / tau)) || Bernoulli(sigmoid(z_S,k / tau)))``.

    Each location is a sample of K independent binary classifiers (the focal loss has no
    softmax across classes), so the KL is per class and summed over classes, then averaged over
    locations and images, as ``logits_kd`` averages over samples. Zero iff the logits agree.
    Shapes ``[..., K]``.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} but teacher logits "
                         f"{tuple(teacher_logits.shape)}")
    s = student_logits.float() / temperature
    t = teacher_logits.detach().float() / temperature
    p_t = torch.sigmoid(t)
    kl = p_t * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - p_t) * (F.logsigmoid(-t) - F.logsigmoid(-s))
    return kl.sum(-1).mean() * temperature**2


def box_kd(student_boxes: Tensor, teacher_boxes: Tensor, positives: Tensor) -> Tensor:
    """Mean GIoU loss between student and teacher boxes ``[B, N, 4]`` (x1y1x2y2) over the
    locations where ``positives`` ``[B, N]`` is true; 0 (still a graph node) when there are none.

    GIoU, not L1 on coordinates: it is the loss FCOS trains its boxes with, it is invariant to
    the box's scale (an L1 in pixels would be dominated by the largest objects), and it is
    bounded in [0, 2], so its weight is comparable across data sets and canvases.
    """
    if student_boxes.shape != teacher_boxes.shape or student_boxes.shape[:-1] != positives.shape:
        raise ValueError(f"boxes {tuple(student_boxes.shape)} / {tuple(teacher_boxes.shape)} and "
                         f"positives {tuple(positives.shape)} do not match")
    count = int(positives.sum())
    if count == 0:
        return student_boxes.sum() * 0.0
    loss = generalized_box_iou_loss(student_boxes[positives].float(),
                                    teacher_boxes[positives].detach().float(), reduction="sum")
    return loss / count


def binary_kd(student_logits: Tensor, teacher_logits: Tensor, mask: Tensor) -> Tensor:
    """Mean binary KL(sigmoid(teacher) || sigmoid(student)) over ``mask`` (0 when empty)."""
    if int(mask.sum()) == 0:
        return student_logits.sum() * 0.0
    return sigmoid_kd(student_logits[mask].unsqueeze(-1), teacher_logits[mask].unsqueeze(-1), 1.0)


def teacher_positives(teacher: FCOSDetector, teacher_readouts: dict[str, Tensor],
                      threshold: float) -> Tensor:
    """``[B, N]``: the locations whose teacher detection score (FCOS's
    ``sqrt(sigmoid(cls) * sigmoid(ctr))``, best class) reaches ``threshold``: the candidates
    the teacher's own postprocess keeps before NMS."""
    return teacher.scores(teacher_readouts).amax(-1) >= threshold


def trainable_targets(targets: Targets) -> Targets:
    """The targets without crowd boxes (``iscrowd == 1``: ignored by mAP, never trained on)."""
    out = []
    for target in targets:
        crowd = target.get("iscrowd")
        if crowd is None or not bool(crowd.any()):
            out.append(target)
            continue
        keep = crowd == 0
        out.append({k: (v[keep] if k in ("boxes", "labels", "masks", "iscrowd") else v)
                    for k, v in target.items()})
    return out


def _core(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def _require(model: nn.Module, methods: tuple[str, ...], what: str) -> None:
    model = _core(model)
    missing = [m for m in methods if not hasattr(model, m)]
    if missing:
        raise TypeError(f"{type(model).__name__} is not a {what} (it lacks {missing}); build it "
                        f"with sakd.models.build_model from a '{what}' family architecture")


# ---------------------------------------------------------------------------------------------
# training without a teacher (the ANN teacher itself, or an SNN from scratch)


class DetectionTask(nn.Module):
    """torchvision's FCOS losses on the readouts of ``model`` (an ``FCOSDetector``)."""

    def __init__(self, model: Network) -> None:
        super().__init__()
        _require(model, ("losses", "postprocess"), "detection")
        self.model = model

    def forward(self, x: Tensor, targets: Targets) -> DenseTaskOutput:
        readouts = self.model(x)
        parts = dict(_core(self.model).losses(readouts, trainable_targets(targets)))
        return DenseTaskOutput(sum(parts.values()), parts, readouts["cls_logits"], readouts)

    def set_position(self, epoch: int, batch_index: int) -> None:
        """Nothing depends on the position in training."""


class SegmentationTask(nn.Module):
    """Per-pixel cross-entropy (``ignore_index`` pixels skipped) on ``model``'s logits."""

    def __init__(self, model: Network) -> None:
        super().__init__()
        _require(model, ("loss",), "segmentation")
        self.model = model

    def forward(self, x: Tensor, masks: Tensor) -> DenseTaskOutput:
        logits = self.model(x)
        ce = _core(self.model).loss(logits, masks)
        return DenseTaskOutput(ce, {"ce": ce}, logits)

    def set_position(self, epoch: int, batch_index: int) -> None:
        """Nothing depends on the position in training."""


# ---------------------------------------------------------------------------------------------
# SAKD level 2


def dense_student(snn: Network, teacher: Network | None, taps: list[str] | None,
                  adapter_kernel: int = 1, batch: int = 2) -> SAKDStudent:
    """The SNN plus a conv+BN adapter per feature tap (default taps: ``snn.stage_names``, the
    backbone stages and FPN levels), checked against the teacher's tap shapes on a zero batch of
    the network's image size. ``taps=[]`` (or no teacher): no adapters."""
    taps = list(snn.stage_names) if taps is None else list(taps)
    if not taps or teacher is None:
        return SAKDStudent(snn, [], adapter_kernel, {})
    channels = _input_channels(snn)
    example = torch.zeros(batch, channels, *snn.image_size, device=next(snn.parameters()).device)
    shapes = check_taps_match(snn, teacher, taps, example)
    return SAKDStudent(snn, taps, adapter_kernel, shapes)


def _snn_of(student: nn.Module) -> Network:
    """The SNN inside a ``SAKDStudent`` (possibly DDP-wrapped)."""
    core = _core(student)
    if not isinstance(core, SAKDStudent):
        raise TypeError(f"the student must be a SAKDStudent (got {type(core).__name__}); wrap the "
                        "SNN with sakd.distill.detection.dense_student(snn, teacher, taps)")
    return core.snn


def _input_channels(network: Network) -> int:
    if hasattr(network, "in_channels"):
        return int(network.in_channels)
    first = next(m for m in network.modules() if isinstance(m, nn.Conv2d))
    return first.in_channels


class DetectionDistillationTask(DistillationTask):
    """SAKD level 2 for an FCOS student (``SAKDStudent`` around the spikified detector).

    Parts: ``classification``, ``bbox_regression``, ``bbox_ctrness`` (torchvision's, on the
    ground truth), ``kd_logits`` = c * ``sigmoid_kd`` (all locations), ``kd_boxes`` =
    ``box_weight`` * (GIoU(student boxes, teacher boxes) + binary KL of the centerness) on the
    teacher's positive locations (score >= ``score_threshold``, default: the teacher's
    ``score_thresh``), ``kd_features`` = w_f * sum of tap MSEs.
    """

    def __init__(self, student: nn.Module, teacher: Network | None, kd: str, logit_weight: float,
                 temperature: float, feature_weight: FeatureWeight, taps: list[str],
                 box_weight: float = 1.0, score_threshold: float | None = None) -> None:
        super().__init__(student, teacher, kd, logit_weight, temperature, feature_weight, taps)
        _require(_snn_of(student), ("losses", "decode_boxes", "scores"), "detection")
        if teacher is not None:
            _require(teacher, ("losses", "decode_boxes", "scores"), "detection")
        self.box_weight = box_weight
        if score_threshold is None:
            score_threshold = float(teacher.score_thresh) if teacher is not None else 0.2
        if not 0.0 < score_threshold < 1.0:
            raise ValueError(f"score_threshold must lie in (0, 1), got {score_threshold}")
        self.score_threshold = score_threshold

    def forward(self, x: Tensor, targets: Targets) -> DenseTaskOutput:
        readouts, features = self.student(x)
        detector = _snn_of(self.student)
        parts = dict(detector.losses(readouts, trainable_targets(targets)))
        if self.kd != "none":
            with torch.no_grad():
                teacher_readouts = self.teacher(x)
                teacher_features = self._teacher_taps.pop() if self._teacher_taps else {}
            if self.uses_logits:
                parts["kd_logits"] = self.logit_weight * sigmoid_kd(
                    readouts["cls_logits"], teacher_readouts["cls_logits"], self.temperature)
                with torch.no_grad():
                    positives = teacher_positives(self.teacher, teacher_readouts, self.score_threshold)
                    teacher_boxes = self.teacher.decode_boxes(teacher_readouts)
                boxes = box_kd(detector.decode_boxes(readouts), teacher_boxes, positives)
                centerness = binary_kd(readouts["bbox_ctrness"][..., 0],
                                       teacher_readouts["bbox_ctrness"][..., 0], positives)
                parts["kd_boxes"] = self.box_weight * (boxes + centerness)
            if self.uses_features:
                parts["kd_features"] = self.current_feature_weight * feature_kd(features, teacher_features)
        return DenseTaskOutput(sum(parts.values()), parts, readouts["cls_logits"], readouts)


class SegmentationDistillationTask(DistillationTask):
    """SAKD level 2 for a segmentation student: ``ce`` (per pixel, ignore_index skipped),
    ``kd_logits`` = c * tau^2 * KL(softmax(z_A/tau) || softmax(z_S/tau)) averaged over every
    pixel (each pixel a sample of ``logits_kd``), ``kd_features`` = w_f * sum of tap MSEs."""

    def __init__(self, student: nn.Module, teacher: Network | None, kd: str, logit_weight: float,
                 temperature: float, feature_weight: FeatureWeight, taps: list[str]) -> None:
        super().__init__(student, teacher, kd, logit_weight, temperature, feature_weight, taps)
        _require(_snn_of(student), ("loss",), "segmentation")

    def forward(self, x: Tensor, masks: Tensor) -> DenseTaskOutput:
        logits, features = self.student(x)
        parts = {"ce": _snn_of(self.student).loss(logits, masks)}
        if self.kd != "none":
            with torch.no_grad():
                teacher_logits = self.teacher(x)
                teacher_features = self._teacher_taps.pop() if self._teacher_taps else {}
            if self.uses_logits:
                parts["kd_logits"] = self.logit_weight * logits_kd(
                    _pixels(logits), _pixels(teacher_logits), self.temperature)
            if self.uses_features:
                parts["kd_features"] = self.current_feature_weight * feature_kd(features, teacher_features)
        return DenseTaskOutput(sum(parts.values()), parts, logits)


def _pixels(logits: Tensor) -> Tensor:
    """``[B, K, H, W]`` -> ``[B*H*W, K]``."""
    return logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
