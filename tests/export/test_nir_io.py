"""NIR writer and reader (sakd.formats.nir): structure, exact round trips, the written graph's
meaning (a NIR interpreter against the simulator), files made by others, and refusals."""

from __future__ import annotations

import h5py
import nir
import numpy as np
import pytest
import random_snn
import torch
import torch.nn.functional as F

from sakd.formats.nir import (
    DEFAULT_DT,
    NirExportError,
    NirImportError,
    import_nir,
    ir_to_nir,
    read_nir,
    write_nir,
)
from sakd.formats.nir.compose import LinearOp, as_dense, compose
from sakd.hardware.ir import Input, Network, Projection
from sakd.hardware.neurons.cuba_lif import lif_population
from sakd.hardware.simulator import simulate

ARCHS = {"test_convnet": (1, 8, 8), "test_convnet_pool": (1, 8, 8), "test_resnet": (3, 8, 8),
         "test_sew_resnet": (3, 8, 8)}


def lowered(arch: str) -> Network:
    return random_snn.lowered(arch, ARCHS[arch])


def kinds(graph) -> dict[str, int]:
    out: dict[str, int] = {}
    for node in graph.nodes.values():
        out[type(node).__name__] = out.get(type(node).__name__, 0) + 1
    return out


def preds(graph) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        out[b].append(a)
    return out


# ---------------------------------------------------------------------------------------------
# writing: structure


def test_convnet_graph_structure(tmp_path):
    net = lowered("test_convnet")
    path = write_nir(net, tmp_path / "net.nir")
    graph = nir.read(path)  # type checking on
    assert kinds(graph) == {"Input": 1, "Conv2d": 2, "CubaLIF": 3, "Flatten": 1, "Affine": 2,
                            "I": 1, "Output": 1}
    p = preds(graph)
    assert p["stage1.0"] == ["input"] and p["stage1.2"] == ["stage1.0"]
    assert p["fc1"] == ["stage2.2.flatten"] and p["stage2.2.flatten"] == ["stage2.2"]
    assert p["readout"] == ["fc"] and p["output"] == ["readout"]
    # units: integer weights as stored, thresholds = vth, bias / 64, Loihi decays at dt = 1e-4
    pop = net.population("stage1.2")
    node = graph.nodes["stage1.2"]
    assert np.all(node.v_threshold == pop.neuron.vth)
    assert np.allclose(node.tau_syn, DEFAULT_DT) and np.allclose(node.tau_mem, DEFAULT_DT * 4096 / pop.neuron.dv)
    assert np.allclose(node.r * DEFAULT_DT / node.tau_mem, 1) and np.allclose(node.w_in, 1)
    conv = graph.nodes["stage1.0"]
    assert np.array_equal(conv.weight, net.projections[0].weight)
    assert np.array_equal(conv.bias * 64, pop.neuron.bias_mant << pop.neuron.bias_exp)
    assert np.allclose(graph.nodes["readout"].r, 1 / DEFAULT_DT)
    assert graph.metadata["generator"] == "sakd" and graph.metadata["timing"] == "layered"


@pytest.mark.parametrize("arch", ["test_resnet", "test_sew_resnet"])
def test_residuals_are_converging_edges(tmp_path, arch):
    net = lowered(arch)
    graph = nir.read(write_nir(net, tmp_path / "net.nir"))
    p = preds(graph)
    fan_in = [pop.name for pop in net.populations if len(net.projections_into(pop.name)) > 1]
    assert fan_in  # the residual adds
    for pop in net.populations:
        assert sorted(p[pop.name]) == sorted(proj.name for proj in net.projections_into(pop.name))
    assert "Delay" not in kinds(graph)  # layered timing: the IR's balancing delays are implicit
    assert any(proj.delay for proj in net.projections)


@pytest.mark.parametrize("arch", ["test_resnet", "test_sew_resnet"])
def test_lava_timing_writes_delay_nodes(tmp_path, arch):
    net = lowered(arch)
    graph = nir.read(write_nir(net, tmp_path / "net.nir", timing="lava"))
    p = preds(graph)
    delayed = [proj for proj in net.projections if proj.delay]
    assert kinds(graph)["Delay"] == len(delayed)
    for proj in delayed:
        node = graph.nodes[f"{proj.name}.delay"]
        assert np.allclose(node.delay, proj.delay * DEFAULT_DT)
        assert p[f"{proj.name}.delay"] == [proj.name] and f"{proj.name}.delay" in p[proj.target]


