"""The neuron-model interface proven with a second, small model defined here and nowhere else
(docs/neuron-models.md): registering it is all it takes for the IR, the IR file, the simulator
and its counts to run it, and for the writers to refuse it with the model named."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from sakd.formats.base import FormatError
from sakd.hardware.ir import Input, IRError, Network, Population, Projection
from sakd.hardware.netfile import read_network, write_network
from sakd.hardware.neurons import (
    NEURON_MODELS,
    NeuronModel,
    StateVariable,
    parameter,
    register_model,
)
from sakd.hardware.neurons.cuba_lif import CubaLif
from sakd.hardware.simulator import simulate
from sakd.hardware.target import LOIHI2


@dataclass(frozen=True, eq=False)
class Sat16If(NeuronModel):
    """A non-leaky integrate-and-fire neuron with one 16-bit saturating voltage:
    ``v = clip(v + a + bias, -2^15, 2^15 - 1)``; fires iff ``v >= vth``, then ``v = 0``."""

    model = "test_sat16_if"
    title = "16-bit saturating IF (a test model)"
    state = (StateVariable("v", 16, "saturate", "voltage"),)
    readout_state = "v"

    vth: int = parameter("threshold", lambda t, r: (1, (1 << 15) - 1))
    bias: int = parameter("bias per step", lambda t, r: (-(1 << 15), (1 << 15) - 1), default=0)

    def prepare(self, ops: Any, shape: tuple[int, ...], target: Any, readout: bool) -> Any:
        return {"never": readout}

    def step(self, state: dict[str, Any], inputs: dict[str, Any],
             prepared: Any) -> tuple[dict[str, Any], Any]:
        v = (state["v"] + inputs["a_in"] + self.bias).clip(-(1 << 15), (1 << 15) - 1)
        s = (v >= self.vth) & (not prepared["never"])
        return {"v": v * ~s}, s

    def safe_input(self, target: Any) -> int:
        return 1 << 40  # saturation: nothing can overflow


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_model(Sat16If)
    yield
    NEURON_MODELS.pop(Sat16If.model)


def reference(x: np.ndarray, w: np.ndarray, vth: int, bias: int, T: int) -> np.ndarray:
    """The same network by hand: x (B, 3) static for T steps -> dense w (4, 3) (one step of
    latency) -> Sat16If; spikes [T, B, 4] of the window."""
    v = np.zeros((x.shape[0], 4), np.int64)
    out = []
    for _ in range(T):
        v = np.clip(v + x @ w.T + bias, -(1 << 15), (1 << 15) - 1)
        s = v >= vth
        v = np.where(s, 0, v)
        out.append(s)
    return np.stack(out)


def network(vth: int = 300, bias: int = -7) -> Network:
    w = 2 * np.arange(-6, 6).reshape(4, 3)
    return Network(Input("x", (3,), "graded", bits=8),
                   (Population("if", (4,), Sat16If(vth=vth, bias=bias)),
                    Population("out", (2,), CubaLif.readout(LOIHI2), role="readout")),
                   (Projection("w", "x", "if", "dense", w),
                    Projection("r", "if", "out", "dense", np.full((2, 4), 2))),
                   time_steps=5)


def test_the_simulator_runs_a_registered_model_exactly():
    net = network()
    x = np.random.default_rng(0).integers(-128, 128, (6, 3))
    result = simulate(net, x, record=["if"])
    spikes = result.traces["if"]["s"][1:6]  # window of 'if': steps 2..6 (latency 1)
    want = reference(x, net.projections[0].weight, 300, -7, 5)
    np.testing.assert_array_equal(spikes, want)
    assert set(result.traces["if"]) == {"v", "s"}  # the model's own state variables
    counts = result.counts.populations["if"]
    np.testing.assert_array_equal(counts.spikes, want.sum((0, 2)))


def test_the_ir_file_round_trips_a_registered_model(tmp_path):
    net = network()
    back = read_network(write_network(net, tmp_path / "n.h5"))
    assert back.equals(net) and isinstance(back.populations[0].neuron, Sat16If)


def test_limits_and_the_writers_refusal_name_the_model(tmp_path):
    with pytest.raises(IRError, match="population 'if': vth 0 is outside"):
        network(vth=0)
    from sakd.formats.netx import write_netx
    from sakd.formats.nir import write_nir

    for writer in (write_nir, write_netx):
        with pytest.raises(FormatError, match="population 'if': its neuron model 'test_sat16_if'"):
            writer(network(), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
