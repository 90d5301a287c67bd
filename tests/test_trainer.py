"""The trainer and the jobs: checkpoints, exact resume after a kill, refusing to overwrite,
bad checkpoints, level-1 transfer through the job, firing rates, the lr schedule."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sakd.app.train import prepare_qat
from sakd.config import ConfigError, load_config
from sakd.distill import SAKDStudent, check_taps_match
from sakd.models import neuron_names
from sakd.train import trainer as trainer_module
from sakd.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_state_dict_file,
    save_checkpoint,
)
from sakd.train.distributed import DistEnv
from sakd.train.evaluate import evaluate
from sakd.train.jobs import (
    _restore_adapters,
    build_student,
    distill_student,
    load_network,
    train_teacher,
)
from sakd.train.trainer import TrainingError, lr_factor

CONFTEST = Path(__file__).with_name("conftest.py")
STUDENT_OVERRIDES = ["distill.feature_schedule=step", "distill.feature_epochs=1",
                     "distill.feature_weight=2.0", "distill.feature_floor=0.5"]


def state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Keys whose tensors differ (or that only one side has); empty when bit-identical."""
    keys = sorted(set(a) | set(b))
    return [k for k in keys if k not in a or k not in b or not torch.equal(a[k], b[k])]


def thread_env() -> dict[str, str]:
    """The environment of a subprocess that must reproduce this process's numbers bit for bit:
    the same number of intra-op threads (conftest.py sets it)."""
    threads = str(torch.get_num_threads())
    return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def student_config(tiny: list[str], teacher: Path, *extra: str):
    return load_config(None, tiny + STUDENT_OVERRIDES + [f"teacher.checkpoint={teacher}", *extra])


# ---------------------------------------------------------------------------------------------
# what a run writes


def test_teacher_run_writes_loadable_checkpoints_and_config(tiny_overrides, trained_teacher,
                                                             tiny_splits, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_teacher.parent, run)
    for name in ("last.pt", "best.pt", "config.yaml", "metrics.jsonl", "summary.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir())
    # plain tensors and built-in types only: loads with weights_only=True
    raw = torch.load(run / "last.pt", weights_only=True)
    assert raw["format"] == "sakd-checkpoint" and raw["kind"] == "teacher"
    assert raw["arch"] == "test_convnet" and raw["epoch"] == 1 and raw["time_steps"] == 0
    assert raw["model_args"] == {"num_classes": 10, "in_channels": 1, "image_size": [8, 8]}
    # the resolved config in the run directory re-loads to the run's config
    config = load_config(run / "config.yaml")
    assert config == load_config(None, tiny_overrides)
    assert config.to_dict() == raw["config"]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1]
    assert set(lines[0]["train"]) == {"ce", "loss", "acc"} and lines[0]["lr"] == pytest.approx(0.01)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["final"]["epoch"] == 1
    # the stored test accuracy is what evaluating the stored weights gives
    network, record = load_network(run / "last.pt")
    again = evaluate(network, tiny_splits.test, DistEnv(), firing_rates=False)
    assert again["acc"] == pytest.approx(record["metrics"]["test"]["acc"])
    assert again["acc"] > 20.0  # learned something (chance is 10 %)


def test_student_run_records_firing_rates_and_schedule(trained_student):
    record = load_checkpoint(trained_student, kind="student")
    assert record["time_steps"] == 2 and record["kd"] == "both"
    assert record["taps"] == ["stage1", "stage2"]
    rates = record["metrics"]["test"]["firing_rates"]
    assert list(rates) == ["stage1.2", "stage2.2", "act_fc1"]
    assert all(0.0 <= r <= 1.0 for r in rates.values()) and any(r > 0 for r in rates.values())
    assert record["metrics"]["feature_weight"] == 1.0
    # the trainable state holds the adapters too; the deployable state_dict only the SNN
    assert any(k.startswith("adapters.") for k in record["trainable"])
    assert not any(k.startswith("adapters.") for k in record["state_dict"])


