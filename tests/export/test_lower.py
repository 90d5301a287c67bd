"""The whole lowering: latency balancing, the IR it produces, and the integer network against the
float graph it stands for (``dequantized_graph``: the same integer weights and biases, in float).

End to end, on random tiny SNNs whose every layer fires (the networks of test_passes.py):

- **population by population** (teacher forcing): every population's float input is computed
  from the simulator's spikes of its sources (the graded input for the first layer) and its
  float LIF is run with the simulator's own resets. Then every spike of the integer network is
  the float spike, except where the float potential lies within the integer state's truncation
  error (< 2 / (64 S) of the threshold over the steps, exact ties V == theta included); OR
  populations are exact, and the readout's v is exactly the float logits of the spikes it got.
  This is exact: it checks the delays, the fan-in sums, the bias, the scales, the threshold and
  the reset of every population without the chaotic growth of a single early flip.
- **free running**: predictions and spike rates of the integer simulator and of
  ``run_graph(dequantized_graph)`` agree loosely. A flipped spike early on (a truncation tie in
  the first layer, ~1e-4) moves a whole weight in every neuron it reaches, so mismatches grow
  with depth (measured: < 1 % in the ConvNets, up to ~7 % in the last block of the tiny ResNets).

The inputs lie on the input quantization grid (x = round(x Q) / Q) so that both sides see the
same input values.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from random_snn import CLASSES, T, input_shape, make_snn, randomize
from torch import nn

from sakd.export.graph import ExportError, Graph, Node, apply_node, run_graph
from sakd.export.lower import READOUT, balance_latency, insert_relays, lower
from sakd.export.passes import synapses_into
from sakd.export.quantize import dequantized_graph
from sakd.hardware.ir import Network
from sakd.hardware.netfile import read_network, write_network
from sakd.hardware.simulator import readout_to_float, simulate
from sakd.hardware.target import LOIHI2
from sakd.models import ARCHITECTURES, LIFSettings, spikify
from sakd.models.base import Network as TorchNetwork
from sakd.models.base import SpikeSite

RANGE = (-3.0, 3.0)
TINY = sorted(name for name, spec in ARCHITECTURES.items() if spec.tiny)


# ---------------------------------------------------------------------------------------------
# networks (as in test_passes.py: random init, non-trivial BN, every layer fires)


def grid_inputs(shape: tuple[int, ...], scale: float, n: int = 48, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=gen, dtype=torch.float64).clamp(*RANGE)
    return torch.round(x * scale) / scale


def do_lower(snn: TorchNetwork, shape, **kwargs):
    return lower(snn, input_shape=shape, input_range=RANGE, **kwargs)


# ---------------------------------------------------------------------------------------------
# latency


def test_balance_latency_spiking_resnet():
    low = do_lower(make_snn("test_resnet"), (3, 8, 8))
    net = low.network
    # the shortcut skips one synapse of the main path (conv1): one extra step
    assert {k: v for k, v in low.delays.items() if v} == {
        "layer1.0.relu2.identity[relu]": 1, "layer2.0.downsample.0": 1}
    assert net.latencies == {"relu": 1, "layer1.0.relu1": 2, "layer1.0.relu2": 3,
                             "layer2.0.relu1": 4, "layer2.0.relu2": 5, READOUT: 6}
    assert low.latency == net.latency == 6
    check_latencies(low)


@pytest.mark.parametrize("arch", ["test_resnet_bottleneck", "test_sew_resnet",
                                  "test_sew_resnet_bottleneck", "test_resnet19"])
def test_balance_latency_residual(arch):
    low = do_lower(make_snn(arch), input_shape(arch))
    check_latencies(low)
    delayed = {k: v for k, v in low.delays.items() if v}
    assert delayed
    if arch == "test_resnet_bottleneck":  # the shortcut skips conv1 and conv2
        assert delayed == {"layer1.0.downsample.0": 2, "layer2.0.downsample.0": 2}
    if arch == "test_sew_resnet":
        # block 1's output is relu2 (latency 3) + relu (latency 1): the copies reading relu wait 2
        assert delayed == {"layer2.0.conv1[relu]": 2, "layer2.0.downsample.0[relu]": 2,
                           "fc[layer2.0.downsample.2]": 1}


def check_latencies(low) -> None:
    """Every projection's delay equals the extra synapse count of its path: latency(target) -
    latency(source) - 1; no population is later than it needs to be; balance_latency and the
    IR's own latencies agree."""
    net: Network = low.network
    lat = net.latencies
    lat[net.input.name] = 0
    for proj in net.projections:
        assert lat[proj.target] == lat[proj.source] + 1 + proj.delay, proj.name
        assert proj.delay == low.delays.get(proj.name, 0)
    for pop in net.populations:
        assert min(p.delay for p in net.projections_into(pop.name)) == 0, pop.name
    delays, latencies = balance_latency(low.quantized.graph, LOIHI2)
    assert delays == low.delays
    graph = low.quantized.graph
    renamed = {(READOUT if k == graph.output.name else k): v for k, v in latencies.items()
               if k != graph.input.name}
    assert renamed == net.latencies


