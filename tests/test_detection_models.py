"""Detection (FCOS) and segmentation (FCN, DeepLabV3) networks: registry, spikify, level-1
transfer, the hardware constraints (no GroupNorm, a spike site after every linear stage except
the readouts), time averaging of the readouts, and torchvision's postprocess on them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from sakd.models import ARCHITECTURES, MultiStepLIF, arch_spec, build_model, neuron_names, spikify
from sakd.models.detection import FCOSDetector, fcos_resnet
from sakd.models.segmentation import SegmentationNetwork, segmentation_resnet

READOUT_CONVS = {
    "detection": {"head.classification_head.cls_logits", "head.regression_head.bbox_reg",
                  "head.regression_head.bbox_ctrness"},
    "segmentation": {"classifier.4"},
}


def tiny_detector(sew: bool = False, seed: int = 0, classes: int = 3) -> FCOSDetector:
    torch.manual_seed(seed)
    return fcos_resnet(classes, 1, (32, 32), layers=(1, 1), widths=(8, 16), fpn_channels=8,
                       head_convs=1, anchor_scale=0.5, center_sampling_radius=2.5, sew=sew)


def tiny_segmenter(head: str = "fcn", sew: bool = False, seed: int = 0) -> SegmentationNetwork:
    torch.manual_seed(seed)
    return segmentation_resnet(4, 1, (16, 16), head=head, layers=(1, 1), widths=(8, 16), sew=sew,
                               head_width=8, atrous_rates=(1, 2))


TINY = {
    "fcos": lambda seed=0: tiny_detector(False, seed),
    "fcos_sew": lambda seed=0: tiny_detector(True, seed),
    "fcn": lambda seed=0: tiny_segmenter("fcn", False, seed),
    "fcn_sew": lambda seed=0: tiny_segmenter("fcn", True, seed),
    "deeplabv3": lambda seed=0: tiny_segmenter("deeplabv3", False, seed),
    "deeplabv3_sew": lambda seed=0: tiny_segmenter("deeplabv3", True, seed),
}
TEACHER = {name: name.replace("_sew", "") for name in TINY}  # SEW learns from the plain ResNet


def task_of(model: nn.Module) -> str:
    return "detection" if isinstance(model, FCOSDetector) else "segmentation"


def example(model: nn.Module, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return 2.0 * torch.randn(batch, 1, *model.image_size, generator=torch.Generator().manual_seed(seed))


def randomize_bn(model: nn.Module, seed: int = 2) -> None:
    """Non-trivial BN affine parameters and running statistics (as after training)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = 0.8 + torch.rand(n, generator=g)
            m.bias.data = 0.3 + torch.randn(n, generator=g) * 0.2
            m.running_mean = torch.randn(n, generator=g) * 0.1
            m.running_var = 0.5 + torch.rand(n, generator=g)


def as_dict(out) -> dict[str, torch.Tensor]:
    return out if isinstance(out, dict) else {"logits": out}


# ---------------------------------------------------------------------------------------------
# registry


SMALL = ("fcos_resnet_small", "fcos_sew_resnet_small", "fcn_resnet_small", "fcn_sew_resnet_small",
         "deeplabv3_resnet_small", "deeplabv3_sew_resnet_small")


@pytest.mark.parametrize("name", SMALL)
def test_small_variants_build_spikify_and_take_their_teachers_weights(name):
    spec = arch_spec(name)
    assert spec.family in ("detection", "segmentation") and not spec.tiny
    classes = 10 if spec.family == "detection" else 11
    with torch.device("meta"):  # shapes and names only
        ann = build_model(name, classes, 1, (64, 64))
        teacher = build_model(spec.teacher, classes, 1, (64, 64))
    assert ann.arch == name
    snn = spikify(ann, 4)
    assert {k: v.shape for k, v in teacher.state_dict().items()} == \
           {k: v.shape for k, v in snn.state_dict().items()}
    assert neuron_names(snn) == [n for n, m in ann.named_modules() if isinstance(m, nn.ReLU)]
    if spec.family == "detection":
        assert ann.level_shapes == ((16, 16), (8, 8), (4, 4))
        assert ann.strides == ((4, 4), (8, 8), (16, 16))
    else:
        assert ann.stage_names == ("backbone.layer1", "backbone.layer2", "backbone.layer3")


