"""The float graph that the lowering passes rewrite, and a reference evaluator for it.

A ``Graph`` is an ordered list of ``Node``s (topological order) traced from a spiking network.
Every pass maps a Graph to a Graph; ``run_graph`` computes what a Graph means (the float SNN,
time step by time step, in float64), so each pass can be checked to compute the same thing
before and after it.

Node ops and their attributes (tensors are float64, shapes exclude the batch axis):

| op | inputs | attrs |
|---|---|---|
| ``input`` | - | |
| ``conv`` | 1 | weight (Cout, Cin/groups, kh, kw), bias (Cout) or None, stride, padding, dilation, groups |
| ``linear`` | 1 | weight (out, in), bias (out) or None; the input is flattened in C,H,W order |
| ``batchnorm`` | 1 | scale (C), shift (C): y = x * scale + shift per channel (eval-mode BN) |
| ``avgpool`` | 1 | kernel, stride, padding (pairs) |
| ``maxpool`` | 1 | kernel, stride, padding (pairs) |
| ``flatten`` | 1 | |
| ``upsample`` | 1 | factor (fh, fw): nearest upsampling by integer factors, ``y[c, i, j] = x[c, i // fh, j // fw]`` (a bilinear interpolation of a 1x1 map, a broadcast, is one too) |
| ``concat`` | >= 2 | the inputs joined along the channel axis (``torch.cat(..., dim=1)``) |
| ``upsample_conv`` | 1 | weight (Cout, Cin/groups, fh, fw), bias (Cout) or None, factor (fh, fw), groups: a transposed conv whose kernel equals its stride, ``y[co, i, j] = b[co] + Σ_{ci in co's group} w[co, ci, i % fh, j % fw] · x[ci, i // fh, j // fw]`` (the IR's ``upsample`` projection; made by the passes) |
| ``add`` | >= 1 | |
| ``neuron`` | 1 | kind ``lif`` (tau, v_threshold, decay_input; hard reset to 0) or ``or`` (fires iff its input > 0) |
| ``output`` | 1 | the logits (the readout population after lowering); a network with several readouts (a detector's head outputs) has one ``output`` node per readout, named by it |
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from sakd.errors import SakdError
from sakd.hardware.neurons.cuba_lif import lif_float_step

SYNAPSE_OPS = ("conv", "linear", "upsample_conv")
SOURCE_OPS = ("input", "neuron")


class ExportError(SakdError):
    """The network cannot be lowered; the message names the node and the reason."""


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # the module (or fx node) it came from

    def describe(self) -> str:
        where = f" (module '{self.origin}')" if self.origin and self.origin != self.name else ""
        return f"{self.op} '{self.name}'{where}"


class Graph:
    """Nodes in topological order; exactly one ``input`` node and at least one ``output`` node
    (a classifier has one, named ``readout``; a detector one per head output and level)."""

    def __init__(self, nodes: Iterable[Node], metadata: dict[str, Any] | None = None) -> None:
        self.nodes: list[Node] = list(nodes)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._check()

    # access -----------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        return any(node.name == name for node in self.nodes)

    def __iter__(self):
        return iter(self.nodes)

    @property
    def input(self) -> Node:
        return next(n for n in self.nodes if n.op == "input")

    @property
    def output(self) -> Node:
        """The only output node; an ExportError for a graph with several (use ``outputs``)."""
        outputs = self.outputs
        if len(outputs) != 1:
            raise ExportError(f"graph: {len(outputs)} outputs "
                              f"({', '.join(n.name for n in outputs)}); name the one you mean")
        return outputs[0]

    @property
    def outputs(self) -> list[Node]:
        """Every output node, in graph order."""
        return [n for n in self.nodes if n.op == "output"]

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def ops(self) -> set[str]:
        return {n.op for n in self.nodes}

    def copy(self) -> Graph:
        return Graph(copy.deepcopy(self.nodes), copy.deepcopy(self.metadata))

    def _check(self) -> None:
        seen: set[str] = set()
        for node in self.nodes:
            if node.name in seen:
                raise ExportError(f"graph: two nodes are named '{node.name}'")
            for source in node.inputs:
                if source not in seen:
                    raise ExportError(f"graph: {node.describe()} reads '{source}', which is not "
                                      "computed before it")
            seen.add(node.name)
        count = sum(n.op == "input" for n in self.nodes)
        if count != 1:
            raise ExportError(f"graph: expected exactly one 'input' node, found {count}")
        if not any(n.op == "output" for n in self.nodes):
            raise ExportError("graph: expected at least one 'output' node, found 0")

    def summary(self) -> str:
        return "\n".join(f"{n.name:<32} {n.op:<10} {n.shape!s:<18} <- {', '.join(n.inputs)}"
                         for n in self.nodes)


# ---------------------------------------------------------------------------------------------
# evaluation


def apply_node(node: Node, values: list[torch.Tensor]) -> torch.Tensor:
    """The stateless ops of a node on ``[B, ...]`` tensors (neurons are handled by run_graph)."""
    a = node.attrs
    if node.op == "conv":
        return F.conv2d(values[0], a["weight"], a["bias"], a["stride"], a["padding"],
                        a["dilation"], a["groups"])
    if node.op == "linear":  # a (C, H, W) shape: a dense map onto a map (lowered upsampling)
        out = F.linear(values[0].flatten(1), a["weight"], a["bias"])
        return out.reshape(out.shape[0], *node.shape) if len(node.shape) > 1 else out
    if node.op == "batchnorm":
        view = (1, -1) + (1,) * (values[0].dim() - 2)
        return values[0] * a["scale"].view(view) + a["shift"].view(view)
    if node.op == "avgpool" and a.get("global_pool"):
        return F.adaptive_avg_pool2d(values[0], 1)
    if node.op == "avgpool":
        return F.avg_pool2d(values[0], a["kernel"], a["stride"], a["padding"])
    if node.op == "maxpool":
        return F.max_pool2d(values[0], a["kernel"], a["stride"], a["padding"])
    if node.op == "flatten":
        return values[0].flatten(1)
    if node.op == "upsample":  # exact nearest upsampling by integer factors
        fh, fw = a["factor"]
        return values[0].repeat_interleave(fh, dim=2).repeat_interleave(fw, dim=3)
    if node.op == "concat":
        return torch.cat(values, dim=1)
    if node.op == "upsample_conv":
        return upsample_conv(values[0], a["weight"], a["bias"], a["groups"])
    if node.op == "add":
        total = values[0]
        for value in values[1:]:
            total = total + value
        return total
    if node.op == "output":
        return values[0]
    raise ExportError(f"cannot evaluate {node.describe()}")


def upsample_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  groups: int) -> torch.Tensor:
    """The ``upsample_conv`` op on ``x`` [B, C, H, W]: ``F.conv_transpose2d`` with stride = the
    kernel (fh, fw), so every output reads one input position, its weight (Cout, Cin/g, fh, fw)
    laid out as conv_transpose2d's (Cin, Cout/g, fh, fw)."""
    cout, cg, fh, fw = weight.shape
    og = cout // groups
    wt = weight.reshape(groups, og, cg, fh, fw).transpose(1, 2).reshape(groups * cg, og, fh, fw)
    return F.conv_transpose2d(x, wt, bias, stride=(fh, fw), groups=groups)


