"""``sakd map``: does a network fit a chip, on how many cores and chips, how fast, and how much
energy in all, against an ANN priced like for like (docs/mapping.md, shared/spec/energy.md).

The job reads a network (an export folder, an IR, NIR or netx file), simulates a few samples
for the exact spike counts that weight the traffic, the time model and the energy (``limit``:
32 test samples by default; 0: none, traffic weighted by synapse counts, and no time or
energy), maps it with ``sakd.hardware.mapping`` and writes ``map_report.json`` (atomically).
It draws nothing: ``MapResult.picture_path`` says where ``sakd.render.map.plot_mapping`` puts
the picture of the placement.

The same functions give ``sakd energy`` and the pipeline their chip section, so that every
report speaks of the same mapping: ``estimate_on_chip`` (mapping, time, energy) and
``compare_like_for_like`` (the SNN/ANN ratios, each labelled).

Units: time per step in ns, latency and run time in s, throughput in inferences per second,
energy in pJ per inference (the mean over the simulated samples), power in W.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sakd.app.common import (
    JobError,
    check_output_file,
    count_option,
    read_network_file,
    resolve_network_path,
)
from sakd.hardware.atomic import atomic_write_json
from sakd.hardware.counts import NetworkCounts
from sakd.hardware.energy import (
    estimate_ann_energy_with_memory,
    estimate_snn_energy,
    estimate_snn_energy_with_memory,
    load_memory_model,
    load_profile,
)
from sakd.hardware.ir import Network
from sakd.hardware.mapping import (
    ChipProfile,
    Mapping,
    MappingError,
    SystemProfile,
    TimeEstimate,
    TotalEnergy,
    estimate_time,
    estimate_total_energy,
    list_chips,
    list_systems,
    load_chip,
    load_system,
    map_network,
)

REPORT_NAME = "map_report.json"
REPORT_FORMAT = "sakd-map-report"
REPORT_VERSION = 1
#: test samples simulated for the spike counts, unless told otherwise
DEFAULT_SAMPLES = 32
#: ``system="auto"``: one chip if the network fits it, else the smallest built-in system that
#: holds it
AUTO_SYSTEM = "auto"
#: per-operation energies of the chip (the only per-operation table for Loihi-class chips:
#: Loihi 1's pre-silicon figures, Davies et al. 2018)
CHIP_ENERGY_PROFILE = "loihi"
#: the ANN baseline, like for like: 8-bit arithmetic (Horowitz 2014, 45 nm) plus memory access
ANN_ARITHMETIC = "cmos45-int8"
ANN_MEMORY = "cmos45-memory"


# ---------------------------------------------------------------------------------------------
# mapping, time and energy of one network (shared by sakd map, sakd energy and the pipeline)
# ---------------------------------------------------------------------------------------------


def chip_name_for(network: Network, target: str | None) -> str:
    """``target`` (a chip profile name or JSON file) or, when None, the network's own target
    (the name of its ``TargetSpec``) if a chip profile of that name is built in."""
    if target is not None:
        return str(target)
    name = network.target.name
    if name not in list_chips():
        raise JobError(f"the network's target '{name}' has no built-in chip profile (built-in: "
                       f"{', '.join(list_chips())}); pass --target NAME or a chip JSON file")
    return name


def systems_of(chip: ChipProfile) -> list[SystemProfile]:
    """The built-in systems built of ``chip``'s kind, fewest chips first (ties: by name)."""
    found = [load_system(name) for name in list_systems()]
    return sorted((s for s in found if s.chip == chip.name), key=lambda s: (s.chips, s.name))


def check_system(chip: ChipProfile, system: str | None) -> SystemProfile | str | None:
    """The system option, loaded and checked against the chip before any work: None (one
    chip), ``"auto"``, or a ``SystemProfile`` built of ``chip``'s kind."""
    if system is None or system == AUTO_SYSTEM:
        return system
    profile = load_system(system)
    if profile.chip != chip.name:
        raise MappingError(f"--system {system}: system '{profile.name}' is built of {profile.chip} "
                           f"chips, but the chip is {chip.name}; pass --target {profile.chip} or "
                           f"a system of {chip.name} chips "
                           f"({', '.join(s.name for s in systems_of(chip)) or 'none built in'})")
    return profile


