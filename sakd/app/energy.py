"""``sakd energy``: spikes, SynOps and energy per inference against the ANN teacher.

It puts the simulator's exact counts (``sakd.hardware.counts.NetworkCounts``) through one or more
energy profiles (``sakd.hardware.energy``), beside the ANN baseline's MACs, and states each
profile's source and caveats (shared/spec/energy.md). All numbers are per sample (the mean over
the simulated samples): operations per sample, energy in pJ (``*_pj``) or J (``*_j``) per sample.

Given the network, the report also maps it onto its chip exactly as ``sakd map`` does (the
``chip`` section: cores, chips, time per step, latency, throughput, energy split into dynamic,
operations + routed messages x hops, and static, power x run time), and compares it with the
ANN like for like (``like_for_like``: the ANN priced for arithmetic *and* memory access beside
the arithmetic-only conventions, each labelled).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sakd.app.common import JobError, check_output_dir, count_option, read_network_file
from sakd.app.map import (
    AUTO_SYSTEM,
    CHIP_ENERGY_PROFILE,
    check_system,
    compare_like_for_like,
    estimate_on_chip,
)
from sakd.config import DEFAULT_ENERGY_PROFILES
from sakd.hardware.atomic import atomic_write_json
from sakd.hardware.counts import NetworkCounts
from sakd.hardware.energy import (
    AnnEnergy,
    EnergyEstimate,
    EnergyProfile,
    ann_layer_macs,
    estimate_ann_energy,
    estimate_snn_energy,
    load_profile,
    sops_convention,
)
from sakd.hardware.ir import Network
from sakd.hardware.mapping import MappingError, load_chip, load_system

REPORT_FORMAT = "sakd-energy-report"
REPORT_VERSION = 1
#: The profile that prices the ANN baseline beside a profile without a per-MAC energy (unless
#: ``ann_profile`` says otherwise): the equivalent 8-bit ANN, the conservative comparison (Yan et
#: al., arXiv 2409.08290, compare SNNs with quantized ANNs).
DEFAULT_ANN_PROFILE = "cmos45-int8"

GENERAL_CAVEATS = (
    ("Counts are exact for the simulated samples (per sample, within each population's window of "
     "T steps); energies are count x energy-per-operation and nothing else (no time figure is "
     "added to an energy)."),
    ("Energies of different profiles come from different technologies and methods (pre-silicon "
     "simulation, compute-only 45 nm arithmetic, a prototype chip); compare them with care."),
)

_TERM_LABELS = {"synops": "SynOps", "graded_macs": "graded-input MACs",
                "active_updates": "active neuron updates",
                "inactive_updates": "inactive neuron updates", "spikes": "spikes"}


# ---------------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------------


@dataclass
class EnergyReport:
    """``energy_report.json``: every section of the report (see ``build_energy_report``)."""

    format: str
    version: int
    network: str
    time_steps: int
    samples: int
    units: dict[str, str]
    profiles: dict[str, dict[str, Any]]
    layers: list[dict[str, Any]]
    totals: dict[str, Any]
    ann: dict[str, Any] | None
    ann_layer_match: dict[str, Any]
    ratios: dict[str, Any] | None
    sops_convention: dict[str, Any]
    encoding_layer: dict[str, Any]
    caveats: dict[str, list[str]]
    notes: list[str]
    network_digest: str | None = None
    #: the network on the chip, from the same mapping as ``sakd map`` (``ChipEstimate.summary``):
    #: cores, chips, time, latency, throughput, dynamic and static energy; or ``{"error": ...}``
    chip: dict[str, Any] | None = None
    #: the SNN/ANN ratios with the ANN priced like for like (``compare_like_for_like``)
    like_for_like: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_energy_report(
    counts: NetworkCounts,
    ann_macs: Mapping[str, int] | None,
    profiles: Sequence[EnergyProfile | str],
    *,
    network_name: str,
    time_steps: int,
    ann_profile: EnergyProfile | str | None = None,
    network_digest: str | None = None,
    network: Network | None = None,
    chip: str | None = None,
    system: str | None = AUTO_SYSTEM,
    chip_profile: str = CHIP_ENERGY_PROFILE,
) -> EnergyReport:
    """The report of one simulated network under ``profiles``.

    ``ann_macs``: the teacher's MACs per layer (``sakd.models.macs.count_ann_macs``), or None for
    no ANN baseline. A profile without a per-MAC energy (``loihi``, ``spinnaker2``) cannot price
    the ANN: its baseline is priced with ``ann_profile`` (default ``cmos45-int8``), and the report
    says so. ``time_steps`` must agree with the counts.

    ``network`` (the IR network the counts come from) adds the chip section and the like-for-like
    comparison: the network mapped onto ``chip`` (None: its target) and ``system`` (``"auto"``:
    one chip if it fits, else the smallest built-in system that holds it), exactly as
    ``sakd map`` maps it, with time and energy in all under ``chip_profile``.
    """
    if not profiles:
        raise JobError("give at least one energy profile (--profile)")
    if int(time_steps) != int(counts.time_steps):
        raise ValueError(f"build_energy_report: time_steps={time_steps} but the counts were taken "
                         f"with T={counts.time_steps}")
    chosen = [load_profile(p) for p in profiles]
    names = [p.name for p in chosen]
    if len(set(names)) != len(names):
        raise JobError(f"--profile: profile names repeat: {', '.join(names)}")
    estimates = {p.name: estimate_snn_energy(counts, p) for p in chosen}
    ann_layers = ann_layer_macs(ann_macs) if ann_macs is not None else None
    matches = _match_ann_layers(counts, ann_layers or {})

    ann_section, ann_energy = _ann_section(ann_layers, chosen, ann_profile)
    layers = _layer_rows(counts, estimates, matches, ann_layers or {}, ann_energy)
    totals = _totals(counts, estimates)
    sops = _sops_section(counts, chosen, totals)
    encoding = _encoding_section(counts, chosen)

    ratios: dict[str, Any] | None = None
    notes: list[str] = []
    if ann_section is not None:
        snn_ops = totals["synops"] + totals["graded_macs"]
        ratios = {
            "energy_snn_over_ann": {},
            "ops_snn_over_ann_macs": _ratio(snn_ops, ann_section["macs"]),
            "lower_bound": {},
        }
        for name, estimate in estimates.items():
            ratios["energy_snn_over_ann"][name] = _ratio(estimate.total_pj,
                                                         ann_section["energy_pj"][name])
            ratios["lower_bound"][name] = not estimate.complete
        notes.extend(ann_section["notes"])
    for name, estimate in estimates.items():
        if estimate.not_counted:
            missing = ", ".join(f"{_TERM_LABELS[t]} ({format_count(v)} per sample)"
                                for t, v in estimate.not_counted.items())
            notes.append(f"{name}: not counted (the profile has no energy for them): {missing}; "
                         f"its SNN energy is a lower bound.")
    notes.append(encoding["note"])
    chip_section = like = None
    if network is not None:
        chip_section, like = _chip_sections(network, counts, chip, system, chip_profile,
                                            int(time_steps), ann_section)
        if "error" in chip_section:
            notes.append(f"Not mapped onto a chip: {chip_section['error']}")
        head = like["headline"]
        bound = ">= " if head["lower_bound"] else ""
        notes.append(f"Like for like (shared/spec/energy.md): {head['label']}: SNN/ANN "
                     f"{bound}{head['ratio_ann_no_reuse']:.3g} .. {bound}"
                     f"{head['ratio_ann_full_reuse']:.3g}. The per-profile ratios "
                     f"(ratios.energy_snn_over_ann) price the ANN's arithmetic alone.")

    return EnergyReport(
        format=REPORT_FORMAT,
        version=REPORT_VERSION,
        network=network_name,
        time_steps=int(time_steps),
        samples=int(counts.samples),
        units={"ops": "operations per sample (mean over the simulated samples)",
               "energy_pj": "pJ per sample (mean)", "energy_j": "J per sample (mean)",
               "constants": "pJ per operation"},
        profiles={p.name: p.as_dict() for p in chosen},
        layers=layers,
        totals=totals,
        ann=ann_section,
        ann_layer_match=matches,
        ratios=ratios,
        sops_convention=sops,
        encoding_layer=encoding,
        caveats={"general": list(GENERAL_CAVEATS), **{p.name: list(p.caveats) for p in chosen}},
        notes=notes,
        network_digest=network_digest,
        chip=chip_section,
        like_for_like=like,
    )


def _chip_sections(network: Network, counts: NetworkCounts, chip: str | None,
                   system: str | None, profile: str, time_steps: int,
                   ann_section: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chip section (the same mapping as ``sakd map``; ``{"error": ...}`` when the network
    does not map) and the like-for-like comparison (on the chip's dynamic energy when mapped,
    else on the profile's operations alone)."""
    try:
        estimate = estimate_on_chip(network, counts, chip=chip, system=system,
                                    time_steps=time_steps, profile=profile)
    except (MappingError, JobError) as exc:
        section: dict[str, Any] = {"error": str(exc), "chip": chip or network.target.name,
                                   "system": system}
        energy = None
    else:
        section, energy = estimate.summary(), estimate.energy
    like = compare_like_for_like(network, counts, energy, profile=profile)
    like["ann"]["teacher_macs"] = ann_section["macs"] if ann_section is not None else None
    return section, like