def test_level1_transfer_through_the_job(tiny_overrides, trained_teacher, tiny_splits):
    teacher, _ = load_network(trained_teacher)
    config = student_config(tiny_overrides, trained_teacher)
    snn = build_student(config, tiny_splits.info, teacher)
    assert snn.time_steps == 2
    assert state_equal(snn.state_dict(), teacher.state_dict()) == []
    scratch = build_student(load_config(None, tiny_overrides + ["student.init=scratch"]),
                            tiny_splits.info, None)
    assert state_equal(scratch.state_dict(), teacher.state_dict())
    with pytest.raises(ConfigError, match="student.init=teacher needs a teacher"):
        build_student(config, tiny_splits.info, None)


# ---------------------------------------------------------------------------------------------
# fine-tuning from a student checkpoint (`sakd distill --from CKPT [--qat]`)


def _adapters_for(config, teacher_path: Path, info) -> SAKDStudent:
    teacher, _ = load_network(teacher_path)
    snn = build_student(config, info, teacher)
    taps = list(snn.stage_names)
    shapes = check_taps_match(snn, teacher, taps, torch.zeros(2, info.in_channels, *info.image_size))
    return SAKDStudent(snn, taps, config.distill.adapter_kernel, shapes)


def test_fine_tuning_restores_the_adapters_only_when_they_fit(tiny_overrides, trained_teacher,
                                                              trained_student, tiny_splits):
    record = load_checkpoint(trained_student, kind="student")
    saved = {k[len("adapters."):]: v for k, v in record["trainable"].items()
             if k.startswith("adapters.")}
    config = student_config(tiny_overrides, trained_teacher)
    student = _adapters_for(config, trained_teacher, tiny_splits.info)
    assert state_equal(student.adapters.state_dict(), saved)  # fresh adapters differ
    assert _restore_adapters(student, record)
    assert state_equal(student.adapters.state_dict(), saved) == []
    # another adapter kernel (3x3 instead of 1x1): no fit, the adapters stay fresh
    other = _adapters_for(student_config(tiny_overrides, trained_teacher, "distill.adapter_kernel=3"),
                          trained_teacher, tiny_splits.info)
    before = {k: v.clone() for k, v in other.adapters.state_dict().items()}
    assert not _restore_adapters(other, record)
    assert state_equal(other.adapters.state_dict(), before) == []
    # a checkpoint trained without feature KD has no adapters to give
    no_features = dict(record, trainable={k: v for k, v in record["trainable"].items()
                                          if not k.startswith("adapters.")})
    assert not _restore_adapters(_adapters_for(config, trained_teacher, tiny_splits.info),
                                 no_features)


def test_qat_fine_tuning_job(tiny_overrides, trained_teacher, trained_student, tiny_splits,
                             tmp_path):
    """`sakd distill --qat --from CKPT`: starts from the checkpoint's SNN and adapters, trains the
    export's integer network, and saves a student that exports like any other."""
    from sakd.export.lower import lower

    config = student_config(tiny_overrides, trained_teacher, f"student.init_checkpoint={trained_student}",
                            "student.qat=true", "student.train.epochs=1")
    distill_student(config, tmp_path / "qat", DistEnv(), progress=False, splits=tiny_splits,
                    prepare_qat=prepare_qat)
    record = load_checkpoint(tmp_path / "qat" / "last.pt", kind="student")
    assert record["qat"] is True and record["adapters_from"] == str(trained_student)
    start = load_checkpoint(trained_student, kind="student")
    assert list(record["state_dict"]) == list(start["state_dict"])  # the QAT keys are the SNN's
    assert state_equal(record["state_dict"], start["state_dict"])  # and it trained
    network, _ = load_network(tmp_path / "qat" / "last.pt")
    info = tiny_splits.info
    lower(network, input_shape=(info.in_channels, *info.image_size), input_range=(0.0, 1.0))
    # the starting checkpoint must be the same architecture and T
    wrong_t = student_config(tiny_overrides, trained_teacher, f"student.init_checkpoint={trained_student}",
                             "student.time_steps=3")
    with pytest.raises(ConfigError, match="T=2; this run trains a test_convnet with T=3"):
        distill_student(wrong_t, tmp_path / "wrong", DistEnv(), progress=False, splits=tiny_splits)