def map_onto(network: Network, chip: ChipProfile, system: SystemProfile | str | None,
             counts: NetworkCounts | None, *, share_cores: bool = True) -> tuple[Mapping, list[str]]:
    """``map_network`` onto ``system``; ``"auto"``: one chip if the network fits it, else each
    built-in system of the chip's kind in turn, fewest chips first. Returns the mapping and
    notes saying how the system was chosen."""
    if system != AUTO_SYSTEM:
        return map_network(network, chip, system, counts, share_cores=share_cores), []
    try:
        return map_network(network, chip, None, counts, share_cores=share_cores), []
    except MappingError as exc:
        if exc.resource != "cores":
            raise
        last = exc
    for candidate in systems_of(chip):
        if candidate.chips <= 1:
            continue
        try:
            mapping = map_network(network, chip, candidate, counts, share_cores=share_cores)
        except MappingError as exc:
            if exc.resource != "cores":
                raise
            last = exc
            continue
        return mapping, [f"system auto: the network does not fit one {chip.name} chip; "
                         f"'{candidate.name}' ({candidate.chips} chips) is the smallest built-in "
                         f"system that holds it"]
    raise last


@dataclass
class ChipEstimate:
    """One network on one chip or system: the mapping and, with activity counts, the time per
    step and the energy in all (``time`` and ``energy`` None without counts)."""

    mapping: Mapping
    time: TimeEstimate | None
    energy: TotalEnergy | None
    time_steps: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def usable_cores_per_chip(self) -> int:
        m = self.mapping
        return min(m.system.usable_cores_per_chip or m.chip.cores_per_chip, m.chip.cores_per_chip)

    def summary(self) -> dict[str, Any]:
        """The headline figures as plain JSON: cores, chips, binding resources, time, latency,
        throughput, energy (dynamic and static apart)."""
        m, t, e = self.mapping, self.time, self.energy
        out: dict[str, Any] = {
            "chip": m.chip.name, "system": m.system.name, "system_chips": m.system.chips,
            "cores": m.cores_used, "chips": m.chips_used,
            "cores_per_chip": self.usable_cores_per_chip, "traffic": m.traffic,
            "binding": {name: {"resource": p.binding_resource,
                               "utilization": p.binding_utilization, "cores": len(p.cores),
                               "slices": len(p.slices)} for name, p in m.populations.items()},
            "message_hops_per_sample": m.message_hops_per_sample,
            "time_steps": self.time_steps, "time": None, "energy": None,
            "notes": list(self.notes),
        }
        if t is not None:
            out["time"] = {
                "label": t.label, "step_ns": t.step_ns, "latency_steps": t.latency_steps,
                "bottleneck": t.bottleneck, "bottleneck_kind": t.bottleneck_kind,
                "bottleneck_core": t.bottleneck_core, "latency_s": t.latency_s,
                "throughput_pipelined_per_s": t.throughput_pipelined_per_s,
                "throughput_unpipelined_per_s": t.throughput_unpipelined_per_s,
            }
        if e is not None:
            out["energy"] = energy_summary(e)
        return out


def energy_summary(energy: TotalEnergy) -> dict[str, Any]:
    """Dynamic (operations + routed message-hops) and static (power x run time) energy per
    inference, pJ, with what was not counted."""
    return {
        "label": energy.label, "profile": energy.profile,
        "operations_pj": energy.operations_pj, "routing_pj": energy.routing_pj,
        "dynamic_pj": energy.dynamic_pj, "static_pj": energy.static_pj,
        "static_unpipelined_pj": energy.static_unpipelined_pj, "total_pj": energy.total_pj,
        "total_unpipelined_pj": energy.total_unpipelined_pj,
        "static_power_w": energy.static_power_w, "run_time_s": energy.run_time_s,
        "chips": energy.chips, "not_counted": dict(energy.not_counted),
    }