# ---------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("timing", ["layered", "lava"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_round_trip_equals(tmp_path, arch, timing):
    net = lowered(arch)
    back = read_nir(write_nir(net, tmp_path / "net.nir", timing=timing))
    assert back.equals(net)
    assert import_nir(ir_to_nir(net, timing=timing)).network.equals(net)  # a graph object too


def hand_built() -> Network:
    """Every feature the writer maps: spike input, du < 4095 (leaky current) with and without
    leak, biases through Affine/Conv2d and through v_leak (per-neuron conv bias), a grouped
    conv, dense weight_exp, a leaky readout, and a non-minimal (excess) delay."""
    rng = np.random.default_rng(5)

    def even(shape, lo=-60, hi=60):
        return 2 * rng.integers(lo // 2, hi // 2, size=shape)

    pops = (
        lif_population("a", (4, 6, 6), du=4095, dv=1024, vth=300, bias_mant=rng.integers(-50, 50, (4, 6, 6)),
                   bias_exp=6, scale=3.0, origin="conv a"),
        lif_population("b", (4, 6, 6), du=3000, dv=0, vth=200, origin="grouped"),
        lif_population("c", (12,), du=2047, dv=300, vth=250, bias_mant=rng.integers(-9, 9, 12), bias_exp=7),
        lif_population("d", (12,), du=4095, dv=0, vth=99, bias_mant=np.int64(5), bias_exp=6),
        lif_population("out", (3,), du=4095, dv=100, vth=1 << 17, bias_mant=np.array([1, -2, 3]),
                   bias_exp=6, role="readout", scale=7.5),
    )
    projs = (
        Projection("in_a", "x", "a", "conv2d", even((4, 2, 3, 3)), padding=(1, 1)),
        Projection("a_b", "a", "b", "conv2d", even((4, 2, 3, 3)), padding=(1, 1), groups=2),
        Projection("b_c", "b", "c", "dense", even((12, 144)), weight_exp=-2),
        Projection("c_d", "c", "d", "dense", even((12, 12))),
        Projection("a_d", "a", "d", "dense", even((12, 144)), delay=2, weight_exp=1),
        Projection("d_out", "d", "out", "dense", even((3, 12)), delay=1),
    )
    meta = {"arch": "hand", "time_steps": 3, "nested": {"k": [1, 2]}}
    return Network(Input("x", (2, 6, 6), "spikes"), pops, projs, metadata=meta)


@pytest.mark.parametrize("timing", ["layered", "lava"])
def test_round_trip_hand_built(tmp_path, timing):
    net = hand_built()
    path = write_nir(net, tmp_path / "hand.nir", timing=timing)
    graph = nir.read(path)
    k = kinds(graph)
    assert k["LI"] == 1 and k["IF"] == 2 and k["CubaLIF"] == 2 and k["CubaLI"] == 1
    assert graph.nodes["a_b"].groups == 1 and graph.nodes["a_b"].weight.shape == (4, 4, 3, 3)
    assert np.any(graph.nodes["a"].v_leak)  # a per-neuron conv bias goes to v_leak
    assert read_nir(path).equals(net)
    if timing == "lava":
        assert k["Delay"] == 2


def test_unrepresentable_bias_is_refused():
    net = Network(Input("x", (3,), "spikes"),
                  (lif_population("p", (2,), du=100, dv=0, vth=10, bias_mant=np.int64(3), bias_exp=6),
                   lif_population("r", (2,), du=4095, dv=0, vth=1 << 17, role="readout")),
                  (Projection("xp", "x", "p", "dense", np.full((2, 3), 2)),
                   Projection("pr", "p", "r", "dense", np.full((2, 2), 2))))
    with pytest.raises(NirExportError, match="population 'p'.*no exact NIR form"):
        ir_to_nir(net)


def test_write_is_atomic(tmp_path):
    path = tmp_path / "net.nir"
    path.write_bytes(b"old")
    bad = Network(Input("x", (3,), "spikes"),
                  (lif_population("p", (2,), du=100, dv=0, vth=10, bias_mant=np.int64(3), bias_exp=6),
                   lif_population("r", (2,), du=4095, dv=0, vth=1 << 17, role="readout")),
                  (Projection("xp", "x", "p", "dense", np.full((2, 3), 2)),
                   Projection("pr", "p", "r", "dense", np.full((2, 2), 2))))
    with pytest.raises(NirExportError):
        write_nir(bad, path)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["net.nir"]


# ---------------------------------------------------------------------------------------------
# what the written graph means: a NIR interpreter (layered, forward Euler, Lava's 12-bit decay
# truncation) against the simulator


def _trunc_decay(x: torch.Tensor, keep: float) -> torch.Tensor:
    k = round(4096 * keep)
    return torch.trunc(x * k / 4096)


def run_nir_fixed_point(graph, x: torch.Tensor, steps: int, dt: float):
    """Execute ``graph`` step by step (every edge instantaneous), neuron state in v_int = 64·v
    units with Lava's truncating decays. Returns spikes per neuron node [steps, B, ...] and the
    final v of every non-spiking node."""
    order, p = [], preds(graph)
    indeg = {n: len(p[n]) for n in graph.nodes}
    ready = [n for n, d in indeg.items() if d == 0]
    while ready:
        n = ready.pop()
        order.append(n)
        for a, b in graph.edges:
            if a == n:
                indeg[b] -= 1
                if indeg[b] == 0:
                    ready.append(b)
    state: dict[str, dict[str, torch.Tensor]] = {}
    spikes: dict[str, list[torch.Tensor]] = {}
    for _ in range(steps):
        val: dict[str, torch.Tensor] = {}
        for name in order:
            node = graph.nodes[name]
            ins = [val[q] for q in p[name]]
            X = sum(ins[1:], ins[0]) if ins else None
            t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)
            if isinstance(node, nir.Input):
                val[name] = x
            elif isinstance(node, nir.Conv2d):
                val[name] = F.conv2d(X, t(node.weight), t(node.bias), tuple(node.stride),
                                     tuple(node.padding), tuple(node.dilation), int(node.groups))
            elif isinstance(node, nir.Affine):
                val[name] = X @ t(node.weight).T + t(node.bias)
            elif isinstance(node, nir.Linear):
                val[name] = X @ t(node.weight).T
            elif isinstance(node, nir.Flatten):
                val[name] = X.reshape(X.shape[0], -1)
            elif isinstance(node, nir.Output):
                val[name] = X
            else:
                s = state.setdefault(name, {"i": torch.zeros_like(X), "v": torch.zeros_like(X)})
                x64 = torch.round(64 * X)
                if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
                    a = dt / float(node.tau_syn.reshape(-1)[0])
                    b = dt / float(node.tau_mem.reshape(-1)[0])
                    s["i"] = _trunc_decay(s["i"], 1 - a) + torch.round(a * float(node.w_in.reshape(-1)[0]) * x64)
                    s["v"] = (_trunc_decay(s["v"], 1 - b) + torch.round(b * float(node.r.reshape(-1)[0]) * s["i"])
                              + torch.round(64 * b * t(node.v_leak)))
                elif isinstance(node, (nir.IF, nir.I)):
                    s["v"] = s["v"] + torch.round(dt * float(node.r.reshape(-1)[0]) * x64)
                else:
                    raise TypeError(f"interpreter: no rule for {type(node).__name__}")
                if isinstance(node, (nir.CubaLIF, nir.IF)):
                    fired = s["v"] > 64 * t(node.v_threshold)
                    s["v"] = torch.where(fired, 0.0, s["v"])
                    spikes.setdefault(name, []).append(fired)
                    val[name] = fired.double()
                else:
                    val[name] = s["v"]
    return {k: torch.stack(v).numpy() for k, v in spikes.items()}, {
        k: s["v"].numpy() for k, s in state.items() if k not in spikes}


