"""``sakd formats`` and ``sakd models``: the support matrix of the file formats and the
architecture registry, as rows (rendered by ``sakd.render.catalog``; docs/support.md is generated
from the same rows)."""

from __future__ import annotations

from dataclasses import dataclass

from sakd.hardware.neurons import NEURON_MODELS


@dataclass(frozen=True)
class FormatRow:
    name: str
    title: str
    suffixes: str
    file_name: str
    reads: bool
    writes: str
    neuron_models: str
    layer_kinds: str
    residual_fan_in: bool
    delays: str
    recurrence: bool
    graded_messages: bool
    multiple_readouts: bool
    read_options: str
    description: str
    notes: tuple[str, ...]


@dataclass(frozen=True)
class NeuronModelRow:
    model: str
    title: str
    state: str  # "u 24-bit wrap, v 24-bit saturate"
    parameters: str


@dataclass(frozen=True)
class ModelRow:
    name: str
    family: str
    teacher: str
    description: str
    tiny: bool


def format_rows() -> list[FormatRow]:
    """One row per registered format (``sakd.formats``)."""
    from sakd.formats import formats

    rows = []
    for fmt in formats().values():
        s = fmt.supports
        rows.append(FormatRow(
            name=fmt.name, title=fmt.title, suffixes=", ".join(fmt.suffixes),
            file_name=fmt.file_name, reads=fmt.read is not None,
            writes=fmt.writes if fmt.write is not None else "no",
            neuron_models=", ".join(s.neuron_models), layer_kinds=", ".join(s.layer_kinds),
            residual_fan_in=s.residual_fan_in, delays=s.delays, recurrence=s.recurrence,
            graded_messages=s.graded_messages, multiple_readouts=s.multiple_readouts,
            read_options=", ".join(fmt.read_options) or "-", description=fmt.description,
            notes=s.notes))
    return rows


def neuron_model_rows() -> list[NeuronModelRow]:
    """One row per registered neuron model (``sakd.hardware.neurons``), ranges on Loihi 2."""
    from sakd.hardware.target import DEFAULT_TARGET

    rows = []
    for name, cls in NEURON_MODELS.items():
        state = ", ".join(f"{v.name} {v.bits}-bit {v.overflow}" for v in cls.state)
        params = []
        for fld in cls.parameters():
            lo, hi = fld.metadata["limits"](DEFAULT_TARGET, False)
            kind = " (array)" if fld.metadata.get("array") else ""
            params.append(f"{fld.name} [{lo}, {hi}]{kind}")
        rows.append(NeuronModelRow(name, cls.title, state, "; ".join(params)))
    return rows


def model_rows(include_tiny: bool = False) -> list[ModelRow]:
    """The architecture registry; the tiny test architectures only when asked."""
    from sakd.models import ARCHITECTURES

    return [ModelRow(s.name, s.family, s.teacher, s.description, s.tiny)
            for s in ARCHITECTURES.values() if include_tiny or not s.tiny]
