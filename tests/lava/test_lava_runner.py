"""The simulator against Intel Lava, bit for bit.

Each ``lava`` test builds a tiny IR network by hand, runs it through the Lava runner (Lava 0.10's
bit-accurate CPU models in ``.venv-lava``, via ``sakd.hardware.lava_bridge``) and through
``sakd.hardware.simulator.simulate``, and requires identical spikes of every population at every
one of the T + L steps, identical u and v traces, and an identical readout v. The networks are
chosen so that every spiking population is active but not saturated (checked), so that an
agreement means something. The tests without the marker check the runner's helpers and the
bridge's error paths and need no Lava.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from sakd.hardware.ir import Input, Network, Population, Projection
from sakd.hardware.lava_bridge import (
    LavaResult,
    LavaRunError,
    LavaUnavailable,
    lava_environment,
    lava_unavailable_reason,
    run_lava,
)
from sakd.hardware.lava_runner import conv2d_matrix, sample_inputs, steps_per_sample
from sakd.hardware.netfile import write_network
from sakd.hardware.neurons.cuba_lif import lif_population
from sakd.hardware.simulator import conv_synapse, simulate

lava = pytest.mark.lava


def even(rng: np.random.Generator, shape: tuple[int, ...], lo: int = -128, hi: int = 127) -> np.ndarray:
    """Even integer weights 2·k with k in [lo, hi] (the IR's mixed-sign weight grid)."""
    return 2 * rng.integers(lo, hi + 1, size=shape)


def run_both(tmp_path: Path, net: Network, x: np.ndarray, T: int, *, sequence: bool = False,
             chunk: int | None = None) -> tuple[LavaResult, object]:
    path = write_network(net, tmp_path / "network.h5")
    got = run_lava(path, x, T, traces=True, chunk=chunk, timeout=600)
    sim = simulate(net, x, time_steps=T, sequence=sequence, record=[p.name for p in net.populations])
    assert_bit_exact(net, got, sim)
    return got, sim


def assert_bit_exact(net: Network, got: LavaResult, sim, names: dict[str, str] | None = None) -> None:
    """Every population's spikes, u and v at every step, and the readout v, identical."""
    names = names or {p.name: p.name for p in net.populations}
    assert got.latency == sim.latency == net.latency
    for pop in net.populations:
        lname = names[pop.name]
        want = sim.traces[pop.name]
        s = got.spikes[lname].astype(bool)
        assert s.shape == want["s"].shape, (pop.name, s.shape, want["s"].shape)
        bad = np.argwhere(s != want["s"])
        assert bad.size == 0, f"{pop.name}: spikes differ first at (step-1, sample, neuron) {tuple(bad[0])}"
        for var in ("u", "v"):
            if lname in got.u:
                bad = np.argwhere(getattr(got, var)[lname] != want[var])
                assert bad.size == 0, (
                    f"{pop.name}: {var} differs first at {tuple(bad[0])}: lava "
                    f"{getattr(got, var)[lname][tuple(bad[0])]} vs simulator {want[var][tuple(bad[0])]}")
    np.testing.assert_array_equal(got.readout_v, sim.readout_v)


def assert_active(net: Network, sim, T: int) -> None:
    """Every spiking population fires in its window, and not on every step of every neuron."""
    for pop in net.populations:
        if pop.is_readout:
            continue
        ell = net.latencies[pop.name]
        window = sim.traces[pop.name]["s"][ell:ell + T]
        rate = window.mean()
        assert 0.0 < rate < 1.0, f"{pop.name}: window firing rate {rate} makes the check weak"


# ---------------------------------------------------------------------------------------------
# no Lava needed
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cin,h,w,cout,groups,k,stride,padding,dilation", [
    (3, 7, 6, 4, 1, (3, 3), (2, 2), (1, 1), (1, 1)),
    (4, 8, 9, 6, 2, (3, 2), (1, 2), (2, 0), (2, 1)),
    (2, 5, 5, 2, 2, (1, 1), (2, 2), (0, 0), (1, 1)),
])
def test_conv2d_matrix_matches_the_simulator(cin, h, w, cout, groups, k, stride, padding, dilation):
    rng = np.random.default_rng(0)
    weight = rng.integers(-5, 6, size=(cout, cin // groups) + k)
    x = rng.integers(-7, 8, size=(2, cin, h, w))
    rows, cols, vals, shape = conv2d_matrix((cin, h, w), weight, stride, padding, dilation, groups)
    dense = np.zeros(shape, np.int64)
    np.add.at(dense, (rows, cols), vals)
    want = conv_synapse(x, weight, stride, padding, dilation, groups)
    got = x.reshape(2, -1) @ dense.T
    np.testing.assert_array_equal(got, want.reshape(2, -1))
    assert len(set(zip(rows.tolist(), cols.tolist()))) == rows.size  # no duplicate entries


def test_sample_inputs_and_steps():
    assert steps_per_sample(4, 3) == 8 and steps_per_sample(3, 3) == 6 and steps_per_sample(1, 5) == 6
    static = np.arange(6).reshape(2, 3)
    seq = sample_inputs(static, (3,), 4)
    assert seq.shape == (4, 2, 3) and (seq == static[None]).all()
    assert sample_inputs(seq, (3,), 4).shape == (4, 2, 3)
    with pytest.raises(ValueError, match="sequence input has 4 steps"):
        sample_inputs(seq, (3,), 5)
    with pytest.raises(ValueError, match="fit neither"):
        sample_inputs(static, (4,), 4)
    with pytest.raises(ValueError, match="integers"):
        sample_inputs(static + 0.5, (3,), 4)


def test_bridge_reports_a_missing_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SAKD_LAVA_VENV", str(tmp_path / "nowhere"))
    assert lava_environment() is None
    reason = lava_unavailable_reason()
    assert "nowhere" in reason and "make lava-env" in reason
    with pytest.raises(LavaUnavailable, match="make lava-env"):
        run_lava(tmp_path / "network.h5", np.zeros((1, 3), np.int64), 2)


# ---------------------------------------------------------------------------------------------
# Lava cross-checks
# ---------------------------------------------------------------------------------------------


@lava
def test_dense_chain_with_different_neuron_parameters(tmp_path):
    """Static spike input -> 3 spiking populations -> readout: every population with its own du,
    dv, vth, bias (per neuron / scalar, positive and negative), bias_exp; weight_exp 0, 1, -2
    (floor shift of negative sums) and an all-non-positive matrix holding -256 (Lava would clip it
    to -255 if it derived the sign mode itself)."""
    rng = np.random.default_rng(1)
    inp = Input("x", (12,), "spikes")
    pops = (
        lif_population("p1", (16,), du=4095, dv=1024, vth=200, bias_mant=rng.integers(-20, 40, 16), bias_exp=3),
        lif_population("p2", (10,), du=2048, dv=0, vth=250, bias_mant=-5, bias_exp=2),
        lif_population("p3", (8,), du=100, dv=4096, vth=150, bias_mant=rng.integers(0, 30, 8), bias_exp=1),
        lif_population("out", (4,), du=4095, dv=0, vth=0, bias_mant=np.array([3, -7, 0, 100]), bias_exp=2,
                   role="readout"),
    )
    w_out = -2 * rng.integers(0, 129, size=(4, 8))
    w_out[0, 0] = -256
    projs = (
        Projection("x_p1", "x", "p1", "dense", even(rng, (16, 12), -60, 60)),
        Projection("p1_p2", "p1", "p2", "dense", even(rng, (10, 16), -60, 60), weight_exp=1),
        Projection("p2_p3", "p2", "p3", "dense", even(rng, (8, 10), -120, 120), weight_exp=-2),
        Projection("p3_out", "p3", "out", "dense", w_out),
    )
    net = Network(inp, pops, projs)
    T = 5
    x = (rng.random((3, 12)) < 0.5).astype(np.int64)
    got, sim = run_both(tmp_path, net, x, T)
    assert_active(net, sim, T)
    assert got.meta["steps_per_sample"] == 10  # T + L = 9 -> one idle step per sample


@lava
def test_graded_sequence_input_conv_and_dense(tmp_path):
    """A graded (signed 8-bit) sequence input [T, B, C, H, W] into a conv and a dense projection
    (graded messages), both populations summed into the readout."""
    rng = np.random.default_rng(2)
    inp = Input("x", (2, 5, 5), "graded", bits=8, scale=10.0)
    pops = (
        lif_population("c", (3, 5, 5), du=4095, dv=2048, vth=4000, bias_mant=np.array([10, -10, 0]), bias_exp=6),
        lif_population("d", (6,), du=3000, dv=500, vth=1500, bias_mant=0),
        lif_population("out", (4,), du=4095, dv=0, vth=0, role="readout"),
    )
    projs = (
        Projection("x_c", "x", "c", "conv2d", even(rng, (3, 2, 3, 3), -10, 12), padding=(1, 1)),
        Projection("x_d", "x", "d", "dense", even(rng, (6, 50), -10, 12), weight_exp=-3),
        Projection("c_out", "c", "out", "dense", even(rng, (4, 75))),
        Projection("d_out", "d", "out", "dense", even(rng, (4, 6))),
    )
    net = Network(inp, pops, projs)
    T = 4
    x = rng.integers(-128, 128, size=(T, 2, 2, 5, 5))
    _, sim = run_both(tmp_path, net, x, T, sequence=True)
    assert_active(net, sim, T)


@lava
def test_fan_in_with_latency_balancing_delays(tmp_path):
    """Three paths of different depth into one population, balanced by delays (DelayDense,
    including a delayed graded projection straight from the input), plus a delayed skip into the
    readout; static graded input."""
    rng = np.random.default_rng(3)
    inp = Input("x", (8,), "graded", bits=6)
    pops = (
        lif_population("a", (10,), du=4095, dv=3000, vth=100, bias_mant=rng.integers(-10, 20, 10), bias_exp=2),
        lif_population("b", (8,), du=1000, dv=1000, vth=600),
        lif_population("c", (6,), du=4095, dv=2048, vth=400, bias_mant=-3, bias_exp=4),
        lif_population("out", (3,), du=4095, dv=0, vth=0, role="readout"),
    )
    projs = (
        Projection("x_a", "x", "a", "dense", even(rng, (10, 8), -8, 12)),
        Projection("a_b", "a", "b", "dense", even(rng, (8, 10), -20, 60)),
        Projection("b_c", "b", "c", "dense", even(rng, (6, 8), -20, 60)),
        Projection("a_c", "a", "c", "dense", even(rng, (6, 10), -30, 40), delay=1),
        Projection("x_c", "x", "c", "dense", even(rng, (6, 8), -6, 8), delay=2),
        Projection("c_out", "c", "out", "dense", even(rng, (3, 6))),
        Projection("b_out", "b", "out", "dense", even(rng, (3, 8)), delay=1),
    )
    net = Network(inp, pops, projs)
    assert net.latencies == {"a": 1, "b": 2, "c": 3, "out": 4}
    T = 3
    x = rng.integers(-32, 32, size=(3, 8))
    _, sim = run_both(tmp_path, net, x, T)
    assert_active(net, sim, T)


@lava
def test_conv_net_stride_padding_groups_dilation_and_delayed_shortcut(tmp_path):
    """Spike input (2, 8, 8) -> 3x3 stride-2 pad-1 conv (per-channel bias) -> grouped, dilated
    3x3 conv (full-shape bias), plus a 1x1 stride-2 shortcut from the input with delay 1 into the
    same population (DelaySparse) -> dense readout."""
    rng = np.random.default_rng(4)
    inp = Input("x", (2, 8, 8), "spikes")
    pops = (
        lif_population("c1", (4, 4, 4), du=4095, dv=1500, vth=250, bias_mant=np.array([5, 0, -5, 20]), bias_exp=3),
        lif_population("c2", (4, 4, 4), du=2500, dv=2048, vth=600, bias_mant=rng.integers(-20, 20, (4, 4, 4)),
                   bias_exp=2),
        lif_population("out", (5,), du=4095, dv=0, vth=0, bias_mant=np.arange(5), bias_exp=6, role="readout"),
    )
    projs = (
        Projection("x_c1", "x", "c1", "conv2d", even(rng, (4, 2, 3, 3), -20, 50), stride=(2, 2), padding=(1, 1)),
        Projection("c1_c2", "c1", "c2", "conv2d", even(rng, (4, 2, 3, 3), -30, 80), padding=(2, 2),
                   dilation=(2, 2), groups=2),
        Projection("x_c2", "x", "c2", "conv2d", even(rng, (4, 2, 1, 1), -20, 80), stride=(2, 2), delay=1),
        Projection("c2_out", "c2", "out", "dense", even(rng, (5, 64))),
    )
    net = Network(inp, pops, projs)
    T = 4
    x = (rng.random((2, 2, 8, 8)) < 0.4).astype(np.int64)
    _, sim = run_both(tmp_path, net, x, T)
    assert_active(net, sim, T)


def fpn_network(seed: int = 6) -> Network:
    """A small FPN: spike input (2, 8, 8) -> c8 (4, 8, 8) -stride 2-> c4 (4, 4, 4) -stride 2->
    c2 (4, 2, 2); top-down: c2 upsampled x2 (nearest, depthwise weight 160) plus a delayed
    lateral 1x1 conv of c4 into m4; m4 upsampled x2 by a general upsample projection (groups
    2, position-dependent weights, weight_exp -1, so Sparse's floor shift is exercised) plus a
    delayed lateral conv of c8 into m8 (4, 8, 8); a dense readout."""
    rng = np.random.default_rng(seed)
    inp = Input("x", (2, 8, 8), "spikes")
    pops = (
        lif_population("c8", (4, 8, 8), du=4095, dv=2048, vth=150),
        lif_population("c4", (4, 4, 4), du=4095, dv=2048, vth=200),
        lif_population("c2", (4, 2, 2), du=3000, dv=2048, vth=200),
        lif_population("m4", (4, 4, 4), du=4095, dv=1500, vth=150,
                       bias_mant=np.array([3, 0, -2, 5]), bias_exp=4),
        lif_population("m8", (4, 8, 8), du=4095, dv=2048, vth=120),
        lif_population("out", (3,), du=4095, dv=0, vth=0, role="readout"),
    )
    projs = (
        Projection("x_c8", "x", "c8", "conv2d", even(rng, (4, 2, 3, 3), -20, 40), padding=(1, 1)),
        Projection("c8_c4", "c8", "c4", "conv2d", even(rng, (4, 4, 3, 3), -20, 40), stride=(2, 2),
                   padding=(1, 1)),
        Projection("c4_c2", "c4", "c2", "conv2d", even(rng, (4, 4, 3, 3), -20, 40), stride=(2, 2),
                   padding=(1, 1)),
        Projection("up_c2", "c2", "m4", "upsample", np.full((4, 1, 2, 2), 160), stride=(2, 2),
                   groups=4),
        Projection("lat_c4", "c4", "m4", "conv2d", even(rng, (4, 4, 1, 1), -20, 60), delay=1),
        Projection("up_m4", "m4", "m8", "upsample", even(rng, (4, 2, 2, 2), -30, 127),
                   stride=(2, 2), groups=2, weight_exp=-1),
        Projection("lat_c8", "c8", "m8", "conv2d", even(rng, (4, 4, 1, 1), -20, 60), delay=3),
        Projection("m8_out", "m8", "out", "dense", even(rng, (3, 256))),
    )
    return Network(inp, pops, projs)


@lava
def test_fpn_with_upsample_projections(tmp_path):
    """The upsample kind through Lava's Sparse / DelaySparse (its synapse list): every spike, u
    and v identical over several samples, with both upsampling populations active."""
    net = fpn_network()
    assert [p.kind for p in net.projections].count("upsample") == 2
    T = 4
    rng = np.random.default_rng(7)
    x = (rng.random((3, 2, 8, 8)) < 0.5).astype(np.int64)
    _, sim = run_both(tmp_path, net, x, T)
    assert_active(net, sim, T)


@lava
def test_relay_and_or_recipes(tmp_path):
    """Relay: one-to-one weights 2 into du = dv = 4095, vth = 1, no bias fires at t + 1 iff its
    source fired at t. OR (max pooling of spikes): a depthwise ones-kernel (weights 2) into the
    same neuron fires iff any input in its window spiked."""
    rng = np.random.default_rng(5)
    C, H, W = 2, 4, 4
    n = C * H * W
    inp = Input("x", (C, H, W), "spikes")
    relay_params = {"du": 4095, "dv": 4095, "vth": 1}
    pops = (
        lif_population("relay", (C, H, W), **relay_params),
        lif_population("or", (C, 2, 2), **relay_params),
        lif_population("out", (3,), du=4095, dv=0, vth=0, role="readout"),
    )
    projs = (
        Projection("x_relay", "x", "relay", "dense", 2 * np.eye(n, dtype=np.int64)),
        Projection("relay_or", "relay", "or", "conv2d", np.full((C, 1, 2, 2), 2), stride=(2, 2), groups=C),
        Projection("or_out", "or", "out", "dense", even(rng, (3, C * 4))),
    )
    net = Network(inp, pops, projs)
    T = 6
    x = (rng.random((T, 2, C, H, W)) < 0.3).astype(np.int64)
    got, _ = run_both(tmp_path, net, x, T, sequence=True)
    relay = got.spikes["relay"].astype(bool)  # [T + L, B, C, H, W]; index i = step i + 1
    orr = got.spikes["or"].astype(bool)
    assert not relay[0].any() and not relay[T + 1:].any()
    np.testing.assert_array_equal(relay[1:T + 1], x.astype(bool))
    pooled = x.reshape(T, 2, C, 2, 2, 2, 2).max(axis=(4, 6)).astype(bool)
    assert not orr[:2].any()
    np.testing.assert_array_equal(orr[2:T + 2], pooled)
    assert 0 < pooled.mean() < 1


@lava
def test_staggered_reset_over_several_samples(tmp_path):
    """Five samples through one Lava build per chunk of two (chunks 2, 2, 1; the state zeroed
    between samples): populations with strong biases fire before their windows and leak, so the
    staggered reset and the state between samples matter. Sample 3 repeats sample 0 and must give
    the same result (samples are independent)."""
    rng = np.random.default_rng(6)
    inp = Input("x", (6,), "spikes")
    pops = (
        lif_population("p1", (8,), du=4095, dv=256, vth=100, bias_mant=rng.integers(40, 120, 8), bias_exp=2),
        lif_population("p2", (6,), du=2048, dv=128, vth=10, bias_mant=60, bias_exp=3),
        lif_population("out", (3,), du=1000, dv=100, vth=0, bias_mant=np.array([50, -50, 7]), bias_exp=5,
                   role="readout"),
    )
    projs = (
        Projection("x_p1", "x", "p1", "dense", even(rng, (8, 6), -40, 60)),
        Projection("p1_p2", "p1", "p2", "dense", even(rng, (6, 8), -60, 60)),
        Projection("p2_out", "p2", "out", "dense", even(rng, (3, 6))),
    )
    net = Network(inp, pops, projs)
    T = 3
    x = (rng.random((5, 6)) < 0.5).astype(np.int64)
    x[3] = x[0]
    got, sim = run_both(tmp_path, net, x, T, chunk=2)
    assert got.meta["steps_per_sample"] == 6  # T + L = 6: no idle step
    for pop in net.populations:
        np.testing.assert_array_equal(got.spikes[pop.name][:, 3], got.spikes[pop.name][:, 0])
    np.testing.assert_array_equal(got.readout_v[3], got.readout_v[0])
    # activity before the windows (bias-driven) exists, so the reset is exercised
    assert sim.traces["p2"]["s"][:2].any() or sim.traces["p1"]["s"][:1].any()
    assert_active(net, sim, T)


def _write_netx(path: Path, net: Network) -> None:
    """A netx HDF5 file (input -> conv -> flatten -> dense) equivalent to ``net``: iDecay = du + 1,
    vDecay = dv, vThMant = vth, bias_exp 6 (fixed by netx)."""
    conv, dense = net.projections
    c, out = net.populations

    def neuron(g: h5py.Group, pop: Population) -> None:
        n = g.create_group("neuron")
        n.create_dataset("type", data=np.array([b"CUBA"], dtype="S10"))
        for key, value in (("iDecay", pop.neuron.du + 1), ("vDecay", pop.neuron.dv), ("vThMant", pop.neuron.vth),
                           ("refDelay", 1), ("gradedSpike", 0)):
            n.create_dataset(key, data=value)

    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        g = layer.create_group("0")
        g.create_dataset("type", data=np.array([b"input"], dtype="S10"))
        g.create_dataset("shape", data=np.array(net.input.shape))
        g = layer.create_group("1")
        g.create_dataset("type", data=np.array([b"conv"], dtype="S10"))
        g.create_dataset("shape", data=np.array(c.shape))
        g.create_dataset("weight", data=np.asarray(conv.weight, np.float32))
        g.create_dataset("bias", data=np.asarray(c.neuron.bias_mant))
        for key in ("stride", "padding", "dilation"):
            g.create_dataset(key, data=np.array(getattr(conv, key)))
        g.create_dataset("groups", data=conv.groups)
        neuron(g, c)
        g = layer.create_group("2")
        g.create_dataset("type", data=np.array([b"flatten"], dtype="S10"))
        g = layer.create_group("3")
        g.create_dataset("type", data=np.array([b"dense"], dtype="S10"))
        g.create_dataset("shape", data=np.array(out.shape))
        g.create_dataset("weight", data=np.asarray(dense.weight, np.float32))
        neuron(g, out)


@lava
def test_netx_file_matches_the_simulator(tmp_path):
    """A hand-written netx file run by lava-dl's netx loader (graded 8-bit input, Lava Conv with
    its (W,H,C) layout and flipped kernel, flatten, Dense after optimize_weight_bits) against the
    simulator on the equivalent IR network."""
    rng = np.random.default_rng(7)
    inp = Input("x", (2, 6, 6), "graded", bits=8)
    pops = (
        lif_population("c", (3, 3, 3), du=4095, dv=2048, vth=3000, bias_mant=np.array([20, -20, 5]), bias_exp=6),
        lif_population("out", (4,), du=4095, dv=0, vth=1 << 17, role="readout"),
    )
    projs = (
        Projection("x_c", "x", "c", "conv2d", even(rng, (3, 2, 3, 3), -10, 12), stride=(2, 2), padding=(1, 1)),
        Projection("c_out", "c", "out", "dense", even(rng, (4, 27))),
    )
    net = Network(inp, pops, projs)
    path = tmp_path / "net.netx.h5"
    _write_netx(path, net)
    T = 4
    x = rng.integers(-128, 128, size=(2, 2, 6, 6))
    got = run_lava(path, x, T, netx=True, input_message_bits=8, traces=True, timeout=600)
    assert got.names == ["layer1", "layer3"] and got.readout == "layer3"
    sim = simulate(net, x, time_steps=T, record=["c", "out"])
    assert_bit_exact(net, got, sim, names={"c": "layer1", "out": "layer3"})
    assert_active(net, sim, T)


@lava
def test_runner_failure_raises_with_stderr(tmp_path):
    net = Network(Input("x", (3,), "spikes"),
                  (lif_population("out", (2,), du=4095, dv=0, vth=0, role="readout"),),
                  (Projection("p", "x", "out", "dense", np.full((2, 3), 2)),))
    path = write_network(net, tmp_path / "network.h5")
    with pytest.raises(LavaRunError, match="fit neither"):
        run_lava(path, np.zeros((2, 4), np.int64), 2)


def test_a_temporary_folder_too_long_for_lavas_sockets_is_refused_before_lava_starts(
        tmp_path, monkeypatch):
    """Lava would die with a bare EOFError from its shared-memory manager; the bridge names TMPDIR."""
    import tempfile

    net = Network(Input("x", (3,), "spikes"),
                  (lif_population("out", (2,), du=4095, dv=0, vth=10, role="readout"),),
                  (Projection("p", "x", "out", "dense", np.full((2, 3), 2)),))
    path = write_network(net, tmp_path / "network.h5")
    long_tmp = tmp_path / ("t" * 40) / ("u" * 40)
    long_tmp.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    with pytest.raises(LavaRunError, match="set TMPDIR to a shorter folder"):
        run_lava(path, np.zeros((2, 3), np.int64), 2)
    assert list(long_tmp.iterdir()) == []  # nothing left behind