def test_dense_families_are_registered():
    families = {spec.name: spec.family for spec in ARCHITECTURES.values()}
    assert {n for n in SMALL if n.startswith("fcos")} <= {n for n, f in families.items() if f == "detection"}
    assert {n for n in SMALL if not n.startswith("fcos")} <= {n for n, f in families.items() if f == "segmentation"}


# ---------------------------------------------------------------------------------------------
# level 1 and the structure spikify produces


@pytest.mark.parametrize("name", sorted(TINY))
def test_level1_transfer_is_a_strict_load_state_dict(name):
    teacher = TINY[TEACHER[name]](seed=10)
    randomize_bn(teacher, seed=11)
    snn = spikify(TINY[name](seed=20), 3)
    before = {k: v.clone() for k, v in snn.state_dict().items()}
    result = snn.load_state_dict(teacher.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    after = snn.state_dict()
    changed = [k for k in after if not torch.equal(before[k], after[k])]
    assert len(changed) > len(after) // 2  # the seeds differ, so the weights really moved
    for key, value in teacher.state_dict().items():
        assert torch.equal(after[key], value), key
    assert snn.time_steps == 3 and snn.is_spiking and not teacher.is_spiking


@pytest.mark.parametrize("name", sorted(TINY))
def test_no_group_norm_and_every_relu_becomes_a_neuron(name):
    ann = TINY[name]()
    assert not any(isinstance(m, nn.GroupNorm) for m in ann.modules())
    relus = [n for n, m in ann.named_modules() if isinstance(m, nn.ReLU)]
    snn = spikify(ann, 2)
    assert neuron_names(snn) == relus
    assert not any(isinstance(m, nn.ReLU) for m in snn.modules())


class _ReLULeaves(fx.Tracer):
    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, nn.ReLU) or super().is_leaf_module(module, qualified_name)


def linear_readouts(model: nn.Module) -> set[str]:
    """Names of the convs from which some path reaches the output without passing an
    activation; fails if a path from a conv reaches another conv without one."""
    graph = _ReLULeaves().trace(model)
    modules = dict(model.named_modules())
    readouts = set()
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.Conv2d):
            continue
        stack, seen = list(node.users), set()
        while stack:
            user = stack.pop()
            if user in seen:
                continue
            seen.add(user)
            if user.op == "output":
                readouts.add(node.target)
                continue
            if user.op == "call_module":
                target = modules[user.target]
                if isinstance(target, nn.ReLU):
                    continue  # the path is closed by a spike site
                assert not isinstance(target, (nn.Conv2d, nn.Linear)), \
                    f"{node.target} feeds {user.target} without a spike site between them"
            stack.extend(user.users)
    return readouts


@pytest.mark.parametrize("name", sorted(TINY))
def test_only_the_head_readouts_are_linear(name):
    """Constraint (b): every linear stage is closed by a spike site before it feeds anything but
    the output; the FPN's lateral sums and outputs included."""
    ann = TINY[name]()
    assert linear_readouts(ann) == READOUT_CONVS[task_of(ann)]


@pytest.mark.parametrize("sew", [False, True])
def test_fpn_sums_and_levels_carry_spikes(sew):
    ann = tiny_detector(sew)
    randomize_bn(ann)
    snn = spikify(ann, 4).eval()
    fpn = snn.backbone.fpn
    sites = {f"inner_sites.{i}": fpn.inner_sites[i] for i in range(2)}
    sites |= {f"layer_sites.{i}": fpn.layer_sites[i] for i in range(2)}
    seen: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: seen.__setitem__(n, o))
               for n, m in sites.items()]
    with torch.no_grad():
        snn(example(snn))
    for handle in handles:
        handle.remove()
    assert all(isinstance(m, MultiStepLIF) for m in sites.values())
    for name, spikes in seen.items():
        assert set(spikes.unique().tolist()) <= {0.0, 1.0}, name
        assert 0.0 < float(spikes.mean()) < 1.0, f"{name} never or always fires; the test is vacuous"