@pytest.mark.parametrize("arch", ["test_resnet", "test_sew_resnet", "test_convnet_pool"])
def test_written_graph_computes_the_ir(arch):
    """Layered execution of the written graph (no Delay nodes) equals the IR simulation shifted
    by each population's latency: units, bias placement, thresholds and timing are right."""
    net = lowered(arch)
    T = 4
    x = net.input.encode(np.random.default_rng(3).normal(size=(6, *net.input.shape)))
    sim = simulate(net, x, time_steps=T, record=[p.name for p in net.populations])
    spikes, volts = run_nir_fixed_point(ir_to_nir(net), torch.as_tensor(x, dtype=torch.float64),
                                        T, DEFAULT_DT)
    lat = net.latencies
    total = 0
    for pop in net.populations:
        if pop.is_readout:
            assert np.array_equal(volts[pop.name], sim.readout_v)
            continue
        window = sim.traces[pop.name]["s"][lat[pop.name]:lat[pop.name] + T]
        assert np.array_equal(spikes[pop.name], window), pop.name
        total += int(window.sum())
    assert total > 100  # the comparison is not vacuous


# ---------------------------------------------------------------------------------------------
# files made by others


def spikingjelly_style_file(path, dt=1e-4, seed=0):
    """What spikingjelly's exporter writes for Conv2d -> LIFNode(tau=2, decay_input=True) ->
    Flatten -> Linear -> IFNode -> Linear (weights on a 1/64 grid so quantization is exact)."""
    rng = np.random.default_rng(seed)

    def grid(shape):
        w = rng.integers(-127, 128, size=shape).astype(np.float32)
        w.reshape(-1)[0] = 127
        return w / 64

    c, h, w = 2, 6, 6
    conv_w, conv_b = grid((3, c, 3, 3)), rng.integers(-20, 20, 3).astype(np.float32) / 64
    fc1_w, fc1_b = grid((10, 3 * 4 * 4)), rng.integers(-20, 20, 10).astype(np.float32) / 64
    fc2_w, fc2_b = grid((4, 10)), rng.integers(-20, 20, 4).astype(np.float32) / 64
    sh = (3, 4, 4)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([c, h, w])}),
        "conv": nir.Conv2d(input_shape=(h, w), weight=conv_w, stride=1, padding=0, dilation=1,
                           groups=1, bias=conv_b),
        "lif": nir.LIF(tau=np.full(sh, 2 * dt, np.float32), r=np.ones(sh, np.float32),
                       v_leak=np.zeros(sh, np.float32), v_threshold=np.ones(sh, np.float32),
                       v_reset=np.zeros(sh, np.float32)),
        "flat": nir.Flatten(input_type={"input": np.array(sh)}, start_dim=0),
        "fc1": nir.Affine(weight=fc1_w, bias=fc1_b),
        "if": nir.IF(r=np.full(10, 1 / dt, np.float32), v_threshold=np.ones(10, np.float32),
                     v_reset=np.zeros(10, np.float32)),
        "fc2": nir.Affine(weight=fc2_w, bias=fc2_b),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }
    edges = [("input", "conv"), ("conv", "lif"), ("lif", "flat"), ("flat", "fc1"), ("fc1", "if"),
             ("if", "fc2"), ("fc2", "output")]
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, metadata={"framework": "spikingjelly"}))
    return {"conv": (conv_w, conv_b), "fc1": (fc1_w, fc1_b), "fc2": (fc2_w, fc2_b)}


