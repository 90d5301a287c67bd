"""SAKD level 2: each loss part against a hand computation, the feature-weight schedules, the
feature taps and the task object."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sakd.distill import (
    DistillationTask,
    FeatureTaps,
    FeatureWeight,
    SAKDStudent,
    check_taps_match,
    feature_kd,
    logits_kd,
)
from sakd.distill.task import ClassificationTask
from sakd.models import build_model, spikify


def hand_softmax(z: list[float], tau: float) -> list[float]:
    e = [math.exp(v / tau) for v in z]
    return [v / sum(e) for v in e]


def hand_kl_kd(z_s: list[list[float]], z_a: list[list[float]], tau: float) -> float:
    """tau^2 * (1/B) * sum_b sum_c p_A log(p_A / p_S)."""
    total = 0.0
    for s_row, a_row in zip(z_s, z_a):
        p_s, p_a = hand_softmax(s_row, tau), hand_softmax(a_row, tau)
        total += sum(pa * math.log(pa / ps) for pa, ps in zip(p_a, p_s))
    return tau**2 * total / len(z_s)


def hand_ce(z: list[list[float]], y: list[int]) -> float:
    return sum(-math.log(hand_softmax(row, 1.0)[t]) for row, t in zip(z, y)) / len(z)


Z_S = [[1.0, -0.5, 2.0], [0.2, 0.3, -1.0]]
Z_A = [[2.0, 0.0, 1.0], [-0.4, 1.5, 0.1]]


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_logits_kd_matches_hand_computation(tau):
    got = logits_kd(torch.tensor(Z_S), torch.tensor(Z_A), tau)
    assert got.item() == pytest.approx(hand_kl_kd(Z_S, Z_A, tau), rel=1e-5)
    # direction: KL(teacher || student), not the reverse
    assert got.item() != pytest.approx(hand_kl_kd(Z_A, Z_S, tau), rel=1e-3)
    # and equal to the authors' expression
    authors = F.kl_div(F.log_softmax(torch.tensor(Z_S) / tau, 1), F.softmax(torch.tensor(Z_A) / tau, 1),
                       reduction="batchmean") * tau**2
    assert got.item() == pytest.approx(authors.item(), rel=1e-5)


def test_logits_kd_is_zero_for_equal_logits_and_differentiable():
    z = torch.tensor(Z_S, requires_grad=True)
    assert logits_kd(z, torch.tensor(Z_S), 2.0).item() == pytest.approx(0.0, abs=1e-7)
    logits_kd(z, torch.tensor(Z_A), 2.0).backward()
    assert z.grad.abs().sum() > 0


def test_feature_kd_is_sum_of_mse_over_taps():
    s = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([[[[0.5]]], [[[1.5]]]])}
    t = {"a": torch.tensor([[0.0, 2.0], [3.0, 6.0]]), "b": torch.tensor([[[[1.0]]], [[[0.0]]]])}
    expected = (1.0 + 0.0 + 0.0 + 4.0) / 4 + (0.25 + 2.25) / 2
    assert feature_kd(s, t).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="feature taps differ"):
        feature_kd(s, {"a": t["a"]})


def test_feature_kd_does_not_backpropagate_into_the_teacher():
    s = torch.ones(2, 3, requires_grad=True)
    t = torch.zeros(2, 3, requires_grad=True)
    feature_kd({"x": s}, {"x": t}).backward()
    assert s.grad is not None and t.grad is None


# ---------------------------------------------------------------------------------------------
# schedules (sakd.md §1.4, §5.1)


def test_constant_schedule():
    w = FeatureWeight("constant", beta=3.0)
    assert {w(e, b) for e in range(5) for b in range(50)} == {3.0}


def test_step_schedule_is_beta_for_the_first_n_epochs_then_floor():
    w = FeatureWeight("step", beta=10.0, epochs=2, floor=0.01)
    assert [w(e, 0) for e in range(4)] == [10.0, 10.0, 0.01, 0.01]
    assert [w(1, b) for b in (0, 5, 500)] == [10.0, 10.0, 10.0]  # the batch index is irrelevant
    assert FeatureWeight("step", beta=10.0, epochs=0, floor=0.5)(0, 0) == 0.5


def test_step_batch_schedule_is_the_authors_literal_code():
    """Train.py: beta if i <= fea_epochs else 0.01, i = batch index in the epoch."""
    w = FeatureWeight("step-batch", beta=10.0, epochs=10, floor=0.01)
    for epoch in (0, 7, 119):  # every epoch alike
        assert [w(epoch, i) for i in (0, 10, 11, 2502)] == [10.0, 10.0, 0.01, 0.01]
    assert sum(w(0, i) == 10.0 for i in range(2503)) == 11


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="unknown feature schedule 'cosine'"):
        FeatureWeight("cosine")


# ---------------------------------------------------------------------------------------------
# taps


def test_taps_return_rates_for_an_snn_and_outputs_for_an_ann():
    torch.manual_seed(0)
    ann = build_model("test_convnet", 10, 1, (8, 8)).eval()
    snn = spikify(ann, 3).eval()
    x = 4.0 * torch.randn(2, 1, 8, 8)
    raw = {}
    hook = snn.stage1.register_forward_hook(lambda m, i, o: raw.__setitem__("s", o.detach()))
    taps = FeatureTaps(snn, ["stage1", "stage2"])
    snn(x)
    out = taps.pop()
    hook.remove()
    spikes = raw["s"].reshape(3, 2, 4, 8, 8)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0} and spikes.sum() > 0
    manual = (spikes[0] + spikes[1] + spikes[2]) / 3
    assert torch.allclose(out["stage1"], manual) and out["stage2"].shape == (2, 8, 4, 4)
    ann_taps = FeatureTaps(ann, ["stage2"])
    expected = ann.stage2(ann.stage1(x))
    ann(x)
    assert torch.equal(ann_taps.pop()["stage2"], expected)
    with pytest.raises(RuntimeError, match="not reached"):
        ann_taps.pop()


def test_unknown_tap_names_the_tap_and_lists_the_stages():
    ann = build_model("test_resnet", 5, 3, (16, 16))
    with pytest.raises(ValueError, match=r"'layer9'.*\['layer1', 'layer2'\]"):
        FeatureTaps(ann, ["layer9"])


def test_tap_shape_mismatch_between_architectures_is_an_error():
    student = spikify(build_model("test_convnet", 10, 1, (8, 8)), 2)
    other = build_model("convnet", 10, 1, (8, 8))  # 32 channels at stage2, not 8
    with pytest.raises(ValueError, match="feature tap 'stage2'.*architectures differ"):
        check_taps_match(student, other, ["stage2"], torch.zeros(2, 1, 8, 8))


# ---------------------------------------------------------------------------------------------
# the task: total = CE + c * logits KD + w_f * feature KD, each checked by hand


def _bn_train(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    w, b = bn.weight.view(1, -1, 1, 1), bn.bias.view(1, -1, 1, 1)
    return (x - mean) / torch.sqrt(var + bn.eps) * w + b


def _make_task(kd: str, schedule: FeatureWeight, kernel: int = 3, steps: int = 3):
    torch.manual_seed(0)
    teacher = build_model("test_convnet", 10, 1, (8, 8))
    with torch.no_grad():
        for m in teacher.modules():  # non-trivial BN statistics: eval mode must use them
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    snn = spikify(teacher, steps)
    snn.load_state_dict(teacher.state_dict())
    taps = ["stage1", "stage2"]
    shapes = check_taps_match(snn, teacher, taps, torch.zeros(2, 1, 8, 8))
    student = SAKDStudent(snn, taps if kd in ("both", "features") else [], kernel, shapes)
    task = DistillationTask(student, teacher, kd, logit_weight=0.7, temperature=2.0,
                            feature_weight=schedule, taps=taps)
    return task, teacher, snn, student


def test_distillation_task_parts_match_hand_computation():
    steps, batch = 3, 4
    task, teacher, snn, student = _make_task("both", FeatureWeight("step", 5.0, 1, 0.25), 3, steps)
    x = 3.0 * torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 3, 7, 9])
    raw = {}
    hooks = [snn.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: raw.__setitem__(n, o.detach())) for n in ("stage1", "stage2")]
    task.train()
    task.set_position(epoch=0, batch_index=0)
    out = task(x, y)
    for h in hooks:
        h.remove()

    # the student's logits: mean over T of the per-step readouts
    z_s = out.logits.detach()
    with torch.no_grad():
        z_a = teacher(x)  # eval mode (frozen BN statistics)
        f_a = {"stage1": teacher.stage1(x), "stage2": teacher.stage2(teacher.stage1(x))}
    ce = hand_ce(z_s.tolist(), y.tolist())
    kd = hand_kl_kd(z_s.tolist(), z_a.tolist(), 2.0)
    feat = 0.0
    with torch.no_grad():
        for name in ("stage1", "stage2"):
            spikes = raw[name]
            rate = spikes.reshape(steps, batch, *spikes.shape[1:]).sum(0) / steps
            ad = student.adapters[name]
            conv = F.conv2d(rate, ad[0].weight, padding=1)  # 3x3, no bias
            phi = _bn_train(conv, ad[1])  # the adapter's BN, in training mode
            feat += float(((phi - f_a[name]) ** 2).sum() / phi.numel())
    assert out.parts["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert out.parts["kd_logits"].item() == pytest.approx(0.7 * kd, rel=1e-4, abs=1e-7)
    assert out.parts["kd_features"].item() == pytest.approx(5.0 * feat, rel=1e-4)
    assert out.loss.item() == pytest.approx(ce + 0.7 * kd + 5.0 * feat, rel=1e-4)
    assert kd > 1e-4 and feat > 1e-3  # non-trivial terms

    # the schedule moves the feature weight (step: epoch 1 -> floor)
    task.set_position(epoch=1, batch_index=0)
    out2 = task(x, y)
    assert task.current_feature_weight == 0.25
    assert out2.parts["kd_features"].item() == pytest.approx(0.25 * feat, rel=1e-3)


def test_distillation_gradients_reach_student_and_adapters_but_not_teacher():
    task, teacher, snn, student = _make_task("both", FeatureWeight("constant", 1.0))
    x = 3.0 * torch.randn(4, 1, 8, 8)
    task.train()
    task(x, torch.tensor([1, 2, 3, 4])).loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert not any(p.requires_grad for p in teacher.parameters())
    assert student.adapters["stage1"][0].weight.grad.abs().sum() > 0
    assert snn.fc.weight.grad is not None
    assert not teacher.training  # task.train() keeps the teacher in eval mode
    assert not any(k.startswith("teacher") for k in task.state_dict())  # not in the module tree


@pytest.mark.parametrize("kd, parts", [("none", {"ce"}), ("logits", {"ce", "kd_logits"}),
                                       ("features", {"ce", "kd_features"}),
                                       ("both", {"ce", "kd_logits", "kd_features"})])
def test_kd_modes_select_the_parts(kd, parts):
    task, *_ = _make_task(kd, FeatureWeight())
    out = task(torch.randn(2, 1, 8, 8), torch.tensor([0, 1]))
    assert set(out.parts) == parts
    assert out.loss.item() == pytest.approx(sum(v.item() for v in out.parts.values()), rel=1e-6)


def test_task_argument_errors():
    snn = spikify(build_model("test_convnet", 10, 1, (8, 8)), 2)
    with pytest.raises(ValueError, match="unknown kd mode 'all'"):
        DistillationTask(snn, None, "all", 1.0, 1.0, FeatureWeight(), [])
    with pytest.raises(ValueError, match="kd='logits' needs a teacher"):
        DistillationTask(snn, None, "logits", 1.0, 1.0, FeatureWeight(), [])


def test_classification_task_is_cross_entropy():
    torch.manual_seed(0)
    model = build_model("test_convnet", 10, 1, (8, 8)).eval()
    x, y = torch.randn(3, 1, 8, 8), torch.tensor([2, 5, 9])
    out = ClassificationTask(model)(x, y)
    assert out.loss.item() == pytest.approx(hand_ce(model(x).tolist(), y.tolist()), rel=1e-5)
    assert set(out.parts) == {"ce"}
