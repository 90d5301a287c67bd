"""SAKD for detection and segmentation: the loss terms, the task objects in every kd mode
(forward and backward on a tiny batch), short training loops, and the metrics."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from sakd.data.detection import SceneSpec, load_scene_splits
from sakd.distill import FeatureWeight
from sakd.distill.detection import (
    DetectionDistillationTask,
    DetectionTask,
    SegmentationDistillationTask,
    SegmentationTask,
    box_kd,
    dense_student,
    sigmoid_kd,
    trainable_targets,
)
from sakd.models import spikify
from sakd.models.detection import fcos_resnet
from sakd.models.segmentation import segmentation_resnet
from sakd.train.evaluate_dense import evaluate_detection, evaluate_segmentation

# torchmetrics imports spikingjelly's scienceplots through matplotlib, which warns about itself
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:scienceplots")

SPEC = SceneSpec(canvas=32, scales=(1, 2), max_objects=2, train_scenes=32, test_scenes=8, seed=1)


@pytest.fixture(scope="module")
def detection_data():
    return load_scene_splits("digits", "detection", SPEC)


@pytest.fixture(scope="module")
def segmentation_data():
    return load_scene_splits("digits", "segmentation", SPEC)


def detector(seed: int = 0, sew: bool = False):
    torch.manual_seed(seed)
    return fcos_resnet(10, 1, (32, 32), layers=(1, 1), widths=(8, 16), fpn_channels=8,
                       head_convs=1, anchor_scale=0.5, center_sampling_radius=2.5, sew=sew)


def segmenter(seed: int = 0, head: str = "fcn"):
    torch.manual_seed(seed)
    return segmentation_resnet(11, 1, (32, 32), head=head, layers=(1, 1), widths=(8, 16),
                               head_width=8, atrous_rates=(1, 2))


def batch_of(data, n: int = 4):
    return next(iter(DataLoader(data.train, batch_size=n, collate_fn=data.collate_fn)))


# ---------------------------------------------------------------------------------------------
# loss terms


def test_sigmoid_kd_is_zero_iff_the_logits_agree():
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(2, 7, 5, generator=g)
    assert float(sigmoid_kd(teacher.clone(), teacher, 2.0)) == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(2, 7, 5, generator=g, requires_grad=True)
    loss = sigmoid_kd(student, teacher, 1.0)
    assert float(loss.detach()) > 0
    loss.backward()
    # the gradient pulls sigmoid(student) towards sigmoid(teacher): d/ds = (p_s - p_t) / (B*N)
    expected = (torch.sigmoid(student.detach()) - torch.sigmoid(teacher)) / 14
    assert torch.allclose(student.grad, expected, atol=1e-6)
    # by hand, one location and one class: KL(Bern(p) || Bern(q)) * tau^2
    p, q = torch.sigmoid(torch.tensor(0.5)), torch.sigmoid(torch.tensor(-1.0))
    kl = p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
    value = sigmoid_kd(torch.tensor([[-2.0]]), torch.tensor([[1.0]]), 2.0)
    assert float(value) == pytest.approx(float(kl) * 4, rel=1e-5)


def test_box_kd_is_giou_on_the_positives_only():
    teacher = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 9.0, 9.0], [1.0, 1.0, 2.0, 2.0]]])
    student = teacher.clone()
    student[0, 2] = torch.tensor([20.0, 20.0, 30.0, 30.0])  # far off, but not a positive
    positives = torch.tensor([[True, True, False]])
    assert float(box_kd(student, teacher, positives)) == pytest.approx(0.0, abs=1e-6)
    student[0, 1] = torch.tensor([5.0, 5.0, 9.0, 13.0])  # IoU 1/2, enclosing box = the union
    assert float(box_kd(student, teacher, positives)) == pytest.approx(0.25, abs=1e-5)
    student.requires_grad_(True)
    none = box_kd(student, teacher, torch.zeros(1, 3, dtype=torch.bool))
    none.backward()
    assert float(none.detach()) == 0.0 and torch.equal(student.grad, torch.zeros_like(student))


def test_trainable_targets_drop_crowds_only():
    target = {"boxes": torch.tensor([[0.0, 0, 4, 4], [1, 1, 5, 5]]), "labels": torch.tensor([1, 2]),
              "iscrowd": torch.tensor([0, 1]), "image_id": torch.tensor(3)}
    (kept,) = trainable_targets([target])
    assert kept["labels"].tolist() == [1] and kept["boxes"].shape == (1, 4) and int(kept["image_id"]) == 3
    plain = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    assert trainable_targets([plain])[0] is plain


# ---------------------------------------------------------------------------------------------
# task objects


EXPECTED_PARTS = {
    "none": set(),
    "logits": {"kd_logits", "kd_boxes"},
    "features": {"kd_features"},
    "both": {"kd_logits", "kd_boxes", "kd_features"},
}


@pytest.mark.parametrize("kd", ["both", "logits", "features", "none"])
def test_detection_distillation_forward_backward(kd, detection_data):
    teacher = detector(seed=1)
    snn = spikify(detector(seed=2), 2)
    snn.load_state_dict(teacher.state_dict())  # level 1
    student = dense_student(snn, teacher if kd != "none" else None,
                            None if kd in ("both", "features") else [])
    task = DetectionDistillationTask(student, teacher if kd != "none" else None, kd, logit_weight=2.0,
                                     temperature=2.0, feature_weight=FeatureWeight("constant", 3.0),
                                     taps=list(student.tap_names), box_weight=1.5, score_threshold=0.05)
    task.train()
    x, targets = batch_of(detection_data)
    out = task(x, targets)
    assert set(out.parts) == {"classification", "bbox_regression", "bbox_ctrness"} | EXPECTED_PARTS[kd]
    assert torch.allclose(out.loss, sum(out.parts.values()))
    assert out.logits.shape == (4, snn.num_locations, 10) and set(out.outputs) == {"cls_logits", "bbox_reg", "bbox_ctrness"}
    out.loss.backward()
    assert snn.backbone.body.conv1.weight.grad.abs().sum() > 0
    assert snn.head.classification_head.cls_logits.weight.grad.abs().sum() > 0
    if "kd_features" in out.parts:
        assert len(student.adapters) == 4  # 2 backbone stages + 2 FPN levels
        assert all(p.grad is not None for p in student.adapters.parameters())
    if kd != "none":
        assert all(p.grad is None for p in teacher.parameters()) and not teacher.training


def test_box_distillation_only_where_the_teacher_detects(detection_data):
    """With an untrained teacher nothing reaches the score threshold: kd_boxes is exactly 0."""
    teacher = detector(seed=1)
    student = dense_student(spikify(detector(seed=2), 2), teacher, [])
    task = DetectionDistillationTask(student, teacher, "logits", 1.0, 1.0, FeatureWeight(), [],
                                     score_threshold=0.5)
    x, targets = batch_of(detection_data)
    assert float(task(x, targets).parts["kd_boxes"].detach()) == 0.0
    assert task.score_threshold == 0.5
    default = DetectionDistillationTask(student, teacher, "logits", 1.0, 1.0, FeatureWeight(), [])
    assert default.score_threshold == teacher.score_thresh


@pytest.mark.parametrize("kd", ["both", "logits", "features", "none"])
def test_segmentation_distillation_forward_backward(kd, segmentation_data):
    teacher = segmenter(seed=1, head="deeplabv3")
    snn = spikify(segmenter(seed=2, head="deeplabv3"), 2)
    snn.load_state_dict(teacher.state_dict())
    student = dense_student(snn, teacher if kd != "none" else None,
                            None if kd in ("both", "features") else [])
    task = SegmentationDistillationTask(student, teacher if kd != "none" else None, kd, 1.0, 2.0,
                                        FeatureWeight("constant", 1.0), list(student.tap_names))
    x, masks = batch_of(segmentation_data)
    out = task(x, masks)
    assert set(out.parts) == {"ce"} | (EXPECTED_PARTS[kd] - {"kd_boxes"})
    assert torch.allclose(out.loss, sum(out.parts.values()))
    assert out.logits.shape == (4, 11, 32, 32)
    out.loss.backward()
    assert snn.backbone.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_tasks_refuse_the_wrong_kind_of_model():
    with pytest.raises(TypeError, match="not a detection"):
        DetectionTask(segmenter())
    with pytest.raises(TypeError, match="not a segmentation"):
        SegmentationTask(detector())
    with pytest.raises(ValueError, match="needs a teacher"):
        DetectionDistillationTask(dense_student(spikify(detector(), 2), None, []), None, "both",
                                  1.0, 1.0, FeatureWeight(), [])


# ---------------------------------------------------------------------------------------------
# short training loops


def _train(task: nn.Module, params, x, y, steps: int, lr: float) -> tuple[float, float]:
    """Loss on one fixed batch before and after ``steps`` Adam steps on it."""
    optimizer = torch.optim.Adam(params, lr=lr)
    task.train()
    first = float(task(x, y).loss.detach())
    for _ in range(steps):
        out = task(x, y)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    return first, float(task(x, y).loss.detach())


def test_teacher_and_student_training_reduce_their_losses(detection_data):
    torch.manual_seed(0)
    x, targets = batch_of(detection_data, 8)
    teacher = detector(seed=3)
    before, after = _train(DetectionTask(teacher), teacher.parameters(), x, targets, 12, 1e-2)
    assert after < 0.7 * before, (before, after)
    snn = spikify(teacher, 2)  # level 1 from the (briefly) trained teacher
    student = dense_student(snn, teacher, None)
    task = DetectionDistillationTask(student, teacher, "both", 1.0, 1.0, FeatureWeight("constant", 1.0),
                                     list(student.tap_names), score_threshold=0.05)
    before, after = _train(task, student.parameters(), x, targets, 8, 3e-3)
    assert after < 0.8 * before, (before, after)


def test_segmentation_training_reduces_the_loss(segmentation_data):
    torch.manual_seed(0)
    x, masks = batch_of(segmentation_data, 8)
    model = segmenter(seed=3)
    before, after = _train(SegmentationTask(model), model.parameters(), x, masks, 12, 3e-2)
    assert after < 0.7 * before, (before, after)


# ---------------------------------------------------------------------------------------------
# metrics


class Oracle(nn.Module):
    """A stand-in detector/segmenter that answers the data set's own targets, in order."""

    is_spiking = False

    def __init__(self, answers: list, num_classes: int = 0, shift: float = 0.0) -> None:
        super().__init__()
        self.answers, self.cursor, self.num_classes, self.shift = answers, 0, num_classes, shift

    def _next(self, n: int) -> list:
        out = self.answers[self.cursor:self.cursor + n]
        self.cursor += n
        return out

    def forward(self, x: torch.Tensor):
        if self.num_classes:  # segmentation: one-hot logits of the true classes
            masks = torch.stack(self._next(len(x))).clamp(max=self.num_classes - 1)
            return nn.functional.one_hot(masks, self.num_classes).permute(0, 3, 1, 2).float()
        return {"n": torch.tensor(len(x))}

    def postprocess(self, readouts):
        return [{"boxes": t["boxes"] + self.shift, "labels": t["labels"],
                 "scores": torch.ones(len(t["labels"]))} for t in self._next(int(readouts["n"]))]


