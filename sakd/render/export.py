"""The export report on the terminal: what the quantizer did to every population, the files
written (and not, with the reason), the notes, and the calibration."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sakd.app.export import ExportReport
from sakd.render.console import plain


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", pad_edge=False, box=None)


def render_export(report: ExportReport, console: Console) -> None:
    inp = report.input
    table = _table(f"export to {report.target}: T {report.time_steps}, latency {report.latency} "
                   f"steps, input {inp['bits']}-bit graded (scale {inp['scale']:.3g})")
    for column in ("population", "kind", "S", "limit", "vth", "dv", "exp", "clip", "W err", "|a|"):
        table.add_column(column, justify="left" if column in ("population", "kind", "limit") else "right",
                         overflow="fold")
    over = False
    for row in report.populations:
        worst = row["worst_case_input"] > row["input_limit"]
        over |= worst
        clipped = str(row["weights_clipped"]) + (f"+{row['biases_clipped']}b" if row["biases_clipped"] else "")
        table.add_row(plain(row["name"]), row["kind"], str(row["scale"]), row["scale_limited_by"],
                      str(row["vth"]), str(row["dv"]), str(row["bias_exp"]), clipped,
                      f"{row['weight_rms_error']:.0e}",
                      f"{row['worst_case_input']}" + (" !" if worst else ""))
    console.print(table)
    console.print("S: integer scale (limited by 'limit'); exp: bias exponent; clip: weights "
                  "(+biases) clipped; W err: RMS weight rounding error; |a|: worst-case "
                  "synaptic sum per step")
    if over:
        limit = report.populations[0]["input_limit"]
        console.print(f"! |a|: the synaptic sum can exceed {limit} (u wraps) if every input of "
                      "one neuron spikes at once; the simulator reproduces the wrap exactly, so "
                      "the calibration shows whether it happens")
    if report.delays:
        console.print("delays (latency balancing): " +
                      ", ".join(f"{plain(k)}: {v}" for k, v in report.delays.items()))
    for fmt, path in report.files.items():
        console.print(f"wrote {fmt}: {plain(path)}")
    for fmt, reason in report.skipped.items():
        console.print(f"[yellow]not written: {fmt}[/]: {plain(reason)}")
    for fmt, lines in report.notes.items():
        for line in lines:
            console.print(f"[yellow]note ({fmt})[/]: {plain(line)}")
    cal = report.calibration
    if cal is not None:
        table = _table(f"calibration on {cal.samples} {cal.split} samples: float SNN "
                       f"{cal.float_accuracy:.2f} %, integer network {cal.chip_accuracy:.2f} % "
                       f"(accuracy); {cal.predictions_changed} predictions changed")
        for column in ("population", "float rate", "chip rate", "spike mismatch"):
            table.add_column(column, justify="left" if column == "population" else "right",
                             overflow="fold")
        for name, row in cal.layers.items():
            table.add_row(plain(name), f"{row['float_rate']:.4f}", f"{row['chip_rate']:.4f}",
                          f"{row['spike_mismatch']:.2e}")
        console.print(table)
