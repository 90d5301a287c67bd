"""The float SNN that a ``Graph`` means, as a plain torch module: what ``sakd export`` writes to
ONNX for a user's own model (``sakd.app.own_model``), whose module may hold spikingjelly kernels
that ONNX cannot express.

``GraphSNN(graph, T)(x)`` computes ``run_graph(graph, x, T).logits`` in the graph's own
operations (conv, linear, BN as a per-channel affine map, pooling, flatten, adds, and the LIF
neurons of the CUBA-LIF model's float twin, ``lif_float_step``) in float32, over an explicit
loop of T steps: tracing unrolls it, so the ONNX file holds only ordinary operators. The input is
a static image ``[B, *shape]``; the output is the mean over T of the per-step logits.
"""

from __future__ import annotations

import torch
from torch import nn

from sakd.export.graph import Graph, apply_node
from sakd.hardware.neurons.cuba_lif import lif_float_step


class GraphSNN(nn.Module):
    """``graph`` (a trace or any later float graph) as a module computing in ``dtype``."""

    def __init__(self, graph: Graph, time_steps: int, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if time_steps < 1:
            raise ValueError(f"time_steps must be >= 1, got {time_steps}")
        self.graph = graph.copy()
        self.time_steps = int(time_steps)
        self.dtype = dtype
        for node in self.graph.nodes:
            for key, value in node.attrs.items():
                if torch.is_tensor(value) and value.is_floating_point():
                    node.attrs[key] = value.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        state: dict[str, torch.Tensor | float] = {}
        total = None
        for _ in range(self.time_steps):
            values: dict[str, torch.Tensor] = {}
            for node in self.graph.nodes:
                if node.op == "input":
                    values[node.name] = x
                elif node.op == "neuron":
                    drive = values[node.inputs[0]]
                    a = node.attrs
                    if a["kind"] == "or":
                        values[node.name] = (drive > 0).to(drive.dtype)
                        continue
                    fired, state[node.name] = lif_float_step(
                        state.get(node.name, 0.0), drive, tau=a["tau"],
                        decay_input=a["decay_input"], v_threshold=a["v_threshold"])
                    values[node.name] = fired.to(drive.dtype)
                else:
                    values[node.name] = apply_node(node, [values[i] for i in node.inputs])
            out = values[self.graph.output.name]
            total = out if total is None else total + out
        return total / self.time_steps

    def extra_repr(self) -> str:
        return f"T={self.time_steps}, nodes={len(self.graph.nodes)}, dtype={self.dtype}"
