"""Bad command-line input, by family, for every command: each case must end with exit status 2,
one ``error:`` line that names the thing, no traceback, and nothing overwritten. Used by
tests/robustness/test_bad_cli_input.py and benchmarks/robustness.py (which counts outcomes).

A case is ``(family, id, args, expected)``: ``args`` may hold ``{placeholders}`` filled from the
context (``Context``); ``expected`` is a substring of the error line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Context:
    """Files the cases point at (made by the fixture): checkpoints, an export, odd paths."""

    student: Path  # a student checkpoint
    teacher: Path  # a teacher checkpoint
    export: Path  # an export folder
    text: Path  # a text file
    folder: Path  # a folder that is no export and holds a file
    empty: Path  # an empty folder
    junk: Path  # random bytes named .pt
    bad_yaml: Path  # a config file that is not YAML
    abc_yaml: Path  # a config whose student.time_steps is "abc"
    missing: Path  # a path that does not exist

    def fill(self, args: list[str]) -> list[str]:
        values = {k: str(v) for k, v in vars(self).items()}
        return [a.format(**values) for a in args]


def cases() -> list[tuple[str, str, list[str], str]]:
    fast = ["--set", "teacher.train.epochs=1", "--set", "student.train.epochs=1",
            "--set", "model.arch=test_convnet", "--device", "cpu", "--no-progress"]
    return [
        # unknown names
        ("unknown name", "teacher-arch", ["teacher", "--set", "model.arch=nope", "-o", "{empty}/t", *fast[:2], *fast[6:]], "unknown architecture 'nope'"),
        ("unknown name", "teacher-data", ["teacher", "--set", "data.name=nope", "-o", "{empty}/t", *fast[:2], "--device", "cpu"], "unknown data set 'nope'"),
        ("unknown name", "config-key", ["teacher", "--set", "data.batchsize=3", "-o", "{empty}/t"], "did you mean 'data.batch_size'"),
        ("unknown name", "distill-kd", ["distill", "--teacher", "{teacher}", "--kd", "maybe", "-o", "{empty}/s"], "distill.kd: 'maybe' is not one of"),
        ("unknown name", "distill-taps", ["distill", "--teacher", "{teacher}", "--set", "distill.taps=[nope]", "-o", "{empty}/s", *fast], "nope"),
        ("unknown name", "export-format", ["export", "{student}", "-o", "{empty}/e", "--formats", "xyz"], "unknown export format(s) xyz"),
        ("unknown name", "export-target", ["export", "{student}", "-o", "{empty}/e", "--target", "loihi3"], "loihi3"),
        ("unknown name", "pipeline-target", ["pipeline", "--set", "export.target=loihi3", "-o", "{empty}/p", *fast], "export.target 'loihi3'"),
        ("unknown name", "pipeline-profile", ["pipeline", "--set", "energy.profiles=[nope]", "-o", "{empty}/p", *fast], "nope"),
        ("unknown name", "energy-profile", ["energy", "{export}", "--profile", "nope"], "nope"),
        ("unknown name", "energy-profile-empty", ["energy", "{export}", "--profile", ","], "--profile"),
        ("unknown name", "simulate-data", ["simulate", "{export}", "--data", "nope", "-o", "{empty}/r.json"], "unknown data set 'nope'"),
        ("unknown name", "simulate-split", ["simulate", "{export}", "--split", "holdout", "-o", "{empty}/r.json"], "holdout"),
        ("unknown name", "eval-split", ["eval", "{teacher}", "--split", "holdout", "--device", "cpu"], "holdout"),
        ("unknown name", "device", ["eval", "{teacher}", "--device", "tpu"], "unknown device 'tpu'"),
        # bad numbers
        ("bad number", "input-bits-0", ["export", "{student}", "-o", "{empty}/e", "--input-bits", "0"], "--input-bits 0"),
        ("bad number", "input-bits-1", ["export", "{student}", "-o", "{empty}/e", "--input-bits", "1"], "--input-bits 1"),
        ("bad number", "input-bits-99", ["export", "{student}", "-o", "{empty}/e", "--input-bits", "99"], "--input-bits 99"),
        ("bad number", "calibrate-neg", ["export", "{student}", "-o", "{empty}/e", "--calibrate", "-5"], "--calibrate -5"),
        ("bad number", "limit-0", ["simulate", "{export}", "--limit", "0", "-o", "{empty}/r.json"], "--limit 0"),
        ("bad number", "limit-neg", ["simulate", "{export}", "--limit", "-3", "-o", "{empty}/r.json"], "--limit -3"),
        ("bad number", "batch-0", ["simulate", "{export}", "--batch", "0", "-o", "{empty}/r.json"], "--batch 0"),
        ("bad number", "energy-limit-neg", ["energy", "{export}", "--limit", "-1", "-o", "{empty}/en"], "--limit -1"),
        ("bad number", "samples-0", ["verify", "{export}", "--onnx", "--samples", "0"], "--samples 0"),
        ("bad number", "samples-neg", ["verify", "{export}", "--onnx", "--samples", "-2"], "--samples -2"),
        ("bad number", "eval-batch-0", ["eval", "{teacher}", "--batch-size", "0", "--device", "cpu"], "--batch-size 0"),
        ("bad number", "epochs-0", ["teacher", "--set", "teacher.train.epochs=0", "-o", "{empty}/t"], "teacher.train.epochs"),
        ("bad number", "tau-inf", ["distill", "--teacher", "{teacher}", "--set", "student.neuron.tau=.inf", "-o", "{empty}/s"], "student.neuron.tau"),
        ("bad number", "temperature-inf", ["distill", "--teacher", "{teacher}", "--set", "distill.temperature=.inf", "-o", "{empty}/s"], "distill.temperature"),
        ("bad number", "time-steps-abc", ["teacher", "-c", "{abc_yaml}", "-o", "{empty}/t"], "student.time_steps"),
        ("bad number", "time-steps-0", ["distill", "--teacher", "{teacher}", "--set", "student.time_steps=0", "-o", "{empty}/s"], "student.time_steps"),
        ("bad number", "simulate-time-steps", ["simulate", "{export}", "--time-steps", "3", "-o", "{empty}/r.json"], "T = 2"),
        # output locations
        ("output path", "export-to-file", ["export", "{student}", "-o", "{text}"], "is a file"),
        ("output path", "export-to-foreign-folder", ["export", "{student}", "-o", "{folder}"], "not a sakd export"),
        ("output path", "export-under-file", ["export", "{student}", "-o", "{text}/sub"], "is a file"),
        ("output path", "export-unwritable", ["export", "{student}", "-o", "/proc/sakd-export"], "/proc"),
        ("output path", "simulate-out-folder", ["simulate", "{export}", "-o", "{empty}"], "is a folder"),
        ("output path", "energy-out-file", ["energy", "{export}", "-o", "{text}"], "is a file"),
        ("output path", "eval-json-folder", ["eval", "{teacher}", "--json", "{empty}", "--device", "cpu"], "is a folder"),
        ("output path", "verify-out-folder", ["verify", "{export}", "--onnx", "-o", "{empty}"], "is a folder"),
        ("output path", "teacher-out-file", ["teacher", "-o", "{text}", *fast], "is a file"),
        ("output path", "distill-out-file", ["distill", "--teacher", "{teacher}", "-o", "{text}", *fast], "is a file"),
        ("output path", "pipeline-out-file", ["pipeline", "-o", "{text}", *fast], "is a file"),
        # missing or wrong-kind files
        ("input file", "eval-missing", ["eval", "{missing}", "--device", "cpu"], "does not exist"),
        ("input file", "eval-folder", ["eval", "{folder}", "--device", "cpu"], "is a folder"),
        ("input file", "eval-text", ["eval", "{text}", "--device", "cpu"], "notes.txt"),
        ("input file", "eval-junk", ["eval", "{junk}", "--device", "cpu"], "junk.pt"),
        ("input file", "export-teacher", ["export", "{teacher}", "-o", "{empty}/e"], "ANN teacher checkpoint"),
        ("input file", "export-missing", ["export", "{missing}", "-o", "{empty}/e"], "does not exist"),
        ("input file", "inspect-missing", ["inspect", "{missing}"], "no such file"),
        ("input file", "inspect-text", ["inspect", "{text}"], "not a network file"),
        ("input file", "inspect-folder", ["inspect", "{folder}"], "is a folder"),
        ("input file", "simulate-missing", ["simulate", "{missing}"], "no network file"),
        ("input file", "simulate-text", ["simulate", "{text}", "-o", "{empty}/r.json"], "not a network file"),
        ("input file", "simulate-empty-folder", ["simulate", "{empty}", "-o", "{empty}/r.json"], "holds no network.h5"),
        ("input file", "energy-missing", ["energy", "{missing}", "-o", "{empty}/en"], "no network file"),
        ("input file", "verify-not-folder", ["verify", "{text}", "--onnx"], "not an export folder"),
        ("input file", "teacher-missing", ["distill", "--teacher", "{missing}", "-o", "{empty}/s"], "does not exist"),
        ("input file", "teacher-weights-text", ["distill", "--teacher-weights", "{text}", "-o", "{empty}/s", *fast], "notes.txt"),
        ("input file", "config-missing", ["teacher", "-c", "{missing}", "-o", "{empty}/t"], "does not exist"),
        ("input file", "config-not-yaml", ["teacher", "-c", "{bad_yaml}", "-o", "{empty}/t"], "not valid YAML"),
        # interrupted runs
        ("resume", "teacher-resume-empty", ["teacher", "--resume", "-o", "{empty}/nothing", *fast], "no run to continue"),
        ("resume", "distill-resume-empty", ["distill", "--teacher", "{teacher}", "--resume", "-o", "{empty}/nothing", *fast], "no run to continue"),
        ("resume", "pipeline-resume-empty", ["pipeline", "--resume", "-o", "{empty}/nothing", *fast], "no pipeline run to continue"),
    ]
