"""The energy report on the terminal (80 columns) and as a PNG bar chart."""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table

from sakd.app.energy import EnergyReport, format_count
from sakd.hardware.atomic import atomic_path
from sakd.hardware.energy import PJ_PER_J
from sakd.render.console import plain


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


def render_energy(report: EnergyReport, console: Console, *, notes: bool = True) -> None:
    """A table per layer with totals, the ANN comparison, the SOPs convention, then the notes
    and every profile's source and caveats."""
    profiles = list(report.profiles)
    ops = Table(title=f"operations per layer: {report.network}, T = {report.time_steps}, per "
                      f"sample (mean of {report.samples})", title_justify="left", box=None,
                pad_edge=False)
    for column in ("layer", "neurons", "spikes", "rate", "SynOps", "MACs"):
        ops.add_column(column, justify="left" if column == "layer" else "right", overflow="fold")
    energy = Table(title="energy per layer (pJ .. J per sample; * a lower bound)",
                   title_justify="left", box=None, pad_edge=False)
    energy.add_column("layer", overflow="fold")
    for name in profiles:
        energy.add_column(name, justify="right", overflow="fold")
    for row in report.layers:
        ops.add_row(plain(row["layer"]), format_count(row["neurons"]), format_count(row["spikes"]),
                    _fmt_rate(row["firing_rate"]), format_count(row["synops"]),
                    format_count(row["graded_macs"]))
        energy.add_row(plain(row["layer"]),
                       *(format_energy(row["energy_pj"][p]) + ("*" if row["not_counted"][p] else "")
                         for p in profiles))
    totals = report.totals
    ops.add_section()
    ops.add_row("total", format_count(totals["neurons"]), format_count(totals["spikes"]),
                _fmt_rate(totals["firing_rate"]), format_count(totals["synops"]),
                format_count(totals["graded_macs"]), style="bold")
    energy.add_section()
    energy.add_row("total", *(format_energy(totals["energy_pj"][p]) +
                              ("*" if totals["not_counted"][p] else "") for p in profiles),
                   style="bold")
    console.print(ops)
    console.print(energy)
    console.print("MACs: graded-input multiply-accumulates (the encoding layer)")
    if any(totals["not_counted"].values()):
        console.print("* lower bound: some operations have no energy in that profile and count "
                      "0 (see notes).")

    ann = report.ann
    if ann is not None:
        comparison = Table(title=f"SNN against the ANN baseline ({format_count(ann['macs'])} MACs "
                                 f"per sample), ANN arithmetic only", title_justify="left",
                           box=None, pad_edge=False)
        for column in ("profile", "SNN energy", "ANN energy", "ANN priced with", "SNN/ANN"):
            comparison.add_column(column, justify="left" if column in ("profile", "ANN priced with")
                                  else "right", overflow="fold")
        for name in profiles:
            ratio = report.ratios["energy_snn_over_ann"][name]
            bound = "≥ " if report.ratios["lower_bound"][name] else ""
            comparison.add_row(name, format_energy(totals["energy_pj"][name]),
                               format_energy(ann["energy_pj"][name]), ann["priced_with"][name],
                               "—" if ratio is None else f"{bound}{ratio:.3g}")
        console.print(comparison)
        ops_ratio = report.ratios["ops_snn_over_ann_macs"]
        if ops_ratio is not None:
            console.print(f"operations: SNN (SynOps + graded MACs) / ANN MACs = {ops_ratio:.3g}")
        if report.like_for_like is not None:
            console.print("These ratios price the ANN's arithmetic alone: for loihi (whose "
                          "synaptic op includes the synapse read) they are not like for like; "
                          "see the like-for-like comparison below.")
    render_chip_section(report, console)

    sops = report.sops_convention
    console.print(f"SOPs convention ({sops['definition']}): {format_count(sops['sops'])} SOPs + "
                  f"{format_count(sops['graded_macs'])} graded MACs per sample; exact event count "
                  f"(ours): {format_count(sops['ours']['synops'])} SynOps + "
                  f"{format_count(sops['ours']['graded_macs'])} graded MACs.")
    if not notes:
        return
    for note in sops["notes"][1:]:
        console.print(f"  {plain(note)}")
    console.print("\nNotes:", style="bold")
    for note in report.notes:
        console.print(f"- {plain(note)}")
    console.print("\nCaveats:", style="bold")
    for caveat in report.caveats["general"]:
        console.print(f"- {plain(caveat)}")
    for name in profiles:
        profile = report.profiles[name]
        console.print(f"{name}: {plain(profile['source'])}", style="italic")
        for caveat in report.caveats[name]:
            console.print(f"- {plain(caveat)}")


def render_chip_section(report: EnergyReport, console: Console) -> None:
    """The network on the chip (the same mapping as ``sakd map``) and the SNN/ANN ratios with
    the ANN priced like for like; nothing when the report has no such section."""
    from sakd.render.map import (
        LIKE_FOR_LIKE_LEGEND,
        chip_lines,
        headline_line,
        like_for_like_table,
        wrap,
    )

    if report.chip is not None:
        console.print("on the chip (the mapping of `sakd map`; estimates):", style="bold")
        if "error" in report.chip:
            console.print(plain(wrap(f"not mapped: {report.chip['error']}")))
        else:
            for line in chip_lines(report.chip):
                console.print(plain(line))
    if report.like_for_like is not None:
        console.print(like_for_like_table(report.like_for_like))
        console.print(plain(wrap(LIKE_FOR_LIKE_LEGEND, indent="")))
        console.print(plain(wrap(headline_line(report.like_for_like))), style="bold")


def plot_energy(report: EnergyReport, path: str | os.PathLike[str]) -> None:
    """A PNG bar chart, written atomically: spikes per population (top panel), then one panel per
    profile with the energy per layer of the SNN against the matched ANN layer (log scale)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = report.layers
    profiles = list(report.profiles)
    ann = report.ann
    unmatched = report.ann_layer_match["unmatched_ann_layers"] if ann else []
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
    axes[0].set_title(f"{report.network}, T = {report.time_steps}: spikes per population "
                      f"(mean of {report.samples} samples)", loc="left", fontsize=10)

    bar = 0.4
    for axis, name in zip(axes[1:], profiles):
        snn = [row["energy_pj"][name] for row in rows] + [0.0] * len(unmatched)
        axis.bar([i - bar / 2 for i in x], snn, bar, color="#dd8452",
                 label=f"SNN ({format_energy(report.totals['energy_pj'][name])} total)")
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
        lower = " (lower bound: some terms not priced)" if report.totals["not_counted"][name] \
            else ""
        axis.set_title(f"energy per layer, profile {name}{lower}", loc="left", fontsize=10)
        axis.set_ylabel("pJ / sample")
        axis.legend(fontsize=8, loc="upper right")
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


