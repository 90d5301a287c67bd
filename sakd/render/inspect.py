"""``sakd inspect`` on the terminal: one line per layer (fits 80 columns), then the totals,
ranges, delays, latency, what the file maps onto, and the metadata."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from sakd.formats import Inspection
from sakd.render.console import plain


def _fmt_range(r: Any) -> str:
    if not r:
        return ""
    lo, hi = r
    return f"{lo:g}" if lo == hi else f"{lo:g}..{hi:g}"


def _fmt_shape(shape: Any) -> str:
    if shape is None:
        return ""
    if isinstance(shape, (list, tuple)):
        return "×".join(str(int(d)) for d in shape) if shape else "()"
    return str(shape)


def render_inspection(summary: Inspection, console: Console) -> None:
    version = f" {summary.version}" if summary.version not in (None, "") else ""
    console.print(f"[bold]{plain(summary.format)}{plain(version)}[/]: {plain(summary.path)}")
    table = Table(box=None, pad_edge=False, show_header=True)
    for col, kw in (("name", {}), ("kind", {}), ("shape", {}), ("weights", {"justify": "right"}),
                    ("neuron / geometry", {}), ("delay", {"justify": "right"})):
        table.add_column(col, overflow="fold", **kw)
    for row in summary.layers:
        delay = row.delay
        delay_text = _fmt_range(delay) if isinstance(delay, list) else ("" if not delay else str(delay))
        neuron = row.neuron
        if row.bias_range:
            neuron = f"{neuron} bias {_fmt_range(row.bias_range)}".strip()
        if row.notes:
            neuron = f"{neuron}; {row.notes}" if neuron else row.notes
        table.add_row(plain(row.name), plain(row.kind), _fmt_shape(row.shape),
                      _fmt_range(row.weight_range), plain(neuron), delay_text)
    console.print(table)
    if summary.input:
        console.print("input: " + ", ".join(f"{k} {_fmt_shape(v) if k == 'shape' else plain(v)}"
                                            for k, v in summary.input.items()))
    console.print("totals: " + ", ".join(f"{k} {v}" for k, v in summary.totals.items()))
    if summary.ranges:
        console.print("ranges: " + ", ".join(f"{k} [{_fmt_range(v)}]"
                                             for k, v in summary.ranges.items() if v))
    if summary.target:
        console.print(f"target: {plain(summary.target)}")
    if summary.latency is not None:
        console.print(f"latency: {summary.latency} steps")
    if summary.delays:
        console.print("delays: " + ", ".join(f"{plain(k)} {v}" for k, v in summary.delays.items()))
    ir = summary.ir
    if ir is not None:
        console.print("as IR: " + (f"not representable: {plain(ir.error)}" if ir.error else
                                   f"{ir.populations} populations, {ir.projections} projections, "
                                   f"latency {ir.latency}"))
    meta = {k: v for k, v in summary.metadata.items()
            if not isinstance(v, (dict, list)) or k == "classes"}
    if meta:
        text = ", ".join(f"{k}={str(v)[:40]}" + ("…" if len(str(v)) > 40 else "")
                         for k, v in meta.items())
        console.print(f"metadata: {plain(text[:300])}" + ("…" if len(text) > 300 else ""))
    for note in summary.notes:
        console.print(f"note: {plain(note)}")
