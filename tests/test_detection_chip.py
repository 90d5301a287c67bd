"""Detection and segmentation from the config to the chip: the ``task`` key and its checks, the
training jobs per task, the lowering of detectors (several readouts, nearest upsampling as a
projection, shared head convs) and segmenters, the simulator against the float SNN, and the CLI
from ``sakd teacher`` to ``sakd simulate``, ``energy`` and ``map`` on the generated scenes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from sakd.app.common import JobError
from sakd.app.energy import ann_macs_for, build_energy_report
from sakd.cli import app
from sakd.config import ConfigError, load_config
from sakd.export.graph import ExportError, run_graph
from sakd.export.lower import lower
from sakd.export.passes import upsample_matrix
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


def test_upsample_matrix_is_nearest_upsampling():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    matrix = upsample_matrix((3, 4, 5), (2, 3))
    want = x.repeat_interleave(2, dim=2).repeat_interleave(3, dim=3)
    got = (x.flatten(1) @ matrix.T).reshape(2, 3, 8, 15)
    assert torch.equal(got, want) and bool((matrix.sum(1) == 1).all())


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
    # the FPN's top-down path: a dense 0/1 projection per upsampling, one 1 per row
    ups = [p for p in ir.projections if p.name.startswith("interpolate")]
    assert len(ups) == 2 and all(p.kind == "dense" for p in ups)
    for p in ups:
        values = set(np.unique(p.weight).tolist()) - {0}
        assert len(values) == 1 and bool(((p.weight != 0).sum(1) == 1).all())
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
            assert p.kind == "dense" and p.name.startswith("interpolate"), p.name
            total += int(np.count_nonzero(p.weight))
    assert len(skipped) == 2 and macs["total"] == total
    assert macs["backbone.fpn.interpolate"] == 32 * (16 * 16 + 8 * 8)
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


def test_deeplabv3_export_is_refused_with_the_reason():
    snn = spikify(build_model("deeplabv3_resnet_small", 11, 1, (64, 64)), 2).eval()
    with pytest.raises(ExportError, match="interpolation|unsupported operation"):
        lower(snn, input_shape=(1, 64, 64), input_range=(-1.0, 3.0))


# ---------------------------------------------------------------------------------------------
# the CLI, end to end on tiny scenes


@pytest.mark.slow
@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_cli_trains_evaluates_exports_and_simulates(tmp_path, task):
    base = f"configs/digit_scenes_{task}.yaml"
    one = ["--set", "teacher.train.epochs=1", "--set", "student.train.epochs=1"]
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
    assert "onnx" in json.loads((out / "export_report.json").read_text())["skipped"]
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
    if task == "segmentation":  # one readout map: NIR is written, predictions per location
        result = cli("verify", str(out), "--nir", "--samples", "2")
        assert result.exit_code == 0, result.output
        nir = json.loads((out / "verify_report.json").read_text())["nir"]
        assert nir["ok"] and nir["agreement_vs_simulator"] >= 0.99
    result = cli("map", str(out), "--limit", "2", "--system", "auto")  # the smallest that holds it
    assert result.exit_code == 0, result.output
    assert (out / "map_report.json").is_file()
    result = cli("eval", str(teacher / "last.pt"), "--split", "val")
    assert result.exit_code == 2 and "val_fraction = 0" in result.output
