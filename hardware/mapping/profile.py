"""Resource profiles of chips and systems: data files (``chips/*.json``), not code.

A chip profile lists *figures*: every limit, time and energy the mapper, the time model and the
energy model use. Each figure carries its value, unit, source and how certain it is::

    "max_neurons_per_core": {"value": 8192, "unit": "neurons", "source": "intel-brief-2021",
                             "certainty": "published"}

``source`` is either a key of the file's ``sources`` table (resolved to the full citation) or a
citation written out. ``certainty`` is one of ``CERTAINTIES``:

- ``measured``: measured on silicon (a benchmark run, a power probe);
- ``published``: a figure the vendor or a paper publishes (a data sheet, a brief, an open-source
  model of the hardware such as nengo-loihi), or a figure derived from one by arithmetic that the
  note states;
- ``pre-silicon``: published, but from circuit simulation before the chip existed (Loihi's
  Table 2);
- ``assumed``: no public figure; a stated assumption, to be overridden when a better figure is
  known;
- ``user``: set by the caller (``overrides=``).

``load_chip`` and ``load_system`` return frozen dataclasses. A user's own JSON file works the
same as a built-in one; a bad file gives a ``ChipProfileError`` that names the file and the
field. stdlib ``json`` only; Python 3.10 compatible.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ChipProfileError

CHIP_DIR = Path(__file__).with_name("chips")
SYSTEMS_FILE = CHIP_DIR / "systems.json"
CERTAINTIES = ("measured", "published", "pre-silicon", "assumed", "user")

# name -> (kind, nullable, minimum): kind "int" | "float" | "bool"; minimum for numbers
# (values must be >= minimum; None: any). Units are stated by the data file and the docs.
_CHIP_FIELDS: dict[str, tuple[str, bool, float | None]] = {
    # topology of one chip: a mesh of tiles (routers), each holding tile_cores_x x tile_cores_y cores
    "cores_per_chip": ("int", False, 1),
    "mesh_tiles_x": ("int", False, 1),
    "mesh_tiles_y": ("int", False, 1),
    "tile_cores_x": ("int", False, 1),
    "tile_cores_y": ("int", False, 1),
    "embedded_cores": ("int", True, 0),
    # per-core limits (null: not a separate limit on this chip)
    "max_neurons_per_core": ("int", False, 1),
    "input_axons_per_core": ("int", True, 1),
    "output_axons_per_core": ("int", True, 1),
    "synapse_memory_bits": ("int", True, 1),
    "neuron_memory_bits": ("int", True, 1),
    "core_memory_bits": ("int", True, 1),
    # synapse memory format
    "synapse_word_bits": ("int", False, 1),
    "synapse_group_max": ("int", False, 1),
    "synapse_group_header_bits": ("int", False, 0),
    "sparse_index_bits_min": ("int", False, 0),
    "max_weight_bits": ("int", False, 1),
    "delay_field_bits": ("int", False, 0),
    "delay_slot_bits": ("int", False, 1),
    "max_delay": ("int", False, 0),
    "shared_weights": ("bool", False, None),
    # messages
    "max_message_bits": ("int", False, 1),
    "message_bits": ("int", False, 1),
    # times (ns, or messages per second)
    "t_synop_ns": ("float", False, 0.0),
    "t_update_active_ns": ("float", False, 0.0),
    "t_update_inactive_ns": ("float", False, 0.0),
    "t_message_send_ns": ("float", False, 0.0),
    "t_message_receive_ns": ("float", False, 0.0),
    "t_within_tile_ns": ("float", False, 0.0),
    "t_hop_ew_ns": ("float", False, 0.0),
    "t_hop_ns_ns": ("float", False, 0.0),
    "t_interchip_hop_ns": ("float", False, 0.0),
    "tile_message_rate_per_s": ("float", False, 1e-300),
    "interchip_message_rate_per_s": ("float", False, 1e-300),
    "t_barrier_min_ns": ("float", False, 0.0),
    "t_barrier_max_ns": ("float", False, 0.0),
    "barrier_max_tiles": ("int", False, 1),
    # energies (pJ per message per hop) and static power (W per chip)
    "e_hop_ew_pj": ("float", False, 0.0),
    "e_hop_ns_pj": ("float", False, 0.0),
    "e_interchip_hop_pj": ("float", False, 0.0),
    "static_power_w": ("float", True, 0.0),
}

_SYSTEM_FIELDS: dict[str, tuple[str, bool, float | None]] = {
    "chips": ("int", False, 1),
    "chips_x": ("int", False, 1),
    "chips_y": ("int", False, 1),
    "usable_cores_per_chip": ("int", True, 1),
    "max_power_w": ("float", True, 0.0),
}


@dataclass(frozen=True)
class Figure:
    """One figure of a profile: ``value`` in ``unit``, where it comes from and how certain it is.
    ``value`` None: the chip has no such separate limit (or no public figure, see ``note``)."""

    value: int | float | bool | None
    unit: str
    source: str
    certainty: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"value": self.value, "unit": self.unit, "source": self.source,
               "certainty": self.certainty}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class ChipProfile:
    """The resources, times and energies of one neuromorphic chip (units in the field names:
    ``_bits``, ``_ns``, ``_pj``, ``_w``, ``_per_s``; counts otherwise). ``figures`` holds every
    value with its unit, source and certainty; the typed attributes repeat the values."""

    name: str
    description: str
    figures: Mapping[str, Figure]
    path: str | None
    notes: tuple[str, ...]
    cores_per_chip: int
    mesh_tiles_x: int
    mesh_tiles_y: int
    tile_cores_x: int
    tile_cores_y: int
    embedded_cores: int | None
    max_neurons_per_core: int
    input_axons_per_core: int | None
    output_axons_per_core: int | None
    synapse_memory_bits: int | None
    neuron_memory_bits: int | None
    core_memory_bits: int | None
    synapse_word_bits: int
    synapse_group_max: int
    synapse_group_header_bits: int
    sparse_index_bits_min: int
    max_weight_bits: int
    delay_field_bits: int
    delay_slot_bits: int
    max_delay: int
    shared_weights: bool
    max_message_bits: int
    message_bits: int
    t_synop_ns: float
    t_update_active_ns: float
    t_update_inactive_ns: float
    t_message_send_ns: float
    t_message_receive_ns: float
    t_within_tile_ns: float
    t_hop_ew_ns: float
    t_hop_ns_ns: float
    t_interchip_hop_ns: float
    tile_message_rate_per_s: float
    interchip_message_rate_per_s: float
    t_barrier_min_ns: float
    t_barrier_max_ns: float
    barrier_max_tiles: int
    e_hop_ew_pj: float
    e_hop_ns_pj: float
    e_interchip_hop_pj: float
    static_power_w: float | None

    # derived geometry ---------------------------------------------------------------------
    @property
    def cores_x(self) -> int:
        """Columns of the core grid of one chip (tiles x cores per tile, east-west)."""
        return self.mesh_tiles_x * self.tile_cores_x

    @property
    def cores_y(self) -> int:
        """Rows of the core grid of one chip (north-south)."""
        return self.mesh_tiles_y * self.tile_cores_y

    @property
    def tiles_per_chip(self) -> int:
        return self.mesh_tiles_x * self.mesh_tiles_y

    @property
    def shared_memory(self) -> bool:
        """True when neuron state, delay buffers and synapses share one memory per core."""
        return self.core_memory_bits is not None

    def figure(self, name: str) -> Figure:
        return self.figures[name]

    def assumptions(self) -> dict[str, Figure]:
        """The figures that are assumptions (or user overrides), by name."""
        return {k: f for k, f in self.figures.items() if f.certainty in ("assumed", "user")}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "path": self.path,
                "figures": {k: f.to_dict() for k, f in self.figures.items()},
                "notes": list(self.notes)}


@dataclass(frozen=True)
class SystemProfile:
    """A system of several chips of one kind, tiled ``chips_x`` x ``chips_y`` (a 2-D layout of
    the chip-to-chip links). ``usable_cores_per_chip``: fewer cores than the chip has, where the
    system's published core count says so (None: all of them)."""

    name: str
    description: str
    chip: str
    chips: int
    chips_x: int
    chips_y: int
    usable_cores_per_chip: int | None = None
    max_power_w: float | None = None
    figures: Mapping[str, Figure] = field(default_factory=dict)
    path: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "chip": self.chip,
                "figures": {k: f.to_dict() for k, f in self.figures.items()},
                "path": self.path, "notes": list(self.notes)}


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------