@pytest.mark.parametrize("arch", ["test_resnet", "test_sew_resnet", "test_sew_resnet_bottleneck"])
@pytest.mark.parametrize("max_delay", [0, 1])
def test_relays_carry_spikes_past_the_target_delay_limit(arch, max_delay):
    """Paths longer than the target's synapse delays go through relay neurons (OR neurons behind
    one-to-one weight-2 synapses of max_delay steps): every delay fits, the latency is the same,
    the readout is the same bit for bit, and each relay fires exactly as its source did, one hop
    later (the same spikes per step of their windows)."""
    snn = make_snn(arch)
    shape = input_shape(arch)
    plain = do_lower(snn, shape).network
    short = dataclasses.replace(LOIHI2, max_delay=max_delay)
    low = do_lower(snn, shape, target=short)
    net = low.network
    relays = [p for p in net.populations if ".relay" in p.name]
    assert bool(relays) == (max(p.delay for p in plain.projections) > max_delay)
    assert all(p.delay <= max_delay for p in net.projections)
    assert net.latency == plain.latency
    check_relayed_latencies(low, short)
    x = grid_inputs(shape, low.quantized.input.scale, n=12)
    a, b = (simulate(n, n.input.encode(x.numpy()), time_steps=T) for n in (plain, net))
    np.testing.assert_array_equal(a.readout_v, b.readout_v)
    for relay in relays:
        source = relay.name.rsplit(".relay", 1)[0]
        (into,) = net.projections_into(relay.name)
        assert relay.neuron.du == relay.neuron.dv == 4095 and relay.neuron.vth == 1
        assert into.delay == max_delay and set(np.unique(into.weight)) <= {0, 2}
        np.testing.assert_array_equal(b.counts.populations[relay.name].spikes_per_step,
                                      b.counts.populations[source].spikes_per_step)
    # the float graph is the same function: a relay is the identity on spikes
    xs = x[:4]
    torch.testing.assert_close(run_graph(low.float_graph, xs, T).logits,
                               run_graph(do_lower(snn, shape).float_graph, xs, T).logits)


def check_relayed_latencies(low, target) -> None:
    net: Network = low.network
    lat = dict(net.latencies, **{net.input.name: 0})
    for proj in net.projections:
        assert lat[proj.target] == lat[proj.source] + 1 + proj.delay, proj.name
        assert proj.delay == low.delays.get(proj.name, 0) <= target.max_delay


def test_a_graded_source_cannot_be_relayed():
    """The input skipping a layer with no delay to spare: relays pass spikes only."""
    inp = Node("x", "input", [], (4,))
    a = Node("a.syn", "linear", ["x"], (4,), dict(weight=torch.eye(4, dtype=torch.float64),
                                                  bias=None))
    neuron = Node("a", "neuron", ["a.syn"], (4,), dict(kind="or"))
    deep = Node("b.syn[a]", "linear", ["a"], (3,), dict(weight=torch.ones(3, 4,
                                                                          dtype=torch.float64),
                                                        bias=None))
    skip = Node("b.syn[x]", "linear", ["x"], (3,), dict(weight=torch.ones(3, 4,
                                                                          dtype=torch.float64),
                                                        bias=None))
    add = Node("b.sum", "add", ["b.syn[a]", "b.syn[x]"], (3,))
    out = Node("readout", "output", ["b.sum"], (3,))
    graph = Graph([inp, a, neuron, deep, skip, add, out])
    with pytest.raises(ExportError, match=r"synapse 'b\.syn\[x\]' needs a delay of 1 steps.*"
                                          r"allows 0.*graded values"):
        insert_relays(graph, dataclasses.replace(LOIHI2, max_delay=0))
    assert insert_relays(graph, LOIHI2) is graph  # nothing to relay: the same graph