def estimate_on_chip(network: Network, counts: NetworkCounts | None, *, chip: str | None = None,
                     system: str | SystemProfile | None = None, time_steps: int | None = None,
                     profile: str = CHIP_ENERGY_PROFILE,
                     overrides: MappingABC[str, Any] | None = None,
                     share_cores: bool = True) -> ChipEstimate:
    """Map ``network`` onto ``chip`` (None: the network's target) and ``system`` (None: one
    chip; ``"auto"``: the smallest built-in system that holds it) and, with ``counts``,
    estimate its time per step for inferences of ``time_steps`` steps (None: the counts' T)
    and its energy in all under the per-operation ``profile``."""
    chip_p = load_chip(chip_name_for(network, chip), overrides)
    sys_p = system if isinstance(system, SystemProfile) else check_system(chip_p, system)
    mapping, notes = map_onto(network, chip_p, sys_p, counts, share_cores=share_cores)
    if counts is None:
        notes.append("No activity counts: traffic is weighted by synapse counts; time per step "
                     "and energy need simulated samples.")
        return ChipEstimate(mapping, None, None, time_steps, notes)
    steps = int(time_steps if time_steps is not None else counts.time_steps)
    timing = estimate_time(mapping, network, counts, steps)
    energy = estimate_total_energy(mapping, timing, counts, profile)
    return ChipEstimate(mapping, timing, energy, steps, notes)


# ---------------------------------------------------------------------------------------------
# like for like: the SNN/ANN ratios, each labelled
# ---------------------------------------------------------------------------------------------


def _ratio(num: float | None, den: float | None) -> float | None:
    return float(num) / float(den) if num is not None and den else None