# ---------------------------------------------------------------------------------------------
# exact resume


def _tensors(record: dict) -> dict[str, torch.Tensor]:
    out = {f"trainable.{k}": v for k, v in record["trainable"].items()}
    out.update({f"state_dict.{k}": v for k, v in record["state_dict"].items()})
    for pid, state in record["optimizer"]["state"].items():
        out.update({f"optimizer.{pid}.{k}": v for k, v in state.items() if torch.is_tensor(v)})
    return out


def test_teacher_interrupted_after_epoch_1_resumes_bit_exactly(tiny_overrides, trained_teacher,
                                                                tiny_splits, tmp_path, monkeypatch):
    config = load_config(None, tiny_overrides)
    calls = []

    def interrupt_after_first_epoch(env):  # Ctrl-C right after the epoch-1 checkpoint
        calls.append(1)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(trainer_module, "barrier", interrupt_after_first_epoch)
        with pytest.raises(KeyboardInterrupt):
            train_teacher(config, tmp_path, DistEnv(), progress=False, splits=tiny_splits)
    assert calls == [1] and load_checkpoint(tmp_path / "last.pt")["epoch"] == 0
    train_teacher(config, tmp_path, DistEnv(), resume=True, progress=False, splits=tiny_splits)
    resumed, full = load_checkpoint(tmp_path / "last.pt"), load_checkpoint(trained_teacher)
    assert resumed["epoch"] == full["epoch"] == 1
    assert state_equal(_tensors(resumed), _tensors(full)) == []
    assert resumed["scheduler"] == full["scheduler"]
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in metrics] == [0, 1]


KILLED_RUN = textwrap.dedent("""
    import importlib.util, os, signal, sys
    spec = importlib.util.spec_from_file_location("sakd_tests_conftest", sys.argv[1])
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    from sakd.config import load_config
    from sakd.distill.task import DistillationTask
    from sakd.train.distributed import DistEnv
    from sakd.train.jobs import distill_student

    set_position = DistillationTask.set_position

    def set_position_or_die(self, epoch, batch_index):
        if (epoch, batch_index) == (1, 2):  # in the middle of epoch 2: a hard kill
            os.kill(os.getpid(), signal.SIGKILL)
        set_position(self, epoch, batch_index)

    DistillationTask.set_position = set_position_or_die
    config = load_config(None, helpers.TINY_OVERRIDES + sys.argv[3:])
    distill_student(config, sys.argv[2], DistEnv(), progress=False,
                    splits=helpers.make_tiny_splits())
""")


