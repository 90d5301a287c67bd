"""Architectures, spikify (level 1, structurally), the LIF neuron and weight transfer."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from sakd.models import (
    ARCHITECTURES,
    LIFSettings,
    ModelError,
    MultiStepLIF,
    SpikeSite,
    SpikifyError,
    arch_spec,
    build_model,
    neuron_names,
    spikify,
)
from sakd.models.base import Network

TINY = sorted(name for name, spec in ARCHITECTURES.items() if spec.tiny)
FULL = sorted(name for name, spec in ARCHITECTURES.items() if not spec.tiny)


def tiny_input_desc(name: str) -> tuple[int, int, tuple[int, int]]:
    """(classes, channels, image size) that each tiny variant takes."""
    family = arch_spec(name).family
    if family == "convnet":
        return 10, 1, (8, 8)
    return 5, 3, (16, 16)


def build_tiny(name: str, seed: int = 0) -> Network:
    torch.manual_seed(seed)
    classes, channels, size = tiny_input_desc(name)
    return build_model(name, classes, channels, size)


def tiny_batch(name: str, batch: int = 3, seed: int = 1) -> torch.Tensor:
    _, channels, size = tiny_input_desc(name)
    return torch.randn(batch, channels, *size, generator=torch.Generator().manual_seed(seed))


def randomize_bn(model: nn.Module, seed: int = 2) -> None:
    """Non-trivial BN affine parameters and running statistics (as after training)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.data = 0.5 + torch.rand(n, generator=g)
            m.bias.data = torch.randn(n, generator=g) * 0.2
            m.running_mean = torch.randn(n, generator=g) * 0.1
            m.running_var = 0.5 + torch.rand(n, generator=g)
            m.num_batches_tracked.fill_(7)


