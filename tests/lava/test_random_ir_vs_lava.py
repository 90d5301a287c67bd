"""Random small IR networks, bit for bit against Intel Lava (hypothesis, bounded and derandomized).

``test_random_ir_network`` draws networks of dense and conv2d projections (stride, padding,
dilation, groups), graded (2..16-bit) or spike inputs, static or sequence inputs, delays, skip
projections into fan-in (latency-balanced by delays), random du / dv / bias_mant (scalar, per
channel, per neuron) / bias_exp / weight_exp, and even weights over the full [-256, 254] range
with the extremes over-represented; thresholds are set from each population's typical synaptic
input so that most populations neither stay silent nor saturate. The IR file goes through
``sakd.hardware.lava_bridge.run_lava`` and the network through ``simulate``; every population's
spikes, u and v at every step and the readout v must be identical.

**Bounds, and why.** Every generated population's summed synaptic input is kept at
``|a| <= 2^17 - 1`` (the exporter's ``max_synaptic_input``, which keeps ``u`` within 24 bits) or,
in some networks, ``|a| <= 2^19`` (``u`` then leaves its 24 bits after the single wrap and keeps
growing, but cannot reach int32's limits within the few steps run: both sides stay exact, and the
simulator would raise ``SimulationOverflowError`` otherwise). In particular every conv2d
projection's sum stays below 2^23, the range where the IR's 24-bit wrap of a conv sum (Lava's
``Conv`` model: ``signed_clamp(conv, 24)``) is the identity. This matters because the Lava runner
expands an IR conv2d into a ``Sparse`` / ``DelaySparse`` matrix, and those do not wrap. The
exporter never exceeds the bound, so exported networks cannot reach the gap.

The wrap itself is proven by ``test_conv_wrap_through_netx``: chain networks whose first conv
sums of 15..16-bit graded inputs do exceed 2^23 (checked) are written with ``write_netx`` and run
by lava-dl's netx, which uses Lava's real ``Conv`` process; the simulator must agree bit for bit
(that population has du = 4095, so the wrapped ``a << 6`` cannot accumulate past int32).

No shrinking (``phases``): every example is a Lava run of a few seconds; a failure prints the
seed (``note``) and the first divergence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st

from sakd.app.verify import compare_runs
from sakd.formats.netx import netx_chain, write_netx
from sakd.hardware.ir import Input, Network, Projection, conv2d_output_shape
from sakd.hardware.lava_bridge import run_lava
from sakd.hardware.lava_runner import conv2d_matrix
from sakd.hardware.netfile import write_network
from sakd.hardware.neurons.cuba_lif import lif_population
from sakd.hardware.simulator import simulate

pytestmark = pytest.mark.lava

#: the exporter's bound on |a| (TargetSpec.max_synaptic_input) and a looser one (see above)
A_EXPORT = (1 << 17) - 1
A_LOOSE = 1 << 19
#: a dense sum before its weight_exp shift stays well inside int32 (Lava's Dense arithmetic)
PRE_SHIFT_MAX = 1 << 30
WRAP = 1 << 23

LAVA_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "phases": (Phase.explicit, Phase.generate),  # no shrinking: Lava runs are slow
    "suppress_health_check": list(HealthCheck),
}


# ---------------------------------------------------------------------------------------------
# generation


def even_weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Even integers in [-256, 254]; -256, 254 and 0 over-represented; sometimes small."""
    w = 2 * rng.integers(-128, 128, size=shape)
    if rng.random() < 0.25:
        w = 2 * rng.integers(-8, 8, size=shape)
    pick = rng.random(shape)
    return np.where(pick < 0.08, -256, np.where(pick < 0.16, 254, np.where(pick < 0.25, 0, w)))


