"""The IR file (``network.h5``, ``sakd.hardware.netfile``) as a registered format, and the summary
of an IR network (``sakd inspect``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sakd.formats.base import (
    Format,
    FormatError,
    Inspection,
    LayerRow,
    Support,
    jsonable,
    merge_range,
    value_range,
)
from sakd.hardware.ir import Network
from sakd.hardware.netfile import FORMAT as IR_FORMAT
from sakd.hardware.netfile import SCHEMA_VERSION, read_network, write_network
from sakd.hardware.neurons import NEURON_MODELS

SUPPORT = Support(
    neuron_models=tuple(NEURON_MODELS),
    layer_kinds=("dense", "conv2d", "upsample", "direct"),
    residual_fan_in=True,
    delays="projection (0..max_delay steps)",
    recurrence=True,
    graded_messages=True,
    multiple_readouts=True,
    notes=("the reference form: everything the simulator runs", "checksummed (Fletcher-32 and a "
           "SHA-256 digest of the network)", "recurrence: free-running networks only "
           "(schedule 'free', as netx runs them); sample networks are acyclic"),
)


def detect(path: Path) -> bool:
    """An IR file: HDF5 with the root attribute ``format = "sakd-ir"``."""
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except (OSError, RuntimeError, ValueError):
        return False
    return (fmt.decode() if isinstance(fmt, bytes) else fmt) == IR_FORMAT


def read_ir(path: Path, *, time_steps: int | None = None) -> Network:
    """Read an IR file; ``time_steps`` must agree with the file's T when the file has one."""
    network = read_network(path)
    if time_steps is not None and network.time_steps is not None and time_steps != network.time_steps:
        raise FormatError(f"{path}: the network was quantized for T = {network.time_steps}; "
                          f"--time-steps {time_steps} would run it for a different T (its readout "
                          f"range and biases depend on T): re-export it for T = {time_steps}")
    return network


def summarize_network(network: Network, path: str = "", version: Any = None) -> Inspection:
    """The summary of an in-memory IR network (``inspect`` without a file)."""
    inp = network.input
    lat = network.latencies
    rows: list[LayerRow] = []
    ranges: dict[str, Any] = {}
    weights = params = neurons = 0
    for name in network.topological_order():
        pop = network.population(name)
        for proj in network.projections_into(name):
            w = proj.weight
            weights += int(w.size)
            merge_range(ranges, "weight", value_range(w))
            geometry = ""
            if proj.kind == "conv2d":
                geometry = (f"k{w.shape[2]}x{w.shape[3]} s{proj.stride[0]},{proj.stride[1]} "
                            f"p{proj.padding[0]},{proj.padding[1]}"
                            + (f" d{proj.dilation[0]},{proj.dilation[1]}" if proj.dilation != (1, 1) else "")
                            + (f" g{proj.groups}" if proj.groups > 1 else ""))
            elif proj.kind == "upsample":
                geometry = (f"up{w.shape[2]}x{w.shape[3]}" + (f" g{proj.groups}" if proj.groups > 1 else "")
                            + (f" weight_exp {proj.weight_exp}" if proj.weight_exp else ""))
            elif proj.weight_exp:
                geometry = f"weight_exp {proj.weight_exp}"
            rows.append(LayerRow(name=proj.name, kind=proj.kind, shape=list(w.shape),
                                 inputs=[proj.source], params=int(w.size),
                                 weight_range=value_range(w), neuron=geometry, delay=proj.delay))
        attrs, arrays = pop.neuron.to_file()
        neurons += pop.size
        for key, value in attrs.items():
            if not (pop.is_readout and key == "vth"):
                merge_range(ranges, key, [value, value])
        for key, value in arrays.items():
            merge_range(ranges, key, value_range(value))
        count = int(sum(a.size for a in arrays.values()))
        params += count
        shown = {k: v for k, v in attrs.items() if not (pop.is_readout and k == "vth")}
        neuron = f"{pop.neuron.model} " + " ".join(f"{k} {v}" for k, v in shown.items())
        bias = arrays.get("bias_mant")
        rows.append(LayerRow(
            name=pop.name, kind="readout" if pop.is_readout else "population",
            shape=list(pop.shape), inputs=[p.name for p in network.projections_into(name)],
            params=count, neuron=neuron,
            bias_range=value_range(bias) if bias is not None and np.any(bias) else None,
            notes=f"latency {lat[name]}, scale {pop.scale:g}"))
    return Inspection(
        path=path, format="sakd-ir", version=version, target=network.target.name,
        input={"name": inp.name, "shape": list(inp.shape), "encoding": inp.encoding,
               "bits": inp.bits, "scale": inp.scale},
        layers=rows,
        totals={"layers": len(rows), "populations": len(network.populations),
                "projections": len(network.projections), "neurons": neurons,
                "weights": weights, "parameters": weights + params,
                "time_steps": network.time_steps},
        ranges=ranges,
        delays={p.name: p.delay for p in network.projections if p.delay},
        latency=network.latency,
        metadata=jsonable(network.metadata),
        notes=[f"digest {network.digest()[:16]}"])


def inspect_ir(path: Path) -> Inspection:
    """Summarize an IR file."""
    network = read_network(path)
    with h5py.File(path, "r") as f:
        version = int(np.asarray(f.attrs.get("schema_version", SCHEMA_VERSION)).reshape(-1)[0])
    return summarize_network(network, str(path), version)


FORMAT = Format(
    name="ir", title="IR file", suffixes=(".h5",), file_name="network.h5", supports=SUPPORT,
    detect=detect, read=read_ir, write=write_network, inspect=inspect_ir,
    read_options=("time_steps",),
    description="sakd's own network.h5: the integer network the simulator and Lava bridge run",
)
