"""``sakd map`` on the terminal (80 columns) and as a picture of the placement: every chip in
use as its grid of cores, each core coloured by its population and shaded by its utilization
(the largest fraction of any resource it uses)."""

from __future__ import annotations

import os
import textwrap
from typing import Any

from rich.console import Console
from rich.table import Table

from sakd.app.map import MapResult
from sakd.hardware.atomic import atomic_path
from sakd.hardware.mapping import Mapping
from sakd.render.console import WIDTH, plain
from sakd.render.energy import format_energy

RESOURCE_LABELS = {"neurons": "neurons", "neuron_memory_bits": "neuron memory",
                   "synapse_memory_bits": "synapse memory", "core_memory_bits": "core memory",
                   "input_axons": "input axons", "output_axons": "output axons"}


def format_seconds(seconds: float | None) -> str:
    """A duration in s as text with a readable unit (ns .. s)."""
    if seconds is None:
        return "—"
    for size, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(seconds) >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_rate(per_s: float | None) -> str:
    """Inferences per second with a k/M suffix."""
    if per_s is None:
        return "—"
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(per_s) >= size:
            return f"{per_s / size:.3g}{suffix}/s"
    return f"{per_s:.3g}/s"


def format_ratio(value: float | None, lower_bound: bool = False) -> str:
    if value is None:
        return "—"
    return ("≥ " if lower_bound else "") + f"{value:.3g}"


