"""Random netx files of every kind netx loads (tests/netx_random.py): read as netx builds them,
simulated exactly as the scalar reference (tests/hardware/reference_free.py) runs the network
read, written back by sakd to a file that reads back equal, and whose netx reading (without
sakd's metadata) simulates identically. The proof against lava-dl's netx itself is in
tests/lava/test_netx_files_vs_lava.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hardware"))
from netx_random import FAMILIES, random_netx_file
from reference_free import reference_free

from sakd.formats.netx import read_netx, write_netx
from sakd.hardware.simulator import SimulationOverflowError, simulate

SEEDS = range(3 * len(FAMILIES))


def run(net, case):
    return simulate(net, case.inputs, time_steps=case.steps, reset_interval=case.reset_interval,
                    reset_offset=case.reset_offset, record=[p.name for p in net.populations])


@pytest.mark.parametrize("seed", SEEDS)
def test_a_random_netx_file_reads_runs_and_round_trips(tmp_path, seed):
    case = random_netx_file(tmp_path / "n.net", seed)
    net = read_netx(tmp_path / "n.net", **case.options)
    assert net.schedule == "free" and net.limits == "lava"
    assert [p.name for p in net.populations] == sorted(
        (p.name for p in net.populations), key=lambda n: int(n[5:]))
    try:
        got = run(net, case)
    except SimulationOverflowError:
        pytest.skip("the random weights overflow Lava's int32 state")
    ref = reference_free(net, case.inputs, case.steps, case.reset_interval, case.reset_offset)
    for name, tr in ref["traces"].items():
        for key, arr in tr.items():
            np.testing.assert_array_equal(got.traces[name][key], arr, err_msg=f"{name}/{key}")
    # sakd writes it back: its own reading is the same network, netx's reading runs the same
    path = write_netx(net, tmp_path / "back.net")
    assert read_netx(path).equals(net)
    foreign = read_netx(path, trust_metadata=False, **case.options)
    again = run(foreign, case)
    for pa, pb in zip(net.populations, foreign.populations):
        for key in got.traces[pa.name]:
            np.testing.assert_array_equal(again.traces[pb.name][key], got.traces[pa.name][key])


def test_the_random_files_cover_every_kind(tmp_path):
    covers: set[str] = set()
    models: set[str] = set()
    for seed in range(60):
        case = random_netx_file(tmp_path / "n.net", seed)
        covers.update(c.split(" k")[0] for c in case.covers)
        models.update(p.neuron.model for p in read_netx(tmp_path / "n.net", **case.options).populations)
    assert models == {"cuba_lif", "delta", "sigma_delta", "sigma", "rf", "rf_iz"}
    for item in (*FAMILIES, "conv", "dense_rec", "1-D weight", "neuron-less dense",
                 "input neuron (a_in)", "input neuron (bias)", "no input layer", "reset_interval",
                 "delay scalar", "delay axonal", "delay input", "delay synapse", "delay clamp"):
        assert item in covers, item