def float_reference(params, x, spike_rule):
    """spikingjelly/NIR semantics in float64 (forward Euler at dt): LIF v = v + (X - v)/2,
    IF v = v + X, hard reset to 0; ``spike_rule`` '>' (NIR) or '>=' (spikingjelly)."""
    fire = (lambda v: v > 1) if spike_rule == ">" else (lambda v: v >= 1)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)
    T, B = x.shape[:2]
    v1 = torch.zeros(B, 3, 4, 4, dtype=torch.float64)
    v2 = torch.zeros(B, 10, dtype=torch.float64)
    s1s, s2s, vs1, vs2, logits = [], [], [], [], 0
    for k in range(T):
        x1 = F.conv2d(t(x[k]), t(params["conv"][0]), t(params["conv"][1]))
        v1 = v1 + (x1 - v1) / 2
        vs1.append(v1.clone())
        s1 = fire(v1)
        v1 = torch.where(s1, 0.0, v1)
        x2 = s1.double().reshape(B, -1) @ t(params["fc1"][0]).T + t(params["fc1"][1])
        v2 = v2 + x2
        vs2.append(v2.clone())
        s2 = fire(v2)
        v2 = torch.where(s2, 0.0, v2)
        logits = logits + s2.double() @ t(params["fc2"][0]).T + t(params["fc2"][1])
        s1s.append(s1)
        s2s.append(s2)
    return (torch.stack(s1s).numpy(), torch.stack(s2s).numpy(), logits.numpy(),
            torch.stack(vs1).numpy(), torch.stack(vs2).numpy())


