"""The command line: user errors exit 2 with a message that names the problem; `sakd eval`
reports accuracy and per-LIF-layer firing rates; `sakd models` lists the registry."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from sakd.cli import app
from sakd.data import load_splits
from sakd.models import ARCHITECTURES
from sakd.train.distributed import DistEnv
from sakd.train.evaluate import evaluate
from sakd.train.jobs import load_network

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def one_line(text: str) -> str:
    return " ".join(text.split())  # undo the terminal's line wrapping


def test_models_lists_the_registry():
    result = invoke("models")
    assert result.exit_code == 0
    for name in ("resnet18", "sew_resnet50", "resnet19"):
        assert name in result.output
    assert "test_convnet_nobn" not in result.output  # internal test architectures: --all
    assert "test_convnet_nobn" in invoke("models", "--all").output
    assert len(ARCHITECTURES) >= 26


@pytest.mark.parametrize("sets, message", [
    (["data.batchsize=3"], "unknown config key 'data.batchsize'; did you mean 'data.batch_size'?"),
    (["student.time_steps=0"], "student.time_steps must be >= 1 (got 0)"),
    (["data.batch_size=many"], "data.batch_size: expected an integer, got 'many'"),
    (["data.batch_size"], "override 'data.batch_size' is not of the form key=value"),
    (["model.arch=resnet81", "data.name=digits"], "unknown architecture 'resnet81'"),
    (["data.name=mnist"], "unknown data set 'mnist'; choose one of"),
])
def test_user_errors_exit_2_with_the_message(tmp_path, sets, message):
    args = [arg for s in sets for arg in ("--set", s)]
    result = invoke("teacher", *args, "-o", str(tmp_path / "run"), "--device", "cpu", "--no-progress")
    assert result.exit_code == 2
    assert message in one_line(result.output)
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_missing_fashion_mnist_through_the_cli(tmp_path):
    result = invoke("teacher", "--set", "data.name=fashion-mnist", "--set", f"data.root={tmp_path}",
                    "-o", str(tmp_path / "run"), "--device", "cpu")
    assert result.exit_code == 2
    text = one_line(result.output)
    assert "missing train-images-idx3-ubyte[.gz]" in text and "apt-get install" in text


def test_refuses_to_overwrite_a_run(tmp_path, trained_teacher):
    run = tmp_path / "run"
    shutil.copytree(trained_teacher.parent, run)
    before = (run / "config.yaml").read_text()
    result = invoke("teacher", "-c", str(run / "config.yaml"), "--set", "teacher.train.epochs=5",
                    "-o", str(run), "--device", "cpu", "--no-progress")
    assert result.exit_code == 2
    assert "already holds a training run (last.pt); pass --resume" in one_line(result.output)
    assert (run / "config.yaml").read_text() == before


def test_resume_of_a_finished_run_trains_nothing_more(tmp_path, trained_teacher):
    run = tmp_path / "run"
    shutil.copytree(trained_teacher.parent, run)
    before = (run / "last.pt").read_bytes()
    result = invoke("teacher", "-c", str(run / "config.yaml"), "-o", str(run), "--resume",
                    "--device", "cpu", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "teacher: best epoch" in result.output
    assert (run / "last.pt").read_bytes() == before


def test_wrong_architecture_and_bad_checkpoints(tmp_path, trained_teacher):
    result = invoke("distill", "--teacher", str(trained_teacher), "--set", "model.arch=test_resnet",
                    "-o", str(tmp_path / "s"), "--device", "cpu", "--no-progress")
    assert result.exit_code == 2
    assert "does not fit ResNet" in one_line(result.output)
    assert "another architecture" in one_line(result.output)

    cut = tmp_path / "cut.pt"
    cut.write_bytes(trained_teacher.read_bytes()[:1000])
    result = invoke("eval", str(cut), "--device", "cpu")
    assert result.exit_code == 2 and "is truncated or not a torch file" in one_line(result.output)

    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    result = invoke("eval", str(text), "--device", "cpu")
    assert result.exit_code == 2 and "notes.txt" in one_line(result.output)

    result = invoke("distill", "--teacher", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "s2"),
                    "--device", "cpu")
    assert result.exit_code == 2 and "nope.pt does not exist" in one_line(result.output)


def test_eval_reports_accuracy_and_firing_rates(tmp_path, trained_student):
    out = tmp_path / "eval.json"
    result = invoke("eval", str(trained_student), "--device", "cpu", "--json", str(out))
    assert result.exit_code == 0, result.output
    text = one_line(result.output)
    report = json.loads(out.read_text())
    assert report["samples"] == 359 and report["split"] == "test"
    # the figures are those of evaluating the checkpoint's network on the digits test split
    network, _ = load_network(trained_student)
    expected = evaluate(network, load_splits("digits", val_fraction=0.1).test, DistEnv(),
                        firing_rates=True)
    assert report["accuracy"] == pytest.approx(expected["acc"])
    assert f"accuracy {expected['acc']:.2f} % over 359 samples" in text
    assert "test_convnet (SNN T=2) on digits/test" in text
    assert list(report["firing_rates"]) == ["stage1.2", "stage2.2", "act_fc1"]
    for name, rate in report["firing_rates"].items():
        assert rate == pytest.approx(expected["firing_rates"][name])
        assert f"{name} {rate:.4f}" in text  # one table row per LIF layer
    assert "firing rate per LIF layer" in text


def test_eval_of_a_teacher_and_of_other_splits(trained_teacher):
    result = invoke("eval", str(trained_teacher), "--split", "val", "--device", "cpu")
    assert result.exit_code == 0, result.output
    text = one_line(result.output)
    assert "test_convnet (ANN) on digits/val" in text and "over 143 samples" in text
    assert "firing rate" not in text
    result = invoke("eval", str(trained_teacher), "--split", "holdout", "--device", "cpu")
    assert result.exit_code == 2 and "--split 'holdout': choose test, val or train" in one_line(result.output)
