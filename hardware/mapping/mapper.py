"""``map_network``: partition, pack, route and place a network; the ``Mapping`` it returns.

Traffic. Every (source slice, target slice) pair of a projection with at least one nonzero
synapse is an *edge*. Its traffic is, with measured counts, the messages it carries per
sample: the source population's mean spikes per sample x (source neurons of the slice that
reach the target slice) / (neurons of the population), i.e. spikes spread evenly over the
neurons (the counts hold population totals only). A spike to several slices sends one message
to each. The input's events per sample are estimated from its projection's operations
(``graded_macs`` for a graded input, ``synops`` for a spike input) divided by the mean
structural fan-out of an input neuron. Without counts the traffic is the edge's structural
synapse count, and nothing is reported per sample.

Units: messages per sample, hops per message, bits; ``to_dict`` gives plain JSON types.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from sakd.hardware.counts import NetworkCounts
from sakd.hardware.ir import Network
from sakd.hardware.target import DEFAULT_TARGET

from .errors import MappingError
from .partition import Partition, pack_cores, partition_network, slice_neurons, utilization
from .place import INPUT, Position, hops, input_position, place
from .profile import ChipProfile, SystemProfile, load_chip, load_system, single_chip_system
from .resources import RESOURCES, box_size, capacity


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


@dataclass(frozen=True, slots=True)
class TrafficEdge:
    """Spikes of ``projection`` from one slice (``source_slice`` None: the input) to another.
    ``reach``: source neurons of the slice with a nonzero synapse into the target slice;
    ``synapses``: structural synapses between them; ``weight``: the traffic placement used
    (messages per sample with counts, else synapses); hops of the X-Y route."""

    projection: str
    source_slice: int | None
    target_slice: int
    source_core: int
    target_core: int
    reach: int
    synapses: int
    weight: float
    hops_ew: int
    hops_ns: int
    hops_interchip: int
    messages_per_sample: float | None

    @property
    def hops(self) -> int:
        return self.hops_ew + self.hops_ns + self.hops_interchip


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
    energy with counts, else in pJ-weighted synapse units."""

    chip: ChipProfile
    system: SystemProfile
    target: str
    cores_used: int
    chips_used: int
    slices: tuple[SliceMapping, ...]
    cores: tuple[CoreMapping, ...]
    populations: dict[str, PopulationMapping]
    projections: dict[str, ProjectionMapping]
    edges: tuple[TrafficEdge, ...]
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

    def messages(self, counts: NetworkCounts) -> np.ndarray:
        """float64 [edges]: messages per sample of every edge under ``counts`` (whatever the
        traffic the placement used)."""
        return edge_messages(self.input_size, self.input_encoding, counts, self.edges,
                             self.slice_population())

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
            "edges": [dict({f.name: getattr(e, f.name) for f in fields(e)}, hops=e.hops)
                      for e in self.edges],
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


def input_events_per_sample(input_size: int, input_encoding: str, counts: NetworkCounts,
                            projection: str) -> float:
    """Estimated input events per sample seen by ``projection`` (from the input): its
    operations per sample / the mean structural fan-out of an input neuron. A direct
    projection (no synapses: the host writes each neuron's input) carries every input value
    every step: ``input_size x T``, an upper bound (zeros are counted too)."""
    pc = counts.projections[projection]
    if pc.synapses == 0:
        return float(input_size * counts.time_steps)
    ops = pc.graded_macs if input_encoding == "graded" else pc.synops
    return float(np.mean(ops)) * input_size / pc.synapses


def edge_messages(input_size: int, input_encoding: str, counts: NetworkCounts,
                  edges: tuple[TrafficEdge, ...], slice_population: dict[int, str]) -> np.ndarray:
    """float64 [edges]: messages per sample each edge carries (spikes spread evenly over the
    source population's neurons; input events estimated by ``input_events_per_sample``)."""
    out = np.zeros(len(edges), dtype=np.float64)
    rate: dict[str, float] = {}
    for i, e in enumerate(edges):
        if e.source_slice is None:
            key = "input:" + e.projection
            if key not in rate:
                rate[key] = input_events_per_sample(input_size, input_encoding, counts,
                                                    e.projection) / input_size
        else:
            key = slice_population[e.source_slice]
            if key not in rate:
                pc = counts.populations[key]
                rate[key] = float(np.mean(pc.spikes)) / pc.neurons
        out[i] = rate[key] * e.reach
    return out


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
    core_of_slice = {sid: c for c, sids in enumerate(core_slices) for sid in sids}
    edges0 = _edges(network, part, core_of_slice)
    slice_population = {s.id: s.population for s in part.slices}
    messages = edge_messages(network.input.size, network.input.encoding, counts, edges0,
                             slice_population) if counts is not None else None
    weights = messages if messages is not None else np.array([e.synapses for e in edges0],
                                                             dtype=np.float64)
    traffic: dict[tuple[int, int], float] = {}
    for e, w in zip(edges0, weights):
        key = (e.source_core, e.target_core)
        traffic[key] = traffic.get(key, 0.0) + float(w)
    core_order = sorted(range(len(core_slices)),
                        key=lambda c: (min(order[part.slices[s].population]
                                           for s in core_slices[c]), min(core_slices[c])))
    pos, cost0, cost1 = place(chip_p, sys_p, core_order, traffic)

    def where(core: int) -> Position:
        return input_position(chip_p) if core == INPUT else pos[core]

    edges = list(edges0)  # replaced one by one (the network's millions of edges, once each)
    del edges0
    for i, e in enumerate(edges):
        ew, ns, ic = hops(where(e.source_core), where(e.target_core))
        edges[i] = TrafficEdge(e.projection, e.source_slice, e.target_slice, e.source_core,
                               e.target_core, e.reach, e.synapses, float(weights[i]), ew, ns,
                               ic, None if messages is None else float(messages[i]))
    edges_t = tuple(edges)
    del edges
    return _report(network, chip_p, sys_p, part, core_slices, pos, edges_t, messages is not None,
                   (cost0, cost1))


