"""The pipeline's closing summary: one table of ANN, float SNN and on-chip accuracy, operations
and energy per inference; then the network on the chip (cores, chips, latency, throughput,
dynamic and static energy), the like-for-like SNN/ANN ratio and the arithmetic-only ones."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sakd.app.pipeline import PipelineResult
from sakd.render.console import plain
from sakd.render.energy import format_energy
from sakd.render.map import chip_lines, headline_line, wrap


def _energies(values: dict[str, float], priced_with: dict[str, str] | None = None) -> str:
    parts = []
    for name, value in values.items():
        via = (priced_with or {}).get(name)
        parts.append(f"{format_energy(value)} ({name}" + (f" via {via})" if via and via != name else ")"))
    return "\n".join(parts)


def _score(summary: PipelineResult, figures: dict | None) -> str:
    """A row's headline figure: accuracy (%), or a dense task's mAP / mIoU (in [0, 1])."""
    if not figures:
        return "-"
    if summary.task == "detection":
        return f"mAP {figures['map']:.4f}\nmAP@.5 {figures['map_50']:.4f}"
    if summary.task == "segmentation":
        return f"mIoU {figures['miou']:.4f}"
    return f"{figures['acc']:.2f} %"


def render_summary(summary: PipelineResult, console: Console) -> None:
    table = Table(title=f"sakd pipeline: {summary.arch} on {summary.data} (T={summary.time_steps}), "
                        f"test split", title_justify="left")
    score = "accuracy" if summary.task == "classification" else summary.task
    for column in ("network", score, "ops / inference", "energy / inference"):
        table.add_column(column, justify="left" if column == "network" else "right",
                         overflow="fold")
    energy = summary.energy or {}
    ann, totals = energy.get("ann") or {}, energy.get("totals") or {}
    table.add_row("ANN teacher", _score(summary, summary.teacher),
                  f"{ann['macs']:,} MACs" if ann else "-",
                  _energies(ann.get("energy_pj", {}), ann.get("priced_with", {})) if ann else "-")
    rates = summary.student.get("firing_rates", {})
    mean_rate = sum(rates.values()) / len(rates) if rates else float("nan")
    table.add_row(f"SAKD student, float SNN (mean rate {mean_rate:.3f})",
                  _score(summary, summary.student), "", "")
    chip = summary.on_chip
    if chip:
        ops = (f"{totals['synops']:,.0f} SynOps\n+ {totals['graded_macs']:,.0f} input MACs"
               if totals else "-")
        on_chip = ({"acc": chip["accuracy"]} if summary.task == "classification"
                   else chip.get("figures"))
        table.add_row("on chip, bit-accurate", _score(summary, on_chip), ops,
                      _energies(totals.get("energy_pj", {})))
    console.print(table)
    if (chip or {}).get("host"):
        console.print(f"float SNN on the simulated images: "
                      f"{_score(summary, chip.get('float_snn')).replace(chr(10), ', ')}; "
                      f"{chip['host']}")
    agree = (chip or {}).get("prediction_agreement")
    if agree is not None:
        console.print(f"on chip vs float SNN: predictions agree {agree:.2f} % (an agreement, not "
                      "an accuracy)")
    chip_section = energy.get("chip")
    if chip_section:
        if "error" in chip_section:
            console.print(f"on the chip: not mapped ({plain(chip_section['error'])})")
        else:
            for line in chip_lines(chip_section):
                console.print(plain(line))
    like = energy.get("like_for_like")
    if like:
        console.print(plain(wrap(headline_line(like))), style="bold")
        console.print(plain(wrap(f"({like['headline']['label']})", first="  ")))
    ratios = energy.get("ratios") or {}
    if ratios.get("energy_snn_over_ann"):
        parts = [f"{name}: {'>= ' if ratios['lower_bound'].get(name) else ''}{value:.3g}"
                 for name, value in ratios["energy_snn_over_ann"].items() if value is not None]
        console.print(plain(wrap("energy SNN / ANN per inference, ANN priced for arithmetic "
                                 "alone (not like for like for loihi): " + ", ".join(parts) +
                                 " (details and caveats: export/energy_report.json)")))