def wrap(text: str, width: int = WIDTH, indent: str = "  ", first: str = "") -> str:
    """``text`` broken at spaces into lines of at most ``width`` columns (continuations
    indented by ``indent``), so that a summary fits an 80-column terminal."""
    return textwrap.fill(text, width=width, initial_indent=first, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def chip_lines(summary: dict[str, Any], width: int = WIDTH) -> list[str]:
    """The chip section's headline lines (shared with the energy report and the pipeline):
    fit, time, energy, each wrapped to ``width`` columns. ``summary``:
    ``ChipEstimate.summary()``."""
    return [wrap(line, width) for line in _chip_lines(summary)]


def _chip_lines(summary: dict[str, Any]) -> list[str]:
    lines = [f"fits: {summary['cores']:,} core(s) on {summary['chips']} {summary['chip']} "
             f"chip(s) of {summary['cores_per_chip']} cores (system {summary['system']}, "
             f"{summary['system_chips']} chip(s))"]
    t, e = summary.get("time"), summary.get("energy")
    if t is not None:
        steps = summary["time_steps"]
        lines.append(f"time per step {format_seconds(t['step_ns'] * 1e-9)} (an estimate); "
                     f"bottleneck: {t['bottleneck']}")
        lines.append(f"latency {format_seconds(t['latency_s'])} per inference (T + L = "
                     f"{steps} + {t['latency_steps']} steps); throughput "
                     f"{format_rate(t['throughput_pipelined_per_s'])} pipelined, "
                     f"{format_rate(t['throughput_unpipelined_per_s'])} one at a time")
    if e is not None:
        static = ("not counted (no static-power figure)" if e["static_pj"] is None else
                  f"{format_energy(e['static_pj'])} ({e['static_power_w']:.3g} W x "
                  f"{e['chips']} chip(s) x {format_seconds(e['run_time_s'])})")
        lines.append(f"energy per inference: dynamic {format_energy(e['dynamic_pj'])} "
                     f"(operations {format_energy(e['operations_pj'])}, routing "
                     f"{format_energy(e['routing_pj'])}), static {static}")
    return lines


def like_for_like_table(like: dict[str, Any]) -> Table:
    """The SNN/ANN ratios, one per labelled pair; the headline pair first."""
    table = Table(title="SNN / ANN per inference (* headline, like for like; ≠ not like for "
                        "like)", title_justify="left", box=None, pad_edge=False)
    table.add_column("comparison", overflow="fold")
    for column in ("SNN", "ANN", "SNN/ANN"):
        table.add_column(column, justify="right", overflow="fold", no_wrap=True)
    for row in like["ratios"]:
        mark = "* " if row["headline"] else ("  " if row["like_for_like"] else "≠ ")
        table.add_row(mark + plain(row["short"]), format_energy(row["snn_pj"]),
                      format_energy(row["ann_pj"]), format_ratio(row["ratio"], row["lower_bound"]))
    return table


LIKE_FOR_LIKE_LEGEND = (
    "ANN: the network's ANN twin, 8-bit MACs (Horowitz, 45 nm) + SRAM/DRAM access (no reuse: "
    "every MAC reads its weight and input, an upper bound; full reuse: every value read once, "
    "a lower bound). Loihi's synaptic op includes its synapse read, so the headline prices the "
    "ANN's memory too; ≥: the SNN side lacks terms its profile cannot price (graded-input "
    "MACs). Static energy is kept apart. Full labels: the report's like_for_like.ratios.")


def headline_line(like: dict[str, Any]) -> str:
    head = like["headline"]
    low, high = (format_ratio(head[k], head["lower_bound"])
                 for k in ("ratio_ann_no_reuse", "ratio_ann_full_reuse"))
    return f"headline SNN/ANN (like for like): {low} (ANN, no reuse) .. {high} (ANN, full reuse)"


def render_map(result: MapResult, console: Console, *, notes: bool = True) -> None:
    """Fit per population, hops per projection, time, energy and the ANN comparison; then the
    notes and caveats."""
    report = result.report
    net = report.network
    console.print(plain(wrap(f"map: {net['name']} (digest {net['digest'][:12]}) onto "
                             f"{report.chip}, system {report.system}")), style="bold")
    act = report.activity
    if act["source"] == "simulation":
        console.print(f"activity: {act['samples']} {act['split']} sample(s) of {act['data']} "
                      f"simulated, T = {act['time_steps']}")
    else:
        console.print("activity: none simulated (traffic weighted by synapse counts)")
    for line in chip_lines(result.estimate.summary()):
        console.print(plain(line))

    pops = Table(title="populations: tiling, cores, binding resource", title_justify="left",
                 box=None, pad_edge=False)
    for column in ("population", "neurons", "tiling", "cores", "binding", "use"):
        pops.add_column(column, justify="left" if column in ("population", "binding", "tiling")
                        else "right", overflow="fold")
    for name, p in report.populations.items():
        pops.add_row(plain(name), f"{p['neurons']:,}", "x".join(map(str, p["tiling"])),
                     f"{len(p['cores']):,}", RESOURCE_LABELS.get(p["binding_resource"],
                                                                 p["binding_resource"]),
                     f"{100 * p['binding_utilization']:.0f} %")
    console.print(pops)

    projs = Table(title="projections: traffic and hops per message", title_justify="left",
                  box=None, pad_edge=False)
    for column in ("projection", "edges", "msgs/inf.", "mean hops", "max hops", "chip hops"):
        projs.add_column(column, justify="left" if column == "projection" else "right",
                         overflow="fold")
    for name, p in report.projections.items():
        msgs = p["messages_per_sample"]
        inter = p["interchip_message_hops_per_sample"]
        projs.add_row(plain(name), f"{p['edges']:,}", "—" if msgs is None else f"{msgs:,.0f}",
                      f"{p['mean_hops']:.2f}", str(p["max_hops"]),
                      "—" if inter is None else f"{inter:,.0f}")
    console.print(projs)

    if report.like_for_like is not None:
        console.print(like_for_like_table(report.like_for_like))
        console.print(plain(wrap(LIKE_FOR_LIKE_LEGEND, indent="")))
        console.print(plain(wrap(headline_line(report.like_for_like))))
    if not notes:
        return
    console.print("\nNotes:", style="bold")
    for note in [*report.notes, *result.notes]:
        console.print(plain(wrap(note, first="- ")))
    console.print("\nCaveats:", style="bold")
    for caveat in report.caveats:
        console.print(plain(wrap(caveat, first="- ")))


def plot_mapping(mapping: Mapping, path: str | os.PathLike[str], title: str = "") -> None:
    """A PNG of the placement, written atomically: one panel per chip in use (its core grid,
    tiles outlined), each core coloured by the population with the most neurons on it and
    shaded by its utilization (pale: nearly empty; full colour: a resource is used up)."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    chip = mapping.chip
    order = list(mapping.populations)
    # distinct hues for a few populations; a continuous map (in topological order) for many
    cmap = colormaps["tab10" if len(order) <= 10 else "turbo"]
    colours = {name: np.array(cmap(i if len(order) <= 10 else i / max(len(order) - 1, 1))[:3])
               for i, name in enumerate(order)}
    neurons_of = {s.id: (s.population, s.neurons) for s in mapping.slices}
    chips = sorted({c.chip for c in mapping.cores})
    cols = min(len(chips), 4 if len(chips) <= 16 else int(np.ceil(np.sqrt(len(chips)))))
    rows = int(np.ceil(len(chips) / cols))
    panel_w = 0.28 * chip.cores_x + 0.4
    panel_h = 0.28 * chip.cores_y + 0.5
    legend_rows = int(np.ceil(len(order) / 3))
    fig_w = max(6.5, cols * panel_w)
    figure = Figure(figsize=(fig_w, rows * panel_h + 1.1 + 0.2 * legend_rows),
                    layout="constrained")
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(rows, cols, squeeze=False)).ravel()
    for axis, k in zip(axes, chips):
        image = np.full((chip.cores_y, chip.cores_x, 3), 0.93)
        for c in (c for c in mapping.cores if c.chip == k):
            share: dict[str, int] = {}
            for s in c.slices:
                pop, n = neurons_of[s]
                share[pop] = share.get(pop, 0) + n
            top = max(share, key=lambda p: (share[p], -order.index(p)))
            used = max((u for u in c.utilization.values() if u is not None), default=0.0)
            shade = 0.25 + 0.75 * min(max(used, 0.0), 1.0)
            image[c.y, c.x] = 1.0 - shade * (1.0 - colours[top])
        axis.imshow(image, origin="lower", interpolation="nearest",
                    extent=(-0.5, chip.cores_x - 0.5, -0.5, chip.cores_y - 0.5))
        for tx in range(1, chip.mesh_tiles_x):
            axis.axvline(tx * chip.tile_cores_x - 0.5, color="white", linewidth=1.2)
        for ty in range(1, chip.mesh_tiles_y):
            axis.axhline(ty * chip.tile_cores_y - 0.5, color="white", linewidth=1.2)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_title(f"chip {k}", fontsize=8, loc="left")
    for axis in axes[len(chips):]:
        axis.set_axis_off()
    handles = [Patch(color=colours[name], label=name) for name in order]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(3, len(order)),
                  fontsize=7, frameon=False)
    key = textwrap.fill("colour: the population with the most neurons on a core; shade: the "
                        "core's largest utilization of any resource (pale: nearly empty); white "
                        "lines: tiles; grey: unused", width=int(fig_w * 14))
    figure.suptitle((title + ": " if title else "") +
                    f"{mapping.cores_used:,} cores on {mapping.chips_used} {chip.name} chip(s), "
                    f"system {mapping.system.name}\n{key}", fontsize=8)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