def test_student_killed_mid_epoch_resumes_bit_exactly(tiny_overrides, trained_teacher, tiny_splits,
                                                      tmp_path):
    """SIGKILL in epoch 2 (after the epoch-1 checkpoint), then ``--resume``: the final weights,
    adapters and optimizer state equal an uninterrupted run's, bit for bit."""
    extra = STUDENT_OVERRIDES + [f"teacher.checkpoint={trained_teacher}"]
    killed_dir, full_dir = tmp_path / "killed", tmp_path / "full"
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(CONFTEST), str(killed_dir), *extra],
                          check=False, capture_output=True, text=True, env=thread_env(),
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert load_checkpoint(killed_dir / "last.pt")["epoch"] == 0
    assert not list(killed_dir.glob(".*.tmp"))  # no half-written file left behind

    config = student_config(tiny_overrides, trained_teacher)
    distill_student(config, killed_dir, DistEnv(), resume=True, progress=False, splits=tiny_splits)
    distill_student(config, full_dir, DistEnv(), progress=False, splits=tiny_splits)
    resumed, full = load_checkpoint(killed_dir / "last.pt"), load_checkpoint(full_dir / "last.pt")
    assert resumed["epoch"] == full["epoch"] == 1
    assert state_equal(_tensors(resumed), _tensors(full)) == []
    assert resumed["metrics"]["train"] == full["metrics"]["train"]
    # the step schedule: beta in epoch 1, the floor in epoch 2
    lines = [json.loads(x) for x in (full_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["feature_weight"] for r in lines] == [2.0, 0.5]
    resumed_lines = [json.loads(x) for x in (killed_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in resumed_lines] == [0, 1]


# ---------------------------------------------------------------------------------------------
# run directories


def test_refuses_to_overwrite_a_run_and_keeps_its_config(tiny_overrides, trained_teacher,
                                                         tiny_splits, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_teacher.parent, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    changed = load_config(None, tiny_overrides + ["teacher.train.lr=0.5"])
    with pytest.raises(TrainingError, match=r"already holds a training run .*pass --resume"):
        train_teacher(changed, run, DistEnv(), progress=False, splits=tiny_splits)
    with pytest.raises(CheckpointError, match=r"config key 'teacher.train.lr' was 0.01 and is now "
                                              r"0.5; resume with the run's own config.yaml"):
        train_teacher(changed, run, DistEnv(), resume=True, progress=False, splits=tiny_splits)
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == before  # config.yaml, checkpoints and metrics untouched


def test_resume_without_a_checkpoint(tiny_overrides, tmp_path, tiny_splits):
    with pytest.raises(TrainingError, match="no checkpoint to resume in .*last.pt missing"):
        train_teacher(load_config(None, tiny_overrides), tmp_path, DistEnv(), resume=True,
                      progress=False, splits=tiny_splits)


def test_training_split_smaller_than_a_batch(tiny_overrides, tmp_path, tiny_splits):
    config = load_config(None, tiny_overrides + ["data.batch_size=512"])
    with pytest.raises(TrainingError, match=r"fewer than one global batch \(512 x 1\); lower "
                                            r"data.batch_size"):
        train_teacher(config, tmp_path, DistEnv(), progress=False, splits=tiny_splits)


def test_diverging_loss_is_an_error(tiny_overrides, tmp_path, tiny_splits):
    config = load_config(None, tiny_overrides + ["teacher.train.optimizer=sgd",
                                                 "teacher.train.lr=1e30", "teacher.train.epochs=1"])
    with pytest.raises(TrainingError, match=r"the loss became (nan|inf) .* lower the learning rate"):
        train_teacher(config, tmp_path, DistEnv(), progress=False, splits=tiny_splits)


# ---------------------------------------------------------------------------------------------
# bad checkpoints


def test_bad_checkpoint_files(tmp_path, trained_teacher):
    data = trained_teacher.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut.pt is truncated or not a torch file"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "notes.txt").write_text("hello, not a checkpoint\n")
    with pytest.raises(CheckpointError, match=r"notes.txt is truncated or not a torch file"):
        load_checkpoint(tmp_path / "notes.txt")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match=r"plain.pt is not a sakd checkpoint .*--teacher-weights"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"holds a teacher but a student was expected"):
        load_checkpoint(trained_teacher, kind="student")


class _Payload:
    def __reduce__(self):  # would run code if unpickled without weights_only
        return (print, ("executed!",))


def test_checkpoints_never_execute_pickled_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with path.open("wb") as handle:
        pickle.dump({"format": "sakd-checkpoint", "x": _Payload()}, handle, protocol=2)
    with pytest.raises(CheckpointError, match=r"weights_only=True and never executes pickled code"):
        load_checkpoint(path)
    torch.save({"format": "sakd-checkpoint", "x": _Payload()}, tmp_path / "evil2.pt")
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        load_checkpoint(tmp_path / "evil2.pt")
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        read_state_dict_file(tmp_path / "evil2.pt")
    assert "executed!" not in capsys.readouterr().out


def test_checkpoint_version_and_fields(tmp_path, trained_teacher):
    record = load_checkpoint(trained_teacher)
    newer = {k: v for k, v in record.items() if k not in ("format", "version")}
    save_checkpoint(tmp_path / "new.pt", newer)
    raw = torch.load(tmp_path / "new.pt", weights_only=True)
    raw["version"] = 99
    torch.save(raw, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match=r"newer sakd \(checkpoint version 99 > 1\); upgrade"):
        load_checkpoint(tmp_path / "new.pt")
    del raw["arch"]
    raw["version"] = 1
    torch.save(raw, tmp_path / "noarch.pt")
    with pytest.raises(CheckpointError, match="lacks 'arch'"):
        load_checkpoint(tmp_path / "noarch.pt")


def test_wrong_architecture_teacher_checkpoint(tiny_overrides, trained_teacher, tiny_splits,
                                               tmp_path):
    config = student_config(tiny_overrides, trained_teacher, "model.arch=test_convnet_pool")
    with pytest.raises(CheckpointError, match=r"does not fit ConvNet|does not fit PoolConvNet"):
        distill_student(config, tmp_path, DistEnv(), progress=False, splits=tiny_splits)
    assert not (tmp_path / "config.yaml").exists()
    # same names, other widths
    from sakd.models.convnet import ConvNet
    from sakd.train.checkpoint import load_state_strict

    teacher_state = load_checkpoint(trained_teacher)["state_dict"]
    with pytest.raises(CheckpointError, match=r"t.pt: 'stage1.0.weight' has shape \(4, 1, 3, 3\) but "
                                              r"the model expects \(6, 1, 3, 3\)"):
        load_state_strict(ConvNet(10, 1, (8, 8), widths=(6, 8), strides=(1, 2), hidden=16),
                          teacher_state, "t.pt")


def test_torchvision_format_weights_file(tiny_overrides, tmp_path, trained_teacher, tiny_splits):
    teacher, _ = load_network(trained_teacher)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in teacher.state_dict().items()}}
    torch.save(wrapped, tmp_path / "w.pth")
    state = read_state_dict_file(tmp_path / "w.pth")
    assert state_equal(state, teacher.state_dict()) == []
    config = load_config(None, tiny_overrides + [f"teacher.weights={tmp_path / 'w.pth'}"])
    snn = build_student(config, tiny_splits.info, teacher)
    assert state_equal(snn.state_dict(), teacher.state_dict()) == []
    torch.save({"a": [1, 2]}, tmp_path / "lists.pth")
    with pytest.raises(CheckpointError, match="does not hold a state dict of tensors"):
        read_state_dict_file(tmp_path / "lists.pth")


