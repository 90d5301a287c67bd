"""Fashion-MNIST study: ANN teacher, SNN from scratch, SAKD (logits, features, both) at several T,
on-chip accuracy of the quantized network (with and without QAT), SynOps / spikes / energy against
the ANN, training cost of SAKD against scratch, and simulator throughput against Lava.

    .venv/bin/python benchmarks/fashion_mnist.py --quick     # fits 2 CPU cores (subset, few epochs)
    .venv/bin/python benchmarks/fashion_mnist.py --cpu       # full training set, convnet T = 4 (~80 min)
    .venv/bin/python benchmarks/fashion_mnist.py             # the full study (a GPU)
    .venv/bin/python benchmarks/make_results.py              # JSON -> docs/results.md

Every run writes benchmarks/results/fashion_mnist[_quick|_cpu].json (atomically, after each setting, so
an interrupted study keeps what it finished; rerunning skips finished settings unless --fresh).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from sakd.config import load_config, with_teacher
from sakd.io import atomic_write_json, read_jsonl
from sakd.train.distributed import init_distributed
from sakd.train.jobs import distill_student, load_data, load_network, train_teacher

RESULTS = Path(__file__).resolve().parent / "results"

MODES: dict[str, dict[str, Any]] = {
    "quick": {
        "archs": ["convnet", "resnet_small"],
        "time_steps": [1, 2, 4],
        "methods_all_t": ["scratch", "both"],
        "methods_t4": ["logits", "features"],
        # the Spiking-ResNet costs several times the ConvNet per epoch: T = 4, scratch vs SAKD only
        "per_arch": {"resnet_small": {"time_steps": [4], "methods_all_t": ["scratch", "both"],
                                      "methods_t4": [], "lava_samples": 0}},
        "overrides": ["data.train_subset=3000", "data.val_fraction=0.02", "teacher.train.epochs=3",
                      "student.train.epochs=2"],
        "qat_epochs": 1,
        "simulate_samples": 2000,
        "lava_samples": 4,
    },
    # the full training set on two CPU cores: one architecture at T = 4, SAKD against scratch
    "cpu": {
        "archs": ["convnet"],
        "time_steps": [4],
        "methods_all_t": ["scratch", "both"],
        "methods_t4": [],
        "overrides": ["teacher.train.epochs=15", "student.train.epochs=10"],
        "qat_epochs": 1,
        "simulate_samples": -1,
        "lava_samples": 0,
    },
    "full": {
        "archs": ["convnet", "resnet_small"],
        "time_steps": [1, 2, 4],
        "methods_all_t": ["scratch", "logits", "features", "both"],
        "methods_t4": [],
        "overrides": ["teacher.train.epochs=60", "student.train.epochs=60"],
        "qat_epochs": 5,
        "simulate_samples": -1,
        "lava_samples": 16,
    },
}

METHODS = {
    "scratch": ["student.init=scratch", "distill.kd=none"],
    "logits": ["student.init=teacher", "distill.kd=logits"],
    "features": ["student.init=teacher", "distill.kd=features"],
    "both": ["student.init=teacher", "distill.kd=both"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU mode: a subset, few epochs, fewer settings")
    parser.add_argument("--cpu", action="store_true",
                        help="CPU mode on the full training set: convnet, T = 4, scratch vs SAKD (~80 min)")
    parser.add_argument("-c", "--config", default="configs/fashion_mnist.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--runs", type=Path, default=Path("runs/fashion_mnist"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fresh", action="store_true", help="ignore finished settings in the JSON")
    parser.add_argument("--redeploy", action="store_true",
                        help="keep the trained students, redo their deployment (QAT fine-tuning, "
                             "export, simulation, energy), e.g. after a change to the exporter")
    args = parser.parse_args()

    if args.quick and args.cpu:
        parser.error("--quick and --cpu are two different modes; pick one")
    mode_name = "quick" if args.quick else "cpu" if args.cpu else "full"
    mode = MODES[mode_name]
    suffix = "" if mode_name == "full" else f"_{mode_name}"
    out_path = RESULTS / f"fashion_mnist{suffix}.json"
    results = _load(out_path) if not args.fresh else {}
    results.update({"mode": mode_name, "command": "benchmarks/fashion_mnist.py" + ("" if mode_name == "full" else f" --{mode_name}"),
                    "machine": _machine(), "mode_settings": mode})
    results.setdefault("archs", {})
    env = init_distributed(args.device)
    runs = args.runs / mode_name
    for arch in mode["archs"]:
        mode = {**MODES[mode_name], **MODES[mode_name].get("per_arch", {}).get(arch, {})}
        base = [f"model.arch={arch}", *mode["overrides"], *args.overrides]
        config = load_config(args.config, base)
        splits = load_data(config)
        row = results["archs"].setdefault(arch, {"students": {}})
        teacher_dir = runs / arch / "teacher"
        if "teacher" not in row:
            fit = train_teacher(config, teacher_dir, env, resume=(teacher_dir / "last.pt").exists(),
                                progress=False, splits=splits)
            row["teacher"] = _record(teacher_dir, fit)
            atomic_write_json(out_path, results)
        for T in mode["time_steps"]:
            methods = mode["methods_all_t"] + (mode["methods_t4"] if T == 4 else [])
            for method in methods:
                key = f"T{T}/{method}"
                student_dir = runs / arch / f"T{T}_{method}"
                cfg = with_teacher(load_config(args.config, base + METHODS[method] + [f"student.time_steps={T}"]),
                                   teacher_dir / "best.pt")
                if key in row["students"]:
                    if args.redeploy and "deploy" in row["students"][key]:
                        shutil.rmtree(runs / arch / f"{student_dir.name}_qat", ignore_errors=True)
                        row["students"][key]["deploy"] = _deploy(student_dir, cfg, mode, splits, env, runs / arch)
                        atomic_write_json(out_path, results)
                        _echo(arch, key, row["students"][key])
                    continue
                fit = distill_student(cfg, student_dir, env, resume=(student_dir / "last.pt").exists(),
                                      progress=False, splits=splits)
                row["students"][key] = _record(student_dir, fit)
                if method == "both":
                    row["students"][key]["deploy"] = _deploy(student_dir, cfg, mode, splits, env, runs / arch)
                atomic_write_json(out_path, results)
                _echo(arch, key, row["students"][key])
    atomic_write_json(out_path, results)
    print(f"saved {out_path}")


def _record(run_dir: Path, fit) -> dict[str, Any]:
    history = read_jsonl(run_dir / "metrics.jsonl")
    best = fit.best or max(history, key=lambda r: r["select_acc"])
    return {"test_acc": best["test"]["acc"], "val_acc": best.get("val", {}).get("acc"),
            "best_epoch": best["epoch"], "epochs": len(history),
            "train_seconds_per_epoch": sum(r["train_time_s"] for r in history) / len(history),
            "firing_rates": best["test"].get("firing_rates"), "checkpoint": str(run_dir / "best.pt")}


def _deploy(student_dir: Path, cfg, mode: dict[str, Any], splits, env, arch_runs: Path) -> dict[str, Any]:
    """Export and simulate the student (PTQ), then fine-tune with QAT and do it again."""
    from sakd.app.energy import ann_macs_for, build_energy_report
    from sakd.app.export import ExportOptions, export_checkpoint
    from sakd.app.simulate import run_split
    from sakd.app.train import prepare_qat

    out: dict[str, Any] = {}
    limit = mode["simulate_samples"]
    for variant in ("ptq", "qat"):
        ckpt = student_dir / "best.pt"
        if variant == "qat":
            qat_dir = arch_runs / f"{student_dir.name}_qat"
            qat_cfg = dataclasses.replace(cfg, student=dataclasses.replace(
                cfg.student, qat=True, init_checkpoint=str(ckpt),
                train=dataclasses.replace(cfg.student.train, epochs=mode["qat_epochs"],
                                          lr=cfg.student.train.lr * 0.1)))
            distill_student(qat_cfg, qat_dir, env, resume=(qat_dir / "last.pt").exists(),
                            progress=False, splits=splits, prepare_qat=prepare_qat)
            ckpt = qat_dir / "best.pt"
        exported = export_checkpoint(ExportOptions(
            checkpoint=ckpt, out_dir=student_dir.parent / f"{student_dir.name}_{variant}_export",
            formats=("ir",)))
        network = exported.network
        run = run_split(network, "fashion-mnist", split="test", limit=None if limit < 0 else limit)
        snn, _ = load_network(ckpt)
        float_acc = _float_accuracy(snn, run.samples.x, run.labels)
        ann_macs, _ = ann_macs_for(network)  # (None, why) when there is no ANN baseline
        energy = build_energy_report(run.result.counts, ann_macs, ["loihi", "cmos45-fp32"],
                                     network_name=str(network.metadata.get("arch_name")),
                                     time_steps=run.time_steps)
        out[variant] = {"float_acc_same_samples": float_acc, "on_chip_acc": run.accuracy,
                        "samples": len(run.labels),
                        "simulator_samples_per_s": len(run.samples) / run.seconds,
                        "energy": {"totals": energy.totals, "ann": energy.ann,
                                   "ratios": energy.ratios, "layers": energy.layers}}
    out["lava"] = _lava_speed(student_dir.parent / f"{student_dir.name}_ptq_export", mode["lava_samples"])
    return out


def _float_accuracy(snn, x: torch.Tensor, labels) -> float:
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), 512):
            correct += int((snn(x[start:start + 512]).argmax(1).numpy() == labels[start:start + 512]).sum())
    return 100.0 * correct / len(x)


def _lava_speed(export_dir: Path, samples: int) -> dict[str, Any] | None:
    """sakd's simulator and Lava's fixed-point simulation on the same samples (bit-exactness too)."""
    from sakd.app.verify import compare_runs, verification_samples
    from sakd.hardware.lava_bridge import lava_unavailable_reason, run_lava
    from sakd.hardware.netfile import read_network
    from sakd.hardware.simulator import simulate

    reason = lava_unavailable_reason()
    if reason is not None:
        return {"skipped": reason}
    if samples <= 0:
        return {"skipped": "not run for this network in this mode (Lava needs minutes per sample)"}
    path = export_dir / "network.h5"
    network = read_network(path)
    x, _ = verification_samples(network, samples)
    encoded = network.input.encode(x.numpy())
    T = network.steps_for()
    start = time.perf_counter()
    result = simulate(network, encoded, time_steps=T, record=[p.name for p in network.populations])
    sakd_s = time.perf_counter() - start
    start = time.perf_counter()
    lava = run_lava(path, encoded, T, traces=True)
    lava_s = time.perf_counter() - start
    comparison = compare_runs(network, result, lava, "lava")
    return {"samples": samples, "sakd_samples_per_s": samples / sakd_s,
            "lava_samples_per_s": samples / lava_s, "speed_ratio": lava_s / sakd_s,
            "lava_wall_includes": "process start and network build", "bit_exact": comparison.identical}


def _echo(arch: str, key: str, row: dict[str, Any]) -> None:
    line = f"{arch} {key}: test {row['test_acc']:.2f} %  ({row['train_seconds_per_epoch']:.0f} s/epoch)"
    deploy = row.get("deploy")
    if deploy:
        line += (f"  on chip: PTQ {deploy['ptq']['on_chip_acc']:.2f} % (float {deploy['ptq']['float_acc_same_samples']:.2f} %),"
                 f" QAT {deploy['qat']['on_chip_acc']:.2f} %")
    print(line, flush=True)


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _machine() -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "gpu": gpu,
            "cpu": platform.processor() or platform.machine()}


if __name__ == "__main__":
    main()