@pytest.mark.parametrize("name", sorted(TINY))
def test_spikify_with_relus_put_back_is_the_ann(name):
    ann = TINY[name]()
    randomize_bn(ann)
    ann.eval()
    x = example(ann)
    expected = as_dict(ann(x))
    snn = spikify(ann, 3).eval()
    with torch.no_grad():
        spiking = as_dict(snn(x))
    for neuron in neuron_names(snn):
        snn.set_submodule(neuron, nn.ReLU())
    snn.time_steps = 0
    back = as_dict(snn(x))
    for key, value in expected.items():
        assert torch.equal(back[key], value), key
        assert not torch.allclose(spiking[key], value), f"{key}: the neurons change nothing?"


# ---------------------------------------------------------------------------------------------
# time: the readouts are averaged over T


def test_detector_readouts_are_the_mean_over_time():
    ann = tiny_detector()
    randomize_bn(ann)
    snn = spikify(ann, 3).eval()
    x = example(snn)
    steps, batch = 3, x.shape[0]
    per_call: dict[str, list[torch.Tensor]] = {"cls_logits": [], "bbox_reg": [], "bbox_ctrness": []}
    heads = {"cls_logits": snn.head.classification_head.cls_logits,
             "bbox_reg": snn.head.regression_head.bbox_reg,
             "bbox_ctrness": snn.head.regression_head.bbox_ctrness}
    handles = [m.register_forward_hook(lambda mod, i, o, k=k: per_call[k].append(o))
               for k, m in heads.items()]
    with torch.no_grad():
        out = snn(x)
    for handle in handles:
        handle.remove()
    for key, levels in per_call.items():
        assert len(levels) == 2  # one call per pyramid level, with T folded into the batch
        steps_first = [lv.reshape(steps, batch, *lv.shape[1:]) for lv in levels]
        assert any(not torch.allclose(s[0], s[1]) for s in steps_first), "identical steps: vacuous"
        expected = torch.cat([s.mean(0).flatten(2).transpose(1, 2) for s in steps_first], dim=1)
        assert torch.allclose(out[key], expected, atol=1e-6), key
        assert out[key].shape[:2] == (batch, snn.num_locations)


