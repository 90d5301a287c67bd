"""Time per step, latency and throughput of a mapped network: an estimate (docs/mapping.md,
"The time model").

Every core works on its slices in parallel with the others; a step ends when the slowest core,
the busiest router and the busiest chip link are done, the last message has crossed the mesh
and the barrier has synchronized every core. In the spirit of the max-affine lower-bound model
of Timcheck, Pierro and Shrestha (arXiv 2601.10035, 2026) for Loihi 2 (compute and
communication terms that only partially overlap, then a barrier)::

    t_step = max( max_core  [synops x t_synop + active updates x t_update_active
                             + inactive updates x t_update_inactive
                             + messages in x t_receive + messages out x t_send],
                  max_tile  [messages through the router / tile_message_rate],
                  max_chip  [messages across its chip-to-chip links / interchip_message_rate] )
             + t_traverse (the longest route any message takes: within-tile time + hops x
               hop latencies, E-W, N-S and chip-to-chip apart)
             + t_barrier (interpolated from t_barrier_min_ns (1 tile) to t_barrier_max_ns
               (barrier_max_tiles tiles) over the tiles in use on a chip; across chips, plus
               twice the chip-grid diameter x t_interchip_hop_ns)

Activity per step is the counts' mean per sample divided by the counts' steps (synops and
graded MACs shared among a projection's target slices by their structural synapses, neuron
updates by their neurons, messages by the traffic edges); a graded MAC is priced as a synaptic
op. Messages carrying a graded payload load routers and links in proportion to their bits.
Every constant comes from the chip profile with its source and certainty (``constants``).

Latency per inference: (T + L) steps, L the network's latency (pipeline depth). Throughput:
pipelined (a new sample every T steps once the pipeline is full) and not pipelined (one sample
at a time, (T + L) steps each). Units: ns per step, seconds, samples per second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sakd.hardware.counts import NetworkCounts
from sakd.hardware.ir import Network

from .errors import MappingError
from .mapper import Mapping, check_counts, plain
from .place import INPUT, position_of
from .profile import Figure
from .routes import MeshLoads

#: the chip figures the time model uses
TIME_FIGURES = ("t_synop_ns", "t_update_active_ns", "t_update_inactive_ns", "t_message_send_ns",
                "t_message_receive_ns", "t_within_tile_ns", "t_hop_ew_ns", "t_hop_ns_ns", "t_interchip_hop_ns",
                "tile_message_rate_per_s", "interchip_message_rate_per_s", "t_barrier_min_ns",
                "t_barrier_max_ns", "barrier_max_tiles", "message_bits")


@dataclass(frozen=True)
class CoreTime:
    """One core's work per step (mean over the steps of a sample) and its time in ns."""

    core: int
    populations: tuple[str, ...]
    synops: float
    updates_active: float
    updates_inactive: float
    messages_in: float
    messages_out: float
    terms_ns: dict[str, float]  # "synops", "updates", "messages_in", "messages_out"

    @property
    def time_ns(self) -> float:
        return float(sum(self.terms_ns.values()))


@dataclass(frozen=True)
class TimeEstimate:
    """Time per step and per inference of a mapped network: an **estimate** (``label``).
    ``bottleneck`` names what sets the step time. Times in ns (per step) and s (per sample)."""

    chip: str
    system: str
    time_steps: int
    latency_steps: int
    step_ns: float
    compute_ns: float
    router_ns: float
    interchip_ns: float
    traverse_ns: float
    barrier_ns: float
    bottleneck: str
    bottleneck_kind: str  # "core" | "router" | "interchip"
    bottleneck_core: int | None
    cores: tuple[CoreTime, ...]
    router_messages: dict[str, float]  # "chip:tx,ty" -> bit-weighted messages per step
    constants: dict[str, Figure]
    notes: tuple[str, ...] = field(default_factory=tuple)
    label: str = "estimate"

    @property
    def step_s(self) -> float:
        return self.step_ns * 1e-9

    @property
    def run_time_pipelined_s(self) -> float:
        """Time per sample once the pipeline is full: T steps."""
        return self.time_steps * self.step_s

    @property
    def run_time_unpipelined_s(self) -> float:
        """Time per sample run alone: T + L steps."""
        return (self.time_steps + self.latency_steps) * self.step_s

    @property
    def latency_s(self) -> float:
        """Latency per inference: T + L steps (the readout's last step)."""
        return self.run_time_unpipelined_s

    @property
    def throughput_pipelined_per_s(self) -> float:
        return 1.0 / self.run_time_pipelined_s if self.step_ns > 0 else float("inf")

    @property
    def throughput_unpipelined_per_s(self) -> float:
        return 1.0 / self.run_time_unpipelined_s if self.step_ns > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return plain({
            "label": self.label, "chip": self.chip, "system": self.system,
            "time_steps": self.time_steps, "latency_steps": self.latency_steps,
            "step_ns": self.step_ns, "compute_ns": self.compute_ns, "router_ns": self.router_ns,
            "interchip_ns": self.interchip_ns, "traverse_ns": self.traverse_ns,
            "barrier_ns": self.barrier_ns, "bottleneck": self.bottleneck,
            "bottleneck_kind": self.bottleneck_kind, "bottleneck_core": self.bottleneck_core,
            "latency_s": self.latency_s, "run_time_pipelined_s": self.run_time_pipelined_s,
            "run_time_unpipelined_s": self.run_time_unpipelined_s,
            "throughput_pipelined_per_s": self.throughput_pipelined_per_s,
            "throughput_unpipelined_per_s": self.throughput_unpipelined_per_s,
            "cores": [dict(vars(c), time_ns=c.time_ns) for c in self.cores],
            "router_messages": self.router_messages,
            "constants": {k: f.to_dict() for k, f in self.constants.items()},
            "notes": list(self.notes),
        })


