"""A user's own spikingjelly model, exported by ``sakd.app.own_model.export_module`` (the path of
``sakd export --model``), runs bit for bit the same in sakd's simulator and in Intel Lava.

The models are the user-style SNNs of ``tests/own_models.py`` with weights under which every
layer fires (1 %–90 % of its (neuron, step) pairs, checked): ``digits_csnn`` (multi-step
``nn.Sequential`` of spikingjelly layers: conv, BN, LIFNode, max pool (an OR population),
ParametricLIFNode with a learned, inexact tau, dense LIF, dense readout) and ``tutorial_csnn``
(IFNodes, forward repeating the image over T, a spike-count readout). The exported
``network.h5`` runs through ``sakd.hardware.lava_bridge.run_lava`` (Lava 0.10's bit-accurate CPU
models) on digits test samples; required: identical spikes, u and v of every population at every
one of the T + L steps, and an identical readout v (``sakd.app.verify.compare_runs``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import own_models  # tests/own_models.py (tests/ is on sys.path: tests/conftest.py's folder)
import pytest

from sakd.app.common import load_samples
from sakd.app.own_model import export_module
from sakd.app.verify import compare_runs
from sakd.hardware.lava_bridge import run_lava
from sakd.hardware.simulator import simulate

pytestmark = pytest.mark.lava

SAMPLES = 3
RATE_RANGE = (0.01, 0.90)


def check_against_lava(tmp_path: Path, model, **export_kw) -> None:
    result = export_module(model, tmp_path / "export", data="digits", formats=["ir"], **export_kw)
    net = result.network
    steps = net.time_steps
    x = net.input.encode(load_samples("digits", "test", SAMPLES).x.numpy())
    sim = simulate(net, x, record=[p.name for p in net.populations])
    for pop in net.populations:
        if pop.is_readout:
            continue
        ell = net.latencies[pop.name]
        rate = float(np.asarray(sim.traces[pop.name]["s"])[ell:ell + steps].mean())
        assert RATE_RANGE[0] <= rate <= RATE_RANGE[1], (pop.name, rate)
    got = run_lava(Path(result.files["ir"]), x, steps, traces=True, timeout=600)
    assert sorted(got.names) == sorted(p.name for p in net.populations)
    assert got.latency == sim.latency == net.latency
    cmp = compare_runs(net, sim, got, "own model IR -> Lava")
    assert {c.population for c in cmp.populations} == {p.name for p in net.populations}
    for check in cmp.populations:
        assert {"spikes", "u", "v"} <= set(check.compared), (check.population, check.compared)
    if not cmp.identical:
        pytest.fail("\n".join(f"{c.population}: first divergence {c.first_divergence}"
                              for c in cmp.populations if not c.identical) or "readout v differs")
    np.testing.assert_array_equal(got.readout_v, sim.readout_v)
    np.testing.assert_array_equal(got.predictions, sim.predictions)


def test_multi_step_sequential_model_is_bit_exact_in_lava(tmp_path):
    model = own_models.make_spike(own_models.digits_csnn(), seed=0)
    check_against_lava(tmp_path, model, time_steps=own_models.T)


def test_tutorial_style_model_is_bit_exact_in_lava(tmp_path):
    """IF neurons (dv = 0, vth = S - 1) and the spike-count readout (identity projection)."""
    model = own_models.make_spike(own_models.tutorial_csnn(), seed=1)
    check_against_lava(tmp_path, model)
