"""What every file format of ``sakd.formats`` declares: its name, suffixes, how to detect it from a
file's contents, how to read, write and inspect it, and what it can express (:class:`Support`).
The registry (``sakd.formats``) iterates over these for export, inspect, simulate and verify, and
``sakd formats`` / docs/support.md print the support matrix from them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sakd.hardware.errors import SakdError
from sakd.hardware.ir import Network


class FormatError(SakdError):
    """A file that cannot be read, written or inspected in its format; the message names the
    file (and the node or key) and says why."""


@dataclass(frozen=True)
class Support:
    """What a format can express. ``delays``: a sentence ("none", "projection", "per synapse",
    ...); ``notes``: limits worth knowing that the fields do not say."""

    neuron_models: tuple[str, ...]
    layer_kinds: tuple[str, ...]
    residual_fan_in: bool
    delays: str
    recurrence: bool
    graded_messages: bool
    multiple_readouts: bool
    notes: tuple[str, ...] = ()


def check_supported(network: Network, support: Support, format_name: str,
                    error: type[SakdError] = FormatError) -> None:
    """Raise ``error`` naming the first node the format cannot express (its neuron model, a
    layer kind, fan-in, several readouts, graded messages), before anything is written."""
    for pop in network.populations:
        if pop.neuron.model not in support.neuron_models:
            raise error(f"{format_name} cannot express population '{pop.name}': its neuron model "
                        f"'{pop.neuron.model}' is not one of {', '.join(support.neuron_models)} "
                        f"(docs/support.md)")
        if pop.message_bits > 1 and not support.graded_messages:
            raise error(f"{format_name} cannot express population '{pop.name}': it sends "
                        f"{pop.message_bits}-bit graded messages (docs/support.md)")
    for proj in network.projections:
        if proj.kind not in support.layer_kinds:
            raise error(f"{format_name} cannot express projection '{proj.name}': kind "
                        f"'{proj.kind}' (docs/support.md)")
    if not support.multiple_readouts and len(network.readouts) > 1:
        raise error(f"{format_name} cannot express a network with {len(network.readouts)} "
                    f"readouts (docs/support.md)")
    if not support.residual_fan_in:
        for pop in network.populations:
            incoming = network.projections_into(pop.name)
            if len(incoming) > 1:
                raise error(f"{format_name} cannot express population '{pop.name}': it sums "
                            f"{len(incoming)} projections (residual fan-in; docs/support.md)")


# ---------------------------------------------------------------------------------------------
# inspection
# ---------------------------------------------------------------------------------------------


@dataclass
class LayerRow:
    """One layer (IR node, NIR node, netx layer) of an inspected file."""

    name: str
    kind: str
    shape: Any = None
    inputs: list[str] = field(default_factory=list)
    params: int = 0
    weight_range: list[float] | None = None
    neuron: str = ""
    bias_range: list[float] | None = None
    delay: Any = None
    notes: str = ""


@dataclass
class IRBrief:
    """What a file maps onto in the IR (or why it does not)."""

    latency: int | None = None
    populations: int = 0
    projections: int = 0
    delays: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the reader's assumptions


@dataclass
class Inspection:
    """The summary of a network file (``sakd inspect``): every layer, the totals, integer ranges,
    delays, latency, metadata and, for files in another format, the IR they map onto."""

    path: str
    format: str
    version: Any
    target: str | None
    input: dict[str, Any]
    layers: list[LayerRow]
    totals: dict[str, Any]
    ranges: dict[str, Any]
    delays: dict[str, Any]
    latency: int | None
    metadata: dict[str, Any]
    ir: IRBrief | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def representable(self) -> bool:
        """Whether the file maps onto the IR (what the simulator runs)."""
        return self.ir is None or self.ir.error is None


# ---------------------------------------------------------------------------------------------
# the format record
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    """One file format. ``detect(path)`` looks at the contents (never only the name);
    ``read(path, **options)`` returns an IR :class:`Network`; ``write(network, path, **options)``
    writes one atomically; ``inspect(path)`` summarizes a file. A format that holds a float model
    rather than an integer network (ONNX) has ``read = None`` and writes from the torch module
    (``writes = "float model"``). ``read_options``: the option names ``read`` takes (the CLI
    passes only these). ``notes(network)``: what a written file holds that the hardware cannot
    run as is."""

    name: str
    title: str
    suffixes: tuple[str, ...]
    file_name: str  # the file name in an export folder
    supports: Support
    detect: Callable[[Path], bool]
    read: Callable[..., Network] | None = None
    write: Callable[..., Path] | None = None
    inspect: Callable[[Path], Inspection] | None = None
    writes: str = "integer network"  # or "float model"
    read_options: tuple[str, ...] = ()
    description: str = ""
    #: what a written file holds beyond the hardware's ranges (sentences; netx's bias exponent)
    notes: Callable[[Network], list[str]] | None = None

    def writable(self, network: Network) -> str | None:
        """None when the format can express ``network``, else the reason it cannot."""
        try:
            check_supported(network, self.supports, self.title)
        except SakdError as exc:
            return str(exc)
        return None


# ---------------------------------------------------------------------------------------------
# helpers for the inspectors
# ---------------------------------------------------------------------------------------------


def value_range(values: Any) -> list[float] | None:
    """[min, max] of an array (integers when every value is one), None when empty."""
    arr = np.asarray(values)
    if arr.size == 0:
        return None
    lo, hi = arr.min(), arr.max()
    if arr.dtype.kind in "iub" or (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
        return [int(lo), int(hi)]
    return [float(lo), float(hi)]


def merge_range(ranges: dict[str, Any], key: str, r: list[float] | None) -> None:
    """Widen ``ranges[key]`` to cover ``r``."""
    if r is None:
        return
    old = ranges.get(key)
    ranges[key] = r if old is None else [min(old[0], r[0]), max(old[1], r[1])]


def jsonable(value: Any) -> Any:
    """Plain JSON values from numpy scalars and arrays, bytes and tuples."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def ir_brief(network: Network, **details: Any) -> IRBrief:
    """What an IR network is, in brief."""
    return IRBrief(latency=network.latency, populations=len(network.populations),
                   projections=len(network.projections),
                   delays={p.name: p.delay for p in network.projections if p.delay},
                   details=details)


def open_hdf5(path: str | os.PathLike[str]) -> h5py.File:
    """``path`` opened read-only; a FormatError (MissingFileError when absent) naming it."""
    from sakd.hardware.netfile import open_hdf5 as _open

    return _open(Path(path), FormatError, "network file")
