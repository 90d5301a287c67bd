"""Each deployment command run in-process on a tiny trained student (``trained_student``: a
test_convnet on digits, T = 2): export, inspect, simulate, energy, verify, pipeline, formats,
models, --version. The outputs are checked against what the jobs compute, and every table must
fit 80 columns without cutting a cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sakd import __version__
from sakd.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False, terminal_width=80)


def fits_80(text: str) -> None:
    assert "…" not in text, text  # rich cuts a cell with an ellipsis
    tables = [line for line in text.splitlines() if "  " in line.strip()]
    assert max((len(line) for line in tables), default=0) <= 80, max(tables, key=len)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_student) -> Path:
    out = tmp_path_factory.mktemp("cli") / "export"
    result = invoke("export", str(trained_student), "-o", str(out), "--calibrate", "40")
    assert result.exit_code == 0, result.output
    return out


def test_export_writes_every_format_and_the_report(exported):
    report = json.loads((exported / "export_report.json").read_text())
    assert {"ir", "nir", "netx", "onnx"} <= set(report["files"])
    assert all(Path(p).parent == exported for p in report["files"].values())
    assert report["time_steps"] == 2 and report["target"] == "loihi2"
    assert report["calibration"]["samples"] == 40
    from sakd.hardware.netfile import read_network

    network = read_network(exported / "network.h5")
    assert report["network_digest"] == network.digest()
    # nothing of a staging folder is left beside the export
    assert [p.name for p in exported.parent.iterdir()] == ["export"]


def test_export_output_fits_80_columns(tmp_path, trained_student):
    result = invoke("export", str(trained_student), "-o", str(tmp_path / "e"), "--formats", "ir")
    assert result.exit_code == 0, result.output
    assert "wrote ir" in result.output and "export to loihi2" in result.output
    fits_80(result.output)
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["export_report.json", "network.h5"]


def test_reexport_replaces_the_folder_whole(tmp_path, trained_student, exported):
    import shutil

    folder = tmp_path / "again"
    shutil.copytree(exported, folder)
    (folder / "simulate_report.json").write_text("{}")  # a report of the older export
    result = invoke("export", str(trained_student), "-o", str(folder), "--formats", "ir")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["export_report.json", "network.h5"]


@pytest.mark.parametrize("name", ["network.h5", "network.nir", "network.netx.h5", "student.onnx"])
def test_inspect_every_format(exported, name):
    result = invoke("inspect", str(exported / name))
    assert result.exit_code == 0, result.output
    fits_80(result.output.split("metadata:")[0])
    assert str(exported / name) in " ".join(result.output.split())


def test_inspect_exit_status_rule(tmp_path):
    import nir
    import numpy as np

    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}),
                                "thr": nir.Threshold(threshold=np.ones(2)),
                                "output": nir.Output(output_type={"output": np.array([2])})},
                         edges=[("input", "thr"), ("thr", "output")])
    nir.write(tmp_path / "t.nir", graph)
    result = invoke("inspect", str(tmp_path / "t.nir"))
    assert result.exit_code == 1 and "not representable" in result.output  # readable, no IR form
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF garbage" * 10)
    result = invoke("inspect", str(tmp_path / "bad.h5"))
    assert result.exit_code == 2 and result.output.startswith("error:")  # damaged: an error


def test_simulate_reports_what_the_simulator_computes(exported):
    from sakd.app.common import load_samples
    from sakd.hardware.netfile import read_network
    from sakd.hardware.simulator import simulate

    result = invoke("simulate", str(exported), "--limit", "50")
    assert result.exit_code == 0, result.output
    fits_80(result.output)
    report = json.loads((exported / "simulate_report.json").read_text())
    network = read_network(exported / "network.h5")
    samples = load_samples("digits", "test", 50)
    sim = simulate(network, network.input.encode(samples.x.numpy()))
    expected = 100.0 * float((sim.predictions == samples.y.numpy()).mean())
    assert report["samples"] == 50 and report["on_chip_accuracy"] == pytest.approx(expected)
    assert f"on-chip accuracy {expected:.2f} %" in result.output
    assert report["float_agreement"]["prediction_agreement"] >= 90.0
    assert report["network_digest"] == network.digest()


def test_simulate_a_nir_file_and_a_netx_file(exported, tmp_path):
    for name in ("network.nir", "network.netx.h5"):
        out = tmp_path / f"{name}.json"
        result = invoke("simulate", str(exported / name), "--limit", "20", "-o", str(out))
        assert result.exit_code == 0, result.output
        assert json.loads(out.read_text())["samples"] == 20


def test_energy_writes_the_report_and_the_chart(exported, tmp_path):
    out = tmp_path / "energy"
    result = invoke("energy", str(exported), "--limit", "20", "--profile", "loihi,cmos45-int8",
                    "-o", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads((out / "energy_report.json").read_text())
    assert list(report["profiles"]) == ["loihi", "cmos45-int8"] and report["samples"] == 20
    assert (out / "energy.png").read_bytes()[:4] == b"\x89PNG"
    assert report["ann"]["macs"] > 0 and "SNN against the ANN baseline" in result.output
    fits_80(result.output.split("Notes:")[0])


def test_verify_onnx(exported):
    result = invoke("verify", str(exported), "--onnx", "--samples", "16")
    assert result.exit_code == 0, result.output
    report = json.loads((exported / "verify_report.json").read_text())
    assert report["ok"] and {c["model"] for c in report["onnx"]} == {"student", "teacher"}
    assert "verified" in result.output


def test_verify_needs_a_reference(exported):
    result = invoke("verify", str(exported))
    assert result.exit_code == 2 and "choose at least one reference" in result.output


def test_formats_prints_the_support_matrix():
    result = invoke("formats")
    assert result.exit_code == 0, result.output
    for name in ("ir", "nir", "netx", "onnx", "cuba_lif"):
        assert name in result.output
    fits_80(result.output)


def test_models_and_version():
    result = invoke("models")
    assert result.exit_code == 0 and "resnet18" in result.output and "test_convnet " not in result.output
    assert invoke("--version").output.strip() == f"sakd {__version__}"


@pytest.mark.slow
def test_pipeline_end_to_end(tmp_path, tiny_overrides):
    out = tmp_path / "pipe"
    sets = [item for o in tiny_overrides for item in ("--set", o)]
    result = invoke("pipeline", *sets, "-o", str(out), "--device", "cpu", "--no-progress")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["on_chip"]["samples"] > 0 and "ir" in summary["export"]["files"]
    for name in ("energy_report.json", "energy.png", "simulate_report.json", "export_report.json"):
        assert (out / "export" / name).exists(), name
    assert "sakd pipeline:" in result.output