@dataclass
class GraphRun:
    """Result of ``run_graph``: logits (mean over T) and, on request, spikes per neuron node.
    ``outputs``: every output node's mean over T by name; ``logits`` is the only output's (None
    when the graph has several)."""

    logits: torch.Tensor | None  # [B, classes]
    spikes: dict[str, torch.Tensor]  # neuron name -> [T, B, *shape] (0/1), only when recorded
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)


def run_graph(graph: Graph, x: torch.Tensor, time_steps: int, record: bool = False) -> GraphRun:
    """Run the float SNN of ``graph`` on a static input ``x`` [B, *input shape] for T steps.

    LIF (spikingjelly, hard reset to 0): H = (1 - 1/tau) V + X (decay_input False) or
    H = V + (X - V)/tau (True); S = H >= v_threshold; V = H (1 - S). OR: S = X > 0, no state.
    Computed in float64; the result is the mean over T of the output nodes' values.
    """
    x = x.to(torch.float64)
    state: dict[str, torch.Tensor] = {}
    spikes: dict[str, list[torch.Tensor]] = {}
    totals: dict[str, torch.Tensor] = {}
    names = [n.name for n in graph.outputs]
    for _ in range(time_steps):
        values: dict[str, torch.Tensor] = {}
        for node in graph.nodes:
            if node.op == "input":
                values[node.name] = x
            elif node.op == "neuron":
                drive = values[node.inputs[0]]
                if node.attrs["kind"] == "or":
                    spike = (drive > 0).to(torch.float64)
                else:
                    spike, state[node.name] = lif_step(state.get(node.name), drive, node.attrs)
                values[node.name] = spike
                if record:
                    spikes.setdefault(node.name, []).append(spike)
            else:
                values[node.name] = apply_node(node, [values[i] for i in node.inputs])
        for name in names:
            totals[name] = values[name] if name not in totals else totals[name] + values[name]
    means = {name: total / time_steps for name, total in totals.items()}
    return GraphRun(means[names[0]] if len(names) == 1 else None,
                    {k: torch.stack(v) for k, v in spikes.items()}, means)


def lif_step(v: torch.Tensor | None, x: torch.Tensor, attrs: dict[str, Any]
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """One float LIF step (the CUBA-LIF model's float twin, hard reset to 0): returns (spikes,
    new membrane)."""
    fired, v_next = lif_float_step(0.0 if v is None else v, x, tau=attrs["tau"],
                                   decay_input=attrs["decay_input"],
                                   v_threshold=attrs["v_threshold"])
    return fired.to(x.dtype), v_next


def infer_shape(node: Node, input_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """Output shape (no batch axis) of a stateless node, by running it on zeros."""
    if node.op in ("neuron", "input"):
        return input_shapes[0] if input_shapes else node.shape
    values = [torch.zeros((1, *shape), dtype=torch.float64) for shape in input_shapes]
    return tuple(apply_node(node, values).shape[1:])
