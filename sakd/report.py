"""Terminal tables for the export and simulation reports (rich)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table


def print_export_report(report: Mapping[str, Any], console: Console) -> None:
    """Per-population quantization table, files written, and the calibration if run."""
    table = Table(title=f"export to {report['target']}: latency {report['latency']} steps, input "
                        f"{report['input']['bits']}-bit graded (scale {report['input']['scale']:.3g})")
    for column in ("population", "kind", "S", "limit", "vth", "dv", "b.exp", "max|W|", "clipped",
                   "W err", "worst|a|"):
        table.add_column(column, justify="left" if column in ("population", "kind", "limit") else "right",
                         no_wrap=column in ("population", "kind", "limit"))
    for row in report["populations"]:
        table.add_row(row["name"], row["kind"], str(row["scale"]), row["scale_limited_by"],
                      str(row["vth"]), str(row["dv"]), str(row["bias_exp"]), str(row["weight_max_used"]),
                      str(row["weights_clipped"]) + (f"+{row['biases_clipped']}b" if row["biases_clipped"] else ""),
                      f"{row['weight_rms_error']:.0e}",
                      f"{row['worst_case_input']}" + (" !" if row["worst_case_input"] > row["input_limit"] else ""))
    console.print(table)
    if any(row["worst_case_input"] > row["input_limit"] for row in report["populations"]):
        console.print(f"! worst |a|: the synaptic sum can exceed {report['populations'][0]['input_limit']} "
                      "(u wraps) if every input of one neuron spikes at once; the simulator "
                      "reproduces the wrap exactly, so the calibration shows whether it happens")
    if report.get("delays"):
        console.print("delays (latency balancing): " + ", ".join(f"{k}: {v}" for k, v in report["delays"].items()))
    for fmt, path in report["files"].items():
        console.print(f"wrote {fmt:<5} {path}")
    for fmt, reason in report.get("skipped", {}).items():
        console.print(f"[yellow]not written: {fmt}[/]: {reason}")
    for fmt, lines in report.get("notes", {}).items():
        for line in lines:
            console.print(f"[yellow]note ({fmt})[/]: {line}")
    calibration = report.get("calibration")
    if calibration:
        cal = Table(title=f"calibration on {calibration['samples']} {calibration['split']} samples: "
                          f"float SNN {calibration['float_accuracy']:.2f} %, integer network "
                          f"{calibration['chip_accuracy']:.2f} %, {calibration['predictions_changed']} "
                          "predictions changed")
        for column in ("population", "float rate", "chip rate", "spike mismatch"):
            cal.add_column(column, justify="left" if column == "population" else "right")
        for name, row in calibration["layers"].items():
            cal.add_row(name, f"{row['float_rate']:.4f}", f"{row['chip_rate']:.4f}", f"{row['spike_mismatch']:.2e}")
        console.print(cal)


def print_simulate_report(report: Mapping[str, Any], console: Console) -> None:
    agreement = report.get("float_agreement")
    title = (f"bit-accurate simulation: {report['samples']} samples, T={report['time_steps']}, "
             f"latency {report['latency']}: on-chip accuracy {report['on_chip_accuracy']:.2f} %")
    if agreement:
        title += (f"; float SNN {agreement['float_accuracy']:.2f} %, predictions agree "
                  f"{agreement['prediction_agreement']:.2f} %")
    table = Table(title=title)
    for column in ("layer", "neurons / synapses", "spikes", "firing rate", "SynOps", "spike mismatch"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    mismatch = (agreement or {}).get("spike_mismatch", {})
    for name, row in report["layers"].items():
        if "neurons" in row:
            table.add_row(name, str(row["neurons"]), f"{row['spikes']:.1f}", f"{row['firing_rate']:.4f}",
                          "", f"{mismatch[name]:.2e}" if name in mismatch else "")
        else:
            table.add_row(f"  {name}", str(row["synapses"]), "", "", f"{row['synops']:.0f}", "")
    console.print(table)
    t = report["throughput"]
    console.print(f"throughput ({t['backend']}): {t['samples_per_s']:.1f} samples/s, "
                  f"{t['synops_per_s']:.3g} SynOps/s ({t['seconds']:.2f} s)")
