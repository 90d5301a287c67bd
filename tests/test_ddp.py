"""Data-parallel training: world = 2 x batch b computes what world = 1 x batch 2b computes.

The sampler arithmetic is checked in-process; the real thing runs the CLI under
``torch.distributed.run`` with two Gloo processes on the CPU. SyncBatchNorm needs CUDA and
per-process BN statistics differ from one process's, so the model is BatchNorm-free
(``test_convnet_nobn``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sakd.config import load_config
from sakd.distill.task import ClassificationTask
from sakd.models import build_model
from sakd.train.checkpoint import load_checkpoint
from sakd.train.distributed import DistEnv
from sakd.train.jobs import distill_student, train_teacher
from sakd.train.trainer import Trainer

DDP_OVERRIDES = ["model.arch=test_convnet_nobn", "seed=5", "teacher.train.epochs=1",
                 "teacher.train.optimizer=sgd", "teacher.train.lr=0.05",
                 "student.train.epochs=1", "student.time_steps=2", "student.train.lr=0.003",
                 "distill.kd=logits", "distill.temperature=2.0",
                 # augmentation draws from per-rank generators, so only augmentation-free runs
                 # can equal the single-process run
                 "data.augment=false"]


def _trainer(splits, batch: int, rank: int, world: int) -> Trainer:
    model = build_model("test_convnet_nobn", 10, 1, (8, 8))
    config = load_config(None, DDP_OVERRIDES)
    return Trainer(task=ClassificationTask(model), trainable=model, network=model, splits=splits,
                   batch_size=batch, eval_batch_size=64, workers=0, optim=config.teacher.train,
                   env=DistEnv(rank=rank, world_size=world), run_dir="unused", seed=5,
                   describe=dict, progress=False)


def _index_batches(trainer: Trainer, epoch: int) -> list[list[int]]:
    loader = trainer._train_loader(epoch)
    return [chunk.tolist() for chunk in torch.split(torch.tensor(list(iter(loader.sampler))),
                                                    loader.batch_size)
            if len(chunk) == loader.batch_size]


@pytest.mark.parametrize("epoch", [0, 3])
def test_two_ranks_of_b_see_the_batches_of_one_process_of_2b(digits_splits, epoch):
    one = _index_batches(_trainer(digits_splits, 32, 0, 1), epoch)
    ranks = [_index_batches(_trainer(digits_splits, 16, r, 2), epoch) for r in (0, 1)]
    assert len(one) == len(ranks[0]) == len(ranks[1]) == len(digits_splits.train) // 32
    for j, batch in enumerate(one):
        assert sorted(batch) == sorted(ranks[0][j] + ranks[1][j]), f"batch {j}"
        assert not set(ranks[0][j]) & set(ranks[1][j])
    # the loader really yields those samples, in that order
    loader = _trainer(digits_splits, 16, 1, 2)._train_loader(epoch)
    _, y = next(iter(loader))
    expected = torch.tensor([digits_splits.train[i][1] for i in ranks[1][0]])
    assert torch.equal(y, expected)
    assert one != _index_batches(_trainer(digits_splits, 32, 0, 1), epoch + 1)  # reshuffled


LAUNCHER = """
import json
import sys

from sakd.cli import app

# one launch, several commands (the process group is joined once): halves the start-up cost
for args in json.loads(sys.argv[1]):
    result = app(args, standalone_mode=False)
    if result not in (None, 0):
        sys.exit(result)
"""


def _torchrun(commands: list[list[str]], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``sakd`` commands (the CLI's app) in two Gloo processes under torch.distributed.run."""
    launcher = tmp_path / "launch_sakd.py"
    launcher.write_text(LAUNCHER)
    commands = [[*c, "--device", "cpu", "--no-progress"] for c in commands]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", str(launcher), json.dumps(commands)]
    proc = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.allclose(value, b[key], rtol=1e-4, atol=1e-4), \
            f"{key}: max diff {(value - b[key]).abs().max().item()}"


@pytest.mark.ddp
@pytest.mark.slow
def test_gloo_ddp_matches_one_process(tmp_path):
    sets = [arg for override in DDP_OVERRIDES for arg in ("--set", override)]
    # one process, batch 32 (digits, as the CLI loads it)
    single = load_config(None, DDP_OVERRIDES + ["data.batch_size=32"])
    train_teacher(single, tmp_path / "t1", DistEnv(), progress=False)
    teacher_ckpt = tmp_path / "t1" / "last.pt"
    student_single = load_config(None, DDP_OVERRIDES + ["data.batch_size=32",
                                                        f"teacher.checkpoint={teacher_ckpt}"])
    distill_student(student_single, tmp_path / "s1", DistEnv(), progress=False)

    # two Gloo processes, batch 16 each
    _torchrun([["teacher", *sets, "--set", "data.batch_size=16", "-o", str(tmp_path / "t2")],
               ["distill", *sets, "--set", "data.batch_size=16", "--teacher", str(teacher_ckpt),
                "-o", str(tmp_path / "s2")]], tmp_path)
    for one, two in (("t1", "t2"), ("s1", "s2")):
        a, b = load_checkpoint(tmp_path / one / "last.pt"), load_checkpoint(tmp_path / two / "last.pt")
        _assert_close(a["state_dict"], b["state_dict"])
        assert a["metrics"]["train"]["loss"] == pytest.approx(b["metrics"]["train"]["loss"], rel=1e-4)
        # evaluation is sharded over the ranks and summed: the same figures on the full split
        assert b["metrics"]["test"]["n"] == 359
        assert a["metrics"]["test"]["acc"] == pytest.approx(b["metrics"]["test"]["acc"], abs=0.3)
    # the student's weights really moved away from the teacher's during that epoch
    teacher_state = load_checkpoint(teacher_ckpt)["state_dict"]
    student_state = load_checkpoint(tmp_path / "s2" / "last.pt")["state_dict"]
    assert not torch.allclose(teacher_state["fc.weight"], student_state["fc.weight"])
    summary = json.loads((tmp_path / "s2" / "summary.json").read_text())
    assert summary["epochs"] == 1