def _ann_section(ann_layers: dict[str, int] | None, chosen: list[EnergyProfile],
                 ann_profile: EnergyProfile | str | None
                 ) -> tuple[dict[str, Any] | None, dict[str, AnnEnergy]]:
    if ann_layers is None:
        return None, {}
    fallback = load_profile(ann_profile if ann_profile is not None else DEFAULT_ANN_PROFILE)
    if fallback.per_mac is None:
        raise JobError(f"ann_profile '{fallback.name}' has no per_mac energy; it cannot "
                       f"price the ANN baseline")
    energies: dict[str, AnnEnergy] = {}
    notes = []
    for profile in chosen:
        pricing = profile if profile.per_mac is not None else fallback
        energies[profile.name] = estimate_ann_energy(ann_layers, pricing)
        if pricing is not profile:
            notes.append(f"{profile.name} has no per-MAC energy: the ANN baseline beside it is "
                         f"priced with {pricing.name} ({pricing.per_mac} pJ per MAC), so the "
                         f"ratio compares two technologies.")
    section = {
        "macs_per_layer": dict(ann_layers),
        "macs": int(sum(ann_layers.values())),
        "priced_with": {name: e.profile.name for name, e in energies.items()},
        "energy_pj": {name: e.total_pj for name, e in energies.items()},
        "energy_j": {name: e.total_j for name, e in energies.items()},
        "energy_per_layer_pj": {name: dict(e.energy_pj) for name, e in energies.items()},
        "notes": notes,
    }
    return section, energies