def barrier_ns(mapping: Mapping) -> float:
    """The barrier: interpolated over the tiles in use on the busiest chip, plus twice the
    diameter of the grid of chips in use x the chip-to-chip hop latency."""
    chip = mapping.chip
    tiles: dict[int, set[tuple[int, int]]] = {}
    for c in mapping.cores:
        tiles.setdefault(c.chip, set()).add(c.tile)
    n = max((len(t) for t in tiles.values()), default=1)
    span = max(chip.barrier_max_tiles - 1, 1)
    frac = min(max(n - 1, 0) / span, 1.0)
    t = chip.t_barrier_min_ns + (chip.t_barrier_max_ns - chip.t_barrier_min_ns) * frac
    if len(tiles) > 1:
        places = [position_of(chip, mapping.system, k, 0, 0) for k in tiles]
        xs, ys = [p.cx for p in places], [p.cy for p in places]
        diameter = (max(xs) - min(xs)) + (max(ys) - min(ys))
        t += 2 * diameter * chip.t_interchip_hop_ns
    return t


def estimate_time(mapping: Mapping, network: Network, counts: NetworkCounts,
                  time_steps: int) -> TimeEstimate:
    """Time per step, latency and throughput of ``mapping`` running ``network`` with the
    activity of ``counts``, for inferences of ``time_steps`` steps (an estimate; see the
    module docstring for the model). The counts' per-step activity is used whatever their own
    number of steps."""
    if not isinstance(time_steps, (int, np.integer)) or isinstance(time_steps, bool) \
            or time_steps < 1:
        raise MappingError(f"time_steps must be a positive integer, got {time_steps!r}")
    check_counts(network, counts)
    names = {p.name for p in network.populations}
    if names != {s.population for s in mapping.slices}:
        raise MappingError("estimate_time: the mapping was made for another network (its "
                           "populations differ); map this network first")
    chip, system = mapping.chip, mapping.system
    steps_c = float(counts.time_steps)
    # bits of a message relative to a binary spike's: graded payloads load routers and links more
    def scale(payload_bits: int) -> float:
        return (chip.message_bits + payload_bits) / chip.message_bits

    input_scale = scale(mapping.input_bits if mapping.input_encoding == "graded" else 0)
    pop_scale = {p.name: scale(b if (b := int(getattr(p, "message_bits", 1))) > 1 else 0)
                 for p in network.populations}

    # per-slice activity per step
    synops_slice: dict[int, float] = {}
    updates: dict[int, tuple[float, float]] = {}
    for s in mapping.slices:
        total = 0.0
        for proj, syn in s.synapses_by_projection.items():
            pc = counts.projections[proj]
            if pc.synapses:
                ops = float(np.mean(pc.synops)) + float(np.mean(pc.graded_macs))
                total += ops * syn / pc.synapses
        synops_slice[s.id] = total / steps_c
        pop = counts.populations[s.population]
        active = float(np.mean(pop.active_updates)) / pop.neurons / steps_c * s.neurons
        updates[s.id] = (active, s.neurons - active)
    # block by block over the edges: per-core messages (added in edge order), router and
    # chip-link loads (X-Y routes over the global tile grid, ``MeshLoads``), the longest route
    edges, rates = mapping.edges, mapping.source_rates(counts)
    msg_in, msg_out = np.zeros(len(mapping.cores)), np.zeros(len(mapping.cores))
    slice_scale = np.array([pop_scale[s.population] for s in mapping.slices], dtype=np.float64)
    mesh = MeshLoads.empty(chip, system)
    traverse = 0.0
    for rows in edges.blocks():
        msgs = edges.messages(rows, rates) / steps_c  # per step
        src, dst = edges.source_core(rows), edges.target_core(rows)
        np.add.at(msg_in, dst, msgs)
        inner = src != INPUT
        np.add.at(msg_out, src[inner], msgs[inner])
        busy = msgs > 0
        src, dst = src[busy], dst[busy]
        scales = np.where(src == INPUT, input_scale,
                          slice_scale[np.maximum(edges.source_slice[rows][busy], 0)])
        mesh.add(edges.core_xy[src, 2:], edges.core_xy[dst, 2:], msgs[busy] * scales)
        ew, ns, ic = (h[busy] for h in edges.hops(rows))
        traverse = max(traverse, float(np.max(
            chip.t_within_tile_ns + ew * chip.t_hop_ew_ns + ns * chip.t_hop_ns_ns
            + ic * chip.t_interchip_hop_ns, initial=0.0)))
    router, links, width = mesh.router(), mesh.links(), mesh.width
    tiles = np.flatnonzero(mesh.visited())
    tiles = tiles[np.lexsort((tiles // width, tiles % width))]  # by (gx, gy)
    chips_crossed = np.flatnonzero(mesh.crossed())

    core_times = []
    for c in mapping.cores:
        syn = sum(synops_slice[s] for s in c.slices)
        act = sum(updates[s][0] for s in c.slices)
        ina = sum(updates[s][1] for s in c.slices)
        out, inc = float(msg_out[c.id]), float(msg_in[c.id])
        terms = {"synops": syn * chip.t_synop_ns,
                 "updates": act * chip.t_update_active_ns + ina * chip.t_update_inactive_ns,
                 "messages_in": inc * chip.t_message_receive_ns,
                 "messages_out": out * chip.t_message_send_ns}
        pops = tuple(sorted({mapping.slices[s].population for s in c.slices}))
        core_times.append(CoreTime(c.id, pops, syn, act, ina, inc, out, terms))

    compute = max((ct.time_ns for ct in core_times), default=0.0)
    router_ns = float(router[tiles].max(initial=0.0)) / chip.tile_message_rate_per_s * 1e9
    inter_ns = float(links[chips_crossed].max(initial=0.0)) / chip.interchip_message_rate_per_s \
        * 1e9
    bar = barrier_ns(mapping)
    step = max(compute, router_ns, inter_ns) + traverse + bar

    kind = max((("core", compute), ("router", router_ns), ("interchip", inter_ns)),
               key=lambda t: t[1])[0]
    bcore = None
    if kind == "core" and core_times:
        ct = max(core_times, key=lambda t: (t.time_ns, -t.core))
        bcore = ct.core
        term = max(ct.terms_ns, key=ct.terms_ns.get)
        what = {"synops": "synaptic operations", "updates": "neuron updates",
                "messages_in": "receiving messages", "messages_out": "sending messages"}[term]
        bottleneck = (f"core {ct.core} (chip {mapping.cores[ct.core].chip}, population(s) "
                      f"{', '.join(ct.populations)}): {what}, {ct.time_ns:.1f} ns per step")
    elif kind == "router":
        top = int(tiles[np.argmax(router[tiles])])  # ties: the first by (gx, gy)
        tile = (top % width, top // width)
        bottleneck = (f"the router of global tile {tile}: {router[top]:.1f} messages per step, "
                      f"{router_ns:.1f} ns")
    else:
        k = int(chips_crossed[np.argmax(links[chips_crossed])])  # ties: the lowest number
        bottleneck = (f"the chip-to-chip links of chip {k}: {links[k]:.1f} messages per step, "
                      f"{inter_ns:.1f} ns")
    notes = [
        "An estimate: mean activity per step, spikes spread evenly over a population's neurons, "
        "compute and communication overlapping fully within the max() (a lower-bound form).",
        f"The barrier and mesh traversal ({bar:.0f} ns and {traverse:.1f} ns) are paid every step.",
    ]
    if counts.time_steps != time_steps:
        notes.append(f"The counts cover {counts.time_steps} steps per sample; their mean activity "
                     f"per step is used for inferences of {time_steps} steps.")
    assumed = [k for k in TIME_FIGURES if chip.figures[k].certainty in ("assumed", "user")]
    if assumed:
        notes.append("Assumed (or overridden) time constants: " + ", ".join(assumed) + ".")
    router_out = {f"{t % width},{t // width}": float(router[t]) for t in tiles.tolist()}
    return TimeEstimate(chip.name, system.name, int(time_steps), int(network.latency), step,
                        compute, router_ns, inter_ns, traverse, bar, bottleneck, kind, bcore,
                        tuple(core_times), router_out,
                        {k: chip.figures[k] for k in TIME_FIGURES}, tuple(notes))