def compare_like_for_like(network: Network, counts: NetworkCounts,
                          chip_energy: TotalEnergy | None = None, *,
                          profile: str = CHIP_ENERGY_PROFILE, arithmetic: str = ANN_ARITHMETIC,
                          memory: str = ANN_MEMORY, weight_bits: int = 8,
                          activation_bits: int = 8) -> dict[str, Any]:
    """SNN against ANN per inference, each pair labelled (shared/spec/energy.md, "Like for
    like").

    The ANN is the network's twin (one layer per projection, ``ann_layers_from_network``),
    priced with ``arithmetic`` per MAC plus ``memory`` access under two reuse bounds. The
    headline sets the SNN on the chip (``profile``'s operations, whose synaptic op includes
    the synapse read, plus the routed messages when ``chip_energy`` is given: its dynamic
    energy) against that ANN. Beside it: both on the same 45 nm CMOS footing with memory,
    arithmetic against arithmetic, and the arithmetic-only convention that sets Loihi's whole
    operation against an ANN MAC without memory (not like for like), each labelled.
    Energies in pJ per inference."""
    chip_ops = estimate_snn_energy(counts, profile)
    ann = estimate_ann_energy_with_memory(network, arithmetic, memory, weight_bits,
                                          activation_bits)
    snn_cmos = estimate_snn_energy_with_memory(counts, network, arithmetic, memory, weight_bits)
    chip_name = chip_energy.chip if chip_energy is not None else profile
    lower = bool(chip_ops.not_counted) or bool(chip_energy is not None and chip_energy.not_counted)
    if chip_energy is not None:
        snn_chip, snn_what = chip_energy.dynamic_pj, (
            f"SNN on {chip_energy.chip}, dynamic: {profile} operations (a synaptic op includes "
            f"its synapse read) + routed message-hops")
    else:
        snn_chip, snn_what = chip_ops.total_pj, (
            f"SNN, {profile} operations (a synaptic op includes its synapse read); no routing "
            f"(no mapping)")
    ann_mem = f"ANN twin, {arithmetic} arithmetic + {memory} memory access"
    rows = [
        {"key": "chip_dynamic/ann_memory_no_reuse", "headline": True, "like_for_like": True,
         "short": f"{chip_name} dynamic / ANN + memory, no reuse",
         "label": f"{snn_what} / {ann_mem}, every MAC reading its weight and input (no reuse)",
         "snn_pj": snn_chip, "ann_pj": ann.total_no_reuse_pj},
        {"key": "chip_dynamic/ann_memory_full_reuse", "headline": True, "like_for_like": True,
         "short": f"{chip_name} dynamic / ANN + memory, full reuse",
         "label": f"{snn_what} / {ann_mem}, every value read once (full reuse)",
         "snn_pj": snn_chip, "ann_pj": ann.total_full_reuse_pj},
        {"key": "cmos_memory/ann_memory_no_reuse", "headline": False, "like_for_like": True,
         "short": "SNN on CMOS + memory / ANN + memory, no reuse",
         "label": f"SNN on {arithmetic} + {memory} (adds, weight and state access) / {ann_mem}; "
                  f"no reuse on both sides",
         "snn_pj": snn_cmos.total_no_reuse_pj, "ann_pj": ann.total_no_reuse_pj},
        {"key": "cmos_memory/ann_memory_full_reuse", "headline": False, "like_for_like": True,
         "short": "SNN on CMOS + memory / ANN + memory, full reuse",
         "label": f"SNN on {arithmetic} + {memory} / {ann_mem}; full reuse on both sides",
         "snn_pj": snn_cmos.total_full_reuse_pj, "ann_pj": ann.total_full_reuse_pj},
        {"key": "cmos_arithmetic/ann_arithmetic", "headline": False, "like_for_like": True,
         "short": "arithmetic / arithmetic (both 45 nm int8)",
         "label": f"arithmetic only, both on {arithmetic}: SNN adds (+ graded MACs) / ANN MACs",
         "snn_pj": snn_cmos.arithmetic_pj, "ann_pj": ann.arithmetic_pj},
        {"key": "chip_operations/ann_arithmetic", "headline": False, "like_for_like": False,
         "short": f"{profile} operations / ANN arithmetic only",
         "label": f"arithmetic-only convention, NOT like for like: {profile} operations (synapse "
                  f"read included) / ANN {arithmetic} MACs without memory",
         "snn_pj": chip_ops.total_pj, "ann_pj": ann.arithmetic_pj},
    ]
    if chip_energy is not None and chip_energy.static_pj is not None:
        rows.append({
            "key": "chip_total/ann_memory_no_reuse", "headline": False, "like_for_like": False,
            "short": f"{chip_name} dynamic + static / ANN + memory, no reuse",
            "label": f"SNN on {chip_energy.chip}, dynamic + static (power x run time) / "
                     f"{ann_mem}, no reuse; NOT like for like: no static power is counted for "
                     f"the ANN",
            "snn_pj": chip_energy.total_pj, "ann_pj": ann.total_no_reuse_pj})
    for row in rows:
        row["ratio"] = _ratio(row["snn_pj"], row["ann_pj"])
        # a profile without a price for some operations (Loihi: graded-input MACs) makes the
        # SNN side a lower bound
        row["lower_bound"] = lower and row["key"].startswith("chip")
    headline = [r for r in rows if r["headline"]]
    return {
        "ann": {"twin": "one ANN layer per projection of the network (same architecture; a "
                        "max-pool lowered to a projection counts as MACs)",
                "macs": int(sum(layer.ops for layer in ann.layers.values())),
                **{k: v for k, v in ann.as_dict().items() if k != "layers"}},
        "snn": {"chip_profile": profile, "chip_operations_pj": chip_ops.total_pj,
                "chip_routing_pj": None if chip_energy is None else chip_energy.routing_pj,
                "chip_dynamic_pj": snn_chip if chip_energy is not None else None,
                "chip_static_pj": None if chip_energy is None else chip_energy.static_pj,
                "chip_not_counted": dict(chip_ops.not_counted),
                **{f"cmos_{k}": v for k, v in snn_cmos.as_dict().items()
                   if k in ("arithmetic_pj", "memory_no_reuse_pj", "memory_full_reuse_pj",
                            "total_no_reuse_pj", "total_full_reuse_pj")}},
        "headline": {
            "label": f"{snn_what} / {ann_mem}: between the two reuse bounds of the ANN",
            "ratio_ann_no_reuse": headline[0]["ratio"],
            "ratio_ann_full_reuse": headline[1]["ratio"],
            "lower_bound": lower,
        },
        "ratios": rows,
        "memory_model": load_memory_model(memory).as_dict(),
        "arithmetic_profile": load_profile(arithmetic).as_dict(),
        "notes": [*ann.notes, *snn_cmos.notes,
                  "The headline compares the same cost classes: Loihi's 23.6 pJ synaptic op is "
                  "the whole operation, the synapse read from core memory included, so the ANN "
                  "pays for its memory reads too. Static energy is reported apart."],
    }


# ---------------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapOptions:
    """``net``: an export folder, an IR, NIR or netx file. ``target``: a chip profile name or
    JSON file (None: the network's target). ``system``: a system name or JSON file, None (one
    chip) or ``"auto"``. ``out``: the report path (default: ``map_report.json`` next to the
    network). ``data``/``split``/``limit``: the samples simulated for the spike counts (data
    None: the set the file records; limit 0: none, traffic weighted by synapse counts; None:
    the whole split). ``profile``: per-operation energies; ``overrides``: chip figures to
    replace (``load_chip``)."""

    net: Path
    target: str | None = None
    system: str | None = None
    out: Path | None = None
    data: str | None = None
    split: str = "test"
    limit: int | None = DEFAULT_SAMPLES
    batch: int | None = None
    device: str = "cpu"
    data_root: str | None = None
    time_steps: int | None = None
    profile: str = CHIP_ENERGY_PROFILE
    share_cores: bool = True
    overrides: MappingABC[str, Any] | None = None