def list_chips() -> list[str]:
    """Names of the built-in chip profiles (``chips/*.json`` without ``systems.json``), sorted."""
    return sorted(p.stem for p in CHIP_DIR.glob("*.json") if p.name != SYSTEMS_FILE.name)


def list_systems() -> list[str]:
    """Names of the built-in systems (``chips/systems.json``), sorted."""
    data = _read_json(SYSTEMS_FILE)
    systems = data.get("systems")
    return sorted(systems) if isinstance(systems, dict) else []


def load_chip(name_or_path: str | os.PathLike[str] | ChipProfile,
              overrides: Mapping[str, Any] | None = None) -> ChipProfile:
    """A built-in chip profile by name (``"loihi"``, ``"loihi2"``), or a user's JSON file.

    ``overrides``: figure name -> value (e.g. ``{"core_memory_bits": 1 << 20}``); each replaces
    the figure's value, with source "user override" and certainty "user". Unknown names, wrong
    types or out-of-range values raise ``ChipProfileError`` naming the field.
    """
    if isinstance(name_or_path, ChipProfile):
        chip = name_or_path
    else:
        path = _resolve(name_or_path, list_chips(), "chip profile")
        chip = _chip_from_mapping(_read_json(path), path)
    if overrides:
        chip = _apply_overrides(chip, overrides)
    return chip