def _match_ann_layers(counts: NetworkCounts, ann_layers: Mapping[str, int]) -> dict[str, Any]:
    """Pair projections with ANN layers: same name, else the next ANN layer (in order) whose MAC
    count equals the projection's dense FLOPs (true of a conv or linear lowered one to one)."""
    names = list(ann_layers)
    used: set[str] = set()
    pairs: dict[str, str] = {}
    how: dict[str, str] = {}
    cursor = 0
    for proj in counts.projections.values():
        match = None
        if proj.name in ann_layers and proj.name not in used:
            match, how[proj.name] = proj.name, "name"
        else:
            for name in names[cursor:]:
                if name not in used and ann_layers[name] == proj.dense_flops:
                    match, how[proj.name] = name, "order and MAC count"
                    break
        if match is not None:
            pairs[proj.name] = match
            used.add(match)
            cursor = max(cursor, names.index(match) + 1)
    return {"pairs": pairs, "method": how, "unmatched_ann_layers": [n for n in names if n not in used],
            "unmatched_projections": [p for p in counts.projections if p not in pairs]}


def _row_order(counts: NetworkCounts) -> list[tuple[str, str]]:
    """Projections in order, each population right after the last projection into it."""
    remaining: dict[str, int] = {}
    for proj in counts.projections.values():
        remaining[proj.target] = remaining.get(proj.target, 0) + 1
    rows: list[tuple[str, str]] = []
    placed: set[str] = set()
    for proj in counts.projections.values():
        rows.append(("projection", proj.name))
        remaining[proj.target] -= 1
        if remaining[proj.target] == 0 and proj.target in counts.populations:
            rows.append(("population", proj.target))
            placed.add(proj.target)
    rows.extend(("population", name) for name in counts.populations if name not in placed)
    return rows


