"""The energy report (sakd.app.energy, sakd.render.energy): JSON content, the terminal table, the
PNG, atomicity."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from sakd.app.energy import build_energy_report
from sakd.hardware.atomic import atomic_write_json
from sakd.hardware.counts import NetworkCounts, PopulationCounts, ProjectionCounts
from sakd.hardware.energy import load_profile
from sakd.render.energy import format_energy, plot_energy, render_energy


def write_energy_report(report, path):
    atomic_write_json(path, report)


PROFILES = ("loihi", "cmos45-fp32", "cmos45-int8", "spinnaker2")
ANN_MACS = {"conv": 96, "fc": 30, "total": 126}


def hand_counts() -> NetworkCounts:
    """Same network as tests/test_energy.py: graded 'in' -enc-> pop1 -fc-> out; B = 2, T = 4."""
    i64 = np.int64
    pop1 = PopulationCounts("pop1", 10, 4, np.array([[1, 2, 0, 1], [3, 1, 1, 1]], i64),
                            np.array([20, 30], i64))
    out = PopulationCounts("out", 3, 4, np.zeros((2, 4), i64), np.array([12, 12], i64))
    enc = ProjectionCounts("enc", "in", "pop1", 90, np.zeros(2, i64), np.array([100, 140], i64), 96)
    fc = ProjectionCounts("fc", "pop1", "out", 30, np.array([12, 18], i64), np.zeros(2, i64), 30)
    return NetworkCounts(4, 2, {"pop1": pop1, "out": out}, {"enc": enc, "fc": fc})


@pytest.fixture(scope="module")
def built():
    return build_energy_report(hand_counts(), ANN_MACS, [load_profile(p) for p in PROFILES],
                               network_name="hand", time_steps=4)


@pytest.fixture(scope="module")
def report(built):
    return built.to_dict()


def test_report_keys_and_values(report):
    assert report["format"] == "sakd-energy-report" and report["network"] == "hand"
    assert (report["time_steps"], report["samples"]) == (4, 2)
    assert list(report["profiles"]) == list(PROFILES)
    # rows: each population right after the projection into it
    assert [(r["layer"], r["kind"]) for r in report["layers"]] == [
        ("enc", "projection"), ("pop1", "population"), ("fc", "projection"), ("out", "population")]
    rows = {r["layer"]: r for r in report["layers"]}
    assert rows["pop1"]["neurons"] == 10 and rows["pop1"]["spikes"] == 5.0
    assert rows["pop1"]["firing_rate"] == pytest.approx(5 / 40)
    assert rows["fc"]["synops"] == 15.0 and rows["enc"]["graded_macs"] == 120.0
    assert rows["fc"]["energy_pj"]["loihi"] == pytest.approx(15 * 23.6)
    assert rows["enc"]["energy_pj"]["cmos45-fp32"] == pytest.approx(120 * 4.6)
    # projections matched to ANN layers by order and MAC count (dense FLOPs)
    assert (rows["enc"]["ann_layer"], rows["fc"]["ann_layer"]) == ("conv", "fc")
    assert rows["fc"]["ann_energy_pj"]["cmos45-fp32"] == pytest.approx(30 * 4.6)
    assert rows["enc"]["not_counted"] == {"loihi": ["graded_macs"], "cmos45-fp32": [],
                                          "cmos45-int8": [], "spinnaker2": ["graded_macs"]}
    assert rows["pop1"]["not_counted"]["cmos45-int8"] == [
        "active_updates", "inactive_updates", "spikes"]

    totals = report["totals"]
    assert totals["spikes"] == 5.0 and totals["synops"] == 15.0 and totals["graded_macs"] == 120.0
    assert totals["neuron_updates"] == 52
    assert totals["energy_pj"]["loihi"] == pytest.approx(4139.5)
    assert totals["energy_j"]["loihi"] == pytest.approx(4139.5e-12)
    assert totals["energy_pj"]["cmos45-int8"] == pytest.approx(15 * 0.03 + 120 * 0.23)
    assert totals["not_counted"]["loihi"] == {"graded_macs": 120.0}
    assert totals["not_counted"]["cmos45-fp32"] == {"active_updates": 37.0,
                                                    "inactive_updates": 15.0, "spikes": 5.0}

    ann = report["ann"]
    assert ann["macs"] == 126 and ann["macs_per_layer"] == {"conv": 96, "fc": 30}
    assert ann["energy_pj"]["cmos45-fp32"] == pytest.approx(126 * 4.6)
    # loihi and spinnaker2 have no per-MAC energy: their ANN baseline is priced with a CMOS
    # profile (by default the 8-bit one), and the report says so
    assert ann["priced_with"] == {"loihi": "cmos45-int8", "cmos45-fp32": "cmos45-fp32",
                                  "cmos45-int8": "cmos45-int8", "spinnaker2": "cmos45-int8"}
    assert any(n.startswith("loihi has no per-MAC energy") for n in report["notes"])
    ratios = report["ratios"]
    assert ratios["energy_snn_over_ann"]["cmos45-int8"] == pytest.approx(
        (15 * 0.03 + 120 * 0.23) / (126 * 0.23))
    assert ratios["energy_snn_over_ann"]["loihi"] == pytest.approx(4139.5 / (126 * 0.23))
    assert ratios["lower_bound"] == dict.fromkeys(PROFILES, True)
    assert ratios["ops_snn_over_ann_macs"] == pytest.approx(135 / 126)

    sops = report["sops_convention"]
    assert sops["sops"] == pytest.approx(15.0) and sops["graded_macs"] == 384.0
    assert sops["ours"] == {"synops": 15.0, "graded_macs": 120.0}
    assert sops["energy_pj"]["cmos45-int8"] == pytest.approx(15 * 0.03 + 384 * 0.23)

    encoding = report["encoding_layer"]
    assert encoding["projections"] == ["enc"] and encoding["graded_macs"] == 120.0
    assert encoding["included"] == {"loihi": False, "cmos45-fp32": True, "cmos45-int8": True,
                                    "spinnaker2": False}
    assert "Not included for loihi, spinnaker2" in encoding["note"]

    assert any("pre-silicon" in c for c in report["caveats"]["loihi"])
    assert any("2409.08290" in c for c in report["caveats"]["cmos45-int8"])
    assert "Davies" in report["profiles"]["loihi"]["source"]
    json.dumps(report)  # plain JSON, no numpy types


def test_report_json_round_trip(tmp_path, report):
    path = tmp_path / "out" / "energy.json"
    write_energy_report(report, path)
    assert json.loads(path.read_text()) == report
    assert [p.name for p in path.parent.iterdir()] == ["energy.json"]  # no temporary left


def test_report_without_ann_and_with_an_explicit_ann_profile():
    counts = hand_counts()
    no_ann = build_energy_report(counts, None, ["loihi"], network_name="n", time_steps=4)
    assert no_ann.ann is None and no_ann.ratios is None
    only_loihi = build_energy_report(counts, ANN_MACS, ["loihi"], network_name="n", time_steps=4)
    assert only_loihi.ann["priced_with"] == {"loihi": "cmos45-int8"}  # the default
    chosen = build_energy_report(counts, ANN_MACS, ["loihi"], network_name="n", time_steps=4,
                                 ann_profile="cmos45-fp32")
    assert chosen.ann["energy_pj"]["loihi"] == pytest.approx(126 * 4.6)
    with pytest.raises(ValueError, match="T=4"):
        build_energy_report(counts, ANN_MACS, ["loihi"], network_name="n", time_steps=5)
    with pytest.raises(ValueError, match="no per_mac"):
        build_energy_report(counts, ANN_MACS, ["loihi"], network_name="n", time_steps=4,
                            ann_profile="spinnaker2")


def test_table_renders_layers_totals_and_caveats(built):
    buffer = io.StringIO()
    render_energy(built, Console(file=buffer, width=80, color_system=None, soft_wrap=True))
    text = buffer.getvalue()
    assert "…" not in text  # no cell cut short
    rows = [line for line in text.splitlines() if line.startswith(("layer", "enc", "pop1", "fc", "out", "total"))]
    assert len(rows) >= 12 and max(map(len, rows)) <= 80  # the tables fit 80 columns
    for name in ("enc", "pop1", "fc", "out", "total", *PROFILES):
        assert name in text
    assert format_energy(4139.5) == "4.14 nJ" and "4.14 nJ" in text
    assert "pre-silicon" in text and "2409.08290" in text and "Davies" in text
    assert "encoding layer" in text and "SOPs convention" in text
    assert "priced with cmos45-int8" in text and "0 pJ*" in text


def test_png_is_written(tmp_path, built):
    path = tmp_path / "energy.png"
    plot_energy(built, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["energy.png"]


def test_interrupted_writes_leave_no_half_file(tmp_path, built, report, monkeypatch):
    from matplotlib.figure import Figure

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        plot_energy(built, tmp_path / "energy.png")
    assert list(tmp_path.iterdir()) == []

    path = tmp_path / "energy.json"
    write_energy_report({"old": 1}, path)

    def half_then_interrupt(self, data):
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_energy_report(report, path)
    assert [p.name for p in tmp_path.iterdir()] == ["energy.json"]
    assert json.loads(path.read_text()) == {"old": 1}  # the previous file, whole


# ---------------------------------------------------------------------------------------------
# the chip section (the mapping of `sakd map`) and the ANN priced like for like


def small_network():
    """graded x (2, 8, 8) -conv-> c (4, 8, 8) -dense-> out (5,) readout, random even weights."""
    from sakd.hardware.ir import Input, Network, Population, Projection
    from sakd.hardware.neurons import CubaLif
    from sakd.hardware.target import LOIHI2

    rng = np.random.default_rng(0)
    c = Population("c", (4, 8, 8), CubaLif(du=4095, dv=2048, vth=40))
    out = Population("out", (5,), CubaLif.readout(LOIHI2), role="readout")
    return Network(Input("x", (2, 8, 8), "graded", bits=8, scale=4.0), (c, out), (
        Projection("x_c", "x", "c", "conv2d", rng.integers(-20, 60, (4, 2, 3, 3)) * 2,
                   padding=(1, 1)),
        Projection("c_out", "c", "out", "dense", rng.integers(-30, 60, (5, 256)) * 2)),
        time_steps=4)


@pytest.fixture(scope="module")
def mapped_report():
    from sakd.hardware.simulator import simulate

    net = small_network()
    x = np.random.default_rng(1).normal(size=(3, 2, 8, 8)) * 30
    counts = simulate(net, net.input.encode(x), time_steps=4).counts
    macs = {"x_c": 4 * 64 * 18, "c_out": 5 * 256}
    return net, counts, build_energy_report(counts, macs, ["loihi", "cmos45-int8"],
                                            network_name="small", time_steps=4, network=net)


def test_the_chip_section_is_the_mapping_of_sakd_map(mapped_report):
    from sakd.app.map import estimate_on_chip

    net, counts, report = mapped_report
    est = estimate_on_chip(net, counts, system="auto")
    chip = report.chip
    assert (chip["chip"], chip["system"]) == ("loihi2", "loihi2-chip")
    assert (chip["cores"], chip["chips"]) == (est.mapping.cores_used, est.mapping.chips_used)
    assert set(chip["binding"]) == {"c", "out"}
    t, e = chip["time"], chip["energy"]
    assert t["step_ns"] == pytest.approx(est.time.step_ns) and t["bottleneck"]
    assert t["latency_s"] == pytest.approx((4 + net.latency) * t["step_ns"] * 1e-9)
    assert t["throughput_pipelined_per_s"] == pytest.approx(1 / (4 * t["step_ns"] * 1e-9))
    # dynamic = operations + routed message-hops; static = power x chips x run time
    assert e["dynamic_pj"] == pytest.approx(e["operations_pj"] + e["routing_pj"])
    assert e["operations_pj"] == pytest.approx(report.totals["energy_pj"]["loihi"])
    assert e["static_pj"] == pytest.approx(e["static_power_w"] * chip["chips"]
                                           * e["run_time_s"] * 1e12)
    assert e["run_time_s"] == pytest.approx(4 * t["step_ns"] * 1e-9)
    json.dumps(report.to_dict())


def test_the_ann_is_priced_like_for_like(mapped_report):
    from sakd.hardware.energy import estimate_ann_energy_with_memory

    net, counts, report = mapped_report
    like = report.like_for_like
    ann = estimate_ann_energy_with_memory(net)
    rows = {r["key"]: r for r in like["ratios"]}
    dynamic = report.chip["energy"]["dynamic_pj"]
    assert like["headline"]["ratio_ann_no_reuse"] == pytest.approx(dynamic / ann.total_no_reuse_pj)
    assert like["headline"]["ratio_ann_full_reuse"] == pytest.approx(
        dynamic / ann.total_full_reuse_pj)
    assert ann.total_no_reuse_pj > ann.arithmetic_pj  # memory access is priced
    # the SNN side lacks the graded MACs Loihi's profile cannot price: a lower bound, said so
    assert like["headline"]["lower_bound"] and rows["chip_dynamic/ann_memory_no_reuse"]["lower_bound"]
    # arithmetic-only figures kept, each labelled
    old = rows["chip_operations/ann_arithmetic"]
    assert not old["like_for_like"] and "NOT like for like" in old["label"]
    assert old["ratio"] == pytest.approx(report.totals["energy_pj"]["loihi"] / ann.arithmetic_pj)
    arith = rows["cmos_arithmetic/ann_arithmetic"]
    assert arith["like_for_like"] and "arithmetic only" in arith["label"]
    assert like["ann"]["teacher_macs"] == report.ann["macs"]
    # the existing fields are untouched by the new sections
    plain = build_energy_report(counts, {"x_c": 4 * 64 * 18, "c_out": 5 * 256},
                                ["loihi", "cmos45-int8"], network_name="small", time_steps=4)
    assert plain.ratios == report.ratios and plain.totals == report.totals
    assert plain.chip is None and plain.like_for_like is None


def test_a_network_that_does_not_map_keeps_the_comparison(mapped_report):
    net, counts, _ = mapped_report
    report = build_energy_report(counts, None, ["loihi"], network_name="small", time_steps=4,
                                 network=net, chip="loihi")
    assert "graded" in report.chip["error"]
    assert any(n.startswith("Not mapped onto a chip") for n in report.notes)
    like = report.like_for_like
    assert "no mapping" in like["headline"]["label"]
    assert like["snn"]["chip_routing_pj"] is None
    buffer = io.StringIO()
    render_energy(report, Console(file=buffer, width=80, color_system=None, soft_wrap=True))
    assert "not mapped" in buffer.getvalue()


def test_the_chip_section_renders_in_80_columns(mapped_report):
    _, _, report = mapped_report
    buffer = io.StringIO()
    render_energy(report, Console(file=buffer, width=80, color_system=None, soft_wrap=True))
    text = buffer.getvalue().split("Notes:")[0]
    assert "on the chip" in text and "headline SNN/ANN (like for like)" in text
    assert "time per step" in text and "static" in text and "throughput" in text
    assert "…" not in text
    table = [line for line in text.splitlines() if "  " in line.strip()]
    assert max(map(len, table)) <= 80


def test_the_pipeline_summary_prints_the_same_chip_section(mapped_report):
    """The pipeline's closing summary: cores, chips, latency, throughput, dynamic and static
    energy and the like-for-like headline, from the energy report's chip section, in 80
    columns."""
    from sakd.app.pipeline import PipelineResult
    from sakd.render.map import chip_lines
    from sakd.render.pipeline import render_summary

    _, _, report = mapped_report
    like = report.like_for_like
    summary = PipelineResult(
        "configs/digits.yaml", "digits", "small", 4, {"acc": 90.0}, {"acc": 88.0},
        {}, on_chip={"accuracy": 87.5, "samples": 3, "prediction_agreement": 99.0},
        energy={"totals": report.totals, "ann": report.ann, "ratios": report.ratios,
                "chip": report.chip, "like_for_like": {"headline": like["headline"]}})
    buffer = io.StringIO()
    render_summary(summary, Console(file=buffer, width=80, color_system=None, soft_wrap=True))
    text = buffer.getvalue()
    assert max(map(len, text.splitlines())) <= 80
    flat = " ".join(text.split())
    for line in chip_lines(report.chip):
        assert " ".join(line.split()) in flat
    assert "headline SNN/ANN (like for like)" in text
    assert f"{report.chip['cores']:,} core(s) on {report.chip['chips']}" in flat
