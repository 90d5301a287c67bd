"""Free-running networks (netx semantics) of every neuron model equal the scalar reference
(reference_free.py) exactly, on hypothesis-drawn networks: every population's state variables
and messages at every step, the outputs and the message counts, on both backends. The networks
draw what netx files hold: direct input layers driven through a_in or the bias, graded input
and graded messages, recurrent projections (self-loops and two-population cycles), several
delays between one pair (netx's per-synapse delays), complex (two-port) RF layers, readouts,
and netx's reset_interval / reset_offset."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_free import reference_free

from sakd.hardware.ir import Input, IRError, Network, Population, Projection
from sakd.hardware.neurons import (
    CubaLif,
    Delta,
    ResonateFire,
    ResonateFireIz,
    Sigma,
    SigmaDelta,
)
from sakd.hardware.simulator import SimulationInputError, SimulationOverflowError, simulate

try:
    import torch  # noqa: F401

    BACKENDS = ["numpy", "torch"]
except ImportError:  # pragma: no cover
    BACKENDS = ["numpy"]

FAMILIES = ("cuba", "sdnn", "rf", "mixed")


def _weights(rng: np.random.Generator, shape: tuple[int, ...], odd: bool) -> np.ndarray:
    """Weights within Lava's model limits: even mixed-sign ones, or (netx rescaled) any in
    [-256, 255]."""
    w = rng.integers(-256, 256, size=shape) if odd else 2 * rng.integers(-128, 128, size=shape)
    small = rng.random() < 0.5
    if small:
        w = rng.integers(-12, 13, size=shape) * (1 if odd else 2)
    return np.where(rng.random(shape) < 0.2, 0, w)


def _neuron(rng: np.random.Generator, model: str, n: int, readout: bool = False):
    if model == "cuba_lif":
        du = int(rng.choice([-1, 0, 1024, 4095]))
        dv = int(rng.choice([0, 128, 2048, 4096]))
        vth = 1 << 17 if readout else int(rng.choice([0, 3, 40, 500]))
        bias = rng.integers(-300, 300, size=() if rng.random() < 0.5 else (n,))
        return CubaLif(du=du, dv=dv, vth=vth, bias_mant=bias, bias_exp=int(rng.choice([0, 6])))
    if model == "delta":
        return Delta(vth=int(rng.choice([0, 1, 5])), spike_exp=int(rng.choice([0, 6])))
    if model == "sigma_delta":
        return SigmaDelta(vth=int(rng.choice([0, 1, 4])), bias_mant=rng.integers(-20, 20, n),
                          spike_exp=int(rng.choice([0, 3, 6])))
    if model == "sigma":
        return Sigma()
    cls = ResonateFire if model == "rf" else ResonateFireIz
    return cls(sin_decay=int(rng.integers(100, 2000)), cos_decay=int(rng.integers(2000, 3900)),
               vth=int(rng.integers(1, 60)))


def random_free_network(seed: int) -> tuple[Network, np.ndarray, int, int | None, int]:
    rng = np.random.default_rng(seed)
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    n_in = int(rng.integers(1, 5))
    direct = family == "sdnn" or rng.random() < 0.4
    bits = int(rng.choice([1, 8, 12])) if not direct else 12
    inp = Input("input", (n_in,), "spikes" if bits == 1 else "graded", bits=None if bits == 1 else bits)
    pops: list[Population] = []
    projs: list[Projection] = []
    src, src_n = inp.name, n_in
    models: list[str]
    if family == "cuba":
        models = ["cuba_lif"] * int(rng.integers(1, 5))
    elif family == "sdnn":
        models = ["delta"] + ["sigma_delta"] * int(rng.integers(0, 2)) + ["sigma"]
    elif family == "rf":
        models = ["cuba_lif", str(rng.choice(["rf", "rf_iz"]))]
    else:
        models = [str(rng.choice(["cuba_lif", "delta"]))] + [
            str(rng.choice(["cuba_lif", "sigma_delta", "rf", "rf_iz"]))
            for _ in range(int(rng.integers(1, 3)))]
    readout_last = family == "cuba" and rng.random() < 0.3
    odd = rng.random() < 0.5
    for k, model in enumerate(models):
        name = f"layer{k}"
        n = n_in if (k == 0 and direct) else int(rng.integers(1, 6))
        last = k == len(models) - 1
        neuron = _neuron(rng, model, n, readout=last and readout_last)
        bits_out = int(rng.choice([8, 16])) if model == "cuba_lif" and rng.random() < 0.3 else None
        pops.append(Population(name, (n,), neuron, role="readout" if last and readout_last
                               else "spiking", message_bits=bits_out))
        if k == 0 and direct:
            port = "bias" if model == "cuba_lif" and rng.random() < 0.5 else neuron.ports[0]
            projs.append(Projection(f"{name}.direct", src, name, "direct", 1, port=port))
        else:
            ports = neuron.ports[:2] if model in ("rf", "rf_iz") else neuron.ports[:1]
            for port in ports:
                delays = [0] if rng.random() < 0.6 else sorted(
                    {int(d) for d in rng.integers(0, 4, size=int(rng.integers(2, 4)))})
                for d in delays:  # one projection per distinct delay (netx per-synapse delays)
                    w = _weights(rng, (n, src_n), odd)
                    projs.append(Projection(f"{name}.{port}.d{d}", src, name, "dense", w,
                                            weight_exp=int(rng.choice([0, -2, 1])), delay=d,
                                            port=port))
        if model in ("cuba_lif", "sigma_delta") and not (last and readout_last) and rng.random() < 0.4:
            w = _weights(rng, (n, n), odd)
            projs.append(Projection(f"{name}.rec", name, name, "dense", w,
                                    delay=int(rng.choice([0, 1]))))
        src, src_n = name, n
    # a two-population cycle: the layer before the last feeds back into the one before it
    if len(pops) >= 3 and family == "cuba" and rng.random() < 0.5:
        a, b = pops[-3], pops[-2]
        projs.append(Projection("feedback", b.name, a.name, "dense",
                                _weights(rng, (a.size, b.size), odd)))
    net = Network(inp, tuple(pops), tuple(projs), schedule="free", limits="lava",
                  metadata={"family": family})
    hi = 1 << (bits - 1) if bits > 1 else 1
    lo = 0 if bits == 1 else -hi
    x = rng.integers(lo, min(hi, 200), size=(int(rng.integers(1, 3)), n_in))
    steps = int(rng.integers(1, 11))
    interval = None if rng.random() < 0.5 else int(rng.integers(1, 6))
    offset = int(rng.integers(-2, 4))
    return net, x, steps, interval, offset


def _check(seed: int, backend: str) -> None:
    net, x, steps, interval, offset = random_free_network(seed)
    try:
        ref = reference_free(net, x, steps, interval, offset)
    except OverflowError:
        with pytest.raises(SimulationOverflowError):
            simulate(net, x, time_steps=steps, backend=backend, reset_interval=interval,
                     reset_offset=offset, record=[p.name for p in net.populations])
        return
    try:
        got = simulate(net, x, time_steps=steps, backend=backend, reset_interval=interval,
                       reset_offset=offset, record=[p.name for p in net.populations])
    except SimulationOverflowError as exc:  # only the documented conservative checks may differ:
        # sigma-delta's activation bound, and CUBA-LIF's |u| < 2^31 - 2^25 (cuba_lif.U_LIMIT,
        # which keeps the next step's int32 sums exact)
        assert "sigma + bias" in str(exc) or "beyond what Lava's int32 state holds" in str(exc), exc
        return
    for name, ref_tr in ref["traces"].items():
        for key, arr in ref_tr.items():
            np.testing.assert_array_equal(got.traces[name][key], arr, err_msg=f"{name}/{key}")
    assert set(got.outputs) == set(ref["outputs"])
    for name, arr in ref["outputs"].items():
        np.testing.assert_array_equal(got.outputs[name], arr, err_msg=f"output {name}")
    for pop in net.populations:
        s = ref["traces"][pop.name]["s"]
        np.testing.assert_array_equal(got.counts.populations[pop.name].messages,
                                      (s != 0).sum(axis=(0, 2)))
        assert got.counts.populations[pop.name].message_bits == pop.message_bits


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_free_networks_equal_the_scalar_reference(backend, seed):
    _check(seed, backend)


def test_every_family_and_feature_is_drawn():
    """The generator covers what it claims (over the first 300 seeds)."""
    seen: set[str] = set()
    for seed in range(300):
        net, _, _, interval, _ = random_free_network(seed)
        seen.add(net.metadata["family"])
        seen.update(p.neuron.model for p in net.populations)
        seen.update(f"port:{p.port}" for p in net.projections)
        if any(net.is_recurrent(c) for c in net.components()):
            seen.add("recurrent")
        if any(len(c) > 1 for c in net.components()):
            seen.add("cycle")
        if interval is not None:
            seen.add("reset")
        if any(p.message_bits > 1 and p.binary for p in net.populations):
            seen.add("graded-lif")
        pairs = [(p.source, p.target, p.port) for p in net.projections]
        if len(pairs) > len(set(pairs)):
            seen.add("several-delays")
    expected = {*FAMILIES, "cuba_lif", "delta", "sigma_delta", "sigma", "rf", "rf_iz",
                "port:a_in", "port:bias", "port:a_real_in", "port:a_imag_in", "recurrent",
                "cycle", "reset", "graded-lif", "several-delays"}
    assert expected <= seen, expected - seen


def test_a_recurrent_network_is_refused_in_the_sample_schedule():
    inp = Input("x", (2,), "spikes")
    pop = Population("p", (2,), CubaLif(du=4095, dv=0, vth=1 << 17), role="readout")
    rec = Projection("rec", "p", "p", "dense", np.full((2, 2), 2))
    with pytest.raises(IRError, match="cycle"):
        Network(inp, (pop,), (Projection("w", "x", "p", "dense", np.full((2, 2), 2)), rec))


def test_reset_options_are_for_free_networks_only():
    inp = Input("x", (2,), "spikes")
    pop = Population("p", (2,), CubaLif.readout(Network.__dataclass_fields__["target"].default),
                     role="readout")
    net = Network(inp, (pop,), (Projection("w", "x", "p", "dense", np.full((2, 2), 2)),),
                  time_steps=3)
    with pytest.raises(SimulationInputError, match="free-running"):
        simulate(net, np.ones((1, 2), np.int64), reset_interval=3)


def test_a_port_the_model_lacks_is_an_error_naming_it():
    inp = Input("x", (2,), "spikes")
    pop = Population("p", (2,), Sigma())
    with pytest.raises(IRError, match="port 'bias' is not an input of target 'p' \\(sigma: a_in\\)"):
        Network(inp, (pop,), (Projection("w", "x", "p", "dense", np.full((2, 2), 2), port="bias"),),
                schedule="free")
