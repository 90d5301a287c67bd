"""Training cost of SAKD against the SNN from scratch: what the frozen teacher's forward pass and
the feature adapters add to every training step, per architecture and T.

    .venv/bin/python benchmarks/training_cost.py                       # Fashion-MNIST, CPU or GPU
    .venv/bin/python benchmarks/training_cost.py --archs convnet --time-steps 4 --samples 1024

Each setting trains with the real jobs (`train_teacher`, `distill_student`: data pipeline,
augmentation, optimizer step, progress off) on a fixed stratified subset of the training split
for ``--epochs`` epochs and keeps the *last* epoch's wall time of the training loop (evaluation
excluded; the first epoch warms up allocators and the autograd graph). Run it with nothing else
on the machine: the figures are wall-clock times. Writes benchmarks/results/training_cost.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from sakd.config import load_config, with_teacher
from sakd.data.common import subset_train
from sakd.io import atomic_write_json, read_jsonl
from sakd.train.distributed import init_distributed
from sakd.train.jobs import distill_student, load_data, train_teacher

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = {"scratch": ["student.init=scratch", "distill.kd=none"],
           "sakd": ["student.init=teacher", "distill.kd=both"]}
EVAL_SAMPLES = 256  # the trainer evaluates after every epoch; keep that small, it is not timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="configs/fashion_mnist.yaml")
    parser.add_argument("--archs", default="convnet,resnet_small")
    parser.add_argument("--time-steps", default="1,2,4")
    parser.add_argument("--samples", type=int, default=2048, help="training samples per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per setting; the last is timed")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--runs", type=Path, default=Path("runs/training_cost"))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is a warm-up)")
    if args.samples < 1:
        parser.error("--samples must be positive")

    env = init_distributed(args.device)
    results: dict[str, Any] = {
        "command": "benchmarks/training_cost.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in (("archs", args.archs),
                                                         ("time_steps", args.time_steps),
                                                         ("samples", args.samples),
                                                         ("epochs", args.epochs))),
        "config": args.config, "overrides": args.overrides, "machine": _machine(env.device),
        "rows": []}
    out_path = RESULTS / "training_cost.json"
    for arch in args.archs.split(","):
        base = [f"model.arch={arch}", f"data.train_subset={args.samples}", "data.val_fraction=0",
                f"teacher.train.epochs={args.epochs}", f"student.train.epochs={args.epochs}",
                *args.overrides]
        config = load_config(args.config, base)
        # one load: the whole training split (its size scales the timings), then the subset
        full = load_data(dataclasses.replace(config, data=dataclasses.replace(config.data, train_subset=None)))
        splits = subset_train(full, args.samples)
        splits = dataclasses.replace(splits, test=Subset(splits.test, range(min(EVAL_SAMPLES, len(splits.test)))))
        teacher_dir = _fresh(args.runs / arch / "teacher")
        train_teacher(config, teacher_dir, env, progress=False, splits=splits)
        teacher_row = _row(arch, 0, "ann", teacher_dir, len(full.train))
        results["rows"].append(teacher_row)
        _echo(teacher_row)
        for T in (int(t) for t in args.time_steps.split(",")):
            for method, overrides in METHODS.items():
                run_dir = _fresh(args.runs / arch / f"T{T}_{method}")
                cfg = with_teacher(load_config(args.config, base + overrides + [f"student.time_steps={T}"]),
                                   teacher_dir / "best.pt")
                distill_student(cfg, run_dir, env, progress=False, splits=splits)
                row = _row(arch, T, method, run_dir, len(full.train))
                results["rows"].append(row)
                _echo(row)
            scratch, sakd = results["rows"][-2], results["rows"][-1]
            sakd["over_scratch"] = sakd["seconds_per_epoch"] / scratch["seconds_per_epoch"]
            print(f"  {arch} T={T}: SAKD / scratch = {sakd['over_scratch']:.2f}×", flush=True)
        atomic_write_json(out_path, results)  # after each architecture: an interruption keeps it
    atomic_write_json(out_path, results)
    print(f"saved {out_path}")


def _fresh(run_dir: Path) -> Path:
    """An empty run folder (the trainer refuses to overwrite a finished run)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    return run_dir


def _row(arch: str, time_steps: int, method: str, run_dir: Path, full_train: int) -> dict[str, Any]:
    last = read_jsonl(run_dir / "metrics.jsonl")[-1]
    per_s = float(last["samples_per_s"])
    return {"arch": arch, "time_steps": time_steps, "method": method,
            "seconds_per_epoch": float(last["train_time_s"]), "samples_per_s": per_s,
            "full_train_samples": full_train,
            "seconds_per_full_epoch": full_train / per_s}


def _echo(row: dict[str, Any]) -> None:
    what = "ANN teacher" if row["method"] == "ann" else f"T={row['time_steps']} {row['method']}"
    print(f"{row['arch']} {what}: {row['samples_per_s']:.1f} samples/s "
          f"(~{row['seconds_per_full_epoch']:.0f} s per {row['full_train_samples']}-sample epoch)",
          flush=True)


def _machine(device: torch.device) -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "gpu": gpu,
            "cpu": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d")}


if __name__ == "__main__":
    main()
