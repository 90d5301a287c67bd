"""``sakd pipeline`` (what ``make demo`` runs): ANN teacher -> SAKD student -> evaluation ->
export (every format) -> bit-accurate simulation of the test split -> energy (with the network
mapped onto its chip as ``sakd map`` maps it: cores, chips, latency, throughput, dynamic and
static energy, and the SNN/ANN ratio like for like), each stage's options checked before the
first epoch; ``summary.json`` and one summary table."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sakd.app.common import JobError, check_output_dir
from sakd.app.energy import build_energy_report, validate_profiles
from sakd.app.export import ExportOptions, export_checkpoint
from sakd.app.export import validate_options as validate_export
from sakd.app.simulate import float_agreement, make_report, run_split
from sakd.config import Config, with_teacher
from sakd.hardware.atomic import atomic_write_json

#: progress(stage number, stage count, title)
StageHook = Callable[[int, int, str], Any]
STAGES = 6


@dataclass(frozen=True)
class PipelineOptions:
    config: Config
    out_dir: Path
    resume: bool = False
    device: str = "auto"
    progress: bool = True


@dataclass
class PipelineResult:
    """``summary.json``: every stage's headline figures (per sample; accuracies in %)."""

    config: str
    data: str
    arch: str
    time_steps: int
    teacher: dict[str, Any]
    student: dict[str, Any]
    checkpoints: dict[str, str]
    export: dict[str, Any] = field(default_factory=dict)
    on_chip: dict[str, Any] = field(default_factory=dict)
    energy: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)  # the stage reports (typed)
    chart_path: Path | None = None  # where the energy chart goes (sakd.render.energy draws it)
    #: detection / segmentation: teacher and student hold mAP or mIoU (in [0, 1]) instead of
    #: accuracy, and on_chip the on-chip and float-SNN figures on the same images
    task: str = "classification"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("reports")
        data.pop("chart_path")
        return data


def validate_options(options: PipelineOptions) -> None:
    """Everything a later stage would refuse, refused now (target, input bits, formats, energy
    profiles, output folders, resume)."""
    config, out = options.config, Path(options.out_dir)
    check_output_dir(out)
    if config.teacher.train.epochs < 1 or config.student.train.epochs < 1:
        raise JobError("teacher.train.epochs and student.train.epochs must be >= 1 in a pipeline")
    if options.resume and not (out / "teacher" / "last.pt").exists():
        raise JobError(f"--resume: {out} holds no pipeline run to continue (no teacher/last.pt); "
                       f"drop --resume to start one")
    validate_export(ExportOptions(checkpoint=out / "student" / "best.pt", out_dir=out / "export",
                                  target=config.export.target, input_bits=config.export.input_bits))
    validate_profiles(tuple(config.energy.profiles))


def run_pipeline(options: PipelineOptions, stage: StageHook | None = None,
                 export_progress: Callable[[str], Any] | None = None,
                 simulate_progress: Callable[[int, int], Any] | None = None) -> PipelineResult:
    """Run every stage into ``out_dir/<stage>``; returns (and writes) ``summary.json``."""
    from sakd.app.energy import ann_macs_for
    from sakd.app.train import prepare_qat
    from sakd.train.dense import evaluator
    from sakd.train.distributed import init_distributed
    from sakd.train.jobs import distill_student, load_data, load_network, train_teacher

    validate_options(options)
    config, out = options.config, Path(options.out_dir)
    say = stage or (lambda *_: None)
    env = init_distributed(options.device)
    splits = load_data(config)

    say(1, STAGES, "teacher (ANN)")
    train_teacher(config, out / "teacher", env,
                  resume=options.resume and (out / "teacher" / "last.pt").exists(),
                  progress=options.progress, splits=splits)
    teacher_ckpt = out / "teacher" / "best.pt"

    say(2, STAGES, f"SAKD student (SNN, T={config.student.time_steps}, kd={config.distill.kd})")
    distill_student(with_teacher(config, teacher_ckpt), out / "student", env,
                    resume=options.resume and (out / "student" / "last.pt").exists(),
                    progress=options.progress, splits=splits, prepare_qat=prepare_qat)
    student_ckpt = out / "student" / "best.pt"

    say(3, STAGES, "evaluation on the test split")
    teacher, _ = load_network(teacher_ckpt)
    student, _ = load_network(student_ckpt)
    kwargs = dict(batch_size=config.data.eval_batch_size, workers=config.data.workers)
    evaluate = evaluator(config.task, splits.info.class_names)
    dense = config.task != "classification"
    result = PipelineResult(
        config=config.name, data=splits.info.name, arch=config.model.arch,
        time_steps=config.student.time_steps,
        teacher=evaluate(teacher.to(env.device), splits.test, env, **kwargs),
        student=evaluate(student.to(env.device), splits.test, env, firing_rates=True, **kwargs),
        checkpoints={"teacher": str(teacher_ckpt), "student": str(student_ckpt)},
        task=config.task)
    if not env.is_main:
        return result

    say(4, STAGES, "export (fold BN, quantize, lower; every format)")
    exported = export_checkpoint(ExportOptions(
        checkpoint=student_ckpt, out_dir=out / "export", target=config.export.target,
        input_bits=config.export.input_bits), progress=export_progress)
    network = exported.network

    say(5, STAGES, "bit-accurate simulation of the test split")
    # a dense network's figures come from its readouts (no spike traces: they would hold every
    # neuron of every step of every test image)
    record = [] if dense else [p.name for p in network.populations if not p.is_readout]
    run = run_split(network, splits.info.name, split="test", record=record,
                    progress=simulate_progress)
    if dense:
        from sakd.app.dense import dense_report

        agreement, sim = None, dense_report(network, run, splits.info.name)
    else:
        agreement, why = float_agreement(run, exported.lowering.float_graph)
        sim = make_report(run, agreement, [why] if why else [])
    atomic_write_json(out / "export" / "simulate_report.json", sim.to_dict())

    say(6, STAGES, "energy per inference")
    macs, no_ann = ann_macs_for(network)
    energy = build_energy_report(run.result.counts, macs, tuple(config.energy.profiles),
                                 network_name=config.model.arch, time_steps=run.time_steps,
                                 network_digest=network.digest(), network=network)
    if no_ann:
        energy.notes.insert(0, f"No ANN comparison: {no_ann}.")
    atomic_write_json(out / "export" / "energy_report.json", energy.to_dict())

    result.export = {"files": exported.files, "skipped": exported.report.skipped,
                     "notes": exported.report.notes, "latency": network.latency}
    result.on_chip = {"accuracy": sim.on_chip_accuracy, "samples": sim.samples,
                      "prediction_agreement": agreement.prediction_agreement if agreement else None,
                      "samples_per_s": sim.throughput.samples_per_s}
    if dense:
        result.on_chip.update(figures=sim.dense["on_chip"], float_snn=sim.dense["float_snn"],
                              host=sim.dense["host"])
    like = energy.like_for_like
    result.energy = {"totals": energy.totals, "ann": energy.ann, "ratios": energy.ratios,
                     "chip": energy.chip,
                     "like_for_like": None if like is None else {
                         "headline": like["headline"],
                         "ratios": {r["key"]: {"ratio": r["ratio"], "label": r["label"],
                                               "like_for_like": r["like_for_like"],
                                               "lower_bound": r["lower_bound"]}
                                    for r in like["ratios"]}}}
    result.reports = {"export": exported.report, "simulate": sim, "energy": energy}
    result.chart_path = out / "export" / "energy.png"
    atomic_write_json(out / "summary.json", result.to_dict())
    return result