def test_segmenter_logits_are_the_upsampled_mean_over_time():
    ann = tiny_segmenter("deeplabv3")
    randomize_bn(ann)
    snn = spikify(ann, 3).eval()
    x = example(snn)
    captured = []
    handle = snn.classifier[4].register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        logits = snn(x)
    handle.remove()
    (readout,) = captured
    per_step = readout.reshape(3, x.shape[0], *readout.shape[1:])
    assert not torch.allclose(per_step[0], per_step[2])
    expected = F.interpolate(per_step.mean(0), size=x.shape[-2:], mode="bilinear", align_corners=False)
    assert logits.shape == (2, 4, 16, 16)
    assert torch.allclose(logits, expected, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# torchvision's machinery on the readouts


def crafted_readouts(det: FCOSDetector, location: int, label: int, ltrb: float) -> dict[str, torch.Tensor]:
    """One confident detection at ``location``: class ``label``, box ltrb = ``ltrb`` points."""
    n, k = det.num_locations, det.num_classes
    cls = torch.full((1, n, k), -10.0)
    cls[0, location, label] = 10.0
    ctr = torch.full((1, n, 1), -10.0)
    ctr[0, location, 0] = 10.0
    reg = torch.zeros((1, n, 4))
    reg[0, location] = ltrb
    return {"cls_logits": cls, "bbox_reg": reg, "bbox_ctrness": ctr}


def test_postprocess_decodes_the_point_of_each_level():
    det = tiny_detector().eval()
    anchors = det.anchors(1, torch.device("cpu"))[0]
    assert anchors.shape == (det.num_locations, 4) == (8 * 8 + 4 * 4, 4)
    for location in (9, 64 + 5):  # one point of level 0 (stride 4) and one of level 1 (stride 8)
        (found,) = det.postprocess(crafted_readouts(det, location, 2, 1.5))
        center = (anchors[location, :2] + anchors[location, 2:]) / 2
        size = anchors[location, 2] - anchors[location, 0]
        expected = torch.cat([center - 1.5 * size, center + 1.5 * size]).clamp(0, 32)
        assert found["labels"].tolist() == [2]
        assert torch.allclose(found["boxes"][0], expected)
        assert float(found["scores"][0]) > 0.99
    # the points are torchvision's, computed on the real feature maps
    from torchvision.models.detection.image_list import ImageList

    x = example(det, batch=1)
    features = list(det.backbone(x).values())
    real = det.anchor_generator(ImageList(x, [(32, 32)]), features)[0]
    assert torch.equal(real, anchors)


def test_predict_maps_boxes_back_to_each_raw_image():
    det = tiny_detector().eval()
    location = 9
    readouts = crafted_readouts(det, location, 1, 1.0)
    canvas_box = det.postprocess(readouts)[0]["boxes"][0]
    det.forward = lambda x: {k: v.expand(x.shape[0], *v.shape[1:]) for k, v in readouts.items()}
    image = torch.rand(1, 20, 40)  # (h, w): resized by 32/40 = 0.8 to 16 x 32, then padded
    (found,) = det.predict([image])
    expected = (canvas_box / 0.8).clamp(min=0)
    expected[0::2] = expected[0::2].clamp(max=40)
    expected[1::2] = expected[1::2].clamp(max=20)
    assert found["labels"].tolist() == [1]
    assert torch.allclose(found["boxes"][0], expected, atol=1e-4)


def test_losses_check_their_inputs():
    det = tiny_detector()
    good = [{"boxes": torch.tensor([[2.0, 3.0, 14.0, 15.0]]), "labels": torch.tensor([1])}]
    readouts = det(example(det, batch=1))
    losses = det.losses(readouts, good)
    assert set(losses) == {"classification", "bbox_regression", "bbox_ctrness"}
    assert all(torch.isfinite(v) for v in losses.values())
    empty = [{"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64)}]
    assert torch.isfinite(sum(det.losses(readouts, empty).values()))
    with pytest.raises(ValueError, match=r"built for 32x32 images \(80 locations\)"):
        det.losses(det(torch.zeros(1, 1, 48, 48)), good)
    with pytest.raises(ValueError, match=r"labels must lie in 0..2"):
        det.losses(readouts, [{"boxes": good[0]["boxes"], "labels": torch.tensor([3])}])
    with pytest.raises(ValueError, match="x2 > x1"):
        det.losses(readouts, [{"boxes": torch.tensor([[5.0, 5.0, 5.0, 9.0]]), "labels": torch.tensor([0])}])
    with pytest.raises(ValueError, match="2 images but 1 targets"):
        det.losses(det(example(det)), good)


def test_constructor_errors_name_the_problem():
    with pytest.raises(ValueError, match="only LastLevelMaxPool"):
        from torchvision.ops.feature_pyramid_network import LastLevelP6P7

        from sakd.models.detection import SpikingFeaturePyramid

        SpikingFeaturePyramid([8, 16], 8, LastLevelP6P7(8, 8))
    with pytest.raises(ValueError, match="'layer5' is not a stage"):
        fcos_resnet(3, 1, (32, 32), layers=(1, 1), widths=(8, 16), fpn_stages=["layer5"])
    with pytest.raises(ValueError, match="unknown segmentation head 'unet'"):
        segmentation_resnet(4, 1, (16, 16), head="unet")
    from sakd.models import ModelError

    with pytest.raises(ModelError, match="fcos_resnet_small cannot take"):
        build_model("fcos_resnet_small", 10, 1, (4, 4))


def test_extra_level_subsamples_the_last_pyramid_level():
    det = fcos_resnet(3, 1, (32, 32), layers=(1, 1), widths=(8, 16), fpn_channels=8,
                      head_convs=1, extra_level=True)
    assert det.level_shapes == ((8, 8), (4, 4), (2, 2))
    snn = spikify(det, 2)
    assert snn(example(snn))["cls_logits"].shape == (2, 84, 3)