def test_detection_map_is_one_for_a_perfect_detector(detection_data):
    truth = [detection_data.test[i][1] for i in range(len(detection_data.test))]
    perfect = evaluate_detection(Oracle(truth), detection_data.test, batch_size=3,
                                 class_names=detection_data.info.class_names)
    assert perfect.n == len(truth)
    assert perfect.map == pytest.approx(1.0) and perfect.map_50 == pytest.approx(1.0)
    present = {detection_data.info.class_names[int(c)] for t in truth for c in t["labels"]}
    assert set(perfect.map_per_class) == present and all(v == pytest.approx(1.0) for v in perfect.map_per_class.values())
    shifted = evaluate_detection(Oracle(truth, shift=3.0), detection_data.test, batch_size=3)
    assert shifted.map < 0.9


def test_segmentation_miou_is_one_for_a_perfect_segmenter(segmentation_data):
    truth = [segmentation_data.test[i][1] for i in range(len(segmentation_data.test))]
    perfect = evaluate_segmentation(Oracle(truth, num_classes=11), segmentation_data.test, batch_size=3,
                                    class_names=segmentation_data.info.class_names)
    assert perfect.miou == pytest.approx(1.0) and perfect.pixel_acc == pytest.approx(1.0)
    assert perfect.n == len(truth) and "background" in perfect.iou_per_class
    wrong = [t.clone() for t in truth]
    for t in wrong:
        t[t > 0] = 1  # every object called "0"
    worse = evaluate_segmentation(Oracle(wrong, num_classes=11), segmentation_data.test, batch_size=3)
    assert worse.miou < 0.9


def test_evaluation_of_real_networks_reports_firing_rates(detection_data, segmentation_data):
    snn = spikify(detector(), 2)
    result = evaluate_detection(snn, detection_data.test, batch_size=4, firing_rates=True)
    assert result.n == len(detection_data.test) and -1.0 <= result.map <= 1.0
    assert set(result.firing_rates) == {n for n, m in snn.named_modules() if m.__class__.__name__ == "MultiStepLIF"}
    seg = evaluate_segmentation(segmenter(), segmentation_data.test, batch_size=4)
    assert 0.0 <= seg.miou <= 1.0 and 0.0 <= seg.pixel_acc <= 1.0 and seg.n == len(segmentation_data.test)