def load_system(name_or_path: str | os.PathLike[str] | SystemProfile) -> SystemProfile:
    """A built-in system by name (``list_systems()``: ``"loihi2-chip"``, ``"kapoho-point"``,
    ``"hala-point"``, ...), or a user's JSON file holding one system."""
    if isinstance(name_or_path, SystemProfile):
        return name_or_path
    text = os.fspath(name_or_path)
    if not isinstance(name_or_path, os.PathLike) and not Path(text).is_file() \
            and not text.endswith(".json"):
        data = _read_json(SYSTEMS_FILE)
        systems = data.get("systems")
        if not isinstance(systems, dict):
            raise ChipProfileError(f"{SYSTEMS_FILE}: field 'systems': missing or not a mapping")
        if text not in systems:
            raise ChipProfileError(f"unknown system '{text}'; built-in systems: "
                                   f"{', '.join(sorted(systems))} (or pass the path of a JSON file)")
        entry = systems[text]
        if not isinstance(entry, dict):
            raise ChipProfileError(f"{SYSTEMS_FILE}: field 'systems.{text}': must be a mapping")
        sources = data.get("sources") or {}
        return _system_from_mapping({**entry, "name": text}, SYSTEMS_FILE, sources,
                                    prefix=f"systems.{text}.")
    path = Path(text)
    if not path.is_file():
        raise ChipProfileError(f"{path}: system file not found")
    data = _read_json(path)
    return _system_from_mapping(data, path, data.get("sources") or {}, prefix="")


def single_chip_system(chip: ChipProfile) -> SystemProfile:
    """The system of one chip of ``chip``'s kind (what ``map_network`` uses without a system)."""
    one = Figure(1, "chips", "definition", "published")
    return SystemProfile(name=f"{chip.name}-chip", description=f"one {chip.name} chip",
                         chip=chip.name, chips=1, chips_x=1, chips_y=1,
                         figures={"chips": one, "chips_x": one, "chips_y": one})


