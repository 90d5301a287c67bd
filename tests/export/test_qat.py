"""Quantization-aware fine-tuning (sakd.export.qat): the QAT forward is the chip's network.

The networks are random-init tiny SNNs (T = 4, tau = 2, threshold 1) whose BatchNorm affine
parameters and running statistics are non-trivial and whose every layer fires (checked).

The core property: with QAT on, the torch forward equals ``run_graph`` of the lowering's
dequantized graph (the float network with the export's integer weights and biases, on the
quantized input), with the chip's tie rule (a membrane exactly at the threshold does not fire;
``chip_ties``), and equals the bit-accurate integer simulator's readout. Measured when written:
max |logit difference| <= 3e-16 in float64 and <= 2e-7 in float32 on 256 inputs for all the tiny
architectures (tau = 2 makes the chip's voltage decay exact, so there is no truncation).
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sakd.export.graph import ExportError, run_graph
from sakd.export.lower import lower
from sakd.export.qat import enable_qat, fake_quantize_input, qat_enabled, straight_through
from sakd.export.quantize import dequantized_graph
from sakd.hardware.simulator import readout_to_float, simulate
from sakd.models.base import Network, SpikeSite
from sakd.models.neurons import LIFSettings, MultiStepLIF
from sakd.models.registry import build_model
from sakd.models.spikify import spikify

T = 4
SHAPE = (2, 8, 8)
CLASSES = 5
RANGE = (-4.0, 4.0)  # the graded input's range; inputs beyond it are clipped


def _randomize(net: nn.Module) -> None:
    for module in net.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.normal_(module.bias, 0.2, 0.3)
        elif isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            nn.init.normal_(module.bias, 0.3, 0.3)


def make_network(arch: str, seed: int = 0, settings: LIFSettings | None = None,
                 dtype: torch.dtype = torch.float64) -> Network:
    """A random-init SNN with non-trivial BN (affine parameters drawn, running statistics from a
    few train-mode passes), in eval mode."""
    torch.manual_seed(seed)
    net = build_model(arch, num_classes=CLASSES, in_channels=SHAPE[0], image_size=SHAPE[1:])
    _randomize(net)
    if arch.endswith("nobn"):  # no BN to rescale the layers: scale the weights up to fire
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    module.weight.mul_(2.0)
    net = spikify(net, T, settings or LIFSettings()).to(dtype)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, *SHAPE, dtype=dtype) * 1.5 + 0.3)
    return net.eval()


def inputs(n: int = 128, seed: int = 1, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(seed)).to(dtype) * 1.5


def enable(net: Network, **kwargs):
    return enable_qat(net, input_shape=SHAPE, input_range=RANGE, **kwargs)


def lower_net(net: Network):
    return lower(net, input_shape=SHAPE, input_range=RANGE)


def chip_reference(low, chip_ties: bool = True):
    """The dequantized graph; with ``chip_ties`` its LIF thresholds follow the chip's rule
    (fire iff v_int >= 64 vth + 1: halfway, V >= theta (vth + 1/128) / S)."""
    graph = dequantized_graph(low.quantized)
    if chip_ties:
        for node in graph.nodes:
            if node.op == "neuron" and node.attrs["kind"] == "lif":
                node.attrs["v_threshold"] *= (node.attrs["vth"] + 1 / 128) / node.attrs["scale"]
    return graph


def chip_logits(low, x: torch.Tensor) -> torch.Tensor:
    result = simulate(low.network, low.network.input.encode(x.double().numpy()), time_steps=T)
    return torch.from_numpy(readout_to_float(low.network, result.readout_v, T))


def assert_synced(handle, low) -> None:
    check = handle.sync_check(low)
    assert check["max_weight_diff"] == 0 and check["max_bias_diff"] == 0, check
    assert not check["scale_mismatches"] and not check["stale"], check
    assert check["synapses"] >= check["populations"] > 0


# ---------------------------------------------------------------------------------------------
# the core property


@pytest.mark.parametrize("arch", ["test_convnet", "test_convnet_nobn", "test_convnet_pool",
                                  "test_resnet", "test_sew_resnet"])
def test_qat_forward_is_the_lowered_network(arch):
    net = make_network(arch)
    x = inputs()
    handle = enable(net)
    with torch.no_grad():
        logits = net(x)
    low = lower_net(net)
    assert_synced(handle, low)
    reference = run_graph(chip_reference(low), fake_quantize_input(x, low.quantized.input), T,
                          record=True)
    torch.testing.assert_close(logits, reference.logits, rtol=0, atol=1e-9)
    for name, spikes in reference.spikes.items():  # every layer is active
        assert 0.01 < float(spikes.mean()) < 0.9, (name, float(spikes.mean()))
    # ... and it is what the integer chip computes (tau = 2: exact decays, no truncation)
    torch.testing.assert_close(logits, chip_logits(low, x), rtol=0, atol=1e-9)
    # the quantization changed the network (this is not a float forward in disguise)
    handle.disable()
    with torch.no_grad():
        assert (net(x) - logits).abs().max() > 1e-4


def test_float32_qat_forward_matches_the_chip():
    net = make_network("test_resnet", dtype=torch.float32)
    x = inputs(dtype=torch.float32)
    enable(net)
    with torch.no_grad():
        logits = net(x)
    low = lower_net(net)
    torch.testing.assert_close(logits.double(), chip_logits(low, x), rtol=0, atol=1e-5)


def test_without_chip_ties_it_is_the_dequantized_graph():
    net = make_network("test_convnet")
    x = inputs()
    handle = enable(net, chip_ties=False)
    with torch.no_grad():
        logits = net(x)
    low = lower_net(net)
    assert_synced(handle, low)
    reference = run_graph(dequantized_graph(low.quantized),
                          fake_quantize_input(x, low.quantized.input), T)
    torch.testing.assert_close(logits, reference.logits, rtol=0, atol=1e-9)


def test_thresholds_other_than_one_and_decay_input():
    """theta is folded into the integers by the export; QAT follows it (and the tie rule)."""
    net = make_network("test_convnet", settings=LIFSettings(v_threshold=0.5, decay_input=True))
    x = inputs()
    handle = enable(net)
    with torch.no_grad():
        logits = net(x)
    low = lower_net(net)
    assert_synced(handle, low)
    assert all(n.attrs["v_threshold"] == 0.5 for n in low.float_graph.nodes
               if n.op == "neuron" and n.attrs["kind"] == "lif")  # the export reads theta
    torch.testing.assert_close(logits, chip_logits(low, x), rtol=0, atol=1e-9)


def test_input_fake_quantization_is_the_encoding():
    low = lower_net(make_network("test_convnet"))
    x = inputs(32) * 2  # some beyond the range: clipped
    encoded = torch.from_numpy(low.network.input.encode(x.numpy())).double()
    assert encoded.abs().max() >= 127
    torch.testing.assert_close(fake_quantize_input(x, low.quantized.input) * low.quantized.input.scale,
                               encoded, rtol=0, atol=1e-9)
    value = torch.randn(5, requires_grad=True)
    straight_through(value, torch.zeros(5)).sum().backward()
    assert torch.equal(value.grad, torch.ones(5))


# ---------------------------------------------------------------------------------------------
# training


def test_training_steps_gradients_state_and_sync():
    net = make_network("test_convnet", dtype=torch.float32)
    keys = list(net.state_dict())
    x, y = inputs(32, dtype=torch.float32), torch.arange(32) % CLASSES
    bn = net.stage1[1]
    stats = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    handle = enable(net)
    assert list(net.state_dict()) == keys and qat_enabled(net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        for name in ("stage1.0.weight", "stage1.1.weight", "stage1.1.bias", "stage2.0.weight",
                     "fc1.weight", "bn_fc1.weight", "bn_fc1.bias", "fc.weight", "fc.bias"):
            grad = net.get_parameter(name).grad
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
        optimizer.step()
    after = net.state_dict()
    assert list(after) == keys
    for name in ("stage1.0.weight", "stage1.1.weight", "fc1.weight", "fc.weight", "fc.bias"):
        assert not torch.equal(before[name], after[name]), name
    # BN frozen in train mode: its running statistics never moved
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert torch.equal(bn.num_batches_tracked, stats[2])
    # the last forward used the weights before the last step: stale until a forward
    low = lower_net(net)
    assert handle.sync_check(low)["stale"]
    net.eval()
    with torch.no_grad():
        logits = net(x)
    assert_synced(handle, low)
    torch.testing.assert_close(logits.double(), chip_logits(low, x), rtol=0, atol=1e-5)
    # the state dict loads into a fresh network and lowers to the same integers
    fresh = make_network("test_convnet", seed=5, dtype=torch.float32)
    fresh.load_state_dict(net.state_dict())
    again = lower_net(fresh)
    for node in low.quantized.graph.nodes:
        if "weight_int" in node.attrs:
            assert torch.equal(node.attrs["weight_int"], again.quantized.graph[node.name].attrs["weight_int"])


def test_disable_restores_the_float_forward_exactly():
    net = make_network("test_sew_resnet")
    x = inputs(32)
    with torch.no_grad():
        reference = net(x)
    handle = enable(net)
    with torch.no_grad():
        quantized = net(x)
    assert not torch.equal(quantized, reference)
    assert all(m.v_threshold == 1.0 for m in net.modules() if isinstance(m, MultiStepLIF))
    handle.disable()
    assert not qat_enabled(net)
    assert not any("forward" in m.__dict__ for m in net.modules())
    with torch.no_grad():
        assert torch.equal(net(x), reference)
    enable(net).disable()  # enabling again works


# ---------------------------------------------------------------------------------------------
# structure and errors


def test_structure_and_report():
    net = make_network("test_resnet")
    handle = enable(net)
    # the global average pool is composed into fc; every BN is folded
    assert handle.layers["fc"].pool is not None
    assert {"bn1", "layer1.0.bn1", "layer1.0.bn2", "layer2.0.downsample.1", "avgpool"} <= set(
        handle.folded_modules)
    pop = handle.populations["layer2.0.relu2"]
    assert pop.modules == ["layer2.0.conv2", "layer2.0.downsample.0"]
    rows = {row["population"]: row for row in handle.report()}
    low = lower_net(net)
    for row in low.quantized.report:
        if row.kind != "or":
            assert rows[row.name]["scale"] == row.scale
    with pytest.raises(ExportError, match="already enabled"):
        enable(net)


def test_spiking_network_required():
    ann = build_model("test_convnet", num_classes=CLASSES, in_channels=SHAPE[0],
                      image_size=SHAPE[1:])
    with pytest.raises(ExportError, match="spiking"):
        enable(ann)


class _OverlapPool(Network):
    """conv-BN-act, a 2x2 average pool with stride 1 (overlapping), flatten, fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(SHAPE[0], 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = SpikeSite()
        self.pool = nn.AvgPool2d(2, stride=1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(4 * 7 * 7, CLASSES)

    def forward_static(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.act(self.bn(self.conv(x))))))


def test_overlapping_pool_into_linear_is_refused():
    net = spikify(_OverlapPool(), T)
    lower_net(net)  # the export handles it ...
    with pytest.raises(ExportError, match="not supported by QAT"):
        enable(net)  # ... QAT does not (yet)
    assert not qat_enabled(net)


def test_inexact_identity_shortcut_warns():
    """theta = 0.8: c S is not an even integer, so the export rounds the identity weight."""
    net = make_network("test_resnet", settings=LIFSettings(v_threshold=0.8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        handle = enable(net)
    assert any("inexactly" in str(w.message) for w in caught)
    assert handle.sync_check(lower_net(net))["inexact_fixed"]


def test_autocast_does_not_round_the_quantized_weights():
    net = make_network("test_convnet", dtype=torch.float32)
    x = inputs(64, dtype=torch.float32)
    enable(net)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(x)
    low = lower_net(net)
    torch.testing.assert_close(logits.double(), chip_logits(low, x), rtol=0, atol=1e-5)
