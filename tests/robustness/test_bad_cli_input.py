"""The bad-CLI-input suite: every command x every family of bad input (tests/robustness/
cli_cases.py) ends with exit status 2, one ``error:`` line naming the thing, no traceback, and
nothing overwritten."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cli_cases
import pytest
from typer.testing import CliRunner

from sakd.cli import app

runner = CliRunner()


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def context(tmp_path_factory, trained_student, trained_teacher) -> cli_cases.Context:
    from sakd.app.export import ExportOptions, export_checkpoint

    root = tmp_path_factory.mktemp("badcli")
    export = root / "export"
    export_checkpoint(ExportOptions(trained_student, export))
    (root / "notes.txt").write_text("hello")
    (root / "foreign").mkdir()
    (root / "foreign" / "thesis.tex").write_text("mine")
    (root / "empty").mkdir()
    (root / "junk.pt").write_bytes(bytes(range(256)) * 8)
    (root / "bad.yaml").write_text("a: [unclosed")
    (root / "abc.yaml").write_text("student:\n  time_steps: abc\n")
    return cli_cases.Context(student=trained_student, teacher=trained_teacher, export=export,
                             text=root / "notes.txt", folder=root / "foreign",
                             empty=root / "empty", junk=root / "junk.pt",
                             bad_yaml=root / "bad.yaml", abc_yaml=root / "abc.yaml",
                             missing=root / "missing.pt")


def run_case(context: cli_cases.Context, args: list[str]):
    root = context.text.parent
    before = snapshot(root)
    result = runner.invoke(app, context.fill(args), terminal_width=200)
    after = snapshot(root)
    return result, before, after


CASES = cli_cases.cases()


@pytest.mark.parametrize(("family", "name", "args", "expected"), CASES,
                         ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_bad_input_is_one_clear_error(context, family, name, args, expected):
    result, before, after = run_case(context, args)
    output = result.output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2, (result.exit_code, output[-2000:], result.exception)
    assert "Traceback" not in output, output
    assert "file an issue" not in output  # a library's request to report its bug misleads
    assert len(errors) == 1, output
    assert expected in " ".join(errors[0].split()), errors[0]
    changed = {k for k in before if before[k] != after.get(k)}
    assert not changed, f"files changed: {sorted(changed)}"


def test_the_suite_covers_every_command():
    commands = {c[2][0] for c in CASES}
    assert {"teacher", "distill", "eval", "pipeline", "export", "inspect", "simulate", "energy",
            "verify"} <= commands
    assert {c[0] for c in CASES} == {"unknown name", "bad number", "output path", "input file",
                                     "resume"}
