"""The main job: ANN teacher -> SAKD student -> export (IR, NIR, netx, ONNX) -> bit-accurate
simulation -> energy, ending with one summary table."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sakd.config import Config
from sakd.io import atomic_write_json
from sakd.train.distributed import DistEnv
from sakd.train.evaluate import evaluate
from sakd.train.jobs import distill_student, load_data, load_network, train_teacher


def with_teacher(config: Config, checkpoint: Path) -> Config:
    teacher = dataclasses.replace(config.teacher, checkpoint=str(checkpoint), weights=None)
    return dataclasses.replace(config, teacher=teacher)


def run_pipeline(config: Config, out_dir: str | Path, env: DistEnv, resume: bool = False,
                 progress: bool = True) -> dict[str, Any]:
    """Run every stage into ``out_dir/<stage>``; returns (and writes) ``summary.json``."""
    out = Path(out_dir)
    splits = load_data(config)
    summary: dict[str, Any] = {"config": config.name, "data": splits.info.name,
                               "arch": config.model.arch, "time_steps": config.student.time_steps}

    _stage("1/6 teacher (ANN)", env)
    train_teacher(config, out / "teacher", env, resume=resume and (out / "teacher" / "last.pt").exists(),
                  progress=progress, splits=splits)
    teacher_ckpt = out / "teacher" / "best.pt"

    _stage(f"2/6 SAKD student (SNN, T={config.student.time_steps}, kd={config.distill.kd})", env)
    student_config = with_teacher(config, teacher_ckpt)
    distill_student(student_config, out / "student", env,
                    resume=resume and (out / "student" / "last.pt").exists(),
                    progress=progress, splits=splits)

    _stage("3/6 evaluation on the test split", env)
    teacher, _ = load_network(teacher_ckpt)
    student, _ = load_network(out / "student" / "best.pt")
    kwargs = dict(batch_size=config.data.eval_batch_size, workers=config.data.workers)
    summary["teacher"] = evaluate(teacher.to(env.device), splits.test, env, **kwargs)
    summary["student"] = evaluate(student.to(env.device), splits.test, env, firing_rates=True,
                                  **kwargs)
    summary["checkpoints"] = {"teacher": str(teacher_ckpt), "student": str(out / "student" / "best.pt")}
    if env.is_main:
        summary.update(_deploy(config, out, splits.info.name, progress))
        atomic_write_json(out / "summary.json", summary)
        print_summary(summary)
    return summary


def _deploy(config: Config, out: Path, data: str, progress: bool) -> dict[str, Any]:
    """Stages 4-6 (main process only): export, simulate the test split, energy report."""
    from rich.console import Console
    from rich.progress import Progress

    from sakd.deploy import (
        ann_macs_for,
        export_checkpoint,
        float_agreement,
        simulate_dataset,
        simulate_report,
    )
    from sakd.energy_report import (
        build_energy_report,
        plot_energy,
        print_energy_table,
        write_energy_report,
    )
    from sakd.report import print_export_report, print_simulate_report

    console = Console()
    console.rule("[bold]4/6 export (fold BN, quantize, lower; IR, NIR, netx, ONNX)")
    exported = export_checkpoint(out / "student" / "best.pt", out / "export", formats="auto",
                                 target=config.export.target, input_bits=config.export.input_bits)
    print_export_report(exported.report, console)
    network = exported.lowering.network

    console.rule("[bold]5/6 bit-accurate simulation of the test split")
    record = [p.name for p in network.populations if not p.is_readout]
    with Progress(transient=True, console=console, disable=not progress) as bar:
        task = bar.add_task("simulating the test split", total=None)
        run = simulate_dataset(network, data, split="test", record=record,
                               progress=lambda done, total: bar.update(task, completed=done, total=total))
    agreement = float_agreement(network, run, exported.lowering.float_graph)
    sim = simulate_report(network, run, agreement, out / "export" / "simulate_report.json")
    print_simulate_report(sim, console)

    console.rule("[bold]6/6 energy per inference")
    energy = build_energy_report(run["result"].counts, ann_macs_for(network),
                                 ["loihi", "cmos45-fp32"], network_name=config.model.arch,
                                 time_steps=run["time_steps"])
    write_energy_report(energy, out / "export" / "energy_report.json")
    plot_energy(energy, out / "export" / "energy.png")
    print_energy_table(energy, console)
    return {"export": {"files": exported.files, "skipped": exported.skipped,
                       "notes": exported.report["notes"],
                       "latency": network.latency},
            "on_chip": {"accuracy": sim["on_chip_accuracy"], "samples": sim["samples"],
                        "prediction_agreement": (agreement or {}).get("prediction_agreement"),
                        "samples_per_s": sim["throughput"]["samples_per_s"]},
            "energy": {"totals": energy.get("totals"), "ann": energy.get("ann"),
                       "ratios": energy.get("ratios")}}


def _stage(title: str, env: DistEnv) -> None:
    if env.is_main:
        from rich.console import Console

        Console(stderr=True).rule(f"[bold]{title}")


def print_summary(summary: dict[str, Any]) -> None:
    """One table: ANN, float SNN and on-chip accuracy; spikes, SynOps and energy per inference
    against the ANN's MACs and energy."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sakd pipeline: {summary['arch']} on {summary['data']} "
                        f"(T={summary['time_steps']}), test split")
    for column in ("network", "accuracy", "ops / inference", "energy / inference"):
        table.add_column(column, justify="left" if column == "network" else "right")
    energy = summary.get("energy") or {}
    ann, totals = energy.get("ann") or {}, energy.get("totals") or {}
    table.add_row("ANN teacher", f"{summary['teacher']['acc']:.2f} %",
                  f"{ann['macs']:,} MACs" if ann else "-",
                  _energies(ann.get("energy_pj", {}), ann.get("priced_with", {})) if ann else "-")
    rates = summary["student"].get("firing_rates", {})
    mean_rate = sum(rates.values()) / len(rates) if rates else float("nan")
    table.add_row(f"SAKD student, float SNN (mean firing rate {mean_rate:.3f})",
                  f"{summary['student']['acc']:.2f} %", "", "")
    chip = summary.get("on_chip")
    if chip:
        agree = chip.get("prediction_agreement")
        ops = (f"{totals['synops']:,.0f} SynOps + {totals['graded_macs']:,.0f} input MACs"
               if totals else "-")
        table.add_row(f"on chip, bit-accurate (agrees with float {agree:.2f} %)" if agree is not None
                      else "on chip, bit-accurate", f"{chip['accuracy']:.2f} %", ops,
                      _energies(totals.get("energy_pj", {})))
    Console().print(table)
    ratios = energy.get("ratios") or {}
    if ratios.get("energy_snn_over_ann"):
        parts = [f"{name}: {'>= ' if ratios['lower_bound'].get(name) else ''}{value:.3g}"
                 for name, value in ratios["energy_snn_over_ann"].items() if value is not None]
        Console().print("energy SNN / ANN per inference: " + ", ".join(parts) +
                        " (details and caveats: export/energy_report.json)")


def _energies(values: dict[str, float], priced_with: dict[str, str] | None = None) -> str:
    from sakd.energy_report import format_energy

    parts = []
    for name, value in values.items():
        via = (priced_with or {}).get(name)
        parts.append(f"{format_energy(value)} ({name}" + (f" via {via})" if via and via != name else ")"))
    return "\n".join(parts)
