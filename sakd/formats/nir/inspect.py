"""``sakd inspect`` for NIR files: every node, its parameters and ranges, and the IR the file maps
onto (``import_nir`` at its defaults)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sakd.formats.base import (
    FormatError,
    Inspection,
    IRBrief,
    LayerRow,
    ir_brief,
    jsonable,
    merge_range,
    value_range,
)
from sakd.formats.nir.read import import_nir, load_graph, topological_order
from sakd.hardware.errors import SakdError

_NEURON_FIELDS = ("tau", "tau_syn", "tau_mem", "r", "w_in", "v_leak", "v_threshold", "v_reset")


def inspect_nir(path: Path) -> Inspection:
    """Summarize a NIR file (``Inspection``); a damaged file is a ``FormatError`` naming it."""
    graph, _ = load_graph(path)
    try:
        return _inspect(path, graph)
    except SakdError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as exc:
        raise FormatError(f"{path}: the NIR graph is damaged ({type(exc).__name__}: {exc})") from exc


def _inspect(path: Path, graph: Any) -> Inspection:
    from nir.serialization import read_version

    try:
        version = jsonable(read_version(path))
    except Exception as exc:  # nir raises KeyError/ValueError/OSError on a bad file
        raise FormatError(f"{path}: not a readable NIR file (no version): {exc}") from exc
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        if b in preds:
            preds[b].append(a)
    rows: list[LayerRow] = []
    ranges: dict[str, Any] = {}
    weights = biases = params = neurons = 0
    delays: dict[str, float] = {}
    in_info: dict[str, Any] = {}
    try:
        order = topological_order(graph)
    except SakdError:  # a cycle or a dangling edge: keep the file's order
        order = list(graph.nodes)
    for name in order:
        node = graph.nodes[name]
        kind = type(node).__name__
        row = LayerRow(name=name, kind=kind, inputs=preds[name])
        if kind in ("Input", "Output"):
            shape = node.input_type.get("input") if kind == "Input" else node.output_type.get("output")
            row.shape = jsonable(shape)
            if kind == "Input":
                in_info = {"name": name, "shape": jsonable(shape)}
        if hasattr(node, "weight"):
            w = np.asarray(node.weight)
            row.shape, row.params = list(w.shape), int(w.size)
            row.weight_range = value_range(w)
            weights += int(w.size)
            merge_range(ranges, "weight", row.weight_range)
            if kind == "Conv2d":
                row.neuron = (f"s{jsonable(node.stride)} p{jsonable(node.padding)} "
                              f"g{jsonable(node.groups)}")
        if getattr(node, "bias", None) is not None and kind in ("Affine", "Conv2d"):
            b = np.asarray(node.bias)
            row.params += int(b.size)
            biases += int(b.size)
            row.bias_range = value_range(b) if np.any(b) else None
            merge_range(ranges, "bias", value_range(b))
        fields = [f for f in _NEURON_FIELDS if getattr(node, f, None) is not None]
        if fields:
            first = np.asarray(getattr(node, fields[0]))
            row.shape = list(first.shape)
            neurons += int(first.size)
            parts = []
            for f in fields:
                r = value_range(getattr(node, f))
                if r is not None:
                    parts.append(f"{f} {r[0]:g}" if r[0] == r[1] else f"{f} {r[0]:g}..{r[1]:g}")
            row.neuron = " ".join(parts)
            params += sum(int(np.asarray(getattr(node, f)).size) for f in fields)
            if "v_threshold" in fields:
                merge_range(ranges, "vth", value_range(node.v_threshold))
        if kind == "Delay":
            d = np.asarray(node.delay)
            row.shape, row.delay = list(d.shape), value_range(d)
            delays[name] = float(d.max()) if d.size else 0.0
        if kind in ("SumPool2d", "AvgPool2d"):
            row.neuron = (f"k{jsonable(node.kernel_size)} s{jsonable(node.stride)} "
                          f"p{jsonable(node.padding)}")
        if kind == "Flatten":
            row.shape = jsonable(node.input_type.get("input"))
        if len(preds[name]) > 1:
            row.notes = f"sum of {len(preds[name])} inputs"
        rows.append(row)
    meta = jsonable(graph.metadata if isinstance(graph.metadata, dict) else {})
    notes: list[str] = []
    sakd = meta.get("sakd")
    if isinstance(sakd, str):
        try:
            meta["sakd"] = json.loads(sakd)
        except ValueError:
            pass
    try:
        imported = import_nir(graph)
        ir = ir_brief(imported.network, own_file=imported.assumptions.get("own_file", False),
                      dt=imported.assumptions.get("dt"))
        notes.extend(imported.assumptions.get("notes", []))
    except SakdError as exc:
        ir = IRBrief(error=str(exc))
    converging = [r.name for r in rows if len(r.inputs) > 1]
    own = meta.get("sakd") if isinstance(meta.get("sakd"), dict) else {}
    return Inspection(
        path=str(path), format="nir", version=version, target=own.get("target"),
        input=in_info, layers=rows,
        totals={"layers": len(rows), "nodes": len(rows), "edges": len(graph.edges),
                "neurons": neurons, "weights": weights, "parameters": weights + biases,
                "neuron_parameters": params, "converging": len(converging)},
        ranges=ranges, delays=delays, latency=ir.latency, metadata=meta, ir=ir, notes=notes)
