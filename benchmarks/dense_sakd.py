"""Detection / segmentation benchmark on the generated digit scenes: the ANN teacher, its SNN
with level 1 only (no training), the SNN from scratch, the SNN with level 1 and the task loss
(kd none), and SAKD (level 1 + 2) in the chosen kd modes, at the same T, epochs and seed.
Prints a table and saves benchmarks/results/dense_sakd_<task>.json.

    .venv/bin/python benchmarks/dense_sakd.py --task detection [--arch fcos_resnet_small] \
        [--teacher-epochs 10] [--student-epochs 4] [--kd both,logits,features] [--threads 2]

A plain loop over the Python API of docs/detection.md (AdamW, constant learning rate, batch 32);
the figures are the test split's at the last epoch (no selection on a validation split).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from sakd.data.detection import load_dense_splits
from sakd.distill import FeatureWeight
from sakd.distill.detection import (
    DetectionDistillationTask,
    DetectionTask,
    SegmentationDistillationTask,
    SegmentationTask,
    dense_student,
)
from sakd.io import atomic_write_json
from sakd.models import arch_spec, build_model, spikify
from sakd.train.evaluate_dense import evaluate_detection, evaluate_segmentation

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_ARCH = {"detection": "fcos_resnet_small", "segmentation": "fcn_resnet_small"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("detection", "segmentation"), default="detection")
    parser.add_argument("--arch", default=None, help="student architecture (default: the task's small ResNet)")
    parser.add_argument("--teacher-epochs", type=int, default=10)
    parser.add_argument("--student-epochs", type=int, default=4)
    parser.add_argument("--time-steps", type=int, default=4)
    parser.add_argument("--kd", default="both,logits,features")
    parser.add_argument("--logit-weight", type=float, default=1.0)
    parser.add_argument("--feature-weight", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--train-scenes", type=int, default=2000)
    parser.add_argument("--test-scenes", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--teacher-lr", type=float, default=2e-3)
    parser.add_argument("--student-lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arch = args.arch or DEFAULT_ARCH[args.task]
    teacher_arch = arch_spec(arch).teacher
    splits = load_dense_splits("digit-scenes", args.task, train_scenes=args.train_scenes,
                               test_scenes=args.test_scenes, seed=args.seed)
    info = splits.info
    shape = (info.num_classes, info.in_channels, info.image_size)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "arch": arch,
                     "teacher": teacher_arch, "machine": _machine(), "rows": {}}

    torch.manual_seed(args.seed)
    teacher = build_model(teacher_arch, *shape)
    task = DetectionTask(teacher) if args.task == "detection" else SegmentationTask(teacher)
    seconds = _fit(task, teacher.parameters(), splits, args.teacher_epochs, args.teacher_lr, args)
    results["rows"]["ann_teacher"] = _row(teacher, splits, args, seconds, args.teacher_epochs)
    results["rows"]["snn_level1_untrained"] = _row(_level1(arch, teacher, shape, args), splits, args, 0.0, 0)

    students = [("snn_scratch", "none", False), ("snn_level1", "none", True)]
    students += [(f"snn_sakd_{kd}", kd, True) for kd in args.kd.split(",") if kd]
    for name, kd, from_teacher in students:
        torch.manual_seed(args.seed)
        snn = _level1(arch, teacher, shape, args) if from_teacher else spikify(build_model(arch, *shape), args.time_steps)
        uses_teacher = kd != "none"
        student = dense_student(snn, teacher if uses_teacher else None,
                                None if kd in ("both", "features") else [])
        cls = DetectionDistillationTask if args.task == "detection" else SegmentationDistillationTask
        task = cls(student, teacher if uses_teacher else None, kd, args.logit_weight, args.temperature,
                   FeatureWeight("constant", args.feature_weight), list(student.tap_names))
        seconds = _fit(task, student.parameters(), splits, args.student_epochs, args.student_lr, args)
        results["rows"][name] = _row(snn, splits, args, seconds, args.student_epochs)
        print(name, results["rows"][name], flush=True)
    out = args.out or RESULTS / f"dense_sakd_{args.task}.json"
    atomic_write_json(out, results)
    _print(results, out)


def _level1(arch: str, teacher, shape, args):
    snn = spikify(build_model(arch, *shape), args.time_steps)
    snn.load_state_dict(teacher.state_dict())
    return snn


def _fit(task, params, splits, epochs: int, lr: float, args) -> float:
    """AdamW at a constant ``lr`` for ``epochs``; returns seconds per epoch."""
    optimizer = torch.optim.AdamW([p for p in params if p.requires_grad], lr=lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for epoch in range(epochs):
        task.train()
        task.set_position(epoch, 0)
        loader = DataLoader(splits.train, batch_size=args.batch_size, shuffle=True, drop_last=True,
                            collate_fn=splits.collate_fn, generator=generator)
        for x, y in loader:
            out = task(x, y)
            if not torch.isfinite(out.loss):
                raise RuntimeError(f"the loss became {float(out.loss.detach())} at epoch {epoch + 1}")
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
    return (time.perf_counter() - start) / max(epochs, 1)


def _row(network, splits, args, seconds: float, epochs: int) -> dict:
    rates = network.is_spiking
    if args.task == "detection":
        m = evaluate_detection(network, splits.test, firing_rates=rates)
        row = {"map": m.map, "map_50": m.map_50, "map_75": m.map_75}
    else:
        m = evaluate_segmentation(network, splits.test, firing_rates=rates,
                                  class_names=splits.info.class_names)
        row = {"miou": m.miou, "pixel_acc": m.pixel_acc}
    if m.firing_rates:
        row["mean_firing_rate"] = sum(m.firing_rates.values()) / len(m.firing_rates)
    row.update({"epochs": epochs, "s_per_epoch": seconds})
    return row


def _machine() -> dict:
    return {"platform": platform.platform(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def _print(results: dict, out: Path) -> None:
    rows = results["rows"]
    keys = [k for k in next(iter(rows.values())) if k not in ("epochs", "s_per_epoch")]
    print(f"{'network':<24}" + "".join(f"{k:>18}" for k in keys) + f"{'epochs':>8}{'s/epoch':>10}")
    for name, row in rows.items():
        cells = "".join(f"{row.get(k, float('nan')):>18.4f}" for k in keys)
        print(f"{name:<24}{cells}{row['epochs']:>8}{row['s_per_epoch']:>10.1f}")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
