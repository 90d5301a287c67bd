"""Independent NIR readers for ``sakd verify --nir``: the exported file run by spikingjelly's
``import_from_nir`` and by nirtorch's interpreter with NIR's own neuron equations (written from
the NIR specification, not from sakd's simulator or NIR writer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_READOUT_NODES = ("I", "LI", "CubaLI")


class NirNeuron:
    """One NIR neuron node by NIR's own equations (primitives.md), forward Euler at ``dt``,
    current first, then the voltage with the new current, float64:

        I ← I + (dt/τ_syn)·(−I + w_in·x)                         (CubaLI/CubaLIF)
        v ← v + (dt/τ)·(v_leak − v + r·I)   (LI/LIF/CubaLI/CubaLIF),   v ← v + dt·r·I (I/IF)
        z = v > v_threshold;  v ← v_reset where z                   (IF/LIF/CubaLIF)

    Written from the NIR specification, not from sakd's simulator or NIR writer. Parameters may
    be per neuron (any shape with the neuron's number of elements) or uniform."""

    SPIKING = ("IF", "LIF", "CubaLIF")

    def __init__(self, node: Any, dt: float) -> None:
        self.kind = type(node).__name__
        get = lambda name: np.asarray(getattr(node, name), dtype=np.float64)
        self.dt = dt
        self.alpha = dt / get("tau_syn") if self.kind.startswith("Cuba") else None
        self.w_in = get("w_in") if self.kind.startswith("Cuba") else None
        tau = {"LI": "tau", "LIF": "tau", "CubaLI": "tau_mem", "CubaLIF": "tau_mem"}.get(self.kind)
        self.beta = dt / get(tau) if tau else None
        self.r = get("r")
        self.v_leak = get("v_leak") if tau else None
        self.theta = get("v_threshold") if self.kind in self.SPIKING else None
        self.v_reset = get("v_reset") if self.kind in self.SPIKING else None

    @staticmethod
    def _fit(param: np.ndarray, like):
        import torch

        p = torch.as_tensor(param, dtype=torch.float64)
        return p.reshape(()) if p.numel() == 1 else p.reshape(like.shape[1:])

    def step(self, x, state):
        """(output, new state) for one step; ``state`` None: all zeros."""
        import torch

        x = x.to(torch.float64)
        fit = lambda p: self._fit(p, x)
        current, v = state if state is not None else (torch.zeros_like(x), torch.zeros_like(x))
        if self.alpha is not None:
            current = current + fit(self.alpha) * (-current + fit(self.w_in) * x)
            drive = current
        else:
            drive = x
        if self.beta is not None:
            v = v + fit(self.beta) * (fit(self.v_leak) - v + fit(self.r) * drive)
        else:
            v = v + self.dt * fit(self.r) * drive
        if self.theta is None:
            return v, (current, v)
        spikes = v > fit(self.theta)
        v = torch.where(spikes, fit(self.v_reset).expand_as(v), v)
        return spikes.to(torch.float64), (current, v)


def _nirtorch_neuron_module(node: Any, dt: float):
    from torch import nn

    class NirNeuronModule(nn.Module):  # nirtorch passes a module's state through `state`
        def __init__(self) -> None:
            super().__init__()
            self.neuron = NirNeuron(node, dt)

        def forward(self, x, state=None):
            return self.neuron.step(x, state)

    return NirNeuronModule()


def reader_dt(graph: Any, dt: float) -> float:
    """``dt`` at the precision of the file's time constants. Our writer stores τ as float32, so
    τ_syn = dt is float32(1e-4) < 1e-4: read at float64 dt, spikingjelly refuses the file (τ_syn
    < dt) and dt/τ_mem·r misses 1 by ~1e-8, which moves a voltage that lies exactly on the
    threshold (common in an integer network) to one side. float32(dt) gives the exact ratios."""
    import nir

    for node in graph.nodes.values():
        for name in ("tau", "tau_syn", "tau_mem"):
            value = getattr(node, name, None)
            if isinstance(node, nir.NIRNode) and isinstance(value, np.ndarray):
                return float(np.asarray(dt, dtype=value.dtype))
    return float(dt)


def _split_readout(graph: Any) -> tuple[Any, list[tuple[str, Any]]]:
    """The graph without its trailing integrating nodes (I/LI/CubaLI just before Output, which
    spikingjelly's importer does not map), and that chain, first node first. The graph's output
    is then the chain's input, e.g. the readout Affine's output at each step."""
    import nir

    output = next(name for name, node in graph.nodes.items() if isinstance(node, nir.Output))
    chain: list[tuple[str, Any]] = []
    last = output
    while True:
        sources = [s for s, d in graph.edges if d == last]
        if len(sources) != 1 or type(graph.nodes[sources[0]]).__name__ not in _READOUT_NODES:
            break
        last = sources[0]
        chain.insert(0, (last, graph.nodes[last]))
    if not chain:
        return graph, []
    dropped = {name for name, _ in chain}
    feed = [s for s, d in graph.edges if d == chain[0][0]]
    edges = [(s, d) for s, d in graph.edges if s not in dropped and d not in dropped]
    edges += [(s, output) for s in feed]
    nodes = {name: node for name, node in graph.nodes.items() if name not in dropped}
    return nir.NIRGraph(nodes, edges, metadata=dict(graph.metadata)), chain


def _strict_thresholds(graph: Any) -> Any:
    """A copy whose spiking thresholds are raised to the next float64 above θ: a reader that
    fires on ``v ≥ θ'`` (spikingjelly) then fires exactly on NIR's ``v > θ`` in float64."""
    import copy

    import nir

    graph = copy.deepcopy(graph)
    for node in graph.nodes.values():
        if isinstance(node, (nir.IF, nir.LIF, nir.CubaLIF)):
            node.v_threshold = np.nextafter(np.asarray(node.v_threshold, np.float64), np.inf)
    return graph


def run_nir_spikingjelly(graph: Any, x_int: np.ndarray, time_steps: int, dt: float,
                         strict: bool = True) -> np.ndarray:
    """Run a NIR graph through spikingjelly's ``import_from_nir`` (nirtorch's interpreter with
    spikingjelly's node maps and neurons), step by step for ``time_steps`` steps on the static
    input ``x_int``; returns the final value of the graph's output (the readout voltage).

    Adaptations (the file is not changed): ``dt`` at float32 (``_reader_dt``); a trailing
    I/LI/CubaLI readout, which spikingjelly does not map, is evaluated by NIR's equations on the
    imported graph's per-step output; ``strict``: thresholds at the next float64 above θ so that
    spikingjelly's ``v ≥ θ`` is NIR's ``v > θ`` (``strict=False``: spikingjelly's own rule)."""
    import torch
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    body, chain = _split_readout(graph)
    if strict:
        body = _strict_thresholds(body)
    module = import_from_nir(body, dt=dt, dtype=torch.float64)
    readout = [NirNeuron(node, dt) for _, node in chain]
    x = torch.as_tensor(np.asarray(x_int), dtype=torch.float64)
    state, states, out = None, [None] * len(readout), None
    with torch.no_grad():
        for _ in range(time_steps):
            out, state = module(x, state)
            for i, neuron in enumerate(readout):
                out, states[i] = neuron.step(out, states[i])
    return out.numpy()


def run_nir_nirtorch(graph: Any, x_int: np.ndarray, time_steps: int, dt: float) -> np.ndarray:
    """Run a NIR graph through nirtorch's interpreter (``nirtorch.nir_to_torch``: graph wiring,
    summed converging edges, state passing) with the neuron equations of ``NirNeuron`` (NIR's,
    ``v > θ``). Two of nirtorch 2.6's default maps are replaced: ``Affine`` (it never loads the
    bias: ``module.weight.bias = ...``, fixed upstream in NIRTorch PR #55) and ``Flatten`` (it
    passes ``start_dim`` to torch unchanged, flattening the batch axis; NIR's dimensions exclude
    the batch, as NIR's type inference and spikingjelly read them)."""
    import nir
    import nirtorch
    import torch
    from torch import nn

    def affine(node):
        module = nn.Linear(node.weight.shape[-1], node.weight.shape[-2], bias=True)
        module.weight.data = torch.from_numpy(np.asarray(node.weight))
        module.bias.data = torch.from_numpy(np.asarray(node.bias))
        return module

    def flatten(node):
        start, end = int(node.start_dim), int(node.end_dim)
        return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)

    node_map = {nir.Affine: affine, nir.Flatten: flatten}
    for kind in ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF"):
        node_map[getattr(nir, kind)] = lambda node: _nirtorch_neuron_module(node, dt)
    module = nirtorch.nir_to_torch(graph, node_map, dtype=torch.float64)
    x = torch.as_tensor(np.asarray(x_int), dtype=torch.float64)
    state, out = None, None
    with torch.no_grad():
        for _ in range(time_steps):
            out, state = module(x, state)
    return out.numpy()


def try_direct_import(path: Path, dt: float) -> str:
    """spikingjelly's ``import_from_nir`` on the file as written, without adaptations."""
    try:
        from spikingjelly.activation_based.nir_exchange import import_from_nir

        import_from_nir(str(path), dt=dt)
    except Exception as exc:  # reported
        return f"fails: {type(exc).__name__}: {exc}"
    return "loads"


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