def test_spikingjelly_style_file_computes_the_float_reference(tmp_path):
    params = spikingjelly_style_file(tmp_path / "sj.nir")
    imp = import_nir(tmp_path / "sj.nir")  # dt = 1e-4, spikes, '>'
    net = imp.network
    assert imp.assumptions["dt"] == 1e-4 and imp.assumptions["spike_rule"] == ">"
    assert net.input.encoding == "spikes"
    lif, if_, readout = net.populations
    assert (lif.neuron.du, lif.neuron.dv, lif.neuron.vth, lif.scale) == (4095, 2048, 256, 256.0)  # S·g·127/64 = 254
    assert (if_.neuron.du, if_.neuron.dv, if_.neuron.vth, if_.scale) == (4095, 0, 128, 128.0)
    assert readout.is_readout and any("integrating readout" in n for n in imp.assumptions["notes"])
    assert net.metadata["nir_import"]["populations"]["lif"]["weights_clipped"] == 0

    T, B = 8, 16  # T <= 8: every halving of v_int is exact, so only the rule can differ
    x = (np.random.default_rng(1).random((T, B, 2, 6, 6)) < 0.4).astype(np.int64)
    sim = simulate(net, x, time_steps=T, sequence=True, record=["lif", "if"])
    lat = net.latencies
    s1, s2, logits, v1, _ = float_reference(params, x, ">")
    got1 = sim.traces["lif"]["s"][lat["lif"]:lat["lif"] + T]
    got2 = sim.traces["if"]["s"][lat["if"]:lat["if"] + T]
    assert np.array_equal(got1, s1) and np.array_equal(got2, s2)
    assert s1.sum() > 50 and s2.sum() > 20
    assert np.array_equal(sim.readout_v, np.rint(64 * 128 * logits).astype(np.int64))
    # spikingjelly itself fires on >=: a neuron's first difference is always an exact tie v == 1
    # (after it the two trajectories part: one was reset, the other not)
    sj1, _, _, _, _ = float_reference(params, x, ">=")
    ties = v1 == 1.0
    differ = sj1 != s1
    first = np.argmax(differ, axis=0)  # first differing step per neuron (0 if none)
    some = differ.any(axis=0)
    assert some.any() and np.all(np.take_along_axis(ties, first[None], 0)[0][some])


def test_greater_equal_rule_and_dt(tmp_path):
    spikingjelly_style_file(tmp_path / "sj.nir")
    net = read_nir(tmp_path / "sj.nir", firing=">=")
    assert net.population("if").neuron.vth == 127  # ceil(S·θ) − 1: v ≥ θ for v in multiples of 64
    # the same file read at sinabs's dt = 1: tau = 2e-4 s is far below dt, Euler overshoots
    with pytest.raises(NirImportError, match="shorter than dt"):
        read_nir(tmp_path / "sj.nir", dt=1.0)