@dataclass
class MapReport:
    """``map_report.json``: the network, the activity behind the figures, fit (cores, chips,
    every core's utilization of every resource, the binding resource of every population),
    hops per projection, time, latency and throughput, energy in all, the ANN comparison and
    the whole mapping (slices, edges, the chip and system profiles with their sources)."""

    format: str
    version: int
    network: dict[str, Any]
    chip: str
    system: str
    activity: dict[str, Any]
    fit: dict[str, Any]
    populations: dict[str, dict[str, Any]]
    cores: list[dict[str, Any]]
    projections: dict[str, dict[str, Any]]
    time: dict[str, Any] | None
    energy: dict[str, Any] | None
    like_for_like: dict[str, Any] | None
    mapping: dict[str, Any]
    notes: list[str]
    caveats: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class MapResult:
    """The report (written to ``report_path``), the estimate behind it, and where the picture
    of the placement goes (``picture_path``: drawn by ``sakd.render.map.plot_mapping``)."""

    report: MapReport
    report_path: Path
    picture_path: Path
    estimate: ChipEstimate
    notes: list[str] = field(default_factory=list)


def report_path(options: MapOptions) -> Path:
    """``-o`` or ``map_report.json`` next to the network."""
    if options.out is not None:
        return Path(options.out)
    return resolve_network_path(options.net).parent / REPORT_NAME


def picture_path(report: Path) -> Path:
    """The picture beside the report: same name, ``.png``."""
    return report.with_suffix(".png")


def validate_options(options: MapOptions) -> None:
    """Every option checked before any work: counts, the output file, the energy profile, the
    chip and the system (and that the system is built of that chip)."""
    count_option(options.limit, "--limit", allow_zero=True)
    count_option(options.batch, "--batch")
    if options.device not in ("cpu",) and not str(options.device).startswith("cuda"):
        raise JobError(f"--device {options.device!r}: choose cpu (numpy) or cuda (torch)")
    if options.out is not None:
        out = check_output_file(options.out)
        if out.suffix.lower() == ".png":
            raise JobError(f"-o {out}: give the report's path (.json); the picture is written "
                           f"beside it")
    load_profile(options.profile)
    if options.target is not None:
        chip = load_chip(options.target, options.overrides)
        check_system(chip, options.system)
    elif options.system not in (None, AUTO_SYSTEM):
        load_system(options.system)


def map_job(options: MapOptions, progress: Callable[[int, int], Any] | None = None,
            say: Callable[[str], Any] | None = None) -> MapResult:
    """``sakd map``: simulate a few samples (unless ``limit`` is 0), map, estimate time and
    energy, compare with the ANN like for like, write ``map_report.json``. ``progress``: the
    simulation's (done, total); ``say``: one line per stage."""
    from sakd.app.simulate import run_split

    tell = say or (lambda _message: None)
    validate_options(options)
    path = check_output_file(report_path(options))
    network = read_network_file(options.net, time_steps=options.time_steps)
    chip = load_chip(chip_name_for(network, options.target), options.overrides)
    check_system(chip, options.system)

    counts: NetworkCounts | None = None
    notes: list[str] = []
    activity: dict[str, Any] = {"source": "none", "data": None, "split": None, "samples": 0}
    time_steps = options.time_steps if options.time_steps is not None else network.time_steps
    if options.limit != 0:
        data = options.data or network.metadata.get("dataset")
        if not data:
            raise JobError("the network file does not name its data set: pass --data for the "
                           "spike counts, or --limit 0 to map without activity (traffic "
                           "weighted by synapse counts, no time or energy)")
        tell(f"simulating {'all' if options.limit is None else options.limit} {options.split} "
             f"sample(s) of {data} for the spike counts")
        run = run_split(network, data, split=options.split, limit=options.limit,
                        batch=options.batch, device=options.device, data_root=options.data_root,
                        time_steps=options.time_steps, progress=progress)
        counts, time_steps = run.result.counts, run.time_steps
        notes.extend(run.samples.notes)
        activity = {"source": "simulation", "data": data, "split": options.split,
                    "samples": int(counts.samples), "time_steps": int(counts.time_steps),
                    "seconds": run.seconds}
    tell(f"mapping onto {chip.name}" + (f", system {options.system}" if options.system else ""))
    estimate = estimate_on_chip(network, counts, chip=options.target,
                                system=options.system, time_steps=time_steps,
                                profile=options.profile, overrides=options.overrides,
                                share_cores=options.share_cores)
    like = compare_like_for_like(network, counts, estimate.energy, profile=options.profile) \
        if counts is not None else None
    report = build_map_report(network, estimate, like, activity, source=str(options.net))
    report.notes.extend(notes)
    atomic_write_json(path, report.to_dict())
    return MapResult(report, path, picture_path(path), estimate, notes)


