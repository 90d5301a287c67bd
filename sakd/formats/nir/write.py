"""NIR writer: any IR network as a NIR graph that stands on its own (``ir_to_nir``, ``write_nir``;
conventions in ``sakd.formats.nir``)."""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from sakd.formats.base import Support, check_supported
from sakd.formats.nir.common import (
    DEFAULT_DT,
    GENERATOR,
    NIR_FORMAT,
    NIR_FORMAT_VERSION,
    TIMINGS,
    UNITS,
    NirExportError,
    graph_signature,
)
from sakd.hardware.atomic import atomic_path
from sakd.hardware.integrity import seal
from sakd.hardware.ir import Network, Population

#: what a NIR file can express exactly (docs/support.md)
SUPPORT = Support(
    neuron_models=("cuba_lif",),
    layer_kinds=("dense", "conv2d"),
    residual_fan_in=True,
    delays="projection (implicit in layered timing; Delay nodes with timing='lava')",
    recurrence=False,
    graded_messages=False,
    multiple_readouts=True,
    notes=("NIR has no reset by subtraction; an IF/CubaLIF is written per population",),
)


class _Names:
    """NIR node names: the IR's names where possible (HDF5 forbids '/'), unique."""

    def __init__(self, reserved: Iterable[str]) -> None:
        self.used: set[str] = set()
        self.reserved = {self._clean(n) for n in reserved}

    @staticmethod
    def _clean(name: str) -> str:
        name = name.replace("/", "|")
        return name if name not in ("", ".") else f"_{name}"

    def take(self, name: str, own: bool = False) -> str:
        """A unique name near ``name``; ``own``: the IR node's own name (reserved for it)."""
        base = self._clean(name)
        cand, i = base, 1
        while cand in self.used or (not own and cand in self.reserved):
            cand = f"{base}_{i}"
            i += 1
        self.used.add(cand)
        return cand


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _expand_groups(weight: np.ndarray, groups: int) -> np.ndarray:
    """(Cout, Cin/g, kh, kw) grouped kernel → (Cout, Cin, kh, kw) block-diagonal kernel."""
    if groups == 1:
        return weight
    cout, cin_g, kh, kw = weight.shape
    cout_g = cout // groups
    full = np.zeros((cout, cin_g * groups, kh, kw), dtype=weight.dtype)
    for g in range(groups):
        full[g * cout_g:(g + 1) * cout_g, g * cin_g:(g + 1) * cin_g] = weight[g * cout_g:(g + 1) * cout_g]
    return full


def _channel_bias(pop: Population) -> np.ndarray | None:
    """The effective bias per channel of the first axis when it is constant over the rest of
    the shape (else None)."""
    full = pop.neuron.effective_bias(pop.shape)
    if full.ndim == 1:
        return full
    flat = full.reshape(full.shape[0], -1)
    return flat[:, 0].copy() if np.all(flat == flat[:, :1]) else None


