"""``sakd formats`` and ``sakd models`` on the terminal, and docs/support.md (generated from
the same rows; a test keeps the file current)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sakd.app.catalog import FormatRow, ModelRow, NeuronModelRow
from sakd.render.console import plain


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render_formats(rows: list[FormatRow], neurons: list[NeuronModelRow], console: Console) -> None:
    """One block per format (the matrix is too wide for 80 columns as a table)."""
    for row in rows:
        console.print(f"[bold]{row.name}[/] — {plain(row.title)} ({plain(row.file_name)}): "
                      f"{plain(row.description)}")
        console.print(f"  reads: {_yes(row.reads)}; writes: {row.writes}; options: "
                      f"{plain(row.read_options)}")
        console.print(f"  neuron models: {plain(row.neuron_models)}; layers: {plain(row.layer_kinds)}")
        console.print(f"  residual fan-in {_yes(row.residual_fan_in)}, recurrence "
                      f"{_yes(row.recurrence)}, graded messages {_yes(row.graded_messages)}, "
                      f"several readouts {_yes(row.multiple_readouts)}")
        console.print(f"  delays: {plain(row.delays)}")
        for note in row.notes:
            console.print(f"  note: {plain(note)}")
    console.print("[bold]neuron models[/]")
    for n in neurons:
        console.print(f"  {n.model} — {plain(n.title)}; state: {n.state}")
        console.print(f"    {plain(n.parameters)}")


def render_models(rows: list[ModelRow], console: Console) -> None:
    table = Table(title="architectures (sakd.models)", title_justify="left", box=None,
                  pad_edge=False)
    for column in ("name", "family", "teacher", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row.name, row.family, row.teacher, plain(row.description))
    console.print(table)


def support_markdown(rows: list[FormatRow], neurons: list[NeuronModelRow]) -> str:
    """docs/support.md: the support matrix, generated (``python -m sakd.cli formats --markdown``)."""
    fields = [("reads", lambda r: _yes(r.reads)), ("writes", lambda r: r.writes),
              ("neuron models", lambda r: r.neuron_models), ("layer kinds", lambda r: r.layer_kinds),
              ("residual fan-in", lambda r: _yes(r.residual_fan_in)),
              ("delays", lambda r: r.delays), ("recurrence", lambda r: _yes(r.recurrence)),
              ("graded messages", lambda r: _yes(r.graded_messages)),
              ("several readouts", lambda r: _yes(r.multiple_readouts)),
              ("read options", lambda r: r.read_options), ("suffixes", lambda r: r.suffixes),
              ("file in an export", lambda r: f"`{r.file_name}`")]
    lines = ["# Support matrix", "",
             "Generated from the format and neuron-model registries (`sakd formats --markdown`);",
             "`tests/test_support_doc.py` keeps this file current. Do not edit by hand.", "",
             "| | " + " | ".join(f"**{r.name}** ({r.title})" for r in rows) + " |",
             "|---|" + "---|" * len(rows)]
    for label, get in fields:
        lines.append(f"| {label} | " + " | ".join(get(r).replace("|", "/") for r in rows) + " |")
    lines += ["", "## Notes", ""]
    for row in rows:
        for note in row.notes:
            lines.append(f"- **{row.name}**: {note}")
    lines += ["", "## Neuron models", "", "| model | what | state | parameters (Loihi 2 ranges) |",
              "|---|---|---|---|"]
    for n in neurons:
        lines.append(f"| `{n.model}` | {n.title} | {n.state} | {n.parameters} |")
    return "\n".join(lines) + "\n"
