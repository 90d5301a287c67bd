"""``sakd export --model``: where the module came from, how it was called and checked, then the
export report as for a checkpoint (``render_export``)."""

from __future__ import annotations

from rich.console import Console

from sakd.app.export import ExportResult
from sakd.render.console import plain
from sakd.render.export import render_export


def render_own_export(result: ExportResult, console: Console) -> None:
    source = result.report.metadata.get("source") or {}
    check = source.get("trace_check") or {}
    weights = f", weights {plain(source['weights'])}" if source.get("weights") else ""
    model, cls = str(source.get("model", "?")), str(source.get("class", "?"))
    shown = f"{cls} (a Python object)" if model.startswith("python: ") else f"{model} ({cls})"
    console.print(f"model: {plain(shown)}{weights}")
    console.print(f"called as {plain(source.get('convention', '?'))}")
    if check:
        console.print(f"traced graph = module on {check['samples']} inputs: max |logit "
                      f"difference| {check['max_abs_diff']:.2g} (spike rate "
                      f"{check['spike_rate']:.3f})")
    if source.get("spike_count_readout"):
        console.print("the module ends in a spiking layer: its spike counts are the logits "
                      "(an identity projection into the readout)")
    render_export(result.report, console)
