"""The simulation report on the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sakd.app.simulate import SimulateReport
from sakd.render.console import plain


def render_simulate(report: SimulateReport, console: Console) -> None:
    agreement = report.float_agreement
    run = report.run or {}
    if run.get("schedule") == "free":
        reset = run.get("reset_interval")
        schedule = (f"{report.time_steps} steps, free-running, "
                    + (f"reset every {reset} steps (offset {run.get('reset_offset', 0)})"
                       if reset else "no reset"))
    else:
        schedule = f"T = {report.time_steps}, latency {report.latency} steps"
    source = f" of {plain(report.source)}" if report.source else ""
    console.print(f"bit-accurate simulation: {report.samples} samples{source}; {schedule}")
    for item in report.assumptions:
        console.print(f"  assumed: {plain(item)}")
    if report.on_chip_accuracy is not None:
        console.print(f"  on-chip accuracy {report.on_chip_accuracy:.2f} %")
    if agreement:
        console.print(f"  float SNN accuracy {agreement.float_accuracy:.2f} %; predictions agree "
                      f"{agreement.prediction_agreement:.2f} % (agreement, not accuracy)")
    table = Table(title="per layer, mean per sample", title_justify="left", box=None,
                  pad_edge=False)
    for column in ("layer", "neurons/synapses", "spikes", "rate", "SynOps", "mismatch"):
        table.add_column(column, justify="left" if column == "layer" else "right",
                         overflow="fold")
    mismatch = agreement.spike_mismatch if agreement else {}
    for name, row in report.layers.items():
        if "neurons" in row:
            table.add_row(plain(name), str(row["neurons"]), f"{row['spikes']:.1f}",
                          f"{row['firing_rate']:.4f}", "",
                          f"{mismatch[name]:.2e}" if name in mismatch else "")
        else:
            table.add_row(f"  {plain(name)}", str(row["synapses"]), "", "", f"{row['synops']:.0f}", "")
    console.print(table)
    if mismatch:
        console.print("mismatch: fraction of (neuron, step) spikes that differ from the float SNN")
    t = report.throughput
    console.print(f"throughput ({t.backend}): {t.samples_per_s:.1f} samples/s, "
                  f"{t.synops_per_s:.3g} SynOps/s ({t.seconds:.2f} s)")
    for note in report.notes:
        console.print(f"note: {plain(note)}")
    if report.traces:
        console.print(f"traces: {plain(report.traces)}")
