"""``sakd simulate`` on files of other tools with the user's own inputs: NIR files whose IF nodes
fix dt (r = 1, as sinabs writes them; r = 1e4 at dt = 1e-4), a NIR file that does not (an error
naming --dt, then --dt), netx files with --inputs, --record, --traces and netx's run options,
checked against the simulator called directly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nir
import numpy as np
import pytest
from typer.testing import CliRunner

from sakd.cli import app
from sakd.formats.netx import read_netx
from sakd.formats.nir import read_nir
from sakd.hardware.simulator import simulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netx_random import random_netx_file

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, terminal_width=80)


def _if_file(path: Path, r: float | None) -> Path:
    """input(2) -> Affine -> IF (r) -> output; r None: a LIF node with tau, r = 1 and no dt."""
    w = np.array([[0.6, -0.2], [0.3, 0.9]], np.float32)
    if r is None:
        neuron = nir.LIF(tau=np.full(2, 0.02, np.float32), r=np.ones(2, np.float32),
                         v_leak=np.zeros(2, np.float32), v_threshold=np.ones(2, np.float32))
    else:
        neuron = nir.IF(r=np.full(2, r, np.float32), v_threshold=np.ones(2, np.float32))
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])),
                                "fc": nir.Affine(weight=w, bias=np.zeros(2, np.float32)),
                                "neuron": neuron, "output": nir.Output(output_type=np.array([2]))},
                         edges=[("input", "fc"), ("fc", "neuron"), ("neuron", "output")],
                         type_check=False)
    nir.write(path, graph)
    return path


@pytest.fixture
def spikes(tmp_path: Path) -> Path:
    x = (np.random.default_rng(0).random((5, 6, 2)) < 0.6).astype(np.int64)  # (batch, steps, 2)
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "x.npy"


@pytest.mark.parametrize("r, dt", [(1.0, 1.0), (1e4, 1e-4)])
def test_a_nir_file_simulates_at_the_dt_its_if_nodes_fix(tmp_path, spikes, r, dt):
    path = _if_file(tmp_path / "if.nir", r)
    out = tmp_path / "report.json"
    result = invoke("simulate", path, "--inputs", spikes, "--time-steps", 6, "-o", out,
                    "--traces", tmp_path / "t.npz")
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert any(f"dt = {dt:g}" in a or f"dt = {dt}" in a for a in report["assumptions"]), report["assumptions"]
    # the traces are those of the network read at that dt, run on the same spikes
    net = read_nir(path, dt=dt)
    x = np.load(spikes)
    want = simulate(net, np.swapaxes(x, 0, 1), time_steps=6, sequence=True,
                    record=[p.name for p in net.populations])
    with np.load(tmp_path / "t.npz") as traces:
        for p in net.populations:
            np.testing.assert_array_equal(traces[f"{p.name}/v"], np.swapaxes(want.traces[p.name]["v"], 0, 1))


def test_a_nir_file_that_leaves_dt_open_names_the_option(tmp_path, spikes):
    path = _if_file(tmp_path / "lif.nir", None)
    result = invoke("simulate", path, "--inputs", spikes, "--time-steps", 6, "-o", tmp_path / "r.json")
    assert result.exit_code == 2 and "--dt" in result.output, result.output
    assert not (tmp_path / "r.json").exists()
    result = invoke("simulate", path, "--inputs", spikes, "--time-steps", 6, "--dt", "1e-3",
                    "-o", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert any("1e-03" in a or "0.001" in a for a in json.loads((tmp_path / "r.json").read_text())["assumptions"])


@pytest.mark.parametrize("family", ["cuba_input", "cuba_bias_input", "sdnn", "recurrent"])
def test_a_netx_file_with_own_inputs_records_traces_like_the_simulator(tmp_path, family):
    case = random_netx_file(tmp_path / "n.net", seed=7, family=family)
    mode = case.options.get("input_mode")
    x = case.inputs  # static (batch, *input_shape)
    np.save(tmp_path / "x.npy", x)
    args = ["simulate", tmp_path / "n.net", "--inputs", tmp_path / "x.npy", "--time-steps",
            case.steps, "--record", "all", "--traces", tmp_path / "t.npz", "-o", tmp_path / "r.json",
            "--reset-interval", 3, "--reset-offset", 1]
    if mode:
        args += ["--input-mode", mode]
    if case.options.get("input_message_bits"):
        args += ["--input-message-bits", case.options["input_message_bits"]]
    if "spike_exp" in case.options:
        args += ["--spike-exp", case.options["spike_exp"]]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["run"]["reset_interval"] == 3 and report["run"]["reset_offset"] == 1
    assert report["on_chip_accuracy"] is None  # no labels given
    net = read_netx(tmp_path / "n.net", **case.options)
    want = simulate(net, x, time_steps=case.steps, reset_interval=3, reset_offset=1,
                    record=[p.name for p in net.populations])
    with np.load(tmp_path / "t.npz") as traces:
        names = {k.split("/")[0] for k in traces.files if "/" in k}
        assert names == {p.name for p in net.populations}
        for p in net.populations:
            for var, arr in want.traces[p.name].items():
                got = traces[f"{p.name}/{var}"]
                assert got.shape == (x.shape[0], case.steps, *p.shape)
                np.testing.assert_array_equal(got, np.swapaxes(arr, 0, 1))


def test_bad_inputs_are_refused_before_any_work(tmp_path):
    case = random_netx_file(tmp_path / "n.net", seed=1, family="cuba")
    np.save(tmp_path / "x.npy", np.zeros((2, 99), np.int64))
    result = invoke("simulate", tmp_path / "n.net", "--inputs", tmp_path / "x.npy",
                    "-o", tmp_path / "r.json")
    assert result.exit_code == 2 and "shape" in result.output, result.output
    np.save(tmp_path / "x.npy", case.inputs)
    result = invoke("simulate", tmp_path / "n.net", "--inputs", tmp_path / "x.npy",
                    "--reset-interval", 0, "-o", tmp_path / "r.json")
    assert result.exit_code == 2 and "reset" in result.output.lower(), result.output
    assert not (tmp_path / "r.json").exists()
