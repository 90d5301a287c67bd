"""Counts by outcome of the two robustness suites (issue 13), at a larger size than `make test`:

- bad CLI input (tests/robustness/cli_cases.py): ``clean`` (exit 2, one ``error:`` line naming the
  thing, no traceback, nothing overwritten), ``weak`` (exit 2 but the line does not name it),
  ``bad`` (a traceback, another exit status, or a file changed);
- reader fuzz (tests/robustness/fuzz.py): mutants of the IR, NIR and netx files sakd writes,
  read and inspected: ``error`` and ``same`` are good, ``changed``, ``crash``, ``timeout`` bad.

    .venv/bin/python benchmarks/robustness.py [--per-kind 40] [--seed 1]

Prints the tables and writes benchmarks/results/robustness.json.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "robustness"), str(ROOT / "tests" / "export")]

import cli_cases  # noqa: E402
import fuzz  # noqa: E402


def train_tiny(root: Path) -> tuple[Path, Path]:
    from sakd.config import load_config
    from sakd.train.distributed import DistEnv
    from sakd.train.jobs import distill_student, train_teacher

    sets = ["model.arch=test_convnet", "data.name=digits", "data.train_subset=96",
            "teacher.train.epochs=1", "student.train.epochs=1", "student.time_steps=2"]
    train_teacher(load_config(None, sets), root / "teacher", DistEnv(), progress=False)
    distill_student(load_config(None, [*sets, f"teacher.checkpoint={root / 'teacher' / 'last.pt'}"]),
                    root / "student", DistEnv(), progress=False)
    return root / "student" / "last.pt", root / "teacher" / "last.pt"


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def cli_suite(root: Path) -> tuple[Counter, list[dict]]:
    from typer.testing import CliRunner

    from sakd.app.export import ExportOptions, export_checkpoint
    from sakd.cli import app

    student, teacher = train_tiny(root / "runs")
    files = root / "files"
    files.mkdir()
    export_checkpoint(ExportOptions(student, files / "export"))
    (files / "notes.txt").write_text("hello")
    (files / "foreign").mkdir()
    (files / "foreign" / "thesis.tex").write_text("mine")
    (files / "empty").mkdir()
    (files / "junk.pt").write_bytes(bytes(range(256)) * 8)
    (files / "bad.yaml").write_text("a: [unclosed")
    (files / "abc.yaml").write_text("student:\n  time_steps: abc\n")
    context = cli_cases.Context(student, teacher, files / "export", files / "notes.txt",
                                files / "foreign", files / "empty", files / "junk.pt",
                                files / "bad.yaml", files / "abc.yaml", files / "missing.pt")
    runner = CliRunner()
    counts: Counter = Counter()
    rows = []
    for family, name, args, expected in cli_cases.cases():
        before = snapshot(files)
        result = runner.invoke(app, context.fill(args), terminal_width=200)
        changed = before != snapshot(files)
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        if result.exit_code != 2 or "Traceback" in result.output or len(errors) != 1 or changed:
            outcome = "bad"
        elif expected not in " ".join(errors[0].split()):
            outcome = "weak"
        else:
            outcome = "clean"
        counts[outcome] += 1
        rows.append({"family": family, "case": name, "outcome": outcome,
                     "exit": result.exit_code, "error": errors[0] if errors else None})
    return counts, rows


def fuzz_suite(root: Path, per_kind: int, seed: int) -> tuple[dict, list[dict], float]:
    import random_snn

    from sakd.formats.netx import write_netx
    from sakd.formats.nir import write_nir
    from sakd.hardware.netfile import write_network

    folder = root / "fuzz"
    folder.mkdir()
    net = random_snn.lowered("test_convnet", (1, 8, 8))
    files = {"ir": write_network(net, folder / "network.h5"),
             "nir": write_nir(net, folder / "network.nir"),
             "netx": write_netx(net, folder / "network.netx.h5")}
    original = write_network(net, folder / "original.h5")
    start = time.perf_counter()
    outcomes = list(fuzz.run(files, original, folder, per_kind, seed=seed))
    seconds = time.perf_counter() - start
    by_format = {fmt: {"read": dict(Counter(o.read for o in outcomes if o.fmt == fmt)),
                       "inspect": dict(Counter(o.inspect for o in outcomes if o.fmt == fmt))}
                 for fmt in files}
    bad = [o.__dict__ for o in outcomes if o.read not in fuzz.GOOD or o.inspect not in fuzz.GOOD]
    return {"total": len(outcomes), "by_format": by_format,
            "read": dict(Counter(o.read for o in outcomes)),
            "inspect": dict(Counter(o.inspect for o in outcomes))}, bad, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=40, help="fuzz mutants per kind and format")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "robustness.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sakd-robustness-") as tmp:
        root = Path(tmp)
        cli_counts, cli_rows = cli_suite(root)
        fuzz_counts, fuzz_bad, seconds = fuzz_suite(root, args.per_kind, args.seed)
    print(f"bad CLI input: {sum(cli_counts.values())} cases: " +
          ", ".join(f"{k} {v}" for k, v in sorted(cli_counts.items())))
    for row in cli_rows:
        if row["outcome"] != "clean":
            print(f"  {row['outcome']}: {row['family']} / {row['case']}: exit {row['exit']}: {row['error']}")
    print(f"reader fuzz: {fuzz_counts['total']} mutants ({args.per_kind} per kind x "
          f"{len(fuzz.KINDS)} kinds x 3 formats, seed {args.seed}, {seconds:.0f} s)")
    for fmt, counts in fuzz_counts["by_format"].items():
        print(f"  {fmt}: read {counts['read']}, inspect {counts['inspect']}")
    for row in fuzz_bad:
        print(f"  BAD {row}")
    from sakd.hardware.atomic import atomic_write_json

    atomic_write_json(args.out, {"cli": {"counts": dict(cli_counts), "cases": cli_rows},
                                 "fuzz": {**fuzz_counts, "per_kind": args.per_kind,
                                          "seed": args.seed, "seconds": seconds,
                                          "bad": fuzz_bad}})
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