def _layer_rows(counts: NetworkCounts, estimates: dict[str, EnergyEstimate],
                matches: dict[str, Any], ann_layers: Mapping[str, int],
                ann_energy: dict[str, AnnEnergy]) -> list[dict[str, Any]]:
    rows = []
    for kind, name in _row_order(counts):
        energy = {p: e.layers[name].total_pj for p, e in estimates.items()}
        missing = {p: [t for t, ops in e.layers[name].ops.items()
                       if ops and t not in e.layers[name].energy_pj]
                   for p, e in estimates.items()}
        if kind == "population":
            pop = counts.populations[name]
            rows.append({
                "layer": name, "kind": kind, "neurons": int(pop.neurons),
                "spikes": _mean(pop.spikes), "firing_rate": _mean(pop.firing_rate),
                "synops": None, "graded_macs": None,
                "active_updates": _mean(pop.active_updates),
                "inactive_updates": _mean(pop.inactive_updates),
                "energy_pj": energy, "not_counted": missing,
            })
        else:
            proj = counts.projections[name]
            ann_name = matches["pairs"].get(name)
            rows.append({
                "layer": name, "kind": kind, "source": proj.source, "target": proj.target,
                "neurons": None, "spikes": None, "firing_rate": None,
                "synops": _mean(proj.synops), "graded_macs": _mean(proj.graded_macs),
                "synapses": int(proj.synapses), "dense_flops": int(proj.dense_flops),
                "energy_pj": energy, "not_counted": missing,
                "ann_layer": ann_name,
                "ann_macs": int(ann_layers[ann_name]) if ann_name else None,
                "ann_energy_pj": ({p: a.energy_pj[ann_name] for p, a in ann_energy.items()}
                                  if ann_name else None),
            })
    return rows


def _totals(counts: NetworkCounts, estimates: dict[str, EnergyEstimate]) -> dict[str, Any]:
    pops, projs = counts.populations.values(), counts.projections.values()
    neurons = sum(int(p.neurons) for p in pops)
    spikes = sum(_mean(p.spikes) for p in pops)
    updates = sum(int(p.updates) for p in pops)
    return {
        "neurons": neurons,
        "spikes": spikes,
        "firing_rate": spikes / updates if updates else 0.0,
        "synops": sum(_mean(p.synops) for p in projs),
        "graded_macs": sum(_mean(p.graded_macs) for p in projs),
        "neuron_updates": updates,
        "active_updates": sum(_mean(p.active_updates) for p in pops),
        "inactive_updates": sum(_mean(p.inactive_updates) for p in pops),
        "dense_flops_per_step": sum(int(p.dense_flops) for p in projs),
        "energy_pj": {p: e.total_pj for p, e in estimates.items()},
        "energy_j": {p: e.total_j for p, e in estimates.items()},
        "energy_by_term_pj": {p: dict(e.by_term_pj) for p, e in estimates.items()},
        "not_counted": {p: dict(e.not_counted) for p, e in estimates.items()},
    }


