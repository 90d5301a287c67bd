"""``map_network``: partition, pack, route and place a network; the ``Mapping`` it returns.

Traffic (``traffic.py``): every (source slice, target slice) pair of a projection with a
nonzero synapse is an edge, weighted by measured messages per sample (or, without counts, by
its synapses); the edges are kept as aligned arrays (``TrafficEdges``), one row per edge.

Units: messages per sample, hops per message, bits; ``to_dict`` gives plain JSON types.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sakd.hardware.counts import NetworkCounts
from sakd.hardware.ir import Network
from sakd.hardware.target import DEFAULT_TARGET

from . import place as placement
from .errors import MappingError
from .partition import Partition, pack_cores, partition_network, utilization
from .place import Position, fill, input_position, place
from .profile import ChipProfile, SystemProfile, load_chip, load_system, single_chip_system
from .resources import RESOURCES, box_size, capacity
from .traffic import (
    SourceRates,
    TrafficEdges,
    build_edges,
    core_coordinates,
    core_pair_traffic,
    placement_cost,
    source_rates,
)


@dataclass(frozen=True)
class SliceMapping:
    """One slice: which neurons (``box``: (lo, hi) per axis of the population's layout), where
    it sits and what it takes (``amounts``: resource -> amount, bits for memories)."""

    id: int
    population: str
    index: int
    box: tuple[tuple[int, int], ...]
    neurons: int
    core: int
    chip: int
    x: int
    y: int
    amounts: dict[str, int]
    synapses: int
    synapses_nonzero: int
    synapses_by_projection: dict[str, int]  # structural synapses of each incoming projection
    synapse_bits_per_target: int
    synapse_bits_shared: int
    encodings: dict[str, str]  # projection -> "dense" | "sparse" | "shared"


@dataclass(frozen=True)
class CoreMapping:
    """One core: position (chip, x, y on the chip's core grid; tile (tx, ty)), its slices, the
    resources they take and the fraction of each the core has (None: no such limit)."""

    id: int
    chip: int
    x: int
    y: int
    tile: tuple[int, int]
    slices: tuple[int, ...]
    amounts: dict[str, int]
    utilization: dict[str, float | None]

    @property
    def binding_resource(self) -> str:
        used = {r: u for r, u in self.utilization.items() if u is not None}
        return max(used, key=lambda r: (used[r], -RESOURCES.index(r)))


@dataclass(frozen=True)
class PopulationMapping:
    """One population: its tiling (boxes per axis), slices and cores, and the resource that
    binds it (the largest utilization among its slices, as a fraction of one core)."""

    name: str
    neurons: int
    tiling: tuple[int, ...]
    slices: tuple[int, ...]
    cores: tuple[int, ...]
    binding_resource: str
    binding_utilization: float
    synapse_bits_per_target: int
    synapse_bits_shared: int


@dataclass(frozen=True)
class ProjectionMapping:
    """Traffic of one projection: ``mean_hops`` weighted by traffic, ``max_hops`` over its
    edges; per sample (with counts only): messages, message-hops, inter-chip message-hops."""

    name: str
    source: str
    target: str
    edges: int
    mean_hops: float
    max_hops: int
    messages_per_sample: float | None
    message_hops_per_sample: float | None
    interchip_message_hops_per_sample: float | None


@dataclass(frozen=True)
class Mapping:
    """A network mapped onto a chip or system. ``traffic``: "counts" (measured messages per
    sample) or "synapses" (structural synapse counts: no per-sample figures).
    ``placement_cost``: (serpentine fill, after improvement), in pJ per sample of routing
    energy with counts, else in pJ-weighted synapse units. ``edges``: every traffic edge
    (``TrafficEdges``: arrays; ``edges[i]`` and iteration give ``TrafficEdge`` rows)."""

    chip: ChipProfile
    system: SystemProfile
    target: str
    cores_used: int
    chips_used: int
    slices: tuple[SliceMapping, ...]
    cores: tuple[CoreMapping, ...]
    populations: dict[str, PopulationMapping]
    projections: dict[str, ProjectionMapping]
    edges: TrafficEdges
    traffic: str
    message_hops_per_sample: float | None
    placement_cost: tuple[float, float]
    input_name: str
    input_size: int
    input_encoding: str
    input_bits: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def core_of(self, population: str) -> tuple[int, ...]:
        return self.populations[population].cores

    def slice_population(self) -> dict[int, str]:
        return {s.id: s.population for s in self.slices}

    def source_rates(self, counts: NetworkCounts) -> SourceRates:
        """The messages per sample of one reaching source neuron of every slice (and of the
        input) under ``counts``: what ``edges.messages`` multiplies by reach."""
        return source_rates(self.input_size, self.input_encoding, counts,
                            [s.population for s in self.slices], self.edges)

    def messages(self, counts: NetworkCounts) -> np.ndarray:
        """float64 [edges]: messages per sample of every edge under ``counts`` (whatever the
        traffic the placement used)."""
        return self.edges.messages(slice(None), self.source_rates(counts))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: lists, dicts, numbers, strings, None."""
        return plain({
            "chip": self.chip.name,
            "system": self.system.name,
            "target": self.target,
            "cores_used": self.cores_used,
            "chips_used": self.chips_used,
            "traffic": self.traffic,
            "message_hops_per_sample": self.message_hops_per_sample,
            "placement_cost": list(self.placement_cost),
            "input": {"name": self.input_name, "size": self.input_size,
                      "encoding": self.input_encoding, "bits": self.input_bits},
            "populations": {k: vars(v) for k, v in self.populations.items()},
            "projections": {k: vars(v) for k, v in self.projections.items()},
            "cores": [dict(vars(c), binding_resource=c.binding_resource) for c in self.cores],
            "slices": [vars(s) for s in self.slices],
            "edges": self.edges.to_list(),
            "chip_profile": self.chip.to_dict(),
            "system_profile": self.system.to_dict(),
            "notes": list(self.notes),
        })


def plain(value: Any) -> Any:
    if isinstance(value, MappingABC):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# ---------------------------------------------------------------------------------------------
# counts
# ---------------------------------------------------------------------------------------------


def check_counts(network: Network, counts: NetworkCounts) -> None:
    """The counts must describe this network: every population and projection present."""
    if not isinstance(counts, NetworkCounts):
        raise MappingError(f"counts must be NetworkCounts (the simulator's counts), got "
                           f"{type(counts).__name__}")
    for pop in network.populations:
        if pop.name not in counts.populations:
            raise MappingError(f"counts: no counts of population '{pop.name}'; pass the counts "
                               f"of a simulation of this network", population=pop.name)
        if counts.populations[pop.name].neurons != pop.size:
            raise MappingError(f"counts: population '{pop.name}' has {pop.size} neurons, its "
                               f"counts {counts.populations[pop.name].neurons}; pass the counts "
                               f"of a simulation of this network", population=pop.name)
    for proj in network.projections:
        if proj.name not in counts.projections:
            raise MappingError(f"counts: no counts of projection '{proj.name}'; pass the counts "
                               f"of a simulation of this network")


# ---------------------------------------------------------------------------------------------
# map_network
# ---------------------------------------------------------------------------------------------


def _load(chip: str | os.PathLike[str] | ChipProfile,
          system: str | os.PathLike[str] | SystemProfile | None,
          overrides: MappingABC[str, Any] | None) -> tuple[ChipProfile, SystemProfile]:
    chip_p = load_chip(chip, overrides)
    if system is None:
        return chip_p, single_chip_system(chip_p)
    sys_p = load_system(system)
    if sys_p.chip != chip_p.name:
        raise MappingError(f"system '{sys_p.name}' is built of {sys_p.chip} chips, but chip "
                           f"'{chip_p.name}' was asked for; pass chip='{sys_p.chip}' or a system "
                           f"of {chip_p.name} chips")
    return chip_p, sys_p


def map_network(network: Network, chip: str | os.PathLike[str] | ChipProfile = DEFAULT_TARGET.name,
                system: str | os.PathLike[str] | SystemProfile | None = None,
                counts: NetworkCounts | None = None,
                overrides: MappingABC[str, Any] | None = None, *,
                share_cores: bool = True) -> Mapping:
    """Map ``network`` onto ``chip`` (a name, a JSON file or a ``ChipProfile``) and ``system``
    (None: one chip). ``counts``: the simulator's counts, to weight traffic by measured spikes
    (else by synapse counts). ``overrides``: chip figures to replace (``load_chip``).
    ``share_cores``: let slices of different populations share a core (bin packing); False
    gives every slice a core of its own (fewer slices per core: faster steps, more cores).

    Raises ``MappingError`` when a population cannot be split to fit a core (naming the
    population, the resource, the need and the capacity) or when the network needs more chips
    than the system has (naming how many).
    """
    if not isinstance(network, Network):
        raise MappingError(f"map_network needs an IR Network, got {type(network).__name__}")
    chip_p, sys_p = _load(chip, system, overrides)
    if counts is not None:
        check_counts(network, counts)
    target = network.target_spec
    part = partition_network(network, chip_p, target)
    core_slices = pack_cores(part, chip_p, network, share_cores)
    usable = min(sys_p.usable_cores_per_chip or chip_p.cores_per_chip, chip_p.cores_per_chip)
    if len(core_slices) > usable * sys_p.chips:
        need = math.ceil(len(core_slices) / usable)
        raise MappingError(
            f"network: needs {len(core_slices)} cores, i.e. {need} {chip_p.name} chips of "
            f"{usable} cores; system '{sys_p.name}' has {sys_p.chips} chip(s) "
            f"({usable * sys_p.chips} cores); map onto a system of at least {need} chips "
            f"(e.g. system='kapoho-point' for 8, 'hala-point' for 1,152) or shrink the network",
            resource="cores")

    order = {name: i for i, name in enumerate(network.topological_order())}
    core_of_slice = np.empty(len(part.slices), dtype=np.int64)
    for c, sids in enumerate(core_slices):
        core_of_slice[sids] = c
    edges = build_edges(network, part, core_of_slice)
    if counts is not None:
        edges = replace(edges, rates=source_rates(network.input.size, network.input.encoding,
                                                  counts, [s.population for s in part.slices],
                                                  edges))
    core_order = sorted(range(len(core_slices)),
                        key=lambda c: (min(order[part.slices[s].population]
                                           for s in core_slices[c]), min(core_slices[c])))
    notes: list[str] = []
    improve = len(edges) <= placement.IMPROVE_MAX_EDGES
    if improve:
        pos, cost0, cost1 = place(chip_p, sys_p, core_order, core_pair_traffic(edges))
    else:
        pos = fill(chip_p, sys_p, core_order)
        notes.append(f"Placement: {len(edges):,} traffic edges, above the "
                     f"{placement.IMPROVE_MAX_EDGES:,} "
                     f"that the improvement passes take in reasonable time; the cores stay "
                     f"where the serpentine fill in topological order put them.")
    edges = replace(edges, core_xy=core_coordinates([pos[c] for c in range(len(core_slices))],
                                                    input_position(chip_p)))
    if not improve:  # the fill's cost, summed over the placed edges
        cost0 = cost1 = placement_cost(chip_p, edges)
    return _report(network, chip_p, sys_p, part, core_slices, core_of_slice, pos, edges,
                   (cost0, cost1), notes)


def _report(network: Network, chip: ChipProfile, system: SystemProfile, part: Partition,
            core_slices: list[list[int]], core_of_slice: np.ndarray, pos: dict[int, Position],
            edges: TrafficEdges, cost: tuple[float, float], extra_notes: list[str]) -> Mapping:
    with_counts = edges.rates is not None
    core_at = core_of_slice.tolist()  # slice id -> core, as ints
    slices = []
    for s in part.slices:
        p = pos[core_at[s.id]]
        u = s.usage
        slices.append(SliceMapping(
            s.id, s.population, s.index, s.box, box_size(s.box), core_at[s.id], p.chip,
            p.x, p.y, u.amounts(chip), u.synapses, u.synapses_nonzero,
            {q.projection: q.synapses for q in u.projections}, u.synapse_bits_per_target,
            u.synapse_bits_shared, {q.projection: q.encoding for q in u.projections}))
    cores = []
    for c, sids in enumerate(core_slices):
        amounts = {r: sum(slices[s].amounts[r] for s in sids) for r in RESOURCES}
        p = pos[c]
        cores.append(CoreMapping(c, p.chip, p.x, p.y, (p.x // chip.tile_cores_x,
                                                      p.y // chip.tile_cores_y),
                                 tuple(sids), amounts, utilization(amounts, chip)))
    populations = {}
    for name, sids in part.by_population.items():
        best, frac = "neurons", -1.0
        for sid in sids:
            for r, value in slices[sid].amounts.items():
                cap = capacity(chip, r)
                if cap is not None and value / cap > frac:
                    best, frac = r, value / cap
        populations[name] = PopulationMapping(
            name, network.population(name).size, part.tilings[name], sids,
            tuple(sorted({core_at[s] for s in sids})), best, frac,
            sum(slices[s].synapse_bits_per_target for s in sids),
            sum(slices[s].synapse_bits_shared for s in sids))
    projections = {}
    total_mh = 0.0
    for proj in network.projections:
        rows = edges.projection_range(proj.name)
        w_sum, wh_sum, mx, msg, mh, imh = _projection_sums(edges, rows, with_counts)
        mean = float(wh_sum / w_sum) if w_sum > 0 else 0.0
        if mh is not None:
            total_mh += mh
        projections[proj.name] = ProjectionMapping(proj.name, proj.source, proj.target,
                                                   rows.stop - rows.start, mean, mx, msg, mh,
                                                   imh)
    notes = [
        "Output-axon entries and messages are counted per destination slice: an upper bound "
        "where small slices share a core.",
        "Input axons of slices sharing a core are added up (sources they share are counted "
        "twice): a conservative count.",
        f"The input enters at chip 0, tile (0, 0) ({chip.name} host link).",
    ]
    notes.extend(extra_notes)
    if not with_counts:
        notes.append("No counts were given: traffic is weighted by synapse counts, and no "
                     "per-sample messages or message-hops are reported.")
    direct = [p.name for p in network.projections if p.kind == "direct"]
    if direct:
        notes.append(f"Direct projection(s) {', '.join(direct)} (the input written into a "
                     f"population's neurons) are stored as an identity, one input axon and one "
                     f"1-bit synapse per neuron, and carry every input value every step (an "
                     f"assumption; an upper bound on their messages).")
    if chip.shared_weights:
        notes.append("Conv weights are stored once per core (shared_weights); "
                     "synapse_bits_per_target gives the per-target count.")
    chips_used = len({c.chip for c in cores})
    inp = network.input
    return Mapping(chip, system, network.target.name, len(cores), chips_used, tuple(slices),
                   tuple(cores), populations, projections, edges, "counts" if with_counts
                   else "synapses", total_mh if with_counts else None, cost, inp.name,
                   inp.size, inp.encoding, inp.bits, tuple(notes))


def _projection_sums(edges: TrafficEdges, rows: slice, with_counts: bool
                     ) -> tuple[float, float, int, float | None, float | None, float | None]:
    """(sum of weights, of weight x hops, the most hops of an edge with traffic, and with
    counts the sums of messages, messages x hops, messages x chip-to-chip hops) over ``rows``;
    each sum over blocks of ``traffic.BLOCK_ROWS`` rows (one block: ``np.sum``'s own order)."""
    w_sum = wh_sum = 0.0
    msg = mh = imh = 0.0
    mx = 0
    for block in edges.blocks(rows):
        w = edges.weight(block)
        ew, ns, ic = edges.hops(block)
        h = (ew.astype(np.int64) + ns + ic).astype(np.float64)
        w_sum += w.sum()
        wh_sum += (w * h).sum()
        busy = h[w > 0]
        mx = max(mx, int(busy.max()) if len(busy) else 0)
        if with_counts:
            m = edges.messages(block)
            msg += m.sum()
            mh += (m * h).sum()
            imh += (m * ic.astype(np.float64)).sum()
    if not with_counts:
        return float(w_sum), float(wh_sum), mx, None, None, None
    return float(w_sum), float(wh_sum), mx, float(msg), float(mh), float(imh)
