"""Detection / segmentation benchmark on the generated digit scenes, through the same jobs as
the CLI: the ANN teacher (``sakd teacher``), the SNN from scratch (``sakd distill`` with
kd=none, student.init=scratch) and SAKD (level 1 + 2, ``sakd distill``), with the same epochs,
T and seed; each SNN exported (``sakd export``) and its test split simulated bit-accurately
(``sakd simulate``): mAP@.5 and mAP@[.5:.95] (detection) or mIoU (segmentation), float and on
chip, spikes, SynOps and energy per inference (``sakd energy``'s report builder). Saves
benchmarks/results/dense_sakd_<task>.json (``benchmarks/make_results.py`` renders it).

    .venv/bin/python benchmarks/dense_sakd.py --task detection [--teacher-epochs 8] \
        [--student-epochs 3] [--train-scenes 1500] [--test-scenes 200] [--threads 2]

``--reuse`` keeps the work folder and reuses every checkpoint already trained there (with its
recorded training time), so that a change to the export, the simulator or the energy model is
measured on the same networks; ``--train-only`` stops after training (no export, no results).

Figures are the test split's after the last epoch (``last.pt``; no validation split, so no
selection on the test split). The base config is configs/digit_scenes_<task>.yaml; ``--set``
overrides any key of it.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from sakd.app.dense import dense_report
from sakd.app.energy import ann_macs_for, build_energy_report
from sakd.app.export import ExportOptions, export_checkpoint
from sakd.app.simulate import run_split
from sakd.config import load_config, with_teacher
from sakd.io import atomic_write_json
from sakd.train.dense import dense_data, evaluator
from sakd.train.distributed import DistEnv
from sakd.train.jobs import distill_student, load_network, train_teacher

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PROFILES = ("loihi", "cmos45-fp32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("detection", "segmentation"), default="detection")
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--student-epochs", type=int, default=3)
    parser.add_argument("--train-scenes", type=int, default=1500)
    parser.add_argument("--test-scenes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="a config override key=value (repeatable)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_dense")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the checkpoints already trained in --work (same settings)")
    parser.add_argument("--train-only", action="store_true",
                        help="train (or reuse) the three networks, then stop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = ROOT / "configs" / f"digit_scenes_{args.task}.yaml"
    overrides = [f"teacher.train.epochs={args.teacher_epochs}",
                 f"student.train.epochs={args.student_epochs}",
                 f"data.train_scenes={args.train_scenes}", f"data.test_scenes={args.test_scenes}",
                 "data.val_fraction=0.0", *args.overrides]
    config = load_config(base, overrides)
    work = args.work / args.task
    if work.exists() and not args.reuse:
        shutil.rmtree(work)
    env = DistEnv()
    splits = dense_data(config)
    evaluate = evaluator(config.task, splits.info.class_names)
    rows: dict[str, Any] = {}

    seconds = _trained(work / "teacher", overrides, args.reuse,
                       lambda: train_teacher(config, work / "teacher", env, progress=False,
                                             splits=splits))
    teacher_ckpt = work / "teacher" / "last.pt"
    if not args.train_only:
        rows["ann_teacher"] = _float_row(teacher_ckpt, splits, evaluate, env, seconds,
                                         config.teacher.train.epochs)

    students = {
        "snn_scratch": [*overrides, "distill.kd=none", "student.init=scratch"],
        "snn_sakd": [*overrides],
    }
    for name, student_overrides in students.items():
        cfg = load_config(base, student_overrides)
        if cfg.student.init == "teacher" or cfg.distill.kd != "none":
            cfg = with_teacher(cfg, teacher_ckpt)
        seconds = _trained(work / name, student_overrides, args.reuse,
                           lambda cfg=cfg, name=name: distill_student(
                               cfg, work / name, env, progress=False, splits=splits))
        if args.train_only:
            continue
        checkpoint = work / name / "last.pt"
        row = _float_row(checkpoint, splits, evaluate, env, seconds, cfg.student.train.epochs)
        row.update(kd=cfg.distill.kd, init=cfg.student.init)
        row.update(_chip_row(checkpoint, work / f"{name}_export", config))
        rows[name] = row
        print(name, {k: v for k, v in row.items() if not isinstance(v, dict)}, flush=True)

    if args.train_only:
        print(f"trained in {work}; run again with --reuse for the figures")
        return
    results = {"task": args.task, "arch": config.model.arch, "config": str(base.relative_to(ROOT)),
               "overrides": overrides, "time_steps": config.student.time_steps,
               "command": "PYTHONPATH=. .venv/bin/python benchmarks/dense_sakd.py --task "
                          f"{args.task} --teacher-epochs {args.teacher_epochs} --student-epochs "
                          f"{args.student_epochs} --train-scenes {args.train_scenes} "
                          f"--test-scenes {args.test_scenes} --threads {args.threads}",
               "machine": {"platform": platform.platform(), "torch": torch.__version__,
                           "threads": torch.get_num_threads(),
                           "note": "two CPU cores shared with other jobs: times are indicative"},
               "rows": rows}
    out = args.out or RESULTS / f"dense_sakd_{args.task}.json"
    atomic_write_json(out, results)
    print(f"saved {out}")


def _trained(folder: Path, overrides: list[str], reuse: bool, train: Any) -> float:
    """Train into ``folder`` (or, with ``reuse``, take the checkpoint trained there before with
    the same overrides); returns the training time in seconds (the recorded one when reused)."""
    record = folder / "bench_train.json"
    if reuse and (folder / "last.pt").exists() and record.exists():
        saved = json.loads(record.read_text())
        if saved.get("overrides") == overrides:
            return float(saved["train_s"])
        raise SystemExit(f"{folder} was trained with other settings ({saved.get('overrides')}); "
                         f"run without --reuse")
    started = time.perf_counter()
    train()
    seconds = time.perf_counter() - started
    atomic_write_json(record, {"overrides": overrides, "train_s": seconds})
    return seconds


def _metrics(figures: dict[str, Any]) -> dict[str, float]:
    keys = ("map", "map_50", "map_75", "mar_100", "miou", "pixel_acc")
    return {k: float(figures[k]) for k in keys if k in figures}


def _float_row(checkpoint: Path, splits: Any, evaluate: Any, env: DistEnv, seconds: float,
               epochs: int) -> dict[str, Any]:
    network, _ = load_network(checkpoint)
    figures = evaluate(network, splits.test, env, firing_rates=network.is_spiking)
    rates = figures.get("firing_rates") or {}
    row: dict[str, Any] = {"float": _metrics(figures), "epochs": epochs,
                           "train_s": round(seconds, 1), "images": int(figures["n"])}
    if rates:
        row["mean_firing_rate"] = sum(rates.values()) / len(rates)
    return row


def _chip_row(checkpoint: Path, export_dir: Path, config: Any) -> dict[str, Any]:
    exported = export_checkpoint(ExportOptions(checkpoint=checkpoint, out_dir=export_dir,
                                               formats=("ir",)))
    network = exported.network
    run = run_split(network, network.metadata["dataset"], split="test")
    report = dense_report(network, run, network.metadata["dataset"])
    macs, _ = ann_macs_for(network)  # the teacher's whole network up to the readouts
    energy = build_energy_report(run.result.counts, macs, PROFILES,
                                 network_name=config.model.arch, time_steps=run.time_steps,
                                 network_digest=network.digest(), network=network)
    totals = energy.totals
    ann = {} if energy.ann is None else {
        "ann_macs_per_inference": int(energy.ann["macs"]),
        "ann_energy_pj_per_inference": {k: float(v) for k, v in energy.ann["energy_pj"].items()},
        "energy_snn_over_ann": dict(energy.ratios["energy_snn_over_ann"]),
        "ops_snn_over_ann_macs": energy.ratios["ops_snn_over_ann_macs"]}
    like = energy.like_for_like
    if like:  # the chip's dynamic energy over the ANN twin with memory (both reuse bounds)
        ann.update(like_for_like={r["key"]: {"ratio": r["ratio"], "short": r["short"],
                                             "lower_bound": r["lower_bound"]}
                                  for r in like["ratios"] if r["headline"]},
                   ann_twin_macs=int(like["ann"]["macs"]),
                   chip_dynamic_pj_per_inference=float(like["snn"]["chip_dynamic_pj"]))
    return {"on_chip": report.dense["on_chip"], "float_snn_same_images": report.dense["float_snn"],
            "host": report.dense["host"], "chip_images": report.samples,
            "readouts": [p.name for p in network.readouts], "latency": network.latency,
            "spikes_per_inference": float(totals["spikes"]),
            "synops_per_inference": float(totals["synops"]),
            "graded_macs_per_inference": float(totals["graded_macs"]),
            "energy_pj_per_inference": {k: float(v) for k, v in totals["energy_pj"].items()},
            "simulated_images_per_s": report.throughput.samples_per_s, **ann}


if __name__ == "__main__":
    main()