def test_sinabs_style_if_needs_dt_one(tmp_path):
    """sinabs writes IF with r = 1 for dt = 1: read at dt = 1 it equals spikingjelly's r = 1/dt at
    dt = 1e-4."""
    def graph(r):
        return nir.NIRGraph(nodes={
            "input": nir.Input(input_type={"input": np.array([4])}),
            "fc": nir.Linear(weight=np.array([[1, -1, 0.5, 0.25], [0.5, 0.5, -1, 1]], np.float32)),
            "if": nir.IF(r=np.full(2, r, np.float32), v_threshold=np.full(2, 2.0, np.float32)),
            "fc2": nir.Linear(weight=np.eye(2, dtype=np.float32)),
            "output": nir.Output(output_type={"output": np.array([2])})},
            edges=[("input", "fc"), ("fc", "if"), ("if", "fc2"), ("fc2", "output")])
    a = read_nir(graph(1.0), dt=1.0)
    b = read_nir(graph(1e4), dt=1e-4)
    assert [p.neuron.vth for p in a.populations] == [p.neuron.vth for p in b.populations]
    assert np.array_equal(a.projections[0].weight, b.projections[0].weight)


def test_pooling_folds_into_projections():
    rng = np.random.default_rng(2)
    sh = (3, 4, 4)

    def lif(shape):
        return nir.LIF(tau=np.full(shape, 2e-4), r=np.full(shape, 2.0), v_leak=np.zeros(shape),
                       v_threshold=np.ones(shape))

    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 8, 8])}),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(size=(3, 2, 3, 3)), stride=1,
                           padding=1, dilation=1, groups=1, bias=np.zeros(3)),
        "pool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                              padding=np.array([0, 0])),
        "lif1": lif(sh),
        "pool2": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                               padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([3, 2, 2])}, start_dim=0),
        "fc": nir.Affine(weight=rng.normal(size=(5, 12)), bias=np.zeros(5)),
        "lif2": lif((5,)),
        "output": nir.Output(output_type={"output": np.array([5])}),
    }
    edges = [("input", "conv"), ("conv", "pool"), ("pool", "lif1"), ("lif1", "pool2"),
             ("pool2", "flat"), ("flat", "fc"), ("fc", "lif2"), ("lif2", "output")]
    net = read_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), dt=1e-4)
    conv, fc, count = net.projections
    assert conv.kind == "conv2d" and conv.stride == (2, 2) and conv.weight.shape == (3, 2, 4, 4)
    assert fc.kind == "dense" and fc.weight.shape == (5, 48)  # pool + flatten + affine, composed
    assert count.target == "readout" and np.array_equal(count.weight, 2 * np.eye(5))


@pytest.mark.parametrize("case", ["pool_conv", "conv_pool", "pool_conv_padded", "conv_conv"])
def test_compose_is_exact(case):
    rng = np.random.default_rng(4)

    def conv(in_shape, cout, k, stride=(1, 1), padding=(0, 0)):
        from sakd.hardware.ir import conv2d_output_shape
        w = rng.normal(size=(cout, in_shape[0], k, k))
        out = conv2d_output_shape(in_shape, w.shape, stride, padding)
        return LinearOp("conv", w, rng.normal(size=cout), in_shape, out, stride, padding)

    def pool(in_shape, k):
        c, h, w = in_shape
        return LinearOp("conv", np.full((c, 1, k, k), 0.25), None, in_shape, (c, h // k, w // k),
                   (k, k), (0, 0), (1, 1), c, pool=(k, k))

    if case == "pool_conv":
        a = pool((2, 8, 8), 2)
        b = conv(a.out_shape, 3, 3, padding=(1, 1))
    elif case == "conv_pool":
        a = conv((2, 8, 8), 3, 3)
        b = pool(a.out_shape, 2)
    elif case == "pool_conv_padded":
        a = pool((2, 9, 9), 2)
        b = conv(a.out_shape, 3, 3, padding=(1, 1))
    else:
        a = conv((2, 8, 8), 3, 3)
        b = conv(a.out_shape, 4, 3)
    c = compose(a, b)
    expected = compose(as_dense(a), as_dense(b))
    assert c.kind == ("dense" if case in ("pool_conv_padded", "conv_conv") else "conv")
    got = as_dense(c)
    assert np.allclose(got.weight, expected.weight) and np.allclose(got.bias, expected.bias)


# ---------------------------------------------------------------------------------------------
# refusals


def small_graph(extra_nodes=None, extra_edges=None, neuron=None, metadata=None):
    nodes = {
        "input": nir.Input(input_type={"input": np.array([3])}),
        "fc": nir.Affine(weight=np.ones((2, 3), np.float32), bias=np.zeros(2, np.float32)),
        "lif": neuron or nir.LIF(tau=np.full(2, 2e-4), r=np.ones(2), v_leak=np.zeros(2),
                                 v_threshold=np.ones(2)),
        "out": nir.Linear(weight=np.eye(2, dtype=np.float32)),
        "output": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "out"), ("out", "output")]
    nodes.update(extra_nodes or {})
    edges += extra_edges or []
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata or {}, type_check=False)


