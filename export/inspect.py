"""``sakd inspect``: summarize a network file (IR ``network.h5``, NIR or netx HDF5).

``inspect_file(path)`` detects the format from the file's contents (not its name):

- **IR**: root attribute ``format = "sakd-ir"`` (``sakd.hardware.netfile``);
- **NIR**: a ``version`` dataset and a ``node`` group (``nir.write``);
- **netx**: a ``layer`` group (lava-dl's ``netx.hdf5.Network`` schema).

and returns a JSON-able dict::

    path, format, version, target,
    input      {name, shape, encoding, bits, scale}          (as far as the format says)
    layers     [{name, kind, shape, inputs, params, weight_range, neuron, bias_range, delay, notes}]
    totals     {layers, populations, projections, neurons, weights, parameters}
    ranges     {weight, du, dv, vth, bias}: [min, max] over the network (integers)
    delays     {projection: steps} (nonzero only), latency (IR steps, where known)
    metadata   the file's metadata
    ir         for NIR and netx files: the IR it maps onto ({latency, populations,
               projections}) or {"error": why not}
    notes      [...]

A missing, truncated or malformed file raises :class:`InspectError` naming the file.
``format_inspection(summary)`` renders the summary as a ``rich.table.Table``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FORMATS = ("sakd-ir", "nir", "netx")


class InspectError(ValueError):
    """A file that cannot be inspected; the message names the file."""


def _rng(values: Any) -> list[float] | None:
    arr = np.asarray(values)
    if arr.size == 0:
        return None
    lo, hi = arr.min(), arr.max()
    if arr.dtype.kind in "iub" or (np.all(arr == np.round(arr)) and np.all(np.isfinite(arr))):
        return [int(lo), int(hi)]
    return [float(lo), float(hi)]


def _merge(ranges: dict[str, list[float] | None], key: str, r: list[float] | None) -> None:
    if r is None:
        return
    old = ranges.get(key)
    ranges[key] = r if old is None else [min(old[0], r[0]), max(old[1], r[1])]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _file_kind(f: h5py.File, path: Path) -> str:
    fmt = f.attrs.get("format")
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if fmt == "sakd-ir":
        return "sakd-ir"
    if "version" in f and "node" in f:
        return "nir"
    if "layer" in f:
        return "netx"
    raise InspectError(f"{path}: an HDF5 file that is neither an IR (format 'sakd-ir'), a NIR "
                       "(version + node) nor a netx file (layer)")


def _open(path: str | os.PathLike[str]) -> tuple[Path, h5py.File]:
    path = Path(path)
    if not path.exists():
        raise InspectError(f"{path}: no such file")
    if path.is_dir():
        raise InspectError(f"{path}: is a folder, not a network file")
    try:
        return path, h5py.File(path, "r")
    except OSError as exc:
        raise InspectError(f"{path}: not a readable HDF5 file (truncated, or not an IR, NIR or "
                           f"netx file): {exc}") from exc


def detect_format(path: str | os.PathLike[str]) -> str:
    """``sakd-ir``, ``nir`` or ``netx``, from the file's contents; InspectError otherwise."""
    path, handle = _open(path)
    try:
        with handle as f:
            return _file_kind(f, path)
    except InspectError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InspectError(f"{path}: the file is damaged or truncated: {exc}") from exc


