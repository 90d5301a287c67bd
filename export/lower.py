"""The lowering pipeline from a trained SNN to the hardware IR, as named passes in a fixed order:

1. ``trace``                  torch.fx -> float Graph (unsupported modules stop here)
2. ``fold_batchnorm``         BN into the preceding conv/linear
3. ``fold_average_pooling``, ``lower_max_pooling``, ``split_concat``, ``fold_upsampling``,
   ``lower_residuals`` (fan-in, flatten, nearest upsampling)
4. ``quantize``               one integer scale per population (sakd.export.quantize)
5. ``insert_relays``          relay neurons for paths longer than the target's synapse delays
   ``balance_latency``        projection delays so every path to a population has equal latency
6. ``to_ir`` + validation     frozen, validated ``sakd.hardware.ir.Network``

``lower(network, ...)`` runs them all and keeps every intermediate graph for inspection and tests.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sakd.export.graph import ExportError, Graph, Node
from sakd.export.passes import FLOAT_PASSES, check_canonical, identity_synapse, synapses_into
from sakd.export.quantize import InputQuantization, QuantizedGraph, quantize_graph
from sakd.export.trace import TracedModule, trace_network
from sakd.hardware.errors import SakdError
from sakd.hardware.ir import DEFAULT_GRADED_BITS, Input, IRError, Network, Population, Projection
from sakd.hardware.neurons import CubaLif
from sakd.hardware.target import DEFAULT_TARGET, TargetSpec, get_target
from sakd.models.base import Network as TorchNetwork

EXPORTER_VERSION = "sakd-export 1"
READOUT = "readout"


@dataclass
class Lowering:
    """Everything the lowering produced: the IR, the float graphs after each pass, the report."""

    network: Network
    graphs: dict[str, Graph]  # pass name -> graph after it ("trace", ..., "lower_residuals")
    quantized: QuantizedGraph
    delays: dict[str, int]
    latency: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def float_graph(self) -> Graph:
        """The canonical float graph (after the float passes and the relays, before
        quantization)."""
        return self.graphs["insert_relays"]

    def report(self) -> dict[str, Any]:
        return {"latency": self.latency, "input": vars(self.quantized.input),
                "populations": [row.to_dict() for row in self.quantized.report],
                "delays": {k: v for k, v in self.delays.items() if v},
                "metadata": self.metadata}


#: a relay's synapse attribute: the delay it carries whatever balancing would give it
FIXED_DELAY = "fixed_delay"


def insert_relays(graph: Graph, target: TargetSpec) -> Graph:
    """Relay populations for the paths whose balancing delay exceeds the target's synapses
    (``max_delay``; 62 steps on Loihi 2): a SEW-ResNet's identity spikes that skip many blocks
    (SEW-ResNet-152's 36-block stage needs 63). A relay is an OR neuron (du = dv = 4095, vth = 1)
    behind a one-to-one weight-2 synapse: it fires at ``t + 1 + d`` exactly when its source fired
    at ``t`` (``d`` the synapse's delay), so a chain of ``m`` relays with ``d = max_delay`` moves a
    source's spikes ``m · (1 + max_delay)`` steps later, and the long synapse reads the last
    relay with the rest of its delay. One chain per source serves all its long synapses. In the
    float graph a relay is the identity on spikes (an OR of one input), so the function is
    unchanged; on the chip (and in the simulator) the relays are real neurons and synapses, and
    their spikes and SynOps are counted. Graded sources (the input) cannot be relayed: an
    error says so. Returns ``graph`` itself when no path needs a relay."""
    hop = 1 + target.max_delay
    latency: dict[str, int] = {graph.input.name: 0}
    chains: dict[str, list[Node]] = {}  # source -> [relay synapse, relay neuron] per hop
    rewired: dict[str, str] = {}  # long synapse -> the relay it reads
    for node in graph.nodes:
        if node.op not in ("neuron", "output"):
            continue
        synapses = synapses_into(graph, node.name)
        arrival = {syn.name: latency[syn.inputs[0]] + 1 for syn in synapses}
        latency[node.name] = max(arrival.values())
        for syn in synapses:
            delay = latency[node.name] - arrival[syn.name]
            if delay <= target.max_delay:
                continue
            source = graph[syn.inputs[0]]
            if source.op != "neuron":
                raise ExportError(f"synapse '{syn.name}' needs a delay of {delay} steps to "
                                  f"balance latency into '{node.name}'; target '{target.name}' "
                                  f"allows {target.max_delay}, and its source "
                                  f"{source.describe()} sends graded values, which relay "
                                  "neurons cannot pass on")
            hops = -(-(delay - target.max_delay) // hop)  # ceil: the rest fits one synapse
            chain = chains.setdefault(source.name, [])
            while len(chain) < 2 * hops:
                k = len(chain) // 2 + 1
                previous = chain[-1].name if chain else source.name
                chain += _relay(source, previous, k, target.max_delay)
            rewired[syn.name] = chain[2 * hops - 1].name
    if not rewired:
        return graph
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.name in rewired:
            node = Node(node.name, node.op, [rewired[node.name]], node.shape, node.attrs,
                        node.origin)
        nodes.append(node)
        nodes += chains.get(node.name, [])  # a chain right after its source
    return Graph(nodes, graph.metadata)


def _relay(source: Node, previous: str, k: int, delay: int) -> list[Node]:
    """Hop ``k`` of ``source``'s relay chain: a one-to-one synapse from ``previous`` carrying
    ``delay`` steps, into an OR neuron of the source's shape."""
    name = f"{source.name}.relay{k}"
    synapse = identity_synapse(source, f"{name}.syn", previous)
    synapse.attrs[FIXED_DELAY] = delay
    return [synapse, Node(name, "neuron", [synapse.name], tuple(source.shape), dict(kind="or"),
                          f"relay {k} of {source.name}")]


def balance_latency(graph: Graph, target: TargetSpec) -> tuple[dict[str, int], dict[str, int]]:
    """Delays (synapse name -> extra steps) so that every path from the input to a population
    has the same number of steps; returns (delays, latency per population). Every synapse adds
    one step (Lava's synapse buffer); a synapse from a source of latency l into a population of
    latency L gets delay L - l - 1."""
    latency: dict[str, int] = {graph.input.name: 0}
    delays: dict[str, int] = {}
    for node in graph.nodes:
        if node.op not in ("neuron", "output"):
            continue
        synapses = synapses_into(graph, node.name)
        arrival = {s.name: latency[s.inputs[0]] + 1 + s.attrs.get(FIXED_DELAY, 0)
                   for s in synapses}
        latency[node.name] = max(arrival.values())
        for syn in synapses:
            delay = latency[node.name] - arrival[syn.name] + syn.attrs.get(FIXED_DELAY, 0)
            if delay > target.max_delay:
                raise ExportError(f"synapse '{syn.name}' needs a delay of {delay} steps to balance "
                                  f"latency into '{node.name}'; target '{target.name}' allows "
                                  f"{target.max_delay}")
            delays[syn.name] = delay
    return delays, latency


def to_ir(qgraph: QuantizedGraph, delays: dict[str, int], target: TargetSpec,
          metadata: dict[str, Any], time_steps: int) -> Network:
    graph = qgraph.graph
    outputs = graph.outputs  # one readout ("readout"), or several named by the network
    names = {n.name: READOUT if len(outputs) == 1 else n.name for n in outputs}
    input_node = graph.input
    ir_input = Input("input", tuple(input_node.shape), "graded", qgraph.input.bits,
                     float(qgraph.input.scale))
    names[input_node.name] = ir_input.name
    populations, projections = [], []
    weights: dict[int, np.ndarray] = {}  # id(weight_int) -> one frozen array for all its copies
    for node in graph.nodes:
        if node.op not in ("neuron", "output"):
            continue
        name = names.get(node.name, node.name)
        names[node.name] = name
        readout = node.op == "output"
        shape = tuple(node.shape)
        neuron = CubaLif(du=int(node.attrs["du"]), dv=int(node.attrs["dv"]),
                         vth=int(node.attrs["vth"]), bias_mant=node.attrs["bias_mant"].numpy(),
                         bias_exp=int(node.attrs["bias_exp"]))
        populations.append(Population(
            name=name, shape=shape, neuron=neuron, role="readout" if readout else "spiking",
            scale=float(node.attrs["scale"]), origin=node.origin or node.name))
        for syn in synapses_into(graph, node.name):
            key = id(syn.attrs["weight_int"])
            if key not in weights:
                weights[key] = syn.attrs["weight_int"].numpy().astype(np.int64)
                weights[key].flags.writeable = False  # shared by the IR's projections, as is
            weight = weights[key]
            common = dict(name=syn.name, source=names[syn.inputs[0]], target=name,
                          weight=weight, delay=int(delays.get(syn.name, 0)))
            if syn.op == "conv":
                projections.append(Projection(
                    kind="conv2d", stride=tuple(syn.attrs["stride"]),
                    padding=tuple(syn.attrs["padding"]), dilation=tuple(syn.attrs["dilation"]),
                    groups=int(syn.attrs["groups"]), **common))
            elif syn.op == "upsample_conv":
                projections.append(Projection(
                    kind="upsample", stride=tuple(syn.attrs["factor"]),
                    groups=int(syn.attrs["groups"]), **common))
            else:
                projections.append(Projection(kind="dense", **common))
    try:
        return Network(ir_input, tuple(populations), tuple(projections), target=target,
                       metadata=metadata, time_steps=time_steps)
    except IRError as exc:
        raise ExportError(f"the lowered network is invalid: {exc}") from exc


def lower(network: TorchNetwork | TracedModule, *, input_shape: tuple[int, ...],
          input_range: tuple[float, float], input_bits: int = DEFAULT_GRADED_BITS,
          target: str | TargetSpec = DEFAULT_TARGET,
          metadata: dict[str, Any] | None = None) -> Lowering:
    """Lower a trained spiking ``network`` to the IR of ``target`` (a registered name or any
    ``TargetSpec``, validated), for the network's own T. ``network`` is a sakd ``Network``, or
    a user's own module already traced by ``sakd.export.trace.trace_module`` (its graph and T).

    ``input_range``: the smallest and largest value of the (normalized) network input, which
    sets the graded input's scale; ``input_bits``: its signed width.
    """
    try:
        spec = get_target(target)
    except SakdError as exc:
        raise ExportError(str(exc)) from exc
    if isinstance(network, TracedModule):
        time_steps, traced = int(network.time_steps), network.graph
        if tuple(input_shape) != tuple(traced.input.shape):
            raise ExportError(f"input_shape {tuple(input_shape)} differs from the shape the "
                              f"module was traced for, {tuple(traced.input.shape)}")
    else:
        time_steps, traced = int(network.time_steps), trace_network(network, tuple(input_shape))
    graphs: dict[str, Graph] = {"trace": traced}
    graph = graphs["trace"]
    for name, fn in FLOAT_PASSES:
        graph = fn(graph)
        graphs[name] = graph
    check_canonical(graph)
    graph = insert_relays(graph, spec)
    graphs["insert_relays"] = graph
    check_canonical(graph)
    input_q = InputQuantization.for_range(input_bits, *input_range)
    quantized = quantize_graph(graph, spec, input_q, time_steps)
    delays, latencies = balance_latency(quantized.graph, spec)
    meta = {
        "arch": graph.metadata.get("arch"),
        "exporter": EXPORTER_VERSION,
        "git": _git_hash(),
        "input_quantization": {"bits": input_q.bits, "scale": input_q.scale,
                               "max_abs": input_q.max_abs,
                               "rule": "x_int = clip(round(x * scale)), x the normalized input"},
        **(metadata or {}),
    }
    ir = to_ir(quantized, delays, spec, meta, time_steps)
    latency = max(latencies[n.name] for n in graph.outputs)
    return Lowering(ir, graphs, quantized, delays, latency, meta)


def _git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
