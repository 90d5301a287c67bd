"""The main job: ANN teacher -> SAKD student -> evaluation (export and on-chip simulation are
added by their stages), ending with one summary table."""

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

    _stage("1/3 teacher (ANN)", env)
    train_teacher(config, out / "teacher", env, resume=resume and (out / "teacher" / "last.pt").exists(),
                  progress=progress, splits=splits)
    teacher_ckpt = out / "teacher" / "best.pt"

    _stage(f"2/3 SAKD student (SNN, T={config.student.time_steps}, kd={config.distill.kd})", env)
    student_config = with_teacher(config, teacher_ckpt)
    distill_student(student_config, out / "student", env,
                    resume=resume and (out / "student" / "last.pt").exists(),
                    progress=progress, splits=splits)

    _stage("3/3 evaluation on the test split", env)
    teacher, _ = load_network(teacher_ckpt)
    student, _ = load_network(out / "student" / "best.pt")
    kwargs = dict(batch_size=config.data.eval_batch_size, workers=config.data.workers)
    summary["teacher"] = evaluate(teacher.to(env.device), splits.test, env, **kwargs)
    summary["student"] = evaluate(student.to(env.device), splits.test, env, firing_rates=True,
                                  **kwargs)
    summary["checkpoints"] = {"teacher": str(teacher_ckpt), "student": str(out / "student" / "best.pt")}
    if env.is_main:
        atomic_write_json(out / "summary.json", summary)
        print_summary(summary)
    return summary


def _stage(title: str, env: DistEnv) -> None:
    if env.is_main:
        from rich.console import Console

        Console(stderr=True).rule(f"[bold]{title}")


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sakd pipeline: {summary['arch']} on {summary['data']} "
                        f"(T={summary['time_steps']})")
    table.add_column("network")
    table.add_column("test accuracy", justify="right")
    table.add_column("mean firing rate", justify="right")
    table.add_row("ANN teacher", f"{summary['teacher']['acc']:.2f} %", "-")
    rates = summary["student"].get("firing_rates", {})
    mean_rate = sum(rates.values()) / len(rates) if rates else float("nan")
    table.add_row("SAKD student (float SNN)", f"{summary['student']['acc']:.2f} %", f"{mean_rate:.3f}")
    Console().print(table)