# ---------------------------------------------------------------------------------------------
# evaluation and schedules


def test_firing_rates_by_hand(tiny_splits, trained_student):
    snn, _ = load_network(trained_student)
    counts = {n: [0.0, 0] for n in neuron_names(snn)}
    hooks = [snn.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: counts[n].__setitem__(slice(0, 2), [counts[n][0] + o.sum().item(),
                                                                  counts[n][1] + o.numel()]))
        for n in counts]
    with torch.no_grad():
        correct = 0
        for i in range(len(tiny_splits.test)):
            x, y = tiny_splits.test[i]
            correct += int(snn(x.unsqueeze(0)).argmax(1).item() == y)
    for h in hooks:
        h.remove()
    result = evaluate(snn, tiny_splits.test, DistEnv(), batch_size=7, firing_rates=True)
    assert result["n"] == 64 and result["acc"] == pytest.approx(100.0 * correct / 64)
    assert list(result["firing_rates"]) == list(counts)
    for name, (spikes, seen) in counts.items():
        assert result["firing_rates"][name] == pytest.approx(spikes / seen)
    assert all(0.0 <= r <= 1.0 for r in result["firing_rates"].values())
    assert sum(r > 0 for r in result["firing_rates"].values()) >= 2


def test_lr_schedule_by_hand():
    from sakd.config import OptimConfig

    cfg = OptimConfig(epochs=10, warmup_epochs=2, scheduler="cosine")
    assert [lr_factor(e, cfg) for e in (0, 1)] == [0.5, 1.0]
    for e in range(2, 10):
        assert lr_factor(e, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * (e - 2) / 8)))
    constant = dataclasses.replace(cfg, scheduler="constant", warmup_epochs=0)
    assert {lr_factor(e, constant) for e in range(10)} == {1.0}