def _sops_section(counts: NetworkCounts, chosen: list[EnergyProfile],
                  totals: dict[str, Any]) -> dict[str, Any]:
    conv = sops_convention(counts)
    energy, missing = {}, {}
    for profile in chosen:
        energy[profile.name], missing[profile.name] = conv.energy_pj(profile)
    return {
        "definition": "SOPs(l) = firing rate of l's input x T x FLOPs(l)",
        "per_projection": dict(conv.per_projection),
        "input_kind": dict(conv.input_kind),
        "sops": conv.sops,
        "graded_macs": conv.graded_macs,
        "ours": {"synops": totals["synops"], "graded_macs": totals["graded_macs"]},
        "energy_pj": energy,
        "not_counted": missing,
        "notes": list(conv.notes),
    }


def _encoding_section(counts: NetworkCounts, chosen: list[EnergyProfile]) -> dict[str, Any]:
    graded = [p for p in counts.projections.values()
              if p.source not in counts.populations and any(int(v) for v in p.graded_macs)]
    macs = sum(_mean(p.graded_macs) for p in graded)
    included = {p.name: bool(graded) and p.per_mac is not None for p in chosen}
    if not graded:
        note = ("No projection takes a graded (analog) input: there is no MAC-costing encoding "
                "layer to include.")
    else:
        names = ", ".join(p.name for p in graded)
        yes = [n for n, v in included.items() if v]
        no = [n for n, v in included.items() if not v]
        note = (f"The encoding layer ({names}: {format_count(macs)} MACs per sample on graded "
                f"input) costs MACs, not accumulates.")
        if yes:
            note += f" Included, priced per MAC, for {', '.join(yes)}."
        if no:
            note += f" Not included for {', '.join(no)} (no per-MAC energy in the profile)."
    return {"projections": [p.name for p in graded], "graded_macs": macs, "included": included,
            "note": note}


def _mean(values: Any) -> float:
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()) if array.size else 0.0


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def format_count(value: float | None) -> str:
    """A count with a k/M/G/T suffix (3 significant digits)."""
    if value is None:
        return "—"
    value = float(value)
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}" if value == int(value) else f"{value:.3g}"


# ---------------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------------

REPORT_NAME = "energy_report.json"
CHART_NAME = "energy.png"


@dataclass(frozen=True)
class EnergyOptions:
    """``net``: an IR/NIR/netx file or an export folder; ``profiles``: profile names or YAML
    files; ``out``: the output folder (default: next to the network)."""

    net: Path
    profiles: tuple[str, ...] = DEFAULT_ENERGY_PROFILES
    data: str | None = None
    split: str = "test"
    limit: int | None = None
    batch: int | None = None
    device: str = "cpu"
    data_root: str | None = None
    out: Path | None = None
    time_steps: int | None = None
    chip: str | None = None  # the chip of the chip section (None: the network's target)
    system: str | None = AUTO_SYSTEM  # its system (None: one chip; "auto": the smallest that fits)


@dataclass
class EnergyResult:
    """The report (written to ``report_path``) and where its chart goes (``chart_path``: drawn
    by ``sakd.render.energy.plot_energy``, the job writes no picture)."""

    report: EnergyReport
    report_path: Path
    chart_path: Path
    notes: list[str] = field(default_factory=list)


def parse_profiles(text: str) -> tuple[str, ...]:
    """``--profile a,b``: the names, each loadable, none repeated."""
    names = tuple(p.strip() for p in str(text).split(","))
    if not names or any(not n for n in names):
        raise JobError(f"--profile {text!r}: give comma-separated profile names or YAML files "
                       f"(e.g. loihi,cmos45-fp32), without empty entries")
    validate_profiles(names)
    return names


def validate_profiles(names: Sequence[str]) -> None:
    if not names:
        raise JobError("give at least one energy profile (--profile)")
    for name in names:
        load_profile(name)  # a ProfileError names the profile and what is wrong
    if len(set(names)) != len(names):
        raise JobError(f"--profile: profile names repeat: {', '.join(names)}")