def _edges(network: Network, part: Partition,
           core_of_slice: dict[int, int]) -> tuple[TrafficEdge, ...]:
    labels: dict[str, np.ndarray] = {}
    for name, sids in part.by_population.items():
        lab = np.empty(network.population(name).size, dtype=np.int64)
        for k, sid in enumerate(sids):
            lab[slice_neurons(part, network, sid)] = k
        labels[name] = lab
    out = []
    for proj in network.projections:
        from_input = proj.source == network.input.name
        src_ids = (None,) if from_input else part.by_population[proj.source]
        lab = np.zeros(network.input.size, dtype=np.int64) if from_input else labels[proj.source]
        for tid in part.by_population[proj.target]:
            share = next(p for p in part.slices[tid].usage.projections if p.projection == proj.name)
            k_of = lab[share.sources]  # the source slice of each source neuron with a synapse
            # only the source slices present (not every slice of the source: O(edges))
            ks, inv = np.unique(k_of, return_inverse=True)
            reach_k = np.bincount(inv, weights=share.reach, minlength=len(ks))
            syn_k = np.bincount(inv, weights=share.fanout, minlength=len(ks))
            for j in np.flatnonzero(reach_k > 0):
                sid = src_ids[int(ks[j])]
                src_core = INPUT if sid is None else core_of_slice[sid]
                out.append(TrafficEdge(proj.name, sid, tid, src_core, core_of_slice[tid],
                                       int(reach_k[j]), int(syn_k[j]), 0.0, 0, 0, 0, None))
    return tuple(out)


def _report(network: Network, chip: ChipProfile, system: SystemProfile, part: Partition,
            core_slices: list[list[int]], pos: dict[int, Position],
            edges: tuple[TrafficEdge, ...], with_counts: bool,
            cost: tuple[float, float]) -> Mapping:
    core_of_slice = {sid: c for c, sids in enumerate(core_slices) for sid in sids}
    slices = []
    for s in part.slices:
        p = pos[core_of_slice[s.id]]
        u = s.usage
        slices.append(SliceMapping(
            s.id, s.population, s.index, s.box, box_size(s.box), core_of_slice[s.id], p.chip,
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
            tuple(sorted({core_of_slice[s] for s in sids})), best, frac,
            sum(slices[s].synapse_bits_per_target for s in sids),
            sum(slices[s].synapse_bits_shared for s in sids))
    projections = {}
    total_mh = 0.0
    edges_of: dict[str, list[TrafficEdge]] = {}
    for e in edges:  # one pass, not one per projection
        edges_of.setdefault(e.projection, []).append(e)
    for proj in network.projections:
        mine = edges_of.get(proj.name, [])
        w = np.array([e.weight for e in mine], dtype=np.float64)
        h = np.array([e.hops for e in mine], dtype=np.float64)
        mean = float((w * h).sum() / w.sum()) if w.sum() > 0 else 0.0
        mx = int(max((e.hops for e in mine if e.weight > 0), default=0))
        if with_counts:
            m = np.array([e.messages_per_sample for e in mine], dtype=np.float64)
            ic = np.array([e.hops_interchip for e in mine], dtype=np.float64)
            msg, mh, imh = float(m.sum()), float((m * h).sum()), float((m * ic).sum())
            total_mh += mh
        else:
            msg = mh = imh = None
        projections[proj.name] = ProjectionMapping(proj.name, proj.source, proj.target, len(mine),
                                                   mean, mx, msg, mh, imh)
    notes = [
        "Output-axon entries and messages are counted per destination slice: an upper bound "
        "where small slices share a core.",
        "Input axons of slices sharing a core are added up (sources they share are counted "
        "twice): a conservative count.",
        f"The input enters at chip 0, tile (0, 0) ({chip.name} host link).",
    ]
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
