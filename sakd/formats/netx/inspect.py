"""Inspect a netx HDF5 file: every layer as netx reads it, its neuron parameters and value
ranges, and the IR it maps onto (or why it does not)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sakd.formats.base import (
    Inspection,
    IRBrief,
    LayerRow,
    ir_brief,
    jsonable,
    merge_range,
    value_range,
)
from sakd.hardware.errors import SakdError
from sakd.hardware.netfile import open_hdf5

from .common import NETX_DEFAULT_READOUT, NetxImportError, layer_type, netx_layers
from .read import check_seal, read_netx

#: neuron keys shown per type
_NEURON_KEYS = ("iDecay", "vDecay", "vThMant", "messageBits", "sinDecay", "cosDecay",
                "sigma_output")


def _weights(g: h5py.Group) -> list[np.ndarray]:
    """The layer's weight arrays: ``weight`` (and ``weight_rec``), or ``weight/real`` and
    ``weight/imag`` of a complex layer."""
    out = []
    for key in ("weight", "weight_rec"):
        if key not in g:
            continue
        item = g[key]
        if isinstance(item, h5py.Group):
            out.extend(np.asarray(item[k][()]) for k in ("real", "imag") if k in item)
        else:
            out.append(np.asarray(item[()]))
    return out


def inspect_netx(path: Path) -> Inspection:
    """Summarize a netx file: every layer as netx reads it, and the IR it maps onto."""
    path = Path(path)
    check_seal(path)
    handle = open_hdf5(path, NetxImportError, "netx file")
    try:
        with handle as f:
            return _inspect(path, f)
    except SakdError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise NetxImportError(f"{path}: the HDF5 file is damaged or truncated: "
                              f"{type(exc).__name__}: {exc}") from exc


def _inspect(path: Path, f: h5py.File) -> Inspection:
    groups = netx_layers(f, str(path))
    rows: list[LayerRow] = []
    ranges: dict[str, Any] = {}
    weights = biases = neurons = 0
    delays: dict[str, Any] = {}
    in_info: dict[str, Any] = {}
    notes: list[str] = []
    for i, g in enumerate(groups):
        kind = layer_type(g)
        name = f"layer{i}"
        shape = jsonable(g["shape"][()]) if "shape" in g else None
        row = LayerRow(name=name, kind=kind, shape=shape, inputs=[f"layer{i - 1}"] if i else [])
        if kind == "input":
            in_info = {"name": name, "shape": shape}
        ws = _weights(g)
        if ws:
            row.params += sum(int(w.size) for w in ws)
            row.weight_range = value_range(np.concatenate([w.reshape(-1) for w in ws]))
            row.notes = ", ".join(f"weight {list(w.shape)}" for w in ws)
            weights += sum(int(w.size) for w in ws)
            merge_range(ranges, "weight", row.weight_range)
        if "bias" in g:
            b = np.asarray(g["bias"][()])
            row.params += int(b.size)
            biases += int(b.size)
            row.bias_range = value_range(b)
            merge_range(ranges, "bias", row.bias_range)
        if kind == "conv":
            row.neuron = " ".join(f"{k[0]}{jsonable(g[k][()])}" for k in
                                     ("stride", "padding", "dilation", "groups") if k in g) + " "
        if "delay" in g:
            d = np.asarray(g["delay"][()])
            row.delay = value_range(d)
            delays[name] = row.delay
        if kind == "input" and "neuron" in g:
            n = g["neuron"]
            ntype = np.asarray(n["type"][()]).reshape(-1)[0] if "type" in n else "?"
            ntype = ntype.decode("ascii") if isinstance(ntype, bytes) else str(ntype)
            vals = {k: jsonable(n[k][()]) for k in _NEURON_KEYS if k in n}
            row.neuron = f"{ntype} " + " ".join(f"{k} {v}" for k, v in vals.items()) + \
                " (input layer: data enters a_in or the bias)"
            if shape is not None:
                neurons += int(np.prod(shape))
        if kind in ("conv", "dense", "dense_rec"):
            if shape is not None:
                neurons += int(np.prod(shape))
            if "neuron" in g:
                n = g["neuron"]
                vals = {k: jsonable(n[k][()]) for k in _NEURON_KEYS if k in n}
                ntype = np.asarray(n["type"][()]).reshape(-1)[0] if "type" in n else "?"
                ntype = ntype.decode("ascii") if isinstance(ntype, bytes) else str(ntype)
                row.neuron += f"{ntype} " + " ".join(f"{k} {v}" for k, v in vals.items())
                if "iDecay" in vals:
                    merge_range(ranges, "du", [vals["iDecay"] - 1] * 2)
                if "vDecay" in vals:
                    merge_range(ranges, "dv", [vals["vDecay"]] * 2)
                if "vThMant" in vals and i < len(groups) - 1:
                    merge_range(ranges, "vth", [vals["vThMant"]] * 2)
            else:
                row.neuron += ("no neuron: netx's integrating readout (iDecay "
                                  f"{NETX_DEFAULT_READOUT['iDecay']}, vDecay "
                                  f"{NETX_DEFAULT_READOUT['vDecay']}, vThMant "
                                  f"{NETX_DEFAULT_READOUT['vThMant']})")
        rows.append(row)
    attrs = {k: jsonable(v) for k, v in f.attrs.items()}
    meta: dict[str, Any] = {}
    if isinstance(attrs.get("sakd"), str):
        try:
            sakd = json.loads(attrs["sakd"])
            meta = sakd.get("metadata", {})
            attrs["sakd"] = {k: v for k, v in sakd.items() if k not in ("metadata", "layers")}
        except ValueError:
            pass
    try:
        network = read_netx(path)
        ir = ir_brief(network)
        notes.extend(network.metadata.get("netx_notes", []))
    except SakdError as exc:
        ir = IRBrief(error=str(exc))
    own = attrs.get("sakd") if isinstance(attrs.get("sakd"), dict) else {}
    return Inspection(
        path=str(path), format="netx", version=None, target=own.get("target"), input=in_info,
        layers=rows,
        totals={"layers": len(rows), "neurons": neurons, "weights": weights,
                "parameters": weights + biases},
        ranges=ranges, delays=delays, latency=ir.latency, metadata=meta, ir=ir,
        attributes=attrs, notes=notes)




def detect(path: Path) -> bool:
    """A netx file: HDF5 with a ``layer`` group (lava-dl's ``netx.hdf5.Network`` schema)."""
    try:
        with h5py.File(path, "r") as f:
            return "layer" in f
    except (OSError, RuntimeError, ValueError):
        return False
