"""Digits benchmark: ANN teacher, SNN from scratch, level-1 only, and SAKD SNN at the same T,
epochs and seed. Prints a table and saves benchmarks/results/digits_sakd.json.

    .venv/bin/python benchmarks/digits_sakd.py [-c configs/digits.yaml] [--set key=value ...]

The scratch baseline is the same command as SAKD with student.init=scratch and distill.kd=none;
level-1 only is student.init=teacher with distill.kd=none (the teacher's weights, CE fine-tuning).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from sakd.config import load_config, with_teacher
from sakd.io import atomic_write_json
from sakd.train.distributed import init_distributed
from sakd.train.evaluate import evaluate
from sakd.train.jobs import distill_student, load_data, load_network, train_teacher

RESULTS = Path(__file__).resolve().parent / "results"

STUDENTS = {
    "snn_scratch": ["student.init=scratch", "distill.kd=none"],
    "snn_level1": ["student.init=teacher", "distill.kd=none"],
    "snn_sakd": ["student.init=teacher", "distill.kd=both"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="configs/digits.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=RESULTS / "digits_sakd.json")
    args = parser.parse_args()

    config = load_config(args.config, args.overrides)
    env = init_distributed("cpu")
    splits = load_data(config)
    results: dict = {"config": config.to_dict(), "machine": _machine(), "rows": {}}
    with tempfile.TemporaryDirectory(prefix="sakd-bench-") as tmp:
        tmp_path = Path(tmp)
        start = time.perf_counter()
        train_teacher(config, tmp_path / "teacher", env, progress=False, splits=splits)
        results["rows"]["ann_teacher"] = _row(tmp_path / "teacher", splits, env, config,
                                              time.perf_counter() - start)
        for name, overrides in STUDENTS.items():
            student_config = load_config(args.config, args.overrides + overrides)
            student_config = with_teacher(student_config, tmp_path / "teacher" / "best.pt")
            start = time.perf_counter()
            distill_student(student_config, tmp_path / name, env, progress=False, splits=splits)
            results["rows"][name] = _row(tmp_path / name, splits, env, config,
                                         time.perf_counter() - start)
    atomic_write_json(args.out, results)
    _print(results, args.out)


def _row(run_dir: Path, splits, env, config, seconds: float) -> dict:
    network, record = load_network(run_dir / "best.pt")
    test = evaluate(network, splits.test, env, batch_size=config.data.eval_batch_size,
                    firing_rates=network.time_steps > 0)
    rates = test.get("firing_rates", {})
    return {"test_acc": test["acc"], "val_acc": record["metrics"].get("val", {}).get("acc"),
            "best_epoch": record["metrics"].get("epoch"), "train_seconds": round(seconds, 1),
            "time_steps": network.time_steps,
            "mean_firing_rate": sum(rates.values()) / len(rates) if rates else None}


def _machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}


def _print(results: dict, path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    config = results["config"]
    table = Table(title=f"digits benchmark: {config['model']['arch']}, T={config['student']['time_steps']}, "
                        f"seed {config['seed']}")
    for column in ("network", "test acc", "val acc", "best epoch", "firing rate", "train s"):
        table.add_column(column, justify="left" if column == "network" else "right")
    for name, row in results["rows"].items():
        rate = f"{row['mean_firing_rate']:.3f}" if row["mean_firing_rate"] is not None else "-"
        table.add_row(name, f"{row['test_acc']:.2f} %", f"{row['val_acc']:.2f} %",
                      str(row["best_epoch"]), rate, f"{row['train_seconds']:.0f}")
    Console().print(table)
    Console().print(f"saved {path}")


if __name__ == "__main__":
    main()
