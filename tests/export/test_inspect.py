"""``sakd inspect`` summaries (``sakd.formats.inspect_file``) of IR, NIR and netx files, and clear
errors for files that are not."""

from __future__ import annotations

import dataclasses
import io
import json

import h5py
import nir
import numpy as np
import pytest
import random_snn
from rich.console import Console

from sakd.errors import SakdError
from sakd.formats import inspect_file
from sakd.formats.netx import write_netx
from sakd.formats.nir import write_nir
from sakd.hardware.ir import Network
from sakd.hardware.netfile import write_network
from sakd.render.inspect import render_inspection

ARCHS = {"test_convnet": (1, 8, 8), "test_resnet": (3, 8, 8)}


def lowered(arch: str) -> Network:
    return random_snn.lowered(arch, ARCHS[arch])


def render(summary, width: int = 240) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    render_inspection(summary, console)
    return console.export_text()


def as_dict(summary) -> dict:
    data = dataclasses.asdict(summary)
    json.dumps(data)  # JSON-able
    return data


def test_ir_file(tmp_path):
    net = lowered("test_resnet")
    summary = inspect_file(write_network(net, tmp_path / "network.h5"))
    s = as_dict(summary)
    assert s["format"] == "sakd-ir" and s["target"] == "loihi2" and s["latency"] == net.latency
    assert s["input"]["shape"] == [3, 8, 8] and s["input"]["encoding"] == "graded"
    t = s["totals"]
    assert (t["populations"], t["projections"]) == (len(net.populations), len(net.projections))
    assert t["neurons"] == sum(p.size for p in net.populations)
    assert t["weights"] == sum(p.weight.size for p in net.projections)
    weights = np.concatenate([p.weight.reshape(-1) for p in net.projections])
    assert s["ranges"]["weight"] == [int(weights.min()), int(weights.max())]
    assert s["ranges"]["dv"] == [0, 2048] and s["ranges"]["du"] == [4095, 4095]
    assert s["delays"] == {p.name: p.delay for p in net.projections if p.delay} != {}
    assert s["metadata"]["arch"] == net.metadata["arch"]
    rows = {r["name"]: r for r in s["layers"]}
    assert len(rows) == len(net.populations) + len(net.projections)
    assert rows["readout"]["kind"] == "readout" and rows["fc"]["shape"] == [5, 256]
    assert sorted(rows["layer1.0.relu2"]["inputs"]) == sorted(
        p.name for p in net.projections_into("layer1.0.relu2"))
    text = render(summary)
    assert "layer1.0.relu2" in text and "latency: 6" in text and "sakd-ir" in text
    narrow = render(summary, width=80)
    assert "…" not in narrow.split("metadata:")[0] and max(map(len, narrow.splitlines())) <= 80


def test_nir_file(tmp_path):
    net = lowered("test_resnet")
    summary = inspect_file(write_nir(net, tmp_path / "net.nir"))
    s = as_dict(summary)
    assert s["format"] == "nir" and s["version"] == nir.version
    assert s["ir"]["details"]["own_file"] and s["ir"]["latency"] == net.latency == s["latency"]
    assert s["totals"]["converging"] == len(
        [p.name for p in net.populations if len(net.projections_into(p.name)) > 1])
    kinds = {r["name"]: r["kind"] for r in s["layers"]}
    assert kinds["readout"] == "I" and kinds["relu"] == "CubaLIF" and kinds["conv1"] == "Conv2d"
    assert s["layers"][0]["kind"] == "Input"  # topological order
    assert s["ranges"]["vth"][1] == max(p.neuron.vth for p in net.populations if not p.is_readout)
    assert s["metadata"]["sakd"]["target"] == "loihi2"
    assert "CubaLIF" in render(summary)


def test_bracketed_names_are_not_markup(tmp_path):
    s = inspect_file(write_network(lowered("test_resnet"), tmp_path / "network.h5"))
    s.layers[0].name = "fc[layer2.0.relu2]"
    assert "fc[layer2.0.relu2]" in render(s)


def test_nir_file_that_does_not_map(tmp_path):
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([2])}),
        "thr": nir.Threshold(threshold=np.ones(2)),
        "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "thr"), ("thr", "output")])
    nir.write(tmp_path / "t.nir", graph)
    s = inspect_file(tmp_path / "t.nir")
    assert "Threshold" in s.ir.error and s.latency is None and not s.representable
    assert "not representable" in render(s)


def test_netx_file(tmp_path):
    net = lowered("test_convnet")
    s = as_dict(inspect_file(write_netx(net, tmp_path / "net.netx.h5")))
    assert s["format"] == "netx" and s["ir"]["latency"] == net.latency
    assert [r["kind"] for r in s["layers"]] == ["input", "conv", "conv", "flatten", "dense", "dense"]
    assert s["layers"][-1]["neuron"].startswith("CUBA iDecay 4096 vDecay 0 vThMant 131072")
    assert s["ranges"]["dv"] == [0, 2048]
    assert s["metadata"]["arch"] == net.metadata["arch"]
    assert s["totals"]["weights"] == sum(p.weight.size for p in net.projections)
    # a neuron-less readout is labelled as netx's integrating readout
    with h5py.File(tmp_path / "net.netx.h5", "r+") as f:
        del f["layer/5/neuron"]
    summary = inspect_file(tmp_path / "net.netx.h5")
    assert "netx's integrating readout" in summary.layers[-1].neuron
    assert "edited" in summary.ir.error
    render(summary)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(SakdError, match="missing.h5: no such file"):
        inspect_file(tmp_path / "missing.h5")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SakdError, match="notes.txt: not a network file sakd knows"):
        inspect_file(tmp_path / "notes.txt")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_group("stuff")
    with pytest.raises(SakdError, match="empty.h5: not a network file sakd knows"):
        inspect_file(tmp_path / "empty.h5")
    net = lowered("test_convnet")
    for name, writer in (("ir.h5", write_network), ("net.nir", write_nir),
                         ("netx.h5", write_netx)):
        data = writer(net, tmp_path / name).read_bytes()
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(SakdError, match=f"cut-{name}"):
            inspect_file(cut)
    with h5py.File(tmp_path / "bad-ir.h5", "w") as f:
        f.attrs["format"] = "sakd-ir"
    with pytest.raises(SakdError, match="bad-ir.h5"):
        inspect_file(tmp_path / "bad-ir.h5")
