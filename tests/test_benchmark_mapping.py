"""benchmarks/mapping.py's validation rows: the measured figures are read from a notebook's
stored outputs as printed, the transcribed runs are the ones stated, ratios are estimate /
measured (none for a non-positive measurement), the blob check refuses another file, and every
row names the command that produced it."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_mapping", ROOT / "benchmarks" / "mapping.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_mapping"] = module
    spec.loader.exec_module(module)
    return module


def notebook(lines: dict[int, list[str]]) -> dict:
    """A notebook whose cell i printed lines[i] (stream outputs, as Jupyter stores them)."""
    cells = []
    for i in range(max(lines) + 1):
        outs = [{"output_type": "stream", "name": "stdout",
                 "text": [line + "\n" for line in lines[i]]}] if i in lines else []
        cells.append({"cell_type": "code", "execution_count": i + 1, "source": [], "outputs": outs})
    return {"cells": cells}


PRINTED = {3: ["Running on oheogulch"],
           8: ["| AxonIn |NeuronGr| ...", "| Total                       |      74|"],
           9: ["Throughput : 408.91 fps."],
           13: ["Total Power   : 0.679234 W", "Dynamic Power : 0.447156 W",
                "Static Power  : 0.232078 W", "VDD Power     : 0.252728 W"],
           14: ["\x1b[1;30mTotal Energy per inference   : 1.661103 mJ",
                "Dynamic Energy per inference : 1.093544 mJ"]}


def test_the_printed_figures_are_read_as_printed(bench):
    got = bench.parse_benchmark_outputs(notebook(PRINTED))
    assert {k: v["value"] for k, v in got.items()} == {
        "board": "oheogulch", "cores": 74, "frames_per_s": 408.91, "total_power_w": 0.679234,
        "dynamic_power_w": 0.447156, "static_power_w": 0.232078,
        "energy_per_inference_mj": 1.661103, "dynamic_energy_per_inference_mj": 1.093544}
    assert got["frames_per_s"]["cell"] == 9 and got["frames_per_s"]["unit"] == "frames/s"
    assert got["energy_per_inference_mj"]["line"].startswith("Total Energy")  # colour codes gone
    # the transcribed headline run of the LIF benchmark is exactly these printed figures
    head = bench.headline("pilotnet-lif")
    assert all(getattr(head, k) == v["value"] for k, v in got.items())


def test_a_figure_printed_twice_is_refused(bench):
    with pytest.raises(ValueError, match="frames_per_s printed twice"):
        bench.parse_benchmark_outputs(notebook({**PRINTED, 10: ["Throughput : 1.0 fps."]}))


def test_the_transcribed_runs(bench):
    lif, sdnn = bench.measured_runs("pilotnet-lif"), bench.measured_runs("pilotnet-sdnn")
    assert len(lif) == 6 and len(sdnn) == 6
    assert {m.cores for m in lif} == {74} and {m.cores for m in sdnn} == {61}
    assert [m.date for m in lif] == sorted(m.date for m in lif)
    assert [m.date for m in sdnn] == sorted(m.date for m in sdnn)
    assert bench.headline("pilotnet-lif").commit.startswith("b9e3691")
    assert bench.headline("pilotnet-sdnn").frames_per_s == 16.87
    # time per step: LIF 16 steps a frame, SDNN one
    assert bench.headline("pilotnet-lif").step_us == pytest.approx(1e6 / 408.91 / 16)
    assert bench.headline("pilotnet-sdnn").step_us == pytest.approx(1e6 / 16.87)
    # the printed energy per inference is the printed power over the printed rate
    for m in lif + sdnn:
        assert m.energy_per_inference_mj == pytest.approx(m.total_power_w / m.frames_per_s * 1e3,
                                                          rel=2e-3)


def test_ratios(bench):
    assert bench.ratio(2.0, 4.0) == 0.5
    assert bench.ratio(1.0, -0.006) is None and bench.ratio(1.0, 0.0) is None
    assert bench.ratio(None, 1.0) is None
    rows = bench.validation_rows([("x", 3.0, 1.5, 6.0), ("y", 1.0, None, -1.0)], [],
                                 "pilotnet-lif")["rows"]
    assert rows[0]["estimate_over_measured"] == 0.5
    assert rows[0]["estimate_low_over_measured"] == 0.25
    assert rows[1]["estimate_over_measured"] is None


def test_the_blob_check_refuses_another_file(bench, tmp_path):
    other = tmp_path / "network.net"
    other.write_bytes(b"not the measured file")
    expected = subprocess.run(["git", "hash-object", str(other)], capture_output=True,
                              text=True).stdout.strip()
    assert bench.git_blob_id(other) == expected  # the id git gives the file
    with pytest.raises(SystemExit, match="not the measured pilotnet-sdnn file"):
        bench.check_measured_file(other, "pilotnet-sdnn")


def test_the_lif_file_in_the_lava_environment_is_the_measured_one(bench):
    path = bench.find_pilotnet()
    if path is None:
        pytest.skip("the Lava environment is not installed")
    assert bench.check_measured_file(path, "pilotnet-lif") == bench.PILOTNET_BLOB


def test_every_row_names_its_command(bench, tmp_path):
    earlier = ("benchmarks/mapping.py --only pilotnet,demo,fashion --samples 16"
               + bench.JOIN + "benchmarks/mapping.py --only fashion --samples 4 --keep")
    rows = [{"network": "fashion"}, {"network": "pilotnet-lif"}, {"network": "demo"}]
    bench.attribute_commands(rows, earlier)
    assert rows[0]["command"].endswith("--samples 4 --keep")  # the later run of fashion
    assert rows[1]["command"] == rows[2]["command"] == earlier.split(bench.JOIN)[0]
    rows.append({"network": "pilotnet-sdnn", "command": "benchmarks/mapping.py --only "
                 "pilotnet-sdnn --keep"})
    out = tmp_path / "m.json"
    bench.save(argparse.Namespace(out=out), rows)
    data = json.loads(out.read_text())
    assert [r["network"] for r in data["rows"]] == ["demo", "fashion", "pilotnet-lif",
                                                    "pilotnet-sdnn"]
    assert {c["command"]: c["networks"] for c in data["commands"]} == {
        earlier.split(bench.JOIN)[0]: ["demo", "pilotnet-lif"],
        earlier.split(bench.JOIN)[1]: ["fashion"],
        "benchmarks/mapping.py --only pilotnet-sdnn --keep": ["pilotnet-sdnn"]}
    assert data["command"].count(bench.JOIN) == 2