def network_name(network: Network, source: str | None = None) -> str:
    """The architecture the file records, else the file's name."""
    meta = network.metadata
    name = meta.get("arch_name") or meta.get("arch")
    if name:
        return str(name)
    return Path(source).stem if source else "network"


def build_map_report(network: Network, estimate: ChipEstimate, like: dict[str, Any] | None,
                     activity: dict[str, Any], *, source: str | None = None) -> MapReport:
    """The report of one mapped network (see ``MapReport``)."""
    m, t, e = estimate.mapping, estimate.time, estimate.energy
    full = m.to_dict()
    slice_pop = m.slice_population()
    cores = [{"id": c.id, "chip": c.chip, "x": c.x, "y": c.y, "tile": list(c.tile),
              "populations": sorted({slice_pop[s] for s in c.slices}),
              "slices": list(c.slices), "amounts": dict(c.amounts),
              "utilization": dict(c.utilization), "binding_resource": c.binding_resource}
             for c in m.cores]
    populations = {name: {"neurons": p.neurons, "tiling": list(p.tiling), "slices": len(p.slices),
                          "cores": list(p.cores), "binding_resource": p.binding_resource,
                          "binding_utilization": p.binding_utilization}
                   for name, p in m.populations.items()}
    projections = {name: {"source": p.source, "target": p.target, "edges": p.edges,
                          "mean_hops": p.mean_hops, "max_hops": p.max_hops,
                          "messages_per_sample": p.messages_per_sample,
                          "message_hops_per_sample": p.message_hops_per_sample,
                          "interchip_message_hops_per_sample": p.interchip_message_hops_per_sample}
                   for name, p in m.projections.items()}
    fit = {"cores": m.cores_used, "chips": m.chips_used,
           "cores_per_chip": estimate.usable_cores_per_chip, "system_chips": m.system.chips,
           "system_cores": estimate.usable_cores_per_chip * m.system.chips,
           "slices": len(m.slices), "traffic": m.traffic,
           "message_hops_per_sample": m.message_hops_per_sample,
           "placement_cost": list(m.placement_cost)}
    time = None
    if t is not None:
        time = t.to_dict()
        time["bottleneck_populations"] = (list(t.cores[t.bottleneck_core].populations)
                                          if t.bottleneck_core is not None else None)
    caveats = list(e.caveats) if e is not None else []
    if e is not None:
        caveats.append("Where the energy profile's caveats say routing is not counted, they speak "
                       "of the profile alone: here the routed message-hops are counted from the "
                       "placement (energy.routing_pj), at the chip profile's per-hop energies.")
    caveats.append("Time and energy are estimates from a model (docs/mapping.md, 'What the model "
                   "leaves out'), not measurements.")
    return MapReport(
        format=REPORT_FORMAT, version=REPORT_VERSION,
        network={"name": network_name(network, source), "file": source,
                 "digest": network.digest(), "target": network.target.name,
                 "time_steps": estimate.time_steps, "latency_steps": network.latency,
                 "populations": len(network.populations),
                 "projections": len(network.projections),
                 "neurons": int(sum(p.size for p in network.populations))},
        chip=m.chip.name, system=m.system.name, activity=activity, fit=fit,
        populations=populations, cores=cores, projections=projections, time=time,
        energy=None if e is None else e.to_dict(), like_for_like=like,
        mapping={k: v for k, v in full.items() if k not in ("cores", "populations",
                                                              "projections")},
        notes=[*estimate.notes, *m.notes, *(t.notes if t is not None else ())],
        caveats=caveats)
