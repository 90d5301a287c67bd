"""The energy and operation-count report: JSON, a terminal table and a PNG bar chart.

It puts the simulator's exact counts (``sakd.hardware.counts.NetworkCounts``) through one or more
energy profiles (``sakd.hardware.energy``), beside the ANN baseline's MACs, and states each
profile's source and caveats (shared/spec/energy.md). All numbers are per sample (the mean over
the simulated samples): operations per sample, energy in pJ (``*_pj``) or J (``*_j``) per sample.
Files are written atomically: an interrupted write (Ctrl-C included) leaves no half file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sakd.hardware.atomic import atomic_path, atomic_write_json
from sakd.hardware.counts import NetworkCounts
from sakd.hardware.energy import (
    PJ_PER_J,
    AnnEnergy,
    EnergyEstimate,
    EnergyProfile,
    ann_layer_macs,
    estimate_ann_energy,
    estimate_snn_energy,
    load_profile,
    sops_convention,
)

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


def build_energy_report(
    counts: NetworkCounts,
    ann_macs: Mapping[str, int] | None,
    profiles: Sequence[EnergyProfile | str],
    *,
    network_name: str,
    time_steps: int,
    ann_profile: EnergyProfile | str | None = None,
) -> dict[str, Any]:
    """A JSON-able report of one simulated network under ``profiles``.

    ``ann_macs``: the teacher's MACs per layer (``sakd.models.macs.count_ann_macs``), or None for
    no ANN baseline. A profile without a per-MAC energy (``loihi``, ``spinnaker2``) cannot price
    the ANN: its baseline is priced with ``ann_profile`` (default ``cmos45-int8``), and the report
    says so. ``time_steps`` must agree with the counts.
    """
    if not profiles:
        raise ValueError("build_energy_report: give at least one energy profile")
    if int(time_steps) != int(counts.time_steps):
        raise ValueError(f"build_energy_report: time_steps={time_steps} but the counts were taken "
                         f"with T={counts.time_steps}")
    chosen = [load_profile(p) for p in profiles]
    names = [p.name for p in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"build_energy_report: profile names repeat: {names}")
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
            missing = ", ".join(f"{_TERM_LABELS[t]} ({_fmt_count(v)} per sample)"
                                for t, v in estimate.not_counted.items())
            notes.append(f"{name}: not counted (the profile has no energy for them): {missing}; "
                         f"its SNN energy is a lower bound.")
    notes.append(encoding["note"])

    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "network": network_name,
        "time_steps": int(time_steps),
        "samples": int(counts.samples),
        "units": {"ops": "operations per sample (mean over the simulated samples)",
                  "energy_pj": "pJ per sample (mean)", "energy_j": "J per sample (mean)",
                  "constants": "pJ per operation"},
        "profiles": {p.name: p.as_dict() for p in chosen},
        "layers": layers,
        "totals": totals,
        "ann": ann_section,
        "ann_layer_match": matches,
        "ratios": ratios,
        "sops_convention": sops,
        "encoding_layer": encoding,
        "caveats": {"general": list(GENERAL_CAVEATS),
                    **{p.name: list(p.caveats) for p in chosen}},
        "notes": notes,
    }


def _ann_section(ann_layers: dict[str, int] | None, chosen: list[EnergyProfile],
                 ann_profile: EnergyProfile | str | None
                 ) -> tuple[dict[str, Any] | None, dict[str, AnnEnergy]]:
    if ann_layers is None:
        return None, {}
    fallback = load_profile(ann_profile if ann_profile is not None else DEFAULT_ANN_PROFILE)
    if fallback.per_mac is None:
        raise ValueError(f"ann_profile '{fallback.name}' has no per_mac energy; it cannot "
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
        note = (f"The encoding layer ({names}: {_fmt_count(macs)} MACs per sample on graded "
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


# ---------------------------------------------------------------------------------------------
# the terminal table
# ---------------------------------------------------------------------------------------------


def _fmt_count(value: float | None) -> str:
    if value is None:
        return "—"
    value = float(value)
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}" if value == int(value) else f"{value:.3g}"


def format_energy(pj: float | None) -> str:
    """An energy in pJ as text with a readable unit (fJ .. J)."""
    if pj is None:
        return "—"
    joules = float(pj) / PJ_PER_J
    if joules == 0:
        return "0 pJ"
    for size, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ"), (1e-12, "pJ")):
        if abs(joules) >= size:
            return f"{joules / size:.3g} {unit}"
    return f"{joules / 1e-15:.3g} fJ"


def _fmt_rate(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def print_energy_table(report: Mapping[str, Any], console: Any = None) -> None:
    """Print the report: a table per layer with totals, the ANN comparison, the SOPs convention,
    then the notes and every profile's source and caveats. ``console``: a ``rich`` Console."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    profiles = list(report["profiles"])
    table = Table(title=f"Energy per layer: {report['network']}, T = {report['time_steps']}, "
                        f"per sample (mean of {report['samples']})", title_justify="left")
    for column in ("layer", "kind", "neurons", "spikes", "rate", "SynOps", "graded MACs"):
        table.add_column(column, justify="left" if column in ("layer", "kind") else "right")
    for name in profiles:
        table.add_column(name, justify="right")
    for row in report["layers"]:
        table.add_row(row["layer"], row["kind"], _fmt_count(row["neurons"]),
                      _fmt_count(row["spikes"]), _fmt_rate(row["firing_rate"]),
                      _fmt_count(row["synops"]), _fmt_count(row["graded_macs"]),
                      *(format_energy(row["energy_pj"][p]) + ("*" if row["not_counted"][p] else "")
                        for p in profiles))
    totals = report["totals"]
    table.add_section()
    table.add_row("total", "", _fmt_count(totals["neurons"]), _fmt_count(totals["spikes"]),
                  _fmt_rate(totals["firing_rate"]), _fmt_count(totals["synops"]),
                  _fmt_count(totals["graded_macs"]),
                  *(format_energy(totals["energy_pj"][p]) + ("*" if totals["not_counted"][p] else "")
                    for p in profiles), style="bold")
    console.print(table)
    if any(totals["not_counted"].values()):
        console.print("* lower bound: some operations have no energy in that profile and count "
                      "0 (see notes).")

    ann = report.get("ann")
    if ann is not None:
        comparison = Table(title=f"SNN against the ANN baseline ({_fmt_count(ann['macs'])} MACs "
                                 f"per sample)", title_justify="left")
        for column in ("profile", "SNN energy", "ANN energy", "ANN priced with", "SNN / ANN"):
            comparison.add_column(column, justify="left" if column in ("profile", "ANN priced with")
                                  else "right")
        for name in profiles:
            ratio = report["ratios"]["energy_snn_over_ann"][name]
            bound = "≥ " if report["ratios"]["lower_bound"][name] else ""
            comparison.add_row(name, format_energy(totals["energy_pj"][name]),
                               format_energy(ann["energy_pj"][name]), ann["priced_with"][name],
                               "—" if ratio is None else f"{bound}{ratio:.3g}")
        console.print(comparison)
        ops_ratio = report["ratios"]["ops_snn_over_ann_macs"]
        if ops_ratio is not None:
            console.print(f"Operations: SNN (SynOps + graded MACs) / ANN MACs = {ops_ratio:.3g}")

    sops = report["sops_convention"]
    console.print(f"SOPs convention ({sops['definition']}): {_fmt_count(sops['sops'])} SOPs + "
                  f"{_fmt_count(sops['graded_macs'])} graded MACs per sample; exact event count "
                  f"(ours): {_fmt_count(sops['ours']['synops'])} SynOps + "
                  f"{_fmt_count(sops['ours']['graded_macs'])} graded MACs.")
    for note in sops["notes"][1:]:
        console.print(f"  {note}", markup=False)

    console.print("\nNotes:", style="bold")
    for note in report["notes"]:
        console.print(f"- {note}", markup=False)
    console.print("\nCaveats:", style="bold")
    for caveat in report["caveats"]["general"]:
        console.print(f"- {caveat}", markup=False)
    for name in profiles:
        profile = report["profiles"][name]
        console.print(f"{name}: {profile['source']}", markup=False, style="italic")
        for caveat in report["caveats"][name]:
            console.print(f"- {caveat}", markup=False)