def ir_to_nir(network: Network, *, dt: float = DEFAULT_DT, timing: str = "layered") -> Any:
    """The NIR graph of ``network`` (see the module docstring for units and timing).

    Raises :class:`NirExportError` naming the node for the few IR features without an exact NIR
    form (a nonzero bias with du < 4095 and dv = 0; a dense projection into a (C,H,W)
    population; an upsample projection)."""
    import nir

    if not isinstance(network, Network):
        raise TypeError(f"ir_to_nir needs a Network, got {type(network).__name__}")
    if timing not in TIMINGS:
        raise ValueError(f"timing must be one of {TIMINGS}, got {timing!r}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
    for proj in network.projections:
        if proj.kind == "upsample":
            raise NirExportError(
                f"NIR cannot express projection '{proj.name}': an upsample projection (nearest "
                f"upsampling or a broadcast, into the (C, H, W) population '{proj.target}'); NIR "
                f"1.0 has no transposed convolution and no unflatten node, so neither a "
                f"Conv2d nor an Affine with the expanded matrix can feed a (C, H, W) population; "
                f"use the IR file (network.h5)")
    check_supported(network, SUPPORT, "NIR", NirExportError)
    spec = network.target
    unity = spec.decay_unity
    act = float(1 << spec.act_shift)
    names = _Names([network.input.name, *(p.name for p in network.populations),
                    *(p.name for p in network.projections)])
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []

    inp = network.input
    inp_node = names.take(inp.name, own=True)
    nodes[inp_node] = nir.Input(input_type={"input": np.array(inp.shape)})
    exit_of: dict[str, str] = {inp.name: inp_node}  # IR node -> NIR node emitting its output
    entry_of: dict[str, str] = {}  # population -> NIR node its projections feed
    pop_meta: list[dict[str, Any]] = []

    # bias placement: per population, the projection whose Affine/Conv2d carries the bias
    bias_proj: dict[str, str] = {}
    v_leak_bias: dict[str, np.ndarray] = {}
    for pop in network.populations:
        bias = pop.neuron.effective_bias(pop.shape)
        if not np.any(bias):
            continue
        incoming = network.projections_into(pop.name)
        if pop.neuron.du != unity - 1:
            if pop.neuron.dv == 0:
                raise NirExportError(
                    f"population '{pop.name}': a nonzero bias with du = {pop.neuron.du} < {unity - 1} "
                    f"and dv = 0 has no exact NIR form (an Affine bias would pass through the "
                    f"leaky synaptic current; a non-leaky neuron has no v_leak)")
            v_leak_bias[pop.name] = bias
            continue
        per_channel = _channel_bias(pop)
        ordered = sorted(incoming, key=lambda p: p.delay)  # a delayed bias would start late
        choice = next((p for p in ordered if p.kind == "dense" or per_channel is not None), None)
        if choice is not None:
            bias_proj[pop.name] = choice.name
        elif pop.neuron.dv > 0:
            v_leak_bias[pop.name] = bias
        else:
            raise NirExportError(
                f"population '{pop.name}': a per-neuron bias on a population fed only by "
                f"convolutions, with dv = 0: Conv2d's bias is per channel and an IF has no "
                f"v_leak; no exact NIR form")

    for pop in network.populations:
        shape = pop.shape
        alpha = (pop.neuron.du + 1) / unity
        beta = pop.neuron.dv / unity
        tau_syn = dt / alpha
        v_leak = np.zeros(shape)
        if pop.name in v_leak_bias:  # β·v_leak per step = bias/64
            v_leak = v_leak_bias[pop.name] / act / beta

        def full(value: float, shape: tuple[int, ...] = shape) -> np.ndarray:
            return _f32(np.full(shape, value))

        chain: list[tuple[str, Any]] = []
        if pop.neuron.dv == 0 and pop.neuron.du != unity - 1:  # the synaptic current as an LI stage
            chain.append((f"{pop.name}.current",
                          nir.LI(tau=full(tau_syn), r=full(1.0 / alpha), v_leak=full(0.0))))
        if pop.is_readout:
            if pop.neuron.dv > 0:
                tau_mem = dt / beta
                chain.append((pop.name, nir.CubaLI(
                    tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt),
                    v_leak=_f32(v_leak), w_in=full(tau_syn / dt))))
            else:
                chain.append((pop.name, nir.I(r=full(1.0 / dt))))
        elif pop.neuron.dv > 0:
            tau_mem = dt / beta
            chain.append((pop.name, nir.CubaLIF(
                tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt),
                v_leak=_f32(v_leak), v_threshold=full(float(pop.neuron.vth)), v_reset=full(0.0),
                w_in=full(tau_syn / dt))))
        else:
            chain.append((pop.name, nir.IF(r=full(1.0 / dt), v_threshold=full(float(pop.neuron.vth)),
                                           v_reset=full(0.0))))
        chain_names = []
        for name, node in chain:
            nname = names.take(name, own=name == pop.name)
            nodes[nname] = node
            chain_names.append(nname)
        for a, b in itertools.pairwise(chain_names):
            edges.append((a, b))
        entry_of[pop.name] = chain_names[0]
        exit_of[pop.name] = chain_names[-1]
        pop_meta.append({"name": pop.name, "node": chain_names[-1], "entry": chain_names[0],
                         "role": pop.role, "scale": pop.scale, "origin": pop.origin,
                         "bias_exp": pop.neuron.bias_exp, "bias_shape": list(pop.neuron.bias_mant.shape),
                         "bias_in": "affine" if pop.name in bias_proj else
                         ("v_leak" if pop.name in v_leak_bias else "none")})

    flatten_of: dict[str, str] = {}
    proj_meta: list[dict[str, Any]] = []
    for proj in network.projections:
        src_shape = network.source_shape(proj.source)
        pop = network.population(proj.target)
        src_node = exit_of[proj.source]
        carries_bias = bias_proj.get(pop.name) == proj.name
        if proj.kind == "dense":
            if len(pop.shape) != 1:
                raise NirExportError(
                    f"projection '{proj.name}': a dense projection into the {len(pop.shape)}-D "
                    f"population '{pop.name}' {pop.shape}: NIR has no unflatten node")
            weight = _f32(proj.weight * 2.0 ** proj.weight_exp)
            if len(src_shape) != 1:
                if proj.source not in flatten_of:
                    fname = names.take(f"{proj.source}.flatten")
                    nodes[fname] = nir.Flatten(input_type={"input": np.array(src_shape)},
                                               start_dim=0, end_dim=-1)
                    edges.append((src_node, fname))
                    flatten_of[proj.source] = fname
                src_node = flatten_of[proj.source]
            if carries_bias:
                bias = np.broadcast_to(pop.neuron.effective_bias(pop.shape).reshape(-1) / act, (weight.shape[0],))
                node = nir.Affine(weight=weight, bias=_f32(bias))
            else:
                node = nir.Linear(weight=weight)
        else:
            bias = np.zeros(proj.weight.shape[0])
            if carries_bias:
                bias = np.broadcast_to(_channel_bias(pop) / act, bias.shape)
            node = nir.Conv2d(
                input_shape=tuple(int(d) for d in src_shape[1:]),
                weight=_f32(_expand_groups(proj.weight, proj.groups)),
                stride=tuple(proj.stride), padding=tuple(proj.padding),
                dilation=tuple(proj.dilation), groups=1, bias=_f32(bias))
        pname = names.take(proj.name, own=True)
        nodes[pname] = node
        edges.append((src_node, pname))
        last = pname
        if timing == "lava" and proj.delay > 0:
            dname = names.take(f"{proj.name}.delay")
            nodes[dname] = nir.Delay(delay=_f32(np.full(pop.shape, proj.delay * dt)))
            edges.append((pname, dname))
            last = dname
        edges.append((last, entry_of[pop.name]))
        proj_meta.append({"name": proj.name, "node": pname, "source": proj.source,
                          "target": proj.target, "kind": proj.kind, "groups": proj.groups,
                          "weight_exp": proj.weight_exp, "delay": proj.delay})

    outputs = []
    for readout in network.readouts:  # one Output node per readout (a detector has several)
        out_node = names.take("output" if len(network.readouts) == 1 else f"output.{readout.name}")
        nodes[out_node] = nir.Output(output_type={"output": np.array(readout.shape)})
        edges.append((exit_of[readout.name], out_node))
        outputs.append(out_node)

    sakd_meta = {
        "format": NIR_FORMAT, "version": NIR_FORMAT_VERSION, "dt": dt, "timing": timing,
        "target": network.target.name, "time_steps": network.time_steps,
        "digest": network.digest(),
        "input": {"name": inp.name, "node": inp_node, "shape": list(inp.shape),
                  "encoding": inp.encoding, "bits": inp.bits, "scale": inp.scale},
        "output": outputs[0] if len(outputs) == 1 else outputs, "populations": pop_meta, "projections": proj_meta,
        "latency": network.latency, "metadata": network.metadata,
        "graph": graph_signature(nodes, edges),
    }
    metadata = {
        "generator": GENERATOR, "dt": float(dt), "timing": timing, "units": UNITS,
        "integration": "forward Euler; current first, then voltage with the new current",
        "spike_rule": "v > v_threshold (strict, as Lava); v <- v_reset = 0; the current is kept",
        "sakd": json.dumps(sakd_meta, sort_keys=True),
    }
    for node in nodes.values():  # a second mark of the writer, on every node (see the reader)
        node.metadata = {**(node.metadata or {}), "generator": GENERATOR}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=True)


def write_nir(network: Network, path: str | os.PathLike[str], *, dt: float = DEFAULT_DT,
              timing: str = "layered") -> Path:
    """Write ``network`` as a NIR file (``nir.write``, gzip) atomically. Returns the path."""
    import nir

    graph = ir_to_nir(network, dt=dt, timing=timing)
    path = Path(path)
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
        seal(tmp, "nir")
    return path