def inspect_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Summarize an IR, NIR or netx file (module docstring)."""
    path, handle = _open(path)
    try:
        with handle as f:
            kind = _file_kind(f, path)
            if kind == "netx":
                return _inspect_netx(path, f)
    except InspectError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InspectError(f"{path}: the file is damaged or truncated: {exc}") from exc
    if kind == "sakd-ir":
        return _inspect_ir(path)
    return _inspect_nir(path)


# ---------------------------------------------------------------------------------------------
# IR
# ---------------------------------------------------------------------------------------------


def _inspect_ir(path: Path) -> dict[str, Any]:
    from sakd.hardware.netfile import SCHEMA_VERSION, NetworkFileError, read_network

    try:
        network = read_network(path)
    except NetworkFileError as exc:
        raise InspectError(str(exc)) from exc
    except OSError as exc:
        raise InspectError(f"{path}: the file is damaged or truncated: {exc}") from exc
    summary = summarize_network(network)
    summary.update(path=str(path), format="sakd-ir", version=SCHEMA_VERSION)
    return summary


def summarize_network(network: Any) -> dict[str, Any]:
    """The summary of an in-memory IR network (``inspect_file`` without a file)."""
    inp = network.input
    lat = network.latencies
    rows: list[dict[str, Any]] = []
    ranges: dict[str, Any] = {}
    weights = biases = neurons = 0
    for name in network.topological_order():
        pop = network.population(name)
        for proj in network.projections_into(name):
            w = proj.weight
            weights += int(w.size)
            _merge(ranges, "weight", _rng(w))
            geometry = ""
            if proj.kind == "conv2d":
                geometry = (f"k{w.shape[2]}x{w.shape[3]} s{proj.stride[0]},{proj.stride[1]} "
                            f"p{proj.padding[0]},{proj.padding[1]}"
                            + (f" d{proj.dilation[0]},{proj.dilation[1]}" if proj.dilation != (1, 1) else "")
                            + (f" g{proj.groups}" if proj.groups > 1 else ""))
            elif proj.weight_exp:
                geometry = f"weight_exp {proj.weight_exp}"
            rows.append({
                "name": proj.name, "kind": proj.kind, "shape": list(w.shape),
                "inputs": [proj.source], "params": int(w.size), "weight_range": _rng(w),
                "neuron": geometry, "bias_range": None, "delay": proj.delay, "notes": "",
            })
        bias = pop.effective_bias()
        biases += int(pop.bias_mant.size)
        neurons += pop.size
        for key in ("du", "dv"):
            _merge(ranges, key, [getattr(pop, key)] * 2)
        if not pop.is_readout:
            _merge(ranges, "vth", [pop.vth] * 2)
        _merge(ranges, "bias", _rng(pop.bias_mant))
        neuron = (f"du {pop.du} dv {pop.dv} " + ("readout" if pop.is_readout else f"vth {pop.vth}"))
        rows.append({
            "name": pop.name, "kind": "readout" if pop.is_readout else "population",
            "shape": list(pop.shape), "inputs": [p.name for p in network.projections_into(name)],
            "params": int(pop.bias_mant.size), "weight_range": None, "neuron": neuron,
            "bias_range": _rng(pop.bias_mant) if np.any(bias) else None,
            "delay": None, "notes": f"latency {lat[name]}, scale {pop.scale:g}, "
                                    f"bias_exp {pop.bias_exp}",
        })
    return {
        "target": network.target,
        "input": {"name": inp.name, "shape": list(inp.shape), "encoding": inp.encoding,
                  "bits": inp.bits, "scale": inp.scale},
        "layers": rows,
        "totals": {"layers": len(rows), "populations": len(network.populations),
                   "projections": len(network.projections), "neurons": neurons,
                   "weights": weights, "parameters": weights + biases},
        "ranges": ranges,
        "delays": {p.name: p.delay for p in network.projections if p.delay},
        "latency": network.latency,
        "metadata": _jsonable(network.metadata),
        "notes": [],
    }


def _ir_brief(network: Any) -> dict[str, Any]:
    return {"latency": network.latency, "populations": len(network.populations),
            "projections": len(network.projections),
            "delays": {p.name: p.delay for p in network.projections if p.delay}}


# ---------------------------------------------------------------------------------------------
# NIR
# ---------------------------------------------------------------------------------------------

_NEURON_FIELDS = ("tau", "tau_syn", "tau_mem", "r", "w_in", "v_leak", "v_threshold", "v_reset")


def _inspect_nir(path: Path) -> dict[str, Any]:
    import nir

    from sakd.export.nir_io import NirImportError, _topological, import_nir

    try:
        from nir.serialization import read_version

        version = read_version(path)
        graph = nir.read(path, type_check=False)
    except Exception as exc:  # nir raises KeyError/ValueError/OSError on a bad file
        raise InspectError(f"{path}: not a readable NIR file (truncated or damaged?): "
                           f"{type(exc).__name__}: {exc}") from exc
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        if b in preds:
            preds[b].append(a)
    rows: list[dict[str, Any]] = []
    ranges: dict[str, Any] = {}
    weights = biases = params = neurons = 0
    delays: dict[str, float] = {}
    in_info: dict[str, Any] = {}
    try:
        order = _topological(graph)
    except (NirImportError, IndexError):  # a cycle: keep the file's order
        order = list(graph.nodes)
    for name in order:
        node = graph.nodes[name]
        kind = type(node).__name__
        row: dict[str, Any] = {"name": name, "kind": kind, "shape": None, "inputs": preds[name],
                               "params": 0, "weight_range": None, "neuron": "", "bias_range": None,
                               "delay": None, "notes": ""}
        if kind in ("Input", "Output"):
            shape = node.input_type.get("input") if kind == "Input" else node.output_type.get("output")
            row["shape"] = _jsonable(shape)
            if kind == "Input":
                in_info = {"name": name, "shape": _jsonable(shape)}
        if hasattr(node, "weight"):
            w = np.asarray(node.weight)
            row["shape"], row["params"] = list(w.shape), int(w.size)
            row["weight_range"] = _rng(w)
            weights += int(w.size)
            _merge(ranges, "weight", row["weight_range"])
            if kind == "Conv2d":
                row["neuron"] = (f"s{_jsonable(node.stride)} p{_jsonable(node.padding)} "
                                 f"g{_jsonable(node.groups)}")
        if getattr(node, "bias", None) is not None and kind in ("Affine", "Conv2d"):
            b = np.asarray(node.bias)
            row["params"] += int(b.size)
            biases += int(b.size)
            row["bias_range"] = _rng(b) if np.any(b) else None
            _merge(ranges, "bias", _rng(b))
        fields = [f for f in _NEURON_FIELDS if getattr(node, f, None) is not None]
        if fields:
            first = np.asarray(getattr(node, fields[0]))
            row["shape"] = list(first.shape)
            neurons += int(first.size)
            parts = []
            for f in fields:
                r = _rng(getattr(node, f))
                if r is not None:
                    parts.append(f"{f} {r[0]:g}" if r[0] == r[1] else f"{f} {r[0]:g}..{r[1]:g}")
            row["neuron"] = " ".join(parts)
            params += sum(int(np.asarray(getattr(node, f)).size) for f in fields)
            if "v_threshold" in fields:
                _merge(ranges, "vth", _rng(node.v_threshold))
        if kind == "Delay":
            d = np.asarray(node.delay)
            row["shape"], row["delay"] = list(d.shape), _rng(d)
            delays[name] = float(d.max()) if d.size else 0.0
        if kind in ("SumPool2d", "AvgPool2d"):
            row["neuron"] = (f"k{_jsonable(node.kernel_size)} s{_jsonable(node.stride)} "
                             f"p{_jsonable(node.padding)}")
        if kind == "Flatten":
            row["shape"] = _jsonable(node.input_type.get("input"))
        if len(preds[name]) > 1:
            row["notes"] = f"sum of {len(preds[name])} inputs"
        rows.append(row)
    meta = _jsonable(graph.metadata if isinstance(graph.metadata, dict) else {})
    notes = []
    sakd = meta.get("sakd")
    if isinstance(sakd, str):
        try:
            meta["sakd"] = json.loads(sakd)
        except ValueError:
            pass
    try:
        imported = import_nir(graph)
        ir = _ir_brief(imported.network)
        ir["own_file"] = imported.assumptions.get("own_file", False)
        ir["dt"] = imported.assumptions.get("dt")
        notes.extend(imported.assumptions.get("notes", []))
    except (NirImportError, ValueError) as exc:
        ir = {"error": str(exc)}
    converging = [r["name"] for r in rows if len(r["inputs"]) > 1]
    return {
        "path": str(path), "format": "nir", "version": version,
        "target": (meta.get("sakd") or {}).get("target") if isinstance(meta.get("sakd"), dict) else None,
        "input": in_info, "layers": rows,
        "totals": {"layers": len(rows), "nodes": len(rows), "edges": len(graph.edges),
                   "neurons": neurons, "weights": weights, "parameters": weights + biases,
                   "neuron_parameters": params,
                   "converging": converging},
        "ranges": ranges, "delays": delays,
        "latency": ir.get("latency"), "metadata": meta, "ir": ir, "notes": notes,
    }


# ---------------------------------------------------------------------------------------------
# netx
# ---------------------------------------------------------------------------------------------


def _inspect_netx(path: Path, f: h5py.File) -> dict[str, Any]:
    from sakd.export.netx_io import NETX_DEFAULT_READOUT, NetxImportError, netx_layers, read_netx

    try:
        groups = netx_layers(f, str(path))
    except NetxImportError as exc:
        raise InspectError(str(exc)) from exc
    rows: list[dict[str, Any]] = []
    ranges: dict[str, Any] = {}
    weights = biases = neurons = 0
    delays: dict[str, Any] = {}
    in_info: dict[str, Any] = {}
    notes: list[str] = []
    for i, g in enumerate(groups):
        kind = g["type"][()]
        kind = np.asarray(kind).reshape(-1)[0] if np.ndim(kind) else kind
        kind = kind.decode("ascii") if isinstance(kind, bytes) else str(kind)
        name = f"layer{i}"
        shape = _jsonable(g["shape"][()]) if "shape" in g else None
        row: dict[str, Any] = {"name": name, "kind": kind, "shape": shape,
                               "inputs": [f"layer{i - 1}"] if i else [], "params": 0,
                               "weight_range": None, "neuron": "", "bias_range": None,
                               "delay": None, "notes": ""}
        if kind == "input":
            in_info = {"name": name, "shape": shape}
        if "weight" in g:
            w = np.asarray(g["weight"][()])
            row["params"] += int(w.size)
            row["weight_range"] = _rng(w)
            row["notes"] = f"weight {list(w.shape)}"
            weights += int(w.size)
            _merge(ranges, "weight", row["weight_range"])
        if "bias" in g:
            b = np.asarray(g["bias"][()])
            row["params"] += int(b.size)
            biases += int(b.size)
            row["bias_range"] = _rng(b)
            _merge(ranges, "bias", row["bias_range"])
        if kind == "conv":
            row["neuron"] = " ".join(f"{k[0]}{_jsonable(g[k][()])}" for k in
                                     ("stride", "padding", "dilation", "groups") if k in g) + " "
        if "delay" in g:
            d = np.asarray(g["delay"][()])
            row["delay"] = _rng(d)
            delays[name] = row["delay"]
        if kind in ("conv", "dense", "dense_rec"):
            if shape is not None:
                neurons += int(np.prod(shape))
            if "neuron" in g:
                n = g["neuron"]
                vals = {k: _jsonable(n[k][()]) for k in ("iDecay", "vDecay", "vThMant") if k in n}
                ntype = np.asarray(n["type"][()]).reshape(-1)[0] if "type" in n else "?"
                ntype = ntype.decode("ascii") if isinstance(ntype, bytes) else str(ntype)
                row["neuron"] += f"{ntype} " + " ".join(f"{k} {v}" for k, v in vals.items())
                if "iDecay" in vals:
                    _merge(ranges, "du", [vals["iDecay"] - 1] * 2)
                if "vDecay" in vals:
                    _merge(ranges, "dv", [vals["vDecay"]] * 2)
                if "vThMant" in vals and i < len(groups) - 1:
                    _merge(ranges, "vth", [vals["vThMant"]] * 2)
            else:
                row["neuron"] += ("no neuron: netx's integrating readout (iDecay "
                                  f"{NETX_DEFAULT_READOUT['iDecay']}, vDecay "
                                  f"{NETX_DEFAULT_READOUT['vDecay']}, vThMant "
                                  f"{NETX_DEFAULT_READOUT['vThMant']})")
        rows.append(row)
    attrs = {k: _jsonable(v) for k, v in f.attrs.items()}
    meta: dict[str, Any] = {}
    if isinstance(attrs.get("sakd"), str):
        try:
            sakd = json.loads(attrs["sakd"])
            meta = sakd.get("metadata", {})
            attrs["sakd"] = {k: v for k, v in sakd.items() if k not in ("metadata", "layers")}
        except ValueError:
            pass
    try:
        ir = _ir_brief(read_netx(path))
    except (NetxImportError, ValueError) as exc:
        ir = {"error": str(exc)}
    return {
        "path": str(path), "format": "netx", "version": None,
        "target": (attrs.get("sakd") or {}).get("target") if isinstance(attrs.get("sakd"), dict) else None,
        "input": in_info, "layers": rows,
        "totals": {"layers": len(rows), "neurons": neurons, "weights": weights,
                   "parameters": weights + biases},
        "ranges": ranges, "delays": delays, "latency": ir.get("latency"),
        "metadata": meta, "attributes": attrs, "ir": ir, "notes": notes,
    }


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


def _fmt_range(r: Any) -> str:
    if not r:
        return ""
    lo, hi = r
    return f"{lo:g}" if lo == hi else f"{lo:g} .. {hi:g}"


def _fmt_shape(shape: Any) -> str:
    if shape is None:
        return ""
    if isinstance(shape, (list, tuple)):
        return "×".join(str(int(d)) for d in shape) if shape else "()"
    return str(shape)


def format_inspection(summary: dict[str, Any]) -> Any:
    """A ``rich.table.Table`` of the summary: one row per layer/node, the totals, ranges,
    delays, latency and metadata in the caption."""
    from rich.markup import escape
    from rich.table import Table

    fmt = summary.get("format", "?")
    version = f" {summary['version']}" if summary.get("version") else ""
    title = escape(f"{fmt}{version}: {summary.get('path', '')}")
    table = Table(title=title, title_justify="left", caption_justify="left", show_lines=False)
    for col, kw in (("name", {}), ("kind", {}), ("shape", {}), ("from", {}),
                    ("params", {"justify": "right"}), ("weights", {"justify": "right"}),
                    ("neuron / geometry", {}), ("bias", {"justify": "right"}),
                    ("delay", {"justify": "right"}), ("notes", {})):
        table.add_column(col, **kw)
    for row in summary.get("layers", []):
        delay = row.get("delay")
        delay_text = _fmt_range(delay) if isinstance(delay, list) else ("" if not delay else str(delay))
        cells = (str(row["name"]), str(row["kind"]), _fmt_shape(row.get("shape")),
                 ", ".join(row.get("inputs") or []), str(row.get("params") or ""),
                 _fmt_range(row.get("weight_range")), str(row.get("neuron") or ""),
                 _fmt_range(row.get("bias_range")), delay_text, str(row.get("notes") or ""))
        table.add_row(*(escape(c) for c in cells))  # names like 'fc[relu]' are not markup
    lines = []
    inp = summary.get("input") or {}
    if inp:
        lines.append("input: " + ", ".join(f"{k} {_fmt_shape(v) if k == 'shape' else v}"
                                           for k, v in inp.items()))
    totals = summary.get("totals") or {}
    lines.append("totals: " + ", ".join(f"{k} {v if not isinstance(v, list) else len(v)}"
                                        for k, v in totals.items()))
    ranges = summary.get("ranges") or {}
    if ranges:
        lines.append("ranges: " + ", ".join(f"{k} [{_fmt_range(v)}]" for k, v in ranges.items() if v))
    if summary.get("target"):
        lines.append(f"target: {summary['target']}")
    if summary.get("latency") is not None:
        lines.append(f"latency: {summary['latency']} steps")
    if summary.get("delays"):
        lines.append("delays: " + ", ".join(f"{k} {v}" for k, v in summary["delays"].items()))
    ir = summary.get("ir")
    if ir:
        lines.append("as IR: " + (f"not representable: {ir['error']}" if "error" in ir else
                                  f"{ir['populations']} populations, {ir['projections']} "
                                  f"projections, latency {ir['latency']}"))
    meta = summary.get("metadata") or {}
    if meta:
        shown = {k: v for k, v in meta.items() if not isinstance(v, (dict, list)) or k in ("classes",)}
        text = ", ".join(f"{k}={str(v)[:40]}" + ("…" if len(str(v)) > 40 else "")
                         for k, v in shown.items())
        lines.append(f"metadata: {text[:300]}" + ("…" if len(text) > 300 else ""))
    for note in summary.get("notes") or []:
        lines.append(f"note: {note}")
    table.caption = escape("\n".join(lines))
    return table


__all__ = ["FORMATS", "InspectError", "format_inspection", "inspect_file", "summarize_network"]