def ann_macs_for(network: Any) -> tuple[dict[str, int] | None, str | None]:
    """The teacher ANN's MACs per layer for one sample (same architecture as the student), from
    the architecture the file records, checked against the network: (MACs, None) or (None, why
    there is no ANN baseline).

    A classifier's count is its convs and linear layers; a detector's or segmenter's is the
    whole network the chip runs, up to its readouts (backbone, FPN with its nearest upsamplings,
    head convs once per pyramid level), counted as ``count_ann_macs`` counts; the host's work
    after the readouts (box decoding, NMS, a segmenter's bilinear upsampling) is in neither.
    """
    from sakd.app.dense import check_readouts, task_of
    from sakd.models import arch_spec, build_model
    from sakd.models.macs import count_ann_macs

    meta = network.metadata
    dense = task_of(network) != "classification"
    arch = meta.get("arch_name")
    args = (meta.get("dense") or {}).get("model_args") if dense else meta.get("model_args")
    if not arch or not isinstance(args, dict):
        return None, "the network file names no source architecture, so there is no ANN baseline"
    try:
        teacher_arch = arch_spec(arch).teacher
    except Exception as exc:  # ModelError: an unknown architecture
        return None, f"the recorded architecture cannot be built ({exc}); no ANN baseline"
    if not dense:
        readout = network.readouts[0]
        classes = args.get("num_classes")
        if classes != readout.size or meta.get("num_classes", classes) != readout.size:
            raise JobError(f"the network file's metadata says {classes} classes but its readout "
                           f"'{readout.name}' has {readout.size} neurons: the metadata does not "
                           f"describe this network (damaged or edited file); re-export it")
    image = args.get("image_size")
    channels = args.get("in_channels")
    if not isinstance(image, list) or (channels, *image) != tuple(network.input.shape):
        raise JobError(f"the network file's metadata describes a {channels}x{image} input but the "
                       f"network's input is {network.input.shape}: re-export it")
    try:
        ann = build_model(teacher_arch, **args)
    except (TypeError, ValueError) as exc:
        raise JobError(f"the network file's model_args {args} do not build {teacher_arch}: {exc}") from exc
    if dense:
        check_readouts(network, ann)
    return count_ann_macs(ann, tuple(network.input.shape)), None


def validate_options(options: EnergyOptions) -> None:
    validate_profiles(options.profiles)
    count_option(options.limit, "--limit")
    count_option(options.batch, "--batch")
    if options.out is not None:
        check_output_dir(options.out)
    if options.chip is not None:
        check_system(load_chip(options.chip), options.system)
    elif options.system not in (None, AUTO_SYSTEM):
        load_system(options.system)


def energy_job(options: EnergyOptions,
               progress: Callable[[int, int], Any] | None = None) -> EnergyResult:
    """``sakd energy``: simulate the split for its counts, price them, write the JSON and PNG."""
    from sakd.app.common import resolve_network_path
    from sakd.app.simulate import run_split

    validate_options(options)
    folder = Path(options.out) if options.out else resolve_network_path(options.net).parent
    check_output_dir(folder)
    network = read_network_file(options.net, time_steps=options.time_steps)
    data = options.data or network.metadata.get("dataset")
    if not data:
        raise JobError("the network file does not name its data set; pass --data")
    macs, why = ann_macs_for(network)
    run = run_split(network, data, split=options.split, limit=options.limit, batch=options.batch,
                    device=options.device, data_root=options.data_root,
                    time_steps=options.time_steps, progress=progress)
    report = build_energy_report(run.result.counts, macs, options.profiles,
                                 network_name=str(network.metadata.get("arch_name") or "network"),
                                 time_steps=run.time_steps, network_digest=network.digest(),
                                 network=network, chip=options.chip, system=options.system)
    if why:
        report.notes.insert(0, f"No ANN comparison: {why}.")
    report_path, chart_path = folder / REPORT_NAME, folder / CHART_NAME
    atomic_write_json(report_path, report.to_dict())
    return EnergyResult(report, report_path, chart_path, list(run.samples.notes))
