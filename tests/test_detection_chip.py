"""Detection and segmentation from the config to the chip: the ``task`` key and its checks, the
training jobs per task, the lowering of detectors (several readouts, nearest upsampling as an
upsample projection, shared head convs) and segmenters (FCN, DeepLabV3's ASPP), the simulator against the float SNN, and the CLI
from ``sakd teacher`` to ``sakd simulate``, ``energy`` and ``map`` on the generated scenes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from sakd.app.common import JobError
from sakd.app.energy import ann_macs_for, build_energy_report
from sakd.cli import app
from sakd.config import ConfigError, load_config
from sakd.export.graph import ExportError, apply_node, run_graph
from sakd.export.lower import lower
from sakd.export.passes import nearest_upsampling
from sakd.hardware.energy import ann_layers_from_network
from sakd.hardware.simulator import simulate
from sakd.hardware.simulator.runner import readout_to_float
from sakd.models import build_model, spikify
from sakd.models.base import Network, SpikeSite
from sakd.models.macs import count_ann_macs

runner = CliRunner()
SCENES = ["--set", "data.train_scenes=64", "--set", "data.test_scenes=8",
          "--set", "data.batch_size=16", "--set", "data.val_fraction=0.0"]


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


# ---------------------------------------------------------------------------------------------
# config


@pytest.mark.parametrize("sets, message", [
    (["task=tracking"], "task: 'tracking' is not one of"),
    (["task=detection"], "task detection needs a detection/segmentation data set"),
    (["data.name=digit-scenes"], "set task: detection or task: segmentation"),
    (["task=detection", "data.name=digit-scenes", "model.arch=fcn_resnet_small"],
     "'fcn_resnet_small' is a segmentation architecture, not a detection one"),
    (["task=segmentation", "data.name=digit-scenes", "model.arch=resnet18"],
     "'resnet18' is a resnet architecture, not a segmentation one"),
    (["model.arch=fcos_resnet_small"], "is a detection architecture but task is classification"),
    (["data.train_scenes=100"], "apply to detection/segmentation sets"),
    (["task=detection", "data.name=digit-scenes", "model.arch=fcos_resnet_small",
      "student.qat=true"], "quantization-aware training is for classifiers"),
])
def test_bad_task_configs_are_config_errors(sets, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(None, sets)


def test_the_generated_set_configs_load():
    for task in ("detection", "segmentation"):
        config = load_config(f"configs/digit_scenes_{task}.yaml")
        assert config.task == task and config.data.name == "digit-scenes"
    for name in ("voc_fcos_resnet18", "coco_fcos_resnet18", "voc_fcn_resnet18"):
        config = load_config(f"configs/{name}.yaml")
        assert config.task in ("detection", "segmentation") and config.data.name in ("voc", "coco")


def test_bad_task_through_the_cli_exits_2_before_training(tmp_path):
    result = cli("teacher", "--set", "task=detection", "-o", str(tmp_path / "t"))
    assert result.exit_code == 2 and "detection/segmentation data set" in result.output
    assert not (tmp_path / "t").exists()


# ---------------------------------------------------------------------------------------------
# lowering


def test_nearest_upsampling_is_a_depthwise_upsample_conv():
    from sakd.export.graph import Node

    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    source = Node("s", "neuron", [], (3, 4, 5))
    syn = nearest_upsampling(source, (2, 3), (3, 8, 15), "up", "up")
    want = x.repeat_interleave(2, dim=2).repeat_interleave(3, dim=3)
    assert syn.op == "upsample_conv" and syn.attrs["groups"] == 3
    assert tuple(syn.attrs["weight"].shape) == (3, 1, 2, 3)
    assert torch.equal(apply_node(syn, [x]), want)


def _trained_like(network: Network) -> Network:
    """Random BN statistics and larger head weights, so that neurons fire and readouts vary."""
    torch.manual_seed(1)
    for m in network.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.8, 2.0)
            m.bias.data.uniform_(0.0, 0.6)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight)
    return network.eval()


@pytest.fixture(scope="module")
def detector():
    return _trained_like(spikify(build_model("fcos_resnet_small", 3, 1, (64, 64)), 4))


@pytest.fixture(scope="module")
def detector_lowering(detector):
    return lower(detector, input_shape=(1, 64, 64), input_range=(-1.0, 3.0))


def test_a_detector_lowers_with_a_readout_per_head_output_and_level(detector, detector_lowering):
    ir = detector_lowering.network
    names = [p.name for p in ir.readouts]
    assert names == [f"{r}.{level}" for r in ("cls_logits", "bbox_reg", "bbox_ctrness")
                     for level in range(3)]
    shapes = {p.name: p.shape for p in ir.readouts}
    assert shapes["cls_logits.0"] == (3, 16, 16) and shapes["bbox_reg.2"] == (4, 4, 4)
    # the FPN's top-down path: an upsample projection per upsampling (depthwise, x2, one weight,
    # one synapse per target neuron), stored by its structure (the 8 -> 16 level: 128 weights,
    # where the dense 0/1 matrix it replaces had 8192 x 2048)
    ups = [p for p in ir.projections if p.name.startswith("interpolate")]
    assert len(ups) == 2 and all(p.kind == "upsample" for p in ups)
    for p in ups:
        channels = ir.source_shape(p.source)[0]
        assert p.weight.shape == (channels, 1, 2, 2) and p.groups == channels
        assert p.stride == (2, 2) and len(set(np.unique(p.weight).tolist())) == 1
    # the head's shared convs: one projection per level, the BN of each level folded into its own
    cls = [p for p in ir.projections if p.target.startswith("cls_logits.")]
    assert len(cls) == 3 and cls[0].weight.shape == cls[1].weight.shape


def test_the_float_graph_computes_the_detector(detector, detector_lowering):
    torch.manual_seed(2)
    x = torch.randn(3, 1, 64, 64, dtype=torch.float64).clamp(-1, 3)
    run = run_graph(detector_lowering.float_graph, x, 4)
    model = detector.double()
    with torch.no_grad():
        folded = x.unsqueeze(0).expand(4, *x.shape).reshape(12, 1, 64, 64)
        want = {k: v.reshape(4, 3, *v.shape[1:]).mean(0)
                for k, v in model.forward_chip(folded).items()}
    detector.float()
    assert run.logits is None and set(run.outputs) == set(want)
    for name, value in want.items():
        assert torch.allclose(run.outputs[name], value, atol=1e-9), name
    assert sum(float(s.sum()) for s in run_graph(detector_lowering.float_graph, x, 4,
                                                 record=True).spikes.values()) > 0


def test_the_chip_follows_the_float_detector(detector_lowering):
    """Integer against float on a random detector firing at 20-90 %: quantization flips the
    spikes of neurons near threshold (2 % in the first layer, on inputs off the input's integer
    grid), and such a network spreads the flips with depth; the readouts still follow the float
    ones. (On trained detectors the on-chip and float mAP are compared in docs/results.md.)"""
    torch.manual_seed(3)
    x = torch.randn(4, 1, 64, 64, dtype=torch.float64).clamp(-1, 3)
    ir = detector_lowering.network
    first = ir.populations[0].name
    result = simulate(ir, ir.input.encode(x.numpy()), record=[first])
    assert result.predictions is None and set(result.readouts) == {p.name for p in ir.readouts}
    run = run_graph(detector_lowering.float_graph, x, 4, record=True)
    latency = ir.latencies[first]
    chip_spikes = np.asarray(result.traces[first]["s"])[latency:latency + 4].astype(bool)
    assert float((chip_spikes != run.spikes[first].numpy().astype(bool)).mean()) < 0.05
    correlations = []
    for p in ir.readouts:
        chip = readout_to_float(ir, result.readouts[p.name], readout=p.name)
        correlations.append(np.corrcoef(chip.ravel(), run.outputs[p.name].numpy().ravel())[0, 1])
    assert min(correlations) > 0.2 and float(np.mean(correlations)) > 0.6, correlations
    report = {r.name: r for r in detector_lowering.quantized.report}
    assert all(report[p.name].biases_clipped == 0 for p in ir.readouts)
    # each spike into an FPN upsampling drives the 4 synapses of its 2x2 target cell (not the
    # 8,192 or 2,048 rows of the dense 0/1 matrix the lowering wrote before)
    for p in ir.projections:
        if p.kind == "upsample":
            spikes = result.counts.populations[p.source].spikes
            assert spikes.min() > 0
            assert np.array_equal(result.counts.projections[p.name].synops, 4 * spikes)


def _recorded(network, arch: str, classes: int, task: str):
    """The network with the metadata ``sakd export`` records for a dense run."""
    args = {"num_classes": classes, "in_channels": 1, "image_size": [64, 64]}
    return dataclasses.replace(network, metadata={
        "arch_name": arch, "task": task, "dataset": "digit-scenes",
        "dense": {"config": {}, "model_args": args}})


def test_the_ann_baseline_of_a_detector_is_its_whole_network(detector_lowering):
    ir = _recorded(detector_lowering.network, "fcos_resnet_small", 3, "detection")
    macs, why = ann_macs_for(ir)
    assert why is None
    assert macs == count_ann_macs(build_model("fcos_resnet_small", 3, 1, (64, 64)), (1, 64, 64))
    # independently, from the lowered network: every conv projection once per use (the head's
    # on each level), an upsampling one synapse per target neuron; the stem's max pool (an OR
    # population) and the identity shortcut are no MACs of the ANN
    skipped, total = [], 0
    for p in ir.projections:
        if p.name == "backbone.body.maxpool.sum" or ".identity[" in p.name:
            skipped.append(p.name)
        elif p.kind == "conv2d":
            total += int(np.prod(ir.population(p.target).shape)) * int(np.prod(p.weight.shape[1:]))
        else:
            assert p.kind == "upsample" and p.name.startswith("interpolate"), p.name
            total += int(np.prod(ir.population(p.target).shape)) * p.weight.shape[1]
    assert len(skipped) == 2 and macs["total"] == total
    assert macs["backbone.fpn.interpolate"] == 32 * (16 * 16 + 8 * 8)
    # the like-for-like ANN twin (one layer per projection) counts the upsamplings the same way
    twin = {layer.name: layer for layer in ann_layers_from_network(ir)}
    ups = [p for p in ir.projections if p.kind == "upsample"]
    assert sum(twin[p.name].macs for p in ups) == macs["backbone.fpn.interpolate"]
    assert sum(twin[p.name].weights for p in ups) == 2 * 32 * 4
    with pytest.raises(JobError, match="describes readouts .* re-export it"):
        ann_macs_for(_recorded(ir, "fcos_resnet_small", 5, "detection"))


def test_a_segmenter_lowers_with_one_readout():
    snn = _trained_like(spikify(build_model("fcn_resnet_small", 11, 1, (64, 64)), 4))
    low = lower(snn, input_shape=(1, 64, 64), input_range=(-1.0, 3.0))
    assert [(p.name, p.shape) for p in low.network.readouts] == [("readout", (11, 16, 16))]
    x = torch.randn(2, 1, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        folded = x.unsqueeze(0).expand(4, *x.shape).reshape(8, 1, 64, 64)
        want = snn.double().forward_static(folded).reshape(4, 2, 11, 16, 16).mean(0)
    assert torch.allclose(run_graph(low.float_graph, x, 4).logits, want, atol=1e-9)
    # its ANN baseline: the teacher's backbone and head, beside the simulator's counts
    ir = _recorded(low.network, "fcn_resnet_small", 11, "segmentation")
    macs, why = ann_macs_for(ir)
    assert why is None and macs == count_ann_macs(build_model("fcn_resnet_small", 11, 1, (64, 64)),
                                                   (1, 64, 64))
    counts = simulate(ir, ir.input.encode(x.clamp(-1, 3).numpy())).counts
    report = build_energy_report(counts, macs, ["loihi", "cmos45-fp32"], network_name="fcn",
                                 time_steps=4)
    snn_ops = report.totals["synops"] + report.totals["graded_macs"]
    assert report.ann["macs"] == macs["total"] > 0
    assert report.ratios["ops_snn_over_ann_macs"] == pytest.approx(snn_ops / macs["total"])


class _Up(Network):
    def __init__(self, mode: str, factor: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.site = SpikeSite()
        self.head = nn.Conv2d(2, 2, 1)
        self.mode, self.factor = mode, factor

    def forward_static(self, x):
        s = self.site(self.conv(x))
        return self.head(nn.functional.interpolate(s, scale_factor=self.factor, mode=self.mode))


@pytest.mark.parametrize("mode, factor, message", [
    ("bilinear", 2.0, "bilinear interpolation has no exact projection form"),
    ("nearest", 1.5, "integer factors"),
])
def test_inexact_interpolation_is_refused_by_name(mode, factor, message):
    net = spikify(_Up(mode, factor), 2)
    with pytest.raises(ExportError, match=message):
        lower(net, input_shape=(1, 4, 4), input_range=(-1.0, 1.0))


@pytest.fixture(scope="module")
def deeplab():
    return _trained_like(spikify(build_model("deeplabv3_resnet_small", 11, 1, (64, 64)), 4))


@pytest.fixture(scope="module")
def deeplab_lowering(deeplab):
    return lower(deeplab, input_shape=(1, 64, 64), input_range=(-1.0, 3.0))


def test_deeplabv3_lowers_its_aspp_exactly(deeplab, deeplab_lowering):
    """torchvision's ASPP: the project conv reading the concat of five branches becomes five
    synapses (its weight split along Cin); the pooling branch (global pool -> 1x1 conv -> LIF on
    a (64, 1, 1) map -> bilinear broadcast) reaches the project conv as one upsample projection
    of a broadcast (64, 64, 16, 16 weights: the 1x1 conv at every offset); the float graph
    computes the network."""
    low = deeplab_lowering
    ir = low.network
    assert [(p.name, p.shape) for p in ir.readouts] == [("readout", (11, 16, 16))]
    into = {p.name: p for p in ir.projections_into("classifier.0.project.2")}
    assert sorted(into) == [f"classifier.0.project.0.cat[{k}]" for k in range(5)]
    pooled = into["classifier.0.project.0.cat[4]"]
    assert pooled.kind == "upsample" and pooled.weight.shape == (64, 64, 16, 16)
    assert ir.population(pooled.source).shape == (64, 1, 1) and pooled.stride == (16, 16)
    assert all(np.array_equal(pooled.weight[..., 0, 0], pooled.weight[..., i, j])
               for i, j in ((0, 5), (15, 15), (7, 2)))
    pool_conv = ir.projections_into(pooled.source)[0]  # the global pool folded into its conv
    assert pool_conv.kind == "conv2d" and pool_conv.weight.shape[2:] == (16, 16)
    assert all(into[f"classifier.0.project.0.cat[{k}]"].kind == "conv2d" for k in range(4))
    x = torch.randn(2, 1, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        folded = x.unsqueeze(0).expand(4, *x.shape).reshape(8, 1, 64, 64)
        want = deeplab.double().forward_static(folded).reshape(4, 2, 11, 16, 16).mean(0)
    deeplab.float()
    assert torch.allclose(run_graph(low.float_graph, x, 4).logits, want, atol=1e-9)


def test_the_chip_follows_the_float_deeplabv3(deeplab_lowering):
    """The simulator against the float SNN (as for the detector), and the broadcast's SynOps:
    each spike of the (64, 1, 1) pooling population drives 64 x 16 x 16 synapses."""
    torch.manual_seed(4)
    x = torch.randn(3, 1, 64, 64, dtype=torch.float64).clamp(-1, 3)
    ir = deeplab_lowering.network
    first = ir.populations[0].name
    pooled = next(p for p in ir.projections if p.kind == "upsample")
    result = simulate(ir, ir.input.encode(x.numpy()), record=[first])
    run = run_graph(deeplab_lowering.float_graph, x, 4, record=True)
    latency = ir.latencies[first]
    chip_spikes = np.asarray(result.traces[first]["s"])[latency:latency + 4].astype(bool)
    assert float((chip_spikes != run.spikes[first].numpy().astype(bool)).mean()) < 0.05
    chip = readout_to_float(ir, result.readouts["readout"])
    assert np.corrcoef(chip.ravel(), run.logits.numpy().ravel())[0, 1] > 0.6
    spikes = result.counts.populations[pooled.source].spikes
    assert spikes.min() > 0
    assert np.array_equal(result.counts.projections[pooled.name].synops, spikes * 64 * 16 * 16)
    # the ANN baseline (the teacher's whole network) equals the lowered network's MACs: the
    # project conv's share of the pooling branch is the upsample projection's; the identity
    # shortcut is no MAC of the ANN, and the pooling branch's 1x1 conv, with the global pool
    # folded in, reads the whole 16 x 16 map on the chip but one pooled value in the ANN
    ir = _recorded(ir, "deeplabv3_resnet_small", 11, "segmentation")
    macs, why = ann_macs_for(ir)
    assert why is None
    twin = {layer.name: layer.macs for layer in ann_layers_from_network(ir)}
    assert twin[pooled.name] == 64 * 16 * 16 * 64 == macs["classifier.0.project.0"] // 5
    pool_conv = ir.projections_into(pooled.source)[0].name
    assert twin[pool_conv] == 64 * 64 * 16 * 16 and macs[pool_conv] == 64 * 64
    chip_total = sum(m for name, m in twin.items() if ".identity[" not in name and name != pool_conv)
    assert chip_total + macs[pool_conv] == macs["total"]


class _CatNet(Network):
    """ASPP in small: a = LIF(conv(x)); b = LIF(1x1 conv(global pool(a))), broadcast back by a
    bilinear interpolation of its 1x1 map; head = conv(cat([a, b])). ``spiking_pool=False``:
    the pooled map is broadcast without a neuron between."""

    def __init__(self, groups: int = 1, kernel: int = 1, spiking_pool: bool = True) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 1)
        self.sa, self.sb = SpikeSite(), SpikeSite()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(4, 2, kernel, groups=groups)
        self.spiking_pool = spiking_pool

    def forward_static(self, x):
        a = self.sa(self.a(x))
        b = self.sb(self.b(self.pool(a) if self.spiking_pool else a))
        b = self.pool(b) if not self.spiking_pool else b
        b = nn.functional.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=True)
        return self.head(torch.cat([a, b], dim=1))


def test_a_small_aspp_lowers_and_computes_the_network():
    torch.manual_seed(0)
    net = spikify(_CatNet(), 2).eval()
    low = lower(net, input_shape=(1, 4, 4), input_range=(-1.0, 1.0))
    kinds = {p.name: p.kind for p in low.network.projections_into("readout")}
    assert kinds == {"head.cat[0]": "conv2d", "head.cat[1]": "upsample"}
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        want = net.double().forward_static(x.unsqueeze(0).expand(2, *x.shape).reshape(6, 1, 4, 4))
    assert torch.allclose(run_graph(low.float_graph, x, 2).logits,
                          want.reshape(2, 3, 2, 4, 4).mean(0), atol=1e-9)


@pytest.mark.parametrize("kwargs, message", [
    (dict(groups=2), "reads concat 'cat' with groups 2; only a conv of groups 1 splits"),
    (dict(kernel=3), "conv 'head.cat\\[1\\]' .*reads the upsampling .*only a 1x1 conv"),
    (dict(spiking_pool=False), "avgpool 'pool' feeds upsample 'interpolate'"),
])
def test_a_concat_or_broadcast_without_an_exact_form_is_refused_by_name(kwargs, message):
    net = spikify(_CatNet(**kwargs), 2).eval()
    with pytest.raises(ExportError, match=message):
        lower(net, input_shape=(1, 4, 4), input_range=(-1.0, 1.0))


# ---------------------------------------------------------------------------------------------
# the CLI, end to end on tiny scenes


@pytest.mark.slow
@pytest.mark.parametrize("task", ["segmentation", "detection", "deeplabv3"])
def test_cli_trains_evaluates_exports_and_simulates(tmp_path, task):
    """Every job on tiny scenes; ``deeplabv3``: the segmentation config with DeepLabV3
    (``model.arch=deeplabv3_resnet_small``), whose ASPP exports (an upsample projection)."""
    arch = []
    if task == "deeplabv3":
        task, arch = "segmentation", ["--set", "model.arch=deeplabv3_resnet_small"]
    base = f"configs/digit_scenes_{task}.yaml"
    one = ["--set", "teacher.train.epochs=1", "--set", "student.train.epochs=1", *arch]
    teacher, student, out = tmp_path / "teacher", tmp_path / "student", tmp_path / "export"
    assert cli("teacher", "-c", base, *SCENES, *one, "-o", str(teacher), "--no-progress").exit_code == 0
    record = torch.load(teacher / "last.pt", weights_only=True)
    assert record["task"] == task
    result = cli("distill", "-c", base, *SCENES, *one, "--teacher", str(teacher / "last.pt"),
                 "-o", str(student), "--no-progress")
    assert result.exit_code == 0, result.output
    metric = "map" if task == "detection" else "miou"
    assert f"test {'mAP@[.5:.95]' if task == 'detection' else 'mIoU'}" in result.output
    assert cli("eval", str(student / "last.pt"), "--json", str(tmp_path / "e.json")).exit_code == 0
    figures = json.loads((tmp_path / "e.json").read_text())
    assert figures["task"] == task and 0.0 <= figures["metrics"][metric] <= 1.0
    result = cli("export", str(student / "last.pt"), "-o", str(out))
    assert result.exit_code == 0, result.output
    skipped = json.loads((out / "export_report.json").read_text())["skipped"]
    assert "onnx" in skipped
    if arch:  # the ASPP's broadcast is an upsample projection: in the IR, not in NIR
        from sakd.hardware.netfile import read_network

        kinds = [p.kind for p in read_network(out / "network.h5").projections]
        assert kinds.count("upsample") == 1
        assert "no transposed convolution" in skipped["nir"]
    result = cli("simulate", str(out), "--limit", "4")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "simulate_report.json").read_text())
    dense = report["dense"]
    assert dense["task"] == task and dense["samples"] == 4 and "host" in dense["host"]
    assert set(dense["on_chip"]) >= {metric} and set(dense["float_snn"]) >= {metric}
    assert report["on_chip_accuracy"] is None
    result = cli("energy", str(out), "--limit", "2")
    assert result.exit_code == 0, result.output
    energy = json.loads((out / "energy_report.json").read_text())
    assert energy["totals"]["synops"] > 0 and energy["totals"]["energy_pj"]["loihi"] > 0
    # the ANN baseline: the teacher's whole network, beside the SNN's counts
    assert energy["ann"]["macs"] > 0 and energy["ratios"]["ops_snn_over_ann_macs"] > 0
    assert "SNN against the ANN baseline" in result.output
    result = cli("verify", str(out), "--float", "--samples", "2")
    assert result.exit_code == 0, result.output
    checked = json.loads((out / "verify_report.json").read_text())
    readouts = [r["readout"] for r in checked["float_snn"]["readouts"]]
    assert checked["ok"] and len(readouts) == (9 if task == "detection" else 1)
    assert "float SNN vs simulator" in result.output
    result = cli("verify", str(out), "--onnx")  # not written for a dense network: the reason
    assert result.exit_code == 2 and "the export could not write one" in result.output
    if arch:  # no NIR file: refused with the export's reason, before any work
        result = cli("verify", str(out), "--nir")
        assert result.exit_code == 2 and "no transposed convolution" in result.output
    elif task == "segmentation":  # one readout map: NIR is written, predictions per location
        result = cli("verify", str(out), "--nir", "--samples", "2")
        assert result.exit_code == 0, result.output
        nir = json.loads((out / "verify_report.json").read_text())["nir"]
        assert nir["ok"] and nir["agreement_vs_simulator"] >= 0.99
    target = []
    if arch:
        # the pooling branch's neurons each read the whole 64 x 16 x 16 map (the global pool
        # folded into its 1x1 conv): more distinct sources than the 4,096 input axons assumed
        # for a Loihi 2 core, so the default profile refuses it, naming the population ...
        result = cli("map", str(out), "--limit", "0")
        assert result.exit_code == 2
        assert "population 'classifier.0.convs.4.3'" in result.output
        assert "4,096 input axons" in result.output
        # ... and a chip file with a larger axon table (a what-if) maps it
        chip = json.loads(Path("hardware/mapping/chips/loihi2.json").read_text())
        chip["description"] += " (what-if: 16,384 input axons per core)"
        chip["figures"]["input_axons_per_core"].update(value=16384, certainty="user")
        (tmp_path / "chip.json").write_text(json.dumps(chip))
        target = ["--target", str(tmp_path / "chip.json")]
    result = cli("map", str(out), "--limit", "2", "--system", "auto", *target)  # the smallest
    assert result.exit_code == 0, result.output
    assert (out / "map_report.json").is_file()
    result = cli("eval", str(teacher / "last.pt"), "--split", "val")
    assert result.exit_code == 2 and "val_fraction = 0" in result.output