def test_reads_a_small_graph():
    net = read_nir(small_graph(), dt=1e-4)
    assert [p.name for p in net.populations] == ["lif", "output.readout"]


@pytest.mark.parametrize("node, match", [
    (nir.Threshold(threshold=np.ones(2)), "'thr' \\(Threshold\\): a bare threshold"),
    (nir.Scale(scale=np.ones(2)), "'thr' \\(Scale\\): an elementwise scaling"),
])
def test_refused_nodes_are_named(node, match):
    g = small_graph({"thr": node}, [("lif", "thr"), ("thr", "out")])
    with pytest.raises(NirImportError, match=match) as err:
        read_nir(g)
    assert err.value.node == "thr"


def test_unknown_node_is_named():
    class Mystery(nir.Linear):
        pass

    g = small_graph({"odd": Mystery(weight=np.eye(2))}, [("lif", "odd"), ("odd", "out")])
    with pytest.raises(NirImportError, match="'odd' \\(Mystery\\): unknown node type"):
        read_nir(g)


def test_recurrent_edge_is_refused():
    g = small_graph({"rec": nir.Linear(weight=np.eye(2, dtype=np.float32))},
                    [("lif", "rec"), ("rec", "lif")])
    with pytest.raises(NirImportError, match="recurrent edge") as err:
        read_nir(g)
    assert err.value.node in ("lif", "rec")