def test_a_sequential_network_needs_no_relay():
    low = do_lower(make_snn("test_convnet"), (3, 8, 8), target=dataclasses.replace(LOIHI2,
                                                                                   max_delay=0))
    assert not [p for p in low.network.populations if ".relay" in p.name]


# ---------------------------------------------------------------------------------------------
# the IR of every tiny registry model


@pytest.mark.parametrize("arch", TINY)
def test_every_tiny_model_lowers_to_a_valid_ir(arch, tmp_path):
    snn = make_snn(arch)
    low = do_lower(snn, input_shape(arch))
    net = low.network
    assert isinstance(net, Network)
    graph = low.float_graph
    neurons = [n for n in graph if n.op == "neuron"]
    synapses = [n for n in graph if n.op in ("conv", "linear")]
    assert len(net.populations) == len(neurons) + 1
    assert len(net.projections) == len(synapses)
    assert net.readout.name == READOUT and net.readout.shape == (CLASSES,)
    assert net.input.shape == input_shape(arch) and net.input.encoding == "graded"
    assert net.time_steps == T and "time_steps" not in net.metadata
    assert net.metadata["input_quantization"]["bits"] == 8
    for proj in net.projections:
        w = proj.weight
        assert w.min() >= -256 and w.max() <= 254 and not (w % 2).any(), proj.name
    rows = low.report()["populations"]
    by_name = {r["name"]: r for r in rows}
    for pop in net.populations:
        row = by_name[graph.output.name if pop.is_readout else pop.name]
        assert pop.neuron.du == 4095 and (pop.neuron.dv, pop.neuron.vth) == (row["dv"], row["vth"])
        if row["kind"] == "lif":
            assert pop.scale == row["scale"] and pop.neuron.dv == 2048  # tau = 2
            assert pop.neuron.vth == row["scale"]
        elif row["kind"] == "or":
            assert (pop.neuron.dv, pop.neuron.vth) == (4095, 1)
    assert {r["name"] for r in rows} == {n.name for n in neurons} | {graph.output.name}
    path = write_network(net, tmp_path / "network.h5")
    assert read_network(path).equals(net)


# ---------------------------------------------------------------------------------------------
# end to end: the integer simulator against the dequantized float graph


CASES = [("test_convnet", None), ("test_convnet_pool", None), ("test_resnet", None),
         ("test_sew_resnet", None), ("test_convnet", LIFSettings(v_threshold=0.5)),
         ("test_resnet", LIFSettings(tau=4.0, decay_input=True, v_threshold=0.3))]


def _ids(case):
    arch, settings = case
    if settings is None:
        return arch
    return f"{arch}-tau{settings.tau:g}-di{int(settings.decay_input)}-th{settings.v_threshold:g}"


@pytest.fixture(scope="module", params=CASES, ids=[_ids(c) for c in CASES])
def end_to_end(request):
    arch, settings = request.param
    snn = make_snn(arch, settings=settings)
    shape = input_shape(arch)
    low = do_lower(snn, shape)
    x = grid_inputs(shape, low.quantized.input.scale)
    net = low.network
    pops = [p.name for p in net.populations if not p.is_readout]
    res = simulate(net, net.input.encode(x.numpy()), time_steps=T, record=pops)
    lat = net.latencies
    sim_spikes = {name: torch.from_numpy(res.traces[name]["s"][lat[name]:lat[name] + T]
                                         .astype(np.float64)) for name in pops}
    deq = dequantized_graph(low.quantized)
    return arch, low, x, res, sim_spikes, deq