# ---------------------------------------------------------------------------------------------
# the PNG and the JSON
# ---------------------------------------------------------------------------------------------


def plot_energy(report: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """A PNG bar chart, written atomically: spikes per population (top panel), then one panel per
    profile with the energy per layer of the SNN against the matched ANN layer (log scale)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = report["layers"]
    profiles = list(report["profiles"])
    ann = report.get("ann")
    unmatched = report["ann_layer_match"]["unmatched_ann_layers"] if ann else []
    labels = [f"{row['layer']} ({'neurons' if row['kind'] == 'population' else 'synapses'})"
              for row in rows] + [f"ANN only: {name}" for name in unmatched]
    width = max(8.0, 0.42 * len(labels) + 2.0)
    figure = Figure(figsize=(width, 2.6 * (1 + len(profiles)) + 1.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1 + len(profiles), 1, sharex=True, squeeze=False)[:, 0]
    x = list(range(len(labels)))

    spikes = [row["spikes"] if row["kind"] == "population" else 0.0 for row in rows]
    spikes += [0.0] * len(unmatched)
    axes[0].bar(x, spikes, color="#4c72b0")
    axes[0].set_ylabel("spikes / sample")
    axes[0].set_title(f"{report['network']}, T = {report['time_steps']}: spikes per population "
                      f"(mean of {report['samples']} samples)", loc="left", fontsize=10)

    bar = 0.4
    for axis, name in zip(axes[1:], profiles):
        snn = [row["energy_pj"][name] for row in rows] + [0.0] * len(unmatched)
        axis.bar([i - bar / 2 for i in x], snn, bar, color="#dd8452",
                 label=f"SNN ({format_energy(report['totals']['energy_pj'][name])} total)")
        if ann is not None:
            per_layer = ann["energy_per_layer_pj"][name]
            ann_values = [(per_layer[row["ann_layer"]] if row.get("ann_layer") else 0.0)
                          for row in rows] + [per_layer[n] for n in unmatched]
            axis.bar([i + bar / 2 for i in x], ann_values, bar, color="#55a868",
                     label=f"ANN, priced with {ann['priced_with'][name]} "
                           f"({format_energy(ann['energy_pj'][name])} total)")
        tallest = max([*snn, *(ann_values if ann is not None else [])], default=0.0)
        if tallest > 0:
            # headroom above the tallest bar so that the legend never covers one
            axis.set_yscale("log")
            axis.set_ylim(top=tallest * 60.0)
        lower = " (lower bound: some terms not priced)" if report["totals"]["not_counted"][name] \
            else ""
        axis.set_title(f"energy per layer, profile {name}{lower}", loc="left", fontsize=10)
        axis.set_ylabel("pJ / sample")
        axis.legend(fontsize=8, loc="upper right")
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def write_energy_report(report: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """The report as JSON, written atomically."""
    atomic_write_json(path, report)