def shrink(w: np.ndarray, factor: float) -> np.ndarray:
    """Even weights divided by ``factor`` (toward zero), still even."""
    return 2 * np.trunc((w // 2) / factor).astype(np.int64)


def conv_params(
    rng: np.random.Generator, src: tuple[int, ...], cout: int, want: tuple[int, ...] | None = None
) -> dict[str, Any] | None:
    """A random conv2d on ``src`` (C, H, W) with a small output (or exactly ``want``)."""
    c = src[0]
    for _ in range(40):
        kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        padding = (int(rng.integers(0, 3)), int(rng.integers(0, 2)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        groups = int(rng.choice([g for g in range(1, c + 1) if c % g == 0 and cout % g == 0]))
        try:
            out = conv2d_output_shape(src, (cout, c // groups) + kernel, stride, padding, dilation)
        except ValueError:
            continue
        if (want is None and out[1] * out[2] <= 16) or out == want:
            return {
                "kernel": kernel,
                "stride": stride,
                "padding": padding,
                "dilation": dilation,
                "groups": groups,
                "out": tuple(out),
            }
    return None


def proj_bound(p: dict[str, Any], xmax: int) -> tuple[int, int]:
    """Worst-case |a| of one projection (after its shift) and of its sum before the shift."""
    w = np.abs(p["weight"]).reshape(p["weight"].shape[0], -1)
    pre = int(w.sum(axis=1).max()) * xmax
    e = p.get("weight_exp", 0)
    return (pre << e if e >= 0 else -((-pre) >> -e)) if pre else 0, pre


def proj_rms(p: dict[str, Any], x2: float) -> float:
    """Typical |a| of one projection: sqrt(Σ w² · E[s²]) averaged over its rows, shifted."""
    w = p["weight"].reshape(p["weight"].shape[0], -1).astype(float)
    rms = float(np.sqrt((w**2).sum(axis=1).mean() * x2))
    return rms * 2.0 ** p.get("weight_exp", 0)


def random_network(seed: int) -> tuple[Network, np.ndarray, int, bool, int]:
    rng = np.random.default_rng(seed)
    spikes = bool(rng.random() < 0.5)
    bits = 1 if spikes else int(rng.choice([2, 4, 8, 12, 16]))
    if rng.random() < 0.7:
        in_shape: tuple[int, ...] = (
            int(rng.integers(1, 4)),
            int(rng.integers(3, 7)),
            int(rng.integers(3, 7)),
        )
    else:
        in_shape = (int(rng.integers(2, 10)),)
    inp = Input("x", in_shape, "spikes" if spikes else "graded", bits=bits, scale=1.0)
    p_in = float(rng.choice([0.2, 0.5, 0.8]))
    xmax = {"x": 1 if spikes else 1 << (bits - 1)}
    x2 = {"x": p_in if spikes else (1 << (bits - 1)) ** 2 / 3.0}  # E[s²] of each source
    shapes, latency, chain = {"x": in_shape}, {"x": 0}, ["x"]
    projs: list[dict[str, Any]] = []
    n_pops = int(rng.integers(2, 5))  # 1..3 spiking populations and the readout
    for k in range(n_pops):
        name, src = ("out" if k == n_pops - 1 else f"p{k}"), chain[-1]
        delay = int(rng.choice([0, 0, 0, 1, 2]))
        cp = (
            conv_params(rng, shapes[src], int(rng.integers(1, 5)))
            if len(shapes[src]) == 3 and rng.random() < 0.7
            else None
        )
        if cp is not None:
            w = even_weights(rng, (cp["out"][0], shapes[src][0] // cp["groups"]) + cp["kernel"])
            projs.append(
                {
                    "name": f"{src}_{name}",
                    "source": src,
                    "target": name,
                    "kind": "conv2d",
                    "weight": w,
                    "delay": delay,
                    **{k2: cp[k2] for k2 in ("stride", "padding", "dilation", "groups")},
                }
            )
            shape = cp["out"]
        else:
            shape = (
                (int(rng.integers(1, 3)), 2, 2)
                if rng.random() < 0.3
                else (int(rng.integers(2, 9)),)
            )
            w = even_weights(rng, (int(np.prod(shape)), int(np.prod(shapes[src]))))
            projs.append(
                {
                    "name": f"{src}_{name}",
                    "source": src,
                    "target": name,
                    "kind": "dense",
                    "weight": w,
                    "delay": delay,
                    "weight_exp": int(rng.integers(-8, 8)),
                }
            )
        shapes[name], latency[name] = shape, latency[src] + 1 + delay
        xmax[name], x2[name] = 1, 0.3
        chain.append(name)
    # skip projections into later populations: fan-in, balanced by a delay
    for j in range(int(rng.integers(0, 3))):
        t_idx = int(rng.integers(2, len(chain))) if len(chain) > 2 else 1
        src, tgt = chain[int(rng.integers(0, t_idx))], chain[t_idx]
        delay = latency[tgt] - latency[src] - 1
        if delay < 0:
            continue
        cp = (
            conv_params(rng, shapes[src], shapes[tgt][0], want=shapes[tgt])
            if len(shapes[src]) == 3 and len(shapes[tgt]) == 3
            else None
        )
        if cp is not None:
            w = even_weights(rng, (shapes[tgt][0], shapes[src][0] // cp["groups"]) + cp["kernel"])
            projs.append(
                {
                    "name": f"skip{j}",
                    "source": src,
                    "target": tgt,
                    "kind": "conv2d",
                    "weight": w,
                    "delay": delay,
                    **{k2: cp[k2] for k2 in ("stride", "padding", "dilation", "groups")},
                }
            )
        else:
            w = even_weights(rng, (int(np.prod(shapes[tgt])), int(np.prod(shapes[src]))))
            projs.append(
                {
                    "name": f"skip{j}",
                    "source": src,
                    "target": tgt,
                    "kind": "dense",
                    "weight": w,
                    "delay": delay,
                    "weight_exp": int(rng.integers(-8, 8)),
                }
            )
    # bound every population's summed |a| (see the module docstring)
    a_max = int(rng.choice([A_EXPORT, A_EXPORT, A_LOOSE]))
    for name in chain[1:]:
        incoming = [p for p in projs if p["target"] == name]
        while True:
            bounds = [proj_bound(p, xmax[p["source"]]) for p in incoming]
            over_pre = [
                p
                for p, (_, pre) in zip(incoming, bounds)
                if p["kind"] == "dense" and pre >= PRE_SHIFT_MAX
            ]
            if over_pre:
                for p in over_pre:
                    p["weight"] = shrink(p["weight"], 2.0)
                continue
            if sum(b for b, _ in bounds) <= a_max:
                break
            p = incoming[int(np.argmax([b for b, _ in bounds]))]
            if p["kind"] == "dense" and p["weight_exp"] > -8:
                p["weight_exp"] -= 1
            else:
                p["weight"] = shrink(p["weight"], 2.0)
    # neurons: thresholds from the typical input, biases comparable to it
    params: dict[str, dict[str, Any]] = {}
    for name in chain[1:]:
        shape = shapes[name]
        a_typ = np.sqrt(
            sum(proj_rms(p, x2[p["source"]]) ** 2 for p in projs if p["target"] == name)
        )
        bias_exp = int(rng.integers(0, 8))
        bshape = [(), (shape[0],), shape][int(rng.integers(3))]
        bias = np.round(rng.uniform(-0.3, 0.5, size=bshape) * 64.0 * a_typ / (1 << bias_exp))
        if rng.random() < 0.15:
            bias = rng.choice([-4096, 4095, -1, 1, 0], size=bshape)
        params[name] = {
            "du": int(rng.choice([0, 1, 2048, 4094, 4095, int(rng.integers(0, 4096))])),
            "dv": int(rng.choice([0, 1, 2048, 4095, 4096, int(rng.integers(0, 4097))])),
            "vth": (
                int(rng.choice([0, 1 << 17]))
                if name == "out"
                else int(
                    np.clip(
                        round(a_typ * np.exp(rng.uniform(np.log(0.3), np.log(4.0)))),
                        0,
                        (1 << 17) - 1,
                    )
                )
            ),
            "bias_mant": np.clip(bias, -4096, 4095).astype(np.int64),
            "bias_exp": bias_exp,
            "role": "readout" if name == "out" else "spiking",
        }
    order = rng.permutation(len(chain) - 1)
    ir_projs = tuple(Projection(**p) for p in projs)

    def build() -> Network:
        names = [chain[1:][i] for i in order]
        return Network(inp, tuple(lif_population(n, shapes[n], **params[n]) for n in names), ir_projs)

    T = int(rng.integers(2, 5))
    B = 2
    sequence = bool(rng.random() < 0.5)
    shape = ((T, B) if sequence else (B,)) + in_shape
    if spikes:
        x = (rng.random(shape) < p_in).astype(np.int64)
    else:
        lo, hi = inp.value_range
        x = rng.integers(lo, hi + 1, size=shape)
        pick = rng.random(shape)
        x = np.where(pick < 0.1, lo, np.where(pick < 0.2, hi, np.where(pick < 0.3, 0, x)))
    # nudge the thresholds (a few cheap simulations) until every population is active if possible
    net = build()
    for _ in range(8):
        sim = simulate(net, x, time_steps=T, sequence=sequence, record=list(params))
        rates = window_rates(net, sim, T)
        weak = {n: r for n, r in rates.items() if not 0.02 <= r <= 0.9}
        if not weak:
            break
        for n, r in weak.items():
            vth = params[n]["vth"]
            params[n]["vth"] = vth // 4 if r < 0.02 else min(4 * vth + 1, (1 << 17) - 1)
            if r < 0.02 and vth == 0:  # the bias holds it down
                params[n]["bias_mant"] = np.minimum(np.abs(params[n]["bias_mant"]), 4095)
        net = build()
    return net, x, T, sequence, a_max


# ---------------------------------------------------------------------------------------------
# comparison


def window_rates(net: Network, sim, T: int) -> dict[str, float]:
    out = {}
    for pop in net.populations:
        if not pop.is_readout:
            ell = net.latencies[pop.name]
            out[pop.name] = float(np.asarray(sim.traces[pop.name]["s"])[ell : ell + T].mean())
    return out


def assert_identical(
    net: Network, sim, got, label: str, names: dict[str, str] | None = None
) -> None:
    assert got.latency == sim.latency == net.latency
    cmp = compare_runs(net, sim, got, label, names)
    assert len(cmp.populations) == len(net.populations)
    for check in cmp.populations:
        assert {"spikes", "u", "v"} <= set(check.compared), (check.population, check.compared)
    if not cmp.identical:
        pytest.fail(
            "\n".join(
                f"{label}: {c.population}: first divergence {c.first_divergence}"
                for c in cmp.populations
                if not c.identical
            )
            or f"{label}: readout v"
        )
    np.testing.assert_array_equal(got.readout_v, sim.readout_v)


def describe(net: Network) -> str:
    projs = ", ".join(
        f"{p.name}:{p.kind}{'/d' + str(p.delay) if p.delay else ''}"
        f"{'/e' + str(p.weight_exp) if p.weight_exp else ''}"
        for p in net.projections
    )
    return f"input {net.input.encoding}/{net.input.bits} {net.input.shape}; {projs}"


@settings(max_examples=12, **LAVA_SETTINGS)
@given(seed=st.integers(0, 2**32 - 1))
def test_random_ir_network(seed, tmp_path_factory):
    net, x, T, sequence, a_max = random_network(seed)
    note(f"seed {seed}: {describe(net)}; T={T} sequence={sequence} |a|<={a_max}")
    sim = simulate(
        net, x, time_steps=T, sequence=sequence, record=[p.name for p in net.populations]
    )
    rates = window_rates(net, sim, T)
    note(f"window firing rates {rates}")
    assert any(0.0 < r < 1.0 for r in rates.values()), f"no spiking population is active: {rates}"
    for kind in sorted({p.kind for p in net.projections}):
        event(f"projection {kind}")
    event(f"input {net.input.encoding}")
    if any(p.delay for p in net.projections):
        event("delays")
    if any(len(net.projections_into(p.name)) > 1 for p in net.populations):
        event("fan-in")
    path = write_network(net, tmp_path_factory.mktemp("random") / "network.h5")
    got = run_lava(path, x, T, traces=True, timeout=600)
    assert_identical(net, sim, got, "IR -> Lava")


# ---------------------------------------------------------------------------------------------
# the conv's 24-bit wrap, through netx (Lava's Conv process)


def wrap_network(seed: int) -> tuple[Network, np.ndarray, int, int]:
    """input (graded 15..16 bits, C,H,W) -> conv (sums beyond 2^23; du = 4095) -> [conv] ->
    dense readout: a chain netx can express (no delays, per-channel conv bias, dense
    weight_exp 0 with a mixed-sign matrix, biases at bias_exp 6 or 7)."""
    rng = np.random.default_rng(seed)
    bits = int(rng.choice([15, 16]))
    c_in = int(rng.integers(2, 4))
    in_shape = (c_in, int(rng.integers(4, 7)), int(rng.integers(4, 7)))
    inp = Input("x", in_shape, "graded", bits=bits, scale=1.0)
    cout = int(rng.integers(2, 5))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = (int(rng.integers(0, 2)), int(rng.integers(0, 2)))
    w1 = 2 * rng.integers(-128, 128, size=(cout, c_in, 3, 3))
    w1[rng.random(w1.shape) < 0.2] = rng.choice([-256, 254])
    shape1 = conv2d_output_shape(in_shape, w1.shape, stride, padding, (1, 1))
    # a population fed by the wrapped sums: du = 4095 (no current memory), any voltage decay
    xmax2 = (1 << (bits - 1)) ** 2 / 3.0
    a_typ = float(np.sqrt((w1.reshape(cout, -1).astype(float) ** 2).sum(1).mean() * xmax2))
    a_typ = min(a_typ, WRAP / 2)  # the wrapped a is uniform-ish over ±2^23
    pops = [
        lif_population(
            "c1",
            shape1,
            du=4095,
            dv=int(rng.choice([0, 1024, 4096])),
            vth=int(min(a_typ * rng.uniform(0.5, 2.0), (1 << 17) - 1)),
            bias_mant=rng.integers(-2000, 2000, size=cout),
            bias_exp=7,
        )
    ]
    projs = [Projection("x_c1", "x", "c1", "conv2d", w1, stride=stride, padding=padding)]
    last, last_shape = "c1", shape1
    if rng.random() < 0.5:
        w2 = 2 * rng.integers(-40, 80, size=(3, cout, 2, 2))
        shape2 = conv2d_output_shape(last_shape, w2.shape, (1, 1), (1, 1), (1, 1))
        rms = float(np.sqrt((w2.reshape(3, -1).astype(float) ** 2).sum(1).mean() * 0.3))
        pops.append(
            lif_population(
                "c2",
                shape2,
                du=int(rng.integers(0, 4096)),
                dv=int(rng.integers(0, 4096)),
                vth=int(rms * rng.uniform(0.5, 2.0)),
                bias_mant=rng.integers(-40, 40, size=3) * 2,
                bias_exp=5,
            )
        )
        projs.append(Projection("c1_c2", "c1", "c2", "conv2d", w2, padding=(1, 1)))
        last, last_shape = "c2", shape2
    w3 = 2 * rng.integers(-128, 128, size=(4, int(np.prod(last_shape))))
    w3[0, 0], w3[0, 1] = -256, 254  # mixed sign, the extremes present
    pops.append(
        lif_population(
            "out",
            (4,),
            du=int(rng.integers(0, 4096)),
            dv=int(rng.integers(0, 4097)),
            vth=0,
            bias_mant=rng.integers(-3000, 3000, size=4),
            bias_exp=6,
            role="readout",
        )
    )
    projs.append(Projection(f"{last}_out", last, "out", "dense", w3))
    net = Network(inp, tuple(pops), tuple(projs))
    T = int(rng.integers(2, 5))
    lo, hi = inp.value_range
    x = rng.integers(lo, hi + 1, size=(T, 2) + in_shape)
    return net, x, T, bits


@settings(max_examples=4, **LAVA_SETTINGS)
@given(seed=st.integers(0, 2**32 - 1))
def test_conv_wrap_through_netx(seed, tmp_path_factory):
    net, x, T, bits = wrap_network(seed)
    note(f"seed {seed}: {describe(net)}; T={T}")
    conv = net.projections_into("c1")[0]
    rows, cols, vals, shape = conv2d_matrix(net.input.shape, conv.weight, conv.stride, conv.padding)
    dense = np.zeros(shape, np.int64)
    np.add.at(dense, (rows, cols), vals)
    raw = x.reshape(T * x.shape[1], -1) @ dense.T  # the unwrapped per-step sums
    assert np.abs(raw).max() < (1 << 31) - WRAP  # Lava's Conv: float64 -> int32, then the wrap
    wrapped = (np.abs(raw) >= WRAP).mean()
    assert wrapped > 0.05, (
        f"only {wrapped:.3f} of the conv sums pass 2^23: the wrap is not exercised"
    )
    sim = simulate(net, x, time_steps=T, sequence=True, record=[p.name for p in net.populations])
    rates = window_rates(net, sim, T)
    note(f"wrapped fraction {wrapped:.2f}, window firing rates {rates}")
    assert all(0.0 < r < 1.0 for r in rates.values()), rates
    path = write_netx(net, Path(tmp_path_factory.mktemp("wrap")) / "network.netx.h5")
    got = run_lava(path, x, T, netx=True, input_message_bits=bits, traces=True, timeout=600)
    names = dict(zip([layer.pop.name for layer in netx_chain(net)], got.names))
    assert_identical(net, sim, got, "netx (Lava Conv) -> Lava", names)