def test_integer_network_matches_float_population_by_population(end_to_end):
    arch, low, x, res, sim_spikes, deq = end_to_end
    graph: Graph = deq
    near = total = 0
    for node in graph:
        if node.op not in ("neuron", "output"):
            continue
        drive = []
        for t in range(T):
            values = [apply_node(syn, [x if graph[syn.inputs[0]].op == "input"
                                       else sim_spikes[syn.inputs[0]][t]])
                      for syn in synapses_into(graph, node.name)]
            drive.append(sum(values[1:], values[0]))
        if node.op == "output":
            logits = torch.stack(drive).mean(0).numpy()
            got = readout_to_float(low.network, res.readout_v, T)
            assert np.abs(got - logits).max() <= 1e-9 * max(1.0, np.abs(logits).max()), arch
            continue
        spikes = sim_spikes[node.name]
        rate = spikes.mean().item()
        assert 0.01 <= rate <= 0.9, f"{arch}: '{node.name}' fires at {rate:.3f}"
        if node.attrs["kind"] == "or":
            assert torch.equal(spikes, (torch.stack(drive) > 0).double()), node.name
            continue
        a = node.attrs
        theta, tau = a["v_threshold"], a["tau"]
        assert a["dv"] * tau == 4096  # exact decays here, so the only error is truncation
        tol = theta * 2.0 / (64 * a["scale"])
        v = torch.zeros_like(drive[0])
        for t in range(T):
            h = v + (drive[t] - v) / tau if a["decay_input"] else v - v / tau + drive[t]
            fired = spikes[t].bool()
            disagree = (h >= theta) != fired
            worst = (h[disagree] - theta).abs().max().item() if disagree.any() else 0.0
            assert worst < tol, f"{arch}: '{node.name}' step {t}: |H - theta| = {worst:.3g}"
            near += int(((h - theta).abs() < tol).sum())
            total += h.numel()
            v = torch.where(fired, torch.zeros_like(h), h)
    assert near <= 1e-3 * total  # the tolerance is a sliver, not a free pass


def test_integer_network_matches_float_free_running(end_to_end):
    arch, _low, x, res, sim_spikes, deq = end_to_end
    run = run_graph(deq, x, T, record=True)
    agree = (res.predictions == run.logits.argmax(1).numpy()).mean()
    assert agree >= 0.9, f"{arch}: predictions agree on {agree:.2%}"
    mismatched = total = 0
    for name, spikes in sim_spikes.items():
        ref = run.spikes[name]
        diff = (spikes != ref).double()
        assert diff.mean().item() < 0.1, f"{arch}: '{name}' spike mismatch {diff.mean():.3f}"
        assert abs(spikes.mean().item() - ref.mean().item()) < 0.02, name
        mismatched += int(diff.sum())
        total += diff.numel()
    assert mismatched / total < 0.05, f"{arch}: spike mismatch {mismatched / total:.3f}"


def test_pool_into_conv_lowers_and_simulates():
    """A custom network whose average pool folds into the following conv, end to end."""

    class PoolConv(TorchNetwork):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(4)
            self.act1 = SpikeSite()
            self.pool = nn.AvgPool2d(2)
            self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(6)
            self.act2 = SpikeSite()
            self.fc = nn.Linear(6 * 4 * 4, CLASSES)

        def forward_static(self, x):
            x = self.act1(self.bn1(self.conv1(x)))
            x = self.act2(self.bn2(self.conv2(self.pool(x))))
            return self.fc(x.flatten(1))

    ann = PoolConv()
    randomize(ann, torch.Generator().manual_seed(5), (3, 8, 8))
    snn = spikify(ann, T).eval().double()
    low = do_lower(snn, (3, 8, 8))
    conv2 = next(p for p in low.network.projections if p.name == "conv2")
    assert conv2.source == "act1" and conv2.stride == (2, 2) and conv2.weight.shape[-2:] == (6, 6)
    x = grid_inputs((3, 8, 8), low.quantized.input.scale)
    res = simulate(low.network, low.network.input.encode(x.numpy()), time_steps=T)
    run = run_graph(dequantized_graph(low.quantized), x, T)
    assert (res.predictions == run.logits.argmax(1).numpy()).mean() >= 0.9
    with torch.no_grad():
        ref = snn(x)
    assert (ref.argmax(1) == run.logits.argmax(1)).double().mean().item() >= 0.8