def _resolve(name_or_path: str | os.PathLike[str], known: list[str], what: str) -> Path:
    text = os.fspath(name_or_path)
    path = Path(text)
    if not isinstance(name_or_path, os.PathLike) and not path.is_file() \
            and path.suffix.lower() != ".json":
        if text not in known:
            raise ChipProfileError(f"unknown {what} '{text}'; built-in: {', '.join(known)} "
                                   f"(or pass the path of a JSON file)")
        path = CHIP_DIR / f"{text}.json"
    if not path.is_file():
        raise ChipProfileError(f"{path}: {what} file not found")
    return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ChipProfileError(f"{path}: not valid JSON: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ChipProfileError(f"{path}: cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise ChipProfileError(f"{path}: a profile must be a JSON object, got {type(data).__name__}")
    return data


def _check_value(value: Any, kind: str, nullable: bool, minimum: float | None,
                 where: str) -> int | float | bool | None:
    """The value of a figure, checked (``where`` names the file and field for the error)."""
    if value is None:
        if nullable:
            return None
        raise ChipProfileError(f"{where}: value must not be null")
    if kind == "bool":
        if not isinstance(value, bool):
            raise ChipProfileError(f"{where}: value must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ChipProfileError(f"{where}: value must be a number, got {value!r}")
    if kind == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise ChipProfileError(f"{where}: value must be an integer, got {value!r}")
            value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ChipProfileError(f"{where}: value must be finite, got {value!r}")
    if minimum is not None and value < minimum:
        raise ChipProfileError(f"{where}: value {value!r} must be >= {minimum:g}")
    return value


def _figures(data: Mapping[str, Any], spec: Mapping[str, tuple[str, bool, float | None]],
             path: Path, sources: Mapping[str, Any], prefix: str) -> dict[str, Figure]:
    raw = data.get("figures")
    if not isinstance(raw, dict):
        raise ChipProfileError(f"{path}: field '{prefix}figures': missing or not a mapping")
    for key in raw:
        if key not in spec:
            raise ChipProfileError(f"{path}: field '{prefix}figures.{key}': unknown figure; "
                                   f"known figures: {', '.join(spec)}")
    figures: dict[str, Figure] = {}
    for key, (kind, nullable, minimum) in spec.items():
        name = f"{prefix}figures.{key}"

        def where(part: str = "", name: str = name) -> str:
            return f"{path}: field '{name}{'.' + part if part else ''}'"

        if key not in raw:
            if key in ("usable_cores_per_chip", "max_power_w"):
                continue  # optional figures of a system
            raise ChipProfileError(f"{where()}: missing (required)")
        entry = raw[key]
        if not isinstance(entry, dict):
            raise ChipProfileError(f"{where()}: must be an object with value, unit, source and "
                                   f"certainty, got {entry!r}")
        for part in entry:
            if part not in ("value", "unit", "source", "certainty", "note"):
                raise ChipProfileError(f"{where(part)}: unknown key; a figure has value, unit, "
                                       f"source, certainty and an optional note")
        for part in ("value", "unit", "source", "certainty"):
            if part not in entry:
                raise ChipProfileError(f"{where(part)}: missing (required)")
        for part in ("unit", "source", "certainty", "note"):
            if part in entry and not isinstance(entry[part], str):
                raise ChipProfileError(f"{where(part)}: must be text")
        if entry["certainty"] not in CERTAINTIES:
            raise ChipProfileError(f"{where('certainty')}: {entry['certainty']!r} is not one of "
                                   f"{', '.join(CERTAINTIES)}")
        if not entry["source"].strip():
            raise ChipProfileError(f"{where('source')}: empty; every figure names its source "
                                   f"(write 'assumption' for an assumption)")
        value = _check_value(entry["value"], kind, nullable, minimum, where("value"))
        source = entry["source"]
        if source in sources:
            source = str(sources[source])
        figures[key] = Figure(value, entry["unit"], source, entry["certainty"],
                              entry.get("note", ""))
    return figures


def _text(data: Mapping[str, Any], key: str, path: Path, prefix: str, required: bool) -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise ChipProfileError(f"{path}: field '{prefix}{key}': missing (required)")
        return ""
    if not isinstance(value, str):
        raise ChipProfileError(f"{path}: field '{prefix}{key}': must be text")
    return value


def _notes(data: Mapping[str, Any], path: Path, prefix: str) -> tuple[str, ...]:
    notes = data.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ChipProfileError(f"{path}: field '{prefix}notes': must be a list of strings")
    return tuple(notes)


def _chip_from_mapping(data: Mapping[str, Any], path: Path) -> ChipProfile:
    for key in data:
        if key not in ("schema", "name", "description", "sources", "figures", "notes"):
            raise ChipProfileError(f"{path}: field '{key}': unknown; a chip profile has schema, "
                                   f"name, description, sources, figures and notes")
    sources = data.get("sources") or {}
    if not isinstance(sources, dict):
        raise ChipProfileError(f"{path}: field 'sources': must be a mapping of key to citation")
    name = _text(data, "name", path, "", required=True)
    figures = _figures(data, _CHIP_FIELDS, path, sources, "")
    chip = ChipProfile(name=name, description=_text(data, "description", path, "", False),
                       figures=figures, path=str(path), notes=_notes(data, path, ""),
                       **{k: f.value for k, f in figures.items()})
    _check_chip(chip, f"{path}: field 'figures.")
    return chip


def _check_chip(chip: ChipProfile, where: str) -> None:
    """Consistency between figures (not just each one alone)."""
    grid = chip.mesh_tiles_x * chip.mesh_tiles_y * chip.tile_cores_x * chip.tile_cores_y
    if grid != chip.cores_per_chip:
        raise ChipProfileError(
            f"{where}cores_per_chip': {chip.cores_per_chip} cores, but the mesh holds "
            f"{chip.mesh_tiles_x} x {chip.mesh_tiles_y} tiles of {chip.tile_cores_x} x "
            f"{chip.tile_cores_y} cores = {grid}; make them agree")
    if chip.core_memory_bits is not None and (chip.synapse_memory_bits is not None
                                              or chip.neuron_memory_bits is not None):
        raise ChipProfileError(
            f"{where}core_memory_bits': a shared core memory excludes separate "
            f"synapse_memory_bits and neuron_memory_bits; set those to null")
    if chip.core_memory_bits is None and chip.synapse_memory_bits is None:
        raise ChipProfileError(f"{where}synapse_memory_bits': null, and no shared "
                               f"core_memory_bits: the chip would have no synapse memory")
    if chip.t_barrier_max_ns < chip.t_barrier_min_ns:
        raise ChipProfileError(f"{where}t_barrier_max_ns': {chip.t_barrier_max_ns} is below "
                               f"t_barrier_min_ns {chip.t_barrier_min_ns}")


def _apply_overrides(chip: ChipProfile, overrides: Mapping[str, Any]) -> ChipProfile:
    if not isinstance(overrides, Mapping):
        raise ChipProfileError(f"overrides must be a mapping of figure name to value, "
                               f"got {type(overrides).__name__}")
    figures = dict(chip.figures)
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in _CHIP_FIELDS:
            raise ChipProfileError(f"override '{key}': unknown figure of chip '{chip.name}'; "
                                   f"known figures: {', '.join(_CHIP_FIELDS)}")
        kind, nullable, minimum = _CHIP_FIELDS[key]
        checked = _check_value(value, kind, nullable, minimum, f"override '{key}'")
        old = figures[key]
        figures[key] = Figure(checked, old.unit, "user override", "user",
                              f"replaces {old.value!r} ({old.certainty}, {old.source})")
        values[key] = checked
    out = replace(chip, figures=figures, **values)
    _check_chip(out, "override '")
    return out


def _system_from_mapping(data: Mapping[str, Any], path: Path, sources: Mapping[str, Any],
                         prefix: str) -> SystemProfile:
    for key in data:
        if key not in ("schema", "name", "description", "chip", "sources", "figures", "notes"):
            raise ChipProfileError(f"{path}: field '{prefix}{key}': unknown; a system has "
                                   f"schema, name, description, chip, sources, figures, notes")
    if not isinstance(sources, dict):
        raise ChipProfileError(f"{path}: field 'sources': must be a mapping of key to citation")
    name = _text(data, "name", path, prefix, required=True)
    chip = _text(data, "chip", path, prefix, required=True)
    figures = _figures(data, _SYSTEM_FIELDS, path, sources, prefix)
    values = {k: f.value for k, f in figures.items()}
    system = SystemProfile(name=name, description=_text(data, "description", path, prefix, False),
                           chip=chip, figures=figures, path=str(path),
                           notes=_notes(data, path, prefix), **values)
    if system.chips > system.chips_x * system.chips_y:
        raise ChipProfileError(f"{path}: field '{prefix}figures.chips': {system.chips} chips do "
                               f"not fit a {system.chips_x} x {system.chips_y} layout")
    return system
