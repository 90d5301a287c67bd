"""Energy model: per-operation energy profiles applied to the simulator's exact counts.

The contract is ``shared/spec/energy.md``. Units, everywhere in this module:

- energies per operation (a profile's constants) are in **pJ per operation**;
- operation counts are **operations per sample** (one inference of T steps, docs/ir.md);
- energies of a network or layer are **pJ per sample** (``*_pj``), or J per sample (``*_j``),
  the mean over the samples that were simulated.

An energy is a sum of ``count x energy-per-op`` terms and nothing else. In particular, no time
figure is ever added to an energy: Loihi's Table 2 lists 3.5 ns per synaptic op beside 23.6 pJ
per synaptic op, and these are different quantities (a known mistake of one public package).

A profile may lack a constant (45 nm CMOS has no neuron-update cost, Loihi has no MAC cost).
Such a term contributes 0 pJ, and the estimate lists it in ``not_counted`` with its operation
count, so that a report can say what it left out.

numpy only (PyYAML is imported inside the loader); Python 3.10 compatible.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sakd.hardware.counts import NetworkCounts
from sakd.hardware.errors import SakdError

PROFILE_DIR = Path(__file__).with_name("profiles")

#: The energy terms of an SNN estimate: term name -> the profile field that prices it.
TERMS: dict[str, str] = {
    "synops": "per_synop",
    "graded_macs": "per_mac",
    "active_updates": "per_neuron_update_active",
    "inactive_updates": "per_neuron_update_inactive",
    "spikes": "per_spike",
}

#: The key under which ``sakd.models.macs.count_ann_macs`` reports the sum of its layers.
ANN_TOTAL_KEY = "total"

_COST_FIELDS = ("per_synop", "per_mac", "per_neuron_update_active",
                "per_neuron_update_inactive", "per_spike")
_TEXT_FIELDS = ("name", "description", "units", "source")
_REQUIRED = ("name", "units", "source")
_KNOWN_FIELDS = frozenset(_COST_FIELDS + _TEXT_FIELDS + ("caveats",))
# A profile file may state its constants in any of these units; they are stored in pJ.
_UNIT_TO_PJ = {"fJ": 1e-3, "pJ": 1.0, "nJ": 1e3, "uJ": 1e6, "µJ": 1e6, "J": 1e12}
PJ_PER_J = 1e12


class ProfileError(SakdError):
    """An unknown profile name, or a profile file that cannot be used (names the file and field)."""


@dataclass(frozen=True)
class EnergyProfile:
    """Energies per operation of one target, in pJ per operation. ``None``: not known."""

    name: str
    description: str
    source: str
    per_synop: float | None = None  # pJ per synaptic op (one spike delivered over one synapse)
    per_mac: float | None = None  # pJ per multiply-accumulate (graded input, ANN baseline)
    per_neuron_update_active: float | None = None  # pJ per neuron-step with input or a spike
    per_neuron_update_inactive: float | None = None  # pJ per neuron-step without either
    per_spike: float | None = None  # pJ per emitted spike (Loihi: within a tile)
    caveats: tuple[str, ...] = ()
    path: str | None = None  # the file it was read from
    units: str = "pJ"  # constants are always held in pJ, whatever the file used

    def __post_init__(self) -> None:
        for name in _COST_FIELDS:
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and math.isfinite(value) and value >= 0):
                raise ProfileError(f"profile '{self.name}': {name} must be a finite number >= 0 "
                                   f"or null, got {value!r}")
        if self.per_synop is None and self.per_mac is None:
            raise ProfileError(f"profile '{self.name}': needs per_synop or per_mac (or both)")

    def cost(self, term: str) -> float | None:
        """pJ per operation of an energy term (a key of ``TERMS``), or None if not known."""
        return getattr(self, TERMS[term])

    def constants(self) -> dict[str, float | None]:
        """The per-operation energies in pJ, by field name."""
        return {name: getattr(self, name) for name in _COST_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        """JSON-able description (what a report prints beside its numbers)."""
        return {"name": self.name, "description": self.description, "units": "pJ per operation",
                **self.constants(), "source": self.source, "caveats": list(self.caveats),
                "path": self.path}


def list_profiles() -> list[str]:
    """Names of the built-in profiles (``hardware/profiles/*.yaml``), sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | os.PathLike[str] | EnergyProfile) -> EnergyProfile:
    """A built-in profile by name, or a user's profile file (YAML, or TOML on Python >= 3.11).

    A string is a built-in name unless it names an existing file or ends in .yaml/.yml/.toml.
    Unknown name: ``ProfileError`` listing the known names. A malformed file: ``ProfileError``
    naming the file and the field.
    """
    if isinstance(name_or_path, EnergyProfile):
        return name_or_path
    text = os.fspath(name_or_path)
    path = Path(text)
    if not isinstance(name_or_path, os.PathLike) and not path.is_file() \
            and path.suffix.lower() not in (".yaml", ".yml", ".toml"):
        if text not in list_profiles():
            raise ProfileError(f"unknown energy profile '{text}'; built-in profiles: "
                               f"{', '.join(list_profiles())} (or pass the path of a YAML file)")
        path = PROFILE_DIR / f"{text}.yaml"
    if not path.is_file():
        raise ProfileError(f"{path}: energy profile file not found")
    return _profile_from_mapping(_read_mapping(path), path)


def _read_mapping(path: Path) -> Mapping[str, Any]:
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError as exc:  # Python 3.10
                raise ProfileError(f"{path}: TOML profiles need Python >= 3.11; use YAML") from exc
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        else:
            import yaml

            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
    except ProfileError:
        raise
    except Exception as exc:  # yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError, OSError
        raise ProfileError(f"{path}: not a readable profile file: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ProfileError(f"{path}: a profile must be a mapping of fields, got "
                           f"{type(data).__name__}")
    return data


def _profile_from_mapping(data: Mapping[str, Any], path: Path) -> EnergyProfile:
    def bad(field_name: str, why: str) -> ProfileError:
        return ProfileError(f"{path}: field '{field_name}': {why}")

    for key in data:
        if key not in _KNOWN_FIELDS:
            hint = ""
            if any(tag in str(key).lower() for tag in ("time", "_ns", "latency", "delay")):
                hint = " (profiles hold energies only: a time per operation is not an energy)"
            raise bad(str(key), f"unknown field{hint}; known fields: {', '.join(sorted(_KNOWN_FIELDS))}")
    for key in _REQUIRED:
        if data.get(key) in (None, ""):
            raise bad(key, "missing (required)")
    for key in _TEXT_FIELDS:
        if key in data and data[key] is not None and not isinstance(data[key], str):
            raise bad(key, f"must be text, got {type(data[key]).__name__}")
    units = data["units"]
    if units not in _UNIT_TO_PJ:
        raise bad("units", f"unknown unit {units!r}; use one of {', '.join(_UNIT_TO_PJ)}")
    scale = _UNIT_TO_PJ[units]
    costs: dict[str, float | None] = {}
    for key in _COST_FIELDS:
        value = data.get(key)
        if value is None:
            costs[key] = None
            continue
        if isinstance(value, str):  # PyYAML reads "1e3" (no dot) as text
            try:
                value = float(value)
            except ValueError:
                pass
        if not _is_number(value):
            raise bad(key, f"must be a number (energy per operation in {units}) or null, "
                           f"got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise bad(key, f"must be finite and >= 0, got {value!r}")
        costs[key] = float(value) * scale
    if costs["per_synop"] is None and costs["per_mac"] is None:
        raise bad("per_synop", "per_synop and per_mac are both missing: the profile prices nothing")
    caveats = data.get("caveats") or []
    if isinstance(caveats, str) or not isinstance(caveats, (list, tuple)) \
            or not all(isinstance(c, str) for c in caveats):
        raise bad("caveats", "must be a list of strings")
    return EnergyProfile(name=data["name"], description=data.get("description") or "",
                         source=data["source"], caveats=tuple(c.strip() for c in caveats),
                         path=str(path), **costs)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# SNN energy
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerEnergy:
    """One population or projection. ``ops``: operations per sample (mean), by term;
    ``energy_pj``: pJ per sample (mean) of each term the profile prices; ``total_pj``: their sum."""

    name: str
    kind: str  # "population" | "projection"
    ops: dict[str, float]
    energy_pj: dict[str, float]
    total_pj: float


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy of one SNN under one profile, per sample.

    ``per_sample_pj``: float64 [B], the total of each simulated sample in pJ. ``by_term_pj``:
    mean pJ per sample of each term in ``TERMS``. ``not_counted``: the terms that had operations
    but no price in the profile, mapped to their mean operations per sample (they contribute 0).
    ``graded_messages``: per population sending graded messages, (messages per sample, payload
    bits of each): each is priced as one message (``per_spike``), and each delivery over a
    synapse as one SynOp; no published profile prices the payload's bits, and ``notes`` says so.
    """

    profile: EnergyProfile
    time_steps: int
    samples: int
    layers: dict[str, LayerEnergy]
    per_sample_pj: np.ndarray
    by_term_pj: dict[str, float]
    ops: dict[str, float]  # mean operations per sample, by term, whole network
    not_counted: dict[str, float] = field(default_factory=dict)
    graded_messages: dict[str, tuple[float, int]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def total_pj(self) -> float:
        """Mean energy per sample, pJ."""
        return float(self.per_sample_pj.mean()) if self.per_sample_pj.size else 0.0

    @property
    def total_j(self) -> float:
        """Mean energy per sample, J."""
        return self.total_pj / PJ_PER_J

    @property
    def complete(self) -> bool:
        """True when every term with operations was priced."""
        return not self.not_counted


def estimate_snn_energy(counts: NetworkCounts, profile: EnergyProfile | str) -> EnergyEstimate:
    """Energy per sample of a simulated SNN (pJ) from its exact counts.

    Per projection: SynOps x ``per_synop`` + graded MACs x ``per_mac``. Per population: active
    neuron updates x ``per_neuron_update_active`` + inactive ones x ``per_neuron_update_inactive``
    + spikes x ``per_spike``. A term whose constant the profile lacks contributes 0 and is
    recorded in ``not_counted``. No time figure enters an energy.
    """
    profile = load_profile(profile)
    samples = int(counts.samples)
    per_sample = np.zeros(samples, dtype=np.float64)
    term_ops = {term: np.zeros(samples, dtype=np.float64) for term in TERMS}
    layers: dict[str, LayerEnergy] = {}

    def add_layer(name: str, kind: str, raw_ops: dict[str, Any]) -> None:
        nonlocal per_sample
        ops = {term: _per_sample(values, samples, f"{kind} '{name}', {term}")
               for term, values in raw_ops.items()}
        energies: dict[str, float] = {}
        layer_total = np.zeros(samples, dtype=np.float64)
        for term, values in ops.items():
            term_ops[term] = term_ops[term] + values
            cost = profile.cost(term)
            if cost is not None:
                energy = values * cost
                layer_total = layer_total + energy
                energies[term] = _mean(energy)
        per_sample = per_sample + layer_total
        layers[name] = LayerEnergy(name, kind, {t: _mean(v) for t, v in ops.items()}, energies,
                                   _mean(layer_total))

    for proj in counts.projections.values():
        add_layer(proj.name, "projection", {"synops": proj.synops, "graded_macs": proj.graded_macs})
    for pop in counts.populations.values():
        add_layer(pop.name, "population", {"active_updates": pop.active_updates,
                                           "inactive_updates": pop.inactive_updates,
                                           "spikes": pop.spikes})
    ops = {term: _mean(values) for term, values in term_ops.items()}
    by_term = {term: (_mean(term_ops[term] * profile.cost(term))
                      if profile.cost(term) is not None else 0.0) for term in TERMS}
    not_counted = {term: ops[term] for term in TERMS
                   if profile.cost(term) is None and np.any(term_ops[term] != 0)}
    graded = {pop.name: (_mean(np.asarray(pop.messages, dtype=np.float64)), int(pop.message_bits))
              for pop in counts.populations.values() if getattr(pop, "message_bits", 1) > 1}
    notes = ()
    if graded:
        listed = ", ".join(f"'{name}' ({n:.1f} messages of {bits} bits)"
                           for name, (n, bits) in graded.items())
        notes = (f"graded messages {listed}: each priced as one message (per_spike) and one "
                 f"SynOp per synapse it crosses; profile '{profile.name}' has no cost per "
                 f"payload bit (none is published), so the payload adds nothing",)
    return EnergyEstimate(profile, int(counts.time_steps), samples, layers, per_sample, by_term,
                          ops, not_counted, graded, notes)


def _per_sample(values: Any, samples: int, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(samples, float(array))
    if array.shape != (samples,):
        raise ValueError(f"{what}: expected one count per sample (shape ({samples},)), "
                         f"got shape {array.shape}")
    return array


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else 0.0


# ---------------------------------------------------------------------------------------------
# ANN baseline
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnEnergy:
    """Energy of the ANN baseline per sample: MACs x ``per_mac``.

    ``macs``: MACs per sample by layer; ``energy_pj``: pJ per sample by layer.
    """

    profile: EnergyProfile
    macs: dict[str, int]
    energy_pj: dict[str, float]

    @property
    def total_macs(self) -> int:
        return int(sum(self.macs.values()))

    @property
    def total_pj(self) -> float:
        return float(sum(self.energy_pj.values()))

    @property
    def total_j(self) -> float:
        return self.total_pj / PJ_PER_J


def ann_layer_macs(ann_macs_per_layer: Mapping[str, int]) -> dict[str, int]:
    """The per-layer MACs of ``ann_macs_per_layer`` without its ``"total"`` entry (if present,
    the total must equal the sum of the layers)."""
    layers = {str(k): int(v) for k, v in ann_macs_per_layer.items() if k != ANN_TOTAL_KEY}
    for name, value in layers.items():
        if value < 0:
            raise ValueError(f"ANN layer '{name}': negative MAC count {value}")
    if ANN_TOTAL_KEY in ann_macs_per_layer and int(ann_macs_per_layer[ANN_TOTAL_KEY]) != sum(layers.values()):
        raise ValueError(f"ANN MACs: '{ANN_TOTAL_KEY}' = {ann_macs_per_layer[ANN_TOTAL_KEY]} is not "
                         f"the sum of the layers ({sum(layers.values())})")
    return layers


def estimate_ann_energy(ann_macs_per_layer: Mapping[str, int],
                        profile: EnergyProfile | str) -> AnnEnergy:
    """Energy per sample of the ANN baseline: MACs per layer x ``per_mac`` (pJ per MAC).

    ``ann_macs_per_layer`` is what ``sakd.models.macs.count_ann_macs`` returns (a ``"total"``
    entry is checked and skipped). A profile without ``per_mac`` (e.g. ``loihi``) is an error:
    price the ANN baseline with a CMOS profile instead.
    """
    profile = load_profile(profile)
    if profile.per_mac is None:
        raise ProfileError(f"profile '{profile.name}' has no per_mac energy, so it cannot price the "
                           f"ANN baseline; use a profile with one (e.g. cmos45-int8, cmos45-fp32)")
    macs = ann_layer_macs(ann_macs_per_layer)
    return AnnEnergy(profile, macs, {name: value * profile.per_mac for name, value in macs.items()})


# ---------------------------------------------------------------------------------------------
# The second convention: SOPs = rate x T x FLOPs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SopsConvention:
    """The convention common in papers: SOPs(l) = firing rate of l's input x T x FLOPs(l).

    ``per_projection``: mean operations per sample of each projection. ``input_kind``:
    ``"spikes"`` (source is a population: SOPs), ``"graded"`` (source is a graded input: the
    input is not spikes, counted as T x FLOPs MACs), or ``"input-spikes"`` (source is a spike
    input, whose rate the counts do not hold: estimated as SynOps / (T x synapses)).
    """

    time_steps: int
    per_projection: dict[str, float]
    input_kind: dict[str, str]
    sops: float  # sum over spiking-input projections, per sample
    graded_macs: float  # sum over graded-input projections (T x FLOPs), per sample
    notes: tuple[str, ...]

    def energy_pj(self, profile: EnergyProfile | str) -> tuple[float, list[str]]:
        """SOPs x per_synop + graded MACs x per_mac, pJ per sample, and the terms not priced."""
        profile = load_profile(profile)
        total, missing = 0.0, []
        for amount, cost, term in ((self.sops, profile.per_synop, "synops"),
                                   (self.graded_macs, profile.per_mac, "graded_macs")):
            if cost is None:
                if amount:
                    missing.append(term)
            else:
                total += amount * cost
        return total, missing


def sops_convention(counts: NetworkCounts) -> SopsConvention:
    """SOPs(l) = firing rate of l's source population x T x ``dense_flops(l)``, per sample.

    For a projection from a graded input the input is not spikes: it is counted as
    T x FLOPs MACs (``graded_macs``), not SOPs.
    """
    steps = int(counts.time_steps)
    per_projection: dict[str, float] = {}
    kinds: dict[str, str] = {}
    sops = graded = 0.0
    notes = [("SOPs(l) = firing rate of l's input x T x FLOPs(l) (FLOPs = MACs of the layer run "
              "densely once, zero padding included).")]
    for proj in counts.projections.values():
        if proj.source in counts.populations:
            rate = counts.populations[proj.source].firing_rate
            value = _mean(np.asarray(rate, dtype=np.float64) * steps * proj.dense_flops)
            kinds[proj.name], sops = "spikes", sops + value
        elif np.any(np.asarray(proj.graded_macs) != 0) or not np.any(np.asarray(proj.synops) != 0):
            value = float(steps * proj.dense_flops)
            kinds[proj.name], graded = "graded", graded + value
        else:
            rate = np.asarray(proj.synops, dtype=np.float64) / max(steps * proj.synapses, 1)
            value = _mean(rate * steps * proj.dense_flops)
            kinds[proj.name], sops = "input-spikes", sops + value
        per_projection[proj.name] = value
    if "graded" in kinds.values():
        names = ", ".join(n for n, k in kinds.items() if k == "graded")
        notes.append(f"Graded-input projection(s) {names}: the input is not spikes, so they are "
                     f"counted as T x FLOPs MACs, not SOPs.")
    if "input-spikes" in kinds.values():
        names = ", ".join(n for n, k in kinds.items() if k == "input-spikes")
        notes.append(f"Spike-input projection(s) {names}: the input's rate is estimated as "
                     f"SynOps / (T x synapses), since the counts hold no input spikes.")
    return SopsConvention(steps, per_projection, kinds, sops, graded, tuple(notes))


# ---------------------------------------------------------------------------------------------
# Like for like: the ANN baseline (and the SNN on CMOS) with memory access, not compute alone
# (shared/spec/energy.md, "Like for like"; docs/mapping.md)
# ---------------------------------------------------------------------------------------------

_MEMORY_KEYS = frozenset(("schema", "name", "description", "node", "word_bits", "sram",
                          "dram_pj_per_word", "source", "certainty", "caveats"))
_DRAM_CHOICES = ("low", "mid", "high")


@dataclass(frozen=True)
class MemoryModel:
    """Energy of one ``word_bits``-bit read from an SRAM of a given size, or from DRAM, in pJ.

    ``sram``: (size in bytes, pJ per word) points, sizes increasing; between them the energy is
    interpolated linearly in size; below the first point the first point's energy is used; a
    buffer larger than the last point is in DRAM (``dram_low_pj`` .. ``dram_high_pj`` per word;
    ``dram`` picks "low", "mid" or "high")."""

    name: str
    description: str
    source: str
    certainty: str
    node: str
    word_bits: int
    sram: tuple[tuple[int, float], ...]
    dram_low_pj: float
    dram_high_pj: float
    caveats: tuple[str, ...] = ()
    path: str | None = None

    def dram_pj(self, dram: str = "mid") -> float:
        if dram not in _DRAM_CHOICES:
            raise ProfileError(f"memory model '{self.name}': dram must be one of "
                               f"{', '.join(_DRAM_CHOICES)}, got {dram!r}")
        return {"low": self.dram_low_pj, "high": self.dram_high_pj,
                "mid": 0.5 * (self.dram_low_pj + self.dram_high_pj)}[dram]

    def word_pj(self, size_bytes: float, dram: str = "mid") -> float:
        """pJ per ``word_bits``-bit access to a buffer of ``size_bytes`` bytes."""
        sizes = [s for s, _ in self.sram]
        energies = [e for _, e in self.sram]
        if size_bytes > sizes[-1]:
            return self.dram_pj(dram)
        if size_bytes <= sizes[0]:
            return energies[0]
        return float(np.interp(size_bytes, sizes, energies))

    def access_pj(self, size_bytes: float, bits: int, dram: str = "mid") -> float:
        """pJ to read (or write) ``bits`` bits from a buffer of ``size_bytes`` bytes."""
        return bits / self.word_bits * self.word_pj(size_bytes, dram)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "source": self.source,
                "certainty": self.certainty, "node": self.node, "word_bits": self.word_bits,
                "sram": [{"size_bytes": s, "pj_per_word": e} for s, e in self.sram],
                "dram_pj_per_word": {"low": self.dram_low_pj, "high": self.dram_high_pj},
                "caveats": list(self.caveats), "path": self.path}


def list_memory_models() -> list[str]:
    """Names of the built-in memory models (``hardware/profiles/*-memory.json``)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*-memory.json"))


def load_memory_model(name_or_path: str | os.PathLike[str] | MemoryModel = "cmos45-memory"
                      ) -> MemoryModel:
    """A built-in memory model by name (``"cmos45-memory"``) or a user's JSON file of the same
    form. A malformed file: ``ProfileError`` naming the file and the field."""
    import json

    if isinstance(name_or_path, MemoryModel):
        return name_or_path
    text = os.fspath(name_or_path)
    path = Path(text)
    if not isinstance(name_or_path, os.PathLike) and not path.is_file() \
            and path.suffix.lower() != ".json":
        if text not in list_memory_models():
            raise ProfileError(f"unknown memory model '{text}'; built-in: "
                               f"{', '.join(list_memory_models())} (or pass a JSON file)")
        path = PROFILE_DIR / f"{text}.json"
    if not path.is_file():
        raise ProfileError(f"{path}: memory model file not found")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{path}: not a readable memory model: {exc}") from exc

    def bad(key: str, why: str) -> ProfileError:
        return ProfileError(f"{path}: field '{key}': {why}")

    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a memory model must be a JSON object")
    for key in data:
        if key not in _MEMORY_KEYS:
            raise bad(key, f"unknown; known fields: {', '.join(sorted(_MEMORY_KEYS))}")
    for key in ("name", "source", "certainty", "word_bits", "sram", "dram_pj_per_word"):
        if data.get(key) in (None, ""):
            raise bad(key, "missing (required)")
    if not isinstance(data["word_bits"], int) or isinstance(data["word_bits"], bool) \
            or data["word_bits"] < 1:
        raise bad("word_bits", f"must be a positive integer, got {data['word_bits']!r}")
    points = []
    if not isinstance(data["sram"], list) or not data["sram"]:
        raise bad("sram", "must be a non-empty list of {size_bytes, pj_per_word}")
    for i, point in enumerate(data["sram"]):
        if not isinstance(point, dict) or set(point) != {"size_bytes", "pj_per_word"}:
            raise bad(f"sram[{i}]", "must be {\"size_bytes\": ..., \"pj_per_word\": ...}")
        size, energy = point["size_bytes"], point["pj_per_word"]
        if not _is_number(size) or not _is_number(energy) or size <= 0 or energy < 0:
            raise bad(f"sram[{i}]", f"size_bytes must be > 0 and pj_per_word >= 0, got {point}")
        if points and size <= points[-1][0]:
            raise bad(f"sram[{i}].size_bytes", "sizes must increase")
        points.append((int(size), float(energy)))
    dram = data["dram_pj_per_word"]
    if not isinstance(dram, dict) or set(dram) != {"low", "high"} \
            or not all(_is_number(v) and v >= 0 for v in dram.values()) \
            or dram["low"] > dram["high"]:
        raise bad("dram_pj_per_word", "must be {\"low\": ..., \"high\": ...} with 0 <= low <= high")
    caveats = data.get("caveats") or []
    if not isinstance(caveats, list) or not all(isinstance(c, str) for c in caveats):
        raise bad("caveats", "must be a list of strings")
    return MemoryModel(str(data["name"]), str(data.get("description") or ""), str(data["source"]),
                       str(data["certainty"]), str(data.get("node") or ""), int(data["word_bits"]),
                       tuple(points), float(dram["low"]), float(dram["high"]), tuple(caveats),
                       str(path))


@dataclass(frozen=True)
class AnnLayer:
    """One layer of an ANN (or of the same architecture's SNN): MACs per sample when run
    densely, and the sizes (in values) of its weights, input and output."""

    name: str
    macs: int
    weights: int
    inputs: int
    outputs: int


def ann_layers_from_network(network: Any) -> list[AnnLayer]:
    """The layers of ``network`` (an IR ``Network``) as its ANN twin runs them: one per
    projection; MACs = dense out x in, Cout x Ho x Wo x Cin/groups x kh x kw for conv2d (zero
    padding included, as ``count_ann_macs`` counts), or for an upsample projection one MAC per
    output value and channel of its group, output neurons x Cin/groups (a nearest upsampling:
    one per output value, as ``count_ann_macs`` counts ``F.interpolate``; a 1x1 conv of a
    broadcast map: that conv's MACs); weights as stored (an upsample's are its kernel,
    Cout x Cin/groups x fh x fw); a direct projection has none."""
    layers = []
    for proj in network.projections:
        target = network.population(proj.target)
        if proj.kind == "direct":  # the input written into the neurons: no ANN layer
            continue
        if proj.kind == "dense":
            macs = int(proj.weight.size)
        elif proj.kind == "upsample":
            macs = int(np.prod(target.shape)) * int(proj.weight.shape[1])
        else:
            macs = int(np.prod(target.shape)) * int(np.prod(proj.weight.shape[1:]))
        layers.append(AnnLayer(proj.name, macs, int(proj.weight.size),
                               int(np.prod(network.source_shape(proj.source))),
                               int(np.prod(target.shape))))
    return layers


@dataclass(frozen=True)
class LayerMemoryEnergy:
    """pJ per sample of one layer: arithmetic, and memory under two reuse bounds."""

    name: str
    ops: float
    arithmetic_pj: float
    memory_no_reuse_pj: float
    memory_full_reuse_pj: float


@dataclass(frozen=True)
class MemoryEnergyEstimate:
    """Energy per sample (pJ) of arithmetic plus memory access, under two bounds of data reuse:

    - ``no_reuse`` (upper bound, Horowitz per operation): every MAC (ANN) or synaptic op (SNN)
      reads its weight, and an ANN MAC its input activation, from the SRAM that holds them;
    - ``full_reuse`` (lower bound, the Lemaire et al. 2022 analytical style, as spikingjelly's
      ``estimate_lemaire_energy`` counts memory): every weight and input is read once per
      sample (per time step for the SNN's weights of active synapses: see ``kind``), every
      output written once.

    ``kind``: "ann" or "snn-cmos". Compare with Loihi's per-synaptic-op energy, which already
    includes the synapse read (``estimate_snn_energy`` with the ``loihi`` profile), or compare
    arithmetic with arithmetic (``arithmetic_pj``); say which."""

    kind: str
    arithmetic: EnergyProfile
    memory: MemoryModel
    weight_bits: int
    activation_bits: int
    layers: dict[str, LayerMemoryEnergy]
    notes: tuple[str, ...]

    @property
    def arithmetic_pj(self) -> float:
        return float(sum(layer.arithmetic_pj for layer in self.layers.values()))

    @property
    def memory_no_reuse_pj(self) -> float:
        return float(sum(layer.memory_no_reuse_pj for layer in self.layers.values()))

    @property
    def memory_full_reuse_pj(self) -> float:
        return float(sum(layer.memory_full_reuse_pj for layer in self.layers.values()))

    @property
    def total_no_reuse_pj(self) -> float:
        """Arithmetic + memory, no data reuse (upper bound)."""
        return self.arithmetic_pj + self.memory_no_reuse_pj

    @property
    def total_full_reuse_pj(self) -> float:
        """Arithmetic + memory, every value read once (lower bound)."""
        return self.arithmetic_pj + self.memory_full_reuse_pj

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "arithmetic_profile": self.arithmetic.name,
                "memory_model": self.memory.name, "weight_bits": self.weight_bits,
                "activation_bits": self.activation_bits,
                "arithmetic_pj": self.arithmetic_pj, "memory_no_reuse_pj": self.memory_no_reuse_pj,
                "memory_full_reuse_pj": self.memory_full_reuse_pj,
                "total_no_reuse_pj": self.total_no_reuse_pj,
                "total_full_reuse_pj": self.total_full_reuse_pj,
                "layers": {k: vars(v) for k, v in self.layers.items()}, "notes": list(self.notes)}


def estimate_ann_energy_with_memory(layers: list[AnnLayer] | Any,
                                    arithmetic: EnergyProfile | str = "cmos45-int8",
                                    memory: MemoryModel | str = "cmos45-memory",
                                    weight_bits: int = 8, activation_bits: int = 8,
                                    dram: str = "mid") -> MemoryEnergyEstimate:
    """The ANN baseline priced like Loihi's synaptic op: arithmetic (MACs x ``per_mac``) plus
    memory access (45 nm SRAM/DRAM per 64-bit word), per sample, in pJ.

    ``layers``: ``AnnLayer`` s, or an IR ``Network`` (its ANN twin, ``ann_layers_from_network``).
    Each layer's weights, inputs and outputs sit in buffers of their own size (bytes =
    values x bits / 8), priced by ``memory.word_pj``. See ``MemoryEnergyEstimate`` for the two
    reuse bounds.
    """
    if not isinstance(layers, list):
        layers = ann_layers_from_network(layers)
    prof = load_profile(arithmetic)
    if prof.per_mac is None:
        raise ProfileError(f"profile '{prof.name}' has no per_mac energy, so it cannot price the "
                           f"ANN's arithmetic; use cmos45-int8 or cmos45-fp32")
    mem = load_memory_model(memory)
    wb, ab = int(weight_bits), int(activation_bits)
    out = {}
    for layer in layers:
        w_buf, i_buf, o_buf = layer.weights * wb / 8, layer.inputs * ab / 8, layer.outputs * ab / 8
        e_w, e_i, e_o = (mem.access_pj(w_buf, wb, dram), mem.access_pj(i_buf, ab, dram),
                         mem.access_pj(o_buf, ab, dram))
        no_reuse = layer.macs * (e_w + e_i) + layer.outputs * e_o
        full = layer.weights * e_w + layer.inputs * e_i + layer.outputs * e_o
        out[layer.name] = LayerMemoryEnergy(layer.name, float(layer.macs),
                                            layer.macs * prof.per_mac, no_reuse, full)
    notes = (f"Arithmetic: {prof.name} ({prof.per_mac} pJ per MAC); memory: {mem.name} "
             f"({mem.word_bits}-bit words, {mem.node}); weights {wb} bits, activations {ab} bits.",
             "no_reuse: every MAC reads its weight and input (upper bound); full_reuse: every "
             "weight and input read once, every output written once (lower bound).")
    return MemoryEnergyEstimate("ann", prof, mem, wb, ab, out, notes)


def estimate_snn_energy_with_memory(counts: NetworkCounts, network: Any,
                                    arithmetic: EnergyProfile | str = "cmos45-int8",
                                    memory: MemoryModel | str = "cmos45-memory",
                                    weight_bits: int = 8, state_bits: int = 48,
                                    dram: str = "mid") -> MemoryEnergyEstimate:
    """The SNN on the same CMOS footing as ``estimate_ann_energy_with_memory``: per sample, in
    pJ, from the exact counts.

    Arithmetic: SynOps x ``per_synop`` (an add) + graded MACs x ``per_mac``. Memory, no reuse:
    every SynOp and graded MAC reads its weight (a graded MAC also its input); every neuron
    update reads and writes the neuron's state (``state_bits``: 48 for CUBA-LIF's u and v).
    Full reuse: each weight read at most once per time step and at most once per operation
    using it (``min(SynOps + MACs, T x weights)`` reads), a graded input likewise, state read
    and written once per update: never more than no reuse.
    Neuron updates' arithmetic is not priced (the CMOS profiles have no such figure)."""
    prof = load_profile(arithmetic)
    mem = load_memory_model(memory)
    if prof.per_synop is None:
        raise ProfileError(f"profile '{prof.name}' has no per_synop energy; use cmos45-int8 or "
                           f"cmos45-fp32")
    wb, sb = int(weight_bits), int(state_bits)
    steps = int(counts.time_steps)
    per_mac = prof.per_mac or 0.0
    out = {}
    for proj in network.projections:
        pc = counts.projections[proj.name]
        synops, macs = float(np.mean(pc.synops)), float(np.mean(pc.graded_macs))
        w_buf = proj.weight.size * wb / 8
        src_size = int(np.prod(network.source_shape(proj.source)))
        ab = network.input.bits if proj.source == network.input.name else 1
        e_w = mem.access_pj(w_buf, wb, dram)
        e_i = mem.access_pj(src_size * ab / 8, ab, dram)
        no_reuse = (synops + macs) * e_w + macs * e_i
        # full reuse: a weight (an input) read at most once per step, and never more often
        # than the operations that use it (an event-driven layer reads only what it uses)
        full = min(synops + macs, steps * proj.weight.size) * e_w \
            + min(macs, steps * src_size) * e_i
        out[proj.name] = LayerMemoryEnergy(proj.name, synops + macs,
                                           synops * prof.per_synop + macs * per_mac, no_reuse,
                                           full)
    for pop in network.populations:
        cnt = counts.populations[pop.name]
        e_s = mem.access_pj(pop.size * sb / 8, sb, dram)
        updates = float(cnt.updates)
        state = 2 * updates * e_s  # read + write per neuron update
        out[pop.name] = LayerMemoryEnergy(pop.name, updates, 0.0, state, state)
    notes = (f"Arithmetic: {prof.name} (SynOp {prof.per_synop} pJ, MAC {per_mac} pJ); memory: "
             f"{mem.name}; weights {wb} bits, neuron state {sb} bits.",
             "Neuron updates are priced by their state traffic only (no arithmetic figure).")
    return MemoryEnergyEstimate("snn-cmos", prof, mem, wb, sb, out, notes)
