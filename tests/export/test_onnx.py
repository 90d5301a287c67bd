"""ONNX export: ANN and SNN (unrolled over T) against torch through onnxruntime.

The SNNs are random-init tiny networks whose BatchNorm statistics and affine parameters are made
non-trivial and whose threshold is lowered so that every layer fires (checked: 1 % to 90 %).

Float32 honesty: onnxruntime's convolutions (with BN folded in by the exporter) round differently
from torch's in the last bits, so a membrane potential within rounding distance of the threshold
could spike on one side only, which moves a logit by a whole weight. The strict comparison
(max |logit difference| <= 1e-4, equal predictions) is therefore made on the samples whose every
membrane potential, at every neuron and step, stays at least ``MARGIN`` from the threshold
(computed in torch with the exporter's own neuron math, which is bit-identical to spikingjelly's:
``test_unrolled_torch_model_is_bit_identical``). At least 80 % of the samples must qualify, and
on all samples the number of mismatching ones may not exceed the number of near-threshold ones.

Measured when this was written (onnxruntime 1.32, torch 2.14 CPU, 256 inputs): the largest
|H_onnx - H_torch| over every neuron and step of these four SNNs was 4.8e-6, with no flip. On
the digits ConvNet (16-32-64, fc 128, v_th = 0.5, 360 inputs) torch produced a potential
exactly at the threshold (it fires, ``>=``) that onnxruntime rounded just below: 5 spikes
differed inside the network, though none reached the logits. Such flips are real, if rare.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
import torch
from spikingjelly.activation_based import neuron as sj_neuron
from torch import nn

from sakd.formats.onnx import (
    OnnxExportError,
    UnrolledLIF,
    check_onnx,
    export_onnx,
    threshold_margins,
    unroll,
)
from sakd.models.neurons import LIFSettings, MultiStepLIF
from sakd.models.registry import build_model
from sakd.models.spikify import spikify

ARCHS = ["test_convnet", "test_convnet_pool", "test_resnet", "test_sew_resnet"]
T = 4
SHAPE = (2, 8, 8)  # channels, height, width
CLASSES = 5
ATOL = 1e-4
MARGIN = 1e-5  # ~2x the largest ORT-vs-torch difference of H measured on these networks
SETTINGS = LIFSettings(tau=2.0, v_threshold=0.5)
# the standard ops a neuron-unrolled graph may use: no custom domain, no Loop/Scan
ALLOWED_OPS = {"Add", "BatchNormalization", "Cast", "Concat", "Constant", "ConstantOfShape",
               "Conv", "Div", "Expand", "Flatten", "Gather", "Gemm", "GlobalAveragePool",
               "GreaterOrEqual", "Identity", "MatMul", "MaxPool", "AveragePool", "Mul",
               "Not", "ReduceMean", "Relu", "Reshape", "Sub", "Tile", "Where"}


def make_network(arch: str, time_steps: int, seed: int = 0) -> nn.Module:
    """A random-init network with non-trivial BN (affine parameters drawn, running statistics
    from a few train-mode passes), in eval mode."""
    torch.manual_seed(seed)
    net = build_model(arch, num_classes=CLASSES, in_channels=SHAPE[0], image_size=SHAPE[1:])
    for module in net.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.normal_(module.bias, 0.2, 0.3)
    if time_steps:
        net = spikify(net, time_steps, SETTINGS)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, *SHAPE) * 1.5 + 0.3)
    return net.eval()


def inputs(n: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def firing_rates(net: nn.Module, x: torch.Tensor) -> dict[str, float]:
    rates: dict[str, float] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: rates.__setitem__(name, o.mean().item()))
             for name, m in net.named_modules() if isinstance(m, MultiStepLIF)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for hook in hooks:
            hook.remove()
    return rates


@pytest.mark.parametrize("time_steps", [0, T], ids=["ann", "snn"])
@pytest.mark.parametrize("arch", ARCHS)
def test_onnxruntime_matches_torch(arch, time_steps, tmp_path):
    net = make_network(arch, time_steps)
    x = inputs()
    path = tmp_path / f"{arch}.onnx"
    report = export_onnx(net, path, example_input_shape=(3, *SHAPE))

    assert report["path"] == str(path) and report["opset"] == 17
    assert report["inputs"] == [{"name": "input", "shape": ["batch", *SHAPE]}]
    assert report["outputs"] == [{"name": "logits", "shape": ["batch", CLASSES]}]
    assert report["time_steps"] == time_steps
    assert report["node_count"] == sum(report["op_counts"].values()) > 0
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
    assert set(report["op_counts"]) <= ALLOWED_OPS, set(report["op_counts"]) - ALLOWED_OPS

    if not time_steps:
        result = check_onnx(net, path, x)
        assert result["max_abs_diff"] <= ATOL and result["prediction_agreement"] == 1.0, result
        return

    n_neurons = sum(isinstance(m, MultiStepLIF) for m in net.modules())
    assert report["neurons"] == n_neurons
    assert report["op_counts"]["GreaterOrEqual"] == n_neurons * time_steps  # unrolled: no Loop
    rates = firing_rates(net, x)
    assert len(rates) == n_neurons
    assert all(0.01 <= r <= 0.90 for r in rates.values()), rates

    margins = threshold_margins(net, x)
    clear = margins >= MARGIN
    assert clear.float().mean() >= 0.8, f"{int((~clear).sum())} of {len(x)} near threshold"
    strict = check_onnx(net, path, x[clear])
    assert strict["max_abs_diff"] <= ATOL, strict
    assert strict["prediction_agreement"] == 1.0, strict
    everything = check_onnx(net, path, x)
    assert everything["samples_over_atol"] <= int((~clear).sum()), everything


def test_unrolled_torch_model_is_bit_identical():
    """The exporter's torch model (UnrolledLIF) equals spikingjelly's forward bit for bit, for
    both charge equations, a non-zero hard reset, a soft reset and a tau that is not a power
    of two."""
    x = inputs(16, seed=5) * 2
    for settings in (SETTINGS, LIFSettings(tau=3.0, v_threshold=0.7, decay_input=True),
                     LIFSettings(tau=1.7, v_threshold=0.4, v_reset=-0.3),
                     LIFSettings(tau=2.5, v_threshold=0.5, v_reset=None)):
        torch.manual_seed(3)
        net = spikify(build_model("test_resnet", CLASSES, SHAPE[0], SHAPE[1:]), 3, settings).eval()
        with torch.no_grad():
            assert torch.equal(unroll(net)(x), net(x)), settings


def test_export_leaves_network_alone_and_batch_is_dynamic(tmp_path):
    net = make_network("test_convnet", T).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    path = tmp_path / "net.onnx"
    export_onnx(net, path, example_input_shape=(4, *SHAPE))
    assert net.training and net.time_steps == T
    assert sum(isinstance(m, MultiStepLIF) for m in net.modules()) == 3
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    for batch in (1, 7):  # neither is the example's batch of 4
        result = check_onnx(net, path, inputs(batch, seed=batch), batch_size=batch)
        assert result["samples"] == batch and result["max_abs_diff"] <= ATOL
    assert net.training  # check_onnx restores the mode
    assert os.listdir(tmp_path) == ["net.onnx"]  # no temporary file left


def test_check_onnx_detects_a_different_network(tmp_path):
    """Negative control: the comparison is not vacuous."""
    net = make_network("test_convnet", T)
    path = tmp_path / "net.onnx"
    export_onnx(net, path, example_input_shape=(2, *SHAPE))
    other = spikify(build_model("test_convnet", CLASSES, SHAPE[0], SHAPE[1:]), T,
                    LIFSettings(tau=2.0, v_threshold=0.9))
    other.load_state_dict(net.state_dict())
    result = check_onnx(other.eval(), path, inputs())
    assert result["max_abs_diff"] > 0.01 and result["samples_over_atol"] > 0


class _PlainWithIFNode(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = sj_neuron.IFNode(step_mode="m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


def test_unsupported_neuron_is_a_named_error(tmp_path):
    net = make_network("test_convnet", T)
    net.stage2.set_submodule("2", sj_neuron.IFNode(step_mode="m"))
    path = tmp_path / "net.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(OnnxExportError, match=r"'stage2\.2' \(IFNode\)") as info:
        export_onnx(net, path, example_input_shape=(2, *SHAPE))
    assert isinstance(info.value, ValueError)
    assert path.read_bytes() == b"previous" and os.listdir(tmp_path) == ["net.onnx"]

    class OtherLIF(MultiStepLIF):
        pass

    net = make_network("test_convnet", T)
    net.act_fc1 = OtherLIF(T, SETTINGS, detach_reset=net.act_fc1.detach_reset)
    with pytest.raises(OnnxExportError, match="'act_fc1' is a OtherLIF"):
        export_onnx(net, tmp_path / "b.onnx", example_input_shape=(2, *SHAPE))

    with pytest.raises(OnnxExportError, match="'act'"):
        export_onnx(_PlainWithIFNode(), tmp_path / "c.onnx", example_input_shape=(2, 4))


def test_neuron_used_outside_a_spiking_network_is_an_error(tmp_path):
    module = nn.Sequential(nn.Linear(4, 4), MultiStepLIF(2, SETTINGS, detach_reset=False))
    with pytest.raises(OnnxExportError, match="module '1' is a spiking neuron"):
        export_onnx(module, tmp_path / "x.onnx", example_input_shape=(2, 4))


def test_report_counts_match_the_file(tmp_path):
    net = make_network("test_convnet_pool", T)
    report = export_onnx(net, tmp_path / "p.onnx", example_input_shape=(2, *SHAPE), opset=18)
    model = onnx.load(str(tmp_path / "p.onnx"))
    assert report["opset"] == 18 and report["node_count"] == len(model.graph.node)
    assert report["file_bytes"] == (tmp_path / "p.onnx").stat().st_size
    assert report["kind"] == "snn" and report["architecture"] == "test_convnet_pool"
    assert np.isfinite(check_onnx(net, tmp_path / "p.onnx", inputs(8))["max_abs_diff"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_threshold_tie_fires_in_torch_spikingjelly_and_onnxruntime(tmp_path):
    """H == V_th fires (``>=``); the next float32 below does not; both after a hard reset."""
    import onnxruntime as ort

    below = float(np.nextafter(np.float32(0.5), np.float32(0)))
    x = torch.tensor([[[0.5, below]], [[0.0, 0.0]]]).reshape(2, 2)  # [T*B, 2], T = 2, B = 1
    expected = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    neuron = UnrolledLIF(2, tau=2.0, decay_input=False, v_threshold=0.5, v_reset=0.0)
    reference = MultiStepLIF(2, SETTINGS, detach_reset=False)
    assert torch.equal(neuron(x), expected) and torch.equal(reference(x), expected)
    path = tmp_path / "lif.onnx"
    torch.onnx.export(neuron, (x,), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["s"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(None, {"x": x.numpy()})[0], expected.numpy())
