"""Golden traces computed by hand from the rules of docs/ir.md and fixed-point.md §1.

Every expected number below is written literally, with the arithmetic that gives it; none is
produced by the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from sakd.hardware.ir import Input, Network, Projection
from sakd.hardware.neurons.cuba_lif import CubaLif, lif_population
from sakd.hardware.simulator import conv_fanout, simulate, trunc_shift12, wrap24
from sakd.hardware.simulator.backends import NumpyOps
from sakd.hardware.target import LOIHI2


def lif_step(u, v, a, du, dv, vth, bias):
    """One step of the CUBA-LIF model (its own ``step``), with ``bias`` the effective bias."""
    model = CubaLif(du=du, dv=dv, vth=vth, bias_mant=bias, bias_exp=0)
    prepared = model.prepare(NumpyOps(), np.shape(u), LOIHI2, readout=False)
    state, s = model.step({"u": u, "v": v}, {"a_in": np.asarray(a, np.int64)}, prepared)
    return state["u"], state["v"], s

BACKENDS = ["numpy"]
try:  # the torch backend must give the same numbers
    import torch  # noqa: F401

    BACKENDS.append("torch")
except ImportError:  # pragma: no cover
    pass


# ---------------------------------------------------------------------------------------------
# the integer primitives


def test_trunc_shift12_truncates_toward_zero():
    p = np.array([0, 4095, 4096, 8191, -1, -4095, -4096, -4097, -8192, -3288, -6144], np.int64)
    # 4095/4096 -> 0; 8191/4096 = 1.99 -> 1; -1/4096 -> 0 (floor: -1); -4097/4096 -> -1 (floor: -2);
    # -3288/4096 = -0.80 -> 0; -6144/4096 = -1.5 -> -1 (floor: -2)
    want = [0, 0, 1, 1, 0, 0, -1, -1, -2, 0, -1]
    assert trunc_shift12(p).tolist() == want


def test_wrap24():
    x = np.array([2**23 - 1, 2**23, -(2**23), -(2**23) - 1, 2**24, 254 * (2**23 - 1)], np.int64)
    # 2^23 -> -2^23; -2^23 - 1 -> 2^23 - 1; 2^24 -> 0; 254 (2^23 - 1) = 127 * 2^24 - 254 -> -254
    assert wrap24(x).tolist() == [2**23 - 1, -(2**23), -(2**23), 2**23 - 1, 0, -254]


def test_negative_voltage_decays_to_zero_not_minus_one():
    # v = -3, dv = 3000: -3 * (4096 - 3000) = -3288; trunc0(-3288 / 4096) = trunc0(-0.80) = 0
    # (a floor shift would give -1); du = 4095: u = 0 * 0 + (0 << 6) = 0; bias 0 -> v = 0
    u, v, s = lif_step(np.zeros(1, np.int64), np.array([-3], np.int64), 0, 4095, 3000, 10, 0)
    assert (u.tolist(), v.tolist(), s.tolist()) == ([0], [0], [False])


def test_tie_at_threshold_does_not_fire():
    # du = 4095, dv = 4096: u = a << 6 = 2 * 64 = 128; v = 0 + 128 + bias(-64) = 64 == vth << 6 = 64
    u, v, s = lif_step(
        np.zeros(1, np.int64), np.zeros(1, np.int64), np.array([2]), 4095, 4096, 1, -64
    )
    assert (u.tolist(), v.tolist(), s.tolist()) == ([128], [64], [False])
    # one more: v = 128 + 1 - 64 = 65 > 64 fires, v is reset to 0, u keeps 128
    u, v, s = lif_step(
        np.zeros(1, np.int64), np.zeros(1, np.int64), np.array([2]), 4095, 4096, 1, -63
    )
    assert (u.tolist(), v.tolist(), s.tolist()) == ([128], [0], [True])


# ---------------------------------------------------------------------------------------------
# network 1: u wrap, v saturation, du = 4095, dv = 0, bias_exp, a readout that never fires


def net_wrap() -> Network:
    return Network(
        Input("x", (1,), "graded", bits=24),
        (lif_population("r", (1,), du=4095, dv=0, vth=0, bias_mant=3, bias_exp=2, role="readout"),),
        (Projection("p", "x", "r", "dense", np.array([[2]])),),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_wrap_and_saturation(backend):
    net = net_wrap()
    x = np.array([65536, 65537, -65536, -100]).reshape(4, 1, 1)  # sequence, T = 4
    res = simulate(net, x, time_steps=4, sequence=True, record=["r"], backend=backend)
    # L = 1, steps t = 1..5; reset of r before steps with (t - 2) % 4 == 0: t = 2.
    # bias = 3 << 2 = 12. du = 4095: u = a << 6. dv = 0: v keeps all memory. a(t) = 2 * x(t - 1).
    # t=1: a = 0: u = 0; v = 0 + 0 + 12 = 12
    # t=2: reset; a = 131072: u = 8388608 = 2^23 (kept: the wrap is for u > 2^23);
    #      v = 0 + 8388608 + 12 = 8388620 -> saturates at 2^23 - 1 = 8388607
    # t=3: a = 131074: u = 8388736 > 2^23 -> 8388736 - 2^24 = -8388480; v = 8388607 - 8388480 + 12 = 139
    # t=4: a = -131072: u = -8388608 <= -2^23 -> + 2^24 = 8388608; v = 139 + 8388608 + 12 -> 8388607
    # t=5: a = -200: u = -12800; v = 8388607 - 12800 + 12 = 8375819
    tr = res.traces["r"]
    assert tr["u"][:, 0, 0].tolist() == [0, 8388608, -8388480, 8388608, -12800]
    assert tr["v"][:, 0, 0].tolist() == [12, 8388607, 139, 8388607, 8375819]
    assert tr["s"].sum() == 0  # a readout never fires (v is far above vth << 6 = 0)
    assert res.readout_v.tolist() == [[8375819]]
    assert res.predictions.tolist() == [0]
    assert res.latency == 1
    # counts: window of r = t 2..5, a != 0 on all four steps; the graded input has 4 nonzero
    # values in its window (t 1..4), each with fan-out 1 -> 4 MACs and no SynOps
    c = res.counts
    assert c.populations["r"].spikes_per_step.tolist() == [[0, 0, 0, 0]]
    assert c.populations["r"].active_updates.tolist() == [4]
    assert c.projections["p"].graded_macs.tolist() == [4]
    assert c.projections["p"].synops.tolist() == [0]
    assert (c.projections["p"].synapses, c.projections["p"].dense_flops) == (1, 1)
    # without recording (window-only schedule) the readout and counts are the same
    again = simulate(net, x, time_steps=4, sequence=True, backend=backend)
    assert again.readout_v.tolist() == [[8375819]]
    assert again.counts.populations["r"].active_updates.tolist() == [4]


# ---------------------------------------------------------------------------------------------
# network 2: tie, truncation of negatives, decays, a delay, fan-in, the staggered reset


def net_chain() -> Network:
    inp = Input("x", (2,), "spikes")
    pops = (
        lif_population("A", (1,), du=4095, dv=4096, vth=1, bias_mant=-1, bias_exp=6),
        lif_population("B", (1,), du=0, dv=2048, vth=2, bias_mant=-1, bias_exp=0),
        lif_population("R", (1,), du=4095, dv=0, vth=0, bias_mant=1, bias_exp=3, role="readout"),
    )
    projs = (
        Projection("xa", "x", "A", "dense", np.array([[2, 4]])),
        Projection("xb", "x", "B", "dense", np.array([[-2, 0]]), delay=1),
        Projection("ab", "A", "B", "dense", np.array([[6]])),
        Projection("br", "B", "R", "dense", np.array([[10]])),
    )
    return Network(inp, pops, projs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_chain(backend):
    net = net_chain()
    assert net.latencies == {"A": 1, "B": 2, "R": 3}  # B: 1 + 1 via A, 0 + 1 + delay 1 via x
    # sequence input, T = 3: x(1) = (1, 0), x(2) = (0, 1), x(3) = (1, 1); zeros after
    x = np.array([[1, 0], [0, 1], [1, 1]]).reshape(3, 1, 2)
    res = simulate(net, x, time_steps=3, sequence=True, record=["A", "B", "R"], backend=backend)
    # L = 3, steps 1..6. Resets: A at (t-2)%3 == 0: t = 2, 5; B at t = 3, 6; R at t = 1, 4.
    #
    # A: a(t) = 2 x0(t-1) + 4 x1(t-1) = [0, 2, 4, 6, 0, 0]; du = 4095: u = 64 a; dv = 4096: v = u + bias;
    #    bias = -1 << 6 = -64; fires when v > 1 << 6 = 64
    # t1: u 0, v -64 | t2 (reset): u 128, v 64 (tie: no spike) | t3: u 256, v 192 -> spike, v 0
    # t4: u 384, v 320 -> spike, v 0 | t5 (reset): u 0, v -64 | t6: u 0, v -64
    tr = res.traces["A"]
    assert tr["u"][:, 0, 0].tolist() == [0, 128, 256, 384, 0, 0]
    assert tr["v"][:, 0, 0].tolist() == [-64, 64, 0, 0, -64, -64]
    assert tr["s"][:, 0, 0].tolist() == [False, False, True, True, False, False]
    #
    # B: a(t) = ab + xb = 6 sA(t-1) - 2 x0(t-2) = [0, 0, -2, 6 + 0, 6 - 2, 0] = [0, 0, -2, 6, 4, 0]
    #    du = 0: u <- trunc0(u * 4095 / 4096) + 64 a; dv = 2048: v <- trunc0(v / 2) + u - 1; fires at v > 128
    # t1: u 0, v 0 + 0 - 1 = -1
    # t2: u 0, v trunc0(-1 * 2048 / 4096 = -0.5) = 0, + 0 - 1 = -1
    # t3 (reset): u = -128; v = 0 - 128 - 1 = -129
    # t4: u = trunc0(-128 * 4095 / 4096 = -127.97) = -127, + 384 = 257;
    #     v = trunc0(-129 * 2048 / 4096 = -64.5) = -64, + 257 - 1 = 192 > 128 -> spike, v 0
    # t5: u = trunc0(257 * 4095 / 4096 = 256.94) = 256, + 256 = 512; v = 0 + 512 - 1 = 511 -> spike, v 0
    # t6 (reset): u 0, v 0 + 0 - 1 = -1
    tr = res.traces["B"]
    assert tr["u"][:, 0, 0].tolist() == [0, 0, -128, 257, 512, 0]
    assert tr["v"][:, 0, 0].tolist() == [-1, -1, -129, 0, 0, -1]
    assert tr["s"][:, 0, 0].tolist() == [False, False, False, True, True, False]
    #
    # R: a(t) = 10 sB(t-1) = [0, 0, 0, 0, 10, 10]; du = 4095, dv = 0, bias = 1 << 3 = 8
    # t1 (reset): u 0, v 8 | t2: v 16 | t3: v 24 | t4 (reset): v 8 | t5: u 640, v 8 + 640 + 8 = 656
    # t6: u 640, v 656 + 640 + 8 = 1304 = sum over the window of (64 * 10 * sB + 8) = 8 + 648 + 648
    tr = res.traces["R"]
    assert tr["u"][:, 0, 0].tolist() == [0, 0, 0, 0, 640, 640]
    assert tr["v"][:, 0, 0].tolist() == [8, 16, 24, 8, 656, 1304]
    assert not tr["s"].any()
    assert res.readout_v.tolist() == [[1304]]
    #
    # counts (windows: A t2..4, B t3..5, R t4..6, x t1..3)
    c = res.counts
    assert c.populations["A"].spikes_per_step.tolist() == [[0, 1, 1]]
    assert c.populations["B"].spikes_per_step.tolist() == [[0, 1, 1]]
    assert c.populations["R"].spikes_per_step.tolist() == [[0, 0, 0]]
    # active: A a = 2, 4, 6 (3); B a = -2, 6, 4 (3); R a = 0, 10, 10 (2)
    assert [c.populations[n].active_updates.tolist() for n in "ABR"] == [[3], [3], [2]]
    # x spikes in its window: 1 + 1 + 2 = 4, fan-out 1 each (the zero weight of xb counts)
    assert c.projections["xa"].synops.tolist() == [4]
    assert c.projections["xb"].synops.tolist() == [4]
    assert c.projections["ab"].synops.tolist() == [2]
    assert c.projections["br"].synops.tolist() == [2]
    assert c.projections["xa"].graded_macs.tolist() == [0]
    assert [c.projections[n].synapses for n in ("xa", "xb", "ab", "br")] == [2, 2, 1, 1]
    again = simulate(net, x, time_steps=3, sequence=True, backend=backend)
    assert again.readout_v.tolist() == [[1304]]
    assert again.counts.populations["B"].spikes_per_step.tolist() == [[0, 1, 1]]


# ---------------------------------------------------------------------------------------------
# convolution: wrap to 24 bits, and the structural fan-out


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_conv_wraps_to_24_bits(backend):
    net = Network(
        Input("x", (1, 1, 1), "graded", bits=24),
        (lif_population("r", (1, 1, 1), du=4095, dv=4096, vth=0, role="readout"),),
        (Projection("c", "x", "r", "conv2d", np.full((1, 1, 1, 1), 254)),),
    )
    # conv = 254 * (2^23 - 1) = 127 * 2^24 - 254 -> wrap24 -> -254; u = -254 * 64 = -16256; v = u
    res = simulate(net, np.full((1, 1, 1, 1), 2**23 - 1), time_steps=1, backend=backend)
    assert res.readout_v.reshape(-1).tolist() == [-16256]


def test_conv_fanout_by_hand():
    # 3x3 input, 2x2 kernel, stride 1, no padding -> 2x2 outputs; a corner is read by 1 output
    # position, an edge by 2, the centre by 4; times Cout / groups = 2
    f = conv_fanout((1, 3, 3), (2, 1, 2, 2))
    assert f[0].tolist() == [[2, 4, 2], [4, 8, 4], [2, 4, 2]]
    # padding 1 -> 4x4 outputs: along each axis every input index is read by 2 (o, tap) pairs
    assert conv_fanout((1, 3, 3), (2, 1, 2, 2), padding=(1, 1))[0].tolist() == [[8] * 3] * 3
    # stride 2, no padding -> one output reading rows/cols 0..1: row/col 2 is never reached
    assert conv_fanout((1, 3, 3), (1, 1, 2, 2), stride=(2, 2))[0].tolist() == [
        [1, 1, 0],
        [1, 1, 0],
        [0, 0, 0],
    ]
    # groups 2, Cout 4: each input channel feeds Cout / groups = 2 channels
    assert conv_fanout((2, 1, 1), (4, 1, 1, 1), groups=2).reshape(-1).tolist() == [2, 2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_conv_counts(backend):
    net = Network(
        Input("x", (1, 3, 3), "spikes"),
        (lif_population("r", (2, 4, 4), du=4095, dv=0, vth=0, role="readout"),),
        (Projection("c", "x", "r", "conv2d", np.full((2, 1, 2, 2), 2), padding=(1, 1)),),
    )
    # all 9 inputs spike at steps 1 and 2 (static, T = 2), each with fan-out 8: 2 * 9 * 8 = 144
    res = simulate(net, np.ones((1, 1, 3, 3), np.int64), time_steps=2, backend=backend)
    pc = res.counts.projections["c"]
    assert pc.synops.tolist() == [144]
    assert pc.synapses == 72  # 9 inputs x 8
    assert pc.dense_flops == 2 * 16 * 4  # Cout x Ho x Wo x Cin x kh x kw, padded taps included
    # the readout: a at a corner output (reads 1 input) = 2, at the centre (reads 4) = 8; v sums
    # 64 a over the 2 window steps: corner 256, centre 1024
    assert res.readout_v[0, 0, 0, 0] == 256 and res.readout_v[0, 0, 1, 1] == 1024
