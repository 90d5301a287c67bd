"""Energy in all of a mapped network: dynamic and static, reported apart (docs/mapping.md,
"The energy model"; shared/spec/energy.md, "Like for like").

- **Operations** (dynamic): the energy profile applied to the exact counts
  (``sakd.hardware.energy.estimate_snn_energy``: synaptic ops, graded MACs, neuron updates,
  spikes within a tile).
- **Routing** (dynamic): every message's tile hops and chip-to-chip hops from the placement,
  x the chip profile's per-hop energies (Loihi: 3.0 pJ east-west, 4.0 pJ north-south per tile
  hop, Davies et al. 2018, Table 2; chip-to-chip hops assumed). Messages per sample come from the
  counts (``Mapping.messages``).
- **Static**: the chip's static power x the chips in use x the run time of one sample, from the
  time model: T steps once the pipeline is full (``static_pj``), T + L steps for one sample run
  alone (``static_unpipelined_pj``). A chip without a static-power figure (Loihi 1) has its
  static energy listed in ``not_counted`` instead.

``total_pj = dynamic_pj + static_pj`` (the pipelined run time); ``total_unpipelined_pj`` beside
it. Units: pJ per sample (the mean over the simulated samples), W, s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sakd.hardware.counts import NetworkCounts
from sakd.hardware.energy import EnergyEstimate, EnergyProfile, estimate_snn_energy, load_profile

from .errors import MappingError
from .mapper import Mapping, plain
from .timing import TimeEstimate
from .traffic import in_order_sum

PJ_PER_J = 1e12


@dataclass(frozen=True)
class TotalEnergy:
    """Energy per sample of a mapped network (pJ), dynamic and static apart.

    ``operations_pj`` (by term in ``operations_by_term_pj``) + ``routing_pj`` (by hop kind in
    ``routing_by_kind_pj``, with the message-hops in ``message_hops``) = ``dynamic_pj``;
    ``static_pj`` = ``static_power_w`` x ``chips`` x ``run_time_s`` x 1e12 (None when the chip
    has no static-power figure: then it is in ``not_counted``)."""

    profile: str
    chip: str
    system: str
    chips: int
    cores: int
    operations_pj: float
    operations_by_term_pj: dict[str, float]
    routing_pj: float
    routing_by_kind_pj: dict[str, float]
    message_hops: dict[str, float]
    messages: float
    static_power_w: float | None
    run_time_s: float
    run_time_unpipelined_s: float
    static_pj: float | None
    static_unpipelined_pj: float | None
    not_counted: dict[str, float | str]
    caveats: tuple[str, ...]
    snn: EnergyEstimate = field(repr=False)
    label: str = "estimate"

    @property
    def dynamic_pj(self) -> float:
        return self.operations_pj + self.routing_pj

    @property
    def total_pj(self) -> float:
        """Dynamic + static (pipelined run time); static 0 when not counted."""
        return self.dynamic_pj + (self.static_pj or 0.0)

    @property
    def total_unpipelined_pj(self) -> float:
        return self.dynamic_pj + (self.static_unpipelined_pj or 0.0)

    @property
    def total_j(self) -> float:
        return self.total_pj / PJ_PER_J

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (
            "label", "profile", "chip", "system", "chips", "cores", "operations_pj",
            "operations_by_term_pj", "routing_pj", "routing_by_kind_pj", "message_hops",
            "messages", "static_power_w", "run_time_s", "run_time_unpipelined_s", "static_pj",
            "static_unpipelined_pj", "not_counted", "caveats")}
        out.update(dynamic_pj=self.dynamic_pj, total_pj=self.total_pj,
                   total_unpipelined_pj=self.total_unpipelined_pj)
        return plain(out)


def estimate_total_energy(mapping: Mapping, time_estimate: TimeEstimate, counts: NetworkCounts,
                          profile: EnergyProfile | str = "loihi") -> TotalEnergy:
    """Dynamic (operations + routed message-hops) and static (power x run time) energy per
    sample of ``mapping`` under the per-operation energy ``profile`` (a name or an
    ``EnergyProfile``) and the time of ``time_estimate``."""
    if time_estimate.chip != mapping.chip.name or time_estimate.system != mapping.system.name:
        raise MappingError(f"estimate_total_energy: the time estimate is for {time_estimate.chip} "
                           f"on '{time_estimate.system}', the mapping for {mapping.chip.name} on "
                           f"'{mapping.system.name}'; estimate the time of this mapping")
    prof = load_profile(profile)
    snn = estimate_snn_energy(counts, prof)
    chip = mapping.chip
    edges, rates = mapping.edges, mapping.source_rates(counts)
    hops = {"ew": 0.0, "ns": 0.0, "interchip": 0.0}
    messages = 0.0
    for rows in edges.blocks():  # message-hops added edge by edge, in order
        msgs = edges.messages(rows, rates)
        messages += msgs.sum()
        for kind, h in zip(hops, edges.hops(rows)):
            hops[kind] = in_order_sum(msgs * h, hops[kind])
    routing = {"ew": hops["ew"] * chip.e_hop_ew_pj, "ns": hops["ns"] * chip.e_hop_ns_pj,
               "interchip": hops["interchip"] * chip.e_interchip_hop_pj}
    not_counted: dict[str, float | str] = dict(snn.not_counted)
    power = chip.static_power_w
    run, run_alone = time_estimate.run_time_pipelined_s, time_estimate.run_time_unpipelined_s
    if power is None:
        static = static_alone = None
        not_counted["static"] = (f"no static-power figure for {chip.name}: pass "
                                 f"overrides={{'static_power_w': ...}} to map_network")
    else:
        static = power * mapping.chips_used * run * PJ_PER_J
        static_alone = power * mapping.chips_used * run_alone * PJ_PER_J
    caveats = list(prof.caveats)
    if chip.name != "loihi" and prof.name == "loihi":
        caveats.append(f"Per-operation energies are Loihi 1 pre-silicon figures applied to "
                       f"{chip.name}: an estimate only.")
    for key in ("e_hop_ew_pj", "e_hop_ns_pj", "e_interchip_hop_pj", "static_power_w"):
        f = chip.figures[key]
        if f.certainty in ("assumed", "user"):
            caveats.append(f"{key} = {f.value} ({f.unit}) is {f.certainty}: {f.source}.")
    caveats.append("Static energy counts the chips in use only; the idle chips of a larger "
                   "system are left out, as Intel's benchmarks do.")
    return TotalEnergy(prof.name, chip.name, mapping.system.name, mapping.chips_used,
                       mapping.cores_used, snn.total_pj, dict(snn.by_term_pj),
                       float(sum(routing.values())), routing, hops, float(messages), power,
                       run, run_alone, static, static_alone, not_counted, tuple(caveats), snn)
