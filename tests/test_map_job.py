"""``sakd map`` (sakd.app.map, sakd.render.map and the CLI command) on a tiny exported student:
the report against what the mapping package computes, the picture, 80 columns, a network on
several chips, no-activity mode, and the error cases (each one ``error:`` line, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sakd.cli import app
from sakd.hardware.mapping.resources import RESOURCES

runner = CliRunner()
CHIPS = Path(__file__).resolve().parents[1] / "hardware" / "mapping" / "chips"


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False, terminal_width=80)


def fits_80(text: str) -> None:
    assert "…" not in text, text  # rich cuts a cell with an ellipsis
    tables = [line for line in text.splitlines() if "  " in line.strip()]
    assert tables and max(len(line) for line in tables) <= 80, max(tables, key=len)


def one_error(result, expected: str) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2, (result.exit_code, result.output[-2000:])
    assert "Traceback" not in result.output, result.output
    assert len(errors) == 1, result.output
    assert expected in " ".join(errors[0].split()), errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_student) -> Path:
    from sakd.app.export import ExportOptions, export_checkpoint

    out = tmp_path_factory.mktemp("map") / "export"
    export_checkpoint(ExportOptions(trained_student, out, ("ir",)))
    return out


@pytest.fixture(scope="module")
def mapped(exported):
    result = invoke("map", str(exported), "--limit", "16")
    assert result.exit_code == 0, result.output
    return result, json.loads((exported / "map_report.json").read_text())


@pytest.fixture(scope="module")
def small_chip(tmp_path_factory) -> tuple[Path, Path]:
    """A user's chip file (Loihi 2's figures, 4 cores per chip, 64 neurons per core) and a
    system file of 4 such chips: the tiny student needs several of them."""
    folder = tmp_path_factory.mktemp("chips")
    data = json.loads((CHIPS / "loihi2.json").read_text())
    data["name"] = "small-loihi2"
    for key, value in {"cores_per_chip": 4, "mesh_tiles_x": 1, "mesh_tiles_y": 1,
                       "max_neurons_per_core": 64}.items():
        data["figures"][key] = {"value": value, "unit": data["figures"][key]["unit"],
                                "source": "test", "certainty": "assumed"}
    chip = folder / "small-loihi2.json"
    chip.write_text(json.dumps(data))
    one = {"source": "test", "certainty": "assumed", "unit": "chips"}
    system = folder / "four-small.json"
    system.write_text(json.dumps({
        "name": "four-small", "description": "4 small chips", "chip": "small-loihi2",
        "figures": {"chips": {"value": 4, **one}, "chips_x": {"value": 2, **one},
                    "chips_y": {"value": 2, **one}}}))
    return chip, system


def test_map_writes_the_report_and_the_picture(exported, mapped):
    result, report = mapped
    assert (exported / "map_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (exported / "map_report.png").stat().st_size > 2000
    assert f"report: {exported / 'map_report.json'}" in " ".join(result.output.split())
    from sakd.hardware.netfile import read_network

    network = read_network(exported / "network.h5")
    assert report["format"] == "sakd-map-report" and report["chip"] == "loihi2"
    assert report["network"]["digest"] == network.digest()
    assert report["network"]["latency_steps"] == network.latency
    assert report["activity"] == {**report["activity"], "source": "simulation", "samples": 16,
                                  "data": "digits", "split": "test"}
    fit = report["fit"]
    assert fit["cores"] == len(report["cores"]) >= 1 and fit["chips"] == 1
    for core in report["cores"]:  # every core: the utilization of every resource
        assert set(core["utilization"]) == set(RESOURCES)
        assert all(u is None or 0 <= u <= 1 for u in core["utilization"].values())
        assert core["binding_resource"] in RESOURCES
    assert set(report["populations"]) == {p.name for p in network.populations}
    assert all(p["binding_resource"] in RESOURCES for p in report["populations"].values())
    assert set(report["projections"]) == {p.name for p in network.projections}
    assert all(p["messages_per_sample"] >= 0 for p in report["projections"].values())


def test_the_report_holds_what_the_mapping_package_computes(exported, mapped):
    """The same samples through the API give the same cores, step time and energy."""
    from sakd.app.map import estimate_on_chip
    from sakd.app.simulate import run_split
    from sakd.hardware.netfile import read_network

    _, report = mapped
    network = read_network(exported / "network.h5")
    run = run_split(network, "digits", limit=16)
    est = estimate_on_chip(network, run.result.counts)
    assert report["fit"]["cores"] == est.mapping.cores_used
    t, e = report["time"], report["energy"]
    assert t["step_ns"] == pytest.approx(est.time.step_ns)
    assert t["bottleneck_core"] == est.time.bottleneck_core and t["bottleneck"]
    steps = report["network"]["time_steps"]
    assert t["latency_s"] == pytest.approx((steps + network.latency) * t["step_ns"] * 1e-9)
    assert t["throughput_pipelined_per_s"] == pytest.approx(1 / (steps * t["step_ns"] * 1e-9))
    assert t["throughput_unpipelined_per_s"] == pytest.approx(1 / t["latency_s"])
    assert e["dynamic_pj"] == pytest.approx(est.energy.dynamic_pj)
    assert e["dynamic_pj"] == pytest.approx(e["operations_pj"] + e["routing_pj"])
    assert e["static_pj"] == pytest.approx(e["static_power_w"] * report["fit"]["chips"]
                                           * steps * t["step_ns"] * 1e-9 * 1e12)
    assert e["total_pj"] == pytest.approx(e["dynamic_pj"] + e["static_pj"])

    like = report["like_for_like"]
    rows = {r["key"]: r for r in like["ratios"]}
    head = rows["chip_dynamic/ann_memory_no_reuse"]
    assert head["headline"] and head["like_for_like"]
    assert head["snn_pj"] == pytest.approx(e["dynamic_pj"])
    assert head["ratio"] == pytest.approx(e["dynamic_pj"] / like["ann"]["total_no_reuse_pj"])
    assert like["headline"]["ratio_ann_full_reuse"] == pytest.approx(
        e["dynamic_pj"] / like["ann"]["total_full_reuse_pj"])
    # the arithmetic-only convention is kept, labelled as not like for like
    old = rows["chip_operations/ann_arithmetic"]
    assert not old["like_for_like"] and "NOT like for like" in old["label"]
    assert old["ratio"] == pytest.approx(e["operations_pj"] / like["ann"]["arithmetic_pj"])
    assert old["ratio"] > head["ratio"]  # memory access makes the ANN dearer


def test_map_output_fits_80_columns(mapped):
    result, report = mapped
    text = result.output.split("Notes:")[0]
    fits_80(text)
    for name in report["populations"]:
        assert name in text
    assert "headline SNN/ANN (like for like)" in text and "time per step" in text
    assert "dynamic" in text and "static" in text and "throughput" in text


def test_map_without_activity(exported, tmp_path):
    out = tmp_path / "structural.json"
    result = invoke("map", str(exported), "--limit", "0", "-o", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["activity"]["source"] == "none" and report["fit"]["traffic"] == "synapses"
    assert report["time"] is None and report["energy"] is None
    assert report["like_for_like"] is None
    assert (tmp_path / "structural.png").exists()
    assert "none simulated" in result.output


def test_a_network_larger_than_one_chip_maps_onto_several(exported, small_chip, tmp_path):
    chip, system = small_chip
    out = tmp_path / "multi.json"
    result = invoke("map", str(exported), "--target", str(chip), "--system", str(system),
                    "--limit", "8", "-o", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["chip"] == "small-loihi2" and report["system"] == "four-small"
    assert report["fit"]["chips"] > 1 and report["fit"]["cores"] > 4
    assert len({c["chip"] for c in report["cores"]}) == report["fit"]["chips"]
    assert any(p["interchip_message_hops_per_sample"] > 0
               for p in report["projections"].values())
    e = report["energy"]  # static power counts every chip in use
    assert e["chips"] == report["fit"]["chips"]
    assert e["static_pj"] == pytest.approx(e["static_power_w"] * e["chips"] * e["run_time_s"] * 1e12)
    assert (tmp_path / "multi.png").read_bytes()[:4] == b"\x89PNG"
    fits_80(result.output.split("Notes:")[0])

    auto = tmp_path / "auto.json"  # --system auto on a built-in chip keeps one chip when it fits
    assert invoke("map", str(exported), "--system", "auto", "--limit", "0",
                  "-o", str(auto)).exit_code == 0
    assert json.loads(auto.read_text())["system"] == "loihi2-chip"


def test_a_network_that_does_not_fit(exported, small_chip, tmp_path):
    chip, _ = small_chip
    one_error(invoke("map", str(exported), "--target", str(chip), "--limit", "0",
                     "-o", str(tmp_path / "r.json")), "cores")
    # Loihi 1 carries binary spikes only: the 8-bit graded input cannot go onto it
    one_error(invoke("map", str(exported), "--target", "loihi", "--limit", "0",
                     "-o", str(tmp_path / "r.json")), "graded")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["--system", "nope"], "unknown system 'nope'"),
    (["--system", "hala-point", "--target", "loihi"], "built of loihi2 chips"),
    (["--target", "loihi3"], "unknown chip profile 'loihi3'"),
    (["--limit", "-5"], "--limit -5"),
    (["--data", "nope"], "unknown data set 'nope'"),
])
def test_bad_options_are_one_error(exported, tmp_path, args, expected):
    out = tmp_path / "r.json"
    one_error(invoke("map", str(exported), *args, "-o", str(out)), expected)
    assert list(tmp_path.iterdir()) == []


def test_bad_paths_are_one_error(exported, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    one_error(invoke("map", str(tmp_path / "missing"), "--limit", "0"), "no network file")
    one_error(invoke("map", str(exported), "-o", str(tmp_path)), "is a folder")
    one_error(invoke("map", str(exported), "-o", str(tmp_path / "file.txt" / "r.json")),
              "is a file")
    one_error(invoke("map", str(tmp_path), "--limit", "0"), "holds no network.h5")


def test_energy_reports_the_same_mapping(exported, mapped, tmp_path):
    _, report = mapped
    out = tmp_path / "energy"
    result = invoke("energy", str(exported), "--limit", "16", "-o", str(out))
    assert result.exit_code == 0, result.output
    energy = json.loads((out / "energy_report.json").read_text())
    chip = energy["chip"]
    assert (chip["cores"], chip["chips"], chip["system"]) == (
        report["fit"]["cores"], report["fit"]["chips"], report["system"])
    assert chip["time"]["step_ns"] == pytest.approx(report["time"]["step_ns"])
    assert chip["energy"]["dynamic_pj"] == pytest.approx(report["energy"]["dynamic_pj"])
    assert chip["energy"]["static_pj"] == pytest.approx(report["energy"]["static_pj"])
    assert energy["like_for_like"]["headline"] == report["like_for_like"]["headline"]
    # the existing fields stay
    assert energy["ratios"]["energy_snn_over_ann"]["loihi"] > 0
    text = result.output.split("Notes:")[0]
    assert "on the chip" in text and "headline SNN/ANN (like for like)" in text
    fits_80(text)