def shapes(model: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def lifs_back_to_relu(snn: Network) -> Network:
    for name in neuron_names(snn):
        snn.set_submodule(name, nn.ReLU())
    return snn


# ---------------------------------------------------------------------------------------------
# registry


def test_registry_has_every_family_in_tiny_form():
    assert {ARCHITECTURES[n].family for n in TINY} == {"convnet", "resnet", "sew_resnet", "resnet19"}
    assert "test_convnet_nobn" in TINY
    for name in TINY:
        assert name.startswith("test_"), name
    for name, spec in ARCHITECTURES.items():
        assert spec.teacher in ARCHITECTURES, f"{name}: teacher {spec.teacher} is not registered"


def test_unknown_architecture_names_it_and_suggests():
    with pytest.raises(ModelError, match=r"unknown architecture 'resnet81'.*resnet18.*sakd models"):
        build_model("resnet81", 10)


def test_input_a_model_cannot_take_is_a_model_error():
    with pytest.raises(ModelError, match=r"test_convnet_pool cannot take 1x6x6 input.*divisible by 4"):
        build_model("test_convnet_pool", 10, 1, (6, 6))
    with pytest.raises(ModelError, match="bad input description"):
        build_model("test_convnet", 0, 1, (8, 8))


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_spikify_keeps_every_state_dict_key_and_shape(name):
    """Every registry entry (full sizes built on the meta device: no memory, no init cost)."""
    classes, channels, size = tiny_input_desc(name) if name in TINY else (10, 3, (32, 32))
    if ARCHITECTURES[name].family == "convnet" and name not in TINY:
        channels, size = 1, (28, 28)
    with torch.device("meta"):
        ann = build_model(name, classes, channels, size)
        snn = spikify(ann, 4)
        teacher = build_model(arch_spec(name).teacher, classes, channels, size)
    assert shapes(snn) == shapes(ann)
    assert shapes(teacher) == shapes(snn)  # level-1 source has the same keys too
    relus = [n for n, m in ann.named_modules() if isinstance(m, nn.ReLU)]
    assert relus and neuron_names(snn) == relus
    assert not any(isinstance(m, nn.ReLU) for m in snn.modules())
    assert snn.time_steps == 4 and ann.time_steps == 0  # the ANN is not modified


@pytest.mark.parametrize("name", TINY)
def test_spikify_with_relus_put_back_is_the_ann_exactly(name):
    ann = build_tiny(name)
    randomize_bn(ann)
    ann.eval()
    snn = spikify(ann, 4).eval()
    x = tiny_batch(name)
    expected = ann(x)
    back = lifs_back_to_relu(snn)
    # T = 4 folded into the batch: four identical steps (equal up to the kernels' blocking
    # for a 4x larger batch), then as a plain network: bit-identical
    assert torch.allclose(back(x), expected, rtol=1e-5, atol=1e-6)
    back.time_steps = 0
    assert torch.equal(back(x), expected)
    with torch.no_grad():
        spiking = spikify(ann, 4).eval()(x)
    assert not torch.equal(spiking, expected)  # the neurons do change the function


@pytest.mark.parametrize("name", TINY)
def test_level1_transfer_is_exact(name):
    teacher = build_tiny(arch_spec(name).teacher, seed=10)
    randomize_bn(teacher, seed=11)
    snn = spikify(build_tiny(name, seed=20), 3)
    before = {k: v.clone() for k, v in snn.state_dict().items()}
    snn.load_state_dict(teacher.state_dict())
    after, source = snn.state_dict(), teacher.state_dict()
    assert after.keys() == source.keys()
    changed = [k for k in after if not torch.equal(before[k], after[k])]
    assert changed, "the two random inits should differ before the transfer"
    for key in source:
        assert torch.equal(after[key], source[key]), key
        assert after[key].dtype == source[key].dtype


@pytest.mark.parametrize("name", TINY)
def test_tiny_variant_forward_backward(name):
    ann = build_tiny(name)
    classes, _, _ = tiny_input_desc(name)
    x, y = tiny_batch(name, batch=4), torch.arange(4) % classes
    for net in (ann, spikify(ann, 2)):
        net.train()
        out = net(x)
        assert out.shape == (4, classes) and torch.isfinite(out).all()
        nn.functional.cross_entropy(out, y).backward()
        for pname, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: {pname}"
        assert net.fc.bias.grad.abs().sum() > 0  # the readout's bias always gets a gradient
        if not net.is_spiking:  # (a silent SNN layer may legitimately pass zero gradients)
            assert all(p.grad.abs().sum() > 0 for p in net.parameters())


def test_snn_output_is_the_mean_of_per_step_logits():
    """forward = mean over T of the readout of each step (direct encoding, input repeated)."""
    snn = spikify(build_tiny("test_convnet"), 3).eval()
    with torch.no_grad():
        snn.fc1.weight.mul_(8.0)  # drive the hidden layer hard enough to spike
    x = 3.0 * tiny_batch("test_convnet", batch=2)
    seen = []
    handle = snn.fc.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    out = snn(x)
    handle.remove()
    per_step = seen[0].reshape(3, 2, -1)
    assert torch.allclose(out, per_step.mean(0))
    assert not torch.allclose(per_step[0], per_step[2])  # the state evolves over time


def test_no_state_leaks_between_calls():
    snn = spikify(build_tiny("test_resnet"), 4).eval()
    x = tiny_batch("test_resnet")
    with torch.no_grad():
        assert torch.equal(snn(x), snn(x))


# ---------------------------------------------------------------------------------------------
# torchvision compatibility of the full-size ResNets


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("family", ["resnet", "sew_resnet"])
def test_full_resnets_match_torchvision_parameter_names(depth, family):
    reference = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    ref_shapes = shapes(reference)
    ours = build_model(f"{family}{depth}", 1000, 3, (224, 224))
    assert shapes(ours) == ref_shapes
    assert shapes(spikify(ours, 4)) == ref_shapes
    # and a torchvision state dict loads strictly
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert torch.equal(ours.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_resnet18_ann_computes_what_torchvision_computes():
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    ours = build_model("resnet18", 7, 3, (64, 64)).eval()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(ours(x), reference(x), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# neuron settings (sakd.md §2.1)


def test_default_neuron_is_the_authors_lif():
    snn = spikify(build_tiny("test_resnet"), 4)
    for name in neuron_names(snn):
        lif = snn.get_submodule(name)
        assert isinstance(lif, MultiStepLIF)
        assert lif.tau == 2.0 and lif.v_threshold == 1.0 and lif.v_reset == 0.0
        assert lif.decay_input is False and lif.step_mode == "m"
        assert type(lif.surrogate_function).__name__ == "ATan"
        assert lif.surrogate_function.alpha == 2.0


def test_per_site_detach_reset_follows_the_authors():
    """Spiking-ResNet: True for the stem and after the residual adds, False inside blocks;
    SEW-ResNet: False everywhere."""
    snn = spikify(build_tiny("test_resnet_bottleneck"), 2)
    expected = {"relu": True, "layer1.0.relu1": False, "layer1.0.relu2": False,
                "layer1.0.relu3": True, "layer2.0.relu1": False, "layer2.0.relu2": False,
                "layer2.0.relu3": True}
    assert {n: snn.get_submodule(n).detach_reset for n in neuron_names(snn)} == expected
    basic = spikify(build_tiny("test_resnet"), 2)
    assert {n: basic.get_submodule(n).detach_reset for n in neuron_names(basic)} == {
        "relu": True, "layer1.0.relu1": False, "layer1.0.relu2": True,
        "layer2.0.relu1": False, "layer2.0.relu2": True}
    sew = spikify(build_tiny("test_sew_resnet"), 2)
    assert "layer2.0.downsample.2" in neuron_names(sew)
    assert not any(sew.get_submodule(n).detach_reset for n in neuron_names(sew))
    forced = spikify(build_tiny("test_sew_resnet"), 2, LIFSettings(detach_reset="true"))
    assert all(forced.get_submodule(n).detach_reset for n in neuron_names(forced))


def test_lif_dynamics_by_hand():
    """H = V/2 + X; spike iff H >= 1; hard reset to 0; V starts at 0 on every call."""
    lif = MultiStepLIF(5, LIFSettings(), detach_reset=True)
    xs = [0.6, 0.8, 0.5, 1.2, -0.5]
    out = lif(torch.tensor(xs).reshape(5, 1))
    v, expected = 0.0, []
    for x in xs:
        h = 0.5 * v + x
        s = 1.0 if h >= 1.0 else 0.0
        v = h * (1.0 - s)
        expected.append(s)
    assert expected == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert out.flatten().tolist() == expected
    assert lif(torch.tensor(xs).reshape(5, 1)).flatten().tolist() == expected  # no leak


def test_atan_surrogate_gradient():
    """d spike / d X at the first step (V = 0, H = X) is 1 / (1 + pi^2 (X - 1)^2) for alpha 2."""
    lif = MultiStepLIF(1, LIFSettings(), detach_reset=False)
    x = torch.tensor([[0.3], [1.0], [1.8]]).reshape(1, 3).requires_grad_()
    lif(x).sum().backward()
    expected = [1.0 / (1.0 + math.pi**2 * (v - 1.0) ** 2) for v in (0.3, 1.0, 1.8)]
    assert torch.allclose(x.grad.flatten(), torch.tensor(expected), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# spikify refuses what it cannot do faithfully


class _SharedRelu(Network):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.relu = nn.Linear(4, 4), nn.Linear(4, 2), nn.ReLU()

    def forward_static(self, x):
        return self.fc2(self.relu(self.fc1(self.relu(x))))


class _FunctionalRelu(Network):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward_static(self, x):
        return self.fc(torch.relu(x))


def test_spikify_errors_name_the_culprit():
    with pytest.raises(SpikifyError, match=r"'relu' is used 2 times"):
        spikify(_SharedRelu(), 2)
    with pytest.raises(SpikifyError, match=r"functional relu .* use one nn.ReLU"):
        spikify(_FunctionalRelu(), 2)
    with pytest.raises(SpikifyError, match="expects a sakd Network"):
        spikify(nn.Sequential(nn.ReLU()), 2)
    snn = spikify(build_tiny("test_convnet"), 2)
    with pytest.raises(SpikifyError, match="already spiking"):
        spikify(snn, 2)
    with pytest.raises(SpikifyError, match="time_steps must be >= 1"):
        spikify(build_tiny("test_convnet"), 0)


def test_nobn_convnet_has_no_batchnorm_and_keeps_module_indices():
    model = build_tiny("test_convnet_nobn")
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    keys = set(model.state_dict())
    assert {"stage1.0.weight", "stage1.0.bias", "fc1.bias"} <= keys
    assert isinstance(model.stage1[2], SpikeSite)
    from sakd.models.convnet import ConvNet

    with pytest.raises(ValueError, match=r"norm must be one of \('batch', 'none'\), got 'layer'"):
        ConvNet(10, 1, (8, 8), norm="layer")
    # with BN the same layout has BN parameters and no conv bias
    assert "stage1.0.bias" not in build_tiny("test_convnet").state_dict()