@pytest.mark.parametrize("neuron, match", [
    (nir.LIF(tau=np.full(2, 2e-4), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
             v_reset=np.full(2, 0.5)), "v_reset = 0.5"),
    (nir.LIF(tau=np.full(2, 2e-5), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
     "shorter than dt"),
    (nir.LIF(tau=np.full(2, 2e-4), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.array([1.0, 2.0])),
     "v_threshold differs between neurons"),
    (nir.LI(tau=np.full(2, 2e-4), r=np.ones(2), v_leak=np.zeros(2)), "integrating neuron"),
])
def test_unmappable_neurons(neuron, match):
    with pytest.raises(NirImportError, match=match):
        read_nir(small_graph(neuron=neuron), dt=1e-4)


def test_reset_by_subtraction_in_metadata_is_refused():
    neuron = nir.LIF(tau=np.full(2, 2e-4), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                     metadata={"reset_mechanism": "subtract"})
    with pytest.raises(NirImportError, match="'lif'.*reset by subtraction"):
        read_nir(small_graph(neuron=neuron), dt=1e-4)


def test_truncated_file(tmp_path):
    path = write_nir(lowered("test_convnet"), tmp_path / "net.nir")
    data = path.read_bytes()
    (tmp_path / "cut.nir").write_bytes(data[: len(data) // 2])
    with pytest.raises(NirImportError, match="cut.nir"):
        read_nir(tmp_path / "cut.nir")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_group("layer")
    with pytest.raises(NirImportError, match="other.h5: not a NIR file"):
        read_nir(tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError):
        read_nir(tmp_path / "missing.nir")


def test_foreign_read_of_our_file_is_the_same_network_up_to_scale(tmp_path):
    """Without metadata our integer file is an ordinary float network: the reader recovers the
    same decays, and thresholds and weights scaled by its own integer scale S."""
    net = lowered("test_convnet")
    imp = import_nir(write_nir(net, tmp_path / "net.nir"), trust_metadata=False,
                     input_encoding="graded", input_scale=1.0)
    back = imp.network
    assert not imp.assumptions["own_file"] and back.metadata["nir_import"]["dt"] == DEFAULT_DT
    for a, b in zip(net.populations, back.populations):
        assert (a.neuron.du, a.neuron.dv) == (b.neuron.du, b.neuron.dv)
        if not a.is_readout:
            assert b.neuron.vth == round(b.scale * a.neuron.vth)
    for a, b in zip(net.projections, back.projections):
        s = back.population(b.target).scale
        assert np.array_equal(b.weight.reshape(a.weight.shape), s * a.weight)


def test_foreign_sew_residual_converging_at_a_conv():
    """nirtorch exports ``conv(a + b)`` as edges a -> conv and b -> conv: two projections, the
    conv's bias counted once, the shorter path delayed so both arrive together."""
    rng = np.random.default_rng(6)

    def lif(shape):
        return nir.LIF(tau=np.full(shape, 2e-4), r=np.full(shape, 2.0), v_leak=np.zeros(shape),
                       v_threshold=np.ones(shape))

    def conv(cin, cout, bias):
        return nir.Conv2d(input_shape=(4, 4), weight=rng.normal(size=(cout, cin, 3, 3)), stride=1,
                          padding=1, dilation=1, groups=1, bias=np.full(cout, bias))

    sh = (2, 4, 4)
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
             "c0": conv(1, 2, 0.0), "a": lif(sh), "c1": conv(2, 2, 0.0), "b": lif(sh),
             "c2": conv(2, 2, 0.25), "c": lif(sh),
             "flat": nir.Flatten(input_type={"input": np.array(sh)}, start_dim=0),
             "fc": nir.Linear(weight=rng.normal(size=(3, 32))), "li": nir.LI(
                 tau=np.full(3, 1e-3), r=np.full(3, 10.0), v_leak=np.zeros(3)),
             "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "c0"), ("c0", "a"), ("a", "c1"), ("c1", "b"), ("a", "c2"), ("b", "c2"),
             ("c2", "c"), ("c", "flat"), ("flat", "fc"), ("fc", "li"), ("li", "output")]
    net = read_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), dt=1e-4)
    into_c = net.projections_into("c")
    assert sorted(p.source for p in into_c) == ["a", "b"]
    assert {p.source: p.delay for p in into_c} == {"a": 1, "b": 0}
    assert len({p.name for p in net.projections}) == len(net.projections)
    c = net.population("c")  # bias once: 64 · S · (β·r = 1) · 0.25 per step = 16 S (± half an LSB)
    assert c.neuron.bias_mant.shape == () and abs((int(c.neuron.bias_mant) << c.neuron.bias_exp) - 16 * c.scale) <= 32
    readout = net.readout
    assert readout.name == "li" and (readout.neuron.du, readout.neuron.dv) == (4095, 410)
    assert net.latency == 4


# ---------------------------------------------------------------------------------------------
# dt: from the file where it says, an error naming the option where it does not


def _if_graph(r: float) -> nir.NIRGraph:
    """input -> Affine -> IF (r) -> output, as sinabs (r = 1) or spikingjelly (r = 1e4) write it."""
    w = np.array([[0.6, -0.2], [0.3, 0.9]], np.float32)
    nodes = {"input": nir.Input(input_type=np.array([2])),
             "fc": nir.Affine(weight=w, bias=np.zeros(2, np.float32)),
             "if": nir.IF(r=np.full(2, r, np.float32), v_threshold=np.ones(2, np.float32)),
             "output": nir.Output(output_type=np.array([2]))}
    return nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "if"), ("if", "output")],
                        type_check=False)


@pytest.mark.parametrize("r, dt", [(1.0, 1.0), (1e4, 1e-4)])
def test_dt_comes_from_the_if_nodes_r(r, dt):
    imp = import_nir(_if_graph(r))
    assert imp.assumptions["dt"] == dt
    assert any("r = 1/dt" in str(note) for note in imp.network.metadata["nir_import"]["notes"])


def test_a_given_dt_wins_and_the_disagreement_is_noted():
    imp = import_nir(_if_graph(1.0), dt=1e-4)
    assert imp.assumptions["dt"] == 1e-4
    assert any("read at dt = 0.0001 s as asked" in str(n)
               for n in imp.network.metadata["nir_import"]["notes"])


def test_a_file_that_does_not_fix_dt_is_an_error_naming_the_option():
    with pytest.raises(NirImportError, match="does not determine dt.*--dt"):
        read_nir(small_graph())
